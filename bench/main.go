// Command bench measures homenet against the stock Tailscale pieces, side
// by side on one machine, and writes bench/results/latest.md (the table),
// latest.json and latest.png (a chart of the ratios):
//
//	go run ./bench                 # every row, as root (rows 1, 2, 5 and part of 4 need the e2e lab)
//	go run ./bench -short          # smoke run: tiny N, 2 s transfers
//	go run ./bench -rows 3 -n 10,100
//
// The rows are the issue's:
//
//  1. subnet-router throughput: iperf3 phone → LAN host through the
//     gateway; homenet's agent against a stock tailscaled subnet router and
//     plain kernel forwarding (the ceiling);
//  2. relay throughput: two phones behind --random-fully NATs, so traffic
//     goes through DERP; homenet's relay against a stock derper;
//  3. control-plane scale: N simulated nodes (tailscale.com/control/tsp)
//     register and hold streaming map sessions;
//  4. footprint: binary sizes per arch, RSS and time to serving;
//  5. cold path: tailscale up --authkey → first ping through the tunnel;
//  6. crash: kill -9 during registrations; nothing acknowledged is lost;
//  7. soak: 100 nodes reconnecting their map sessions; growth over hours;
//  8. flood: unauthenticated registrations from one source while a phone
//     pings through the tunnel.
//
// The machine is shared and noisy, so every figure is a ratio against a
// reference measured back to back in the same invocation. Nothing here
// fails on a time: a figure worse than its reference is written down as
// worse. Benchmarks never run in `go test ./...`; bench_test.go only runs
// this harness in -short mode and checks the shape of what it writes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"homenet/e2e/lab"
	"homenet/packaging"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		if err := helperMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench helper:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.BoolVar(&o.short, "short", false, "smoke run: tiny N, short transfers, host arch only")
	flag.StringVar(&o.rows, "rows", "1,2,3,4,5,6,7,8", "comma-separated `ROWS` to run")
	flag.StringVar(&o.out, "out", "", "write results into `DIR` (default bench/results in the module)")
	flag.StringVar(&o.ns, "n", "10,100,1000", "control-plane node counts (row 3)")
	flag.DurationVar(&o.transfer, "t", 10*time.Second, "length of each iperf3 run (rows 1 and 2)")
	flag.StringVar(&o.arches, "arches", "amd64,arm64,arm,mipsle,mips", "release targets for the size comparison (row 4)")
	flag.IntVar(&o.coldRuns, "cold-runs", 5, "cold-path runs per system (row 5)")
	flag.BoolVar(&o.noPin, "no-pin", false, "do not pin processes to CPUs with taskset")
	flag.BoolVar(&o.prepare, "prepare", false, "only build and cache what the rows need (stock binaries for every arch, the phones' tailscaled), then exit")
	flag.DurationVar(&o.soak, "soak", 10*time.Minute, "length of the soak (row 7)")
	flag.StringVar(&o.systems, "systems", "homenet,stock,profile", "lab systems to run, for working on the harness (rows 1, 2, 4, 5)")
	flag.StringVar(&o.memLimits, "memlimits", "64MiB,128MiB", "GOMEMLIMIT `VALUES` for the extra row 1 cases (homenet and stock tailscaled each under the limit); empty for none; LIMIT+K=V+… also gives homenet that environment (to try settings)")
	flag.IntVar(&o.relayPairs, "relay-pairs", 4, "phone pairs relayed at once in row 2's many-pairs case; 1 or less for none")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.prepare {
		if err := prepare(ctx, o, logf); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	r, err := run(ctx, o, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(markdown(r))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

type options struct {
	short    bool
	rows     string
	out      string
	ns       string
	transfer time.Duration
	arches   string
	coldRuns int
	noPin    bool
	prepare  bool
	systems  string
	soak     time.Duration
	// memLimits are the GOMEMLIMIT values of row 1's memory cases.
	memLimits string
	// relayPairs is the number of phone pairs in row 2's many-pairs case.
	relayPairs int

	// workDir, when set, is used instead of a fresh temporary directory
	// (tests).
	workDir string
}

// env is what every row gets.
type env struct {
	ctx     context.Context
	opts    options
	root    string
	work    string // scratch: configs, state, logs
	results string
	b       *builder
	logf    func(string, ...any)
	report  *Report
}

func (e *env) command(c string) {
	if !slices.Contains(e.report.Commands, c) {
		e.report.Commands = append(e.report.Commands, c)
	}
}

func (e *env) note(n string) { e.report.Notes = append(e.report.Notes, n) }

func (e *env) isRoot() bool { return os.Geteuid() == 0 }

// run runs the selected rows and writes the results.
func run(ctx context.Context, o options, logf func(string, ...any)) (*Report, error) {
	start := time.Now()
	if o.short {
		if o.ns == "10,100,1000" {
			o.ns = "10"
		}
		o.transfer = min(o.transfer, 2*time.Second)
		o.coldRuns = min(o.coldRuns, 1)
		o.soak = min(o.soak, 20*time.Second)
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results")
	}
	work := o.workDir
	if work == "" {
		// Short: unix socket paths (admin socket) must stay < 108 bytes.
		work, err = os.MkdirTemp("", "hnbench")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	e := &env{
		ctx:     ctx,
		opts:    o,
		root:    root,
		work:    work,
		results: o.out,
		b:       &builder{root: root, workDir: work, logf: logf},
		logf:    logf,
		report: &Report{
			Date:     start.UTC().Format(time.RFC3339),
			Short:    o.short,
			Machine:  machine(),
			Versions: map[string]string{},
		},
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	// Profiles of an earlier run must not pass for this run's.
	if old, err := filepath.Glob(filepath.Join(o.out, "profile-*")); err == nil {
		for _, f := range old {
			os.Remove(f)
		}
	}
	e.versions()

	rows := map[string]bool{}
	for _, r := range strings.Split(o.rows, ",") {
		rows[strings.TrimSpace(r)] = true
	}
	// Row 3 and the size part of row 4 need no root; the lab rows share
	// one lab per system, so they run together.
	if rows["3"] {
		e.report.Rows = append(e.report.Rows, e.runGuarded("3", "control-plane scale", rowControl)...)
	}
	if rows["4"] {
		e.report.Rows = append(e.report.Rows, e.runGuarded("4", "footprint", rowFootprintLocal)...)
	}
	if rows["6"] {
		e.report.Rows = append(e.report.Rows, e.runGuarded("6", "crash", rowCrash)...)
	}
	if rows["7"] {
		e.report.Rows = append(e.report.Rows, e.runGuarded("7", "soak", rowSoak)...)
	}
	if rows["8"] {
		e.report.Rows = append(e.report.Rows, e.runGuarded("8", "flood", rowFlood)...)
	}
	if rows["1"] || rows["2"] || rows["4"] || rows["5"] {
		e.report.Rows = append(e.report.Rows, e.runGuarded("lab", "lab", func(e *env) ([]Row, error) { return rowsLab(e, rows) })...)
	}
	slices.SortStableFunc(e.report.Rows, func(a, b Row) int { return strings.Compare(a.ID, b.ID) })
	e.report.Took = time.Since(start).Round(time.Second).String()
	if err := writeResults(o.out, e.report); err != nil {
		return nil, err
	}
	logf("wrote %s (took %s)", filepath.Join(o.out, "latest.md"), e.report.Took)
	return e.report, nil
}

// runGuarded runs a row function; an error or a panic becomes a row that
// says it was not measured and why, so one broken row never loses the
// others.
func (e *env) runGuarded(id, name string, f func(*env) ([]Row, error)) (rows []Row) {
	e.logf("row %s (%s) …", id, name)
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 8<<10)
			buf = buf[:runtime.Stack(buf, false)]
			e.logf("row %s panicked: %v\n%s", id, p, buf)
			rows = append(rows, Row{ID: id, Name: name, NotMeasured: fmt.Sprintf("panic: %v", p)})
		}
		e.logf("row %s done in %v", id, time.Since(start).Round(time.Second))
	}()
	rows, err := f(e)
	if err != nil {
		e.logf("row %s: %v", id, err)
		rows = append(rows, Row{ID: id, Name: name, NotMeasured: "error: " + firstLine(err.Error())})
	}
	return rows
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// machine describes this host.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				m.MemMiB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	return m
}

// versions fills the report's versions.
func (e *env) versions() {
	v := e.report.Versions
	v["go"] = runtime.Version()
	hv := e.b.version(e.ctx)
	commit := gitOut(e.root, "rev-parse", "--short", "HEAD")
	// The results the run itself rewrites don't count.
	if gitOut(e.root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results") != "" {
		commit += " (with uncommitted changes)"
	}
	v["homenet"] = fmt.Sprintf("%s, commit %s", hv, commit)
	if mod, err := e.b.tailscale(e.ctx); err == nil {
		v["tailscale.com (stock tailscaled, tailscale, derper)"] = mod.Version
	}
	if out, err := runOut("iperf3", "--version"); err == nil {
		v["iperf3"] = firstLine(out)
	}
}

// prepare builds what a full run needs and caches what can be cached: the
// stock tailscaled and derper for every arch of the size row
// ($XDG_CACHE_HOME/homenet-bench), the phones' tailscaled and tailscale
// ($XDG_CACHE_HOME/homenet-e2e), and warms Go's build cache with homenet's
// release builds. A full run after it stays within its time budget.
func prepare(ctx context.Context, o options, logf func(string, ...any)) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "hnbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &builder{root: root, workDir: work, logf: logf}
	start := time.Now()
	for _, name := range strings.Split(o.arches, ",") {
		t, err := packaging.LookupTarget(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		if _, _, err := b.homenet(ctx, t); err != nil {
			return err
		}
		for _, bin := range []string{"tailscaled", "derper"} {
			if _, _, err := b.stock(ctx, bin, t); err != nil {
				return err
			}
		}
	}
	ht, err := hostTarget()
	if err != nil {
		return err
	}
	if _, _, err := b.stockWith(ctx, "tailscaled", ht, runtimeFeatures); err != nil {
		return err
	}
	if err := runLab("prepare", logf, func(t *labT) { lab.TailscaleBinaries(t) }); err != nil {
		return err
	}
	logf("prepared in %v", time.Since(start).Round(time.Second))
	return nil
}
