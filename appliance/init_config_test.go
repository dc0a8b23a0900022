package appliance

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debianCase is the fake root of a Debian container: config only, no
// service.
func debianCase() platformCase { return platformCases()[4] }

func TestInitFlags(t *testing.T) {
	ctx := context.Background()
	pc := debianCase()
	root := makeRoot(t, pc)
	base := InitOptions{Root: root, NoService: true, Net: &pc.net, Now: fixedNow}

	opts := base
	opts.ServerURL = "https://home.example.net"
	opts.LAN = pfxs("10.1.0.0/16", "192.168.50.0/24")
	opts.StateDir = "/srv/homenet"
	res, err := Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(root, res.ConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.URL != "https://home.example.net" || cfg.StateDir != "/srv/homenet" || !slices.Equal(cfg.Gateway.Routes, []string{"10.1.0.0/16", "192.168.50.0/24"}) {
		t.Errorf("config %+v", cfg)
	}
	if !dirExists(filepath.Join(root, "/srv/homenet")) {
		t.Error("state dir not created")
	}

	// Without flags, a second run keeps what the first was told.
	res, err = Init(ctx, base)
	if err != nil || res.Changed || res.ServerURL != "https://home.example.net" {
		t.Errorf("second run: %v, changed %v, URL %s", err, res.Changed, res.ServerURL)
	}

	// A flag that differs replaces the config and keeps a backup.
	opts = base
	opts.ServerURL = "http://203.0.113.1:8080"
	res, err = Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	backup := "/etc/homenet/homenet.toml.bak-20260504-030201"
	if !res.Changed || !fileExists(root, backup) || !strings.Contains(readRootFile(t, root, backup), "home.example.net") {
		t.Errorf("no backup of the replaced config: %+v", res.Steps)
	}
	if i := slices.IndexFunc(res.Steps, func(s Step) bool { return s.What == "config" }); i < 0 ||
		res.Steps[i].Result != ResultUpdated || !strings.Contains(res.Steps[i].Detail, `server.url: "https://home.example.net" → "http://203.0.113.1:8080"`) {
		t.Errorf("steps %+v", res.Steps)
	}

	// --lan none turns the gateway off; uninstall --purge takes the
	// backup too.
	opts = base
	opts.NoGateway = true
	if res, err = Init(ctx, opts); err != nil || res.Gateway {
		t.Fatalf("NoGateway: %v, %+v", err, res)
	}
	if cfg, _ := LoadConfig(filepath.Join(root, res.ConfigPath)); cfg.Gateway.Enabled || len(cfg.Gateway.Routes) != 0 {
		t.Errorf("gateway still on: %+v", cfg.Gateway)
	}
	ures, err := Uninstall(ctx, UninstallOptions{Root: root, Purge: true})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "etc/homenet/*")); len(m) != 0 || dirExists(filepath.Join(root, "/srv/homenet")) {
		t.Errorf("left after purge: %v; steps %+v", m, ures.Steps)
	}
}

func TestInitExistingConfig(t *testing.T) {
	ctx := context.Background()
	pc := debianCase()
	root := makeRoot(t, pc)
	opts := InitOptions{Root: root, NoService: true, Net: &pc.net, Now: fixedNow}
	path := filepath.Join(root, "/etc/homenet/homenet.toml")
	os.MkdirAll(filepath.Dir(path), 0o755)

	// A hand-written config with comments is kept as it is: it says the
	// same as init would.
	hand := "# mine\nstate_dir = \"/var/lib/homenet\"\n[server]\nurl = \"http://nas.lan:8080\"\n[gateway]\nenabled = true\nroutes = [\"192.168.9.0/24\"]\n"
	os.WriteFile(path, []byte(hand), 0o600)
	res, err := Init(ctx, opts)
	if err != nil || res.Steps[0].What != "config" || res.Steps[0].Result != ResultUnchanged || readRootFile(t, root, "/etc/homenet/homenet.toml") != hand {
		t.Errorf("hand-written config: %v: %+v", err, res.Steps)
	}
	if res.ServerURL != "http://nas.lan:8080" || !slices.Equal(res.Routes, []string{"192.168.9.0/24"}) {
		t.Errorf("result %s %v, want the file's", res.ServerURL, res.Routes)
	}

	// An invalid config is an error, and --force replaces it with a
	// backup.
	os.WriteFile(path, []byte("[server]\nurl = \"ftp://x\"\n"), 0o600)
	if _, err := Init(ctx, opts); err == nil || !strings.Contains(err.Error(), "server.url") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("invalid config: %v", err)
	}
	opts.Force = true
	res, err = Init(ctx, opts)
	if err != nil || !fileExists(root, "/etc/homenet/homenet.toml.bak-20260504-030201") || res.ServerURL != pc.wantURL {
		t.Errorf("--force: %v, %+v", err, res)
	}
	// --force on a config that already says what detection finds changes
	// nothing.
	if res, err = Init(ctx, opts); err != nil || res.Changed {
		t.Errorf("second --force: %v, %+v", err, res.Steps)
	}
}

func TestInitErrors(t *testing.T) {
	ctx := context.Background()
	pc := debianCase()
	tests := []struct {
		name string
		pc   platformCase
		opts InitOptions
		want string
	}{
		{"host bits in a LAN prefix", pc, InitOptions{LAN: []netip.Prefix{netip.MustParsePrefix("192.168.1.1/24")}}, "did you mean 192.168.1.0/24"},
		{"bad server URL", pc, InitOptions{ServerURL: "gw:8080"}, "server URL"},
		{"server URL with a path", pc, InitOptions{ServerURL: "http://gw:8080/x"}, "must not have a path"},
		{"relative state dir", pc, InitOptions{StateDir: "state"}, "not absolute"},
		{"relative config", pc, InitOptions{ConfigPath: "homenet.toml"}, "not absolute"},
		{"Synology without the package", platformCase{files: map[string]string{"/etc.defaults/VERSION": dsmVersion}}, InitOptions{}, "package is not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := makeRoot(t, tt.pc)
			before := snapshot(t, root)
			tt.opts.Root, tt.opts.Net, tt.opts.NoService = root, &pc.net, true
			_, err := Init(ctx, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if d := diffSnapshots(before, snapshot(t, root)); len(d) > 0 {
				t.Errorf("a failed init wrote %v", d)
			}
		})
	}
}

func TestInitInteractive(t *testing.T) {
	pc := debianCase()
	root := makeRoot(t, pc)
	answers := []string{
		"http://bad/path",           // server URL: rejected, asked again
		"https://gw.example.net",    // accepted
		"10.0.0.1/8",                // LAN: host bits, asked again
		"10.0.0.0/8, 172.16.0.0/12", // accepted
	}
	var asked []string
	var logged []string
	opts := InitOptions{
		Root: root, NoService: true, Net: &pc.net,
		Ask: func(q, def string) (string, error) {
			asked = append(asked, q+" ["+def+"]")
			a := answers[0]
			answers = answers[1:]
			return a, nil
		},
		Log: func(s string) { logged = append(logged, s) },
	}
	res, err := Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ServerURL != "https://gw.example.net" || !slices.Equal(res.Routes, []string{"10.0.0.0/8", "172.16.0.0/12"}) {
		t.Errorf("result %s %v", res.ServerURL, res.Routes)
	}
	if len(asked) != 4 || !strings.Contains(asked[0], "[http://172.17.0.2:8080]") || !strings.Contains(asked[2], "[172.17.0.0/16]") {
		t.Errorf("asked %q", asked)
	}
	if log := strings.Join(logged, "\n"); !strings.Contains(log, "Platform: Debian") || !strings.Contains(log, "must not have a path") || !strings.Contains(log, "did you mean 10.0.0.0/8") {
		t.Errorf("logged:\n%s", log)
	}

	// Once there is a config, nothing is asked.
	asked = nil
	if res, err := Init(context.Background(), opts); err != nil || res.Changed || len(asked) != 0 {
		t.Errorf("second run: %v, changed %v, asked %q", err, res.Changed, asked)
	}
}

// TestInitAfterPackage runs init where the homenet package was installed
// first: its config (without server.url), its init script, its UCI
// sections. Init fills in the URL (keeping a backup), keeps the package's
// other choices, and starts the package's service without replacing it.
func TestInitAfterPackage(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join("..", "packaging", p))
		if err != nil {
			t.Skipf("packaging file: %v", err)
		}
		return string(b)
	}
	t.Run("OpenWrt", func(t *testing.T) {
		pc := platformCases()[0]
		pc.files["/etc/homenet/homenet.toml"] = read("openwrt/files/homenet.toml")
		// The package ships ProcdScript with its own owner line
		// (packaging/openwrt).
		pc.files["/etc/init.d/homenet"] = string(ProcdScript(ProcdParams{
			Binary: "/usr/sbin/homenet", Config: "/etc/homenet/homenet.toml", Owner: "Installed by the homenet package.",
		}))
		root := makeRoot(t, pc)
		cfg := DefaultConfig()
		cfg.Gateway.Enabled = true
		for f, secs := range openwrtSections(&cfg) { // as the package's uci-defaults did
			if _, err := uciAdd(root, f, secs); err != nil {
				t.Fatal(err)
			}
		}
		runner := &fakeRunner{}
		res, err := Init(context.Background(), InitOptions{Root: root, Net: &pc.net, Now: fixedNow, Run: runner, AdminWait: 1})
		if err != nil {
			t.Fatal(err)
		}
		steps := map[string]Step{}
		for _, s := range res.Steps {
			steps[s.What+" "+s.Target] = s
		}
		if s := steps["config /etc/homenet/homenet.toml"]; s.Result != ResultUpdated || !strings.Contains(s.Detail, `server.url: "" → "http://203.0.113.7:8080"`) {
			t.Errorf("config step %+v", s)
		}
		if s := steps["procd init script /etc/init.d/homenet"]; s.Result != ResultKept {
			t.Errorf("the package's init script: %+v", s)
		}
		for _, f := range []string{uciNetworkPath, uciFirewallPath} {
			if s := steps["UCI "+f]; s.Result != ResultUnchanged {
				t.Errorf("UCI %s: %+v", f, s)
			}
		}
		loaded, err := LoadConfig(filepath.Join(root, "/etc/homenet/homenet.toml"))
		if err != nil || loaded.Gateway.Firewall != "nftables" || loaded.StateDir != "/etc/homenet/state" || loaded.Server.URL != "http://203.0.113.7:8080" {
			t.Errorf("config %+v (%v), want the package's choices and the URL", loaded, err)
		}
		if !strings.Contains(strings.Join(runner.takeCalls(), "\n"), "/etc/init.d/homenet enable") {
			t.Error("the package's service was not enabled")
		}
		if readRootFile(t, root, "/etc/homenet/homenet.toml.bak-20260504-030201") != pc.files["/etc/homenet/homenet.toml"] {
			t.Error("no backup of the package's config")
		}
	})
	t.Run("QNAP", func(t *testing.T) {
		pc := platformCases()[2]
		pc.files["/share/CACHEDEV1_DATA/.qpkg/homenet/etc/homenet.toml"] = read("qnap/files/homenet.toml")
		root := makeRoot(t, pc)
		res, err := Init(context.Background(), InitOptions{Root: root, Net: &pc.net, Now: fixedNow, NoService: true})
		if err != nil {
			t.Fatal(err)
		}
		// The package's relative state_dir is its var/ directory.
		if res.StateDir != "/share/CACHEDEV1_DATA/.qpkg/homenet/var" || !dirExists(filepath.Join(root, res.StateDir)) || res.Gateway {
			t.Errorf("state dir %s, gateway %v", res.StateDir, res.Gateway)
		}
		ures, err := Uninstall(context.Background(), UninstallOptions{Root: root, Purge: true})
		if err != nil || dirExists(filepath.Join(root, res.StateDir)) {
			t.Errorf("purge: %v, %+v", err, ures.Steps)
		}
	})
}
