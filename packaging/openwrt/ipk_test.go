package openwrt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"homenet/appliance"
	"homenet/packaging"
	"homenet/packaging/internal/archive"
	"homenet/packaging/internal/pkgtest"
)

var testVersion = packaging.Version{Semver: "1.2.3", Build: 45}

// readIPK reads an .ipk back: the outer gzip'd tar and its three members.
func readIPK(t *testing.T, b []byte) (outer, control, data []archive.ReadEntry) {
	t.Helper()
	outer, err := archive.ReadTarGz(b)
	if err != nil {
		t.Fatalf("outer: not a gzip'd tar: %v", err)
	}
	member := func(name string) []archive.ReadEntry {
		e, ok := archive.Find(outer, name)
		if !ok {
			t.Fatalf("outer: no %s in %v", name, archive.Names(outer))
		}
		es, err := archive.ReadTarGz(e.Data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return es
	}
	return outer, member("control.tar.gz"), member("data.tar.gz")
}

func TestIPKLayout(t *testing.T) {
	bin := pkgtest.FakeBinary(t)
	binData, _ := os.ReadFile(bin)
	for _, tgt := range packaging.Targets {
		for _, arch := range tgt.OpenWrt {
			t.Run(arch, func(t *testing.T) {
				p := Package{Arch: arch, Version: testVersion, Binary: bin}
				b, err := p.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				outer, control, data := readIPK(t, b)

				if got, want := archive.Names(outer), []string{"debian-binary", "control.tar.gz", "data.tar.gz"}; !slices.Equal(got, want) {
					t.Errorf("outer members = %v, want %v", got, want)
				}
				if db, _ := archive.Find(outer, "debian-binary"); string(db.Data) != "2.0\n" {
					t.Errorf("debian-binary = %q, want \"2.0\\n\"", db.Data)
				}
				for _, es := range [][]archive.ReadEntry{outer, control, data} {
					for _, e := range es {
						if !strings.HasPrefix(e.RawName, "./") {
							t.Errorf("%s: name not relative to ./ as ipkg-build writes it", e.RawName)
						}
						if e.Uid != 0 || e.Gid != 0 || e.Uname != "" || e.ModUnix != archive.Epoch.Unix() {
							t.Errorf("%s: owner %d:%d %q:%q mtime %d, want numeric 0:0 at the fixed epoch", e.RawName, e.Uid, e.Gid, e.Uname, e.Gname, e.ModUnix)
						}
					}
				}

				// Control.
				if got, want := archive.Names(control), []string{"control", "conffiles", "postinst", "prerm", "prerm-pkg"}; !slices.Equal(got, want) {
					t.Errorf("control.tar.gz = %v, want %v", got, want)
				}
				ce, _ := archive.Find(control, "control")
				f := pkgtest.Fields(t, string(ce.Data), ": ")
				var size int64
				for _, e := range data {
					if !e.Dir {
						size += e.Size
					}
				}
				want := map[string]string{
					"Package":        "homenet",
					"Version":        "1.2.3-r45",
					"Depends":        "kmod-tun, ca-bundle",
					"Architecture":   arch,
					"Installed-Size": strconv.FormatInt(size, 10),
					"Section":        "net",
					"Maintainer":     packaging.Maintainer,
					"License":        packaging.License,
				}
				for k, v := range want {
					if f[k] != v {
						t.Errorf("control %s = %q, want %q", k, f[k], v)
					}
				}
				if !strings.HasPrefix(f["Description"], "Tailscale-compatible") || !strings.Contains(f["Description"], "\n") {
					t.Errorf("control Description = %q, want a summary line and continuation lines", f["Description"])
				}
				if !strings.HasSuffix(string(ce.Data), "\n") {
					t.Error("control does not end with a newline")
				}
				if cf, _ := archive.Find(control, "conffiles"); string(cf.Data) != ConfigPath+"\n" {
					t.Errorf("conffiles = %q, want %q", cf.Data, ConfigPath+"\n")
				}
				for _, s := range []string{"postinst", "prerm"} {
					if e, _ := archive.Find(control, s); e.Mode != 0o755 {
						t.Errorf("%s mode %o, want 0755", s, e.Mode)
					}
				}

				// Data.
				wantData := map[string]int64{
					"usr/sbin/homenet":            0o755,
					"etc/init.d/homenet":          0o755,
					"etc/homenet/homenet.toml":    0o600,
					"etc/uci-defaults/90_homenet": 0o755,
					"lib/upgrade/keep.d/homenet":  0o644,
				}
				for name, mode := range wantData {
					e, ok := archive.Find(data, name)
					if !ok {
						t.Errorf("data.tar.gz has no %s", name)
						continue
					}
					if e.Mode != mode {
						t.Errorf("%s mode %o, want %o", name, e.Mode, mode)
					}
				}
				for _, e := range data {
					if _, ok := wantData[e.Name]; !ok && !e.Dir {
						t.Errorf("data.tar.gz has unexpected file %s", e.Name)
					}
					if e.Name != "" && !e.Dir {
						dir := filepath.Dir(e.Name)
						if _, ok := archive.Find(data, dir); !ok {
							t.Errorf("%s: parent %s has no directory entry", e.Name, dir)
						}
					}
				}
				if e, _ := archive.Find(data, "usr/sbin/homenet"); !bytes.Equal(e.Data, binData) {
					t.Error("usr/sbin/homenet is not the binary")
				}
				if e, _ := archive.Find(data, "lib/upgrade/keep.d/homenet"); string(e.Data) != "/etc/homenet/\n" {
					t.Errorf("keep.d = %q, want /etc/homenet/", e.Data)
				}
			})
		}
	}
}

func TestIPKDeterministic(t *testing.T) {
	p := Package{Arch: "mipsel_24kc", Version: testVersion, Binary: pkgtest.FakeBinary(t)}
	a, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Bytes()
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same package differ")
	}
}

func TestBuildOnePerArch(t *testing.T) {
	dir := t.TempDir()
	tgt, _ := packaging.LookupTarget("arm64")
	paths, err := Build(dir, tgt, testVersion, pkgtest.FakeBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2*len(tgt.OpenWrt) {
		t.Fatalf("Build wrote %d packages, want an .ipk and an .apk per arch %v", len(paths), tgt.OpenWrt)
	}
	for i, p := range paths {
		want := "homenet_1.2.3-r45_" + tgt.OpenWrt[i/2] + ".ipk"
		if i%2 == 1 {
			want = "homenet-1.2.3-r45_" + tgt.OpenWrt[i/2] + ".apk"
		}
		if filepath.Base(p) != want {
			t.Errorf("package %d = %s, want %s", i, filepath.Base(p), want)
		}
	}
}

func TestConfig(t *testing.T) {
	cfg, err := appliance.ParseConfig(DefaultConfig())
	if err != nil {
		t.Fatalf("the package's config does not load: %v", err)
	}
	if !strings.HasPrefix(cfg.StateDir, "/etc/homenet/") {
		t.Errorf("state_dir = %q: must be under /etc (/var is RAM on OpenWrt)", cfg.StateDir)
	}
	if !cfg.Gateway.Enabled || cfg.Gateway.Firewall != "nftables" {
		t.Errorf("gateway enabled %v firewall %q, want enabled with nftables (fw4)", cfg.Gateway.Enabled, cfg.Gateway.Firewall)
	}
}

func TestInitScript(t *testing.T) {
	s := string(InitScript())
	for _, want := range []string{
		"#!/bin/sh /etc/rc.common",
		"# " + Owner,
		"USE_PROCD=1",
		"START=80",
		"PROG=" + BinaryPath,
		"CONFIG=" + ConfigPath,
		`procd_set_param command "$PROG" serve --config "$CONFIG"`,
		"procd_set_param respawn",
		`procd_set_param file "$CONFIG"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "GOMEMLIMIT") {
		t.Error("init script sets GOMEMLIMIT, which overrides the limit homenet serve sets from the RAM")
	}
	if strings.Contains(s, "Written by homenet init") {
		t.Error("the package's init script carries init's marker: homenet uninstall would delete it")
	}
}

func TestScripts(t *testing.T) {
	for name, s := range Scripts() {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) { pkgtest.CheckShell(t, name, s) })
	}
}

// fakeUCI is a uci stand-in: "uci -q get" succeeds for sections listed in
// $UCI_STATE, "uci set X=type" adds X there, and every call is logged.
const fakeUCI = `#!/bin/sh
echo "$*" >>"$UCI_LOG"
[ "$1" = "-q" ] && shift
case $1 in
get) grep -qx "$2" "$UCI_STATE"; exit ;;
set) case $2 in *.*.*) ;; *=*) echo "${2%%=*}" >>"$UCI_STATE" ;; esac ;;
esac
exit 0
`

// TestUCIDefaultsIdempotent runs the uci-defaults script twice against a
// fake uci: the first run adds every section, tagged; the second adds none.
func TestUCIDefaultsIdempotent(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"uci": fakeUCI, "pidof": "#!/bin/sh\nexit 1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "90_homenet")
	os.WriteFile(script, file("uci-defaults"), 0o755)
	state, log := filepath.Join(dir, "state"), filepath.Join(dir, "log")
	os.WriteFile(state, nil, 0o644)
	runOnce := func() []string {
		os.WriteFile(log, nil, 0o644)
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "UCI_STATE="+state, "UCI_LOG="+log)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("uci-defaults: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}

	first := runOnce()
	sections := map[string]string{}
	tagged := map[string]bool{}
	for _, l := range first {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "set" {
			k, v, _ := strings.Cut(f[1], "=")
			if strings.Count(k, ".") == 1 {
				sections[k] = v
			} else if strings.HasSuffix(k, ".homenet_managed") && v == "1" {
				tagged[strings.TrimSuffix(k, ".homenet_managed")] = true
			}
		}
	}
	want := map[string]string{
		"network.homenet":            "interface",
		"firewall.homenet":           "zone",
		"firewall.homenet_to_lan":    "forwarding",
		"firewall.homenet_from_lan":  "forwarding",
		"firewall.homenet_to_wan":    "forwarding",
		"firewall.homenet_control":   "rule",
		"firewall.homenet_relay":     "rule",
		"firewall.homenet_stun":      "rule",
		"firewall.homenet_wireguard": "rule",
	}
	for k, v := range want {
		if sections[k] != v {
			t.Errorf("first run: %s = %q, want %q", k, sections[k], v)
		}
		if !tagged[k] {
			t.Errorf("first run: %s not tagged homenet_managed=1", k)
		}
	}
	if len(sections) != len(want) {
		t.Errorf("first run added %v, want exactly %v", sections, want)
	}
	for _, l := range []string{"set firewall.homenet.masq=1", "set firewall.homenet.mtu_fix=1", "set network.homenet.device=tailscale0",
		"set firewall.homenet_wireguard.dest_port=41641", "set firewall.homenet_wireguard.proto=udp", "commit firewall"} {
		if !slices.Contains(first, l) {
			t.Errorf("first run did not %q", l)
		}
	}

	for _, l := range runOnce() {
		if strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "add_list ") {
			t.Errorf("second run changed something: uci %s", l)
		}
	}
}
