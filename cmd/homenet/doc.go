// Command homenet is the CLI of the homenet appliance: it parses flags and
// hands off to package appliance (for serve, init and selftest) or to the
// running server's admin socket (keys, nodes, routes, status).
package main
