// Package openwrt builds homenet's OpenWrt package: an .ipk for opkg
// (OpenWrt 24.10 and older), written with Go alone, without the SDK.
//
// The .ipk is what OpenWrt's scripts/ipkg-build writes: a gzip-compressed
// tar of ./debian-binary ("2.0"), ./control.tar.gz and ./data.tar.gz (not
// the ar archive of Debian packages, although opkg reads both). The data
// installs:
//
//	/usr/sbin/homenet                 the binary
//	/etc/init.d/homenet               procd service: homenet serve --config /etc/homenet/homenet.toml
//	/etc/homenet/homenet.toml         the config (a conffile: upgrades keep your edits)
//	/etc/uci-defaults/90_homenet      fw4 zone for tailscale0 and WAN rules, run once
//	/lib/upgrade/keep.d/homenet       sysupgrade keeps /etc/homenet/ (state included)
//
// State lives in /etc/homenet/state because /var is RAM on OpenWrt.
//
// For OpenWrt 25.12, which replaced opkg with apk-tools 3, it also builds
// an .apk (apk.go) with the same files, written by packaging/internal/adb
// in Go, so that building needs no apk-tools; see docs/install.md.
package openwrt

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"homenet/appliance"
	"homenet/packaging"
	"homenet/packaging/internal/adb"
	"homenet/packaging/internal/archive"
)

//go:embed files
var files embed.FS

func file(name string) []byte { return archive.Embedded(files, "files/"+name) }

// Paths on the router.
const (
	BinaryPath     = "/usr/sbin/homenet"
	InitPath       = "/etc/init.d/homenet"
	ConfigPath     = "/etc/homenet/homenet.toml"
	UCIDefaultPath = "/etc/uci-defaults/90_homenet"
	KeepPath       = "/lib/upgrade/keep.d/homenet"
)

// Depends are the packages homenet needs: the TUN driver for the gateway
// and CA roots for ACME and https control URLs. A static Go binary needs
// no libc.
const Depends = "kmod-tun, ca-bundle"

// Scripts are the shell scripts of the packages, by path in the package
// ("control/…" for opkg's maintainer scripts, "apk/…" for the .apk's,
// else the data path), for tests that check their syntax.
func Scripts() map[string][]byte {
	m := map[string][]byte{
		"control/postinst":  file("postinst"),
		"control/prerm":     file("prerm"),
		"control/prerm-pkg": file("prerm-pkg"),
		InitPath:            InitScript(),
		UCIDefaultPath:      file("uci-defaults"),
	}
	for name, b := range APKScripts() {
		m["apk/"+name] = b
	}
	return m
}

// Owner is the first comment of the package's init script. It is not
// init's marker, so "homenet init" and "homenet uninstall" leave the
// script alone.
const Owner = `Installed by the homenet package; "homenet init" leaves it alone.`

// InitScript is /etc/init.d/homenet: the procd script "homenet init"
// writes on OpenWrt (appliance.ProcdScript), owned by the package.
func InitScript() []byte {
	return appliance.ProcdScript(appliance.ProcdParams{Binary: BinaryPath, Config: ConfigPath, Owner: Owner})
}

// DefaultConfig is the config the package installs.
func DefaultConfig() []byte { return file("homenet.toml") }

// Package describes one .ipk.
type Package struct {
	Arch    string // opkg architecture, such as mipsel_24kc
	Version packaging.Version
	Binary  string // path of the homenet binary built for Arch
}

// FileName is the .ipk's name, as the SDK names them:
// homenet_<version>_<arch>.ipk.
func (p Package) FileName() string {
	return fmt.Sprintf("%s_%s_%s.ipk", packaging.Name, p.Version.Opkg(), p.Arch)
}

// Control returns the control file for an installed size of size bytes.
func (p Package) Control(size int64) string {
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	field("Package", packaging.Name)
	field("Version", p.Version.Opkg())
	field("Depends", Depends)
	field("Source", packaging.Source)
	field("SourceName", packaging.Name)
	field("License", packaging.License)
	field("Section", "net")
	field("SourceDateEpoch", fmt.Sprint(archive.Epoch.Unix()))
	field("Maintainer", packaging.Maintainer)
	field("Architecture", p.Arch)
	field("Installed-Size", fmt.Sprint(size))
	// Continuation lines of a multi-line Description start with a space.
	desc := strings.Split(packaging.Description, "\n")
	field("Description", strings.Join(desc, "\n "))
	return b.String()
}

// data returns the tree installed on the router.
func (p Package) data() (*archive.Tree, error) {
	t := &archive.Tree{Prefix: "./"}
	for _, d := range []string{"etc", "etc/homenet", "etc/init.d", "etc/uci-defaults", "lib", "lib/upgrade", "lib/upgrade/keep.d", "usr", "usr/sbin"} {
		t.AddDir(d, 0o755)
	}
	// The state directory is created by homenet itself, mode 0700.
	t.AddFile(ConfigPath, 0o600, DefaultConfig())
	t.AddFile(InitPath, 0o755, InitScript())
	t.AddFile(UCIDefaultPath, 0o755, file("uci-defaults"))
	t.AddString(KeepPath, 0o644, "/etc/homenet/\n")
	if err := t.AddPath(BinaryPath, 0o755, p.Binary); err != nil {
		return nil, err
	}
	return t, nil
}

// Bytes returns the .ipk.
func (p Package) Bytes() ([]byte, error) {
	data, err := p.data()
	if err != nil {
		return nil, err
	}
	dataGz, err := data.TarGz()
	if err != nil {
		return nil, err
	}
	control := &archive.Tree{Prefix: "./"}
	control.AddString("control", 0o644, p.Control(data.InstalledSize()))
	// Only files the package ships may be conffiles: the state directory
	// is kept by keep.d instead.
	control.AddString("conffiles", 0o644, ConfigPath+"\n")
	control.AddFile("postinst", 0o755, file("postinst"))
	control.AddFile("prerm", 0o755, file("prerm"))
	control.AddFile("prerm-pkg", 0o644, file("prerm-pkg"))
	controlGz, err := control.TarGz()
	if err != nil {
		return nil, err
	}
	outer := &archive.Tree{Prefix: "./"}
	outer.AddString("debian-binary", 0o644, "2.0\n")
	outer.AddFile("control.tar.gz", 0o644, controlGz)
	outer.AddFile("data.tar.gz", 0o644, dataGz)
	return outer.TarGz()
}

// Write writes the .ipk into dir and returns its path.
func (p Package) Write(dir string) (string, error) {
	b, err := p.Bytes()
	if err != nil {
		return "", fmt.Errorf("openwrt %s: %w", p.Arch, err)
	}
	out := filepath.Join(dir, p.FileName())
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// Build writes one .ipk and one unsigned .apk per OpenWrt architecture of
// t, all holding binary.
func Build(dir string, t packaging.Target, v packaging.Version, binary string) ([]string, error) {
	return Options{}.Build(dir, t, v, binary)
}

// Options are the choices of a build.
type Options struct {
	// APKKey signs the .apk packages; nil leaves them unsigned (installed
	// with apk add --allow-untrusted).
	APKKey *adb.Key
}

// LoadAPKKey reads a PEM private key (EC or RSA, as apk and abuild keys
// are) for Options.APKKey.
func LoadAPKKey(path string) (*adb.Key, error) { return adb.LoadKey(path) }

// Build writes one .ipk and one .apk per OpenWrt architecture of t, all
// holding binary.
func (o Options) Build(dir string, t packaging.Target, v packaging.Version, binary string) ([]string, error) {
	var out []string
	for _, arch := range t.OpenWrt {
		p := Package{Arch: arch, Version: v, Binary: binary}
		ipk, err := p.Write(dir)
		if err != nil {
			return out, err
		}
		apk, err := p.WriteAPK(dir, o.APKKey)
		if err != nil {
			return out, err
		}
		out = append(out, ipk, apk)
	}
	return out, nil
}
