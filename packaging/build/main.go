// Command build cross-builds homenet for every release target, writes the
// OpenWrt, Synology and QNAP packages, and prints a size table:
//
//	go run ./packaging/build                 # everything into dist/
//	go run ./packaging/build -targets arm,mipsle -packages=false
//	go run ./packaging/build -stock=false    # skip the stock tailscaled+derper comparison
//	go run ./packaging/build -apk-key key.pem # sign the OpenWrt .apk packages
//
// Binaries are static (CGO_ENABLED=0), built with -trimpath, stripped
// (-s -w, no build ID) and trimmed with tailscale's ts_omit_ tags
// (packaging.Tags). With -stock it also builds a trimmed stock tailscaled
// (packaging.StockFeatures) and derper for amd64 from the module cache, and
// fails unless the amd64 homenet binary, which carries control, relay and
// agent, is no larger than the two together.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"homenet/packaging"
	"homenet/packaging/openwrt"
	"homenet/packaging/qnap"
	"homenet/packaging/synology"
)

func main() {
	var (
		out      = flag.String("out", "dist", "write binaries and packages into `DIR`")
		targets  = flag.String("targets", "", "comma-separated `TARGETS` to build (default: all of amd64,arm64,arm,mipsle,mips)")
		version  = flag.String("version", "", "release `VERSION` as MAJOR.MINOR.PATCH[-BUILD] (default: from git)")
		packages = flag.Bool("packages", true, "write the .ipk, .spk and .qpkg packages")
		stock    = flag.Bool("stock", true, "also build a trimmed stock tailscaled and derper for amd64, for the size comparison")
		apkKey   = flag.String("apk-key", "", "sign the OpenWrt .apk packages with the PEM private key (EC or RSA) in `FILE`; default: unsigned")
	)
	flag.Parse()
	if err := run(context.Background(), os.Stdout, options{
		out: *out, targets: *targets, version: *version, packages: *packages, stock: *stock, apkKey: *apkKey,
	}); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	out, targets, version string
	packages, stock       bool
	apkKey                string // PEM private key signing the .apk packages
}

// built is one release binary.
type built struct {
	target packaging.Target
	path   string
	size   int64
	took   time.Duration
}

func run(ctx context.Context, w io.Writer, o options) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	var v packaging.Version
	if o.version != "" {
		v, err = packaging.ParseVersion(o.version)
	} else {
		v, err = packaging.GitVersion(ctx, root)
	}
	if err != nil {
		return err
	}
	tgts := packaging.Targets
	if o.targets != "" {
		tgts = nil
		for _, name := range strings.Split(o.targets, ",") {
			t, err := packaging.LookupTarget(strings.TrimSpace(name))
			if err != nil {
				return err
			}
			tgts = append(tgts, t)
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	outDir, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "homenet %s: %d ts_omit_ tags (keeping %v)\n", v, len(packaging.OmitTags(packaging.KeepFeatures)), packaging.KeepFeatures)
	var bins []built
	for _, t := range tgts {
		start := time.Now()
		path := filepath.Join(outDir, "homenet-linux-"+t.Name)
		fmt.Fprintf(w, "building %s …\n", t)
		if err := packaging.GoBuild(ctx, root, t, v, path); err != nil {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		bins = append(bins, built{target: t, path: path, size: fi.Size(), took: time.Since(start)})
	}

	var pkgs []string
	if o.packages {
		var ow openwrt.Options
		if o.apkKey != "" {
			if ow.APKKey, err = openwrt.LoadAPKKey(o.apkKey); err != nil {
				return err
			}
		}
		for _, b := range bins {
			for _, build := range []func(string, packaging.Target, packaging.Version, string) ([]string, error){
				ow.Build, synology.Build, qnap.Build,
			} {
				ps, err := build(outDir, b.target, v, b.path)
				if err != nil {
					return err
				}
				pkgs = append(pkgs, ps...)
			}
		}
	}

	var stockSizes map[string]int64
	if o.stock {
		fmt.Fprintf(w, "building trimmed stock tailscaled and derper for amd64 …\n")
		stockSizes, err = buildStock(ctx, root, v, filepath.Join(outDir, "stock"))
		if err != nil {
			return err
		}
	}

	if err := writeSums(outDir, bins, pkgs); err != nil {
		return err
	}
	return report(w, bins, pkgs, stockSizes)
}

// report prints the size table and checks the size target.
func report(w io.Writer, bins []built, pkgs []string, stock map[string]int64) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "target\tplatform\tbytes\tMiB\tbuild\t\n")
	for _, b := range bins {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.0fs\t\n", b.target.Name, b.target, b.size, mib(b.size), b.took.Seconds())
	}
	var amd64 int64
	for _, b := range bins {
		if b.target.Name == "amd64" {
			amd64 = b.size
		}
	}
	if stock != nil {
		ts, dp := stock["tailscaled"], stock["derper"]
		fmt.Fprintf(tw, "stock tailscaled (trimmed)\tlinux/amd64\t%d\t%.2f\t\t\n", ts, mib(ts))
		fmt.Fprintf(tw, "stock derper\tlinux/amd64\t%d\t%.2f\t\t\n", dp, mib(dp))
		fmt.Fprintf(tw, "tailscaled + derper\tlinux/amd64\t%d\t%.2f\t\t\n", ts+dp, mib(ts+dp))
	}
	tw.Flush()

	if len(pkgs) > 0 {
		fmt.Fprintf(w, "\npackages:\n")
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, p := range pkgs {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "  %s\t%.2f MiB\n", filepath.Base(p), mib(fi.Size()))
		}
		tw.Flush()
	}

	if stock != nil && amd64 > 0 {
		limit := stock["tailscaled"] + stock["derper"]
		verdict := "met"
		if amd64 > limit {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "\nsize target %s: homenet amd64 %d bytes (control + relay + agent) vs trimmed tailscaled + derper %d bytes (%.0f%%)\n",
			verdict, amd64, limit, 100*float64(amd64)/float64(limit))
		if amd64 > limit {
			return fmt.Errorf("homenet amd64 (%d bytes) is larger than trimmed tailscaled + derper (%d bytes)", amd64, limit)
		}
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// buildStock builds tailscaled (with packaging.StockFeatures) and derper
// for amd64 from the tailscale.com module homenet depends on, into dir.
// It builds inside the module's own directory, whose go.sum covers
// derper's dependencies (which homenet's does not); the first run may
// download a few modules through the Go module proxy.
func buildStock(ctx context.Context, root string, v packaging.Version, dir string) (map[string]int64, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "tailscale.com")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("finding tailscale.com in the module cache: %w", err)
	}
	tsDir := strings.TrimSpace(string(b))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	amd64, _ := packaging.LookupTarget("amd64")
	tags := strings.Join(packaging.OmitTags(packaging.StockFeatures), ",")
	sizes := map[string]int64{}
	for _, name := range []string{"tailscaled", "derper"} {
		out := filepath.Join(dir, name+"-linux-amd64")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w -buildid=", "-o", out, "./cmd/"+name)
		cmd.Dir = tsDir
		cmd.Env = append(os.Environ(), amd64.Env()...)
		cmd.Env = append(cmd.Env, "GOWORK=off", "GOFLAGS=-mod=readonly")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("building stock %s: %v\n%s", name, err, stderr.String())
		}
		fi, err := os.Stat(out)
		if err != nil {
			return nil, err
		}
		sizes[name] = fi.Size()
	}
	return sizes, nil
}

// writeSums writes SHA256SUMS for the binaries and packages.
func writeSums(dir string, bins []built, pkgs []string) error {
	var b strings.Builder
	var paths []string
	for _, bin := range bins {
		paths = append(paths, bin.path)
	}
	paths = append(paths, pkgs...)
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), filepath.Base(p))
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}

// moduleRoot returns the directory of homenet's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the homenet module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}
