package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// testTimeout bounds every wait in these tests; they all run on loopback.
const testTimeout = 10 * time.Second

// registry is a concurrency-safe set of admitted node keys.
type registry struct {
	mu   sync.Mutex
	keys map[key.NodePublic]bool
}

func newRegistry(keys ...key.NodePublic) *registry {
	g := &registry{keys: map[key.NodePublic]bool{}}
	for _, k := range keys {
		g.keys[k] = true
	}
	return g
}

func (g *registry) admit(k key.NodePublic) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.keys[k]
}

func (g *registry) set(k key.NodePublic, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys[k] = ok
}

// testLogWriter sends log lines to t.Log until the test's cleanups have run,
// then drops them (background goroutines may outlive a test by a little).
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// newTestLogger returns a debug-level logger writing to t. Call it before
// registering other cleanups, so that it stops last.
func newTestLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startRelay starts a relay on loopback with cfg's empty fields defaulted and
// closes it when the test ends.
func startRelay(t testing.TB, logger *slog.Logger, cfg Config, admit func(key.NodePublic) bool) *Relay {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "127.0.0.1"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	r, err := Start(context.Background(), cfg, admit, logger)
	if err != nil {
		t.Fatalf("Start(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newClient returns a DERP region client for region, closed when the test ends.
func newClient(t testing.TB, logger *slog.Logger, priv key.NodePrivate, region *tailcfg.DERPRegion) *derphttp.Client {
	t.Helper()
	c := derphttp.NewRegionClient(priv, logfAt(logger.With("client", priv.Public().ShortString()), slog.LevelDebug),
		netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	t.Cleanup(func() { c.Close() })
	return c
}

// errRecvTimeout is what recvTimeout returns when nothing arrived in time.
var errRecvTimeout = errors.New("no DERP message before the timeout")

// recvTimeout returns c's next message, or errRecvTimeout after d (closing c
// to unblock its Recv).
func recvTimeout(c *derphttp.Client, d time.Duration) (derp.ReceivedMessage, error) {
	type result struct {
		m   derp.ReceivedMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := c.Recv()
		ch <- result{m, err}
	}()
	select {
	case res := <-ch:
		return res.m, res.err
	case <-time.After(d):
		c.Close()
		return nil, errRecvTimeout
	}
}

// connectAdmitted connects c and fails the test unless the relay admits it:
// the server sends ServerInfo only after admission succeeded.
func connectAdmitted(t testing.TB, c *derphttp.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	m, err := recvTimeout(c, testTimeout)
	if err != nil {
		t.Fatalf("first Recv after Connect: %v (want ServerInfo: was the node admitted?)", err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Fatalf("first message = %T, want derp.ServerInfoMessage", m)
	}
}

// recvPacket returns the next data packet c receives, skipping control
// messages, or fails the test after testTimeout.
func recvPacket(t testing.TB, c *derphttp.Client) derp.ReceivedPacket {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		m, err := recvTimeout(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a packet: %v", err)
		}
		if p, ok := m.(derp.ReceivedPacket); ok {
			return p
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
