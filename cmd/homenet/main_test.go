package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/control"
	"homenet/control/store"
	"tailscale.com/tailcfg"
)

// fakeAdmin is a control.Admin that records calls and answers with one key,
// node and route, or with none when empty.
type fakeAdmin struct {
	empty bool

	mu    sync.Mutex
	calls []string
}

func (f *fakeAdmin) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeAdmin) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeAdmin) CreateAuthKey(ctx context.Context, o control.AuthKeyOptions) (control.AuthKeyInfo, string, error) {
	f.record("CreateAuthKey %+v", o)
	now := time.Now()
	return control.AuthKeyInfo{ID: 1, Prefix: "hn-k1", Reusable: o.Reusable, Ephemeral: o.Ephemeral, Tags: o.Tags,
		Created: now, Expiry: now.Add(24 * time.Hour), Valid: true}, "hn-k1-s3cret", nil
}

func (f *fakeAdmin) AuthKeys(ctx context.Context) ([]control.AuthKeyInfo, error) {
	f.record("AuthKeys")
	if f.empty {
		return nil, nil
	}
	now := time.Now()
	return []control.AuthKeyInfo{{ID: 1, Prefix: "hn-k1", Tags: []string{"tag:nas"}, Created: now.Add(-3 * time.Minute), Expiry: now.Add(23 * time.Hour), Valid: true, State: "valid"},
		{ID: 2, Prefix: "hn-k2", Created: now.Add(-time.Hour), Expiry: now.Add(-time.Minute), State: "revoked"}}, nil
}

func (f *fakeAdmin) ExpireAuthKey(ctx context.Context, id int64) error {
	f.record("ExpireAuthKey %d", id)
	return nil
}

func (f *fakeAdmin) Nodes(ctx context.Context) ([]control.NodeInfo, error) {
	f.record("Nodes")
	if f.empty {
		return nil, nil
	}
	return []control.NodeInfo{{ID: 3, Name: "nas", OS: "linux", Addresses: []netip.Addr{netip.MustParseAddr("100.86.0.3")},
		LastSeen: time.Now().Add(-time.Hour), Created: time.Now()}}, nil
}

func (f *fakeAdmin) ApproveRegistration(ctx context.Context, code string) (control.NodeInfo, error) {
	f.record("ApproveRegistration %s", code)
	return control.NodeInfo{ID: 4, Name: "phone", Addresses: []netip.Addr{netip.MustParseAddr("100.86.0.4")}}, nil
}

func (f *fakeAdmin) DeleteAuthKey(ctx context.Context, id int64) error {
	f.record("DeleteAuthKey %d", id)
	return nil
}

func (f *fakeAdmin) PendingLogins(ctx context.Context) ([]control.PendingLogin, error) {
	f.record("PendingLogins")
	return []control.PendingLogin{{Code: "k7f2q9", Hostname: "pixel-8", OS: "android", MachineKey: "mkey:0123456789abcdef", Created: time.Now().Add(-2 * time.Minute)}}, nil
}

func (f *fakeAdmin) DenyRegistration(ctx context.Context, code string) error {
	f.record("DenyRegistration %s", code)
	return nil
}

func (f *fakeAdmin) RenameNode(ctx context.Context, id tailcfg.NodeID, name string) error {
	f.record("RenameNode %d %s", id, name)
	return nil
}

func (f *fakeAdmin) ExpireNode(ctx context.Context, id tailcfg.NodeID) error {
	f.record("ExpireNode %d", id)
	return nil
}

func (f *fakeAdmin) DeleteNode(ctx context.Context, id tailcfg.NodeID) error {
	f.record("DeleteNode %d", id)
	if id == 99 {
		return fmt.Errorf("node 99: %w", store.ErrNotFound)
	}
	return nil
}

func (f *fakeAdmin) Routes(ctx context.Context) ([]control.RouteInfo, error) {
	f.record("Routes")
	if f.empty {
		return nil, nil
	}
	return []control.RouteInfo{{NodeID: 3, NodeName: "nas", Prefix: netip.MustParsePrefix("192.168.1.0/24")}}, nil
}

func (f *fakeAdmin) SetRouteApproved(ctx context.Context, id tailcfg.NodeID, p netip.Prefix, approved bool) error {
	f.record("SetRouteApproved %d %s %v", id, p, approved)
	return nil
}

func (f *fakeAdmin) Status(ctx context.Context) (control.Status, error) {
	f.record("Status")
	return control.Status{Version: "v0.1.0", ServerURL: "http://gw:8080", Prefix4: netip.MustParsePrefix("100.86.0.0/16"),
		Started: time.Now().Add(-time.Hour), Nodes: 1, Extra: map[string]any{
			"gateway":      map[string]any{"state": "Running", "tun": "tailscale0", "firewall": "nftables", "advertised_routes": []string{"192.168.1.0/24"}},
			"gateway_lan":  map[string]any{"routes": []string{"192.168.1.0/24"}, "wan": "eth0", "why": []string{"br-lan: 192.168.1.0/24 (private, directly connected)"}},
			"lan_dns":      map[string]any{"resolver": "192.168.1.1", "domains": []string{"lan"}, "why": "split DNS for lan via 192.168.1.1: domain from /etc/config/dhcp"},
			"reachability": map[string]any{"case": "ipv6-only", "global_ipv6": "2001:db8:100::2", "ipv6_interface": "eth0", "advice": "No public IPv4 (the WAN address 100.64.0.2 is carrier-grade NAT)"},
			"ddns": map[string]any{"provider": "alidns", "name": "home.example.net", "published": []string{"A none", "AAAA 2001:db8:100::2"},
				"updates": 2, "failures": 1, "last_error": "alidns AddDomainRecord: HTTP 400 Throttling.User", "last_error_at": time.Now().Add(-time.Minute), "next_retry": time.Now().Add(4 * time.Minute)},
			"certificate": map[string]any{"mode": "acme-dns-01", "names": []string{"home.example.net"}, "not_after": time.Now().Add(60 * 24 * time.Hour)},
			"upnp": map[string]any{"protocol": "upnp-igd", "router": "192.168.1.1", "external_ipv4": "203.0.113.9", "mappings": []map[string]any{
				{"proto": "tcp", "internal": 8080, "external": 8080, "expires": time.Now().Add(50 * time.Minute)},
				{"proto": "udp", "internal": 3478, "error": "ConflictInMappingEntry"}}},
		}}, nil
}

// runCLI runs the CLI with args and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// startFakeServer serves the admin API of fake on a socket in a temporary
// state dir and returns the path of a config file pointing at it.
func startFakeServer(t *testing.T, fake control.Admin) string {
	t.Helper()
	dir := t.TempDir()
	l, err := control.ListenAdmin(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.ServeAdmin(ctx, l, fake, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	config := filepath.Join(dir, "homenet.toml")
	if err := os.WriteFile(config, fmt.Appendf(nil, "state_dir = %q\n", dir), 0o600); err != nil {
		t.Fatal(err)
	}
	return config
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string // in the first line of stderr
		wantUse string // in the usage that follows
	}{
		{nil, "missing command", "usage: homenet [--config FILE] [--json] COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "keys create"},
		{[]string{"--reusable", "keys", "create"}, "flag provided but not defined: -reusable (only --config FILE and --json may come before the command", "usage: homenet [--config FILE] [--json] COMMAND"},
		{[]string{"--config"}, "flag needs an argument: -config", "usage: homenet [--config FILE]"},
		{[]string{"--json"}, "missing command", "usage: homenet [--config FILE]"},
		{[]string{"--json", "keys"}, "missing keys command", "keys create"},
		{[]string{"keys"}, "missing keys command", "keys expire"},
		{[]string{"keys", "frob"}, `unknown keys command "frob"`, "keys list"},
		{[]string{"keys", "expire"}, "keys expire: missing ID", "usage: homenet keys expire [flags] ID"},
		{[]string{"keys", "expire", "abc"}, `invalid key ID "abc"`, "usage: homenet keys expire"},
		{[]string{"keys", "expire", "0"}, `invalid key ID "0"`, "usage: homenet keys expire"},
		{[]string{"keys", "create", "--expiry", "soon"}, `invalid value "soon" for flag -expiry`, "--expiry DURATION"},
		{[]string{"keys", "create", "--expiry", "-1h"}, "must be positive", "--reusable"},
		{[]string{"keys", "create", "--tags", "web_1"}, `"tag:web_1"`, "--tags"},
		{[]string{"keys", "create", "extra"}, `unexpected argument "extra"`, "usage: homenet keys create"},
		{[]string{"keys", "list", "--bogus"}, "flag provided but not defined: -bogus", "usage: homenet keys list"},
		{[]string{"nodes", "rename", "3"}, "missing NAME", "usage: homenet nodes rename [flags] ID NAME"},
		{[]string{"nodes", "rename", "x", "nas"}, `invalid node ID "x"`, "usage: homenet nodes rename"},
		{[]string{"nodes", "expire", "1", "2"}, `unexpected argument "2"`, "usage: homenet nodes expire"},
		{[]string{"nodes", "delete", "-5"}, "flag provided but not defined: -5", "usage: homenet nodes delete"},
		{[]string{"nodes", "approve"}, "missing CODE", "usage: homenet nodes approve"},
		{[]string{"routes", "approve", "3", "10.0.0.0/33"}, `invalid prefix "10.0.0.0/33"`, "usage: homenet routes approve"},
		{[]string{"routes", "unapprove", "3", "10.0.0.1/24"}, "did you mean 10.0.0.0/24?", "usage: homenet routes unapprove"},
		{[]string{"routes", "approve", "3"}, "missing PREFIX", "ID PREFIX"},
		{[]string{"serve", "now"}, `unexpected argument "now"`, "usage: homenet serve"},
		{[]string{"serve", "--log-level", "loud"}, "invalid value", "--log-level LEVEL"},
		{[]string{"version", "--config", "x"}, "flag provided but not defined: -config", "usage: homenet version"},
		{[]string{"help", "frob"}, `unknown command "frob"`, "usage: homenet help"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			first, rest, _ := strings.Cut(stderr, "\n")
			if !strings.HasPrefix(first, "homenet") || !strings.Contains(first, tt.wantErr) {
				t.Errorf("first line of stderr %q, want it to contain %q", first, tt.wantErr)
			}
			if !strings.Contains(rest, tt.wantUse) {
				t.Errorf("usage after the error does not contain %q:\n%s", tt.wantUse, rest)
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"help"}, []string{"usage: homenet [--config FILE] [--json] COMMAND", "serve", "keys create", "routes unapprove", "version", "--config and --json may come before the command"}},
		{[]string{"--help"}, []string{"usage: homenet [--config FILE] [--json] COMMAND"}},
		{[]string{"--config", "x", "-h"}, []string{"usage: homenet [--config FILE] [--json] COMMAND"}},
		{[]string{"help", "keys"}, []string{"keys create", "keys list", "keys expire"}},
		{[]string{"help", "nodes", "rename"}, []string{"usage: homenet nodes rename [flags] ID NAME", "--config FILE", "--json"}},
		{[]string{"keys", "create", "--help"}, []string{"--reusable", "--ephemeral", "--expiry DURATION", "--tags TAGS"}},
		{[]string{"serve", "-h"}, []string{"--log-level LEVEL", "--config FILE"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit code %d, stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output does not contain %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestCLIRuntimeErrors(t *testing.T) {
	dir := t.TempDir()
	noServer := filepath.Join(dir, "homenet.toml")
	if err := os.WriteFile(noServer, fmt.Appendf(nil, "state_dir = %q\n", dir), 0o600); err != nil {
		t.Fatal(err)
	}
	badConfig := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badConfig, []byte("[tailnet]\nprefix4 = \"10.0.0.0/8\"\ncolour = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := startFakeServer(t, &fakeAdmin{})
	tests := []struct {
		args []string
		want string // stderr
	}{
		{[]string{"status", "--config", filepath.Join(dir, "missing.toml")}, "homenet: reading config: open " + filepath.Join(dir, "missing.toml")},
		{[]string{"--config", filepath.Join(dir, "missing.toml"), "status"}, "homenet: reading config: open " + filepath.Join(dir, "missing.toml")},
		{[]string{"keys", "list", "--config", badConfig}, "homenet: config " + badConfig + ": tailnet.colour: unknown key"},
		{[]string{"nodes", "list", "--config", noServer}, `homenet: cannot reach homenet at ` + filepath.Join(dir, "admin.sock") + `: is "homenet serve" running?`},
		{[]string{"nodes", "delete", "99", "--config", config}, "homenet: deleting node 99: node 99: not found"},
		{[]string{"serve", "--config", badConfig}, "homenet: config " + badConfig},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitError {
				t.Errorf("exit code %d, want %d", code, exitError)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting with %q", stderr, tt.want)
			}
		})
	}
}

func TestCLIAdminCommands(t *testing.T) {
	fake := &fakeAdmin{}
	config := startFakeServer(t, fake)
	tests := []struct {
		args     []string
		wantCall string
		want     []string // in stdout
	}{
		{[]string{"keys", "create"}, "CreateAuthKey {Reusable:false Ephemeral:false Expiry:0s Tags:[]}", nil},
		{[]string{"keys", "create", "--reusable", "--ephemeral", "--expiry", "30d", "--tags", "nas, tag:media"},
			"CreateAuthKey {Reusable:true Ephemeral:true Expiry:720h0m0s Tags:[tag:nas tag:media]}", nil},
		{[]string{"keys", "create", "--gateway"}, "CreateAuthKey {Reusable:false Ephemeral:false Expiry:24h0m0s Tags:[tag:gateway]}", nil},
		{[]string{"keys", "list"}, "AuthKeys", []string{"ID", "PREFIX", "EXPIRES", "STATE", "hn-k1", "tag:nas", "3m ago", "in 23h", "valid", "hn-k2", "1m ago", "revoked"}},
		{[]string{"keys", "expire", "7"}, "ExpireAuthKey 7", []string{"Expired key 7."}},
		{[]string{"keys", "delete", "7"}, "DeleteAuthKey 7", []string{"Deleted key 7."}},
		{[]string{"nodes", "list"}, "Nodes", []string{"ID", "NAME", "ADDRESSES", "LAST SEEN", "nas", "100.86.0.3", "1h ago", "never"}},
		{[]string{"nodes", "pending"}, "PendingLogins", []string{"CODE", "HOSTNAME", "k7f2q9", "pixel-8", "android", "mkey:01234567…", "2m ago", "homenet nodes approve CODE"}},
		{[]string{"nodes", "deny", "k7f2q9"}, "DenyRegistration k7f2q9", []string{"Denied the login k7f2q9"}},
		{[]string{"nodes", "approve", "abc123"}, "ApproveRegistration abc123", []string{"Approved node phone (ID 4, 100.86.0.4)."}},
		{[]string{"nodes", "approve", "http://gw:8080/register/xyz"}, "ApproveRegistration xyz", nil},
		{[]string{"nodes", "rename", "3", "media-box"}, "RenameNode 3 media-box", []string{"Renamed node 3 to media-box."}},
		{[]string{"nodes", "expire", "3"}, "ExpireNode 3", nil},
		{[]string{"nodes", "delete", "3"}, "DeleteNode 3", []string{"Deleted node 3."}},
		{[]string{"routes", "list"}, "Routes", []string{"NODE ID", "PREFIX", "APPROVED", "192.168.1.0/24", "subnet"}},
		{[]string{"routes", "approve", "3", "192.168.1.0/24"}, "SetRouteApproved 3 192.168.1.0/24 true", nil},
		{[]string{"routes", "unapprove", "3", "::/0"}, "SetRouteApproved 3 ::/0 false", nil},
		{[]string{"status"}, "Status", []string{"Version:", "v0.1.0", "Server URL:", "100.86.0.0/16", "1h ago", "Gateway:", "Running on tailscale0, firewall nftables", "192.168.1.0/24", "Detected:", "br-lan: 192.168.1.0/24", "LAN DNS:", "split DNS for lan via 192.168.1.1",
			"Reachability:", "ipv6-only", "Global IPv6:", "2001:db8:100::2 (eth0)", "carrier-grade NAT",
			"Dynamic DNS:", "home.example.net at alidns, 2 updates, 1 failures", "A none, AAAA 2001:db8:100::2", "Throttling.User (1m ago; next try in 4m)",
			"Certificate:", "acme-dns-01 for home.example.net, valid until", "(in 60d)",
			"Port mappings:", "upnp-igd at 192.168.1.1, external address 203.0.113.9", "TCP 8080 → this host's 8080, lease ends in 50m", "UDP 3478: ConflictInMappingEntry"}},
	}
	for _, tt := range tests {
		for _, v := range []struct {
			asJSON bool
			before bool // the flags before the command, not after it
		}{{false, false}, {true, false}, {false, true}, {true, true}} {
			flags := []string{"--config", config}
			if v.asJSON {
				flags = append(flags, "--json")
			}
			args := slices.Concat(tt.args, flags)
			if v.before {
				args = slices.Concat(flags, tt.args)
			}
			asJSON := v.asJSON
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := runCLI(t, args...)
				if code != exitOK {
					t.Fatalf("exit code %d, stderr %s", code, stderr)
				}
				if call := fake.lastCall(); call != tt.wantCall {
					t.Errorf("server saw %q, want %q", call, tt.wantCall)
				}
				if asJSON {
					if !json.Valid([]byte(stdout)) {
						t.Errorf("--json output is not JSON:\n%s", stdout)
					}
					return
				}
				for _, w := range tt.want {
					if !strings.Contains(stdout, w) {
						t.Errorf("output does not contain %q:\n%s", w, stdout)
					}
				}
			})
		}
	}
}

// TestCLIGlobalFlags: --config and --json work before the command too, as
// in "homenet --config FILE keys create"; flags after the command win, and
// commands without such a flag ignore it there.
func TestCLIGlobalFlags(t *testing.T) {
	fake := &fakeAdmin{}
	config := startFakeServer(t, fake)
	tests := []struct {
		args     []string
		wantCall string // "" for none
		want     string // in stdout
		wantJSON bool
	}{
		{[]string{"--config", config, "keys", "create"}, "CreateAuthKey {Reusable:false Ephemeral:false Expiry:0s Tags:[]}", "hn-k1-s3cret\n", false},
		{[]string{"--config=" + config, "keys", "create", "--reusable"}, "CreateAuthKey {Reusable:true Ephemeral:false Expiry:0s Tags:[]}", "hn-k1-s3cret\n", false},
		{[]string{"-config", config, "--json", "status"}, "Status", `"server_url": "http://gw:8080"`, true},
		{[]string{"--json", "status", "--config", config}, "Status", `"server_url": "http://gw:8080"`, true},
		{[]string{"--json", "--config", config, "nodes", "rename", "3", "nas", "--json=false"}, "RenameNode 3 nas", "Renamed node 3 to nas.\n", false},
		{[]string{"--config", "/nonexistent/homenet.toml", "status", "--config", config}, "Status", "Server URL:", false},
		{[]string{"--config", "/nonexistent/homenet.toml", "--json", "version"}, "", `"go": "go1.`, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			before := fake.lastCall()
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitOK {
				t.Fatalf("exit code %d, stderr %s", code, stderr)
			}
			if call := fake.lastCall(); tt.wantCall != "" && call != tt.wantCall {
				t.Errorf("server saw %q, want %q", call, tt.wantCall)
			} else if tt.wantCall == "" && call != before {
				t.Errorf("server saw %q, want no call", call)
			}
			if !strings.Contains(stdout, tt.want) {
				t.Errorf("stdout does not contain %q:\n%s", tt.want, stdout)
			}
			if json.Valid([]byte(stdout)) != tt.wantJSON {
				t.Errorf("stdout is JSON: %v, want %v:\n%s", !tt.wantJSON, tt.wantJSON, stdout)
			}
		})
	}
}

// TestCLIEmptyLists: a list with nothing in it says what to do, except
// with --json, which prints [].
func TestCLIEmptyLists(t *testing.T) {
	config := startFakeServer(t, &fakeAdmin{empty: true})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"keys", "list"}, "No keys yet: homenet keys create\n"},
		{[]string{"nodes", "list"}, "No nodes yet: on a phone or computer, tailscale up --login-server http://gw:8080 --auth-key KEY, with a KEY from homenet keys create\n"},
		{[]string{"routes", "list"}, "No routes yet: set gateway.enabled = true for this host's LAN and exit node, or on another node: tailscale set --advertise-routes PREFIX\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, slices.Concat(tt.args, []string{"--config", config})...)
			if code != exitOK || stdout != tt.want {
				t.Errorf("exit code %d, stdout %q, stderr %q; want stdout %q", code, stdout, stderr, tt.want)
			}
			code, stdout, stderr = runCLI(t, slices.Concat(tt.args, []string{"--config", config, "--json"})...)
			if code != exitOK || stdout != "[]\n" {
				t.Errorf("--json: exit code %d, stdout %q, stderr %q; want []", code, stdout, stderr)
			}
		})
	}
}

func TestCLIKeysCreateOutput(t *testing.T) {
	config := startFakeServer(t, &fakeAdmin{})

	code, stdout, stderr := runCLI(t, "keys", "create", "--reusable", "--config", config)
	if code != exitOK {
		t.Fatalf("exit code %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "hn-k1-s3cret" {
		t.Errorf("last line of stdout %q, want the key", last)
	}
	if want := "Created reusable key hn-k1 (ID 1) expiring in 24h."; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not contain %q", stderr, want)
	}

	code, stdout, _ = runCLI(t, "keys", "create", "--json", "--config", config)
	var got control.CreatedAuthKey
	if err := json.Unmarshal([]byte(stdout), &got); code != exitOK || err != nil {
		t.Fatalf("exit code %d, JSON %v:\n%s", code, err, stdout)
	}
	if got.Key != "hn-k1-s3cret" || got.ID != 1 || got.Prefix != "hn-k1" {
		t.Errorf("JSON %+v, want key hn-k1-s3cret with ID 1", got)
	}
}

func TestCLIVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != exitOK || !strings.Contains(stdout, "homenet") || !strings.Contains(stdout, "go1.") {
		t.Errorf("exit code %d, output:\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(stdout), &v); code != exitOK || err != nil || v.Go == "" || v.Version == "" {
		t.Errorf("exit code %d, JSON %+v (%v):\n%s", code, v, err, stdout)
	}
}

func TestRelTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now, "now"},
		{now.Add(-300 * time.Millisecond), "now"},
		{now.Add(-45 * time.Second), "45s ago"},
		{now.Add(-3*time.Minute - 10*time.Second), "3m ago"},
		{now.Add(-59*time.Minute - 50*time.Second), "1h ago"},
		{now.Add(24*time.Hour - time.Millisecond), "in 24h"},
		{now.Add(23*time.Hour + 10*time.Minute), "in 23h"},
		{now.Add(47 * time.Hour), "in 47h"},
		{now.Add(-49 * time.Hour), "2d ago"},
		{now.Add(90 * 24 * time.Hour), "in 90d"},
	}
	for _, tt := range tests {
		if got := relTime(now, tt.t, "never"); got != tt.want {
			t.Errorf("relTime(now%+v) = %q, want %q", tt.t.Sub(now), got, tt.want)
		}
	}
}

// TestJoinedHost: on a host whose agent joins a control server elsewhere,
// status shows that server and the agent, and admin commands name the
// server where they belong.
func TestJoinedHost(t *testing.T) {
	const url = "https://vps.example.net"
	config := startFakeServer(t, control.JoinedAdmin{URL: url, StatusFunc: func(context.Context) (control.Status, error) {
		return control.Status{Version: "v0.1.0", ServerURL: url, Joined: true, Started: time.Now().Add(-time.Minute), Extra: map[string]any{
			"gateway": map[string]any{"state": "Running", "connected": true, "tun": "tailscale0", "firewall": "nftables",
				"advertised_routes": []string{"192.168.1.0/24", "0.0.0.0/0"}, "approved_routes": []string{"192.168.1.0/24"}},
		}}, nil
	}})
	code, stdout, stderr := runCLI(t, "status", "--config", config)
	if code != exitOK {
		t.Fatalf("status: exit %d, %s", code, stderr)
	}
	for _, want := range []string{"Control server:  " + url + " (joined", "Connected:       yes", "Approved:      192.168.1.0/24 (not approved: 0.0.0.0/0; approve them on the control server)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "Nodes:") {
		t.Errorf("status of a joined host counts nodes:\n%s", stdout)
	}
	code, _, stderr = runCLI(t, "nodes", "list", "--config", config)
	if code == exitOK || !strings.Contains(stderr, "its gateway joins "+url+", so list nodes there") {
		t.Errorf("nodes list: exit %d, stderr %q", code, stderr)
	}
}
