package appliance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func systemdCase(t *testing.T) platformCase {
	for _, c := range platformCases() {
		if c.wantKind == PlatformSystemd {
			return c
		}
	}
	t.Fatal("no systemd platform case")
	return platformCase{}
}

// TestInitJoin: init --join writes a config that runs the agent only, with
// the key in a 0600 file, and changes nothing when run again.
func TestInitJoin(t *testing.T) {
	pc := systemdCase(t)
	root := makeRoot(t, pc)
	n := netOf("eth0", "100.64.0.2/24", "192.168.1.0/24")
	opts := InitOptions{Root: root, NoService: true, Net: &n, Now: fixedNow, Join: "https://vps.example.net", AuthKey: "tskey-auth-k1"}
	res, err := Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(root, pc.wantCfg))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Joins() || cfg.Gateway.ControlURL != opts.Join || !slices.Equal(cfg.Gateway.Routes, []string{"192.168.1.0/24"}) {
		t.Errorf("config: control_url %q, routes %v", cfg.Gateway.ControlURL, cfg.Gateway.Routes)
	}
	raw, _ := os.ReadFile(filepath.Join(root, pc.wantCfg))
	if strings.Contains(string(raw), "[server]") || strings.Contains(string(raw), "[relay]") {
		t.Errorf("a joining config has [server] or [relay], which it ignores:\n%s", raw)
	}
	keyPath := filepath.Join(root, cfg.Gateway.AuthKeyFile)
	b, err := os.ReadFile(keyPath)
	if err != nil || string(b) != "tskey-auth-k1\n" {
		t.Errorf("key file: %q, %v", b, err)
	}
	if fi, _ := os.Stat(keyPath); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi)
	}
	for _, p := range exposedPorts(&cfg) {
		if p.proto == "tcp" {
			t.Errorf("a joining host exposes %s %s (%s)", p.proto, p.port, p.role)
		}
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings for a joining host: %+v", res.Warnings)
	}

	res, err = Init(context.Background(), opts)
	if err != nil || res.Changed {
		t.Errorf("second run: changed %v, err %v; steps %+v", res.Changed, err, res.Steps)
	}
	opts.AuthKey = "" // the key is in place
	if _, err := Init(context.Background(), opts); err != nil {
		t.Errorf("rerun without --auth-key: %v", err)
	}
}

func TestInitJoinErrors(t *testing.T) {
	pc := systemdCase(t)
	n := netOf("eth0", "100.64.0.2/24", "192.168.1.0/24")
	tests := []struct {
		name    string
		opts    InitOptions
		wantErr string
	}{
		{"no key", InitOptions{Join: "https://vps.example.net"}, "needs --auth-key KEY: create one on that server with homenet keys create --gateway"},
		{"bad key", InitOptions{Join: "https://vps.example.net", AuthKey: "a b"}, "space"},
		{"bad url", InitOptions{Join: "vps.example.net", AuthKey: "k"}, "--join"},
		{"no gateway", InitOptions{Join: "https://vps.example.net", AuthKey: "k", NoGateway: true}, "--lan none"},
		{"server url", InitOptions{Join: "https://vps.example.net", AuthKey: "k", ServerURL: "https://x"}, "belong on that server"},
		{"key alone", InitOptions{AuthKey: "k"}, "only used with --join"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := makeRoot(t, pc)
			tt.opts.Root, tt.opts.NoService, tt.opts.Net, tt.opts.Now = root, true, &n, fixedNow
			res, err := Init(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if res.Changed {
				t.Errorf("a refused init changed files: %+v", res.Steps)
			}
		})
	}
}

// TestInitVPS: a host with a public address and no LAN becomes a server
// with no gateway of its own, and init says how a home gateway joins it.
func TestInitVPS(t *testing.T) {
	pc := systemdCase(t)
	root := makeRoot(t, pc)
	n := netOf("eth0", "203.0.113.5/24")
	res, err := Init(context.Background(), InitOptions{Root: root, NoService: true, Net: &n, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if res.Gateway || res.ServerURL != "https://203.0.113.5" {
		t.Errorf("gateway %v, URL %s; want off, https://203.0.113.5", res.Gateway, res.ServerURL)
	}
	want := "homenet init --join https://203.0.113.5 --auth-key KEY"
	if !slices.Contains(res.AtHome, want) || !strings.Contains(strings.Join(res.AtHome, "\n"), "keys create --config /etc/homenet/homenet.toml --gateway") {
		t.Errorf("at home: %q; want the key command and %q", res.AtHome, want)
	}
}

// init --root on a directory that does not exist says so, and creates the
// parents of what it writes world-readable (0755), the state dir 0700.
func TestInitRootMissing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "image")
	n := netOf("eth0", "192.168.1.20/24", "192.168.1.0/24")
	res, err := Init(context.Background(), InitOptions{Root: root, NoService: true, Net: &n, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Warnings, func(w Warning) bool { return w.Code == "root-missing" }) {
		t.Errorf("no root-missing warning: %+v", res.Warnings)
	}
	for p, want := range map[string]os.FileMode{"/var/lib": 0o755, "/var/lib/homenet": 0o700, "/etc/homenet": 0o755} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %v", p, err, fi, want)
		}
	}
}
