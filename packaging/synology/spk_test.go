package synology

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"os"
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

func TestSPKLayout(t *testing.T) {
	bin := pkgtest.FakeBinary(t)
	binData, _ := os.ReadFile(bin)
	for _, tgt := range packaging.Targets {
		if len(tgt.Synology) == 0 {
			continue
		}
		t.Run(tgt.Name, func(t *testing.T) {
			p := Package{Arches: tgt.Synology, Name: tgt.Name, Version: testVersion, Binary: bin}
			b, err := p.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
				t.Fatal("the .spk is gzip-compressed; DSM wants a plain tar")
			}
			outer, err := archive.ReadTar(b)
			if err != nil {
				t.Fatalf("not a tar: %v", err)
			}
			want := []string{"INFO", "PACKAGE_ICON.PNG", "PACKAGE_ICON_256.PNG", "conf", "conf/privilege", "conf/resource", "package.tgz", "scripts",
				"scripts/preinst", "scripts/postinst", "scripts/preuninst", "scripts/postuninst", "scripts/preupgrade", "scripts/postupgrade", "scripts/start-stop-status"}
			if got := archive.Names(outer); !slices.Equal(got, want) {
				t.Errorf("spk = %v, want %v", got, want)
			}
			for _, e := range outer {
				if e.Uid != 0 || e.Gid != 0 || e.ModUnix != archive.Epoch.Unix() {
					t.Errorf("%s: owner %d:%d mtime %d, want 0:0 at the fixed epoch", e.Name, e.Uid, e.Gid, e.ModUnix)
				}
				if strings.HasPrefix(e.Name, "scripts/") && !e.Dir && e.Mode != 0o755 {
					t.Errorf("%s mode %o, want 0755", e.Name, e.Mode)
				}
			}

			tgz, _ := archive.Find(outer, "package.tgz")
			inner, err := archive.ReadTarGz(tgz.Data)
			if err != nil {
				t.Fatalf("package.tgz: %v", err)
			}
			wantInner := map[string]int64{
				"bin/homenet": 0o755, "bin/homenet-boot-task": 0o755,
				"conf/homenet.sc": 0o644, "conf/homenet.toml.default": 0o644,
			}
			var size int64
			for _, e := range inner {
				if e.Dir {
					continue
				}
				size += e.Size
				mode, ok := wantInner[e.Name]
				if !ok {
					t.Errorf("package.tgz has unexpected %s", e.Name)
				} else if e.Mode != mode {
					t.Errorf("package.tgz %s mode %o, want %o", e.Name, e.Mode, mode)
				}
			}
			for name := range wantInner {
				if _, ok := archive.Find(inner, name); !ok {
					t.Errorf("package.tgz lacks %s", name)
				}
			}
			if e, _ := archive.Find(inner, "bin/homenet"); !bytes.Equal(e.Data, binData) {
				t.Error("bin/homenet is not the binary")
			}

			info, _ := archive.Find(outer, "INFO")
			f := pkgtest.Fields(t, string(info.Data), "=")
			sum := md5.Sum(tgz.Data)
			wantInfo := map[string]string{
				"package":     "homenet",
				"version":     "1.2.3-45",
				"os_min_ver":  "7.0-40000",
				"arch":        strings.Join(tgt.Synology, " "),
				"displayname": "homenet",
				"maintainer":  packaging.Maintainer,
				"extractsize": strconv.FormatInt(size>>10, 10),
				"checksum":    hex.EncodeToString(sum[:]),
				"thirdparty":  "yes",
			}
			for k, v := range wantInfo {
				if f[k] != v {
					t.Errorf("INFO %s = %q, want %q", k, f[k], v)
				}
			}
			if f["description"] == "" || strings.Contains(f["description"], "\n") {
				t.Errorf("INFO description = %q, want one non-empty line", f["description"])
			}

			var priv struct {
				Defaults struct {
					RunAs string `json:"run-as"`
				} `json:"defaults"`
				Username string `json:"username"`
			}
			pe, _ := archive.Find(outer, "conf/privilege")
			if err := json.Unmarshal(pe.Data, &priv); err != nil || priv.Defaults.RunAs != "package" || priv.Username != "homenet" {
				t.Errorf("conf/privilege = %s (%v), want run-as package, user homenet", pe.Data, err)
			}
			var res struct {
				PortConfig struct {
					ProtocolFile string `json:"protocol-file"`
				} `json:"port-config"`
				Linker struct {
					Bin []string `json:"bin"`
				} `json:"usr-local-linker"`
			}
			re, _ := archive.Find(outer, "conf/resource")
			if err := json.Unmarshal(re.Data, &res); err != nil {
				t.Fatalf("conf/resource: %v", err)
			}
			sc, ok := archive.Find(inner, res.PortConfig.ProtocolFile)
			if !ok {
				t.Errorf("conf/resource port-config %q is not in package.tgz", res.PortConfig.ProtocolFile)
			}
			for _, port := range []string{"8080,8443/tcp", "3478,41641/udp"} {
				if !strings.Contains(string(sc.Data), `dst.ports="`+port+`"`) {
					t.Errorf("%s does not open %s", res.PortConfig.ProtocolFile, port)
				}
			}
			for _, l := range res.Linker.Bin {
				if _, ok := archive.Find(inner, l); !ok {
					t.Errorf("usr-local-linker %s is not in package.tgz", l)
				}
			}

			for name, size := range map[string]int{"PACKAGE_ICON.PNG": 64, "PACKAGE_ICON_256.PNG": 256} {
				e, _ := archive.Find(outer, name)
				img, err := png.Decode(bytes.NewReader(e.Data))
				if err != nil {
					t.Errorf("%s: %v", name, err)
				} else if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
					t.Errorf("%s is %v, want %dx%d", name, b, size, size)
				}
			}
		})
	}
}

func TestSPKDeterministic(t *testing.T) {
	p := Package{Arches: []string{"x86_64"}, Name: "amd64", Version: testVersion, Binary: pkgtest.FakeBinary(t)}
	a, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.Bytes()
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same package differ")
	}
}

func TestNoSPKForMIPS(t *testing.T) {
	tgt, _ := packaging.LookupTarget("mipsle")
	paths, err := Build(t.TempDir(), tgt, testVersion, pkgtest.FakeBinary(t))
	if err != nil || len(paths) != 0 {
		t.Errorf("Build(mipsle) = %v, %v; want nothing: no DSM runs on MIPS", paths, err)
	}
}

func TestConfig(t *testing.T) {
	cfg, err := appliance.ParseConfig(DefaultConfig())
	if err != nil {
		t.Fatalf("the package's config does not load: %v", err)
	}
	if cfg.StateDir != "/var/packages/homenet/var" {
		t.Errorf("state_dir = %q, want the package's var directory", cfg.StateDir)
	}
	if cfg.Gateway.Enabled {
		t.Error("gateway enabled by default: it needs the root boot task first")
	}
}

func TestScripts(t *testing.T) {
	for name, s := range Scripts() {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) { pkgtest.CheckShell(t, name, s) })
	}
	boot := string(file("boot-task"))
	for _, want := range []string{"mknod /dev/net/tun c 10 200", "insmod /lib/modules/tun.ko", "setcap cap_net_admin,cap_net_raw+eip", `id -u`} {
		if !strings.Contains(boot, want) {
			t.Errorf("boot task lacks %q", want)
		}
	}
	sss := string(file("start-stop-status"))
	for _, want := range []string{`serve --config "$CONFIG"`, "CONFIG=/var/packages/$PKG/etc/homenet.toml", "status)", "exit 3"} {
		if !strings.Contains(sss, want) {
			t.Errorf("start-stop-status lacks %q", want)
		}
	}
}
