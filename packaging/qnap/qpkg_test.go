package qnap

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// parts splits a .qpkg the way its header does.
type parts struct {
	header             []byte
	scriptLen, ctrlLen int
	dataLen            int
	ctrl, data, tail   []byte
}

var (
	scriptLenRE = regexp.MustCompile(`(?m)^script_len=(\d+)$`)
	ctrlLenRE   = regexp.MustCompile(`(?m)^offset=\$\(/usr/bin/expr \$script_len \+ (\d+)\)$`)
	dataLenRE   = regexp.MustCompile(`(?m)^data_len=(\d+)$`)
)

func split(t *testing.T, b []byte) parts {
	t.Helper()
	atoi := func(re *regexp.Regexp) int {
		m := re.FindSubmatch(b[:min(len(b), 8192)])
		if m == nil {
			t.Fatalf("header has no line matching %s", re)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	var p parts
	p.scriptLen, p.ctrlLen, p.dataLen = atoi(scriptLenRE), atoi(ctrlLenRE), atoi(dataLenRE)
	if p.scriptLen+p.ctrlLen+p.dataLen+TailLen != len(b) {
		t.Fatalf("script %d + control %d + data %d + tail %d != file size %d", p.scriptLen, p.ctrlLen, p.dataLen, TailLen, len(b))
	}
	p.header = b[:p.scriptLen]
	p.ctrl = b[p.scriptLen : p.scriptLen+p.ctrlLen]
	p.data = b[p.scriptLen+p.ctrlLen : p.scriptLen+p.ctrlLen+p.dataLen]
	p.tail = b[len(b)-TailLen:]
	return p
}

func TestQPKGLayout(t *testing.T) {
	bin := pkgtest.FakeBinary(t)
	binData, _ := os.ReadFile(bin)
	for _, tgt := range packaging.Targets {
		for _, arch := range tgt.QNAP {
			t.Run(arch, func(t *testing.T) {
				b, err := Package{Arch: arch, Version: testVersion, Binary: bin}.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				p := split(t, b)
				if !bytes.HasPrefix(p.header, []byte("#!/bin/sh\n")) || !bytes.HasSuffix(p.header, []byte("\nexit 1\n")) {
					t.Errorf("header does not run from #!/bin/sh to a final \"exit 1\" line")
				}
				pkgtest.CheckShell(t, "header", p.header)

				// Tail: MODEL(10) RESERVED(40) ENCRYPT at -60 … NAME(20) VERSION(10) FLAG(10).
				tail := string(p.tail)
				if got := tail[90:]; got != Flag {
					t.Errorf("flag = %q, want %q", got, Flag)
				}
				if got := strings.TrimRight(tail[60:80], " "); got != "homenet" {
					t.Errorf("name = %q", got)
				}
				if got := strings.TrimRight(tail[80:90], " "); got != "1.2.3" {
					t.Errorf("version = %q", got)
				}
				if got, want := tail[40:50], Encrypt(int64(len(b))); got != want {
					t.Errorf("encrypt field = %q, want %q (size %d × 3589 + 10⁹)", got, want, len(b))
				}

				// control.tar → control.tar.gz → qinstall.sh, qpkg.cfg, package_routines.
				outer, err := archive.ReadTar(p.ctrl)
				if err != nil || len(outer) != 1 || outer[0].Name != "control.tar.gz" {
					t.Fatalf("control.tar = %v (%v), want just control.tar.gz", archive.Names(outer), err)
				}
				control, err := archive.ReadTarGz(outer[0].Data)
				if err != nil {
					t.Fatalf("control.tar.gz: %v", err)
				}
				if got, want := archive.Names(control), []string{"qinstall.sh", "qpkg.cfg", "package_routines"}; !slices.Equal(got, want) {
					t.Errorf("control.tar.gz = %v, want %v", got, want)
				}
				cfgEntry, _ := archive.Find(control, "qpkg.cfg")
				cfg := pkgtest.Fields(t, string(cfgEntry.Data), "=")
				for k, v := range map[string]string{
					"QPKG_NAME": "homenet", "QPKG_VER": "1.2.3", "QPKG_SERVICE_PROGRAM": ServiceProgram,
					"QPKG_AUTHOR": packaging.Maintainer, "QDK_BUILD_ARCH": arch, "QTS_MINI_VERSION": "5.0.0",
				} {
					if cfg[k] != v {
						t.Errorf("qpkg.cfg %s = %q, want %q", k, cfg[k], v)
					}
				}

				data, err := archive.ReadTarGz(p.data)
				if err != nil {
					t.Fatalf("data.tar.gz: %v", err)
				}
				for name, mode := range map[string]int64{"homenet.sh": 0o755, ".uninstall.sh": 0o755, "bin/homenet": 0o755, "etc/homenet.toml.default": 0o644} {
					e, ok := archive.Find(data, name)
					if !ok {
						t.Errorf("data.tar.gz lacks %s", name)
					} else if e.Mode != mode {
						t.Errorf("%s mode %o, want %o", name, e.Mode, mode)
					}
				}
				if e, _ := archive.Find(data, "bin/homenet"); !bytes.Equal(e.Data, binData) {
					t.Error("bin/homenet is not the binary")
				}
				for _, es := range [][]archive.ReadEntry{outer, control, data} {
					for _, e := range es {
						if e.Uid != 0 || e.Gid != 0 || e.ModUnix != archive.Epoch.Unix() {
							t.Errorf("%s: owner %d:%d mtime %d, want 0:0 at the fixed epoch", e.Name, e.Uid, e.Gid, e.ModUnix)
						}
					}
				}
			})
		}
	}
}

func TestEncrypt(t *testing.T) {
	// 1 MiB: 1048576 × 3589 + 10⁹ = 4763339264, ten digits.
	if got := Encrypt(1 << 20); got != "4763339264" {
		t.Errorf("Encrypt(1 MiB) = %s", got)
	}
	// 30 MB: 12 digits, the first ten kept.
	if got := Encrypt(30_000_000); got != "1086700000" {
		t.Errorf("Encrypt(30 MB) = %s", got)
	}
}

// stubs are getcfg and setcfg stand-ins over a "SECTION|KEY=VALUE" file.
var stubs = map[string]string{
	"getcfg": `#!/bin/sh
sec=$1 key=$2
shift 2
def= file=
while [ $# -gt 0 ]; do
	case $1 in -d) def=$2; shift ;; -f) file=$2; shift ;; esac
	shift
done
v=$(awk -v p="$sec|$key=" 'index($0, p) == 1 { v = substr($0, length(p) + 1) } END { print v }' "$file" 2>/dev/null)
echo "${v:-$def}"
`,
	"setcfg": "#!/bin/sh\necho \"$1|$2=$3\" >>\"$5\"\n",
}

// TestQPKGInstall unpacks a .qpkg with dd, tar and head as its header
// does, runs qinstall.sh with getcfg/setcfg stand-ins, then the service
// script and .uninstall.sh.
func TestQPKGInstall(t *testing.T) {
	for _, tool := range []string{"dd", "tar", "head", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root := t.TempDir()
	sbin := filepath.Join(root, "sbin")
	os.MkdirAll(sbin, 0o755)
	for name, body := range stubs {
		os.WriteFile(filepath.Join(sbin, name), []byte(body), 0o755)
	}
	pkgFile := filepath.Join(root, "homenet.qpkg")
	b, err := Package{Arch: "x86_64", Version: testVersion, Binary: pkgtest.FakeBinary(t)}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pkgFile, b, 0o644)
	p := split(t, b)

	ext := filepath.Join(root, "extract")
	os.MkdirAll(ext, 0o755)
	sh := func(dir, script string, env ...string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	// The header's own commands, with its numbers.
	sh(root, "dd if=homenet.qpkg bs="+strconv.Itoa(p.scriptLen)+" skip=1 2>/dev/null | tar -xO | tar -xz -C extract")
	sh(root, "dd if=homenet.qpkg bs="+strconv.Itoa(p.scriptLen+p.ctrlLen)+" skip=1 2>/dev/null | head -c "+strconv.Itoa(p.dataLen)+" >extract/data.tar.gz")

	share := filepath.Join(root, "share", "CACHEDEV1_DATA")
	os.MkdirAll(filepath.Join(share, "Public"), 0o755)
	conf, smb, progress := filepath.Join(root, "qpkg.conf"), filepath.Join(root, "smb.conf"), filepath.Join(root, "progress")
	os.WriteFile(smb, []byte("Public|path="+filepath.Join(share, "Public")+"\n"), 0o644)
	link := filepath.Join(root, "homenet-link")
	env := []string{
		"GETCFG=" + filepath.Join(sbin, "getcfg"), "SETCFG=" + filepath.Join(sbin, "setcfg"),
		"QPKG_CONF=" + conf, "SMB_CONF=" + smb, "PROGRESS=" + progress, "HOMENET_LINK=" + link,
	}
	out := sh(ext, "sh qinstall.sh", env...)
	dir := filepath.Join(share, ".qpkg", "homenet")
	if !strings.Contains(out, "installed in "+dir) {
		t.Errorf("qinstall.sh output:\n%s\nwant it installed in %s", out, dir)
	}
	if b, _ := os.ReadFile(progress); strings.TrimSpace(string(b)) != "3" {
		t.Errorf("progress = %q, want 3 (done)", b)
	}
	get := func(key string) string {
		return strings.TrimSpace(sh(root, filepath.Join(sbin, "getcfg")+" homenet "+key+" -f "+conf))
	}
	for k, v := range map[string]string{
		"Install_Path": dir, "Shell": filepath.Join(dir, ServiceProgram), "Version": "1.2.3",
		"Enable": "TRUE", "Status": "complete", "Name": "homenet",
	} {
		if got := get(k); got != v {
			t.Errorf("qpkg.conf [homenet] %s = %q, want %q", k, got, v)
		}
	}
	cfg, err := appliance.LoadConfig(filepath.Join(dir, "etc", "homenet.toml"))
	if err != nil {
		t.Fatalf("installed config: %v", err)
	}
	if cfg.StateDir != filepath.Join(dir, "var") {
		t.Errorf("state_dir = %q, want %s", cfg.StateDir, filepath.Join(dir, "var"))
	}
	// The service ran the (stand-in) binary with the config.
	var log []byte
	for range 50 {
		if log, _ = os.ReadFile(filepath.Join(dir, "var", "homenet.log")); len(log) > 0 {
			break
		}
		sh(root, "sleep 0.1")
	}
	if want := "homenet stand-in serve --config " + filepath.Join(dir, "etc", "homenet.toml"); !strings.Contains(string(log), want) {
		t.Errorf("homenet.log = %q, want %q", log, want)
	}
	if l, err := os.Readlink(link); err != nil || l != filepath.Join(dir, "bin", "homenet") {
		t.Errorf("CLI link = %q, %v", l, err)
	}

	// An upgrade keeps the edited config.
	os.WriteFile(filepath.Join(dir, "etc", "homenet.toml"), []byte("# edited\n"), 0o600)
	sh(ext, "sh qinstall.sh", env...)
	if b, _ := os.ReadFile(filepath.Join(dir, "etc", "homenet.toml")); string(b) != "# edited\n" {
		t.Errorf("upgrade replaced the edited config with %q", b)
	}

	sh(dir, "sh .uninstall.sh", env...)
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf(".uninstall.sh left the CLI link: %v", err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	path := filepath.Join(dir, "etc", "homenet.toml")
	os.WriteFile(path, DefaultConfig(), 0o600)
	cfg, err := appliance.LoadConfig(path)
	if err != nil {
		t.Fatalf("the package's config does not load: %v", err)
	}
	if cfg.StateDir != filepath.Join(dir, "var") {
		t.Errorf("state_dir = %q, want the package's var/", cfg.StateDir)
	}
}

func TestScripts(t *testing.T) {
	for name, s := range Scripts() {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) { pkgtest.CheckShell(t, name, s) })
	}
}

func TestVersionTooLong(t *testing.T) {
	_, err := Package{Arch: "x86_64", Version: packaging.Version{Semver: "100.200.3000"}, Binary: pkgtest.FakeBinary(t)}.Bytes()
	if err == nil {
		t.Error("an 11-character version was accepted; QDK allows 10")
	}
}
