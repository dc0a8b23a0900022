package appliance

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"homenet/control"
	"homenet/control/store"
	"homenet/relay"

	"tailscale.com/types/key"
)

// Version is the homenet version, set at link time.
var Version = "dev"

// Serve runs control and relay (and, when enabled, the gateway agent) until
// ctx is done; or, when gateway.control_url is set, the gateway agent
// alone. It is what `homenet serve` runs.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Joins() {
		return serveJoined(ctx, cfg, logger)
	}
	// Everything started below ends with Serve, also on an early error:
	// the address watch and dynamic DNS run before the other parts.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, w := range serveWarnings(&cfg) {
		logger.Warn("homenet: "+w.Message, "fix", w.Fix, "code", w.Code)
	}
	prefix4, _ := cfg.Prefix4()
	keyExpiry, _ := cfg.NodeKeyExpiry()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	db, err := store.Open(ctx, filepath.Join(cfg.StateDir, "homenet.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	password, err := adminPassword(cfg)
	if err != nil {
		return err
	}

	// The LAN is detected before control starts: its names go to
	// clients as split DNS.
	var lan LAN
	var lanDNS LANDNS
	if cfg.Gateway.Enabled {
		if lan, err = cfg.GatewayLAN(); err != nil {
			return err
		}
		lanDNS = cfg.lanDNS(lan)
		logger.Info("dns: home LAN names", "domains", lanDNS.Domains, "resolver", lanDNS.Resolver, "why", lanDNS.Why)
	}
	clientDNS, err := cfg.clientDNS(lan, lanDNS)
	if err != nil {
		logger.Warn("dns: no reverse lookups for some LAN routes", "err", err)
	}

	dnsProvider, ddnsUpdater, err := newDDNS(cfg, logger)
	if err != nil {
		return err
	}
	watch := startNetWatch(ctx, ddnsUpdater, func(r Reachability) bool { return len(portmapPorts(cfg, r)) > 0 }, logger)

	// The relay asks control who may connect, and control tells the relay
	// whom to drop; both are plain funcs so neither package knows the other.
	var rl *relay.Relay
	// Filled below as the parts start; `homenet status` shows them.
	statusExtra := map[string]func() any{
		"reachability": func() any { return watch.Reachability() },
	}
	// Their metrics, served at /metrics on the web admin listener.
	vars := newMetrics()
	if ddnsUpdater != nil {
		statusExtra["ddns"] = func() any { return ddnsUpdater.Status() }
		vars.Set(metricsDDNS, ddnsMetrics(ddnsUpdater.Status))
	}
	srv, err := control.New(ctx, control.Config{
		ServerURL:       cfg.Server.URL,
		Prefix4:         prefix4,
		Store:           db,
		AdminPassword:   password,
		NodeKeyExpiry:   keyExpiry,
		AutoApproveTags: []string{GatewayTag},
		DNS:             clientDNS,
		OnRevoke: func(k key.NodePublic) {
			if rl != nil {
				rl.Disconnect(k)
			}
		},
		StatusExtra: func() map[string]any {
			m := make(map[string]any, len(statusExtra))
			for k, f := range statusExtra {
				m[k] = f()
			}
			return m
		},
		Version: Version,
		Logger:  logger,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	vars.Set(metricsControl, srv.ExpVar())

	handler := srv.Handler()
	// The plain listener is bound before the relay starts: it answers the
	// ACME HTTP-01 challenges of an IP certificate, which start at once.
	ctlLn, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	defer ctlLn.Close()
	plainHandler := handler
	if cfg.Relay.Enabled {
		rl, err = relay.Start(ctx, relay.Config{
			Listen:        cfg.Relay.Listen,
			STUNListen:    cfg.Relay.STUNListen,
			Hostname:      cfg.RelayHostname(),
			StateDir:      filepath.Join(cfg.StateDir, "relay"),
			ACMEDirectory: cfg.Relay.ACMEDirectory,
			ACMEEmail:     cfg.Relay.ACMEEmail,
			// Clients of an https:// server, and of an http:// one on a
			// public address after a failed dial, speak Noise over TLS on
			// port 443: the relay's TLS listener serves control too.
			Handler:           handler,
			DNSProvider:       dns01Provider(cfg, dnsProvider),
			HTTPChallengeAddr: ipCertChallengeAddr(cfg),
		}, srv.Admit, logger)
		if err != nil {
			return err
		}
		defer rl.Close()
		plainHandler = rl.HTTPChallengeHandler(handler)
		followDERPMap(srv, rl.Region(), cfg, watch)
		statusExtra["relay"] = func() any { return json.RawMessage(rl.ExpVar().String()) }
		statusExtra["certificate"] = func() any { return rl.CertStatus() }
		vars.Set(metricsRelay, rl.ExpVar())
		vars.Set(metricsCertificate, certMetrics(rl.CertStatus))
	}

	var fwd forwarded
	pm := startPortmap(ctx, cfg, watch.Reachability(), func(ip netip.Addr) {
		watch.setRouterIPv4(ip)
		fwd.update()
	}, logger)
	if pm != nil {
		defer pm.Close()
		fwd.pm.Store(pm)
		statusExtra["upnp"] = func() any { return pm.Status() }
		vars.Set(metricsPortmap, portmapMetrics(pm.Status))
	}

	errc := make(chan error, 2)
	httpSrv := serveHTTP(ctlLn, plainHandler, errc)
	defer httpSrv.Close()
	webSrv, err := startWebAdmin(ctx, cfg, srv, metricsHandler(vars), errc, logger)
	if err != nil {
		return err
	}
	if webSrv != nil {
		defer webSrv.Close()
	}
	adminLn, err := control.ListenAdmin(cfg.AdminSocket())
	if err != nil {
		return err
	}
	go func() {
		if err := control.ServeAdmin(ctx, adminLn, srv, logger); err != nil {
			errc <- fmt.Errorf("admin socket: %w", err)
		}
	}()

	// After the listeners: a second homenet fails on its ports before the
	// agent's start-up cleanup could touch the first one's rules.
	var gwDone <-chan struct{}
	if cfg.Gateway.Enabled {
		gw, err := startGateway(ctx, cfg, lan, localGatewayControl(cfg, srv), prefix4, logger)
		if err != nil {
			return err
		}
		defer gw.Close()
		fwd.gw.Store(gw)
		fwd.update()
		gwDone = gw.Done()
		statusExtra["gateway"] = func() any { return gw.Status() }
		statusExtra["gateway_lan"] = func() any { return lan }
		statusExtra["lan_dns"] = func() any { return lanDNS }
		statusExtra["fw4"] = func() any { return checkFW4(cfg.Gateway.ExitNode) }
		logFW4(cfg, logger)
		vars.Set(metricsGateway, gw.ExpVar())
	}

	if !cfg.Gateway.Enabled {
		logger.Info("homenet: gateway off (gateway.enabled = false): phones reach each other, but not the LAN, and have no exit node")
	}
	logger.Info("homenet: serving", "url", cfg.Server.URL, "listen", cfg.Server.Listen, "reachability", watch.Reachability().Case,
		"relay", cfg.Relay.Enabled, "gateway", cfg.Gateway.Enabled, "prefix4", prefix4, "state_dir", cfg.StateDir,
		"admin_socket", cfg.AdminSocket(), "admin_password_file", cfg.AdminPasswordPath())
	select {
	case <-ctx.Done():
		logger.Info("homenet: shutting down")
		return nil
	case err := <-errc:
		return err
	case <-gwDone:
		return errors.New("gateway agent stopped unexpectedly")
	}
}

// serveWarnings are what the config alone shows about the server URL, for
// Serve to log at start: urlSchemeWarnings, and a loopback or private
// address that phones away from home cannot use (init, which sees the
// network, says more in reachabilityWarnings).
func serveWarnings(cfg *Config) []Warning {
	ws := urlSchemeWarnings(cfg)
	switch _, class := serverURLClass(cfg.Server.URL); class {
	case addrLoopback, addrPrivate, addrLinkLocal, addrCGNAT:
		kind, who := class, "only on your home network"
		switch class {
		case addrLoopback:
			who = "only on this host"
		case addrCGNAT:
			kind, who = "carrier-grade NAT (100.64.0.0/10)", "only behind that NAT"
		}
		ws = append(ws, Warning{Code: "private-url",
			Message: fmt.Sprintf("The server URL %s names a %s address: phones can use it %s, not on the road.", cfg.Server.URL, kind, who),
			Fix:     "Set server.url to a public address or DNS name that reaches this host (see \"Phones on the internet\" in docs/config.md), or run homenet init, which says what your network needs."})
	}
	return ws
}

// localControlURL is how the gateway agent reaches the control server in
// the same process: over loopback unless server.listen names an address.
func localControlURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// LimitMemory gives the Go runtime a soft memory limit from the machine's
// RAM (memoryLimit), unless GOMEMLIMIT is set, and logs the limit. Without
// one, the heap may grow to twice its live size: after a few seconds of
// traffic through the gateway, RSS was 350 to 650 MiB in the bench lab,
// which a router with 128 or 256 MiB of RAM cannot give. Near the limit, Go collects
// garbage harder instead (at most half the CPU) and returns memory to the
// kernel. homenet serve calls it, before anything allocates much.
func LimitMemory(logger *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("homenet: soft memory limit from GOMEMLIMIT", "limit", v)
		return
	}
	ram, err := totalRAM()
	if err != nil {
		logger.Warn("homenet: no soft memory limit: reading the RAM size", "err", err)
		return
	}
	limit := memoryLimit(ram)
	debug.SetMemoryLimit(limit)
	logger.Info("homenet: soft memory limit from the RAM size (GOMEMLIMIT overrides)",
		"limit", fmt.Sprintf("%dMiB", limit>>20), "ram", fmt.Sprintf("%dMiB", ram>>20))
}

// totalRAM returns MemTotal from /proc/meminfo, in bytes.
func totalRAM() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: MemTotal %q: %w", strings.TrimSpace(v), err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemTotal")
}

// minMemoryLimit is the least soft memory limit LimitMemory sets. With the
// gateway on, homenet keeps about 45 MiB of heap even idle, most of it
// wireguard-go's receive buffers (128 of 64 KiB per socket), which count
// against the limit although they are never touched. Below that, Go collects
// garbage back to back even when idle: with 32 MiB, ten times a second.
const minMemoryLimit = 64 << 20

// memoryLimit returns the soft memory limit for a machine with ram bytes of
// RAM: a quarter of it, leaving the rest to the kernel, the page cache
// (homenet's own binary pages, 20 MiB of its idle RSS, are not counted) and
// the router's other services; but at least minMemoryLimit, or half the RAM
// if that is less.
func memoryLimit(ram uint64) int64 {
	return int64(max(ram/4, min(minMemoryLimit, ram/2)))
}

// GatewayTag marks the gateway's own agent, whose routes are approved
// without asking.
const GatewayTag = "tag:gateway"

func serveHTTP(ln net.Listener, h http.Handler, errc chan<- error) *http.Server {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("control server: %w", err)
		}
	}()
	return hs
}

// adminPassword reads the browser-approval password, creating a random one
// on first start.
func adminPassword(cfg Config) (string, error) {
	path := cfg.AdminPasswordPath()
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) || cfg.Server.AdminPasswordFile != "" {
		return "", fmt.Errorf("reading admin password: %w", err)
	}
	raw := make([]byte, 10)
	rand.Read(raw)
	pw := strings.ToLower(base32.StdEncoding.EncodeToString(raw))
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving admin password: %w", err)
	}
	return pw, nil
}
