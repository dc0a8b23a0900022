// Package qnap builds homenet's QNAP package: a .qpkg in the format QDK's
// qbuild writes, made with Go alone and installed by our own qinstall.sh.
//
// A .qpkg is, in order:
//
//  1. a /bin/sh header script that App Center runs: it checks the CPU,
//     unpacks the control archive and the data archive that follow it
//     into a scratch directory on the data volume, runs qinstall.sh there
//     and exits before the binary part. Its "script_len=" and "offset="
//     lines locate the parts, as QDK's tools expect;
//  2. control.tar: an uncompressed tar holding control.tar.gz
//     (qinstall.sh, qpkg.cfg, package_routines);
//  3. data.tar.gz: what goes into the package's directory
//     (.qpkg/homenet on a data volume): homenet.sh (the service script),
//     bin/homenet, etc/homenet.toml.default, .uninstall.sh;
//  4. a 100-byte tail: MODEL(10) RESERVED(40) FW_VERSION(10) NAME(20)
//     VERSION(10) "QNAPQPKG  ", where the ten bytes at 60 from the end hold
//     the first ten digits of size×3589+10⁹ (QDK's qpkg_encrypt), which
//     QTS checks.
//
// The package is unsigned: App Center installs it once "Allow installation
// of applications without a valid digital signature" is on.
package qnap

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"homenet/packaging"
	"homenet/packaging/internal/archive"
)

//go:embed files
var files embed.FS

func file(name string) []byte { return archive.Embedded(files, "files/"+name) }

// ServiceProgram is the service script in the package's directory.
const ServiceProgram = "homenet.sh"

// TailLen is the length of the tail; Flag ends it.
const (
	TailLen = 100
	Flag    = "QNAPQPKG  "
)

// Scripts are the package's shell scripts by path ("control/…" in
// control.tar.gz, "data/…" in data.tar.gz), for tests that check their
// syntax. The header is per package: see Package.Header.
func Scripts() map[string][]byte {
	return map[string][]byte{
		"control/qinstall.sh":    file("qinstall.sh"),
		"data/" + ServiceProgram: file("homenet.sh"),
		"data/.uninstall.sh":     file("uninstall.sh"),
	}
}

// DefaultConfig is the config qinstall.sh installs.
func DefaultConfig() []byte { return file("homenet.toml") }

// cpuPattern is the "uname -m" a QDK architecture runs on.
var cpuPattern = map[string]string{
	"x86_64":  "x86_64",
	"arm_64":  "aarch64",
	"arm-x41": "armv7l",
	"arm-x31": "armv7l",
}

// Package describes one .qpkg.
type Package struct {
	Arch    string // QDK architecture: x86_64, arm_64, arm-x41, arm-x31
	Version packaging.Version
	Binary  string
}

// FileName is homenet_<version>_<arch>.qpkg, as qbuild names them.
func (p Package) FileName() string {
	v, _ := p.Version.QNAP()
	return fmt.Sprintf("%s_%s_%s.qpkg", packaging.Name, v, p.Arch)
}

// Config returns qpkg.cfg.
func (p Package) Config() (string, error) {
	v, err := p.Version.QNAP()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	f := func(k, v string) { fmt.Fprintf(&b, "%s=%q\n", k, v) }
	f("QPKG_NAME", packaging.Name)
	f("QPKG_DISPLAY_NAME", packaging.DisplayName)
	f("QPKG_VER", v)
	f("QPKG_AUTHOR", packaging.Maintainer)
	f("QPKG_SUMMARY", packaging.OneLineDescription())
	f("QPKG_LICENSE", packaging.License)
	f("QPKG_SERVICE_PROGRAM", ServiceProgram)
	f("QPKG_SERVICE_PORT", "8080")
	f("QPKG_RC_NUM", "101")
	f("QTS_MINI_VERSION", "5.0.0")
	f("QDK_BUILD_ARCH", p.Arch)
	return b.String(), nil
}

// Header returns the installer script for a control.tar of ctrlLen bytes
// and a data.tar.gz of dataLen bytes. Its script_len line holds the
// header's own length.
func (p Package) Header(ctrlLen, dataLen int) ([]byte, error) {
	cpu, ok := cpuPattern[p.Arch]
	if !ok {
		return nil, fmt.Errorf("qnap: unknown architecture %q", p.Arch)
	}
	v, err := p.Version.QNAP()
	if err != nil {
		return nil, err
	}
	body := func(scriptLen int) []byte {
		return fmt.Appendf(nil, headerTemplate,
			packaging.Name, v, p.Arch, // comment
			packaging.Name, cpu, p.Arch,
			scriptLen, ctrlLen, dataLen)
	}
	// The length is part of the text: iterate to the fixed point (at most
	// twice more, when the digit count grows).
	n := 0
	for {
		h := body(n)
		if len(h) == n {
			return h, nil
		}
		n = len(h)
	}
}

// headerTemplate is the .qpkg's header. QDK's tools (qbuild --extract,
// get_content_size) read the lines from script_len= to "exit 1": keep
// those lines' shape.
const headerTemplate = `#!/bin/sh
# %s %s QPKG for QNAP %s. App Center runs this file: it unpacks the
# archives appended to it and runs their qinstall.sh.
# shellcheck disable=SC2003,SC2086 # the offset lines keep QDK's shape, which its tools parse
QPKG_NAME=%s
CPU=%s
echo "Install QNAP package on TS-NAS..."
/bin/grep "/mnt/HDA_ROOT" /proc/mounts >/dev/null 2>&1 || exit 1
if [ "$(/bin/uname -m)" != "$CPU" ]; then
	echo "Installation Abort."
	echo "[App Center] $QPKG_NAME is for $CPU (QNAP %s), not $(/bin/uname -m): use the package for this NAS."
	echo -1 >/tmp/update_process
	exit 1
fi
if [ -z "$_EXTRACT_DIR" ]; then
	base=$QINSTALL_PATH
	if [ -z "$base" ]; then
		public=$(/sbin/getcfg Public path -f /etc/config/smb.conf)
		[ -n "$public" ] || { echo "The Public share not found."; exit 1; }
		base=${public%%/*}/.qpkg
	fi
	_EXTRACT_DIR=$base/.tmp
fi
/bin/mkdir -p "$_EXTRACT_DIR" || exit 1
script_len=%d
/bin/dd if="${0}" bs=$script_len skip=1 2>/dev/null | /bin/tar -xO | /bin/tar -xzv -C "$_EXTRACT_DIR" || exit 1
offset=$(/usr/bin/expr $script_len + %d)
data_len=%d
/bin/dd if="${0}" bs=$offset skip=1 2>/dev/null | head -c $data_len >"$_EXTRACT_DIR/data.tar.gz" || exit 1
offset=$(/usr/bin/expr $offset + $data_len)
( cd "$_EXTRACT_DIR" && /bin/sh qinstall.sh || echo "Installation Abort." )
/bin/rm -fr "$_EXTRACT_DIR" && exit 10
exit 1
`

// Tail returns the 100-byte tail with a zero encrypt field; Seal fills it.
func (p Package) Tail() ([]byte, error) {
	v, err := p.Version.QNAP()
	if err != nil {
		return nil, err
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	if len(packaging.Name) > 20 {
		return nil, fmt.Errorf("qnap: name %q is longer than 20 characters", packaging.Name)
	}
	t := pad("", 10) + pad("", 50) + pad(packaging.Name, 20) + pad(v, 10) + Flag
	return []byte(t), nil
}

// Encrypt returns QDK's "encrypt" field for a package of size bytes: the
// first ten digits of size×3589+1000000000.
func Encrypt(size int64) string {
	s := strconv.FormatUint(uint64(size)*3589+1000000000, 10)
	return s[:10]
}

// Bytes returns the .qpkg.
func (p Package) Bytes() ([]byte, error) {
	cfg, err := p.Config()
	if err != nil {
		return nil, err
	}
	control := &archive.Tree{Prefix: "./"}
	control.AddFile("qinstall.sh", 0o755, file("qinstall.sh"))
	control.AddString("qpkg.cfg", 0o644, cfg)
	control.AddFile("package_routines", 0o644, file("package_routines"))
	controlGz, err := control.TarGz()
	if err != nil {
		return nil, err
	}
	ctrlTree := &archive.Tree{}
	ctrlTree.AddFile("control.tar.gz", 0o644, controlGz)
	ctrl, err := ctrlTree.Tar()
	if err != nil {
		return nil, err
	}

	data := &archive.Tree{Prefix: "./"}
	data.AddFile(ServiceProgram, 0o755, file("homenet.sh"))
	data.AddFile(".uninstall.sh", 0o755, file("uninstall.sh"))
	data.AddDir("bin", 0o755)
	if err := data.AddPath("bin/homenet", 0o755, p.Binary); err != nil {
		return nil, err
	}
	data.AddDir("etc", 0o755)
	data.AddFile("etc/homenet.toml.default", 0o644, DefaultConfig())
	dataGz, err := data.TarGz()
	if err != nil {
		return nil, err
	}

	header, err := p.Header(len(ctrl), len(dataGz))
	if err != nil {
		return nil, err
	}
	tail, err := p.Tail()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(header)
	b.Write(ctrl)
	b.Write(dataGz)
	b.Write(tail)
	out := b.Bytes()
	copy(out[len(out)-60:], Encrypt(int64(len(out))))
	return out, nil
}

// Build writes one .qpkg per QNAP architecture of t into dir.
func Build(dir string, t packaging.Target, v packaging.Version, binary string) ([]string, error) {
	var out []string
	for _, arch := range t.QNAP {
		p := Package{Arch: arch, Version: v, Binary: binary}
		b, err := p.Bytes()
		if err != nil {
			return out, fmt.Errorf("qnap %s: %w", arch, err)
		}
		path := filepath.Join(dir, p.FileName())
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return out, err
		}
		out = append(out, path)
	}
	return out, nil
}
