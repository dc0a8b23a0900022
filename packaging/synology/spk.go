// Package synology builds homenet's Synology package: an .spk for DSM 7,
// written with Go alone, without Synology's toolkit.
//
// An .spk is an uncompressed tar of:
//
//	INFO                   key="value" lines: package, version, arch, os_min_ver, …
//	PACKAGE_ICON.PNG       64×64 and 256×256 icons
//	PACKAGE_ICON_256.PNG
//	conf/privilege         run as the unprivileged "homenet" user
//	conf/resource          DSM firewall port entries (conf/homenet.sc), /usr/local/bin/homenet
//	package.tgz            what DSM unpacks into /var/packages/homenet/target
//	scripts/…              preinst, postinst, preuninst, postuninst, preupgrade,
//	                       postupgrade and start-stop-status
//
// package.tgz holds bin/homenet, bin/homenet-boot-task (the root boot task
// that makes /dev/net/tun usable and gives the binary CAP_NET_ADMIN, for
// the gateway), conf/homenet.sc and conf/homenet.toml.default, which
// postinst copies to /var/packages/homenet/etc/homenet.toml. State lives
// in /var/packages/homenet/var.
package synology

import (
	"crypto/md5"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"homenet/packaging"
	"homenet/packaging/internal/archive"
	"homenet/packaging/internal/icon"
)

//go:embed files
var files embed.FS

func file(name string) []byte { return archive.Embedded(files, "files/"+name) }

// OSMinVer is the oldest DSM the package installs on: DSM 7.0 (packages
// run as their own user from 7.0 on).
const OSMinVer = "7.0-40000"

// scriptNames are the lifecycle scripts in scripts/.
var scriptNames = []string{"preinst", "postinst", "preuninst", "postuninst", "preupgrade", "postupgrade"}

// Scripts are the package's shell scripts by path in the .spk (package.tgz
// members as "package.tgz/…"), for tests that check their syntax.
func Scripts() map[string][]byte {
	m := map[string][]byte{
		"scripts/start-stop-status":         file("start-stop-status"),
		"package.tgz/bin/homenet-boot-task": file("boot-task"),
	}
	for _, s := range scriptNames {
		m["scripts/"+s] = file("scripts/" + s)
	}
	return m
}

// DefaultConfig is the config postinst installs.
func DefaultConfig() []byte { return file("homenet.toml") }

// Package describes one .spk.
type Package struct {
	Arches  []string // DSM arch names, such as x86_64 or armv8
	Name    string   // file-name arch: the target's name
	Version packaging.Version
	Binary  string
}

// FileName is homenet-<target>-<version>.spk.
func (p Package) FileName() string {
	return fmt.Sprintf("%s-%s-%s.spk", packaging.Name, p.Name, p.Version.Synology())
}

// inner returns package.tgz's tree.
func (p Package) inner() (*archive.Tree, error) {
	t := &archive.Tree{}
	t.AddDir("bin", 0o755)
	if err := t.AddPath("bin/homenet", 0o755, p.Binary); err != nil {
		return nil, err
	}
	t.AddFile("bin/homenet-boot-task", 0o755, file("boot-task"))
	t.AddDir("conf", 0o755)
	t.AddFile("conf/homenet.sc", 0o644, file("homenet.sc"))
	t.AddFile("conf/homenet.toml.default", 0o644, DefaultConfig())
	return t, nil
}

// Info returns INFO for a package.tgz of the given md5 whose contents take
// extract bytes.
func (p Package) Info(extract int64, md5sum string) string {
	var b strings.Builder
	f := func(k, v string) { fmt.Fprintf(&b, "%s=%q\n", k, v) }
	f("package", packaging.Name)
	f("version", p.Version.Synology())
	f("os_min_ver", OSMinVer)
	f("arch", strings.Join(p.Arches, " "))
	f("displayname", packaging.DisplayName)
	f("description", packaging.OneLineDescription())
	f("maintainer", packaging.Maintainer)
	f("create_time", archive.Epoch.Format("20060102-15:04:05"))
	f("thirdparty", "yes")
	f("startable", "yes")
	f("ctl_stop", "yes")
	f("extractsize", fmt.Sprint(extract>>10)) // KiB
	f("checksum", md5sum)
	return b.String()
}

// Bytes returns the .spk.
func (p Package) Bytes() ([]byte, error) {
	inner, err := p.inner()
	if err != nil {
		return nil, err
	}
	tgz, err := inner.TarGz()
	if err != nil {
		return nil, err
	}
	sum := md5.Sum(tgz)
	t := &archive.Tree{}
	t.AddString("INFO", 0o644, p.Info(inner.InstalledSize(), hex.EncodeToString(sum[:])))
	t.AddFile("PACKAGE_ICON.PNG", 0o644, icon.PNG(64))
	t.AddFile("PACKAGE_ICON_256.PNG", 0o644, icon.PNG(256))
	t.AddDir("conf", 0o755)
	t.AddFile("conf/privilege", 0o644, file("privilege"))
	t.AddFile("conf/resource", 0o644, file("resource"))
	t.AddFile("package.tgz", 0o644, tgz)
	t.AddDir("scripts", 0o755)
	for _, s := range scriptNames {
		t.AddFile("scripts/"+s, 0o755, file("scripts/"+s))
	}
	t.AddFile("scripts/start-stop-status", 0o755, file("start-stop-status"))
	return t.Tar()
}

// Build writes the .spk for t into dir and returns its path; none (and no
// error) when DSM does not run on t's CPU.
func Build(dir string, t packaging.Target, v packaging.Version, binary string) ([]string, error) {
	if len(t.Synology) == 0 {
		return nil, nil
	}
	p := Package{Arches: t.Synology, Name: t.Name, Version: v, Binary: binary}
	b, err := p.Bytes()
	if err != nil {
		return nil, fmt.Errorf("synology %s: %w", t.Name, err)
	}
	out := filepath.Join(dir, p.FileName())
	return []string{out}, os.WriteFile(out, b, 0o644)
}
