package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binaries built for this test process; set by Main.
var binDir string

// Main is TestMain for packages that use the lab:
//
//	func TestMain(m *testing.M) { lab.Main(m) }
//
// It gives the test binary a directory for the binaries it builds (homenet,
// the lab's helper tool) and removes it at exit. Builds happen on first use,
// so tests that skip (not root) build nothing.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "homenet-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// built memoizes one build per test process.
type built struct {
	once sync.Once
	path string
	err  error
}

func (b *built) get(t testing.TB, build func() (string, error)) string {
	t.Helper()
	b.once.Do(func() { b.path, b.err = build() })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var homenetBin, labtoolBin built

var (
	tailscaleMu   sync.Mutex
	tailscaleBins = map[string]*built{} // by version; "" is the pinned one
)

// HomenetBinary builds homenet/cmd/homenet once per test process, or
// returns $HOMENET_E2E_BINARY when set (to test a release build).
func HomenetBinary(t testing.TB) string {
	t.Helper()
	return homenetBin.get(t, func() (string, error) {
		if p := os.Getenv("HOMENET_E2E_BINARY"); p != "" {
			return filepath.Abs(p)
		}
		return goBuild(t, "homenet/cmd/homenet", "homenet")
	})
}

// LabtoolBinary builds the lab's helper program (DNS responder, DERP probe,
// TCP echo, …) once per test process.
func LabtoolBinary(t testing.TB) string {
	t.Helper()
	return labtoolBin.get(t, func() (string, error) { return goBuild(t, "homenet/e2e/internal/labtool", "labtool") })
}

func goBuild(t testing.TB, pkg, name string) (string, error) {
	if binDir == "" {
		return "", fmt.Errorf("lab: binary directory not set; call lab.Main(m) from TestMain")
	}
	out := filepath.Join(binDir, name)
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	t.Logf("lab: built %s in %v", pkg, time.Since(start).Round(time.Millisecond))
	return out, nil
}

// TailscaleBinaries returns paths of tailscaled and tailscale built from the
// tailscale.com version this module pins. They are built once per machine
// and cached in $XDG_CACHE_HOME/homenet-e2e/tailscale-VERSION-GOOS-GOARCH
// (~/.cache/… by default); a file lock keeps parallel test processes from
// building twice. A cold build takes minutes.
func TailscaleBinaries(t testing.TB) (tailscaled, tailscale string) {
	t.Helper()
	return tailscaleBinaries(t, "")
}

// TailscaleBinariesVersion is TailscaleBinaries for another release of the
// client, such as "v1.84.0", to test the apps people still run: its module
// comes through the module proxy into the module cache (our go.mod stays
// as it is) and the binaries are cached beside the pinned ones.
func TailscaleBinariesVersion(t testing.TB, version string) (tailscaled, tailscale string) {
	t.Helper()
	if !strings.HasPrefix(version, "v") || strings.ContainsAny(version, "/@ ") {
		t.Fatalf("lab: tailscale version %q: want a module version such as v1.84.0", version)
	}
	return tailscaleBinaries(t, version)
}

func tailscaleBinaries(t testing.TB, version string) (tailscaled, tailscale string) {
	t.Helper()
	tailscaleMu.Lock()
	b := tailscaleBins[version]
	if b == nil {
		b = new(built)
		tailscaleBins[version] = b
	}
	tailscaleMu.Unlock()
	dir := b.get(t, func() (string, error) { return buildTailscale(t, version) })
	return filepath.Join(dir, "tailscaled"), filepath.Join(dir, "tailscale")
}

// buildTailscale builds tailscale.com@version, or the version our go.mod
// pins when version is "", unless the cache has it.
func buildTailscale(t testing.TB, version string) (string, error) {
	// The module's version and source: the pinned one from our own go.mod;
	// another from outside any module (like headscale's, see
	// buildHeadscale), so that no go.mod or go.sum is read or written.
	dl := exec.Command("go", "mod", "download", "-json", "tailscale.com")
	if version != "" {
		dl = exec.Command("go", "mod", "download", "-json", "tailscale.com@"+version)
		dl.Dir = os.TempDir()
		dl.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	}
	out, dlErr := dl.Output()
	var mod struct{ Version, Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); dlErr != nil || jerr != nil || mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("%s: %v %s", strings.Join(dl.Args, " "), errors.Join(dlErr, jerr), mod.Error)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "homenet-e2e", fmt.Sprintf("tailscale-%s-%s-%s", mod.Version, runtime.GOOS, runtime.GOARCH))
	have := func() bool {
		for _, b := range []string{"tailscaled", "tailscale"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if have() {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if have() { // another process built them while we waited
		return dir, nil
	}

	t.Logf("lab: building tailscaled and tailscale %s into %s (takes a few minutes on a cold cache)", mod.Version, dir)
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	// Build inside tailscale.com's own module (read-only in the module
	// cache, which is fine): its go.sum covers its dependencies, ours needs
	// not.
	cmd := exec.Command("go", "build", "-o", tmp+"/", "tailscale.com/cmd/tailscaled", "tailscale.com/cmd/tailscale")
	cmd.Dir = mod.Dir
	// GOTOOLCHAIN=local: an old release builds with today's Go; a go line
	// newer than ours fails here rather than fetching a toolchain.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly -buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building tailscale %s in %s: %v\n%s", mod.Version, mod.Dir, err, b)
	}
	took := time.Since(start).Round(time.Second)
	os.WriteFile(filepath.Join(tmp, "BUILD"), fmt.Appendf(nil, "tailscale.com %s built with %s in %v\n", mod.Version, runtime.Version(), took), 0o644)
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	t.Logf("lab: built tailscale %s in %v", mod.Version, took)
	return dir, nil
}
