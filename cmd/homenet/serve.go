package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"homenet/appliance"
)

const serveLong = `Run the coordination server, the DERP relay and (when enabled) the
subnet-router agent until interrupted (SIGINT or SIGTERM). Without --config
it runs on built-in defaults and prints what it chose. Logs go to stderr.`

// serveFlags binds the flags of serve.
func serveFlags(fs *flag.FlagSet, o *options) {
	configFlag(fs, o)
	fs.BoolVar(&o.json, "json", false, "log JSON lines instead of text")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log messages at `LEVEL` and above: debug, info, warn or error")
}

// runServe runs the appliance until ctx is done or a signal arrives.
func runServe(ctx context.Context, inv *invocation) error {
	cfg, defaulted, err := inv.config()
	if err != nil {
		return err
	}
	if defaulted {
		if err := printDefaults(inv, &cfg); err != nil {
			return err
		}
	}
	hopts := &slog.HandlerOptions{Level: inv.opts.logLevel}
	var h slog.Handler = slog.NewTextHandler(inv.stderr, hopts)
	if inv.opts.json {
		h = slog.NewJSONHandler(inv.stderr, hopts)
	}

	logger := slog.New(h)
	appliance.LimitMemory(logger)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills at once.
	context.AfterFunc(ctx, stop)

	err = appliance.Serve(ctx, cfg, logger)
	if err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// printDefaults tells the user, on stderr, the defaults serve runs with.
func printDefaults(inv *invocation, cfg *appliance.Config) error {
	prefix, err := cfg.Prefix4()
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.stderr, "homenet: no --config given; using built-in defaults:\n")
	tw := tabwriter.NewWriter(inv.stderr, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  server URL\t%s (guessed from this host's address)\n", cfg.Server.URL)
	fmt.Fprintf(tw, "  listen\t%s\n", cfg.Server.Listen)
	fmt.Fprintf(tw, "  state dir\t%s\n", cfg.StateDir)
	fmt.Fprintf(tw, "  prefix\t%s\n", prefix)
	if cfg.Relay.Enabled {
		fmt.Fprintf(tw, "  relay\t%s (STUN %s)\n", cfg.Relay.Listen, orNone(cfg.Relay.STUNListen))
	}
	tw.Flush()
	fmt.Fprintf(inv.stderr, "Write a config file (see docs/config.md) and pass --config to change them.\n")
	return nil
}

// orNone returns s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
