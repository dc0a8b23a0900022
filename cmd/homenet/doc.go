// Command homenet is the CLI of the homenet appliance. It only parses the
// command line: "serve" hands the configuration to package appliance, and
// the administration commands (keys, nodes, routes, status) call the running
// server's admin socket through control.AdminClient.
//
// See docs/cli.md for every command, flag, output and exit code.
package main
