package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"homenet/appliance"
	"homenet/control"
	"homenet/control/store"

	"tailscale.com/tailcfg"
)

// The bench binary doubles as a helper, run as "bench helper NAME …" in
// lab namespaces and as a child on loopback:
//
//	helper serve -config FILE           appliance.Serve, as `homenet serve`, with HOMENET_PPROF
//	helper control -config FILE -derpmap FILE
//	                                    homenet's control server alone, handing out the given DERP map
//	helper fetch -timeout D URL FILE    HTTP GET into FILE
//	helper probe URL                    any HTTP response from URL (https: certificate not checked)
//	helper startup -url U[,U…] [-hold D] -- CMD…
//	                                    start CMD, time until every URL answers, RSS after D, stop it
//
// "serve" exists because `homenet serve` has no profiling hook yet: it is
// the same code (appliance.Serve) in a binary that also serves
// net/http/pprof on the loopback address in $HOMENET_PPROF, the hook
// proposed for homenet itself. "control" stands in for a stock control
// server, which does not exist here (no headscale), when the relay under
// test is a stock derper: homenet's control has no config key for an
// external DERP map.

// pprofEnv names the loopback address a profiled homenet serves pprof on.
const pprofEnv = "HOMENET_PPROF"

func helperMain(args []string) error {
	if len(args) == 0 {
		return errors.New("helper: want a command")
	}
	switch args[0] {
	case "serve":
		return helperServe(args[1:], false)
	case "control":
		return helperServe(args[1:], true)
	case "fetch":
		return helperFetch(args[1:])
	case "startup":
		return helperStartup(args[1:])
	case "probe":
		return helperProbe(args[1:])
	}
	return fmt.Errorf("helper: unknown command %q", args[0])
}

func helperServe(args []string, controlOnly bool) error {
	fs := flag.NewFlagSet("helper serve", flag.ContinueOnError)
	config := fs.String("config", "", "homenet config file")
	derpMap := fs.String("derpmap", "", "DERP map JSON (control only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := appliance.LoadConfig(*config)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr := os.Getenv(pprofEnv); addr != "" {
		if err := servePprof(ctx, addr); err != nil {
			return err
		}
	}
	if !controlOnly {
		err = appliance.Serve(ctx, cfg, logger)
	} else {
		err = serveControlOnly(ctx, cfg, *derpMap, logger)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// servePprof serves net/http/pprof on addr, which must be a loopback
// address: this is the hook proposed for homenet serve.
func servePprof(ctx context.Context, addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("%s=%q: want a loopback ip:port", pprofEnv, addr)
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	context.AfterFunc(ctx, func() { hs.Close() })
	return nil
}

// serveControlOnly runs homenet's control server as appliance.Serve does,
// without the relay, handing out the DERP map in derpMapFile.
func serveControlOnly(ctx context.Context, cfg appliance.Config, derpMapFile string, logger *slog.Logger) error {
	b, err := os.ReadFile(derpMapFile)
	if err != nil {
		return err
	}
	dm := new(tailcfg.DERPMap)
	if err := json.Unmarshal(b, dm); err != nil {
		return fmt.Errorf("%s: %w", derpMapFile, err)
	}
	prefix4, _ := cfg.Prefix4()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	db, err := store.Open(ctx, filepath.Join(cfg.StateDir, "homenet.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := control.New(ctx, control.Config{
		ServerURL:       cfg.Server.URL,
		Prefix4:         prefix4,
		Store:           db,
		AutoApproveTags: []string{appliance.GatewayTag},
		Version:         "bench",
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.SetDERPMap(dm)
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Server.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	adminLn, err := control.ListenAdmin(cfg.AdminSocket())
	if err != nil {
		return err
	}
	go control.ServeAdmin(ctx, adminLn, srv, logger)
	logger.Info("bench control: serving", "listen", cfg.Server.Listen, "derp_regions", len(dm.Regions))
	<-ctx.Done()
	return nil
}

func helperFetch(args []string) error {
	fs := flag.NewFlagSet("helper fetch", flag.ContinueOnError)
	timeout := fs.Duration("timeout", time.Minute, "request timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("helper fetch: want URL FILE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	return fetchProfile(ctx, fs.Arg(0), fs.Arg(1))
}

// helperStartup starts a command, polls every URL every 2 ms until each
// gives an HTTP response (any status: the listener serves), prints the
// time since the start and the RSS after -hold as JSON, and stops the command with SIGTERM. https
// URLs are polled without verifying the certificate: only the handshake
// and a response matter.
func helperStartup(args []string) error {
	fs := flag.NewFlagSet("helper startup", flag.ContinueOnError)
	urls := fs.String("url", "", "comma-separated URLs that must answer")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	hold := fs.Duration("hold", 0, "after serving, wait this long before reading the RSS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *urls == "" {
		return errors.New("helper startup: want -url and a command")
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}
	client := &http.Client{Transport: tr, Timeout: time.Second}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	pending := strings.Split(*urls, ",")
	for len(pending) > 0 {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("%s exited before serving: %v", fs.Arg(0), err)
		default:
		}
		if time.Since(start) > *timeout {
			return fmt.Errorf("not serving %v after %v", pending, *timeout)
		}
		res, err := client.Get(pending[0])
		if err != nil {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		res.Body.Close()
		pending = pending[1:]
	}
	took := time.Since(start)
	time.Sleep(*hold)
	rss, _ := rss(cmd.Process.Pid)
	anon, _ := anonRSS(cmd.Process.Pid)
	return json.NewEncoder(os.Stdout).Encode(map[string]int64{"ns": int64(took), "rss": rss, "anon": anon})
}

// helperProbe succeeds if url gives any HTTP response; for https it does
// not check the certificate (a relay's self-signed one).
func helperProbe(args []string) error {
	if len(args) != 1 {
		return errors.New("helper probe: want URL")
	}
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	res, err := c.Get(args[0])
	if err != nil {
		return err
	}
	return res.Body.Close()
}
