package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/control/tsp"
)

// Row 7: soak. 100 simulated nodes (row 3's fleet) hold streaming map
// sessions against `homenet serve` on loopback and each closes and
// reopens its session every 10 s, staggered so that reconnects come
// evenly; every sixth time (a sixth of the nodes each round) a node also
// drops its Noise connection and registers again with the same keys, as a
// phone does after a network change. The soak lasts -soak (10 minutes by default). What matters is
// growth: the server's RSS, live heap, goroutines, threads, open files and
// store size at the start and at the end, with the same sessions open.

const (
	soakNodes      = 100
	soakPeriod     = 10 * time.Second // each node reconnects this often
	soakReregister = 6                // every this many reconnects, a new Noise connection and registration
)

// soakSample is the server's state at one moment of the soak.
type soakSample struct {
	at         time.Duration // since the soak started
	mem        memSnapshot   // RSS, goroutines and MemStats (after a GC)
	fds        int
	threads    int
	storeBytes int64 // SQLite file plus -wal
	cpu        time.Duration
}

func rowSoak(e *env) ([]Row, error) {
	if e.opts.soak <= 0 {
		return nil, fmt.Errorf("-soak %v: want a positive duration", e.opts.soak)
	}
	s, err := newLoopServer(e, "soak", true, true)
	if err != nil {
		return nil, err
	}
	e.command("homenet serve --config FILE   # control on 127.0.0.1, relay on, gateway off; pprof via $HOMENET_PPROF (row 7)")
	if _, err := s.start(); err != nil {
		return nil, err
	}
	defer s.stop()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	authKey, err := s.reusableKey(ctx)
	if err != nil {
		return nil, err
	}
	serverKey, err := tsp.DiscoverServerKey(ctx, s.url)
	if err != nil {
		return nil, err
	}
	f := &fleet{url: s.url, serverKey: serverKey, authKey: authKey, errc: make(chan error, 1)}
	defer f.close()
	k := &soaker{f: f, s: s}
	return k.run(ctx, e.opts.soak)
}

// soaker runs the soak's nodes and counts what happened to them.
type soaker struct {
	f *fleet
	s *loopServer

	reconnects, reregisters atomic.Int64
	opens, firstMaps        atomic.Int64 // sessions opened, and those that got their first map
	failures                atomic.Int64 // unexpected session ends, failed reopens or registrations
	mu                      sync.Mutex
	firstFailure            string
}

// soakSession is one streaming map session and whether the soak closed it
// on purpose.
type soakSession struct {
	s      *tsp.MapSession
	closed atomic.Bool
}

func (k *soaker) run(ctx context.Context, dur time.Duration) ([]Row, error) {
	nodes := make([]*simNode, soakNodes)
	for i := range nodes {
		nodes[i] = k.f.newNode(i)
	}
	if err := parallel(16, nodes, func(sn *simNode) error { return k.f.register(ctx, sn) }); err != nil {
		return nil, fmt.Errorf("registering: %w", err)
	}
	sessions := make([]*soakSession, len(nodes))
	for i, sn := range nodes {
		ss, err := k.open(ctx, sn)
		if err != nil {
			return nil, fmt.Errorf("opening map session of %s: %w", sn.hostinfo.Hostname, err)
		}
		sessions[i] = ss
	}
	defer func() {
		for _, ss := range sessions {
			k.close(ss)
		}
	}()
	if err := k.awaitFirstMaps(ctx, int64(len(nodes)), time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // let the server settle after N sessions opened
	t0 := time.Now()
	first, err := k.sample(ctx, 0)
	if err != nil {
		return nil, err
	}

	loops, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var smu sync.Mutex // guards sessions while loops run
	for i, sn := range nodes {
		wg.Go(func() {
			offset := time.Duration(i) * soakPeriod / time.Duration(len(nodes))
			smu.Lock()
			cur := sessions[i]
			smu.Unlock()
			k.loop(ctx, loops.Done(), sn, cur, offset, func(ss *soakSession) { smu.Lock(); sessions[i] = ss; smu.Unlock() })
		})
	}
	series, err := k.during(ctx, t0, dur, first)
	stopLoops()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	// The end as the start: every session open and past its first map,
	// then the same pause.
	if err := k.awaitFirstMaps(ctx, k.opens.Load(), time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)
	last, err := k.sample(ctx, time.Since(t0))
	if err != nil {
		return nil, err
	}
	return []Row{k.row(dur, append(series, last))}, nil
}

// during samples the server every tenth of the soak (at least every
// soakPeriod) until dur after t0; samples are taken while nodes reconnect.
func (k *soaker) during(ctx context.Context, t0 time.Time, dur time.Duration, first soakSample) ([]soakSample, error) {
	series := []soakSample{first}
	every := max(dur/10, soakPeriod)
	for next := every; ; next += every {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(next, dur) - time.Since(t0)):
		}
		if next >= dur {
			return series, nil
		}
		smp, err := k.sample(ctx, time.Since(t0))
		if err != nil {
			return nil, err
		}
		series = append(series, smp)
	}
}

// loop reconnects sn's session cur every soakPeriod, the first time
// after offset, until stop is closed; set records the session it holds
// now. A reconnect under way when stop closes completes, so that the
// soak ends with every session open.
func (k *soaker) loop(ctx context.Context, stop <-chan struct{}, sn *simNode, cur *soakSession, offset time.Duration, set func(*soakSession)) {
	t := time.NewTimer(offset)
	defer t.Stop()
	for cycle := 1; ; cycle++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(soakPeriod)
		k.close(cur)
		if (cycle+sn.idx)%soakReregister == 0 {
			// A new Noise connection and registration with the same
			// keys, then a map update with endpoints (fleet.register).
			sn.client.Close()
			if err := k.f.register(ctx, sn); err != nil {
				k.fail(ctx, fmt.Errorf("re-registering %s: %w", sn.hostinfo.Hostname, err))
				continue
			}
			k.reregisters.Add(1)
		}
		ss, err := k.open(ctx, sn)
		if err != nil {
			k.fail(ctx, fmt.Errorf("reopening map session of %s: %w", sn.hostinfo.Hostname, err))
			continue
		}
		k.reconnects.Add(1)
		cur = ss
		set(ss)
	}
}

// open opens a streaming map session for sn and reads it in a goroutine
// until it ends; an end the soak did not cause is a failure.
func (k *soaker) open(ctx context.Context, sn *simNode) (*soakSession, error) {
	s, err := sn.client.Map(ctx, tsp.MapOpts{NodeKey: sn.nodeKey, Hostinfo: sn.hostinfo.Clone(), Stream: true})
	if err != nil {
		return nil, err
	}
	ss := &soakSession{s: s}
	k.opens.Add(1)
	go func() {
		for first := true; ; first = false {
			if _, err := s.Next(); err != nil {
				if !ss.closed.Load() {
					k.fail(ctx, fmt.Errorf("map session of %s ended: %w", sn.hostinfo.Hostname, err))
				}
				return
			}
			if first {
				k.firstMaps.Add(1)
			}
		}
	}()
	return ss, nil
}

func (k *soaker) close(ss *soakSession) {
	if ss != nil && ss.closed.CompareAndSwap(false, true) {
		ss.s.Close()
	}
}

// fail counts a failure, unless the soak is ending.
func (k *soaker) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if k.failures.Add(1) == 1 {
		k.mu.Lock()
		k.firstFailure = err.Error()
		k.mu.Unlock()
	}
}

func (k *soaker) awaitFirstMaps(ctx context.Context, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for k.firstMaps.Load() < want {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d map sessions got their first map within %v", k.firstMaps.Load(), want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// sample reads the server's state.
func (k *soaker) sample(ctx context.Context, at time.Duration) (soakSample, error) {
	pid := k.s.pid()
	smp := soakSample{at: at}
	var err error
	if smp.mem, err = readMemSnapshot(ctx, pid, k.s.pprofAddr, true); err != nil {
		return smp, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return smp, err
	}
	smp.fds = len(fds)
	if smp.threads, err = procThreads(pid); err != nil {
		return smp, err
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(k.s.dbPath() + suffix); err == nil {
			smp.storeBytes += fi.Size()
		}
	}
	if smp.cpu, err = cpuTime(pid); err != nil {
		return smp, err
	}
	return smp, nil
}

// procThreads returns the Threads field of /proc/PID/status.
func procThreads(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no Threads", pid)
}

// row turns the series into the table's row: each figure at the end
// against the start, lower is better (growth is the point).
func (k *soaker) row(dur time.Duration, series []soakSample) Row {
	a, z := series[0], series[len(series)-1]
	grow := func(name, unit string, f func(soakSample) float64) Metric {
		m := Metric{Name: name + " at the end", Unit: unit, Value: f(z), Better: "lower"}
		return m.withRef("start", f(a))
	}
	heap := func(s soakSample) float64 { return mib(s.mem.stats["HeapInuse"]) }
	store := func(s soakSample) float64 { return float64(s.storeBytes) / 1024 }
	cpuShare := 100 * secs(z.cpu-a.cpu) / secs(z.at-a.at)
	row := Row{ID: "7", Name: "soak", Case: fmt.Sprintf("%d nodes, %v", soakNodes, dur),
		Metrics: []Metric{
			grow("server RSS", "MiB", func(s soakSample) float64 { return mib(s.mem.rss) }),
			grow("live heap (HeapInuse after GC)", "MiB", heap),
			grow("goroutines", "count", func(s soakSample) float64 { return float64(s.mem.goroutines) }),
			grow("OS threads", "count", func(s soakSample) float64 { return float64(s.threads) }),
			grow("open file descriptors", "count", func(s soakSample) float64 { return float64(s.fds) }),
			grow("store size (SQLite file + WAL)", "KiB", store),
			{Name: "map sessions reopened", Unit: "count", Value: float64(k.reconnects.Load())},
			{Name: "re-registrations (new Noise connection)", Unit: "count", Value: float64(k.reregisters.Load())},
			{Name: "server CPU", Unit: "% of a core", Value: cpuShare},
			{Name: "failures (sessions ended by the server, reopens or registrations failed)", Unit: "count", Value: float64(k.failures.Load()), Better: "lower"},
		},
	}
	row.Notes = append(row.Notes, fmt.Sprintf("every node closes and reopens its streaming map session every %v (staggered), and every %d-th time first drops its Noise connection and registers again with the same keys; \"start\" is after all %d sessions opened, \"end\" with the same sessions open. The reference is the start: a ratio above 1 is growth",
		soakPeriod, soakReregister, soakNodes))
	var pts []string
	for _, s := range series {
		pts = append(pts, fmt.Sprintf("%v: RSS %.1f MiB, heap %.1f MiB, %d goroutines, %d fds, store %.0f KiB",
			s.at.Round(time.Second), mib(s.mem.rss), heap(s), s.mem.goroutines, s.fds, store(s)))
	}
	row.Notes = append(row.Notes, "over time: "+strings.Join(pts, "; "))
	if len(series) >= 3 {
		// The first rounds of reconnects and re-registrations warm
		// caches and buffers; growth after them is what a leak looks
		// like.
		w := series[1]
		row.Notes = append(row.Notes, fmt.Sprintf("from the first sample after reconnects began (%v) to the end: RSS %.1f → %.1f MiB (×%.2f), heap %.1f → %.1f MiB (×%.2f), goroutines %d → %d",
			w.at.Round(time.Second), mib(w.mem.rss), mib(z.mem.rss), float64(z.mem.rss)/float64(w.mem.rss),
			heap(w), heap(z), heap(z)/heap(w), w.mem.goroutines, z.mem.goroutines))
	}
	if k.firstFailure != "" {
		row.Notes = append(row.Notes, "first failure: "+k.firstFailure)
	}
	return row
}
