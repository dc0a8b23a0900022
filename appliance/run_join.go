package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"homenet/control"
	"homenet/portmap"
	"homenet/subnet"

	"tailscale.com/types/key"
)

// serveJoined runs the gateway agent alone, joined to the control server
// at gateway.control_url, until ctx is done. It is Serve for a home box
// whose control server and relay run elsewhere (homenet on a VPS, or
// headscale).
func serveJoined(ctx context.Context, cfg Config, logger *slog.Logger) error {
	prefix4, _ := cfg.Prefix4()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	// Bound before the agent starts: a second homenet fails here, before
	// its start-up cleanup could touch the first one's rules.
	adminLn, err := control.ListenAdmin(cfg.AdminSocket())
	if err != nil {
		return err
	}
	defer adminLn.Close()
	lan, err := cfg.GatewayLAN()
	if err != nil {
		return err
	}
	gw, err := startGateway(ctx, cfg, lan, gatewayControl{
		url:     cfg.Gateway.ControlURL,
		authKey: authKeyFromFile(cfg.Gateway.ControlURL, cfg.Gateway.AuthKeyFile),
	}, prefix4, logger)
	if err != nil {
		return err
	}
	defer gw.Close()
	logFW4(cfg, logger)

	// Phones reach the agent directly through a forwarded WireGuard port;
	// without one, through hole punching or the relay.
	var fwd forwarded
	fwd.gw.Store(gw)
	var pm *portmap.Mapper
	if r, err := DetectReachability(netip.Addr{}); err == nil {
		pm = startPortmap(ctx, cfg, r, func(netip.Addr) { fwd.update() }, logger)
	}
	if pm != nil {
		defer pm.Close()
		fwd.pm.Store(pm)
		fwd.update()
	}

	started := time.Now()
	admin := control.JoinedAdmin{URL: cfg.Gateway.ControlURL, StatusFunc: func(context.Context) (control.Status, error) {
		return control.Status{
			Version:   Version,
			ServerURL: cfg.Gateway.ControlURL,
			Prefix4:   prefix4,
			Prefix6:   control.Prefix6,
			Started:   started,
			Joined:    true,
			Extra:     joinedExtra(gw, lan, pm, cfg.Gateway.ExitNode),
		}, nil
	}}
	errc := make(chan error, 1)
	go func() {
		if err := control.ServeAdmin(ctx, adminLn, admin, logger); err != nil {
			errc <- fmt.Errorf("admin socket: %w", err)
		}
	}()
	logger.Info("homenet: gateway agent joining a control server elsewhere", "control_url", cfg.Gateway.ControlURL,
		"admin_socket", cfg.AdminSocket())
	select {
	case <-ctx.Done():
		logger.Info("homenet: shutting down")
		return nil
	case err := <-errc:
		return err
	case <-gw.Done():
		return errors.New("gateway agent stopped unexpectedly")
	}
}

// joinedExtra is the status of a joined host's parts.
func joinedExtra(gw *subnet.Agent, lan LAN, pm *portmap.Mapper, exitNode bool) map[string]any {
	m := map[string]any{"gateway": gw.Status(), "gateway_lan": lan, "fw4": checkFW4(exitNode)}
	if pm != nil {
		m["upnp"] = pm.Status()
	}
	return m
}

// authKeyFromFile returns the agent's AuthKey func for gateway.auth_key_file.
// The file is read each time the agent registers, so a key put there after
// start is used on the next try.
func authKeyFromFile(controlURL, path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		create := "create one on the control server (homenet keys create --gateway)"
		if path == "" {
			return "", fmt.Errorf("registering with %s needs a pre-auth key, and gateway.auth_key_file is not set: %s and run homenet init --join %s --auth-key KEY", controlURL, create, controlURL)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the pre-auth key for %s: %w (%s)", controlURL, err, create)
		}
		k := strings.TrimSpace(string(b))
		if err := CheckAuthKey(k); err != nil {
			return "", fmt.Errorf("gateway.auth_key_file %s: %w", path, err)
		}
		return k, nil
	}
}

// CheckAuthKey checks that k looks like a pre-auth key: one word of
// printable ASCII. Servers differ in format (tskey-auth-…, headscale's hex
// or hskey-auth-…), so the server has the last word.
func CheckAuthKey(k string) error {
	if k == "" {
		return errors.New("the pre-auth key is empty")
	}
	for _, r := range k {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("the pre-auth key has a space or a character outside printable ASCII (%q)", r)
		}
	}
	return nil
}

// gatewayControl is the control server the gateway agent logs in to and
// how it gets a key.
type gatewayControl struct {
	url       string
	authKey   func(context.Context) (string, error)
	nodeKnown func(key.NodePublic) bool
	tags      []string // asked for at registration
}

// localGatewayControl is the control server in this process: a fresh
// one-off key tagged GatewayTag for each registration.
func localGatewayControl(cfg Config, srv *control.Server) gatewayControl {
	return gatewayControl{
		url: localControlURL(cfg.Server.Listen),
		authKey: func(ctx context.Context) (string, error) {
			_, k, err := srv.CreateAuthKey(ctx, control.AuthKeyOptions{Tags: []string{GatewayTag}, Expiry: 10 * time.Minute})
			return k, err
		},
		nodeKnown: srv.Admit,
		tags:      []string{GatewayTag},
	}
}

// startGateway starts the subnet-router and exit-node agent.
func startGateway(ctx context.Context, cfg Config, lan LAN, ctl gatewayControl, prefix4 netip.Prefix, logger *slog.Logger) (*subnet.Agent, error) {
	for _, w := range lan.Why {
		logger.Info("gateway: " + w)
	}
	gw, err := subnet.Start(ctx, subnet.Config{
		ControlURL:      ctl.url,
		AuthKey:         ctl.authKey,
		Tags:            ctl.tags,
		StateDir:        filepath.Join(cfg.StateDir, "gateway"),
		Hostname:        cfg.Gateway.Name,
		Routes:          lan.Routes,
		ExitNode:        cfg.Gateway.ExitNode,
		TailnetPrefixes: []netip.Prefix{prefix4, control.Prefix6},
		Firewall:        cfg.Gateway.Firewall,
		MasqueradeLAN:   cfg.Gateway.Masquerade,
		WANInterface:    lan.WAN,
		NodeKnown:       ctl.nodeKnown,
		Logger:          logger,
	})
	return gw, err
}
