package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"homenet/control"
	"homenet/e2e/lab"
	"homenet/relay"

	"tailscale.com/tailcfg"
)

// Rows 1, 2, 5 and the lab part of 4 run in one e2e lab that holds the
// systems side by side, so that their runs can alternate back to back
// (homenet, stock, homenet, stock, …) on a machine whose load changes by
// the minute. System k (1 homenet, 2 stock, 3 homenet with profiling)
// is:
//
//	internet 198.51.100.0/24 ─┬─ gwK .K   the system under test:
//	                          │             homenet: `homenet serve` (control, relay, gateway agent)
//	                          │             stock:   derper + trimmed tailscaled (subnet router)
//	                          │                      + homenet's control alone (bench helper)
//	                          │           └─ lan0 192.168.K.1/24 ── lanhostK .10  iperf3 server
//	                          ├─ natK1 .K1 (MASQUERADE) ─┬─ pK1 10.K.1.2  phone, --accept-routes (row 1)
//	                          │                          └─ kK  10.K.1.3  no tailscale (kernel ceiling, system 1 only)
//	                          ├─ natK2 .K2 (--random-fully) ── pK2 10.K.2.2  phone (row 2, sender)
//	                          ├─ natK3 .K3 (--random-fully) ── pK3 10.K.3.2  phone (row 2, receiver, iperf3 server)
//	                          └─ natK4 .K4 (MASQUERADE) ── pK4 10.K.4.2  phone (row 5, cold path)
//
// Phones are the real tailscaled and tailscale built from the pinned
// module (lab.Phone). Behind --random-fully NATs no direct path can form,
// so pK2 ↔ pK3 goes through the relay. The kernel ceiling for row 1 is kK
// → lanhost1 through nat11 and gw1 with plain forwarding, no tunnel.
//
// Profiles come from system 3: homenet serve has no profiling hook, so it
// is the bench helper running the same appliance.Serve with pprof on gw3's
// loopback ($HOMENET_PPROF), measured in separate windows.

const (
	wan       = "198.51.100"
	iperfPort = 5201
	pprofAddr = "127.0.0.1:6060"
)

// tput is one iperf3 run.
type tput struct {
	Gbps     float64
	Bytes    int64
	CPU      time.Duration // of the process under test
	CPUPerGB float64       // CPU-seconds per GB (1e9 bytes)
}

// flow is one kind of row 1 run: how many iperf3 streams, and which way.
type flow struct {
	streams int
	// reverse is LAN host → phone (iperf3 -R), a download to the phone;
	// otherwise phone → LAN host.
	reverse bool
}

// rowOneFlows are row 1's runs, in each round.
func rowOneFlows() []flow {
	return []flow{{streams: 1}, {streams: 4}, {streams: 4, reverse: true}}
}

func (f flow) String() string {
	s := fmt.Sprintf("%d stream%s", f.streams, plural(f.streams))
	if f.reverse {
		s += ", LAN → phone"
	}
	return s
}

// sysResult is what one system measured in the lab.
type sysResult struct {
	name       string
	subnet     map[flow][]tput // one per round
	subnetNote string          // why row 1 was not measured for this system
	subnetPath string          // how the phone reached the gateway
	relay      []tput
	relayNote  string
	relayPath  string
	// subnetRSS is the gateway process's RSS just after each subnet run.
	subnetRSS map[flow][]int64
	// peakRSS is the gateway process's VmHWM at the end of the runs.
	peakRSS int64
	// relayMany is row 2's many-pairs case: one aggregate per round, and
	// each pair's goodput in that round.
	relayMany     []tput
	relayManyEach [][]float64
	relayManyNote string
	cold          []time.Duration
	coldNote      string
	// rss is the RSS of each of the system's processes on its gateway
	// host (by process name) in each phase: "idle", "3 nodes", "after
	// throughput".
	rss   map[string]map[string]int64
	roles string
	// gatewayWired: homenet serve ran the gateway agent (always true for
	// the stock system's tailscaled).
	gatewayWired bool
}

func newSysResult(name string) *sysResult {
	return &sysResult{name: name, subnet: map[flow][]tput{}, subnetRSS: map[flow][]int64{}, rss: map[string]map[string]int64{}}
}

func rowsLab(e *env, want map[string]bool) ([]Row, error) {
	if !e.isRoot() {
		msg := "needs root for the e2e lab (network namespaces); run as root"
		var rows []Row
		for _, id := range []string{"1", "2", "5"} {
			if want[id] {
				rows = append(rows, Row{ID: id, Name: rowName(id), Case: "all", NotMeasured: msg})
			}
		}
		if want["4"] {
			rows = append(rows, Row{ID: "4", Name: rowName("4"), Case: "RSS on the gateway, lab", NotMeasured: msg})
		}
		return rows, nil
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return nil, fmt.Errorf("iperf3 not found: apt-get install -y iperf3")
	}
	ht, err := hostTarget()
	if err != nil {
		return nil, err
	}
	bins := labBins{}
	if bins.homenet, _, err = e.b.homenet(e.ctx, ht); err != nil {
		return nil, err
	}
	if bins.tailscaled, _, err = e.b.stockWith(e.ctx, "tailscaled", ht, runtimeFeatures); err != nil {
		return nil, err
	}
	if bins.derper, _, err = e.b.stock(e.ctx, "derper", ht); err != nil {
		return nil, err
	}
	if bins.self, err = e.b.self(); err != nil {
		return nil, err
	}
	if err := runLab("build", e.logf, func(t *labT) {
		d, c := lab.TailscaleBinaries(t)
		bins.phoneDir, bins.cli = filepath.Dir(d), c
	}); err != nil {
		return nil, err
	}
	e.report.Versions["phones"] = "tailscaled and tailscale (full builds) from " + bins.phoneDir
	pin := pinning(e)
	e.report.Pinning = pin.describe()

	hn, st := newSysResult("homenet"), newSysResult("stock")
	kernel := map[flow][]tput{}
	lr := &labRun{e: e, want: want, bins: bins, pin: pin, kernel: kernel}
	all := []*sysResult{hn, st}
	if want["1"] {
		lr.mem = memCases(e.opts.memLimits)
		for _, m := range lr.mem {
			all = append(all, m.hn, m.st)
		}
	}
	err = runLab("bench", e.logf, func(t *labT) { lr.run(t, hn, st) })
	if err != nil {
		e.logf("lab: %v", err)
		for _, r := range all {
			if r.subnetNote == "" && len(r.subnet[flow{streams: 1}]) == 0 {
				r.subnetNote = "error: " + firstLine(err.Error())
			}
			if r.relayNote == "" && len(r.relay) == 0 {
				r.relayNote = "error: " + firstLine(err.Error())
			}
			if r.coldNote == "" && len(r.cold) == 0 {
				r.coldNote = "error: " + firstLine(err.Error())
			}
		}
	}
	e.command(fmt.Sprintf("iperf3 -c ADDR -p %d -t %d -P {1,4} -J   # on the phone; server on the LAN host (row 1) or the other phone (row 2)", iperfPort, int(e.opts.transfer.Seconds())))
	e.command("tailscaled --tun=tailscale0 --statedir DIR --socket SOCK --port 41641 --no-logs-no-support   # phones (full build) and the stock gateway (trimmed build)")
	e.command("tailscale up --login-server http://GW:8080 --authkey KEY [--accept-routes]   # phones")
	e.command("tailscale up --login-server http://GW:8080 --authkey KEY(tag:gateway) --hostname gw --advertise-routes 192.168.2.0/24   # stock gateway")
	e.command("homenet serve --config FILE   # [relay] on :8443 + STUN :3478, [gateway] enabled, routes = [LAN], exit_node = false")
	e.note(fmt.Sprintf("the stock gateway in the lab is tailscaled trimmed to %v (packaging.StockFeatures plus ipnbus, which `tailscale up` needs); the size comparison uses packaging.StockFeatures exactly", runtimeFeatures))
	return labRows(e, want, kernel, hn, st, lr.mem), nil
}

type labBins struct {
	homenet, tailscaled, derper, self string
	phoneDir, cli                     string
}

func rowName(id string) string {
	return map[string]string{
		"1": "subnet-router throughput",
		"2": "relay throughput",
		"3": "control-plane scale",
		"4": "footprint",
		"5": "cold path",
	}[id]
}

// pinPlan is how lab processes are pinned to CPUs.
type pinPlan struct {
	on       bool
	gw, rest string // taskset CPU lists
}

func pinning(e *env) pinPlan {
	if e.opts.noPin || runtime.NumCPU() < 2 {
		return pinPlan{}
	}
	return pinPlan{on: true, gw: "1", rest: "0"}
}

func (p pinPlan) describe() string {
	if !p.on {
		return "none (-no-pin or a single CPU)"
	}
	return fmt.Sprintf("taskset: the processes of the system under test on its gateway host (homenet serve; or derper, trimmed tailscaled and the control helper) on CPU %s; phones' tailscaled and iperf3 on CPU %s; the same for both systems, whose runs alternate", p.gw, p.rest)
}

// pinPid pins every thread of pid to cpus.
func (p pinPlan) pinPid(t *labT, pid int, cpus string) {
	if !p.on {
		return
	}
	if out, err := runOut("taskset", "-a", "-p", "-c", cpus, fmt.Sprint(pid)); err != nil {
		t.Logf("taskset %d: %v: %s", pid, err, out)
	}
}

// prefix returns the command prefix that pins a new process to cpus.
func (p pinPlan) prefix(cpus string) []string {
	if !p.on {
		return nil
	}
	return []string{"taskset", "-c", cpus}
}

// labRun is the one lab all systems share.
type labRun struct {
	e      *env
	want   map[string]bool
	bins   labBins
	pin    pinPlan
	kernel map[flow][]tput
	l      *lab.Lab
	inet   *lab.Net
	kHost  *lab.Host // kernel-ceiling client
	mem    []memCase // row 1 under GOMEMLIMIT
}

// labSystem is one system in the lab.
type labSystem struct {
	r            *labRun
	kind         string // "homenet", "stock" or "profile"
	k            int
	res          *sysResult
	gwAddr       string
	lanPrefix    string
	lanHostIP    string
	controlURL   string
	gw, lanhost  *lab.Host
	natRouters   []*lab.NATRouter // [1]..[4]
	p            [5]*lab.Phone    // p[1]..p[4]
	cfgPath      string
	gwProcs      []*lab.Proc // the system's processes on gw
	relayProc    *lab.Proc
	gatewayProc  *lab.Proc
	key          string
	gatewayWired bool
	gwSock       string // the stock gateway's tailscaled socket
	// memLimit is GOMEMLIMIT for the gateway process ("" for none);
	// such a system has phone 1 only and runs row 1 only.
	memLimit string
	memEnv   []string // more environment for homenet in that case
	// pairs are the phone pairs of row 2's many-pairs case, sender
	// first; pairs[0] is p2 → p3.
	pairs [][2]*lab.Phone
}

// subnetOnly reports whether the system serves row 1 alone.
func (s *labSystem) subnetOnly() bool { return s.memLimit != "" }

func (r *labRun) run(t *labT, hn, st *sysResult) {
	e := r.e
	r.l = lab.New(t)
	r.inet = r.l.Internet()
	systems := []*labSystem{
		{r: r, kind: "homenet", k: 1, res: hn},
		{r: r, kind: "stock", k: 2, res: st},
		{r: r, kind: "profile", k: 3, res: newSysResult("profile")},
	}
	for j, m := range r.mem {
		systems = append(systems,
			&labSystem{r: r, kind: "homenet", k: 4 + 2*j, res: m.hn, memLimit: m.limit, memEnv: m.env},
			&labSystem{r: r, kind: "stock", k: 5 + 2*j, res: m.st, memLimit: m.limit})
	}
	if e.opts.systems != "" {
		systems = slices.DeleteFunc(systems, func(s *labSystem) bool {
			if !strings.Contains(e.opts.systems, s.kind) {
				s.res.subnetNote, s.res.relayNote, s.res.coldNote = "skipped (-systems)", "skipped (-systems)", "skipped (-systems)"
				return true
			}
			return false
		})
	}
	for _, s := range systems {
		s.build(t)
	}
	if sysKind(systems, "homenet") != nil && r.want["1"] && sysKind(systems, "homenet").memLimit == "" {
		s := sysKind(systems, "homenet")
		// kK reaches lanhost1 through nat11 and gw1 with plain forwarding.
		r.kHost = r.l.Host("k1", s.natLAN(1).Link("10.1.1.3/24"))
		s.nat(1).MustRun("ip", "route", "add", s.lanPrefix, "via", s.gwAddr)
	}
	for _, s := range systems {
		s.start(t)
	}
	time.Sleep(2 * time.Second)
	for _, s := range systems {
		s.res.rss["idle"] = s.rss(t)
	}
	parallelDo(systems, func(s *labSystem) { s.join(t) })
	for _, s := range systems {
		s.res.gatewayWired = s.gatewayWired
	}
	time.Sleep(2 * time.Second)
	for _, s := range systems {
		s.res.rss["3 nodes"] = s.rss(t)
	}
	measured := slices.DeleteFunc(slices.Clone(systems), func(s *labSystem) bool { return s.kind == "profile" })

	if r.want["5"] {
		for i := range e.opts.coldRuns {
			for _, s := range measured {
				s.coldRun(t, i)
			}
		}
	}
	rounds := 3
	if e.opts.short {
		rounds = 1
	}
	for _, s := range measured {
		s.prepareThroughput(t)
	}
	for round := range rounds {
		e.logf("lab: throughput round %d of %d", round+1, rounds)
		if r.want["1"] || r.want["4"] {
			for _, f := range rowOneFlows() {
				if r.kHost != nil {
					s := sysKind(systems, "homenet")
					tp, err := r.iperf(r.kHost, s.lanHostIP, f, e.opts.transfer, nil)
					if err != nil {
						t.Errorf("kernel forwarding, %v: %v", f, err)
					} else {
						r.kernel[f] = append(r.kernel[f], tp)
						t.Logf("kernel forwarding, %v: %.2f Gb/s", f, tp.Gbps)
					}
				}
				for _, s := range measured {
					s.subnetRun(t, f)
				}
			}
		}
		if r.want["2"] || r.want["4"] {
			for _, s := range measured {
				s.relayRun(t)
			}
			for _, s := range measured {
				s.relayManyRun(t)
			}
		}
	}
	for _, s := range measured {
		if s.gatewayProc != nil {
			s.res.peakRSS, _ = procStatus(s.gatewayProc.Pid(), "VmHWM")
		}
	}
	time.Sleep(2 * time.Second)
	for _, s := range systems {
		s.res.rss["after throughput"] = s.rss(t)
	}
	quietSince := time.Now()
	if s := sysKind(systems, "profile"); s != nil {
		s.profiles(t)
	}
	if r.want["4"] && !e.opts.short {
		// Buffers kept by sync.Pool (wireguard-go's, mostly) go after two
		// collections, and an idle Go program collects every 2 minutes:
		// RSS after a burst is a peak that lasts minutes, not for good.
		// The profiles above ran in the meantime, on another system.
		wait := settleAfter - time.Since(quietSince)
		e.logf("lab: waiting %v to sample RSS %v after the throughput runs", wait.Round(time.Second), settleAfter)
		time.Sleep(wait)
		for _, s := range measured {
			s.res.rss["settled"] = s.rss(t)
		}
	}
}

// settleAfter is when the RSS after the throughput runs is sampled again:
// two forced collections (2 minutes apart when idle) and then some.
const settleAfter = 5 * time.Minute

func sysKind(ss []*labSystem, kind string) *labSystem {
	for _, s := range ss {
		if s.kind == kind {
			return s
		}
	}
	return nil
}

func parallelDo[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() { defer wg.Done(); f(it) }()
	}
	wg.Wait()
}

func (s *labSystem) nat(i int) *lab.Host { return s.natRouters[i].Host }
func (s *labSystem) natLAN(i int) *lab.Net {
	return s.natRouters[i].LAN
}

// build creates the system's hosts and phones.
func (s *labSystem) build(t *labT) {
	r := s.r
	k := s.k
	s.gwAddr = fmt.Sprintf("%s.%d", wan, k)
	s.lanPrefix = fmt.Sprintf("192.168.%d.0/24", k)
	s.lanHostIP = fmt.Sprintf("192.168.%d.10", k)
	s.controlURL = "http://" + s.gwAddr + ":8080"
	s.gw = r.l.Host(fmt.Sprintf("gw%d", k), r.inet.Link(s.gwAddr+"/24"))
	lan := s.gw.Bridge("lan0", fmt.Sprintf("192.168.%d.1/24", k))
	s.gw.EnableForwarding()
	s.lanhost = r.l.Host(fmt.Sprintf("lanhost%d", k), lan.Link(s.lanHostIP+"/24"))
	s.natRouters = make([]*lab.NATRouter, 5)
	for i := 1; i <= 4; i++ {
		if s.subnetOnly() && i > 1 {
			break
		}
		s.natRouters[i] = r.l.NATRouter(fmt.Sprintf("nat%d%d", k, i), r.inet.Link(fmt.Sprintf("%s.%d%d/24", wan, k, i)),
			fmt.Sprintf("10.%d.%d.1/24", k, i), lab.NATOpts{RandomFully: i == 2 || i == 3})
		h := r.l.Host(fmt.Sprintf("p%d%d", k, i), s.natRouters[i].LAN.Link(fmt.Sprintf("10.%d.%d.2/24", k, i)))
		s.p[i] = r.l.Phone(h)
		r.pin.pinPid(t, s.p[i].Daemon.Pid(), r.pin.rest)
	}
	s.lanhost.Start("iperf3", nil, append(r.pin.prefix(r.pin.rest), "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)
	if s.subnetOnly() {
		return
	}
	s.p[3].Host.Start("iperf3", nil, append(r.pin.prefix(r.pin.rest), "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)
	s.pairs = [][2]*lab.Phone{{s.p[2], s.p[3]}}
	if !r.want["2"] || s.kind == "profile" {
		return
	}
	// More pairs for row 2's many-pairs case: senders behind nat2,
	// receivers behind nat3, so each pair too has only the relay.
	for j := 1; j < r.e.opts.relayPairs; j++ {
		var pair [2]*lab.Phone
		for side, i := range []int{2, 3} {
			h := r.l.Host(fmt.Sprintf("p%d%d%c", k, i, 'a'+j), s.natLAN(i).Link(fmt.Sprintf("10.%d.%d.%d/24", k, i, 2+j)))
			pair[side] = r.l.Phone(h)
			r.pin.pinPid(t, pair[side].Daemon.Pid(), r.pin.rest)
		}
		pair[1].Host.Start("iperf3", nil, append(r.pin.prefix(r.pin.rest), "iperf3", "-s", "-p", fmt.Sprint(iperfPort))...)
		s.pairs = append(s.pairs, pair)
	}
}

// start starts the system on its gateway host.
func (s *labSystem) start(t *labT) {
	switch s.kind {
	case "homenet":
		var env []string
		if s.memLimit != "" {
			env = append(env, "GOMEMLIMIT="+s.memLimit)
			env = append(env, s.memEnv...)
		}
		s.startHomenet(t, s.r.bins.homenet, []string{"serve", "--config"}, env)
	case "profile":
		env := []string{pprofEnv + "=" + pprofAddr}
		if binaryMentions(s.r.bins.homenet, pprofEnv) {
			// homenet serve has the profiling hook itself.
			s.startHomenet(t, s.r.bins.homenet, []string{"serve", "--config"}, env)
		} else {
			s.startHomenet(t, s.r.bins.self, []string{"helper", "serve", "-config"}, env)
		}
	case "stock":
		s.startStock(t)
	}
}

// rss returns the RSS of each of the system's processes on gw.
func (s *labSystem) rss(t *labT) map[string]int64 {
	m := map[string]int64{}
	for _, p := range s.gwProcs {
		r, err := rss(p.Pid())
		if err != nil {
			t.Errorf("RSS of %s: %v", p.Name, err)
		}
		m[p.Name] = r
	}
	return m
}

// startGw starts a process of the system on gw, pinned to the gateway CPU.
func (s *labSystem) startGw(t *labT, name string, env []string, args ...string) *lab.Proc {
	p := s.gw.Start(name, env, append(s.r.pin.prefix(s.r.pin.gw), args...)...)
	p.DumpLines = 60
	s.gwProcs = append(s.gwProcs, p)
	return p
}

// waitKey waits until control answers /key, asking from inside gw.
func (s *labSystem) waitKey(t *labT, p *lab.Proc) {
	lab.WaitFor(t, 30*time.Second, p.Name+" on "+s.gw.Name+" to answer /key", func() error {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, err, p.Tail(30))
		}
		_, err := s.gw.RunTimeout(5*time.Second, s.r.bins.self, "helper", "fetch", "-timeout", "2s", s.controlURL+"/key?v=113", os.DevNull)
		return err
	})
}

func (s *labSystem) homenetConfig(t *labT, relayOn, gateway bool) string {
	path := filepath.Join(s.gw.Dir, "homenet.toml")
	conf := fmt.Sprintf(`# written by homenet/bench
state_dir = %q

[server]
url = %q
listen = ":8080"

[relay]
enabled = %v
listen = ":8443"
stun_listen = ":3478"
`, filepath.Join(s.gw.Dir, "homenet"), s.controlURL, relayOn)
	if gateway {
		conf += fmt.Sprintf("\n[gateway]\nenabled = true\nroutes = [%q]\nexit_node = false\n", s.lanPrefix)
	}
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (s *labSystem) createKey(t *labT, flags ...string) string {
	out, err := s.gw.Output(30*time.Second, append(append([]string{s.r.bins.homenet, "keys", "create"}, flags...), "--config", s.cfgPath)...)
	if err != nil {
		t.Fatalf("homenet keys create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// startHomenet starts homenet serve (or the profiling helper running the
// same appliance.Serve) with control, relay and the gateway agent.
func (s *labSystem) startHomenet(t *labT, bin string, args []string, env []string) {
	s.cfgPath = s.homenetConfig(t, true, true)
	p := s.startGw(t, "homenet", env, append(append([]string{bin}, args...), s.cfgPath)...)
	p.DumpLines = 100
	s.waitKey(t, p)
	s.relayProc, s.gatewayProc = p, p
	s.key = s.createKey(t, "--reusable")
	s.res.roles = "homenet serve: control + relay + gateway agent (one process)"
}

var certNameRe = regexp.MustCompile(`"CertName":"(sha256-raw:[0-9a-f]+)"`)

// startStock starts a stock derper, homenet's control alone handing out a
// DERP map with that derper in homenet's region shape, and a trimmed stock
// tailscaled as the subnet router.
func (s *labSystem) startStock(t *labT) {
	b := s.r.bins
	dir := filepath.Join(s.gw.Dir, "derper")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dp := s.startGw(t, "derper", nil, derperArgs(b.derper, dir, s.gwAddr, 8443, 3478)...)
	var certName string
	lab.WaitFor(t, 30*time.Second, "derper to print its certificate pin", func() error {
		if exited, err := dp.Exited(); exited {
			return fmt.Errorf("derper exited: %v\n%s", err, dp.Tail(30))
		}
		m := certNameRe.FindStringSubmatch(dp.Log())
		if m == nil {
			return fmt.Errorf("no CertName in derper's log yet")
		}
		certName = m[1]
		return nil
	})
	lab.WaitFor(t, 30*time.Second, "derper to serve TLS", func() error {
		_, err := s.gw.RunTimeout(5*time.Second, b.self, "helper", "probe", "https://"+s.gwAddr+":8443/derp/probe")
		return err
	})
	dm := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		relay.RegionID: {
			RegionID: relay.RegionID, RegionCode: relay.RegionCode, RegionName: relay.RegionName,
			Nodes: []*tailcfg.DERPNode{{
				Name: "900a", RegionID: relay.RegionID, HostName: s.gwAddr, CertName: certName,
				IPv4: s.gwAddr, IPv6: "none", DERPPort: 8443, STUNPort: 3478,
			}},
		},
	}}
	dmPath := filepath.Join(s.gw.Dir, "derpmap.json")
	js, _ := json.Marshal(dm)
	if err := os.WriteFile(dmPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	s.cfgPath = s.homenetConfig(t, false, false)
	cp := s.startGw(t, "control", nil, b.self, "helper", "control", "-config", s.cfgPath, "-derpmap", dmPath)
	s.waitKey(t, cp)
	s.key = s.createKey(t, "--reusable")
	gwKey := s.createKey(t, "--tags", "tag:gateway")

	state := filepath.Join(s.gw.Dir, "ts")
	s.gwSock = filepath.Join(state, "tailscaled.sock")
	os.MkdirAll(state, 0o700)
	tsEnv := []string{"TS_NO_LOGS_NO_SUPPORT=true", "TS_LOGS_DIR=" + state}
	if s.memLimit != "" {
		tsEnv = append(tsEnv, "GOMEMLIMIT="+s.memLimit)
	}
	tp := s.startGw(t, "tailscaled-gw", tsEnv, b.tailscaled,
		"--tun=tailscale0", "--statedir="+state, "--socket="+s.gwSock,
		fmt.Sprintf("--port=%d", lab.TailscaledPort), "--no-logs-no-support")
	lab.WaitFor(t, 30*time.Second, "the stock gateway's tailscaled to answer", func() error {
		if exited, err := tp.Exited(); exited {
			return fmt.Errorf("exited: %v\n%s", err, tp.Tail(30))
		}
		_, err := s.gw.RunTimeout(10*time.Second, b.cli, "--socket="+s.gwSock, "status", "--json")
		return err
	})
	if out, err := s.gw.RunTimeout(90*time.Second, b.cli, "--socket="+s.gwSock, "up",
		"--login-server="+s.controlURL, "--authkey="+gwKey, "--hostname=gw", "--advertise-routes="+s.lanPrefix, "--timeout=80s"); err != nil {
		t.Fatalf("tailscale up on the stock gateway: %v\n%s", err, out)
	}
	s.relayProc, s.gatewayProc = dp, tp
	s.gatewayWired = true
	s.res.roles = "derper (relay) + trimmed tailscaled (subnet router) + control helper (homenet's control package; no stock control server here)"
}

// join logs in p1 (with --accept-routes), p2 and p3 and waits until they
// see each other; for homenet it then checks the gateway agent.
func (s *labSystem) join(t *labT) {
	phones := []*lab.Phone{s.p[1]}
	if !s.subnetOnly() {
		phones = append(phones, s.p[2], s.p[3])
		for _, pair := range s.pairs[1:] {
			phones = append(phones, pair[0], pair[1])
		}
	}
	errs := make(chan error, len(phones))
	for _, p := range phones {
		var extra []string
		if p == s.p[1] {
			extra = append(extra, "--accept-routes")
		}
		go func() {
			// With a dozen phones joining at once on a loaded machine, one
			// may miss its 80 s; a second try finds the node registered.
			err := p.Up(s.controlURL, s.key, extra...)
			if err != nil {
				t.Logf("tailscale up on %s failed, trying again: %v", p.Name, firstLine(err.Error()))
				err = p.Up(s.controlURL, s.key, extra...)
			}
			errs <- err
		}()
	}
	for range phones {
		if err := <-errs; err != nil {
			t.Fatalf("tailscale up on %s: %v", s.gw.Name, err)
		}
	}
	for _, p := range phones {
		if err := p.WaitPeers(60*time.Second, without(phones, p)...); err != nil {
			t.Fatal(err)
		}
	}
	if s.kind != "stock" {
		s.gatewayWired = s.detectGateway(t)
	}
}

func without(ps []*lab.Phone, p *lab.Phone) []*lab.Phone {
	var out []*lab.Phone
	for _, q := range ps {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// detectGateway reports whether homenet serve runs the gateway agent: a
// node tagged tag:gateway online with the LAN route approved.
func (s *labSystem) detectGateway(t *labT) bool {
	err := lab.Poll(30*time.Second, func() error {
		out, err := s.gw.Output(30*time.Second, s.r.bins.homenet, "nodes", "list", "--json", "--config", s.cfgPath)
		if err != nil {
			return err
		}
		var nodes []control.NodeInfo
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			var wrapped struct{ Nodes []control.NodeInfo }
			if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil {
				return fmt.Errorf("nodes list --json: %v", err)
			}
			nodes = wrapped.Nodes
		}
		for _, n := range nodes {
			if slices.Contains(n.Tags, "tag:gateway") && n.Online && slices.Contains(n.ApprovedRoutes, netip.MustParsePrefix(s.lanPrefix)) {
				return nil
			}
		}
		return fmt.Errorf("no online tag:gateway node with %s approved", s.lanPrefix)
	})
	if err != nil {
		t.Logf("%s: homenet gateway agent not running: %v", s.gw.Name, err)
		return false
	}
	return true
}

// iperf runs iperf3 between h and addr (from h, or to h when f.reverse)
// and returns the received goodput, with the CPU time proc (when not nil)
// used meanwhile.
func (r *labRun) iperf(h *lab.Host, addr string, f flow, d time.Duration, proc *lab.Proc) (tput, error) {
	args := append(r.pin.prefix(r.pin.rest), "iperf3", "-c", addr, "-p", fmt.Sprint(iperfPort),
		"-t", fmt.Sprint(max(1, int(d.Seconds()))), "-P", fmt.Sprint(f.streams), "-J")
	if f.reverse {
		args = append(args, "-R")
	}
	var u0 usage
	if proc != nil {
		var err error
		if u0, err = sample(proc.Pid()); err != nil {
			return tput{}, err
		}
	}
	out, err := h.Output(d+60*time.Second, args...)
	if err != nil {
		return tput{}, fmt.Errorf("iperf3 %s → %s: %v\n%s", h.Name, addr, err, tailLines(out, 20))
	}
	var cpu time.Duration
	if proc != nil {
		if cpu, _, err = u0.since(); err != nil {
			return tput{}, err
		}
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes         int64   `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return tput{}, fmt.Errorf("iperf3 -J: %v", err)
	}
	if res.Error != "" {
		return tput{}, fmt.Errorf("iperf3: %s", res.Error)
	}
	tp := tput{Gbps: res.End.SumReceived.BitsPerSecond / 1e9, Bytes: res.End.SumReceived.Bytes, CPU: cpu}
	if tp.Bytes > 0 {
		tp.CPUPerGB = cpu.Seconds() / (float64(tp.Bytes) / 1e9)
	}
	return tp, nil
}

// prepareThroughput finds how p1 reaches the gateway and p2 reaches p3,
// before the timed runs.
func (s *labSystem) prepareThroughput(t *labT) {
	if s.r.want["1"] || s.r.want["4"] {
		switch {
		case !s.gatewayWired:
			s.res.subnetNote = "gateway agent not wired into homenet serve: with [gateway] enabled = true, no tag:gateway node came online with its LAN route approved within 30 s"
		default:
			gwIP4, err := s.gatewayPeerIP(t)
			if err != nil {
				s.res.subnetNote = "error: " + err.Error()
				break
			}
			s.res.subnetPath = waitDirect(s.p[1], gwIP4)
			if err := lab.Poll(60*time.Second, func() error { return s.p[1].ICMPPing(netip.MustParseAddr(s.lanHostIP)) }); err != nil {
				s.res.subnetNote = "error: the LAN host does not answer pings through the gateway: " + err.Error()
			}
		}
	}
	if s.subnetOnly() {
		return
	}
	if s.r.want["2"] && len(s.pairs) > 1 {
		s.res.relayManyNote = s.pairsPath()
	}
	if s.r.want["2"] || s.r.want["4"] {
		ip3, err := s.p[3].IP4()
		if err != nil {
			s.res.relayNote = "error: " + err.Error()
			return
		}
		out, err := s.p[2].TailscalePing("--c=3", "--until-direct=false", ip3.String())
		path := "unknown"
		for _, m := range pongRe.FindAllStringSubmatch(out, -1) {
			path = m[1]
		}
		s.res.relayPath = path
		if err != nil || !strings.HasPrefix(path, "DERP(") {
			s.res.relayNote = fmt.Sprintf("p2 → p3 does not go through the relay (path %s): %v", path, err)
		}
	}
}

// subnetRun measures p1 ↔ lanhost through the gateway.
func (s *labSystem) subnetRun(t *labT, f flow) {
	if s.res.subnetNote != "" {
		return
	}
	tp, err := s.r.iperf(s.p[1].Host, s.lanHostIP, f, s.r.e.opts.transfer, s.gatewayProc)
	if err != nil {
		s.res.subnetNote = "error: " + firstLine(err.Error())
		return
	}
	s.res.subnet[f] = append(s.res.subnet[f], tp)
	r, _ := rss(s.gatewayProc.Pid())
	s.res.subnetRSS[f] = append(s.res.subnetRSS[f], r)
	t.Logf("%s subnet router, %v: %.2f Gb/s, %.2f CPU-s/GB on the gateway, RSS %.0f MiB after", s.label(), f, tp.Gbps, tp.CPUPerGB, mib(r))
}

// relayRun measures p2 → p3, which can only go through the relay.
func (s *labSystem) relayRun(t *labT) {
	if s.res.relayNote != "" || s.subnetOnly() {
		return
	}
	ip3, _ := s.p[3].IP4()
	tp, err := s.r.iperf(s.p[2].Host, ip3.String(), flow{streams: 1}, s.r.e.opts.transfer, s.relayProc)
	if err != nil {
		s.res.relayNote = "error: " + firstLine(err.Error())
		return
	}
	s.res.relay = append(s.res.relay, tp)
	t.Logf("%s relay p2 → p3: %.2f Gb/s, %.2f CPU-s/GB in the relay", s.kind, tp.Gbps, tp.CPUPerGB)
}

// gatewayPeerIP returns the tailnet IPv4 of the peer p1 routes the LAN
// through.
func (s *labSystem) gatewayPeerIP(t *labT) (netip.Addr, error) {
	var ip netip.Addr
	err := lab.Poll(60*time.Second, func() error {
		st, err := s.p[1].Status()
		if err != nil {
			return err
		}
		for _, ps := range st.Peer {
			if ps.PrimaryRoutes != nil && slices.Contains(ps.PrimaryRoutes.AsSlice(), netip.MustParsePrefix(s.lanPrefix)) {
				for _, a := range ps.TailscaleIPs {
					if a.Is4() {
						ip = a
						return nil
					}
				}
			}
		}
		return fmt.Errorf("p1 has no peer serving %s", s.lanPrefix)
	})
	return ip, err
}

var pongRe = regexp.MustCompile(`pong from \S+ \([^)]*\) via (\S+) in`)

// waitDirect pings ip from p until a pong comes over a direct path (up to
// 30 s) and returns the last path seen.
func waitDirect(p *lab.Phone, ip netip.Addr) string {
	last := "unknown"
	lab.Poll(30*time.Second, func() error {
		out, _ := p.TailscalePing("--c=5", ip.String())
		for _, m := range pongRe.FindAllStringSubmatch(out, -1) {
			last = m[1]
		}
		if _, err := netip.ParseAddrPort(last); err == nil {
			return nil
		}
		return fmt.Errorf("not direct yet: %s", last)
	})
	return last
}

// coldRun times run i of the cold path.
func (s *labSystem) coldRun(t *labT, i int) {
	if s.res.coldNote != "" || s.subnetOnly() {
		return
	}
	d, err := s.coldOnce(t)
	if err != nil {
		s.res.coldNote = fmt.Sprintf("error in run %d: %s", i+1, firstLine(err.Error()))
		return
	}
	s.res.cold = append(s.res.cold, d)
	t.Logf("%s cold path run %d: %v", s.kind, i+1, d.Round(time.Millisecond))
}

// coldOnce times `tailscale up --authkey` on p4 with fresh state
// (tailscaled restarted, state wiped) to the first ping through the
// tunnel to p1.
func (s *labSystem) coldOnce(t *labT) (time.Duration, error) {
	target, err := s.p[1].IP4()
	if err != nil {
		return 0, err
	}
	p := s.p[4]
	p.Daemon.Stop()
	entries, _ := os.ReadDir(p.StateDir)
	for _, de := range entries {
		os.RemoveAll(filepath.Join(p.StateDir, de.Name()))
	}
	p.RestartDaemon()
	s.r.pin.pinPid(t, p.Daemon.Pid(), s.r.pin.rest)
	start := time.Now()
	upErr := make(chan error, 1)
	go func() { upErr <- p.Up(s.controlURL, s.key) }()
	// ping fails at once while there is no route into the tailnet yet;
	// once there is, it sends every 20 ms until the first reply (-c 1
	// with a deadline waits for one reply), so the time resolves to
	// about 20 ms rather than to ping's 1 s reply timeout.
	script := fmt.Sprintf("until ping -n -q -i 0.02 -c 1 -w 90 %s >/dev/null 2>&1; do sleep 0.02; done", target)
	_, err = p.RunTimeout(90*time.Second, "sh", "-c", script)
	d := time.Since(start)
	if uerr := <-upErr; uerr != nil {
		return 0, fmt.Errorf("tailscale up: %w", uerr)
	}
	return d, err
}

// profiles captures CPU profiles of the profiling system (appliance.Serve
// in the bench helper, pprof on gw3's loopback) during a relay run, a
// subnet run and a cold path, each in a window of its own.
func (s *labSystem) profiles(t *labT) {
	e := s.r.e
	secs := int(max(2*time.Second, e.opts.transfer).Seconds())
	profile := func(row, title string, secs int, during func() error) {
		path := filepath.Join(e.work, "profile-"+row+".pb.gz")
		done := make(chan error, 1)
		go func() {
			_, err := s.gw.RunTimeout(time.Duration(secs+60)*time.Second, s.r.bins.self, "helper", "fetch", "-timeout", fmt.Sprint(secs+50)+"s",
				fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs), path)
			done <- err
		}()
		time.Sleep(200 * time.Millisecond)
		if err := during(); err != nil {
			t.Logf("profile %s: %v", row, err)
			<-done
			return
		}
		if err := <-done; err != nil {
			t.Logf("profile %s: %v", row, err)
			return
		}
		e.profile(row, title, path)
	}
	s.prepareThroughput(t)
	d := time.Duration(secs) * time.Second
	if s.r.want["2"] && s.res.relayNote == "" {
		ip3, _ := s.p[3].IP4()
		profile("2", fmt.Sprintf("relay, iperf3 p2 → p3 through DERP for %ds", secs), secs, func() error {
			_, err := s.r.iperf(s.p[2].Host, ip3.String(), flow{streams: 1}, d, s.relayProc)
			return err
		})
	}
	if s.r.want["1"] && s.res.subnetNote == "" {
		profile("1", fmt.Sprintf("subnet router, iperf3 p1 → LAN host, 1 stream for %ds (path %s)", secs, s.res.subnetPath), secs, func() error {
			_, err := s.r.iperf(s.p[1].Host, s.lanHostIP, flow{streams: 1}, d, s.gatewayProc)
			return err
		})
	}
	if s.r.want["5"] {
		profile("5", "cold path: tailscale up → first ping, in a 10 s window", 10, func() error {
			_, err := s.coldOnce(t)
			return err
		})
	}
	if s.r.want["4"] {
		// Where the memory after the throughput runs is: the in-use heap
		// (after a GC) of the profiled system, which carried the same
		// relay and subnet runs.
		path := filepath.Join(e.work, "profile-4.pb.gz")
		if _, err := s.gw.RunTimeout(60*time.Second, s.r.bins.self, "helper", "fetch", "-timeout", "50s",
			"http://"+pprofAddr+"/debug/pprof/heap?gc=1", path); err != nil {
			t.Logf("heap profile: %v", err)
			return
		}
		r, _ := rss(s.gatewayProc.Pid())
		e.profileOf("4", fmt.Sprintf("in-use heap of homenet serve after the relay and subnet runs (RSS %.0f MiB)", mib(r)), path, "-sample_index=inuse_space")
	}
}

// binaryMentions reports whether the file at path contains s, e.g. an
// environment variable's name the program reads.
func binaryMentions(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

// memCase is row 1 under one GOMEMLIMIT: homenet and the stock
// tailscaled, each in a system of its own under that limit.
type memCase struct {
	limit  string   // as GOMEMLIMIT takes it: "64MiB"
	env    []string // more environment for homenet: settings to try
	hn, st *sysResult
}

// name is the case as -memlimits gave it.
func (m memCase) name() string { return strings.Join(append([]string{m.limit}, m.env...), "+") }

// memCases parses -memlimits: LIMIT[+K=V…],…
func memCases(limits string) []memCase {
	var out []memCase
	for _, l := range strings.Split(limits, ",") {
		if l = strings.TrimSpace(l); l != "" {
			f := strings.Split(l, "+")
			out = append(out, memCase{limit: f[0], env: f[1:], hn: newSysResult("homenet " + l), st: newSysResult("stock " + f[0])})
		}
	}
	return out
}

// label names the system in the log.
func (s *labSystem) label() string {
	if s.memLimit != "" {
		return s.kind + " (" + strings.Join(append([]string{"GOMEMLIMIT=" + s.memLimit}, s.memEnv...), ", ") + ")"
	}
	return s.kind
}

// pairsPath checks that every pair of the many-pairs case goes through
// the relay; it returns why not, or "".
func (s *labSystem) pairsPath() string {
	for i, pair := range s.pairs {
		ip, err := pair[1].IP4()
		if err != nil {
			return fmt.Sprintf("pair %d: %v", i+1, err)
		}
		out, err := pair[0].TailscalePing("--c=3", "--until-direct=false", ip.String())
		path := "unknown"
		for _, m := range pongRe.FindAllStringSubmatch(out, -1) {
			path = m[1]
		}
		if err != nil || !strings.HasPrefix(path, "DERP(") {
			return fmt.Sprintf("pair %d does not go through the relay (path %s): %v", i+1, path, err)
		}
	}
	return ""
}

// relayManyRun measures every pair at once through the relay, one
// iperf3 stream each: their sum, and each pair's share (a pair starved
// by the others is the collapse this case looks for).
func (s *labSystem) relayManyRun(t *labT) {
	if len(s.pairs) < 2 || s.res.relayManyNote != "" || s.subnetOnly() || !s.r.want["2"] {
		return
	}
	u0, err := sample(s.relayProc.Pid())
	if err != nil {
		s.res.relayManyNote = "error: " + err.Error()
		return
	}
	res := make([]tput, len(s.pairs))
	errs := make([]error, len(s.pairs))
	var wg sync.WaitGroup
	for i, pair := range s.pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip, err := pair[1].IP4()
			if err == nil {
				res[i], err = s.r.iperf(pair[0].Host, ip.String(), flow{streams: 1}, s.r.e.opts.transfer, nil)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	cpu, _, err := u0.since()
	if err = errors.Join(append(errs, err)...); err != nil {
		s.res.relayManyNote = "error: " + firstLine(err.Error())
		return
	}
	var sum tput
	var each []float64
	for _, r := range res {
		sum.Gbps += r.Gbps
		sum.Bytes += r.Bytes
		each = append(each, r.Gbps)
	}
	sum.CPU = cpu
	if sum.Bytes > 0 {
		sum.CPUPerGB = cpu.Seconds() / (float64(sum.Bytes) / 1e9)
	}
	s.res.relayMany = append(s.res.relayMany, sum)
	s.res.relayManyEach = append(s.res.relayManyEach, each)
	t.Logf("%s relay, %d pairs at once: %.2f Gb/s in all (%s), %.2f CPU-s/GB in the relay", s.kind, len(s.pairs), sum.Gbps, fmtGbps(each), sum.CPUPerGB)
}

func fmtGbps(v []float64) string {
	var parts []string
	for _, g := range v {
		parts = append(parts, fmt.Sprintf("%.3f", g))
	}
	return strings.Join(parts, " + ")
}
