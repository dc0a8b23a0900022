package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/control/ts2021"
	"tailscale.com/control/tsp"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Row 3: control-plane scale. N simulated nodes, each a tsp client with
// its own machine key and Noise connection, register with a reusable key
// and hold a streaming map session against `homenet serve` running as a
// child on loopback (so its CPU and memory are its own). Then, one at a
// time, a node changes its endpoints, and a new node joins; each time we
// wait until every session has received the change.
//
// There is no reference control server here (headscale is not built by
// this module), so the figures are absolute, and each N is also compared
// with the smallest N: the ratios show how the costs scale.

// controlPlan is how many events one N gets.
type controlPlan struct {
	n           int
	changes     int           // endpoint changes, one after another
	joins       int           // new nodes joining, one after another
	profileFor  time.Duration // when > 0: change endpoints back to back this long (profile pass)
	concurrency int           // parallel registrations and map requests
	// burst opens all N streams at once, as a load generator that starts N
	// clients does, instead of concurrency at a time. The server then has
	// N first maps to render and send together.
	burst bool
}

// streamsAtOnce is how many map streams the plan opens in parallel.
func (p controlPlan) streamsAtOnce() int {
	if p.burst {
		return p.n
	}
	return p.concurrency
}

// controlResult is what one N measured.
type controlResult struct {
	n           int
	registerAll time.Duration // register N nodes
	registerCPU time.Duration // server CPU for that
	streamAll   time.Duration // open N streams until quiet
	rssAtN      int64
	rssAfter    int64 // VmRSS right after the joins
	rssPeak     int64 // VmHWM at the end: the most the server ever held
	// mem are the server's Go memory statistics at the moments the RSS
	// was read, when it serves pprof (helper runs only).
	mem          []memSnapshot
	changeLat    []time.Duration // per change: until the last session had it
	joinLat      []time.Duration
	changeCPU    time.Duration // server CPU per change
	changeBytes  int64         // bytes the server wrote per change
	joinCPU      time.Duration
	joinBytes    int64
	messagesSeen int64
}

func rowControl(e *env) ([]Row, error) {
	var ns []int
	for _, s := range strings.Split(e.opts.ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("-n: %q is not a node count ≥ 2", s)
		}
		ns = append(ns, n)
	}
	bin, err := e.b.hostHomenet(e.ctx)
	if err != nil {
		return nil, err
	}
	e.command("homenet serve --config FILE   # control on 127.0.0.1, relay on, gateway off (row 3)")

	var results, bursts []controlResult
	for _, n := range ns {
		plan := controlPlan{n: n, changes: 30, joins: 10, concurrency: 16}
		switch {
		case e.opts.short:
			plan.changes, plan.joins = 5, 2
		case n >= 1000:
			plan.changes, plan.joins = 20, 5
		}
		e.logf("row 3: N=%d (%d endpoint changes, %d joins) …", n, plan.changes, plan.joins)
		res, err := controlRun(e, []string{bin, "serve", "--config"}, nil, plan, "")
		if err != nil {
			return nil, fmt.Errorf("N=%d: %w", n, err)
		}
		results = append(results, res)
		// The load generator's shape: N clients start together and hold
		// their sessions, then 5 timed joins. Only memory and the joins
		// are reported; no endpoint changes.
		burst := controlPlan{n: n, joins: 5, concurrency: 16, burst: true}
		if e.opts.short {
			burst.joins = 2
		}
		e.logf("row 3: N=%d, all streams at once, %d joins …", n, burst.joins)
		res, err = controlRun(e, []string{bin, "serve", "--config"}, nil, burst, "")
		if err != nil {
			return nil, fmt.Errorf("N=%d, streams at once: %w", n, err)
		}
		bursts = append(bursts, res)
	}

	// Profile pass: the same server code (appliance.Serve) in the bench
	// helper with pprof, changes back to back.
	pn := min(ns[len(ns)-1], 100)
	if !e.opts.short {
		pn = ns[len(ns)-1]
	}
	dur := 10 * time.Second
	if e.opts.short {
		dur = 2 * time.Second
	}
	self, err := e.b.self()
	if err != nil {
		return nil, err
	}
	profPath := filepath.Join(e.work, "profile-3.pb.gz")
	e.logf("row 3: profile pass at N=%d for %v …", pn, dur)
	if _, err := controlRun(e, []string{self, "helper", "serve", "-config"}, nil,
		controlPlan{n: pn, profileFor: dur, concurrency: 16}, profPath); err != nil {
		e.logf("row 3: profile pass: %v", err)
	} else {
		e.profile("3", fmt.Sprintf("control plane, N=%d, endpoint changes back to back for %v", pn, dur), profPath)
		e.profileOf("3-heap", fmt.Sprintf("in-use heap of homenet serve with N=%d map sessions open, after a GC", pn),
			strings.TrimSuffix(profPath, ".pb.gz")+"-heap.pb.gz", "-sample_index=inuse_space")
	}
	rows := append(controlRows(results), burstRows(bursts)...)

	// Memory pass: the load generator's shape in the helper, whose Go
	// memory statistics say where the RSS is at each moment it is read.
	memPath := filepath.Join(e.work, "profile-3-mem.pb.gz")
	e.logf("row 3: memory pass at N=%d, all streams at once, then joins …", pn)
	mem, err := controlRun(e, []string{self, "helper", "serve", "-config"}, nil,
		controlPlan{n: pn, joins: 5, concurrency: 16, burst: true}, memPath)
	if err != nil {
		e.logf("row 3: memory pass: %v", err)
		return rows, nil
	}
	e.profileOf("3-alloc", fmt.Sprintf("bytes allocated by homenet serve while N=%d clients opened their streams at once and 5 joined", pn),
		strings.TrimSuffix(memPath, ".pb.gz")+"-heap.pb.gz", "-sample_index=alloc_space")
	if i := len(rows) - 1; i >= 0 {
		rows[i].Notes = append(rows[i].Notes, memNotes(mem)...)
	}
	return rows, nil
}

// controlRows turns the results into table rows: absolute figures, and
// the ratio to the smallest N.
func controlRows(results []controlResult) []Row {
	var rows []Row
	base := results[0]
	for _, r := range results {
		refName := ""
		if r.n != base.n {
			refName = fmt.Sprintf("N=%d", base.n)
		}
		m := func(name, unit string, v, ref float64) Metric {
			mt := Metric{Name: name, Unit: unit, Value: v}
			if refName != "" {
				mt = mt.withRef(refName, ref)
			}
			return mt
		}
		perSess := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }
		row := Row{ID: "3", Name: "control-plane scale", Case: fmt.Sprintf("N=%d", r.n),
			Metrics: []Metric{
				m("register all N", "ms", ms(r.registerAll), ms(base.registerAll)),
				m("server CPU per registration", "ms", ms(r.registerCPU)/float64(r.n), ms(base.registerCPU)/float64(base.n)),
				m("endpoint change → all sessions, p50", "ms", ms(median(r.changeLat)), ms(median(base.changeLat))),
				m("endpoint change → all sessions, p99", "ms", ms(percentile(r.changeLat, 99)), ms(percentile(base.changeLat, 99))),
				m("join → all sessions, p50", "ms", ms(median(r.joinLat)), ms(median(base.joinLat))),
				m("join → all sessions, p99", "ms", ms(percentile(r.joinLat, 99)), ms(percentile(base.joinLat, 99))),
				m("server CPU per change", "ms", ms(r.changeCPU), ms(base.changeCPU)),
				m("server CPU per change per session", "µs", perSess(r.changeCPU, r.n), perSess(base.changeCPU, base.n)),
				m("server CPU per join", "ms", ms(r.joinCPU), ms(base.joinCPU)),
				m("bytes sent per change (all sessions)", "KiB", float64(r.changeBytes)/1024, float64(base.changeBytes)/1024),
				m("bytes sent per join (all sessions)", "KiB", float64(r.joinBytes)/1024, float64(base.joinBytes)/1024),
				m("server RSS with N streaming", "MiB", mib(r.rssAtN), mib(base.rssAtN)),
				m("server RSS after the joins", "MiB", mib(r.rssAfter), mib(base.rssAfter)),
				m("server peak RSS (VmHWM)", "MiB", mib(r.rssPeak), mib(base.rssPeak)),
			},
		}
		row.Notes = append(row.Notes, fmt.Sprintf("%d endpoint changes and %d joins, one at a time; open N streams (16 at a time) until quiet: %v",
			len(r.changeLat), len(r.joinLat), r.streamAll.Round(time.Millisecond)))
		if r.n == base.n {
			row.Notes = append(row.Notes, "no reference control server is available here (headscale is not part of this module): absolute figures; larger N are compared with this N. The simulated clients (one Noise connection and zstd decoder each) run in the bench process and share the CPUs with the server, so latencies at large N include their decoding; CPU and bytes are the server's alone (/proc/PID/task/*/schedstat, /proc/PID/io wchar)")
		}
		rows = append(rows, row)
	}
	return rows
}

// burstRows are the load generator's shape: N clients open their streams
// all at once and hold them, then nodes join one at a time. Memory and
// the joins only; each N is compared with the smallest.
func burstRows(results []controlResult) []Row {
	if len(results) == 0 {
		return nil
	}
	var rows []Row
	base := results[0]
	for _, r := range results {
		m := func(name, unit string, v, ref float64) Metric {
			mt := Metric{Name: name, Unit: unit, Value: v}
			if r.n != base.n {
				mt = mt.withRef(fmt.Sprintf("N=%d", base.n), ref)
			}
			return mt
		}
		row := Row{ID: "3", Name: "control-plane scale", Case: fmt.Sprintf("N=%d, streams opened at once", r.n),
			Metrics: []Metric{
				m("open N streams at once until quiet", "ms", ms(r.streamAll), ms(base.streamAll)),
				m("join → all sessions, p50", "ms", ms(median(r.joinLat)), ms(median(base.joinLat))),
				m("join → all sessions, p99", "ms", ms(percentile(r.joinLat, 99)), ms(percentile(base.joinLat, 99))),
				m("server RSS with N streaming", "MiB", mib(r.rssAtN), mib(base.rssAtN)),
				m("server RSS after the joins", "MiB", mib(r.rssAfter), mib(base.rssAfter)),
				m("server peak RSS (VmHWM)", "MiB", mib(r.rssPeak), mib(base.rssPeak)),
			},
		}
		if r.n == base.n {
			row.Notes = append(row.Notes, "the shape of a load generator that starts N clients together: registered 16 at a time, then all N streams opened at once; once every session is quiet, nodes join one at a time. RSS is read once the sessions are quiet, right after the last join, and VmHWM (the peak) then")
		}
		rows = append(rows, row)
	}
	return rows
}

// controlRun starts the server (serverArgs + config path), runs plan and
// stops it. With profPath, the server is a bench helper serving pprof and
// the CPU profile of the change loop is written there.
func controlRun(e *env, serverArgs []string, env []string, plan controlPlan, profPath string) (controlResult, error) {
	res := controlResult{n: plan.n}
	dir, err := os.MkdirTemp(e.work, "ctl")
	if err != nil {
		return res, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return res, err
	}
	cfgPath := filepath.Join(dir, "homenet.toml")
	if err := os.WriteFile(cfgPath, []byte(loopbackHomenetConfig(filepath.Join(dir, "state"), ports, true)), 0o644); err != nil {
		return res, err
	}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", ports[3])
	if profPath != "" {
		env = append(env, pprofEnv+"="+pprofAddr)
	}
	srv, err := startChild(dir, "server", env, append(serverArgs, cfgPath)...)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := srv.waitHTTP(e.ctx, url+"/key?v=113", 30*time.Second); err != nil {
		return res, err
	}
	hbin, err := e.b.hostHomenet(e.ctx)
	if err != nil {
		return res, err
	}
	out, err := exec.CommandContext(e.ctx, hbin, "keys", "create", "--reusable", "--config", cfgPath).Output()
	if err != nil {
		return res, fmt.Errorf("homenet keys create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	authKey := strings.TrimSpace(lines[len(lines)-1])

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	serverKey, err := tsp.DiscoverServerKey(ctx, url)
	if err != nil {
		return res, err
	}
	f := &fleet{url: url, serverKey: serverKey, authKey: authKey, errc: make(chan error, 1)}
	defer f.close()

	// Register N nodes.
	u0, err := sample(srv.pid())
	if err != nil {
		return res, err
	}
	nodes := make([]*simNode, plan.n)
	for i := range nodes {
		nodes[i] = f.newNode(i)
	}
	if err := parallel(plan.concurrency, nodes, func(sn *simNode) error { return f.register(ctx, sn) }); err != nil {
		return res, fmt.Errorf("registering: %w", err)
	}
	res.registerCPU, res.registerAll, _ = u0.since()

	// Open N streams and wait until every session has its first map and
	// the server has gone quiet (every stream's start is news to the
	// others).
	start := time.Now()
	if err := parallel(plan.streamsAtOnce(), nodes, func(sn *simNode) error { return f.stream(ctx, sn) }); err != nil {
		return res, fmt.Errorf("opening map streams: %w", err)
	}
	if err := f.quiet(ctx, nodes, 60*time.Second+time.Duration(plan.n)*50*time.Millisecond); err != nil {
		return res, err
	}
	res.streamAll = time.Since(start)
	if res.rssAtN, err = rss(srv.pid()); err != nil {
		return res, err
	}
	// snap records the Go heap beside the RSS, as it is (no GC forced)
	// or after a GC: the runtime returns freed memory to the OS lazily.
	snap := func(moment string, gc bool) error {
		if profPath == "" {
			return nil
		}
		m, err := readMemSnapshot(ctx, srv.pid(), pprofAddr, gc)
		if err != nil {
			return fmt.Errorf("memory statistics %s: %w", moment, err)
		}
		m.moment = moment
		res.mem = append(res.mem, m)
		return nil
	}
	if err := snap("with N streams open, once quiet", false); err != nil {
		return res, err
	}
	heapPath := strings.TrimSuffix(profPath, ".pb.gz") + "-heap.pb.gz"

	var prof chan error
	if plan.profileFor > 0 {
		// What the N sessions hold, before the CPU profile's changes.
		if err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", pprofAddr), heapPath); err != nil {
			return res, fmt.Errorf("heap profile: %w", err)
		}
		prof = make(chan error, 1)
		go func() {
			prof <- fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(plan.profileFor.Seconds())), profPath)
		}()
	}

	// Endpoint changes, one at a time.
	u0, _ = sample(srv.pid())
	w0, err := bytesWritten(srv.pid())
	if err != nil {
		return res, err
	}
	changes := 0
	for i := 0; ; i++ {
		if prof != nil {
			if done(prof) {
				break
			}
		} else if i >= plan.changes {
			break
		}
		sn := nodes[i%len(nodes)]
		ep := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%250)}), uint16(10000+i%50000))
		lat, err := f.change(ctx, nodes, sn, ep)
		if err != nil {
			return res, fmt.Errorf("endpoint change %d: %w", i, err)
		}
		res.changeLat = append(res.changeLat, lat)
		changes++
	}
	cpu, _, _ := u0.since()
	w1, _ := bytesWritten(srv.pid())
	res.changeCPU = cpu / time.Duration(max(1, changes))
	res.changeBytes = (w1 - w0) / int64(max(1, changes))
	if prof != nil {
		if err := <-prof; err != nil {
			return res, fmt.Errorf("profile: %w", err)
		}
		return res, nil
	}

	// Joins, one at a time: register and stream a new node; every
	// existing session must see it.
	u0, _ = sample(srv.pid())
	w0, _ = bytesWritten(srv.pid())
	for j := range plan.joins {
		sn := f.newNode(plan.n + j)
		lat, err := f.join(ctx, nodes, sn)
		if err != nil {
			return res, fmt.Errorf("join %d: %w", j, err)
		}
		res.joinLat = append(res.joinLat, lat)
	}
	if plan.joins > 0 {
		cpu, _, _ = u0.since()
		w1, _ = bytesWritten(srv.pid())
		res.joinCPU = cpu / time.Duration(plan.joins)
		res.joinBytes = (w1 - w0) / int64(plan.joins)
	}
	if res.rssAfter, err = rss(srv.pid()); err != nil {
		return res, err
	}
	if res.rssPeak, err = procStatus(srv.pid(), "VmHWM"); err != nil {
		return res, err
	}
	if profPath != "" {
		if err := snap("right after the joins", false); err != nil {
			return res, err
		}
		if err := snap("after the joins and a forced GC", true); err != nil {
			return res, err
		}
		// Everything allocated since the start, for alloc_space.
		if err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/heap", pprofAddr), heapPath); err != nil {
			return res, fmt.Errorf("heap profile: %w", err)
		}
	}
	res.messagesSeen = f.msgs.Load()
	select {
	case err := <-f.errc:
		return res, err
	default:
	}
	return res, nil
}

func done(c chan error) bool {
	select {
	case err := <-c:
		c <- err
		return true
	default:
		return false
	}
}

// fetchProfile saves a pprof profile from url.
func fetchProfile(ctx context.Context, url, path string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, res.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parallel runs f on every item with at most n at once and returns the
// first error.
func parallel[T any](n int, items []T, f func(T) error) error {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(it); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

// fleet is the simulated nodes and what their sessions have seen.
type fleet struct {
	url       string
	serverKey key.MachinePublic
	authKey   string

	waiter  atomic.Pointer[waiter]
	lastMsg atomic.Int64 // unix nanoseconds of the last message on any session
	msgs    atomic.Int64
	errc    chan error // first unexpected session error

	mu      sync.Mutex
	all     []*simNode
	closing atomic.Bool
}

type simNode struct {
	idx      int
	machine  key.MachinePrivate
	nodeKey  key.NodePrivate
	disco    key.DiscoPrivate
	hostinfo *tailcfg.Hostinfo
	client   *tsp.Client
	sess     *tsp.MapSession
	id       tailcfg.NodeID
	first    chan struct{} // closed when the first map arrived
}

// waiter counts the sessions that have seen one change.
type waiter struct {
	match func(*tailcfg.MapResponse) bool
	want  int64
	seen  sync.Map // *simNode → bool
	got   atomic.Int64
	done  chan struct{}
}

func (f *fleet) newNode(i int) *simNode {
	sn := &simNode{
		idx:     i,
		machine: key.NewMachine(),
		nodeKey: key.NewNode(),
		disco:   key.NewDisco(),
		first:   make(chan struct{}),
		hostinfo: &tailcfg.Hostinfo{
			Hostname:     fmt.Sprintf("sim%04d", i),
			OS:           "linux",
			OSVersion:    "6.1.0",
			GoArch:       "arm64",
			IPNVersion:   "1.102.5-bench",
			BackendLogID: fmt.Sprintf("%064x", i),
		},
	}
	f.mu.Lock()
	f.all = append(f.all, sn)
	f.mu.Unlock()
	return sn
}

// register registers sn with the auth key, then tells the server its
// endpoints and disco key in a non-streaming map request, as a client does
// before it streams, so that every peer in the netmaps is realistic.
func (f *fleet) register(ctx context.Context, sn *simNode) error {
	c, err := tsp.NewClient(tsp.ClientOpts{ServerURL: f.url, MachineKey: sn.machine})
	if err != nil {
		return err
	}
	c.SetControlPublicKey(f.serverKey)
	sn.client = c
	if _, err := c.Register(ctx, tsp.RegisterOpts{NodeKey: sn.nodeKey, Hostinfo: sn.hostinfo.Clone(), AuthKey: f.authKey}); err != nil {
		return err
	}
	// A non-streaming, peerless map request gives us the Noise channel
	// for the update.
	s, err := c.Map(ctx, tsp.MapOpts{NodeKey: sn.nodeKey, Hostinfo: sn.hostinfo.Clone(), OmitPeers: true})
	if err != nil {
		return err
	}
	defer s.Close()
	eps := []netip.AddrPort{
		netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(sn.idx)}), 41641),
		netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(sn.idx >> 8), byte(sn.idx), 2}), 41641),
		netip.MustParseAddrPort("[2001:db8::1]:41641"),
	}
	return postMapUpdate(ctx, s, f.url, sn, eps)
}

// postMapUpdate sends a non-streaming map request with new endpoints, as
// clients do when their endpoints change.
func postMapUpdate(ctx context.Context, s *tsp.MapSession, url string, sn *simNode, eps []netip.AddrPort) error {
	body, _ := json.Marshal(tailcfg.MapRequest{
		Version:   tailcfg.CurrentCapabilityVersion,
		NodeKey:   sn.nodeKey.Public(),
		DiscoKey:  sn.disco.Public(),
		Endpoints: eps,
		Compress:  "zstd",
		OmitPeers: true,
	})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.Replace(url, "http:", "https:", 1)+"/machine/map", bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts2021.AddLBHeader(req, sn.nodeKey.Public())
	res, err := s.NoiseRoundTrip(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("map update: %s", res.Status)
	}
	return nil
}

// stream opens sn's streaming map session and reads it until the fleet
// closes.
func (f *fleet) stream(ctx context.Context, sn *simNode) error {
	s, err := sn.client.Map(ctx, tsp.MapOpts{NodeKey: sn.nodeKey, Hostinfo: sn.hostinfo.Clone(), Stream: true})
	if err != nil {
		return err
	}
	sn.sess = s
	go f.read(sn)
	return nil
}

func (f *fleet) read(sn *simNode) {
	first := true
	for {
		var res tailcfg.MapResponse
		if err := sn.sess.NextInto(&res); err != nil {
			if !f.closing.Load() {
				select {
				case f.errc <- fmt.Errorf("session of %s: %w", sn.hostinfo.Hostname, err):
				default:
				}
			}
			return
		}
		f.lastMsg.Store(time.Now().UnixNano())
		f.msgs.Add(1)
		if first {
			if res.Node != nil {
				sn.id = res.Node.ID
			}
			first = false
			close(sn.first)
		}
		if res.KeepAlive {
			continue
		}
		if w := f.waiter.Load(); w != nil && w.match(&res) {
			if _, dup := w.seen.LoadOrStore(sn, true); !dup && w.got.Add(1) == w.want {
				close(w.done)
			}
		}
	}
}

// quiet waits until every node had its first map and no session has
// received anything for 500 ms.
func (f *fleet) quiet(ctx context.Context, nodes []*simNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, sn := range nodes {
		select {
		case <-sn.first:
		case err := <-f.errc:
			return err
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("%s got no map within %v", sn.hostinfo.Hostname, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for time.Since(time.Unix(0, f.lastMsg.Load())) < 500*time.Millisecond {
		if time.Now().After(deadline) {
			return fmt.Errorf("sessions still busy after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// await installs a waiter for want sessions, runs trigger, and returns
// the time from trigger's start until the last of them had the change.
func (f *fleet) await(ctx context.Context, want int, match func(*tailcfg.MapResponse) bool, trigger func() error) (time.Duration, error) {
	w := &waiter{match: match, want: int64(want), done: make(chan struct{})}
	f.waiter.Store(w)
	defer f.waiter.Store(nil)
	start := time.Now()
	if err := trigger(); err != nil {
		return 0, err
	}
	select {
	case <-w.done:
		return time.Since(start), nil
	case err := <-f.errc:
		return 0, err
	case <-time.After(60 * time.Second):
		return 0, fmt.Errorf("only %d of %d sessions saw the change within 60 s", w.got.Load(), want)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// change moves sn to endpoint ep; the other sessions must see it.
func (f *fleet) change(ctx context.Context, nodes []*simNode, sn *simNode, ep netip.AddrPort) (time.Duration, error) {
	match := func(res *tailcfg.MapResponse) bool {
		for _, p := range res.PeersChanged {
			if p.ID == sn.id && containsAddrPort(p.Endpoints, ep) {
				return true
			}
		}
		for _, p := range res.PeersChangedPatch {
			if p.NodeID == sn.id && containsAddrPort(p.Endpoints, ep) {
				return true
			}
		}
		return false
	}
	return f.await(ctx, len(nodes)-1, match, func() error {
		return postMapUpdate(ctx, sn.sess, f.url, sn, []netip.AddrPort{ep})
	})
}

// join registers and streams sn; every session in nodes must see it.
func (f *fleet) join(ctx context.Context, nodes []*simNode, sn *simNode) (time.Duration, error) {
	k := sn.nodeKey.Public()
	match := func(res *tailcfg.MapResponse) bool {
		for _, p := range res.PeersChanged {
			if p.Key == k {
				return true
			}
		}
		for _, p := range res.Peers {
			if p.Key == k {
				return true
			}
		}
		return false
	}
	return f.await(ctx, len(nodes), match, func() error {
		if err := f.register(ctx, sn); err != nil {
			return err
		}
		return f.stream(ctx, sn)
	})
}

func containsAddrPort(s []netip.AddrPort, ap netip.AddrPort) bool {
	for _, x := range s {
		if x == ap {
			return true
		}
	}
	return false
}

func (f *fleet) close() {
	f.closing.Store(true)
	f.mu.Lock()
	all := f.all
	f.mu.Unlock()
	for _, sn := range all {
		if sn.sess != nil {
			sn.sess.Close()
		}
		if sn.client != nil {
			sn.client.Close()
		}
	}
}

// memSnapshot is a server's memory at one moment: the kernel's view and
// the Go runtime's (runtime.MemStats, as /debug/pprof/heap?debug=1
// prints it).
type memSnapshot struct {
	moment     string
	rss, peak  int64
	goroutines int
	stats      map[string]int64 // HeapInuse, HeapIdle, HeapReleased, Stack (in use), Sys, NumGC, …
}

// readMemSnapshot reads pid's RSS and the MemStats of its pprof server at
// addr, after a GC when gc is set.
func readMemSnapshot(ctx context.Context, pid int, addr string, gc bool) (memSnapshot, error) {
	var m memSnapshot
	url := fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", addr)
	if gc {
		url += "&gc=1"
	}
	heap, err := fetchText(ctx, url)
	if err != nil {
		return m, err
	}
	m.stats = parseMemStats(heap)
	if len(m.stats) == 0 {
		return m, fmt.Errorf("%s: no runtime.MemStats in the answer", url)
	}
	g, err := fetchText(ctx, fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", addr))
	if err != nil {
		return m, err
	}
	first, _, _ := strings.Cut(g, "\n")
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &m.goroutines); err != nil {
		return m, fmt.Errorf("goroutine profile: %q: %w", first, err)
	}
	if m.rss, err = rss(pid); err != nil {
		return m, err
	}
	m.peak, err = procStatus(pid, "VmHWM")
	return m, err
}

// parseMemStats reads the "# Name = value" lines of a debug=1 heap
// profile; for "# Stack = inuse / sys" it keeps the first figure.
func parseMemStats(text string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(text, "\n") {
		name, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if !ok || strings.ContainsAny(name, " []") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[name] = n
		}
	}
	return out
}

func fetchText(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s: %.200s", url, res.Status, b)
	}
	return string(b), nil
}

// memNotes says where the memory of the memory pass was at each moment.
func memNotes(r controlResult) []string {
	notes := []string{fmt.Sprintf("memory pass (the same code in the bench helper, with pprof): N=%d streams opened at once, then %d joins; peak RSS (VmHWM) %.0f MiB. RSS against the Go runtime's view (runtime.MemStats): HeapInuse is live heap plus fragmentation, HeapIdle−HeapReleased is freed heap the runtime has not yet given back to the OS (it does so lazily, in the background)",
		r.n, len(r.joinLat), mib(r.rssPeak))}
	for _, m := range r.mem {
		st := m.stats
		notes = append(notes, fmt.Sprintf("%s: RSS %.0f MiB; HeapInuse %.0f MiB, HeapIdle %.0f MiB of which released %.0f MiB (held, unused: %.0f MiB), stacks %.0f MiB (%d goroutines), runtime Sys %.0f MiB, %d GCs so far",
			m.moment, mib(m.rss), mib(st["HeapInuse"]), mib(st["HeapIdle"]), mib(st["HeapReleased"]),
			mib(st["HeapIdle"]-st["HeapReleased"]), mib(st["Stack"]), m.goroutines, mib(st["Sys"]), st["NumGC"]))
	}
	return notes
}
