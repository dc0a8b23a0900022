//go:build linux

package subnet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnlocal"
	"tailscale.com/ipn/ipnserver"
	"tailscale.com/ipn/store"
	"tailscale.com/net/dns"
	"tailscale.com/net/netmon"
	"tailscale.com/net/netns"
	"tailscale.com/net/tsaddr"
	"tailscale.com/net/tsdial"
	"tailscale.com/net/tstun"
	"tailscale.com/safesocket"
	"tailscale.com/tsd"
	"tailscale.com/types/logger"
	"tailscale.com/types/logid"
	"tailscale.com/types/preftype"
	"tailscale.com/types/views"
	"tailscale.com/wgengine"

	"homenet/firewall"
)

// Agent is a running gateway agent. Start one with Start; Close removes
// everything it added.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	logf   logger.Logf
	routes []netip.Prefix // advertised: LAN + exit routes
	sys    *tsd.System
	lb     *ipnlocal.LocalBackend
	rtr    *Router
	fw     firewall.Firewall
	wan    string
	sysctl sysctls
	setSys []string // sysctls set, for Status
	mem    Memory   // engine settings for the memory limit

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	relogin chan struct{} // the backend says NeedsLogin
	// forceLogin: control does not know our node key, but the backend
	// cannot tell (it only gets errors)
	forceLogin chan struct{}
	done       chan struct{} // closed when the engine stops
	closeMu    sync.Mutex
	closed     bool
	closeErr   error
	socket     string // LocalAPI socket, "" if none

	mu       sync.Mutex
	state    ipn.State
	addrs    []netip.Prefix
	approved []netip.Prefix
	lastErr  string
	// prefixErr: control's addresses lie outside Config.TailnetPrefixes
	prefixErr string
	// controlErr is the control client's last error, shown while the
	// agent is not connected.
	controlErr string
}

// Run runs the agent until ctx is done, then removes everything it added.
func Run(ctx context.Context, cfg Config) error {
	a, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return a.Close()
}

// Start removes what a dead run left behind, turns on forwarding, brings up
// the engine on a kernel TUN with our router and logs in to control. It
// returns once the engine runs; login continues in the background (see
// Status). ctx bounds the start only (minting a key); the agent runs until
// Close. On error everything is undone.
func Start(ctx context.Context, cfg Config) (_ *Agent, retErr error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:        cfg,
		log:        cfg.Logger.With("part", "gateway"),
		sysctl:     sysctls{root: "/proc/sys", saved: filepath.Join(cfg.StateDir, sysctlFile)},
		relogin:    make(chan struct{}, 1),
		forceLogin: make(chan struct{}, 1),
		done:       make(chan struct{}),
		state:      ipn.NoState,
	}
	a.logf = engineLogf(cfg.Logger, a.noteEngineLine)
	a.routes = slices.Clone(cfg.Routes)
	if cfg.ExitNode {
		a.routes = append(a.routes, tsaddr.AllIPv4(), tsaddr.AllIPv6())
	}

	if err := Cleanup(cfg.StateDir, cfg.Logger); err != nil {
		a.log.Warn("gateway: cleaning up after an earlier run", "err", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	a.wan = cfg.WANInterface
	if a.wan == "" {
		a.wan, _ = netmon.DefaultRouteInterface()
	}

	defer func() {
		if retErr != nil {
			a.Close()
		}
	}()
	// Before anything touches netfilter: the tables there are now must
	// still be there after Close, and only those.
	if err := recordTables(cfg.StateDir); err != nil {
		a.log.Warn("gateway: netfilter tables that iptables-nft creates for our rules will stay after stop", "err", err)
	}
	var err error
	a.fw, err = firewall.New(cfg.Firewall)
	if err != nil {
		return nil, fmt.Errorf("gateway: netfilter: %w", err)
	}

	v6 := slices.ContainsFunc(a.routes, func(p netip.Prefix) bool { return p.Addr().Is6() })
	a.setSys, err = a.sysctl.enableForwarding(v6 && ipv6Usable(""), a.wan)
	if err != nil {
		return nil, fmt.Errorf("gateway: enabling forwarding: %w", err)
	}
	if len(a.setSys) > 0 {
		a.log.Info("gateway: forwarding on", "set", a.setSys, "restore_file", a.sysctl.saved)
	}

	if a.mem, err = currentMemory(); err != nil {
		a.log.Warn("gateway: "+err.Error(), "using", a.mem)
	}
	if err := a.startEngine(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	a.fitMemory()
	if err := a.login(ctx, true); err != nil {
		// A missing or refused key must not stop the agent: a restart
		// would only redo the netfilter rules. loginLoop tries again.
		a.log.Warn("gateway: registering", "url", cfg.ControlURL, "err", err)
		a.setError(err.Error())
		a.forceLogin <- struct{}{}
	}
	// From here on the agent lives until Close, whatever ctx does.
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(5)
	go a.keepFitting(runCtx)
	go a.watch(runCtx)
	go a.loginLoop(runCtx)
	go a.watchEngine(runCtx)
	go a.checkKnown(runCtx)
	a.serveLocalAPI(runCtx)
	a.log.Info("gateway: engine up", "tun", cfg.Tun, "advertise", a.routes, "netfilter", a.fw.Name(),
		"wan", a.wan, "masquerade", cfg.MasqueradeLAN, "table", Table, "rule_prefs", RulePrefs, "localapi", a.socket,
		"udp_receive_buffer", a.mem.UDPReceiveBuffer, "tun_batch", a.mem.TUNBatch)
	return a, nil
}

// Done is closed when the engine has stopped: after Close, or on its own
// (a fatal engine error, or `tailscale debug shutdown` on the LocalAPI
// socket), in which case the gateway no longer serves and homenet should
// stop or restart it.
func (a *Agent) Done() <-chan struct{} { return a.done }

func (a *Agent) watchEngine(ctx context.Context) {
	defer a.wg.Done()
	defer close(a.done)
	select {
	case <-a.sys.Engine.Get().Done():
		if ctx.Err() == nil {
			a.log.Error("gateway: the engine stopped on its own; the gateway no longer serves")
		}
	case <-ctx.Done():
	}
}

// LocalAPISocket is the unix socket, in Config.StateDir, where the agent
// serves tailscaled's LocalAPI, so that the stock CLI works against it:
// tailscale --socket=STATEDIR/tailscaled.sock status (or ping, netcheck).
const LocalAPISocket = "tailscaled.sock"

// serveLocalAPI serves the LocalAPI on a socket in the state dir (mode
// 0700, so root only), for debugging with the tailscale CLI. A failure
// only costs the socket.
func (a *Agent) serveLocalAPI(ctx context.Context) {
	path := filepath.Join(a.cfg.StateDir, LocalAPISocket)
	if len(path) >= 104 {
		a.log.Warn("gateway: no LocalAPI socket: path too long for a unix socket", "path", path)
		return
	}
	ln, err := safesocket.Listen(path)
	if err != nil {
		a.log.Warn("gateway: no LocalAPI socket", "err", err)
		return
	}
	a.sys.SocketPath = path
	srv := ipnserver.New(a.logf, logid.PublicID{}, a.sys.Bus.Get(), a.sys.NetMon.Get())
	srv.SetLocalBackend(a.lb)
	a.socket = path
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		srv.Run(ctx, ln) // shuts the backend down when it returns
		os.Remove(path)
	}()
}

func (c *Config) fill() error {
	if c.ControlURL == "" {
		return errors.New("gateway: no control URL")
	}
	if c.AuthKey == nil {
		return errors.New("gateway: no AuthKey func")
	}
	if c.StateDir == "" {
		return errors.New("gateway: no state dir")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ListenPort == 0 {
		c.ListenPort = DefaultListenPort
	}
	if c.Tun == "" {
		c.Tun = DefaultTun
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	for _, p := range c.Routes {
		if !p.IsValid() || p.Bits() == 0 {
			return fmt.Errorf("gateway: bad LAN route %v", p)
		}
	}
	return nil
}

// engineLogf sends the engine's log lines to l at Debug level, rate
// limited like tailscaled's. note sees every line first.
func engineLogf(l *slog.Logger, note logger.Logf) logger.Logf {
	ctx := context.Background()
	l = l.With("part", "gateway-engine")
	f := func(format string, args ...any) {
		if l.Enabled(ctx, slog.LevelDebug) {
			l.Debug(strings.TrimSuffix(fmt.Sprintf(format, args...), "\n"))
		}
	}
	limited := logger.RateLimitedFn(f, 5*time.Second, 5, 100)
	return func(format string, args ...any) {
		note(format, args...)
		limited(format, args...)
	}
}

// controlErrFormat is how ipnlocal logs the control client's errors
// (setControlClientStatusLocked), which it tells watchers only when they are
// meant for users: a dial failure or a TLS error reaches nobody else.
const controlErrFormat = "Received error: %v"

// noteEngineLine keeps the control client's last error for Status.
func (a *Agent) noteEngineLine(format string, args ...any) {
	if format == controlErrFormat {
		a.mu.Lock()
		a.controlErr = fmt.Sprint(args...)
		a.mu.Unlock()
	}
}

// startEngine assembles what tailscaled's getLocalBackend does, with our
// router, no DNS changes and no netstack.
func (a *Agent) startEngine() error {
	logf := a.logf
	sys := tsd.NewSystem()
	a.sys = sys
	mon, err := netmon.New(sys.Bus.Get(), logf)
	if err != nil {
		return fmt.Errorf("netmon: %w", err)
	}
	sys.Set(mon)
	dialer := &tsdial.Dialer{Logf: logf}
	dialer.SetBus(sys.Bus.Get())
	sys.Set(dialer)
	netns.SetEnabled(true)

	dev, name, err := tstun.New(logf, a.cfg.Tun)
	if err != nil {
		tstun.Diagnose(logf, a.cfg.Tun, err)
		return fmt.Errorf("creating TUN %s: %w", a.cfg.Tun, err)
	}
	if dev, err = limitTUNBatch(dev, name, a.mem.TUNBatch); err != nil {
		a.log.Warn("gateway: TUN batch left at its size", "err", err)
	}
	rtr, err := NewRouter(RouterConfig{
		Tun:      name,
		Firewall: a.fw,
		Rules: firewall.Rules{
			TailnetPrefixes: a.cfg.TailnetPrefixes,
			MasqueradeLAN:   a.cfg.MasqueradeLAN,
			ExitNode:        a.cfg.ExitNode,
			WANInterface:    a.wan,
		},
		Bus:  sys.Bus.Get(),
		Logf: func(format string, args ...any) { a.log.Info(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		dev.Close()
		return err
	}
	a.rtr = rtr
	// We must never touch the host's resolver config (OpenWrt's dnsmasq,
	// systemd-resolved): MagicDNS is for the phones, not the gateway.
	dnsCfg, err := dns.NewNoopManager()
	if err != nil {
		dev.Close()
		return err
	}
	sys.HealthTracker.Get().SetMetricsRegistry(sys.UserMetricsRegistry())
	e, err := wgengine.NewUserspaceEngine(logf, wgengine.Config{
		Tun:           dev,
		Router:        rtr,
		DNS:           dnsCfg,
		ListenPort:    a.cfg.ListenPort,
		NetMon:        mon,
		Dialer:        dialer,
		SetSubsystem:  sys.Set,
		ControlKnobs:  sys.ControlKnobs(),
		HealthTracker: sys.HealthTracker.Get(),
		Metrics:       sys.UserMetricsRegistry(),
		EventBus:      sys.Bus.Get(),
	})
	if err != nil {
		// NewUserspaceEngine closes the tun and the router on error.
		return fmt.Errorf("engine: %w", err)
	}
	sys.Set(e)
	sys.NetstackRouter.Set(false)

	st, err := store.NewFileStore(logf, filepath.Join(a.cfg.StateDir, StateFile))
	if err != nil {
		e.Close()
		return fmt.Errorf("state store: %w", err)
	}
	sys.Set(st)
	sys.Tun.Get().Start()

	lb, err := ipnlocal.NewLocalBackend(logf, logid.PublicID{}, sys, 0)
	if err != nil {
		e.Close()
		return fmt.Errorf("local backend: %w", err)
	}
	lb.SetVarRoot(a.cfg.StateDir)
	a.lb = lb
	return nil
}

// prefs are the node's preferences: what `tailscale up` would set for a
// subnet router and exit node whose netfilter someone else does.
func (a *Agent) prefs() *ipn.Prefs {
	p := ipn.NewPrefs()
	p.ControlURL = a.cfg.ControlURL
	p.WantRunning = true
	p.Hostname = a.cfg.Hostname
	p.AdvertiseRoutes = slices.Clone(a.routes)
	p.AdvertiseTags = slices.Clone(a.cfg.Tags)
	p.RouteAll = false // never install the LAN routes others advertise (or our own)
	p.CorpDNS = false  // leave the host's DNS alone
	p.NetfilterMode = preftype.NetfilterOff
	p.NoSNAT = !a.cfg.MasqueradeLAN
	p.AutoUpdate.Check = false
	return p
}

// login starts the backend. The first time it mints a pre-auth key only
// when the state file holds no node key; later (control forgot the node)
// always.
func (a *Agent) login(ctx context.Context, first bool) error {
	opts := ipn.Options{UpdatePrefs: a.prefs()}
	needKey := true
	if first && !a.lb.NodeKey().IsZero() {
		needKey = false // registered before: the state file has our node key
	}
	if needKey {
		kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		k, err := a.cfg.AuthKey(kctx)
		cancel()
		if err != nil {
			return fmt.Errorf("getting a pre-auth key: %w", err)
		}
		opts.AuthKey = k
		a.log.Info("gateway: registering with control", "url", a.cfg.ControlURL, "hostname", a.cfg.Hostname)
	}
	if err := a.lb.Start(opts); err != nil {
		return fmt.Errorf("starting backend: %w", err)
	}
	if needKey && a.lb.State() == ipn.NeedsLogin {
		if err := a.lb.StartLoginInteractive(ctx); err != nil {
			return fmt.Errorf("logging in: %w", err)
		}
	}
	return nil
}

// watch follows the backend's state: it logs changes and asks loginLoop
// for a new registration when control no longer knows the node.
func (a *Agent) watch(ctx context.Context) {
	defer a.wg.Done()
	a.lb.WatchNotifications(ctx, ipn.NotifyInitialState|ipn.NotifyInitialNetMap, nil, func(n *ipn.Notify) bool {
		if n.ErrMessage != nil {
			a.mu.Lock()
			repeated := a.lastErr == *n.ErrMessage
			a.lastErr = *n.ErrMessage
			needsLogin := a.state == ipn.NeedsLogin
			a.mu.Unlock()
			level := slog.LevelWarn
			if repeated {
				level = slog.LevelDebug // a refused key says so on every try
			}
			a.log.Log(context.Background(), level, "gateway: engine error", "err", *n.ErrMessage)
			if needsLogin {
				// A refused key: try again, with backoff, in case a
				// new one was put in its place.
				select {
				case a.relogin <- struct{}{}:
				default:
				}
			}
		}
		// On Linux, tailscaled sends the netmap only in the initial
		// message; later changes to our node come as SelfChange.
		switch {
		case n.SelfChange != nil:
			a.selfChanged(n.SelfChange.Name, n.SelfChange.Addresses, n.SelfChange.AllowedIPs)
		case n.NetMap != nil && n.NetMap.SelfNode.Valid():
			a.selfChanged(n.NetMap.SelfNode.Name(), n.NetMap.SelfNode.Addresses().AsSlice(), n.NetMap.SelfNode.AllowedIPs().AsSlice())
		}
		if n.State != nil {
			a.mu.Lock()
			old := a.state
			a.state = *n.State
			a.mu.Unlock()
			if old != *n.State {
				a.log.Info("gateway: state "+n.State.String(), "was", old.String())
			}
			if *n.State == ipn.Running {
				a.setError("") // registered: earlier login errors are over
			}
			if *n.State == ipn.NeedsLogin && old != ipn.NoState {
				select {
				case a.relogin <- struct{}{}:
				default:
				}
			}
		}
		return true
	})
}

// selfChanged records the node's tailnet addresses and approved routes
// from a netmap, and logs what changed.
func (a *Agent) selfChanged(name string, addrs, allowed []netip.Prefix) {
	var approved []netip.Prefix
	for _, p := range allowed {
		if !slices.Contains(addrs, p) {
			approved = append(approved, p)
		}
	}
	a.mu.Lock()
	addrsChanged := !slices.Equal(addrs, a.addrs)
	approvedChanged := !slices.Equal(approved, a.approved)
	a.addrs, a.approved = addrs, approved
	a.mu.Unlock()
	if addrsChanged {
		a.log.Info("gateway: tailnet addresses", "addrs", addrs, "name", name)
		if p, ok := a.outsideTailnet(addrs); ok {
			// Anti-spoofing and masquerading match the configured
			// prefixes: traffic from other nodes would be dropped.
			msg := fmt.Sprintf("control gave this node %v, outside the tailnet prefixes %v: set tailnet.prefix4 to the control server's", p, a.cfg.TailnetPrefixes)
			a.log.Error("gateway: " + msg)
			a.mu.Lock()
			a.prefixErr = msg
			a.mu.Unlock()
		}
	}
	if approvedChanged {
		a.log.Info("gateway: approved routes", "approved", approved, "advertised", a.routes)
	}
}

// outsideTailnet returns an address of addrs that no tailnet prefix holds.
func (a *Agent) outsideTailnet(addrs []netip.Prefix) (netip.Prefix, bool) {
	for _, p := range addrs {
		if !slices.ContainsFunc(a.cfg.TailnetPrefixes, func(t netip.Prefix) bool { return t.Contains(p.Addr()) }) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func (a *Agent) setError(msg string) {
	a.mu.Lock()
	a.lastErr = msg
	a.mu.Unlock()
}

// loginLoop registers again, with a new key, whenever control has
// forgotten the node (deleted by the admin, database reset), with backoff.
func (a *Agent) loginLoop(ctx context.Context) {
	defer a.wg.Done()
	backoff := 2 * time.Second
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-a.relogin:
		case <-a.forceLogin:
			force = true
		}
		// Give a login in flight a moment to finish.
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if !force && a.lb.State() != ipn.NeedsLogin {
			backoff = 2 * time.Second
			continue
		}
		a.log.Info("gateway: registering again", "url", a.cfg.ControlURL)
		if err := a.login(ctx, false); err != nil {
			a.log.Warn("gateway: registering", "err", err, "retry_in", backoff)
			a.setError(err.Error())
			select {
			case a.forceLogin <- struct{}{}:
			default:
			}
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// nodeCheckInterval is how often checkKnown asks control about our node.
var nodeCheckInterval = 5 * time.Second

// checkKnown asks control (Config.NodeKnown) whether it still knows our
// node key, and has loginLoop register again after two noes in a row (one
// could be a registration in flight).
func (a *Agent) checkKnown(ctx context.Context) {
	defer a.wg.Done()
	if a.cfg.NodeKnown == nil {
		return
	}
	t := time.NewTicker(nodeCheckInterval)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k := a.lb.NodeKey()
		if k.IsZero() || a.lb.State() == ipn.NeedsLogin || a.cfg.NodeKnown(k) {
			misses = 0
			continue
		}
		if misses++; misses < 2 {
			continue
		}
		misses = 0
		a.log.Info("gateway: control no longer knows this node (deleted or expired)", "node_key", k.ShortString())
		select {
		case a.forceLogin <- struct{}{}:
		default:
		}
	}
}

// SetStaticEndpoints adds eps to the endpoints the agent advertises, as
// tailscaled's static endpoints: a port the home router forwards to it,
// which STUN cannot see from behind that router.
func (a *Agent) SetStaticEndpoints(eps []netip.AddrPort) {
	if ms, ok := a.sys.MagicSock.GetOK(); ok {
		ms.SetStaticEndpoints(views.SliceOf(eps))
		a.log.Info("gateway: advertising forwarded endpoints", "endpoints", eps)
	}
}

// Status reports the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		State:      a.state.String(),
		ControlURL: a.cfg.ControlURL,
		Tun:        a.cfg.Tun,
		Addresses:  slices.Clone(a.addrs),
		Advertised: slices.Clone(a.routes),
		Approved:   slices.Clone(a.approved),
		ExitNode:   a.cfg.ExitNode,
		WAN:        a.wan,
		Sysctls:    a.setSys,
		Table:      Table,
		RulePrefs:  RulePrefs,
		LastError:  cmp.Or(a.prefixErr, a.lastErr),
		LocalAPI:   a.socket,
	}
	if a.fw != nil {
		st.Firewall = a.fw.Name()
	}
	if a.rtr != nil {
		st.Repairs = a.rtr.Repairs()
	}
	if a.sys != nil {
		st.Connected = a.sys.HealthTracker.Get().GetInPollNetMap()
	}
	if !st.Connected && st.LastError == "" && a.controlErr != "" {
		st.LastError = "control " + a.cfg.ControlURL + ": " + a.controlErr
	}
	return st
}

// Close stops the engine and removes everything the agent added: routes,
// rules, netfilter rules and the tables created for them, the TUN; it
// restores the sysctls it changed. It is idempotent.
func (a *Agent) Close() error {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	if a.closed {
		return a.closeErr
	}
	a.closed = true
	if a.cancel != nil {
		a.cancel()
	}
	var errs []error
	if a.lb != nil {
		a.lb.Shutdown() // closes the engine, which closes our router and the TUN
	} else if a.sys != nil {
		if e, ok := a.sys.Engine.GetOK(); ok {
			e.Close()
		}
	}
	a.wg.Wait()
	if a.sys != nil {
		if m, ok := a.sys.NetMon.GetOK(); ok {
			m.Close()
		}
		if d, ok := a.sys.Dialer.GetOK(); ok {
			d.Close()
		}
		a.sys.Bus.Get().Close()
	}
	// Whatever the router could not remove (or never got to, when the
	// engine failed to start) goes now.
	if err := sweep(a.fw); err != nil {
		errs = append(errs, err)
	} else if err := removeCreatedTables(a.cfg.StateDir, a.log); err != nil {
		errs = append(errs, err)
	}
	if done, err := a.sysctl.restore(); err != nil {
		errs = append(errs, err)
	} else if len(done) > 0 {
		a.log.Info("gateway: forwarding restored", "set", done)
	}
	a.closeErr = errors.Join(errs...)
	if a.closeErr != nil {
		a.log.Warn("gateway: stopped, with errors", "err", a.closeErr)
	} else {
		a.log.Info("gateway: stopped; routes, rules, netfilter rules and sysctls are as before")
	}
	return a.closeErr
}

// memoryRecheck is how often the agent looks for new UDP sockets (magicsock
// rebinds when the network changes) to cap their buffers.
const memoryRecheck = 10 * time.Second

// fitMemory applies a.mem to the engine's sockets.
func (a *Agent) fitMemory() {
	if a.mem.UDPReceiveBuffer == 0 {
		return
	}
	n, err := capUDPReceiveBuffers(a.cfg.ListenPort, a.mem.UDPReceiveBuffer)
	if err != nil {
		a.log.Warn("gateway: capping the UDP receive buffers", "err", err)
	}
	if n > 0 {
		a.log.Info("gateway: UDP receive buffers capped for the memory limit", "sockets", n,
			"bytes", a.mem.UDPReceiveBuffer, "memory_limit_mib", debug.SetMemoryLimit(-1)>>20)
	}
}

// keepFitting reapplies a.mem every memoryRecheck until ctx is done.
func (a *Agent) keepFitting(ctx context.Context) {
	defer a.wg.Done()
	if a.mem.UDPReceiveBuffer == 0 {
		return
	}
	t := time.NewTicker(memoryRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.fitMemory()
		}
	}
}
