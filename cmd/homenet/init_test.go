package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/appliance"
)

// piRoot returns a fake root of a Raspberry Pi OS (bookworm) host running
// systemd and NetworkManager.
func piRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release":                         "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
		"etc/NetworkManager/NetworkManager.conf": "[main]\nplugins=ifupdown,keyfile\n",
		"etc/sysctl.d/README.sysctl":             "see sysctl.d(5)\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"run/systemd/system", "var/lib", "etc/NetworkManager/conf.d"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	return root
}

// The flags that make init's outcome independent of this machine's network.
var fixedInit = []string{"--non-interactive", "--lan", "192.168.1.0/24", "--server-url", "http://192.168.1.20:8080"}

func TestCLIInitNoService(t *testing.T) {
	root := piRoot(t)
	args := slices.Concat([]string{"init", "--root", root, "--no-service"}, fixedInit)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit code %d, stderr %s", code, stderr)
	}
	for _, want := range []string{
		"Platform:   Debian GNU/Linux 12 (bookworm) (systemd)",
		"Server URL: http://192.168.1.20:8080 (given with --server-url)",
		"Gateway:    serving 192.168.1.0/24",
		"created  config          /etc/homenet/homenet.toml",
		"created  forwarding      /etc/sysctl.d/99-homenet.conf",
		"created  NetworkManager  /etc/NetworkManager/conf.d/homenet.conf",
		"skipped  service         --no-service",
		"Still to do:\n  /usr/local/bin/homenet serve --config /etc/homenet/homenet.toml",
		"    http://192.168.1.20:8080\n",
		"▀▀▀▀▀▀▀", // the QR code
		"homenet keys create --config /etc/homenet/homenet.toml --expiry 1h",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not contain %q:\n%s", want, stdout)
		}
	}
	cfg, err := appliance.LoadConfig(filepath.Join(root, "etc/homenet/homenet.toml"))
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if cfg.Server.URL != "http://192.168.1.20:8080" || cfg.StateDir != "/var/lib/homenet" || !cfg.Gateway.Enabled || !cfg.Relay.Enabled {
		t.Errorf("config %+v", cfg)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/homenet.service")); err == nil {
		t.Error("unit written despite --no-service")
	}

	// Again: nothing changes, and --json says so.
	code, stdout, _ = runCLI(t, append(args, "--json")...)
	var res appliance.InitResult
	if err := json.Unmarshal([]byte(stdout), &res); code != exitOK || err != nil {
		t.Fatalf("exit code %d, JSON %v:\n%s", code, err, stdout)
	}
	if res.Changed || res.ConfigPath != "/etc/homenet/homenet.toml" || res.Onboarding.ServerURL != "http://192.168.1.20:8080" {
		t.Errorf("second run: %+v", res)
	}
	code, stdout, _ = runCLI(t, args...)
	if code != exitOK || !strings.Contains(stdout, "Nothing changed: homenet was set up already.") {
		t.Errorf("exit code %d:\n%s", code, stdout)
	}

	// Uninstall keeps the config and state; --purge takes them.
	code, stdout, _ = runCLI(t, "uninstall", "--root", root)
	if code != exitOK || !strings.Contains(stdout, "removed  forwarding") || !strings.Contains(stdout, "Kept (delete with --purge): /etc/homenet/homenet.toml, /var/lib/homenet") {
		t.Errorf("uninstall: exit code %d:\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "uninstall", "--root", root, "--purge", "--json")
	var ures appliance.UninstallResult
	if err := json.Unmarshal([]byte(stdout), &ures); code != exitOK || err != nil || !ures.Changed {
		t.Fatalf("uninstall --purge: exit code %d, %v:\n%s", code, err, stdout)
	}
	for _, p := range []string{"etc/homenet", "var/lib/homenet", "etc/sysctl.d/99-homenet.conf", "etc/NetworkManager/conf.d/homenet.conf"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s left after uninstall --purge", p)
		}
	}
	code, stdout, _ = runCLI(t, "uninstall", "--root", root)
	if code != exitOK || !strings.HasPrefix(stdout, "Nothing to remove.") {
		t.Errorf("second uninstall: exit code %d:\n%s", code, stdout)
	}
}

func TestCLIInitService(t *testing.T) {
	// With --root, init writes the unit but talks to no daemon, so it
	// says how to enable it.
	root := piRoot(t)
	code, stdout, stderr := runCLI(t, slices.Concat([]string{"init", "--root", root}, fixedInit)...)
	if code != exitOK {
		t.Fatalf("exit code %d, stderr %s", code, stderr)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/homenet.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/local/bin/homenet serve --config /etc/homenet/homenet.toml\n") {
		t.Errorf("unit (%v):\n%s", err, unit)
	}
	for _, want := range []string{"created  systemd unit", "skipped  systemd", "systemctl daemon-reload && systemctl enable --now homenet.service"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not contain %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = runCLI(t, "uninstall", "--root", root)
	if code != exitOK || !strings.Contains(stdout, "removed  systemd unit") || !strings.Contains(stdout, "systemctl daemon-reload") {
		t.Errorf("uninstall: exit code %d:\n%s", code, stdout)
	}
}

func TestCLIInitInteractive(t *testing.T) {
	oldStdin, oldTerm := initStdin, stdinIsTerminal
	t.Cleanup(func() { initStdin, stdinIsTerminal = oldStdin, oldTerm })
	stdinIsTerminal = func() bool { return true }
	initStdin = strings.NewReader("http://gw.example.net:8080\n10.20.0.0/16\n")

	root := piRoot(t)
	code, stdout, stderr := runCLI(t, "init", "--root", root, "--no-service")
	if code != exitOK {
		t.Fatalf("exit code %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"Platform: Debian GNU/Linux 12 (bookworm) (systemd)", "Server URL phones will use [", "LAN prefixes phones may reach"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "Server URL: http://gw.example.net:8080 (entered by you)") || !strings.Contains(stdout, "serving 10.20.0.0/16") {
		t.Errorf("output:\n%s", stdout)
	}

	// uninstall --purge asks first; "n" keeps everything.
	initStdin = strings.NewReader("n\n")
	code, stdout, stderr = runCLI(t, "uninstall", "--root", root, "--purge")
	if code != exitOK || !strings.Contains(stderr, "Delete the config /etc/homenet/homenet.toml and the state dir /var/lib/homenet") {
		t.Errorf("exit code %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/homenet/homenet.toml")); err != nil || !strings.Contains(stdout, "Kept") {
		t.Errorf("purge went ahead without a yes: %v\n%s", err, stdout)
	}
}

func TestCLIInitUsageErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		wantUse string
	}{
		{[]string{"init", "--lan", "192.168.1.1/24"}, "invalid --lan: 192.168.1.1/24 has host bits set; did you mean 192.168.1.0/24?", "--lan PREFIXES"},
		{[]string{"init", "--lan", "lan"}, `invalid --lan: "lan" is not a CIDR prefix`, "--non-interactive"},
		{[]string{"init", "--server-url", "ftp://gw"}, "invalid --server-url", "--server-url URL"},
		{[]string{"init", "--server-url", "http://gw:8080/homenet"}, "must not have a path", "--server-url URL"},
		{[]string{"init", "--state-dir", "state"}, `--state-dir "state": want an absolute path`, "--state-dir DIR"},
		{[]string{"init", "--config", "homenet.toml"}, `--config "homenet.toml": want an absolute path`, "--config FILE"},
		{[]string{"init", "now"}, `unexpected argument "now"`, "usage: homenet init [flags]"},
		{[]string{"init", "--join", "vps.example.net"}, "invalid --join", "--join URL"},
		{[]string{"init", "--join", "https://vps.example.net", "--lan", "none"}, "--join runs only the gateway agent", "--auth-key KEY"},
		{[]string{"init", "--join", "https://vps.example.net", "--auth-key", "a b"}, "invalid --auth-key", "--auth-key KEY"},
		{[]string{"init", "--auth-key", "tskey-x"}, "--auth-key is only used with --join URL", "--join URL"},
		{[]string{"init", "--purge"}, "flag provided but not defined: -purge", "--no-service"},
		{[]string{"uninstall", "--lan", "x"}, "flag provided but not defined: -lan", "--purge"},
		{[]string{"uninstall", "--config", "x.toml"}, "want an absolute path", "usage: homenet uninstall"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append(tt.args, "--root", t.TempDir())...)
			if code != exitUsage || stdout != "" {
				t.Errorf("exit code %d, stdout %q", code, stdout)
			}
			first, rest, _ := strings.Cut(stderr, "\n")
			if !strings.Contains(first, tt.wantErr) || !strings.Contains(rest, tt.wantUse) {
				t.Errorf("stderr:\n%s\nwant %q then usage with %q", stderr, tt.wantErr, tt.wantUse)
			}
		})
	}
}

func TestCLIInitRuntimeError(t *testing.T) {
	root := piRoot(t)
	os.MkdirAll(filepath.Join(root, "etc/homenet"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/homenet/homenet.toml"), []byte("[server]\nurl = \"ftp://x\"\n"), 0o644)
	code, stdout, stderr := runCLI(t, slices.Concat([]string{"init", "--root", root, "--no-service"}, fixedInit)...)
	if code != exitError || stdout != "" || !strings.HasPrefix(stderr, "homenet: config /etc/homenet/homenet.toml: server.url") ||
		!strings.Contains(stderr, "--force") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestCLIInitHelp(t *testing.T) {
	code, stdout, _ := runCLI(t, "help", "init")
	for _, want := range []string{"usage: homenet init [flags]", "--non-interactive", "--lan PREFIXES", "--server-url URL", "--no-service", "--state-dir DIR", "--stun HOST[:PORT]", "--root DIR", "--json"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("help init does not contain %q:\n%s", want, stdout)
		}
	}
}

func TestCLIPrintInitWithKey(t *testing.T) {
	var out strings.Builder
	inv := &invocation{stdout: &out}
	res := &appliance.InitResult{
		Platform:   appliance.Platform{Kind: appliance.PlatformSystemd, Name: "Debian GNU/Linux 12 (bookworm)"},
		ConfigPath: "/etc/homenet/homenet.toml", ServerURL: "http://203.0.113.7:8080", StateDir: "/var/lib/homenet",
		Gateway: true, Routes: []string{"192.168.1.0/24"}, Changed: true,
		Steps: []appliance.Step{
			{What: "config", Target: "/etc/homenet/homenet.toml", Result: appliance.ResultCreated},
			{What: "systemd", Target: "homenet.service", Result: appliance.ResultDone, Detail: "started"},
		},
		Warnings: []appliance.Warning{{Code: "open-ports", Message: "The WAN address is public.", Fix: "Open the ports."}},
		Onboarding: appliance.Onboarding{ServerURL: "http://203.0.113.7:8080", Key: "hn-abc-123",
			KeyExpiry: time.Date(2026, 5, 4, 13, 45, 0, 0, time.Local), PasswordFile: "/var/lib/homenet/admin-password"},
	}
	if err := printInit(inv, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Done:\n  created  config   /etc/homenet/homenet.toml\n  done     systemd  homenet.service: started\n",
		"Warnings:\n  ! The WAN address is public.\n    Open the ports.\n",
		"One-time key, valid until 13:45, for clients that take one\n  (tailscale up --login-server http://203.0.113.7:8080 --auth-key KEY):\n\n    hn-abc-123\n",
		"sudo cat /var/lib/homenet/admin-password",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not contain %q:\n%s", want, out.String())
		}
	}
}
