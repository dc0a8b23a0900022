package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"homenet/portmap"
)

// portList is a repeatable -port flag: PROTO:INTERNAL[:EXTERNAL].
type portList []portmap.Port

func (l *portList) String() string { return fmt.Sprint(*l) }

func (l *portList) Set(s string) error {
	f := strings.Split(s, ":")
	if len(f) < 2 || len(f) > 3 {
		return fmt.Errorf("port %q: want PROTO:INTERNAL[:EXTERNAL]", s)
	}
	p := portmap.Port{Proto: f[0], Description: "labtool " + s}
	for i, dst := range []*uint16{&p.Internal, &p.External}[:len(f)-1] {
		n, err := strconv.ParseUint(f[i+1], 10, 16)
		if err != nil {
			return fmt.Errorf("port %q: %v", s, err)
		}
		*dst = uint16(n)
	}
	*l = append(*l, p)
	return nil
}

// portmapRun keeps the given ports mapped on the router with a
// portmap.Mapper, writing its Status as JSON to -status whenever it
// changes, until SIGTERM or SIGINT; then it closes the Mapper (deleting
// the mappings), writes the final Status and exits.
func portmapRun(args []string) error {
	fs := flag.NewFlagSet("portmap", flag.ExitOnError)
	var ports portList
	fs.Var(&ports, "port", "PROTO:INTERNAL[:EXTERNAL] to map (repeatable)")
	gateway := fs.String("gateway", "", "router address (default: the default route's gateway)")
	lifetime := fs.Duration("lifetime", 0, "lease to ask for (0: the package default)")
	statusPath := fs.String("status", "", "file to keep the status JSON in")
	fs.Parse(args)
	if *statusPath == "" {
		return errors.New("-status is required")
	}
	cfg := portmap.Config{
		Ports:    ports,
		Lifetime: *lifetime,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnExternalIP: func(ip netip.Addr) {
			fmt.Println("external address:", ip)
		},
	}
	if *gateway != "" {
		gw, err := netip.ParseAddr(*gateway)
		if err != nil {
			return err
		}
		cfg.Gateway = gw
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	m, err := portmap.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	fmt.Println("mapper started")
	var last []byte
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sigs:
			err := m.Close()
			fmt.Println("mapper closed, err:", err)
			if werr := writeStatus(*statusPath, m.Status(), &last); werr != nil {
				return werr
			}
			return err
		case <-tick.C:
			if err := writeStatus(*statusPath, m.Status(), &last); err != nil {
				return err
			}
		}
	}
}

// writeStatus replaces the file at path with st as JSON, atomically, if
// it differs from *last.
func writeStatus(path string, st portmap.Status, last *[]byte) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if string(b) == string(*last) {
		return nil
	}
	*last = b
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
