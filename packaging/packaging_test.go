package packaging

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tailscale.com/feature/featuretags"
)

func TestTags(t *testing.T) {
	tags := OmitTags(KeepFeatures)
	for _, keep := range []string{"unixsocketidentity", "advertiseroutes", "advertiseexitnode", "c2n", "peerapiserver", "dns", "health"} {
		if slices.Contains(tags, "ts_omit_"+keep) {
			t.Errorf("release tags omit %s, which homenet needs", keep)
		}
	}
	for _, omit := range []string{"netstack", "ssh", "taildrop", "webclient", "osrouter", "iptables", "logtail", "portmapper", "cachenetmap"} {
		if !slices.Contains(tags, "ts_omit_"+omit) {
			t.Errorf("release tags keep %s", omit)
		}
	}
	for _, tag := range tags {
		f := featuretags.FeatureTag(strings.TrimPrefix(tag, "ts_omit_"))
		if _, ok := featuretags.Features[f]; !ok {
			t.Errorf("tag %s names no feature", tag)
		}
	}
	if !slices.IsSorted(tags) {
		t.Error("tags are not sorted")
	}
	stock := OmitTags(StockFeatures)
	if slices.Contains(stock, "ts_omit_osrouter") || slices.Contains(stock, "ts_omit_unixsocketidentity") {
		t.Errorf("stock tailscaled tags %v omit its router or unixsocketidentity", stock)
	}
	if Tags() != strings.Join(tags, ",") {
		t.Error("Tags() is not OmitTags(KeepFeatures) joined")
	}
}

func TestVersion(t *testing.T) {
	v, err := ParseVersion("v1.2.3-45")
	if err != nil {
		t.Fatal(err)
	}
	if v.Opkg() != "1.2.3-r45" || v.Synology() != "1.2.3-45" || v.String() != "1.2.3-45" {
		t.Errorf("formats: opkg %s, synology %s, string %s", v.Opkg(), v.Synology(), v)
	}
	if q, err := v.QNAP(); q != "1.2.3" || err != nil {
		t.Errorf("QNAP() = %q, %v", q, err)
	}
	for _, bad := range []string{"1.2", "1.2.3-x", "01.2.3", "1.2.3.4", ""} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
	if _, err := (Version{Semver: "123.456.7890"}).QNAP(); err == nil {
		t.Error("QNAP accepted a version over 10 characters")
	}
	if _, err := exec.LookPath("git"); err == nil {
		gv, err := GitVersion(context.Background(), ".")
		if err != nil {
			t.Logf("GitVersion: %v (not a git checkout?)", err)
		} else if gv.Build <= 0 || !semverRE.MatchString(gv.Semver) {
			t.Errorf("GitVersion = %+v", gv)
		}
	}
}

func TestTargets(t *testing.T) {
	seen := map[string]bool{}
	for _, tg := range Targets {
		if len(tg.OpenWrt) == 0 {
			t.Errorf("%s: no OpenWrt architecture", tg.Name)
		}
		for _, a := range tg.OpenWrt {
			if seen[a] {
				t.Errorf("OpenWrt arch %s listed twice", a)
			}
			seen[a] = true
		}
		env := strings.Join(tg.Env(), " ")
		if !strings.Contains(env, "CGO_ENABLED=0") {
			t.Errorf("%s: not static: %s", tg.Name, env)
		}
		if strings.HasPrefix(tg.GOARCH, "mips") && tg.GOMIPS != "softfloat" {
			t.Errorf("%s: GOMIPS=%q, want softfloat", tg.Name, tg.GOMIPS)
		}
	}
	for _, want := range []string{"amd64", "arm64", "arm", "mipsle", "mips"} {
		if _, err := LookupTarget(want); err != nil {
			t.Error(err)
		}
	}
}

// repoRoot is the module root, one directory up.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s", root)
	}
	return root
}

// plain64BitAtomic matches the sync/atomic functions that take a pointer
// to a plain int64 or uint64. On 32-bit ARM and MIPS they panic unless the
// word is 64-bit aligned, which Go guarantees only for the first word of
// an allocation; atomic.Int64 and atomic.Uint64 are always aligned.
var plain64BitAtomic = regexp.MustCompile(`\batomic\.(Add|Load|Store|CompareAndSwap|Swap)(Int64|Uint64)\(`)

// TestNo64BitAtomicsOnPlainFields scans every Go file of the module.
func TestNo64BitAtomicsOnPlainFields(t *testing.T) {
	root := repoRoot(t)
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "dist", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if i := strings.Index(line, "//"); i >= 0 {
				line = line[:i]
			}
			if plain64BitAtomic.MatchString(line) {
				rel, _ := filepath.Rel(root, path)
				bad = append(bad, rel+":"+strconv.Itoa(n)+": "+strings.TrimSpace(sc.Text()))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("%s\n\tuse atomic.Int64 or atomic.Uint64: 64-bit atomics on a plain field crash on 32-bit ARM and MIPS when it is not 8-byte aligned", b)
	}
}

// TestCrossCompile builds and vets the module for the 32-bit targets and
// builds it with the release tags, so that neither a 32-bit-only mistake
// nor a ts_omit_ tag breaks a package that the default build never sees.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling the module takes minutes on 2 cores")
	}
	root := repoRoot(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"vet arm", []string{"GOARCH=arm", "GOARM=7"}, []string{"vet", "./..."}},
		{"build mipsle", []string{"GOARCH=mipsle", "GOMIPS=softfloat"}, []string{"build", "./..."}},
		{"build mips", []string{"GOARCH=mips", "GOMIPS=softfloat"}, []string{"build", "./..."}},
		{"build release tags", nil, []string{"build", "-tags", Tags(), "./..."}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cmd := exec.Command("go", tc.args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), append([]string{"CGO_ENABLED=0", "GOOS=linux"}, tc.env...)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				return
			}
			// On mips, a package that imports modernc.org/sqlite for every
			// GOARCH fails here: modernc.org/libc has no mips port, and
			// control/store picks the ncruces driver there by build tags.
			t.Errorf("go %s (%s): %v\n%s", strings.Join(tc.args, " "), strings.Join(tc.env, " "), err, out)
		})
	}
}
