package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"homenet/appliance"
)

const serveLong = `Run the coordination server, the DERP relay and (when enabled) the
subnet-router agent until interrupted (SIGINT or SIGTERM). Without --config
it reads the platform's config file (such as /etc/homenet/homenet.toml) if
there is one, else runs on built-in defaults and prints what it chose. Logs
go to stderr; with --json, every line is JSON, a failure included.`

// serveFlags binds the flags of serve.
func serveFlags(fs *flag.FlagSet, o *options) {
	configFlag(fs, o)
	fs.BoolVar(&o.json, "json", false, "log JSON lines instead of text")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log messages at `LEVEL` and above: debug, info, warn or error")
}

// runServe runs the appliance until ctx is done or a signal arrives. With
// --json, it reports a failure as a JSON log line too.
func runServe(ctx context.Context, inv *invocation) error {
	logger := newServeLogger(inv.stderr, &inv.opts)
	defer logStdLogTo(logger.Handler())()
	err := serve(ctx, inv, logger)
	if err != nil && inv.opts.json {
		logger.Error("homenet: failed", "err", err)
		return &reportedError{err}
	}
	return err
}

// serve reads the configuration, says where from, and runs the appliance.
func serve(ctx context.Context, inv *invocation, logger *slog.Logger) error {
	cfg, file, err := inv.config()
	if err != nil {
		return err
	}
	if file != "" {
		logger.Info("homenet: using config", "file", file)
	} else {
		kept, path, err := appliance.KeepGuessedURL(&cfg)
		if err != nil {
			return err
		}
		if err := printDefaults(inv, logger, &cfg, kept, path); err != nil {
			return err
		}
	}
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

// newServeLogger returns serve's logger, writing text, or JSON lines with
// --json, to w.
func newServeLogger(w io.Writer, o *options) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	if o.json {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// logStdLogTo sends what packages write with the standard log package
// (net/http's servers without an ErrorLog, tailscale.com's envknob) to h,
// as Info records, so that with --json every line is JSON. It returns a
// func that restores the standard logger.
func logStdLogTo(h slog.Handler) (restore func()) {
	w, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(slog.NewLogLogger(h, slog.LevelInfo).Writer())
	log.SetFlags(0)
	log.SetPrefix("")
	return func() {
		log.SetOutput(w)
		log.SetFlags(flags)
		log.SetPrefix(prefix)
	}
}

// printDefaults says that serve runs on the built-in defaults, and which:
// as a table on stderr, or with --json as a log line (the "homenet:
// serving" line that follows has the rest).
func printDefaults(inv *invocation, logger *slog.Logger, cfg *appliance.Config, kept bool, urlFile string) error {
	prefix, err := cfg.Prefix4()
	if err != nil {
		return err
	}
	path := platformConfigPath()
	if inv.opts.json {
		logger.Info("homenet: no config file; using built-in defaults", "looked_for", path,
			"url", cfg.Server.URL, "url_guessed", !kept, "url_kept_in", urlFile, "fix", "run homenet init, or write the file (see docs/config.md)")
		return nil
	}
	fmt.Fprintf(inv.stderr, "homenet: no --config given and no %s; using built-in defaults:\n", path)
	tw := tabwriter.NewWriter(inv.stderr, 0, 8, 2, ' ', 0)
	if kept {
		fmt.Fprintf(tw, "  server URL\t%s (guessed at the first start, kept in %s)\n", cfg.Server.URL, urlFile)
	} else {
		fmt.Fprintf(tw, "  server URL\t%s (guessed from this host's address; kept in %s from now on)\n", cfg.Server.URL, urlFile)
	}
	fmt.Fprintf(tw, "  listen\t%s\n", cfg.Server.Listen)
	fmt.Fprintf(tw, "  state dir\t%s\n", cfg.StateDir)
	fmt.Fprintf(tw, "  prefix\t%s\n", prefix)
	if cfg.Relay.Enabled {
		fmt.Fprintf(tw, "  relay\t%s (STUN %s)\n", cfg.Relay.Listen, orNone(cfg.Relay.STUNListen))
	} else {
		fmt.Fprintf(tw, "  relay\toff\n")
	}
	if cfg.Gateway.Enabled {
		fmt.Fprintf(tw, "  gateway\ton\n")
	} else {
		fmt.Fprintf(tw, "  gateway\toff (no LAN routes, no exit node)\n")
	}
	fmt.Fprintf(tw, "  admin password\tin %s\n", cfg.AdminPasswordPath())
	tw.Flush()
	fmt.Fprintf(inv.stderr, "Run homenet init, or write %s (see docs/config.md), to change them.\n", path)
	return nil
}

// orNone returns s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
