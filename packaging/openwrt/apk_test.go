package openwrt

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"homenet/packaging"
	"homenet/packaging/internal/adb"
)

// These tests check the .apk with the real apk-tools 3, which .ci/run
// builds with ../shared/tools/apk-tools/build.sh and names in $HOMENET_APK.

// apkTool returns the apk binary, or skips the test.
func apkTool(t *testing.T) string {
	t.Helper()
	p := os.Getenv("HOMENET_APK")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "apk-tools-3.0.6", "apk")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("apk-tools 3 not found (set HOMENET_APK or run ../shared/tools/apk-tools/build.sh): %v", err)
	}
	return p
}

// apkRoot returns apk and a new install root for arch, where apk runs
// package scripts chrooted: it holds the host's sh (with the libraries it
// needs) and a stand-in /lib/functions.sh that logs what the scripts call
// to /hooks.log.
func apkRoot(t *testing.T, arch string) (apk, root string) {
	t.Helper()
	apk = apkTool(t)
	if os.Geteuid() != 0 {
		t.Skip("apk runs package scripts chrooted into --root, which needs root")
	}
	root = filepath.Join(t.TempDir(), "root")
	copyShell(t, root)
	functions := `default_postinst() { echo "post-install pkgname=$pkgname upgrade=${PKG_UPGRADE:-0}" >>/hooks.log; }
default_prerm() { echo "pre-deinstall pkgname=$pkgname upgrade=${PKG_UPGRADE:-0}" >>/hooks.log; }
add_group_and_user() { :; }
uci() { :; }
`
	writeFile(t, filepath.Join(root, "lib/functions.sh"), functions, 0o644)
	runAPK(t, apk, "--root", root, "--initdb", "--arch", arch, "add")
	return apk, root
}

// copyShell copies /bin/sh and the shared libraries ldd lists into root.
func copyShell(t *testing.T, root string) {
	t.Helper()
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		t.Skipf("ldd %s: %v", sh, err)
	}
	files := []string{sh}
	files = append(files, regexp.MustCompile(`(/\S+)`).FindAllString(string(out), -1)...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, f), string(b), 0o755)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sh, filepath.Join(root, "bin/sh")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

// runAPK runs apk and returns what it printed; it fails the test if apk
// fails.
func runAPK(t *testing.T, apk string, args ...string) string {
	t.Helper()
	out, err := apkCmd(apk, args...)
	if err != nil {
		t.Fatalf("apk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func apkCmd(apk string, args ...string) (string, error) {
	args = append([]string{"--no-interactive", "--no-cache", "--no-network"}, args...)
	out, err := exec.Command(apk, args...).CombinedOutput()
	return string(out), err
}

// writeAPKs writes homenet at version v for arch, and stand-ins for its
// dependencies, into dir, and returns their paths (homenet first).
func writeAPKs(t *testing.T, dir, arch string, v packaging.Version, bin string, key *adb.Key) []string {
	t.Helper()
	p, err := Package{Arch: arch, Version: v, Binary: bin}.WriteAPK(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{p}
	for _, dep := range []string{"kmod-tun", "ca-bundle"} {
		s := apkSpec{Name: dep, Version: "1-r1", Arch: arch, Description: "stand-in for " + dep}
		if key != nil {
			s.Keys = []*adb.Key{key}
		}
		b, err := s.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, dep+".apk")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	return paths
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hooks(t *testing.T, root string) []string {
	b, _ := os.ReadFile(filepath.Join(root, "hooks.log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestAPKInstall(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "homenet")
	writeFile(t, bin, "#!/bin/sh\necho homenet v1\n", 0o755)
	for _, tgt := range packaging.Targets {
		for _, arch := range tgt.OpenWrt {
			t.Run(arch, func(t *testing.T) {
				apk, root := apkRoot(t, arch)
				pkgs := writeAPKs(t, t.TempDir(), arch, testVersion, bin, nil)
				runAPK(t, apk, append([]string{"--root", root, "--allow-untrusted", "add"}, pkgs...)...)

				for _, f := range []struct {
					path string
					mode os.FileMode
					want string
				}{
					{BinaryPath, 0o755, "#!/bin/sh\necho homenet v1\n"},
					{InitPath, 0o755, string(InitScript())},
					{ConfigPath, 0o600, string(DefaultConfig())},
					{UCIDefaultPath, 0o755, string(file("uci-defaults"))},
					{KeepPath, 0o644, "/etc/homenet/\n"},
					{APKConffilesPath, 0o644, ConfigPath + "\n"},
				} {
					fi, err := os.Stat(filepath.Join(root, f.path))
					if err != nil {
						t.Errorf("not installed: %v", err)
						continue
					}
					if fi.Mode().Perm() != f.mode {
						t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
					}
					if got := readFile(t, filepath.Join(root, f.path)); got != f.want {
						t.Errorf("%s = %q, want %q", f.path, got, f.want)
					}
				}
				if got := readFile(t, filepath.Join(root, APKListPath)); !strings.Contains(got, "\n"+InitPath+"\n") || !strings.Contains(got, "\n"+UCIDefaultPath+"\n") {
					t.Errorf("%s lacks the init script or uci-defaults, which default_postinst looks for:\n%s", APKListPath, got)
				}
				if got, want := hooks(t, root), []string{"post-install pkgname=homenet upgrade=0"}; !slices.Equal(got, want) {
					t.Errorf("scripts called %q, want %q", got, want)
				}
				info := runAPK(t, apk, "--root", root, "info", "-e", "homenet")
				if strings.TrimSpace(info) != "homenet" {
					t.Errorf("apk info -e homenet = %q", info)
				}
			})
		}
	}
}

func TestAPKUpgradeAndDelete(t *testing.T) {
	const arch = "mipsel_24kc"
	apk, root := apkRoot(t, arch)
	dir := t.TempDir()
	bin := filepath.Join(dir, "homenet")
	writeFile(t, bin, "#!/bin/sh\necho homenet v1\n", 0o755)
	v1 := writeAPKs(t, t.TempDir(), arch, testVersion, bin, nil)
	runAPK(t, apk, append([]string{"--root", root, "--allow-untrusted", "add"}, v1...)...)

	// The user edits the config and homenet writes its state.
	config := filepath.Join(root, ConfigPath)
	edited := readFile(t, config) + "\n# edited on the router\n"
	writeFile(t, config, edited, 0o600)
	writeFile(t, filepath.Join(root, "etc/homenet/state/node.key"), "secret", 0o600)

	writeFile(t, bin, "#!/bin/sh\necho homenet v2\n", 0o755)
	v2 := packaging.Version{Semver: testVersion.Semver, Build: testVersion.Build + 1}
	pkgs := writeAPKs(t, t.TempDir(), arch, v2, bin, nil)
	out := runAPK(t, apk, "--root", root, "--allow-untrusted", "add", pkgs[0])
	t.Logf("upgrade:\n%s", out)
	if !strings.Contains(out, "Upgrading homenet (1.2.3-r45 -> 1.2.3-r46)") {
		t.Errorf("apk add of r46 did not upgrade:\n%s", out)
	}
	if got := readFile(t, filepath.Join(root, BinaryPath)); !strings.Contains(got, "v2") {
		t.Errorf("binary after the upgrade = %q, want v2", got)
	}
	if got := readFile(t, config); got != edited {
		t.Errorf("upgrade replaced the edited config:\n%s", got)
	}
	if got := readFile(t, config+".apk-new"); got != string(DefaultConfig()) {
		t.Errorf("%s.apk-new = %q, want the package's config", ConfigPath, got)
	}
	if got, want := hooks(t, root)[1:], []string{"post-install pkgname=homenet upgrade=1"}; !slices.Equal(got, want) {
		t.Errorf("upgrade called %q, want %q", got, want)
	}

	out = runAPK(t, apk, "--root", root, "del", "homenet")
	t.Logf("del:\n%s", out)
	for _, gone := range []string{BinaryPath, InitPath, UCIDefaultPath, APKListPath, ConfigPath + ".apk-new"} {
		if _, err := os.Stat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still there after apk del (%v)", gone, err)
		}
	}
	if got := readFile(t, config); got != edited {
		t.Errorf("apk del did not keep the edited config: %q", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/homenet/state/node.key")); got != "secret" {
		t.Errorf("apk del did not keep the state: %q", got)
	}
	if got, want := hooks(t, root)[2:], []string{"pre-deinstall pkgname=homenet upgrade=0"}; !slices.Equal(got, want) {
		t.Errorf("del called %q, want %q", got, want)
	}
}

func TestAPKSigned(t *testing.T) {
	apk := apkTool(t)
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := adb.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := adb.NewKey(other)
	for name, k := range map[string]*adb.Key{"keys": key, "other": otherKey} {
		pub, err := k.PublicPEM()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "homenet-test.rsa.pub"), string(pub), 0o644)
	}
	bin := filepath.Join(dir, "homenet")
	writeFile(t, bin, "#!/bin/sh\n", 0o755)
	pkg, err := Package{Arch: "aarch64_cortex-a53", Version: testVersion, Binary: bin}.WriteAPK(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(t.TempDir(), "unsigned.apk")
	b, _ := Package{Arch: "aarch64_cortex-a53", Version: testVersion, Binary: bin}.APK(nil)
	writeFile(t, unsigned, string(b), 0o644)

	for _, tc := range []struct {
		keys, pkg string
		ok        bool
	}{
		{"keys", pkg, true},
		{"other", pkg, false},
		{"keys", unsigned, false},
	} {
		out, err := apkCmd(apk, "--keys-dir", filepath.Join(dir, tc.keys), "verify", tc.pkg)
		if (err == nil) != tc.ok {
			t.Errorf("apk verify %s with %s: err %v, want ok=%v\n%s", filepath.Base(tc.pkg), tc.keys, err, tc.ok, out)
		}
	}
}

// adbdump reads apk adbdump's YAML: the scalar fields of info, the
// depends, every path/file and the script names.
type dump struct {
	info    map[string]string
	depends []string
	files   []string
	scripts []string
}

func readDump(t *testing.T, s string) dump {
	t.Helper()
	d := dump{info: map[string]string{}}
	var section, list, dir string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		v = strings.TrimSpace(v)
		switch {
		case indent == 0:
			section = k
		case section == "info" && indent == 2:
			list = k
			if v != "" && !strings.HasPrefix(v, "#") && v != "|" {
				d.info[k] = v
			}
		case section == "info" && list == "depends" && strings.HasPrefix(strings.TrimSpace(line), "- "):
			d.depends = append(d.depends, strings.TrimPrefix(strings.TrimSpace(line), "- "))
		case section == "paths" && indent == 2 && strings.HasPrefix(line, "  - "):
			dir = ""
			if k == "- name" {
				dir = v
			}
		case section == "paths" && indent == 6 && k == "- name":
			d.files = append(d.files, "/"+strings.TrimPrefix(dir+"/"+v, "/"))
		case section == "scripts" && indent == 2:
			d.scripts = append(d.scripts, k)
		}
	}
	return d
}

func TestAPKDump(t *testing.T) {
	apk := apkTool(t)
	bin := filepath.Join(t.TempDir(), "homenet")
	writeFile(t, bin, "#!/bin/sh\n", 0o755)
	const arch = "arm_cortex-a7_neon-vfpv4"
	pkg, err := Package{Arch: arch, Version: testVersion, Binary: bin}.WriteAPK(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := runAPK(t, apk, "adbdump", pkg)
	d := readDump(t, out)
	for k, want := range map[string]string{
		"name": "homenet", "version": "1.2.3-r45", "arch": arch,
		"license": packaging.License, "origin": packaging.Source, "maintainer": packaging.Maintainer,
	} {
		if d.info[k] != want {
			t.Errorf("info %s = %q, want %q", k, d.info[k], want)
		}
	}
	if want := []string{"ca-bundle", "kmod-tun"}; !slices.Equal(d.depends, want) {
		t.Errorf("depends = %q, want %q", d.depends, want)
	}
	wantFiles := []string{ConfigPath, InitPath, UCIDefaultPath, APKConffilesPath, APKConffilesStatPath, APKListPath, KeepPath, BinaryPath}
	if !slices.Equal(d.files, wantFiles) {
		t.Errorf("files = %q, want %q", d.files, wantFiles)
	}
	if want := []string{"post-install", "pre-deinstall", "post-upgrade"}; !slices.Equal(d.scripts, want) {
		t.Errorf("scripts = %q, want %q", d.scripts, want)
	}
	if !bytes.Contains([]byte(out), []byte("hashes: ")) {
		t.Errorf("no unique id (info hashes) in the dump:\n%s", out)
	}
}

func TestAPKBadInput(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "homenet")
	writeFile(t, bin, "#!/bin/sh\n", 0o755)
	if _, err := (Package{Arch: "i386_pentium4", Version: testVersion, Binary: bin}).APK(nil); err == nil || !strings.Contains(err.Error(), `unknown OpenWrt arch "i386_pentium4"`) {
		t.Errorf("unknown arch: err %v", err)
	}
	if _, err := (Package{Arch: "x86_64", Version: testVersion, Binary: "/nonexistent/homenet"}).APK(nil); err == nil {
		t.Errorf("missing binary: no error")
	}
	ok := apkSpec{Name: "homenet", Version: "1.2.3-r45", Arch: "x86_64"}
	for _, tc := range []struct {
		name    string
		edit    func(*apkSpec)
		wantErr string
	}{
		{"name", func(s *apkSpec) { s.Name = "-homenet" }, `package name "-homenet"`},
		{"version", func(s *apkSpec) { s.Version = "1.2.3-45" }, `version "1.2.3-45"`},
		{"arch", func(s *apkSpec) { s.Arch = "" }, `arch ""`},
		{"dependency", func(s *apkSpec) { s.Depends = []string{"kmod tun"} }, `dependency "kmod tun"`},
		{"script", func(s *apkSpec) { s.Scripts = map[string][]byte{"postinst": nil} }, `script "postinst"`},
		{"relative path", func(s *apkSpec) { s.Files = []apkFile{{Path: "etc/x"}} }, `file "etc/x"`},
		{"twice", func(s *apkSpec) { s.Files = []apkFile{{Path: "/x"}, {Path: "/x"}} }, `"/x" is in the package twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			if _, err := s.Bytes(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := ok.Bytes(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

// TestAPKLayout reads the .apk back with our own parser: each DATA block
// holds the file its path and file index name, with the hash and size the
// ADB block gives, and the OpenWrt metadata files are right.
func TestAPKLayout(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "homenet")
	writeFile(t, bin, "#!/bin/sh\necho layout\n", 0o755)
	b, err := Package{Arch: "mips_24kc", Version: testVersion, Binary: bin}.APK(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := adb.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.Root()
	if err != nil {
		t.Fatal(err)
	}
	if !p.Compressed || p.Schema != adb.SchemaPackage || len(p.Sigs) != 0 {
		t.Errorf("compressed %v, schema %#x, %d signatures; want a deflated, unsigned package", p.Compressed, p.Schema, len(p.Sigs))
	}
	contents := map[string]string{}
	paths := root.Field(adb.PkgPaths)
	for _, d := range p.Data {
		pi, fi := binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint32(d[4:])
		dir := paths.Field(int(pi))
		f := dir.Field(adb.DirFiles).Field(int(fi))
		name := "/" + strings.TrimPrefix(string(dir.Field(adb.DirName).Blob)+"/"+string(f.Field(adb.FileName).Blob), "/")
		body := d[8:]
		sum := sha256.Sum256(body)
		if !bytes.Equal(f.Field(adb.FileHash).Blob, sum[:]) || f.Field(adb.FileSize).Int != uint64(len(body)) {
			t.Errorf("%s: data block does not match its hash and size", name)
		}
		contents[name] = string(body)
	}
	if got := contents[BinaryPath]; got != "#!/bin/sh\necho layout\n" {
		t.Errorf("binary = %q", got)
	}
	sum := sha256.Sum256(DefaultConfig())
	if got, want := contents[APKConffilesStatPath], ConfigPath+" "+hex.EncodeToString(sum[:])+"\n"; got != want {
		t.Errorf("conffiles_static = %q, want %q", got, want)
	}
	wantList := []string{ConfigPath, InitPath, UCIDefaultPath, KeepPath, BinaryPath}
	slices.Sort(wantList)
	if got := contents[APKListPath]; got != strings.Join(wantList, "\n")+"\n" {
		t.Errorf("list = %q, want %q", got, wantList)
	}
	info := root.Field(adb.PkgInfo)
	if id := info.Field(adb.InfoHashes).Blob; len(id) != 20 || bytes.Equal(id, make([]byte, 20)) {
		t.Errorf("unique id %x, want 20 bytes of hash", id)
	}
	for name, field := range apkScriptFields {
		got := root.Field(adb.PkgScripts).Field(field).Blob
		if want := APKScripts()[name]; !bytes.Equal(got, want) {
			t.Errorf("script %s = %q, want %q", name, got, want)
		}
	}
}
