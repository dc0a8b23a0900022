package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"homenet/control"
	"homenet/control/store"

	"tailscale.com/control/tsp"
)

// Row 6: crash. Simulated nodes (row 3's fleet) register concurrently
// with a reusable key while the bench kills `homenet serve` with SIGKILL
// at random moments and restarts it; a node whose registration failed
// retries until it gets its answer. A registration the server acknowledged
// (RegisterResponse with MachineAuthorized) must survive every crash: the
// store commits with synchronous=FULL before control answers. After a
// last kill -9 the row checks the store: every acknowledged node listed
// by `homenet nodes list --json`, no node twice, and SQLite's own
// PRAGMA integrity_check, both on a copy of the crash image and on the
// store after the restarted server stopped cleanly.

// crashPlan is one crash run's size.
type crashPlan struct {
	n           int // registrations
	kills       int // kill -9 during them (plus one after)
	concurrency int
}

// crashResult is what one crash run saw.
type crashResult struct {
	acked, attempts, listed, missing, duplicates int
	restarts                                     []time.Duration // kill -9 → restart → serving
	integrity                                    map[string][]string
	imageWAL                                     int64 // bytes of -wal in the crash image
}

func rowCrash(e *env) ([]Row, error) {
	plan := crashPlan{n: 1000, kills: 10, concurrency: 16}
	if e.opts.short {
		plan = crashPlan{n: 50, kills: 3, concurrency: 16}
	}
	e.command("homenet serve --config FILE   # control on 127.0.0.1, killed with SIGKILL during registrations (row 6)")
	e.command("homenet nodes list --json --config FILE   # after the crashes (row 6)")
	res, err := crashRun(e, plan)
	if err != nil {
		return nil, err
	}
	problems := 0
	var checks []string
	for _, name := range sortedKeys(res.integrity) {
		r := res.integrity[name]
		if !slices.Equal(r, []string{"ok"}) {
			problems += len(r)
		}
		checks = append(checks, fmt.Sprintf("%s: %q", name, r))
	}
	lower := func(name, unit string, v float64) Metric {
		return Metric{Name: name, Unit: unit, Value: v, Better: "lower"}
	}
	row := Row{ID: "6", Name: "crash", Case: fmt.Sprintf("%d registrations, kill -9", plan.n),
		Metrics: []Metric{
			{Name: "kill -9 of homenet serve", Unit: "count", Value: float64(len(res.restarts))},
			{Name: "registrations acknowledged", Unit: "count", Value: float64(res.acked)},
			lower("acknowledged but missing after restart", "count", float64(res.missing)),
			lower("nodes listed twice", "count", float64(res.duplicates)),
			lower("integrity_check problems", "count", float64(problems)),
			lower("kill → serving again, p50", "ms", ms(median(res.restarts))),
			lower("kill → serving again, max", "ms", ms(slices.Max(res.restarts))),
		},
		Notes: []string{
			fmt.Sprintf("%d registrations, %d at a time, %d attempts in all (failed ones retried with the same keys once the server was back); %d nodes listed afterwards",
				plan.n, plan.concurrency, res.attempts, res.listed),
			fmt.Sprintf("PRAGMA integrity_check, %v; the crash image had a %d KiB WAL to recover", checks, res.imageWAL/1024),
			"kill → serving: from SIGKILL through restart until control answers /key on loopback (SQLite recovers its WAL at open)",
		},
	}
	return []Row{row}, nil
}

// crashRun runs plan against a fresh server.
func crashRun(e *env, plan crashPlan) (crashResult, error) {
	res := crashResult{integrity: map[string][]string{}}
	s, err := newLoopServer(e, "crash", false, false)
	if err != nil {
		return res, err
	}
	if _, err := s.start(); err != nil {
		return res, err
	}
	defer s.stop()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	authKey, err := s.reusableKey(ctx)
	if err != nil {
		return res, err
	}
	serverKey, err := tsp.DiscoverServerKey(ctx, s.url)
	if err != nil {
		return res, err
	}
	f := &fleet{url: s.url, serverKey: serverKey, authKey: authKey, errc: make(chan error, 1)}
	nodes := make([]*simNode, plan.n)
	for i := range nodes {
		nodes[i] = f.newNode(i)
	}

	var acked, attempts atomic.Int64
	k := &killer{s: s}
	killerDone := make(chan error, 1)
	go func() { killerDone <- k.run(ctx, plan, &acked) }()
	regErr := parallel(plan.concurrency, nodes, func(sn *simNode) error {
		return registerAcked(ctx, f, sn, &acked, &attempts)
	})
	cancel()
	kerr := <-killerDone
	if regErr != nil {
		return res, fmt.Errorf("registering: %w", regErr)
	}
	if kerr != nil {
		return res, kerr
	}
	res.acked, res.attempts = int(acked.Load()), int(attempts.Load())

	// A last crash with every registration acknowledged: check a copy of
	// its image as it lies on disk, then restart on it.
	if err := s.kill(); err != nil {
		return res, err
	}
	t0 := time.Now()
	image := filepath.Join(s.dir, "crash-image")
	if res.imageWAL, err = copyStore(s.dbPath(), image); err != nil {
		return res, err
	}
	if _, err := s.start(); err != nil {
		return res, fmt.Errorf("restart after the last kill: %w", err)
	}
	res.restarts = append(k.restarts, time.Since(t0)) // includes the copy: an upper bound
	if res.integrity["crash image (copy after the last kill -9)"], err = store.IntegrityCheck(e.ctx, filepath.Join(image, "homenet.db")); err != nil {
		return res, err
	}
	listed, err := s.nodes(e.ctx)
	if err != nil {
		return res, err
	}
	res.listed = len(listed)
	res.missing, res.duplicates = missingNodes(nodes, listed)
	s.stop()
	if res.integrity["store after a clean stop (read-only)"], err = store.IntegrityCheck(e.ctx, s.dbPath()); err != nil {
		return res, err
	}
	return res, nil
}

// killer kills the server at random moments during the registrations and
// restarts it at once.
type killer struct {
	s        *loopServer
	restarts []time.Duration
}

// run kills plan.kills times: the k-th kill comes once a random number of
// registrations in the k-th of plan.kills equal slices has been
// acknowledged, plus a random 0–30 ms, so kills spread over the whole run
// and land at any point of a registration in flight.
func (k *killer) run(ctx context.Context, plan crashPlan, acked *atomic.Int64) error {
	for i := range plan.kills {
		threshold := int64((float64(i) + rand.Float64()) * float64(plan.n) / float64(plan.kills))
		for acked.Load() < max(1, threshold) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Millisecond):
			}
		}
		time.Sleep(rand.N(30 * time.Millisecond))
		t0 := time.Now()
		if err := k.s.kill(); err != nil {
			return err
		}
		if _, err := k.s.start(); err != nil {
			return fmt.Errorf("restart after kill %d: %w", i+1, err)
		}
		k.restarts = append(k.restarts, time.Since(t0))
	}
	return nil
}

// registerAcked registers sn until the server acknowledges it: each
// attempt is a new Noise connection, as a client's after its server went
// away. A refusal (an answer without MachineAuthorized) is an error.
func registerAcked(ctx context.Context, f *fleet, sn *simNode, acked, attempts *atomic.Int64) error {
	for try := 1; ; try++ {
		attempts.Add(1)
		ok, err := registerOnce(ctx, f, sn)
		if ok {
			acked.Add(1)
			return nil
		}
		if err == nil {
			return fmt.Errorf("%s: registration refused (no MachineAuthorized)", sn.hostinfo.Hostname)
		}
		if try >= 500 || ctx.Err() != nil {
			return fmt.Errorf("%s: no acknowledgement after %d attempts: %w", sn.hostinfo.Hostname, try, err)
		}
		time.Sleep(20*time.Millisecond + rand.N(30*time.Millisecond))
	}
}

// registerOnce makes one registration attempt. ok means acknowledged; a
// nil error without ok means the server answered and refused.
func registerOnce(ctx context.Context, f *fleet, sn *simNode) (ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := tsp.NewClient(tsp.ClientOpts{ServerURL: f.url, MachineKey: sn.machine})
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetControlPublicKey(f.serverKey)
	rr, err := c.Register(ctx, tsp.RegisterOpts{NodeKey: sn.nodeKey, Hostinfo: sn.hostinfo.Clone(), AuthKey: f.authKey})
	if err != nil {
		return false, err
	}
	return rr.MachineAuthorized, nil
}

// missingNodes counts the nodes (all acknowledged) whose node key is not
// listed, and the hostnames listed more than once.
func missingNodes(nodes []*simNode, listed []control.NodeInfo) (missing, duplicates int) {
	keys := map[string]bool{}
	names := map[string]int{}
	for _, n := range listed {
		keys[n.NodeKey] = true
		names[n.Hostname]++
	}
	for _, sn := range nodes {
		if !keys[sn.nodeKey.Public().String()] {
			missing++
		}
	}
	for _, c := range names {
		duplicates += c - 1
	}
	return missing, duplicates
}

// copyStore copies the SQLite file at db and its -wal (when there is one)
// into dir, as they lie on disk, and returns the size of the -wal. The
// -shm is left behind: SQLite rebuilds it from the WAL, as after a power
// cut.
func copyStore(db, dir string) (walBytes int64, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	if err := copyFile(db, filepath.Join(dir, filepath.Base(db))); err != nil {
		return 0, err
	}
	err = copyFile(db+"-wal", filepath.Join(dir, filepath.Base(db)+"-wal"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(db + "-wal")
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
