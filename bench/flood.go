package main

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"homenet/e2e/lab"
)

// Row 8: flood. A stranger on the lab's internet (one address, so none of
// homenet's loopback exemptions apply) floods `homenet serve` with
// unauthenticated registrations — fresh machine keys, interactive logins
// and made-up auth keys — as fast as the e2e lab's load generator goes
// (labtool flood, the shape of e2e's TestFlood), while a real phone pings
// a LAN host through the tunnel and homenet's gateway agent. The same
// pings and samples taken just before the flood are the reference.
//
//	internet 198.51.100.0/24 ─┬─ gw .1        homenet serve: control, relay, gateway agent
//	                          │  └─ lan0 192.168.1.1/24 ── lanhost .10
//	                          ├─ phone .2      tailscaled --accept-routes, pings lanhost
//	                          └─ stranger .66  labtool flood

const (
	floodLANHost = "192.168.1.10"
	floodURL     = "http://198.51.100.1:8080"
	pingInterval = 200 * time.Millisecond
)

// floodWindow is what one window (before the flood, or during it) saw.
type floodWindow struct {
	took           time.Duration
	sent, received int
	rtts           []time.Duration
	plainRTTs      []time.Duration // to gw's WAN address, no tunnel
	cpu            time.Duration   // homenet's
	// Time the threads of homenet and of the phone's tailscaled spent
	// runnable but waiting for a CPU.
	hnWait, phoneWait time.Duration
	rssMax, rssLast   int64
}

func (w floodWindow) lossPct() float64 {
	if w.sent == 0 {
		return 0
	}
	return 100 * float64(w.sent-w.received) / float64(w.sent)
}

func (w floodWindow) cpuPct() float64 { return 100 * secs(w.cpu) / secs(w.took) }

// floodResult is the whole run.
type floodResult struct {
	before, during floodWindow
	outcomes       map[string]int // labtool flood's, by outcome
	total          int
}

func rowFlood(e *env) ([]Row, error) {
	dur := 60 * time.Second
	if e.opts.short {
		dur = 10 * time.Second
	}
	cs := fmt.Sprintf("%v from one address", dur)
	if !e.isRoot() {
		return []Row{{ID: "8", Name: "flood", Case: cs, NotMeasured: "needs root for the e2e lab (network namespaces); run as root"}}, nil
	}
	bin, err := e.b.hostHomenet(e.ctx)
	if err != nil {
		return nil, err
	}
	self, err := e.b.self()
	if err != nil {
		return nil, err
	}
	labtool, err := buildLabtool(e)
	if err != nil {
		return nil, err
	}
	e.command(fmt.Sprintf("labtool flood -url %s -duration %v -workers 16 -reuse 4 -rate 100000   # from one lab address (row 8)", floodURL, dur))
	e.command(fmt.Sprintf("ping -i %.1f %s   # on the phone, through the tunnel and homenet's gateway agent (row 8)", pingInterval.Seconds(), floodLANHost))
	var res floodResult
	if err := runLab("flood", e.logf, func(t *labT) { res = floodLab(t, e, bin, self, labtool, dur) }); err != nil {
		return nil, err
	}
	return []Row{floodRow(cs, res)}, nil
}

// floodNet is row 8's lab, running, with the phone joined.
type floodNet struct {
	phone    *lab.Phone
	stranger *lab.Host
	hn       *lab.Proc // homenet serve on gw
}

// floodLab builds the lab, then measures a quiet window and the flood.
func floodLab(t *labT, e *env, bin, self, labtool string, dur time.Duration) floodResult {
	pin := pinning(e)
	n := startFloodNet(t, pin, bin, self)
	var res floodResult
	res.before, _ = floodMeasure(t, n.phone.Host, n.hn.Pid(), n.phone.Daemon.Pid(), min(dur, 15*time.Second), nil)
	var floodOut string
	res.during, floodOut = floodMeasure(t, n.phone.Host, n.hn.Pid(), n.phone.Daemon.Pid(), dur, func() (string, error) {
		return n.stranger.Output(dur+60*time.Second, append(pin.prefix(pin.rest), labtool, "flood", "-url", floodURL,
			"-duration", dur.String(), "-workers", "16", "-reuse", "4", "-rate", "100000")...)
	})
	res.outcomes, res.total = parseFloodOutcomes(t, floodOut)
	return res
}

// floodConfig is homenet's config on gw: control, relay and the gateway
// agent routing the LAN.
const floodConfig = `# written by homenet/bench (row 8)
state_dir = %q

[server]
url = %q
listen = ":8080"

[relay]
enabled = true
listen = ":8443"
stun_listen = ":3478"

[gateway]
enabled = true
routes = ["192.168.1.0/24"]
exit_node = false
`

// startFloodNet builds the lab, starts homenet serve on gw and joins the
// phone, until it pings the LAN host through the gateway.
func startFloodNet(t *labT, pin pinPlan, bin, self string) floodNet {
	l := lab.New(t)
	inet := l.Internet()
	gw := l.Host("gw", inet.Link(wan+".1/24"))
	lan := gw.Bridge("lan0", "192.168.1.1/24")
	gw.EnableForwarding()
	l.Host("lanhost", lan.Link(floodLANHost+"/24"))
	n := floodNet{
		phone:    l.Phone(l.Host("phone", inet.Link(wan+".2/24"))),
		stranger: l.Host("stranger", inet.Link(wan+".66/24")),
	}
	pin.pinPid(t, n.phone.Daemon.Pid(), pin.rest)
	// One source opens a connection per attempt: with Linux's default
	// port range and TIME_WAIT it runs out of local ports at about 470
	// attempts a second. These sysctls are the stranger namespace's own.
	for _, kv := range []string{"net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"} {
		if out, err := n.stranger.Run("sysctl", "-w", kv); err != nil {
			t.Fatalf("sysctl -w %s in the stranger's namespace: %v\n%s", kv, err, out)
		}
	}

	cfg := filepath.Join(gw.Dir, "homenet.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, floodConfig, filepath.Join(gw.Dir, "homenet"), floodURL), 0o644); err != nil {
		t.Fatal(err)
	}
	n.hn = gw.Start("homenet", nil, append(pin.prefix(pin.gw), bin, "serve", "--config", cfg)...)
	n.hn.DumpLines = 100
	lab.WaitFor(t, 30*time.Second, "homenet serve to answer /key", func() error {
		if exited, err := n.hn.Exited(); exited {
			return fmt.Errorf("homenet serve exited: %v\n%s", err, n.hn.Tail(30))
		}
		_, err := gw.RunTimeout(5*time.Second, self, "helper", "fetch", "-timeout", "2s", floodURL+"/key?v=113", os.DevNull)
		return err
	})
	out, err := gw.Output(30*time.Second, bin, "keys", "create", "--reusable", "--config", cfg)
	if err != nil {
		t.Fatalf("homenet keys create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := n.phone.Up(floodURL, strings.TrimSpace(lines[len(lines)-1]), "--accept-routes"); err != nil {
		t.Fatalf("tailscale up: %v", err)
	}
	lab.WaitFor(t, 90*time.Second, "a ping from the phone to the LAN host through the gateway", func() error {
		return n.phone.ICMPPing(netip.MustParseAddr(floodLANHost))
	})
	return n
}

// buildLabtool builds the e2e lab's helper program, whose flood is row
// 8's load; lab.LabtoolBinary builds it only under lab.Main, in tests.
func buildLabtool(e *env) (string, error) {
	p, _, err := e.b.get("labtool", func() (string, error) {
		out := filepath.Join(e.work, "labtool")
		cmd := exec.CommandContext(e.ctx, "go", "build", "-o", out, "./e2e/internal/labtool")
		cmd.Dir = e.root
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./e2e/internal/labtool: %v\n%s", err, b)
		}
		return out, nil
	})
	return p, err
}

// floodMeasure pings the LAN host from ph every pingInterval for d while
// sampling homenet's (pid's) CPU and RSS, with load (when not nil)
// running meanwhile; it returns the window and load's output.
func floodMeasure(t *labT, ph *lab.Host, pid, phonePid int, d time.Duration, load func() (string, error)) (floodWindow, string) {
	var (
		w       floodWindow
		wg      sync.WaitGroup
		loadOut string
		loadErr error
	)
	if load != nil {
		wg.Go(func() { loadOut, loadErr = load() })
	}
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			if r, err := rss(pid); err == nil {
				w.rssMax, w.rssLast = max(w.rssMax, r), r
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	u0, err := sample(pid)
	if err != nil {
		t.Fatalf("homenet CPU: %v", err)
	}
	hw0, pw0 := runqWait(pid), runqWait(phonePid)
	// The same pings without the tunnel, to the gateway's WAN address,
	// tell the phone host's and the machine's own delays apart.
	ping := func(dst string) string {
		// ping exits non-zero when replies were lost; its output says
		// how many.
		out, _ := ph.Output(d+30*time.Second, "ping", "-n", "-i", fmt.Sprint(pingInterval.Seconds()),
			"-c", fmt.Sprint(int(d/pingInterval)), "-W", "1", dst)
		return out
	}
	var plainOut string
	wg.Go(func() { plainOut = ping(wan + ".1") })
	out := ping(floodLANHost)
	w.cpu, w.took, err = u0.since()
	w.hnWait, w.phoneWait = runqWait(pid)-hw0, runqWait(phonePid)-pw0
	if err != nil {
		t.Fatalf("homenet CPU: %v", err)
	}
	close(stop)
	wg.Wait()
	if loadErr != nil {
		t.Fatalf("labtool flood: %v\n%s", loadErr, loadOut)
	}
	if w.sent, w.received, w.rtts, err = parsePing(out); err != nil {
		t.Fatalf("ping %s: %v\n%s", floodLANHost, err, out)
	}
	if _, _, w.plainRTTs, err = parsePing(plainOut); err != nil {
		t.Fatalf("ping %s.1: %v\n%s", wan, err, plainOut)
	}
	return w, loadOut
}

// runqWait returns the time pid's threads have spent runnable but
// waiting for a CPU: the second field of /proc/PID/task/*/schedstat. 0 if
// unreadable (the figure is a note, not a metric).
func runqWait(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

var (
	pingRTTRe     = regexp.MustCompile(`time=([0-9.]+) ms`)
	pingSummaryRe = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

// parsePing reads iputils ping's output: the replies' RTTs and the
// summary's counts.
func parsePing(out string) (sent, received int, rtts []time.Duration, err error) {
	for _, m := range pingRTTRe.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		rtts = append(rtts, time.Duration(v*float64(time.Millisecond)))
	}
	m := pingSummaryRe.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, nil, fmt.Errorf("no summary line")
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received, rtts, nil
}

// parseFloodOutcomes reads labtool flood's outcomes and their total.
func parseFloodOutcomes(t *labT, out string) (map[string]int, int) {
	m, err := lab.FloodOutcomes(out)
	if err != nil {
		t.Fatalf("%v", err)
	}
	total := m["total"]
	delete(m, "total")
	if total == 0 {
		t.Fatalf("labtool flood made no attempt:\n%s", out)
	}
	return m, total
}

// floodRow is the table's row: figures during the flood, against the
// same window just before it.
func floodRow(cs string, r floodResult) Row {
	b, d := r.before, r.during
	tooMany := 0
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(r.outcomes)) {
		if strings.Contains(o, "429") {
			tooMany += r.outcomes[o]
		}
		parts = append(parts, fmt.Sprintf("%s: %d", o, r.outcomes[o]))
	}
	before := "before the flood"
	lower := func(name, unit string, v, ref float64) Metric {
		m := Metric{Name: name, Unit: unit, Value: v, Better: "lower"}
		if ref > 0 {
			m = m.withRef(before, ref)
		}
		return m
	}
	row := Row{ID: "8", Name: "flood", Case: cs,
		Metrics: []Metric{
			{Name: "registration attempts per second reached", Unit: "1/s", Value: float64(r.total) / secs(d.took)},
			{Name: "attempts answered 429", Unit: "count", Value: float64(tooMany)},
			{Name: "attempts answered otherwise", Unit: "count", Value: float64(r.total - tooMany)},
			lower("phone's ping loss through the tunnel", "%", d.lossPct(), b.lossPct()),
			lower("phone's ping RTT, p50", "ms", ms(median(d.rtts)), ms(median(b.rtts))),
			lower("phone's ping RTT, p99", "ms", ms(percentile(d.rtts, 99)), ms(percentile(b.rtts, 99))),
			lower("phone's plain ping RTT (no tunnel) to the gateway, p99", "ms", ms(percentile(d.plainRTTs, 99)), ms(percentile(b.plainRTTs, 99))),
			lower("homenet serve CPU", "% of a core", d.cpuPct(), b.cpuPct()),
			lower("homenet serve RSS, max", "MiB", mib(d.rssMax), mib(b.rssMax)),
		},
	}
	row.Notes = append(row.Notes,
		fmt.Sprintf("the flood's attempts by outcome (labtool flood: 16 workers, 4 registrations per Noise connection, fresh keys, half with made-up auth keys, no rate cap; local ports 1024-65535 and tcp_tw_reuse in its namespace): %s; %d in all",
			strings.Join(parts, ", "), r.total),
		fmt.Sprintf("pings every %v: %d sent, %d lost during the flood; %d sent, %d lost in the %v before it (the reference; a reference of 0 is left out of the ratio)",
			pingInterval, d.sent, d.sent-d.received, b.sent, b.sent-b.received, b.took.Round(time.Second)),
		fmt.Sprintf("homenet serve RSS at the end of the flood %.1f MiB (before it %.1f MiB)", mib(d.rssLast), mib(b.rssLast)),
		fmt.Sprintf("time runnable but waiting for a CPU, per second of the window: homenet serve %v before, %v during the flood; the phone's tailscaled %v before, %v during",
			perSec(b.hnWait, b.took), perSec(d.hnWait, d.took), perSec(b.phoneWait, b.took), perSec(d.phoneWait, d.took)),
		"with pinning, homenet serve has CPU 1 and the phone shares CPU 0 with the load generator, which takes what it can: the tunnel's RTT during the flood includes the phone's tailscaled waiting for CPU 0, and the plain ping (kernel only, same CPU) shows the part that is not the tunnel's; on a 2-core machine no layout keeps all three apart")
	return row
}

// perSec is d per second of took, in milliseconds.
func perSec(d, took time.Duration) string {
	return fmt.Sprintf("%.1f ms/s", ms(d)/secs(took))
}
