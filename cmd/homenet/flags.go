package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"homenet/control"
	"tailscale.com/tailcfg"
)

// options holds the values of every command's flags; each command binds
// the ones it takes.
type options struct {
	config     string        // --config
	json       bool          // --json
	logLevel   slog.Level    // serve --log-level
	reusable   bool          // keys create --reusable
	ephemeral  bool          // keys create --ephemeral
	expiry     durationValue // keys create --expiry
	tags       tagsValue     // keys create --tags
	gatewayKey bool          // keys create --gateway
}

// configFlag binds --config.
func configFlag(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.config, "config", "", "read the configuration from `FILE` (default: built-in defaults, state in /var/lib/homenet)")
}

// jsonFlag binds --json.
func jsonFlag(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.json, "json", false, "print JSON instead of text")
}

// globalFlags binds the flags that may also come before the command, as in
// "homenet --config FILE keys create" (as "tailscale --socket=… up" does).
// There they apply to the command if it has them and are ignored if not, so
// that an alias such as "homenet --config FILE" works for every command.
func globalFlags(fs *flag.FlagSet, o *options) {
	configFlag(fs, o)
	jsonFlag(fs, o)
}

// parseGlobal parses the flags before the command in args and returns them,
// as a flag set to pass to applyGlobal, and the rest of args. "-h" or
// "--help" among them asks for help. Its errors are *usageError.
func parseGlobal(args []string) (*flag.FlagSet, []string, error) {
	fs := flag.NewFlagSet("homenet", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run reports errors itself
	globalFlags(fs, new(options))
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return fs, []string{"help"}, nil
	case err != nil:
		return nil, nil, usageErrorf("%v (only --config FILE and --json may come before the command; put other flags after it)", err)
	}
	return fs, fs.Args(), nil
}

// applyGlobal sets the flags of a command's flag set fs that were given
// before the command, in global. Flags after the command, parsed later,
// override them.
func applyGlobal(global, fs *flag.FlagSet) {
	global.Visit(func(g *flag.Flag) {
		if f := fs.Lookup(g.Name); f != nil {
			f.Value.Set(g.Value.String()) // the same kind of flag: cannot fail
		}
	})
}

// adminFlags binds the flags of every command that talks to the admin
// socket.
func adminFlags(fs *flag.FlagSet, o *options) {
	configFlag(fs, o)
	jsonFlag(fs, o)
}

// parseInterleaved parses args with fs, allowing flags after positional
// arguments (as in "nodes rename 3 nas --json"), and returns the positional
// arguments. Arguments after "--" are all positional. Its errors are
// flag.ErrHelp or *usageError.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErrorf("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// durationValue is a positive duration flag that also accepts whole days,
// as in "30d".
type durationValue time.Duration

func (d *durationValue) String() string {
	if *d == 0 {
		return ""
	}
	return time.Duration(*d).String()
}

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		var n int64
		n, err = strconv.ParseInt(days, 10, 32)
		v = time.Duration(n) * 24 * time.Hour
	}
	switch {
	case err != nil:
		return errors.New("want a duration such as 90m, 12h or 30d")
	case v <= 0:
		return errors.New("must be positive")
	}
	*d = durationValue(v)
	return nil
}

// tagsValue is a comma-separated list of ACL tags. "tag:" is added to names
// without it.
type tagsValue []string

func (t *tagsValue) String() string { return strings.Join(*t, ",") }

func (t *tagsValue) Set(s string) error {
	var tags []string
	for _, tag := range strings.Split(s, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "" {
			continue
		}
		if !strings.HasPrefix(tag, "tag:") {
			tag = "tag:" + tag
		}
		if err := tailcfg.CheckTag(tag); err != nil {
			return fmt.Errorf("%q: %v", tag, err)
		}
		tags = append(tags, tag)
	}
	*t = tags
	return nil
}

// parseID parses the ID of a node or key (what) given on the command line.
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("invalid %s ID %q: want a positive number, as shown by \"homenet %ss list\"", what, s, what)
	}
	return id, nil
}

// parseNodeID parses a node ID given on the command line.
func parseNodeID(s string) (tailcfg.NodeID, error) {
	id, err := parseID("node", s)
	return tailcfg.NodeID(id), err
}

// parsePrefix parses a route given on the command line.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, usageErrorf("invalid prefix %q: want CIDR notation such as 192.168.1.0/24", s)
	}
	if err := control.CheckRoute(p); err != nil {
		return netip.Prefix{}, usageErrorf("%v", err)
	}
	return p, nil
}
