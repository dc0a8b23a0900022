package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/packaging"
)

func TestReportSizeTarget(t *testing.T) {
	amd64, _ := packaging.LookupTarget("amd64")
	bins := []built{{target: amd64, path: "x", size: 20 << 20}}
	var out strings.Builder
	if err := report(&out, bins, nil, map[string]int64{"tailscaled": 14 << 20, "derper": 17 << 20}); err != nil {
		t.Errorf("report: %v", err)
	}
	for _, want := range []string{"amd64", "20971520", "tailscaled + derper", "size target met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := report(&out, bins, nil, map[string]int64{"tailscaled": 8 << 20, "derper": 8 << 20}); err == nil {
		t.Errorf("report accepted a binary larger than tailscaled + derper:\n%s", out.String())
	}
}

// qemuBuilds builds each target once per test run.
var qemuBuilds sync.Map // target name → *qemuBuild

type qemuBuild struct {
	once sync.Once
	path string
	err  error
	took time.Duration
}

func buildFor(t *testing.T, tgt packaging.Target, dir string) string {
	t.Helper()
	v, _ := qemuBuilds.LoadOrStore(tgt.Name, new(qemuBuild))
	b := v.(*qemuBuild)
	b.once.Do(func() {
		root, err := moduleRoot(context.Background())
		if err != nil {
			b.err = err
			return
		}
		start := time.Now()
		b.path = filepath.Join(dir, "homenet-linux-"+tgt.Name)
		b.err = packaging.GoBuild(context.Background(), root, tgt, packaging.Version{Semver: "0.0.1", Build: 1}, b.path)
		b.took = time.Since(start)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	t.Logf("built %s release binary in %v", tgt, b.took.Round(time.Second))
	return b.path
}

// TestQEMU runs the release binaries for 32-bit ARM and little-endian MIPS
// (the store uses the Wasm SQLite there) under qemu-user: "homenet
// version" and "homenet selftest".
func TestQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two release binaries (a minute or more each on 2 cores)")
	}
	dir := t.TempDir()
	for _, name := range []string{"arm", "mipsle"} {
		tgt, _ := packaging.LookupTarget(name)
		t.Run(name, func(t *testing.T) {
			qemu, err := exec.LookPath(tgt.QEMU)
			if err != nil {
				t.Skipf("%s not installed (apt-get install qemu-user-static): cannot run the %s binary", tgt.QEMU, tgt)
			}
			bin := buildFor(t, tgt, dir)
			for _, args := range [][]string{{"version"}, {"selftest"}} {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				start := time.Now()
				cmd := exec.CommandContext(ctx, qemu, append([]string{bin}, args...)...)
				cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil {
					t.Fatalf("qemu homenet %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				t.Logf("homenet %s under %s (%v):\n%s", strings.Join(args, " "), tgt.QEMU, time.Since(start).Round(time.Millisecond), out)
				switch args[0] {
				case "version":
					if !strings.Contains(string(out), "linux/"+tgt.GOARCH) || !strings.Contains(string(out), "0.0.1") {
						t.Errorf("version output lacks linux/%s and 0.0.1", tgt.GOARCH)
					}
				case "selftest":
					if !strings.Contains(string(out), "selftest passed") {
						t.Errorf("selftest did not pass")
					}
					if tgt.GOARCH == "mipsle" && !strings.Contains(string(out), "ncruces/go-sqlite3") {
						t.Errorf("the mipsle store does not use the ncruces driver")
					}
				}
			}
		})
	}
}
