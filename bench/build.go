package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"homenet/packaging"

	"tailscale.com/feature/featuretags"
)

// Builds. homenet is built exactly as a release (packaging.GoBuild: static,
// -trimpath, stripped, ts_omit_ tags). The stock pieces are built from the
// tailscale.com module homenet pins, inside its own directory in the module
// cache, with the flags packaging/build uses for its size table: tailscaled
// trimmed to packaging.StockFeatures (the gateway's job) and derper, both
// with the same ts_omit_ tags and linker flags. Stock binaries are cached
// per version, arch and tags in $XDG_CACHE_HOME/homenet-bench.

// builder builds each binary once per run.
type builder struct {
	root    string // homenet's module root
	workDir string
	logf    func(string, ...any)

	mu   sync.Mutex
	done map[string]*buildResult

	tsOnce sync.Once
	tsMod  tsModule
	tsErr  error
}

type buildResult struct {
	once sync.Once
	path string
	took time.Duration
	err  error
}

type tsModule struct{ Version, Dir string }

func (b *builder) get(key string, build func() (string, error)) (string, time.Duration, error) {
	b.mu.Lock()
	if b.done == nil {
		b.done = map[string]*buildResult{}
	}
	r := b.done[key]
	if r == nil {
		r = &buildResult{}
		b.done[key] = r
	}
	b.mu.Unlock()
	r.once.Do(func() {
		start := time.Now()
		r.path, r.err = build()
		r.took = time.Since(start)
	})
	return r.path, r.took, r.err
}

// hostTarget is the release target of this machine.
func hostTarget() (packaging.Target, error) {
	for _, t := range packaging.Targets {
		if t.GOARCH == runtime.GOARCH && t.GOARM == "" && t.GOMIPS == "" {
			return t, nil
		}
	}
	return packaging.Target{}, fmt.Errorf("no release target for %s", runtime.GOARCH)
}

// hostHomenet builds the release binary for this machine.
func (b *builder) hostHomenet(ctx context.Context) (string, error) {
	t, err := hostTarget()
	if err != nil {
		return "", err
	}
	bin, _, err := b.homenet(ctx, t)
	return bin, err
}

// version is what the release build stamps into homenet.
func (b *builder) version(ctx context.Context) packaging.Version {
	v, err := packaging.GitVersion(ctx, b.root)
	if err != nil {
		return packaging.Version{Semver: "0.0.0"}
	}
	return v
}

// homenet builds the release binary for t.
func (b *builder) homenet(ctx context.Context, t packaging.Target) (string, time.Duration, error) {
	return b.get("homenet-"+t.Name, func() (string, error) {
		out := filepath.Join(b.workDir, "bin", "homenet-linux-"+t.Name)
		b.logf("building homenet for %s (release flags) …", t)
		if err := packaging.GoBuild(ctx, b.root, t, b.version(ctx), out); err != nil {
			return "", err
		}
		return out, nil
	})
}

// tailscale returns the pinned tailscale.com module's version and source
// directory.
func (b *builder) tailscale(ctx context.Context) (tsModule, error) {
	b.tsOnce.Do(func() {
		cmd := exec.CommandContext(ctx, "go", "list", "-m", "-json", "tailscale.com")
		cmd.Dir = b.root
		out, err := cmd.Output()
		if err != nil {
			b.tsErr = fmt.Errorf("go list -m tailscale.com: %w", err)
			return
		}
		b.tsErr = json.Unmarshal(out, &b.tsMod)
		if b.tsErr == nil && b.tsMod.Dir == "" {
			b.tsErr = fmt.Errorf("tailscale.com %s is not in the module cache; run go mod download", b.tsMod.Version)
		}
	})
	return b.tsMod, b.tsErr
}

// stockTags are the ts_omit_ tags of the stock builds.
func stockTags() string { return strings.Join(packaging.OmitTags(packaging.StockFeatures), ",") }

// runtimeFeatures are what the stock tailscaled that runs as the gateway
// in the lab keeps: packaging.StockFeatures plus the IPN bus, without
// which `tailscale up` cannot log in (the CLI watches the bus; a daemon
// built with ts_omit_ipnbus answers it 404).
var runtimeFeatures = append(slices.Clone(packaging.StockFeatures), "ipnbus")

// stock builds name ("tailscaled" or "derper") from the pinned module for
// t, trimmed as packaging/build does for its size table.
func (b *builder) stock(ctx context.Context, name string, t packaging.Target) (string, time.Duration, error) {
	return b.stockWith(ctx, name, t, packaging.StockFeatures)
}

// stockWith builds name for t keeping features.
func (b *builder) stockWith(ctx context.Context, name string, t packaging.Target, features []featuretags.FeatureTag) (string, time.Duration, error) {
	tags := strings.Join(packaging.OmitTags(features), ",")
	return b.get("stock-"+name+"-"+t.Name+"-"+tags, func() (string, error) {
		mod, err := b.tailscale(ctx)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(tags + "|" + runtime.Version()))
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		dir := filepath.Join(cache, "homenet-bench", fmt.Sprintf("tailscale-%s-%s-%s", mod.Version, t.Name, hex.EncodeToString(sum[:4])))
		out := filepath.Join(dir, name)
		if fi, err := os.Stat(out); err == nil && fi.Mode()&0o111 != 0 {
			return out, nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		unlock, err := flock(out + ".lock")
		if err != nil {
			return "", err
		}
		defer unlock()
		if fi, err := os.Stat(out); err == nil && fi.Mode()&0o111 != 0 {
			return out, nil // built by another bench process meanwhile
		}
		b.logf("building stock %s %s for %s from %s (cached in %s) …", name, mod.Version, t, mod.Dir, dir)
		tmp := out + ".tmp"
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w -buildid=", "-o", tmp, "./cmd/"+name)
		cmd.Dir = mod.Dir
		cmd.Env = append(os.Environ(), t.Env()...)
		cmd.Env = append(cmd.Env, "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
		if o, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building stock %s for %s: %v\n%s", name, t, err, o)
		}
		return out, os.Rename(tmp, out)
	})
}

// self is this program, which doubles as the helper run inside lab
// namespaces (see helper.go).
func (b *builder) self() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// moduleRoot returns the directory of homenet's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the homenet module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}
