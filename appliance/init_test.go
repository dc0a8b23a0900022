package appliance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The marker files of each platform, as the real ones look.
var (
	openwrtRelease = `DISTRIB_ID='OpenWrt'
DISTRIB_RELEASE='24.10.0'
DISTRIB_REVISION='r28427-6df0e3d02a'
DISTRIB_TARGET='mediatek/filogic'
DISTRIB_ARCH='aarch64_cortex-a53'
DISTRIB_DESCRIPTION='OpenWrt 24.10.0 r28427-6df0e3d02a'
DISTRIB_TAINTS=''
`
	openwrtNetwork = `
config interface 'loopback'
	option device 'lo'
	option proto 'static'
	option ipaddr '127.0.0.1'
	option netmask '255.0.0.0'

config device
	option name 'br-lan'
	option type 'bridge'
	list ports 'lan1'
	list ports 'lan2'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.168.1.1'
	option netmask '255.255.255.0'

config interface 'wan'
	option device 'wan'
	option proto 'dhcp'
`
	openwrtFirewall = `
config defaults
	option input 'REJECT'
	option output 'ACCEPT'
	option forward 'REJECT'
	option synflood_protect '1'

config zone
	option name 'lan'
	list network 'lan'
	option input 'ACCEPT'
	option output 'ACCEPT'
	option forward 'ACCEPT'

config zone
	option name 'wan'
	list network 'wan'
	list network 'wan6'
	option input 'REJECT'
	option output 'ACCEPT'
	option forward 'REJECT'
	option masq '1'
	option mtu_fix '1'

config forwarding
	option src 'lan'
	option dest 'wan'
`
	openwrtSysctl = "kernel.panic=3\nnet.ipv4.ip_forward=1\nnet.ipv6.conf.all.forwarding=1\n"

	dsmVersion = `majorversion="7"
minorversion="2"
major="7"
minor="2"
micro="1"
buildphase="GM"
buildnumber="69057"
smallfixnumber="5"
productversion="7.2.1"
os_name="DSM"
`
	qnapULinux = `[System]
Model = TS-464
Internal Model = TS-X64
Version = 5.1.7
Build Number = 20240520
`
	qnapQPKG = `[homenet]
Name = homenet
Version = 0.1.0
Enable = TRUE
Shell = /share/CACHEDEV1_DATA/.qpkg/homenet/homenet.sh
Install_Path = /share/CACHEDEV1_DATA/.qpkg/homenet
`
	bookwormOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`
)

// platformCase is a fake root for one platform and the network around it.
type platformCase struct {
	name      string
	files     map[string]string // path → content
	dirs      []string
	net       NetInfo
	wantKind  PlatformKind
	wantName  string
	wantCfg   string
	wantState string
	wantURL   string
	// noGateway: init leaves the subnet router off here.
	noGateway bool
	// wantFiles are written by init --no-service besides the config,
	// with a string each must contain.
	wantFiles map[string]string
	// wantServiceFiles are written only when the service is installed.
	wantServiceFiles map[string]string
}

func netOf(wan, wanAddr string, lan ...string) NetInfo {
	n := netInfoFrom(LAN{WAN: wan, Routes: pfxs(lan...)}, nil)
	if wanAddr != "" {
		p := netip.MustParsePrefix(wanAddr)
		n.WANAddrs = []netip.Prefix{p}
		for _, r := range n.LAN.Routes {
			if r.Contains(p.Addr()) {
				n.LANAddr = p.Addr()
			}
		}
	}
	return n
}

func platformCases() []platformCase {
	routerNet := netOf("wan", "203.0.113.7/24", "192.168.1.0/24")
	routerNet.LANAddr = netip.MustParseAddr("192.168.1.1")
	routerNet.GlobalIPv6 = []netip.Addr{netip.MustParseAddr("2001:db8::7")}
	return []platformCase{
		{
			name: "OpenWrt 24.10",
			files: map[string]string{
				"/etc/openwrt_release":           openwrtRelease,
				"/etc/config/network":            openwrtNetwork,
				"/etc/config/firewall":           openwrtFirewall,
				"/etc/sysctl.d/10-default.conf":  openwrtSysctl,
				"/usr/share/libubox/jshn.sh":     "# jshn\n",
				"/etc/init.d/dnsmasq":            "#!/bin/sh /etc/rc.common\n",
				"/lib/functions.sh":              "# functions\n",
				"/etc/rc.d/S19dnsmasq.do-not-rm": "",
			},
			net:       routerNet,
			wantKind:  PlatformOpenWrt,
			wantName:  "OpenWrt 24.10.0 r28427-6df0e3d02a",
			wantCfg:   "/etc/homenet/homenet.toml",
			wantState: "/etc/homenet/state",
			wantURL:   "http://203.0.113.7:8080",
			wantFiles: map[string]string{
				"/etc/config/network":  "config interface 'homenet'\n\toption proto 'none'\n\toption device 'tailscale0'\n\toption homenet_managed '1'\n",
				"/etc/config/firewall": "config rule 'homenet_wireguard'\n\toption name 'Allow-homenet-WireGuard'\n\toption src 'wan'\n\toption proto 'udp'\n\toption dest_port '41641'",
			},
			wantServiceFiles: map[string]string{
				"/etc/init.d/homenet": "PROG=/usr/sbin/homenet\nCONFIG=/etc/homenet/homenet.toml\n",
			},
		},
		{
			name: "Synology DSM 7",
			files: map[string]string{
				"/etc.defaults/VERSION":      dsmVersion,
				"/var/packages/homenet/INFO": "package=\"homenet\"\n",
			},
			dirs:      []string{"/var/packages/homenet/etc", "/var/packages/homenet/var", "/var/packages/homenet/target/bin"},
			net:       netOf("eth0", "192.168.1.30/24", "192.168.1.0/24"),
			wantKind:  PlatformSynology,
			wantName:  "Synology DSM 7.2.1-69057",
			wantCfg:   "/var/packages/homenet/etc/homenet.toml",
			wantState: "/var/packages/homenet/var",
			wantURL:   "http://192.168.1.30:8080",
			noGateway: true,
		},
		{
			name: "QNAP QTS 5",
			files: map[string]string{
				"/etc/config/uLinux.conf": qnapULinux,
				"/etc/config/qpkg.conf":   qnapQPKG,
				"/etc/platform.conf":      "Platform = TS-X64\n",
			},
			dirs:      []string{"/share/CACHEDEV1_DATA/.qpkg/homenet"},
			net:       netOf("eth0", "192.168.1.31/24", "192.168.1.0/24"),
			wantKind:  PlatformQNAP,
			wantName:  "QNAP QTS 5.1.7",
			wantCfg:   "/share/CACHEDEV1_DATA/.qpkg/homenet/etc/homenet.toml",
			wantState: "/share/CACHEDEV1_DATA/.qpkg/homenet/var",
			wantURL:   "http://192.168.1.31:8080",
		},
		{
			name: "Raspberry Pi OS bookworm",
			files: map[string]string{
				"/etc/os-release":                         bookwormOSRelease,
				"/proc/device-tree/model":                 "Raspberry Pi 4 Model B Rev 1.5\x00",
				"/etc/NetworkManager/NetworkManager.conf": "[main]\nplugins=ifupdown,keyfile\n",
				"/etc/sysctl.d/README.sysctl":             "see sysctl.d(5)\n",
			},
			dirs:      []string{"/run/systemd/system", "/etc/NetworkManager/conf.d", "/etc/systemd/system/multi-user.target.wants", "/var/lib"},
			net:       netOf("eth0", "192.168.1.20/24", "192.168.1.0/24"),
			wantKind:  PlatformSystemd,
			wantName:  "Debian GNU/Linux 12 (bookworm) on Raspberry Pi 4 Model B Rev 1.5",
			wantCfg:   "/etc/homenet/homenet.toml",
			wantState: "/var/lib/homenet",
			wantURL:   "http://192.168.1.20:8080",
			wantFiles: map[string]string{
				"/etc/sysctl.d/99-homenet.conf":           "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n",
				"/etc/NetworkManager/conf.d/homenet.conf": "unmanaged-devices+=interface-name:tailscale0\n",
			},
			wantServiceFiles: map[string]string{
				"/etc/systemd/system/homenet.service": "ExecStart=/usr/local/bin/homenet serve --config /etc/homenet/homenet.toml\n",
			},
		},
		{
			name:      "Debian container without systemd",
			files:     map[string]string{"/etc/os-release": bookwormOSRelease, "/etc/sysctl.d/README.sysctl": "see sysctl.d(5)\n"},
			dirs:      []string{"/var/lib"},
			net:       netOf("eth0", "172.17.0.2/16", "172.17.0.0/16"),
			wantKind:  PlatformLinux,
			wantName:  "Debian GNU/Linux 12 (bookworm)",
			wantCfg:   "/etc/homenet/homenet.toml",
			wantState: "/var/lib/homenet",
			wantURL:   "http://172.17.0.2:8080",
			wantFiles: map[string]string{
				"/etc/sysctl.d/99-homenet.conf": "net.ipv6.conf.eth0.accept_ra = 2\n",
			},
		},
	}
}

// makeRoot builds the fake root of pc in a temporary directory.
func makeRoot(t *testing.T, pc platformCase) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range pc.files {
		hp := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range pc.dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// snapshot returns every file and directory under root with its mode and
// content, for comparing whole trees.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			dest, _ := os.Readlink(p)
			m[rel] = "link " + dest
		case fi.IsDir():
			m[rel] = fmt.Sprintf("dir %v", fi.Mode().Perm())
		case fi.Mode()&fs.ModeSocket != 0:
			m[rel] = "socket"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = fmt.Sprintf("%v %s", fi.Mode().Perm(), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffSnapshots describes how b differs from a.
func diffSnapshots(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if av, ok := a[k]; !ok {
			out = append(out, "added "+k)
		} else if av != v {
			out = append(out, "changed "+k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, "removed "+k)
		}
	}
	slices.Sort(out)
	return out
}

func readRootFile(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var fixedNow = func() time.Time { return time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC) }

func TestInitNoService(t *testing.T) {
	for _, pc := range platformCases() {
		t.Run(pc.name, func(t *testing.T) {
			ctx := context.Background()
			root := makeRoot(t, pc)
			before := snapshot(t, root)
			opts := InitOptions{Root: root, NoService: true, Net: &pc.net, Now: fixedNow}

			res, err := Init(ctx, opts)
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			if res.Platform.Kind != pc.wantKind || res.Platform.Name != pc.wantName {
				t.Errorf("platform %s %q, want %s %q", res.Platform.Kind, res.Platform.Name, pc.wantKind, pc.wantName)
			}
			if res.ConfigPath != pc.wantCfg || res.StateDir != pc.wantState || res.ServerURL != pc.wantURL {
				t.Errorf("config %s, state %s, URL %s; want %s, %s, %s", res.ConfigPath, res.StateDir, res.ServerURL, pc.wantCfg, pc.wantState, pc.wantURL)
			}
			if !res.Changed {
				t.Errorf("first run reports no change: %+v", res.Steps)
			}

			// The config is valid for LoadConfig (and so for serve).
			cfg, err := LoadConfig(filepath.Join(root, pc.wantCfg))
			if err != nil {
				t.Fatalf("LoadConfig of the written config: %v", err)
			}
			wantRoutes := prefixStrings(pc.net.LAN.Routes)
			if pc.noGateway {
				wantRoutes = []string{}
			}
			if cfg.StateDir != pc.wantState || cfg.Server.URL != pc.wantURL || !cfg.Relay.Enabled || cfg.Gateway.Enabled == pc.noGateway ||
				!slices.Equal(cfg.Gateway.Routes, wantRoutes) {
				t.Errorf("written config %+v", cfg)
			}
			if !dirExists(filepath.Join(root, pc.wantState)) {
				t.Errorf("state dir %s missing", pc.wantState)
			}
			for p, want := range pc.wantFiles {
				if got := readRootFile(t, root, p); !strings.Contains(got, want) {
					t.Errorf("%s does not contain %q:\n%s", p, want, got)
				}
			}
			for p := range pc.wantServiceFiles {
				if fileExists(root, p) {
					t.Errorf("%s written despite --no-service", p)
				}
			}
			if len(res.Next) == 0 || !strings.Contains(res.Next[len(res.Next)-1], "serve --config "+pc.wantCfg) {
				t.Errorf("next steps %q do not say how to start homenet", res.Next)
			}
			if res.Onboarding.ServerURL != pc.wantURL || res.Onboarding.Key != "" || !strings.Contains(res.Onboarding.KeyCommand, "homenet keys create") {
				t.Errorf("onboarding %+v", res.Onboarding)
			}
			afterInit := snapshot(t, root)

			// A second run changes nothing.
			res2, err := Init(ctx, opts)
			if err != nil {
				t.Fatalf("second Init: %v", err)
			}
			if res2.Changed {
				t.Errorf("second run changed something: %+v", res2.Steps)
			}
			for _, s := range res2.Steps {
				if s.Result != ResultUnchanged && s.Result != ResultSkipped {
					t.Errorf("second run: step %+v", s)
				}
			}
			if d := diffSnapshots(afterInit, snapshot(t, root)); len(d) > 0 {
				t.Errorf("second run changed files: %v", d)
			}

			// Uninstall removes what init added but the config and state.
			ures, err := Uninstall(ctx, UninstallOptions{Root: root})
			if err != nil {
				t.Fatalf("Uninstall: %v", err)
			}
			if len(pc.wantFiles) > 0 && !ures.Changed {
				t.Errorf("uninstall changed nothing: %+v", ures.Steps)
			}
			if !slices.Contains(ures.Kept, pc.wantCfg) || !slices.Contains(ures.Kept, pc.wantState) {
				t.Errorf("uninstall kept %q, want the config and state dir", ures.Kept)
			}
			afterUninstall := snapshot(t, root)
			for _, d := range diffSnapshots(before, afterUninstall) {
				rel := strings.TrimPrefix(d, "added ")
				if !strings.HasPrefix(d, "added ") || !strings.HasPrefix("/"+rel, pc.wantCfg) && !strings.HasPrefix("/"+rel, pc.wantState) &&
					!strings.HasPrefix(pc.wantCfg, "/"+rel+"/") && !strings.HasPrefix(pc.wantState, "/"+rel+"/") {
					t.Errorf("after uninstall: %s", d)
				}
			}
			ures2, err := Uninstall(ctx, UninstallOptions{Root: root})
			if err != nil || ures2.Changed {
				t.Errorf("second uninstall: %v, changed %v: %+v", err, ures2.Changed, ures2.Steps)
			}

			// --purge takes the config and state too: the root is as
			// before init.
			if _, err := Uninstall(ctx, UninstallOptions{Root: root, Purge: true}); err != nil {
				t.Fatalf("Uninstall --purge: %v", err)
			}
			if d := diffSnapshots(before, snapshot(t, root)); len(d) > 0 {
				t.Errorf("after uninstall --purge the root differs from before init: %v", d)
			}
		})
	}
}

// fakeBus plays systemd, firewalld and NetworkManager on D-Bus, with just
// enough state to answer what init asks, and records the calls.
type fakeBus struct {
	mu      sync.Mutex
	owners  map[string]bool
	calls   []string
	enabled bool // homenet.service
	active  bool
	zone    string // tailscale0's firewalld zone at runtime
	pzone   string // and in the permanent config
	nmDev   bool   // NetworkManager has a tailscale0 device
	managed bool   // and manages it
	onStart func()
}

func (f *fakeBus) NameHasOwner(ctx context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owners[name], nil
}

func (f *fakeBus) Close() error { return nil }

// shortMethod abbreviates interface names in recorded calls.
var shortMethod = strings.NewReplacer(
	"org.freedesktop.systemd1.Manager.", "systemd.",
	"org.fedoraproject.FirewallD1.", "firewalld.",
	"org.freedesktop.NetworkManager.", "nm.",
	"org.freedesktop.DBus.Properties.", "",
)

func (f *fakeBus) Call(ctx context.Context, dest, path, method string, args ...any) ([]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sargs []string
	for _, a := range args {
		if v, ok := a.(dbus.Variant); ok {
			a = v.Value()
		}
		sargs = append(sargs, fmt.Sprint(a))
	}
	f.calls = append(f.calls, strings.TrimSpace(shortMethod.Replace(method)+" "+strings.Join(sargs, " ")))
	zonePath := func(z string) dbus.ObjectPath { return dbus.ObjectPath(firewalldConfigPath + "/zone/" + z) }
	switch method {
	case systemdManager + ".GetUnitFileState":
		if f.enabled {
			return []any{"enabled"}, nil
		}
		return []any{"disabled"}, nil
	case systemdManager + ".LoadUnit":
		return []any{dbus.ObjectPath("/org/freedesktop/systemd1/unit/homenet_2eservice")}, nil
	case propertiesGet:
		switch args[1] {
		case "ActiveState":
			if f.active {
				return []any{dbus.MakeVariant("active")}, nil
			}
			return []any{dbus.MakeVariant("inactive")}, nil
		case "Managed":
			return []any{dbus.MakeVariant(f.managed)}, nil
		}
	case propertiesSet:
		f.managed = false
		return nil, nil
	case systemdManager + ".Reload", systemdManager + ".DisableUnitFiles":
		if strings.HasSuffix(method, "DisableUnitFiles") {
			f.enabled = false
		}
		return nil, nil
	case systemdManager + ".EnableUnitFiles":
		f.enabled = true
		return []any{true, [][]any{}}, nil
	case systemdManager + ".StartUnit", systemdManager + ".RestartUnit":
		if args[0] == unitName {
			f.active = true
			if f.onStart != nil {
				f.onStart()
			}
		}
		return []any{dbus.ObjectPath("/org/freedesktop/systemd1/job/1")}, nil
	case systemdManager + ".StopUnit":
		f.active = false
		return []any{dbus.ObjectPath("/org/freedesktop/systemd1/job/2")}, nil
	case firewalldDest + ".zone.getZoneOfInterface":
		return []any{f.zone}, nil
	case firewalldDest + ".zone.changeZoneOfInterface":
		f.zone = args[0].(string)
		return []any{f.zone}, nil
	case firewalldDest + ".zone.removeInterface":
		f.zone = ""
		return []any{args[0]}, nil
	case firewalldDest + ".config.getZoneOfInterface":
		return []any{f.pzone}, nil
	case firewalldDest + ".config.getZoneByName":
		return []any{zonePath(args[0].(string))}, nil
	case firewalldDest + ".config.zone.addInterface":
		f.pzone = strings.TrimPrefix(path, string(zonePath("")))
		return nil, nil
	case firewalldDest + ".config.zone.removeInterface":
		f.pzone = ""
		return nil, nil
	case nmDest + ".Reload":
		return nil, nil
	case nmDest + ".GetDeviceByIpIface":
		if !f.nmDev {
			return nil, dbus.Error{Name: "org.freedesktop.NetworkManager.UnknownDevice", Body: []any{"No device found"}}
		}
		return []any{dbus.ObjectPath("/org/freedesktop/NetworkManager/Devices/7")}, nil
	}
	return nil, fmt.Errorf("fakeBus: unexpected call %s %s %v", dest, method, args)
}

// takeCalls returns the calls recorded so far and forgets them.
func (f *fakeBus) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// fakeRunner plays procd init scripts and package scripts.
type fakeRunner struct {
	mu       sync.Mutex
	calls    []string
	enabled  bool
	running  bool
	onStart  func()
	failWith string // a command that fails
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitError) ExitCode() int { return int(e) }

func (r *fakeRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := strings.Join(append([]string{name}, args...), " ")
	r.calls = append(r.calls, cmd)
	if cmd == r.failWith {
		return nil, exitError(1)
	}
	verb := args[len(args)-1]
	if name == synopkgPath {
		verb = args[0]
	}
	switch verb {
	case "enabled":
		if !r.enabled {
			return nil, exitError(1)
		}
	case "running":
		if !r.running {
			return nil, exitError(1)
		}
	case "enable":
		r.enabled = true
	case "disable":
		r.enabled = false
	case "start", "restart":
		r.running = true
		if r.onStart != nil {
			r.onStart()
		}
	case "stop":
		r.running = false
	}
	return nil, nil
}

func (r *fakeRunner) takeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// serveWritten runs Serve on the config init wrote under root, as the
// service would, on loopback ports; the gateway stays off (it needs a real
// TUN). It returns when the server is stopped at the end of the test.
func serveWritten(t *testing.T, root, cfgPath string) {
	t.Helper()
	cfg, err := LoadConfig(filepath.Join(root, cfgPath))
	if err != nil {
		t.Errorf("the service would not start: %v", err)
		return
	}
	cfg.StateDir = filepath.Join(root, cfg.StateDir)
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Relay.Listen = "127.0.0.1:0"
	cfg.Relay.STUNListen = "127.0.0.1:0"
	cfg.Web.Listen = "127.0.0.1:0"
	cfg.Gateway.Enabled = false
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func TestInitService(t *testing.T) {
	tests := []struct {
		platform  string
		bus       *fakeBus // for systemd
		wantBus   []string
		wantRun   []string
		wantSteps []string // "what target result", in order, a subset
		// on the second run, calls that may happen (queries only)
		wantBus2 []string
		wantRun2 []string
		// uninstall
		wantBusU []string
		wantRunU []string
	}{
		{
			platform: "Raspberry Pi OS bookworm",
			bus: &fakeBus{owners: map[string]bool{systemdDest: true, nmDest: true, firewalldDest: true},
				zone: "public", pzone: "", nmDev: true, managed: true},
			wantBus: []string{
				"systemd.RestartUnit systemd-sysctl.service replace",
				"nm.Reload 1",
				"nm.GetDeviceByIpIface tailscale0",
				"Get org.freedesktop.NetworkManager.Device Managed",
				"Set org.freedesktop.NetworkManager.Device Managed false",
				"firewalld.zone.getZoneOfInterface tailscale0",
				"firewalld.zone.changeZoneOfInterface trusted tailscale0",
				"firewalld.config.getZoneOfInterface tailscale0",
				"firewalld.config.getZoneByName trusted",
				"firewalld.config.zone.addInterface tailscale0",
				"systemd.Reload",
				"systemd.GetUnitFileState homenet.service",
				"systemd.LoadUnit homenet.service",
				"Get org.freedesktop.systemd1.Unit ActiveState",
				"systemd.EnableUnitFiles [homenet.service] false true",
				"systemd.StartUnit homenet.service replace",
			},
			wantBus2: []string{
				"nm.GetDeviceByIpIface tailscale0",
				"Get org.freedesktop.NetworkManager.Device Managed",
				"firewalld.zone.getZoneOfInterface tailscale0",
				"firewalld.config.getZoneOfInterface tailscale0",
				"systemd.GetUnitFileState homenet.service",
				"systemd.LoadUnit homenet.service",
				"Get org.freedesktop.systemd1.Unit ActiveState",
			},
			wantBusU: []string{
				"systemd.GetUnitFileState homenet.service",
				"systemd.LoadUnit homenet.service",
				"Get org.freedesktop.systemd1.Unit ActiveState",
				"systemd.StopUnit homenet.service replace",
				"systemd.DisableUnitFiles [homenet.service] false",
				"systemd.Reload",
				"nm.Reload 1",
				"firewalld.zone.getZoneOfInterface tailscale0",
				"firewalld.zone.removeInterface trusted tailscale0",
				"firewalld.config.getZoneOfInterface tailscale0",
				"firewalld.config.getZoneByName trusted",
				"firewalld.config.zone.removeInterface tailscale0",
			},
		},
		{
			platform: "OpenWrt 24.10",
			wantRun: []string{
				"/etc/init.d/network reload",
				"/etc/init.d/firewall reload",
				"/etc/init.d/homenet enabled",
				"/etc/init.d/homenet enable",
				"/etc/init.d/homenet running",
				"/etc/init.d/homenet start",
			},
			wantRun2: []string{"/etc/init.d/homenet enabled", "/etc/init.d/homenet running"},
			wantRunU: []string{
				"/etc/init.d/homenet running", "/etc/init.d/homenet stop",
				"/etc/init.d/homenet enabled", "/etc/init.d/homenet disable",
				"/etc/init.d/network reload", "/etc/init.d/firewall reload",
			},
		},
		{
			platform: "Synology DSM 7",
			wantRun:  []string{"/usr/syno/bin/synopkg restart homenet"},
			wantRunU: []string{"/usr/syno/bin/synopkg stop homenet"},
		},
		{
			platform: "QNAP QTS 5",
			wantRun:  []string{"/share/CACHEDEV1_DATA/.qpkg/homenet/homenet.sh restart"},
			wantRunU: []string{"/share/CACHEDEV1_DATA/.qpkg/homenet/homenet.sh stop"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			i := slices.IndexFunc(platformCases(), func(pc platformCase) bool { return pc.name == tt.platform })
			pc := platformCases()[i]
			ctx := context.Background()
			root := makeRoot(t, pc)
			bus := tt.bus
			if bus == nil {
				bus = &fakeBus{}
			}
			runner := &fakeRunner{}
			startServer := func() { serveWritten(t, root, pc.wantCfg) }
			bus.onStart, runner.onStart = startServer, startServer
			opts := InitOptions{
				Root: root, Net: &pc.net, Now: fixedNow, AdminWait: 10 * time.Second,
				Run: runner,
				Bus: func() (Bus, error) {
					if tt.bus == nil {
						return nil, errors.New("no bus here")
					}
					return bus, nil
				},
			}

			res, err := Init(ctx, opts)
			if err != nil {
				t.Fatalf("Init: %v\nsteps: %+v", err, res.Steps)
			}
			if got := bus.takeCalls(); !slices.Equal(got, tt.wantBus) {
				t.Errorf("D-Bus calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantBus, "\n"))
			}
			if got := runner.takeCalls(); !slices.Equal(got, tt.wantRun) {
				t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantRun, "\n"))
			}
			for p, want := range pc.wantServiceFiles {
				if got := readRootFile(t, root, p); !strings.Contains(got, want) {
					t.Errorf("%s does not contain %q:\n%s", p, want, got)
				}
			}
			ob := res.Onboarding
			if !strings.HasPrefix(ob.Key, "hn") || ob.KeyExpiry.Sub(time.Now()) > time.Hour || ob.KeyExpiry.Sub(time.Now()) < 50*time.Minute || ob.KeyError != "" {
				t.Errorf("onboarding %+v, want a key expiring in an hour", ob)
			}

			// The second run queries but changes nothing. The server is
			// still running, so it makes another key.
			res2, err := Init(ctx, opts)
			if err != nil {
				t.Fatalf("second Init: %v", err)
			}
			if res2.Changed {
				t.Errorf("second run changed something: %+v", res2.Steps)
			}
			if got := bus.takeCalls(); !slices.Equal(got, tt.wantBus2) {
				t.Errorf("second run's D-Bus calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantBus2, "\n"))
			}
			if got := runner.takeCalls(); !slices.Equal(got, tt.wantRun2) {
				t.Errorf("second run's commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantRun2, "\n"))
			}
			if res2.Onboarding.Key == "" || res2.Onboarding.Key == ob.Key {
				t.Errorf("second run's key %q", res2.Onboarding.Key)
			}

			ures, err := Uninstall(ctx, UninstallOptions{Root: root, Bus: opts.Bus, Run: runner})
			if err != nil {
				t.Fatalf("Uninstall: %v\nsteps: %+v", err, ures.Steps)
			}
			if got := bus.takeCalls(); !slices.Equal(got, tt.wantBusU) {
				t.Errorf("uninstall's D-Bus calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantBusU, "\n"))
			}
			if got := runner.takeCalls(); !slices.Equal(got, tt.wantRunU) {
				t.Errorf("uninstall's commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantRunU, "\n"))
			}
			for p := range pc.wantServiceFiles {
				if fileExists(root, p) {
					t.Errorf("%s still there after uninstall", p)
				}
			}
			if bus.enabled || bus.active || bus.zone != "" || bus.pzone != "" || runner.enabled || runner.running {
				t.Errorf("after uninstall: bus %+v, runner %+v", bus, runner)
			}
		})
	}
}

// An https:// URL with a DNS name moves the listeners to where clients of
// such a server dial, on a host whose web interface doesn't hold them.
func TestInitHTTPSURL(t *testing.T) {
	for _, pc := range platformCases() {
		if pc.wantKind != PlatformSystemd && pc.wantKind != PlatformOpenWrt {
			continue
		}
		t.Run(pc.name, func(t *testing.T) {
			root := makeRoot(t, pc)
			opts := InitOptions{Root: root, NoService: true, Net: &pc.net, Now: fixedNow, ServerURL: "https://home.example.net"}
			res, err := Init(context.Background(), opts)
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			cfg, err := LoadConfig(filepath.Join(root, pc.wantCfg))
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			for _, w := range res.Warnings {
				codes = append(codes, w.Code)
			}
			moved := pc.wantKind == PlatformSystemd
			if got := cfg.Server.Listen == ":80" && cfg.Relay.Listen == ":443"; got != moved {
				t.Errorf("server.listen %q, relay.listen %q; moved to :80/:443 = %v, want %v", cfg.Server.Listen, cfg.Relay.Listen, got, moved)
			}
			if slices.Contains(codes, "https-port") == moved || slices.Contains(codes, "public-http-url") {
				t.Errorf("warnings %q", codes)
			}
			if res2, err := Init(context.Background(), opts); err != nil || res2.Changed {
				t.Errorf("second run: changed %v, err %v", res2.Changed, err)
			}
		})
	}
}

func TestInitDDNS(t *testing.T) {
	pc := platformCases()[0]
	for _, c := range platformCases() {
		if c.wantKind == PlatformSystemd {
			pc = c
			break
		}
	}
	cgnatNet := netOf("eth0", "100.64.0.2/24", "192.168.1.0/24")
	cgnatNet.GlobalIPv6 = []netip.Addr{netip.MustParseAddr("2001:db8:100::2")}
	ddns := DDNSConfig{Provider: "rfc2136", Name: "Home.Example.NET", CredentialsFile: "/etc/homenet/ddns.env"}
	good := "RFC2136_NAMESERVER=192.0.2.53\nRFC2136_TSIG_KEY=k\nRFC2136_TSIG_SECRET=c2VjcmV0\n"
	tests := []struct {
		name      string
		creds     string // "" for no file
		mode      os.FileMode
		ddns      DDNSConfig
		wantErr   string
		wantURL   string
		wantReach string
	}{
		{name: "carrier NAT with IPv6", creds: good, mode: 0o600, ddns: ddns, wantURL: "https://home.example.net:8443", wantReach: ReachIPv6Only},
		{name: "credentials readable by others", creds: good, mode: 0o644, ddns: ddns, wantErr: "ddns.credentials_file: credentials file"},
		{name: "no credentials file", ddns: ddns, wantErr: "no such file"},
		{name: "credentials lack a key", creds: "RFC2136_NAMESERVER=192.0.2.53\n", mode: 0o600, ddns: ddns, wantErr: "RFC2136_TSIG_KEY is missing"},
		{name: "unknown provider", creds: good, mode: 0o600, ddns: DDNSConfig{Provider: "godaddy", Name: "home.example.net", CredentialsFile: ddns.CredentialsFile}, wantErr: "ddns.provider"},
		{name: "name outside the zone", creds: good, mode: 0o600, ddns: DDNSConfig{Provider: "rfc2136", Name: "home.example.net", Zone: "example.org", CredentialsFile: ddns.CredentialsFile}, wantErr: "not inside ddns.zone"},
		{name: "name without provider", ddns: DDNSConfig{Name: "home.example.net"}, wantErr: "--ddns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := makeRoot(t, pc)
			if tt.creds != "" {
				p := filepath.Join(root, ddns.CredentialsFile)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(tt.creds), tt.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(p, tt.mode)
			}
			before := snapshot(t, root)
			opts := InitOptions{Root: root, NoService: true, Net: &cgnatNet, Now: fixedNow, DDNS: tt.ddns}
			res, err := Init(context.Background(), opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Init error %v, want one saying %q", err, tt.wantErr)
				}
				if d := diffSnapshots(before, snapshot(t, root)); len(d) > 0 {
					t.Errorf("a refused init changed files: %v", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			cfg, err := LoadConfig(filepath.Join(root, pc.wantCfg))
			if err != nil {
				t.Fatal(err)
			}
			if res.ServerURL != tt.wantURL || cfg.Server.URL != tt.wantURL || res.Reachability.Case != tt.wantReach {
				t.Errorf("server URL %q (config %q), reachability %q; want %q, %q", res.ServerURL, cfg.Server.URL, res.Reachability.Case, tt.wantURL, tt.wantReach)
			}
			if cfg.Relay.Listen != ":8443" || cfg.Server.Listen != "127.0.0.1:8080" || cfg.DDNS.Name != "home.example.net" || !cfg.DDNS.IPv4 || !cfg.DDNS.IPv6 {
				t.Errorf("config: relay.listen %q, server.listen %q, ddns %+v", cfg.Relay.Listen, cfg.Server.Listen, cfg.DDNS)
			}
			var cgnatFix string
			for _, w := range res.Warnings {
				if w.Code == "cgnat" {
					cgnatFix = w.Fix
				}
			}
			for _, want := range []string{"2001:db8:100::2", "TCP 8443 (control and relay)", "UDP 3478 (STUN)", "UDP 41641 (WireGuard)", "IPv6 firewall"} {
				if !strings.Contains(cgnatFix, want) {
					t.Errorf("cgnat warning's fix %q does not say %q", cgnatFix, want)
				}
			}
			if strings.Contains(cgnatFix, "8080") {
				t.Errorf("cgnat warning's fix lists the loopback-only control port: %q", cgnatFix)
			}
			if res2, err := Init(context.Background(), opts); err != nil || res2.Changed {
				t.Errorf("second run: changed %v, err %v", res2.Changed, err)
			}
		})
	}
}

func TestInitAsksDDNS(t *testing.T) {
	var pc platformCase
	for _, c := range platformCases() {
		if c.wantKind == PlatformSystemd {
			pc = c
			break
		}
	}
	root := makeRoot(t, pc)
	credPath := "/etc/homenet/ddns.env"
	if err := os.MkdirAll(filepath.Join(root, "/etc/homenet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, credPath), []byte("CLOUDFLARE_DNS_API_TOKEN=t0k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := netOf("eth0", "100.64.0.2/24", "192.168.1.0/24")
	n.GlobalIPv6 = []netip.Addr{netip.MustParseAddr("2001:db8:100::2")}
	answers := map[string][]string{
		"DNS provider":     {"godaddy", "cloudflare"},
		"DNS name":         {"home", "home.example.net"},
		"Credentials file": {"ddns.env", "/etc/homenet/nope", credPath},
	}
	var asked []string
	ask := func(q, def string) (string, error) {
		for prefix, as := range answers {
			if strings.HasPrefix(q, prefix) {
				asked = append(asked, prefix)
				if len(as) == 0 {
					return "", fmt.Errorf("asked %q once too often", q)
				}
				answers[prefix] = as[1:]
				return as[0], nil
			}
		}
		return "", nil // the defaults for the URL and the LAN
	}
	var log []string
	res, err := Init(context.Background(), InitOptions{Root: root, NoService: true, Net: &n, Now: fixedNow, Ask: ask,
		Log: func(s string) { log = append(log, s) }})
	if err != nil {
		t.Fatalf("Init: %v\n%s", err, strings.Join(log, "\n"))
	}
	if res.ServerURL != "https://home.example.net:8443" {
		t.Errorf("server URL %q", res.ServerURL)
	}
	if len(asked) != 7 {
		t.Errorf("asked %v; want the provider twice, the name twice, the file three times", asked)
	}
	for _, want := range []string{`"godaddy" is not one of`, `"home" is not a DNS name`, `"ddns.env" is not an absolute path`, "nope"} {
		if !strings.Contains(strings.Join(log, "\n"), want) {
			t.Errorf("init did not say %q:\n%s", want, strings.Join(log, "\n"))
		}
	}
}

func TestInitPublicWANGetsHTTPS(t *testing.T) {
	var pc platformCase
	for _, c := range platformCases() {
		if c.wantKind == PlatformSystemd {
			pc = c
			break
		}
	}
	tests := []struct {
		name    string
		n       NetInfo
		wantURL string
		listen  [2]string
	}{
		{"public WAN", netOf("eth0", "198.51.100.4/24", "192.168.1.0/24"), "https://198.51.100.4", [2]string{":80", ":443"}},
		{"carrier NAT WAN", netOf("eth0", "100.64.0.2/24", "192.168.1.0/24"), "http://100.64.0.2:8080", [2]string{":8080", ":8443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := makeRoot(t, pc)
			res, err := Init(context.Background(), InitOptions{Root: root, NoService: true, Net: &tt.n, Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(filepath.Join(root, pc.wantCfg))
			if err != nil {
				t.Fatal(err)
			}
			if res.ServerURL != tt.wantURL || [2]string{cfg.Server.Listen, cfg.Relay.Listen} != tt.listen {
				t.Errorf("URL %s, listeners %q %q; want %s, %q", res.ServerURL, cfg.Server.Listen, cfg.Relay.Listen, tt.wantURL, tt.listen)
			}
			if tt.listen[0] == ":80" {
				if ipCertChallengeAddr(cfg) != ":80" {
					t.Errorf("serve would not ask for an IP certificate with this config")
				}
				for _, w := range res.Warnings {
					if w.Code == "public-http-url" || w.Code == "https-port" {
						t.Errorf("warning %s: %s", w.Code, w.Message)
					}
				}
			}
		})
	}
}
