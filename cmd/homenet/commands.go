package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"homenet/appliance"
	"homenet/control"
)

// command is one homenet command, such as "serve" or "keys create".
type command struct {
	name    string   // as typed: "keys create"
	args    []string // names of its positional arguments, e.g. {"ID", "NAME"}
	anyArgs bool     // takes any number of args, including none
	short   string   // one line, for the command list
	long    string   // more, for its own usage; may be empty
	flags   func(fs *flag.FlagSet, o *options)

	// Exactly one of run and admin is set. admin commands get a client of
	// the admin socket named by the configuration.
	run   func(ctx context.Context, inv *invocation) error
	admin func(ctx context.Context, inv *invocation, a control.Admin) error
}

// invocation is one run of a command: its parsed flags and arguments and
// where its output goes.
type invocation struct {
	opts   options
	args   []string
	stdout io.Writer
	stderr io.Writer
	now    time.Time  // when the command started, for relative times
	cmds   []*command // all commands, for help
}

// adminTimeout bounds a call to the admin socket.
const adminTimeout = 30 * time.Second

// commands returns every homenet command, in the order help lists them.
func commands() []*command {
	return []*command{
		initCommand(),
		uninstallCommand(),
		{name: "serve", short: "run the control server, DERP relay and gateway", long: serveLong, flags: serveFlags, run: runServe},
		{name: "keys create", short: "create a pre-auth key and print it", long: keysCreateLong, flags: keysCreateFlags, admin: keysCreate},
		{name: "keys list", short: "list pre-auth keys", flags: adminFlags, admin: keysList},
		{name: "keys expire", args: []string{"ID"}, short: "expire a pre-auth key now", flags: adminFlags, admin: keysExpire},
		{name: "keys delete", args: []string{"ID"}, short: "delete a pre-auth key (nodes it registered stay)", flags: adminFlags, admin: keysDelete},
		{name: "nodes list", short: "list nodes", flags: adminFlags, admin: nodesList},
		{name: "nodes pending", short: "list the logins waiting for approval", flags: adminFlags, admin: nodesPending},
		{name: "nodes deny", args: []string{"CODE"}, short: "refuse a pending login by the code in its URL", flags: adminFlags, admin: nodesDeny},
		{name: "nodes approve", args: []string{"CODE"}, short: "approve a pending login by the code in its URL", long: nodesApproveLong, flags: adminFlags, admin: nodesApprove},
		{name: "nodes rename", args: []string{"ID", "NAME"}, short: "rename a node", flags: adminFlags, admin: nodesRename},
		{name: "nodes expire", args: []string{"ID"}, short: "expire a node's key, forcing it to log in again", flags: adminFlags, admin: nodesExpire},
		{name: "nodes delete", args: []string{"ID"}, short: "delete a node", flags: adminFlags, admin: nodesDelete},
		{name: "routes list", short: "list advertised routes and their approval", flags: adminFlags, admin: routesList},
		{name: "routes approve", args: []string{"ID", "PREFIX"}, short: "approve a route node ID advertises", flags: adminFlags, admin: routesApprove},
		{name: "routes unapprove", args: []string{"ID", "PREFIX"}, short: "withdraw a route's approval", flags: adminFlags, admin: routesUnapprove},
		{name: "status", short: "show the running server's status", flags: adminFlags, admin: status},
		{name: "ports", short: "list the ports phones need to reach, from the configuration", long: portsLong, flags: portsFlags, run: ports},
		{name: "version", short: "print versions", flags: jsonFlag, run: version},
		{name: "selftest", short: "check that this binary works here (store, keys, relay on loopback)", long: selftestLong, flags: jsonFlag, run: selftest},
		{name: "help", args: []string{"COMMAND"}, anyArgs: true, short: "explain a command", run: help},
	}
}

// exec runs c for inv.
func (c *command) exec(ctx context.Context, inv *invocation) error {
	if c.run != nil {
		return c.run(ctx, inv)
	}
	cfg, _, err := inv.config()
	if err != nil {
		return err
	}
	client := control.DialAdmin(cfg.AdminSocket())
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	err = c.admin(ctx, inv, client)
	if ue, ok := errors.AsType[*control.UnreachableError](err); ok {
		return ue // says all there is to say
	}
	return err
}

// config returns the configuration and the file it was read from: the
// file named by --config, else the platform's config file if it exists.
// Without either it returns the built-in defaults and file "".
func (inv *invocation) config() (cfg appliance.Config, file string, err error) {
	file = inv.opts.config
	if file == "" {
		file = platformConfigPath()
		if _, err := os.Stat(file); err != nil {
			return appliance.DefaultConfig(), "", nil
		}
	}
	cfg, err = appliance.LoadConfig(file)
	return cfg, file, err
}

// platformConfigPath is where commands look for the config without
// --config: where `homenet init` and the packages put it on this platform,
// such as /etc/homenet/homenet.toml.
func platformConfigPath() string { return appliance.DetectPlatform("/").ConfigPath }

// lookup finds the command args start with and returns it with the rest of
// args. Its errors are *usageError.
func lookup(cmds []*command, args []string) (*command, []string, error) {
	if len(args) == 0 {
		return nil, nil, usageErrorf("missing command")
	}
	find := func(name string) *command {
		i := slices.IndexFunc(cmds, func(c *command) bool { return c.name == name })
		if i < 0 {
			return nil
		}
		return cmds[i]
	}
	if len(args) > 1 {
		if c := find(args[0] + " " + args[1]); c != nil {
			return c, args[2:], nil
		}
	}
	if c := find(args[0]); c != nil {
		return c, args[1:], nil
	}
	if group := groupCommands(cmds, args[0]); len(group) > 0 {
		ue := &usageError{usage: func(w io.Writer) {
			fmt.Fprintf(w, "usage: homenet %s COMMAND [flags] [ARGS]\n\n", args[0])
			printCommandList(w, group)
		}}
		if len(args) == 1 || strings.HasPrefix(args[1], "-") {
			ue.msg = fmt.Sprintf("missing %s command", args[0])
		} else {
			ue.msg = fmt.Sprintf("unknown %s command %q", args[0], args[1])
		}
		return nil, nil, ue
	}
	return nil, nil, usageErrorf("unknown command %q", args[0])
}

// groupCommands returns the commands whose first word is group, such as
// "keys create" and "keys list" for "keys".
func groupCommands(cmds []*command, group string) []*command {
	var out []*command
	for _, c := range cmds {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}

// checkArgs reports whether args fit c's positional arguments.
func (c *command) checkArgs(args []string) error {
	switch {
	case c.anyArgs:
		return nil
	case len(args) > len(c.args):
		return usageErrorf("unexpected argument %q", args[len(c.args)])
	case len(args) < len(c.args):
		return usageErrorf("missing %s", c.args[len(args)])
	}
	return nil
}

// flagSet returns c's flags, bound to o.
func (c *command) flagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("homenet "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run reports errors itself
	if c.flags != nil {
		c.flags(fs, o)
	}
	return fs
}

// synopsis is how c is typed, as in "homenet nodes rename [flags] ID NAME".
func (c *command) synopsis() string {
	s := "homenet " + c.name
	if c.flags != nil {
		s += " [flags]"
	}
	if len(c.args) > 0 {
		args := strings.Join(c.args, " ")
		if c.anyArgs {
			args = "[" + args + "...]"
		}
		s += " " + args
	}
	return s
}

// printUsage writes the usage of c, with flags fs, to w.
func (c *command) printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n", c.synopsis())
	desc := c.long
	if desc == "" {
		desc = strings.ToUpper(c.short[:1]) + c.short[1:] + "."
	}
	fmt.Fprintf(w, "%s\n", desc)
	if c.flags == nil {
		return
	}
	fmt.Fprintf(w, "\nflags:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, name, usage)
	})
	tw.Flush()
}

// printTopUsage writes the usage of homenet to w.
func printTopUsage(w io.Writer, cmds []*command) {
	fmt.Fprintf(w, "usage: homenet [--config FILE] [--json] COMMAND [flags] [ARGS]\n\n")
	fmt.Fprintf(w, "homenet runs a Tailscale-compatible control server, DERP relay and\nsubnet router on a home gateway, and administers it.\n\n")
	printCommandList(w, cmds)
	fmt.Fprintf(w, "\n--config and --json may come before the command or after it.\n")
	fmt.Fprintf(w, "Run \"homenet help COMMAND\" or \"homenet COMMAND --help\" for its flags.\n")
}

// printCommandList writes one line per command of cmds to w.
func printCommandList(w io.Writer, cmds []*command) {
	fmt.Fprintf(w, "commands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(c.synopsis(), "homenet "), c.short)
	}
	tw.Flush()
}

// help explains the command named by its arguments, or all commands.
func help(ctx context.Context, inv *invocation) error {
	if len(inv.args) == 0 {
		printTopUsage(inv.stdout, inv.cmds)
		return nil
	}
	if group := groupCommands(inv.cmds, inv.args[0]); len(group) > 0 && len(inv.args) == 1 {
		printCommandList(inv.stdout, group)
		return nil
	}
	c, rest, err := lookup(inv.cmds, inv.args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unknown command %q", strings.Join(inv.args, " "))
	}
	c.printUsage(inv.stdout, c.flagSet(new(options)))
	return nil
}
