package appliance

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"homenet/control"
)

// InitOptions configure Init. The zero value detects everything, asks
// nothing, and touches files only: no D-Bus, no commands.
type InitOptions struct {
	// Root is prefixed to every path read or written: "/" (or "") on a
	// live system, a scratch directory in tests and image builds.
	Root string
	// ConfigPath is where the config goes; empty means the platform's
	// default (Platform.ConfigPath).
	ConfigPath string
	// ServerURL is the URL phones use; empty means the existing config's,
	// or chosen from the network (a public WAN address, else this host's
	// LAN address, with warnings).
	ServerURL string
	// LAN are the prefixes the gateway serves; nil means the existing
	// config's, or detected.
	LAN []netip.Prefix
	// NoGateway turns the subnet router off (gateway.enabled = false).
	NoGateway bool
	// StateDir is state_dir; empty means the existing config's, or the
	// platform's default.
	StateDir string
	// NoService skips installing and starting the service; onboarding
	// then says how to start it.
	NoService bool
	// Force ignores the existing config: everything is detected anew and
	// the file replaced, keeping the old one as a backup. It also replaces
	// an invalid config, which is an error otherwise. (Without Force, flags
	// that differ from the existing config replace it too, with a backup.)
	Force bool
	// Binary is the homenet binary the service runs; empty means the
	// platform's default (Platform.Binary).
	Binary string
	// Net describes the network; nil means ProbeNetwork.
	Net *NetInfo
	// STUNServer, when set, is asked for this host's public address. It
	// is the only traffic init sends off the machine.
	STUNServer string
	// Ask, when set, asks the user a question with a default answer and
	// returns the answer ("" for the default). Nil means non-interactive.
	Ask func(question, def string) (string, error)
	// Log, when set, gets progress lines for the user.
	Log func(string)
	// Bus connects to D-Bus (systemd, firewalld, NetworkManager); nil
	// means no D-Bus: those steps are skipped and explained.
	Bus func() (Bus, error)
	// Run runs commands (procd init scripts, uci reloads, package
	// scripts); nil means none are run.
	Run Runner
	// AdminWait bounds the wait for a started server; 0 means
	// DefaultAdminWait.
	AdminWait time.Duration
	// Now is the clock, for backup names; nil means time.Now.
	Now func() time.Time
	// DDNS, when its Provider is set, keeps a DNS name pointing at this
	// host, for a home without a public IPv4 address: the config gets the
	// [ddns] section and, unless ServerURL is given, the server URL
	// https://NAME:HTTPSPort with the relay's TLS listener on that port
	// and a certificate by DNS-01. The credentials file is checked.
	DDNS DDNSConfig
	// HTTPSPort is the port of https://NAME:PORT with DDNS; empty means
	// DefaultHTTPSPort.
	HTTPSPort string
	// Join, when set, is a control server elsewhere (homenet on a VPS, or
	// headscale) that this host's gateway agent joins with AuthKey: the
	// config runs the agent only (gateway.control_url).
	Join, AuthKey string
	// ACMEDirectory and ACMEEmail set relay.acme_directory and
	// relay.acme_email: a private CA, or Let's Encrypt's staging server.
	ACMEDirectory, ACMEEmail string
}

// DefaultHTTPSPort is the port init puts https://NAME on when it sets up
// dynamic DNS: ISPs block 80, 443 and often 8080 on home lines.
const DefaultHTTPSPort = "8443"

// InitResult is what Init did and what is left to the user.
type InitResult struct {
	Platform     Platform  `json:"platform"`
	Network      NetInfo   `json:"network"`
	ConfigPath   string    `json:"config"`
	ServerURL    string    `json:"server_url"`
	ServerURLWhy string    `json:"server_url_why,omitempty"`
	StateDir     string    `json:"state_dir"`
	Gateway      bool      `json:"gateway"`
	Routes       []string  `json:"routes"`
	Steps        []Step    `json:"steps"`
	Changed      bool      `json:"changed"`
	Warnings     []Warning `json:"warnings"`
	// Reachability is how phones away from home can reach this host.
	Reachability Reachability `json:"reachability"`
	// Next are commands the user still has to run, one per line.
	Next []string `json:"next,omitempty"`
	// Join is how the agent fared, with --join.
	Join *JoinResult `json:"join,omitempty"`
	// AtHome are the commands that join a home gateway to this server,
	// when it has no LAN of its own to serve (a VPS).
	AtHome     []string   `json:"at_home,omitempty"`
	Onboarding Onboarding `json:"onboarding"`
}

// configHeader starts the config file init writes.
const configHeader = `# homenet configuration, written by "homenet init". Every key is explained
# in docs/config.md. Edit freely and restart homenet: "homenet init" keeps
# this file on later runs, and "homenet uninstall" only removes it with --purge.

`

// Init sets homenet up on this host (or under o.Root): it detects the
// platform and the network, writes the config, integrates with the host
// (forwarding, NetworkManager, firewalld, OpenWrt's firewall), installs and
// starts the service and creates a one-time key for a phone. Run again with
// the same inputs, it changes nothing. On error the result says what was
// done before it.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	in := &initRun{o: o, root: cmp.Or(o.Root, "/")}
	in.res.Steps, in.res.Warnings = []Step{}, []Warning{} // [] in JSON
	if in.o.Now == nil {
		in.o.Now = time.Now
	}
	if in.o.AdminWait == 0 {
		in.o.AdminWait = DefaultAdminWait
	}
	defer in.closeBus()
	err := in.run(ctx)
	for _, s := range in.res.Steps {
		in.res.Changed = in.res.Changed || s.Changed()
	}
	return &in.res, err
}

// initRun is one run of Init.
type initRun struct {
	o    InitOptions
	root string
	res  InitResult

	plat     Platform
	bus      Bus
	busErr   error
	busTried bool
}

func (in *initRun) logf(format string, args ...any) {
	if in.o.Log != nil {
		in.o.Log(fmt.Sprintf(format, args...))
	}
}

func (in *initRun) step(s Step) { in.res.Steps = append(in.res.Steps, s) }

func (in *initRun) warn(code, msg, fix string) {
	in.res.Warnings = append(in.res.Warnings, Warning{Code: code, Message: msg, Fix: fix})
}

// getBus connects to D-Bus once; nil when there is none.
func (in *initRun) getBus() Bus {
	if !in.busTried {
		in.busTried = true
		if in.o.Bus != nil {
			in.bus, in.busErr = in.o.Bus()
		}
	}
	return in.bus
}

func (in *initRun) closeBus() {
	if in.bus != nil {
		in.bus.Close()
	}
}

// noBusDetail explains why a D-Bus step was skipped.
func (in *initRun) noBusDetail() string {
	if in.busErr != nil {
		return "no D-Bus: " + in.busErr.Error()
	}
	return "no D-Bus (not the running system)"
}

// running reports whether the service named by the D-Bus name runs.
func (in *initRun) running(ctx context.Context, name string) bool {
	bus := in.getBus()
	if bus == nil {
		return false
	}
	ok, err := bus.NameHasOwner(ctx, name)
	return err == nil && ok
}

func (in *initRun) run(ctx context.Context) error {
	o := &in.o
	if in.root != "/" {
		if fi, err := os.Stat(in.root); err != nil || !fi.IsDir() {
			in.warn("root-missing", fmt.Sprintf("The root %s did not exist: init creates what it writes below it, but it detects the platform from nothing there (plain Linux).", in.root),
				"Point --root at an unpacked image or a copy of the target's /etc.")
		}
	}
	in.plat = DetectPlatform(in.root)
	in.res.Platform = in.plat
	in.logf("Platform: %s (%s)", in.plat.Name, in.plat.Kind)

	cfgPath := cmp.Or(o.ConfigPath, in.plat.ConfigPath)
	if !path.IsAbs(cfgPath) {
		return fmt.Errorf("config path %q is not absolute", cfgPath)
	}
	in.res.ConfigPath = cfgPath
	if (in.plat.Kind == PlatformSynology || in.plat.Kind == PlatformQNAP) && o.ConfigPath == "" && !fileExists(in.root, in.plat.PackageDir) {
		return fmt.Errorf("the %s package is not installed (no %s): install it first, then run homenet init again, or name a config file with --config", PackageName, in.plat.PackageDir)
	}
	if o.StateDir != "" && !path.IsAbs(o.StateDir) {
		return fmt.Errorf("state dir %q is not absolute", o.StateDir)
	}
	if o.ServerURL != "" {
		if err := validateServerURL(o.ServerURL); err != nil {
			return fmt.Errorf("server URL: %w", err)
		}
	}
	for _, p := range o.LAN {
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("LAN prefix %s has host bits set; did you mean %s?", p, p.Masked())
		}
	}

	parsed, raw, parseErr := readExistingConfig(in.root, cfgPath)
	existing := parsed
	if o.Force {
		existing = nil // detect everything anew; the file is backed up
	}

	var n NetInfo
	if o.Net != nil {
		n = *o.Net
	} else {
		var err error
		if n, err = ProbeNetwork(); err != nil {
			return err
		}
	}
	if o.STUNServer != "" {
		n.STUNServer = o.STUNServer
		pub, err := stunProbe(ctx, o.STUNServer)
		if err != nil {
			in.warn("stun-failed", fmt.Sprintf("Asking the STUN server %s for the public address failed: %v.", o.STUNServer, err),
				"Check the server name and port, or leave --stun out.")
		}
		n.Public = pub
	}
	in.res.Network = n
	in.logf("Network: %s", describeNetwork(n))
	if err := in.checkJoin(existing); err != nil {
		return err
	}
	if o.Join == "" {
		in.res.Reachability = in.reachability(n)
		in.logf("Reachability: %s: %s", in.res.Reachability.Case, in.res.Reachability.Advice)
		if err := in.askDDNS(existing); err != nil {
			return err
		}
		if err := in.checkDDNS(); err != nil {
			return err
		}
	}

	desired, urlWhy, err := in.decide(existing, n)
	if err != nil {
		return err
	}
	in.res.ServerURLWhy = urlWhy

	cfg, configChanged, err := in.writeConfig(cfgPath, desired, parsed, raw, parseErr)
	if err != nil {
		return err
	}
	in.res.ServerURL = cfg.Server.URL
	in.res.StateDir = absStateDir(cfgPath, cfg.StateDir)
	in.res.Gateway = cfg.Gateway.Enabled
	in.res.Routes = slices.Clone(cfg.Gateway.Routes)
	if in.res.Routes == nil {
		in.res.Routes = []string{}
	}
	in.res.Onboarding = Onboarding{ServerURL: cfg.Server.URL, PasswordFile: cmp.Or(cfg.Server.AdminPasswordFile, path.Join(in.res.StateDir, "admin-password"))}

	if err := in.makeStateDir(in.res.StateDir); err != nil {
		return err
	}
	if err := in.writeAuthKey(&cfg); err != nil {
		return err
	}
	if err := in.integrate(ctx, &cfg); err != nil {
		return err
	}
	running, err := in.service(ctx, cfgPath, configChanged)
	if err != nil {
		return err
	}
	in.warnFW4(&cfg)
	if cfg.Joins() {
		// No inbound connections: the agent dials out to its server.
		in.res.ServerURL, in.res.Onboarding = cfg.Gateway.ControlURL, Onboarding{}
		in.res.Join = &JoinResult{ControlURL: cfg.Gateway.ControlURL, Error: "homenet is not running yet"}
		if running {
			in.waitJoined(ctx)
		}
		return nil
	}
	in.onboard(ctx, cfgPath, &cfg, running)
	in.res.Warnings = append(in.res.Warnings, reachabilityWarnings(in.plat, n, &cfg, existing != nil || o.ServerURL != "", "homenet init")...)
	return nil
}

// absStateDir returns stateDir as an absolute path on the platform: a
// relative one is relative to the config file, as LoadConfig has it.
func absStateDir(cfgPath, stateDir string) string {
	if !path.IsAbs(stateDir) {
		return path.Join(path.Dir(cfgPath), stateDir)
	}
	return path.Clean(stateDir)
}

func (in *initRun) makeStateDir(stateDir string) error {
	st := Step{What: "state dir", Target: stateDir}
	hp := filepath.Join(in.root, stateDir)
	if fi, err := os.Stat(hp); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("state dir %s is not a directory", stateDir)
		}
		st.Result = ResultUnchanged
		in.step(st)
		return nil
	}
	if in.plat.Kind == PlatformSynology && strings.HasPrefix(stateDir, in.plat.PackageDir+"/") {
		// DSM creates it, owned by the package's user; a root-owned one
		// would lock the package out.
		st.Result, st.Detail = ResultSkipped, "DSM creates it with the package"
		in.step(st)
		return nil
	}
	// Only the state dir itself is private: parents such as /var/lib are
	// not ours to lock down.
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		return fmt.Errorf("creating the state dir's parent: %w", err)
	}
	if err := os.Mkdir(hp, 0o700); err != nil {
		return fmt.Errorf("creating the state dir: %w", err)
	}
	st.Result = ResultCreated
	in.step(st)
	return nil
}

// integrate makes the host let homenet work: forwarding that survives
// reboots, NetworkManager leaving the tunnel alone, firewalld trusting it,
// OpenWrt's firewall letting phones in.
func (in *initRun) integrate(ctx context.Context, cfg *Config) error {
	switch in.plat.Kind {
	case PlatformSynology, PlatformQNAP:
		return nil // the package owns the host side
	case PlatformOpenWrt:
		return in.integrateOpenWrt(ctx, cfg)
	}
	if cfg.Gateway.Enabled {
		st, err := installFile(in.root, "forwarding", sysctlPath, sysctlConf(in.res.Network.LAN.WAN), 0o644)
		if err != nil {
			return err
		}
		in.step(st)
		if st.Changed() && in.plat.Kind == PlatformSystemd {
			if bus := in.getBus(); bus != nil {
				if err := systemdApplySysctl(ctx, bus); err != nil {
					in.step(Step{What: "forwarding", Target: "systemd-sysctl.service", Result: ResultFailed, Detail: err.Error()})
				} else {
					in.step(Step{What: "forwarding", Target: "systemd-sysctl.service", Result: ResultDone, Detail: "applied"})
				}
			} else {
				in.step(Step{What: "forwarding", Target: "systemd-sysctl.service", Result: ResultSkipped, Detail: in.noBusDetail() + "; applied at the next boot, and by the gateway while it runs"})
			}
		}
	}

	nmInstalled := fileExists(in.root, "/etc/NetworkManager")
	if cfg.Gateway.Enabled && nmInstalled {
		st, err := installFile(in.root, "NetworkManager", nmConfPath, nmConf(), 0o644)
		if err != nil {
			return err
		}
		in.step(st)
		if in.running(ctx, nmDest) {
			bus := in.getBus()
			if st.Changed() {
				if err := nmReload(ctx, bus); err != nil {
					in.step(Step{What: "NetworkManager", Target: "configuration", Result: ResultFailed, Detail: err.Error()})
				} else {
					in.step(Step{What: "NetworkManager", Target: "configuration", Result: ResultDone, Detail: "reloaded"})
				}
			}
			ust, err := nmUnmanage(ctx, bus, tunName)
			if err != nil {
				ust.Result, ust.Detail = ResultFailed, err.Error()
			}
			in.step(ust)
		}
	}

	if in.running(ctx, firewalldDest) {
		if cfg.Gateway.Enabled {
			steps, err := firewalldTrust(ctx, in.getBus(), tunName)
			for _, s := range steps {
				in.step(s)
			}
			if err != nil {
				in.step(Step{What: "firewalld", Target: tunName, Result: ResultFailed, Detail: err.Error()})
			}
		}
		in.warn("firewalld-ports", "firewalld is running and may drop connections to homenet's ports.",
			fmt.Sprintf("Allow %s, for example: %s", portList(cfg), firewalldPortsCommand(cfg)))
	}
	return nil
}

// firewalldPortsCommand is the firewall-cmd line that opens cfg's ports.
func firewalldPortsCommand(cfg *Config) string {
	args := []string{"firewall-cmd --permanent"}
	for _, p := range exposedPorts(cfg) {
		args = append(args, "--add-port="+p.port+"/"+p.proto)
	}
	return strings.Join(args, " ") + " && firewall-cmd --reload"
}

func (in *initRun) integrateOpenWrt(ctx context.Context, cfg *Config) error {
	if cfg.Gateway.Enabled {
		// OpenWrt enables forwarding itself (base-files'
		// /etc/sysctl.d/10-default.conf); add ours only if it does not.
		def, _ := os.ReadFile(filepath.Join(in.root, "/etc/sysctl.d/10-default.conf"))
		if bytes.Contains(def, []byte("net.ipv4.ip_forward=1")) || bytes.Contains(def, []byte("net.ipv4.ip_forward = 1")) {
			in.step(Step{What: "forwarding", Target: "/etc/sysctl.d/10-default.conf", Result: ResultUnchanged, Detail: "OpenWrt enables forwarding itself"})
		} else {
			st, err := installFile(in.root, "forwarding", sysctlPath, sysctlConf(""), 0o644)
			if err != nil {
				return err
			}
			in.step(st)
		}
	}
	secs := openwrtSections(cfg)
	var changed []string
	for _, f := range []string{uciNetworkPath, uciFirewallPath} {
		if len(secs[f]) == 0 {
			continue
		}
		st, err := uciAdd(in.root, f, secs[f])
		if err != nil {
			return err
		}
		in.step(st)
		if st.Changed() {
			changed = append(changed, f)
		}
	}
	if len(changed) > 0 {
		if in.o.Run != nil {
			for _, s := range openwrtReload(ctx, in.o.Run, changed) {
				in.step(s)
			}
		} else {
			in.res.Next = append(in.res.Next, "/etc/init.d/network reload && /etc/init.d/firewall reload")
		}
	}
	return nil
}

// service installs and starts the service, and reports whether homenet
// should now be running.
func (in *initRun) service(ctx context.Context, cfgPath string, configChanged bool) (bool, error) {
	binary := cmp.Or(in.o.Binary, in.plat.Binary)
	serveCmd := fmt.Sprintf("%s serve --config %s", binary, cfgPath)
	if in.o.NoService {
		in.step(Step{What: "service", Result: ResultSkipped, Detail: "--no-service"})
		in.res.Next = append(in.res.Next, serveCmd)
		return false, nil
	}
	for _, dir := range []string{"/tmp/", "/home/", "/root/", "/run/user/"} {
		if strings.HasPrefix(binary, dir) {
			in.warn("binary-location", fmt.Sprintf("The service runs %s, from %s.", binary, dir),
				fmt.Sprintf("Install it as %s (sudo install -m 755 %s %s) and run homenet init again from there.", in.plat.Binary, binary, in.plat.Binary))
		}
	}
	switch in.plat.Kind {
	case PlatformSystemd:
		st, err := installFile(in.root, "systemd unit", systemdUnitPath, SystemdUnit(binary, cfgPath), 0o644)
		if err != nil {
			return false, err
		}
		in.step(st)
		bus := in.getBus()
		if bus == nil {
			in.step(Step{What: "systemd", Target: unitName, Result: ResultSkipped, Detail: in.noBusDetail()})
			in.res.Next = append(in.res.Next, "systemctl daemon-reload && systemctl enable --now "+unitName)
			return false, nil
		}
		steps, running, err := systemdInstall(ctx, bus, st.Changed(), configChanged)
		for _, s := range steps {
			in.step(s)
		}
		return running, err
	case PlatformOpenWrt:
		script := ProcdScript(ProcdParams{Binary: binary, Config: cfgPath})
		st, err := installFile(in.root, "procd init script", procdScriptPath, script, 0o755)
		if err != nil {
			return false, err
		}
		in.step(st)
		if in.o.Run == nil {
			in.step(Step{What: "procd", Target: procdScriptPath, Result: ResultSkipped, Detail: "not the running system"})
			in.res.Next = append(in.res.Next, procdScriptPath+" enable && "+procdScriptPath+" start")
			return false, nil
		}
		steps, err := procdInstall(ctx, in.o.Run, st.Changed() || configChanged)
		for _, s := range steps {
			in.step(s)
		}
		return err == nil, err
	case PlatformSynology, PlatformQNAP:
		st, running := nasRestart(ctx, in.o.Run, in.root, in.plat, configChanged)
		in.step(st)
		if !running && st.Result != ResultFailed {
			if cmd := nasServiceCommand(in.root, in.plat, "restart"); cmd != nil {
				in.res.Next = append(in.res.Next, strings.Join(cmd, " "))
			}
		}
		return running, nil
	}
	in.step(Step{What: "service", Result: ResultSkipped, Detail: "no service manager homenet knows; run homenet serve under your own supervisor"})
	in.res.Next = append(in.res.Next, serveCmd)
	return false, nil
}

// onboard creates the one-time key when the server runs and, on a server
// without a gateway of its own (a VPS), the key and command that join a
// home gateway to it.
func (in *initRun) onboard(ctx context.Context, cfgPath string, cfg *Config, running bool) {
	ob := &in.res.Onboarding
	keyCmd := fmt.Sprintf("homenet keys create --config %s --expiry 1h", cfgPath)
	gwKeyCmd := fmt.Sprintf("homenet keys create --config %s --gateway", cfgPath)
	joinCmd := func(key string) string {
		return fmt.Sprintf("homenet init --join %s --auth-key %s", cfg.Server.URL, key)
	}
	serverOnly := !cfg.Gateway.Enabled && isServerOnly(in.res.Network)
	if serverOnly {
		in.res.AtHome = []string{"# here, once homenet runs: " + gwKeyCmd, "# then on the home gateway:", joinCmd("KEY")}
	}
	if !running {
		ob.KeyCommand = keyCmd
		return
	}
	in.logf("Waiting for homenet to answer on %s…", path.Join(in.res.StateDir, "admin.sock"))
	socket := filepath.Join(in.root, in.res.StateDir, "admin.sock")
	key, info, err := createOnboardingKey(ctx, socket, in.o.AdminWait, control.AuthKeyOptions{Expiry: OnboardingKeyExpiry})
	if err != nil {
		ob.KeyError = err.Error()
		ob.KeyCommand = keyCmd
		in.warn("no-key", "Could not create a one-time key: "+err.Error()+".",
			"Check the service's log, then run: "+keyCmd)
		return
	}
	ob.Key, ob.KeyExpiry = key, info.Expiry
	if serverOnly {
		gwKey, _, err := createOnboardingKey(ctx, socket, in.o.AdminWait, GatewayKeyOptions())
		if err == nil {
			in.res.AtHome = []string{"# on the home gateway (the key works once, for a day; more with: " + gwKeyCmd + "):", joinCmd(gwKey)}
		}
	}
}

// describeNetwork is one line about n for people.
func describeNetwork(n NetInfo) string {
	var parts []string
	if n.LAN.WAN != "" {
		var addrs []string
		for _, a := range n.WANAddrs {
			addrs = append(addrs, a.String())
		}
		parts = append(parts, fmt.Sprintf("WAN %s %s", n.LAN.WAN, cmp.Or(strings.Join(addrs, " "), "(no address)")))
	} else {
		parts = append(parts, "no WAN (no default route)")
	}
	parts = append(parts, "LAN "+cmp.Or(joinPrefixes(n.LAN.Routes), "none found"))
	if len(n.GlobalIPv6) > 0 {
		parts = append(parts, "IPv6 "+n.GlobalIPv6[0].String())
	} else {
		parts = append(parts, "no global IPv6")
	}
	if n.Public.IsValid() {
		parts = append(parts, "public "+n.Public.String()+" (STUN)")
	}
	return strings.Join(parts, "; ")
}
