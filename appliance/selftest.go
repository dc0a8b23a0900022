package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"homenet/control"
	"homenet/control/store"
	"homenet/relay"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/net/stun"
	"tailscale.com/types/key"
)

// SelftestStep is the outcome of one check of Selftest.
type SelftestStep struct {
	Name   string        `json:"name"`   // store, control, relay
	Detail string        `json:"detail"` // what was checked, or what failed
	Took   time.Duration `json:"took_ns"`
	Err    error         `json:"-"`
}

// selftestTimeout bounds each step. The slowest platform is a MIPS router
// (or qemu-user emulating one), where SQLite runs in wazero's interpreter.
const selftestTimeout = 2 * time.Minute

// Selftest checks that this binary works on this machine without touching
// any configuration, state or public port: it opens a throwaway store in a
// temporary directory under dir (os.TempDir when empty) and migrates it,
// starts a control server on it, which makes and stores its keys, creates a
// pre-auth key, and starts the relay on loopback, where two registered
// nodes exchange a packet over DERP, an unregistered one is refused, and
// STUN answers. report is called after each step; Selftest returns the
// first step's error.
func Selftest(ctx context.Context, dir string, report func(SelftestStep)) error {
	tmp, err := os.MkdirTemp(dir, "homenet-selftest-")
	if err != nil {
		return fmt.Errorf("selftest: %w", err)
	}
	defer os.RemoveAll(tmp)

	st := &selftest{dir: tmp, logger: slog.New(slog.DiscardHandler)}
	defer st.close()
	for _, step := range []struct {
		name string
		run  func(context.Context) (string, error)
	}{
		{"store", st.store},
		{"control", st.control},
		{"relay", st.relay},
	} {
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, selftestTimeout)
		detail, err := step.run(sctx)
		cancel()
		if err != nil {
			detail = err.Error()
			err = fmt.Errorf("selftest %s: %w", step.name, err)
		}
		report(SelftestStep{Name: step.name, Detail: detail, Took: time.Since(start), Err: err})
		if err != nil {
			return err
		}
	}
	return nil
}

// selftest is the state the steps hand on.
type selftest struct {
	dir    string
	logger *slog.Logger
	db     *store.DB
	srv    *control.Server
	nodes  [2]key.NodePrivate // registered in the store
}

func (st *selftest) close() {
	if st.srv != nil {
		st.srv.Close()
	}
	if st.db != nil {
		st.db.Close()
	}
}

// store creates a database (running every migration), writes two nodes and
// a setting, and reads them back after reopening it.
func (st *selftest) store(ctx context.Context) (string, error) {
	path := filepath.Join(st.dir, "homenet.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		return "", err
	}
	for i := range st.nodes {
		st.nodes[i] = key.NewNode()
		n := &store.Node{
			MachineKey: key.NewMachine().Public(),
			NodeKey:    st.nodes[i].Public(),
			Name:       fmt.Sprintf("selftest-%d", i+1),
			IPv4:       netip.AddrFrom4([4]byte{100, 86, 0, byte(i + 1)}),
			Created:    time.Now(),
		}
		if err := db.PutNode(ctx, n); err != nil {
			db.Close()
			return "", err
		}
	}
	const name, value = "selftest", "ok"
	if err := db.SetSetting(ctx, name, value); err != nil {
		db.Close()
		return "", err
	}
	if err := db.Close(); err != nil {
		return "", err
	}

	// Reopening finds the schema current: no migration runs again.
	if st.db, err = store.Open(ctx, path); err != nil {
		return "", fmt.Errorf("reopening: %w", err)
	}
	got, ok, err := st.db.Setting(ctx, name)
	if err != nil {
		return "", err
	}
	if !ok || got != value {
		return "", fmt.Errorf("setting %q read back as %q (present %v), want %q", name, got, ok, value)
	}
	nodes, err := st.db.Nodes(ctx)
	if err != nil {
		return "", err
	}
	if len(nodes) != len(st.nodes) {
		return "", fmt.Errorf("read back %d nodes, want %d", len(nodes), len(st.nodes))
	}
	return fmt.Sprintf("created, migrated and reopened an SQLite store (%s); nodes and settings read back", sqliteDriver()), nil
}

// sqliteDriver names the SQLite implementation linked into this binary.
func sqliteDriver() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown driver"
	}
	driver := "unknown driver"
	for _, m := range bi.Deps {
		switch m.Path {
		case "github.com/ncruces/go-sqlite3":
			return m.Path + " " + m.Version + ", Wasm"
		case "modernc.org/sqlite":
			driver = m.Path + " " + m.Version
		}
	}
	return driver
}

// control starts a control server on the store, which creates its Noise
// key, and makes a pre-auth key; it also seals a message between two new
// machine keys.
func (st *selftest) control(ctx context.Context) (string, error) {
	srv, err := control.New(ctx, control.Config{
		ServerURL: "http://127.0.0.1:8080",
		Prefix4:   DefaultPrefix4,
		Store:     st.db,
		Version:   Version,
		Logger:    st.logger,
	})
	if err != nil {
		return "", err
	}
	st.srv = srv
	info, secret, err := srv.CreateAuthKey(ctx, control.AuthKeyOptions{Tags: []string{GatewayTag}})
	if err != nil {
		return "", err
	}
	keys, err := srv.AuthKeys(ctx)
	if err != nil {
		return "", err
	}
	if len(keys) != 1 || keys[0].Prefix != info.Prefix || !keys[0].Valid || secret == "" {
		return "", fmt.Errorf("pre-auth key %s not listed as valid: %+v", info.Prefix, keys)
	}
	for _, n := range st.nodes {
		if !srv.Admit(n.Public()) {
			return "", fmt.Errorf("control does not know stored node %v", n.Public().ShortString())
		}
	}

	a, b := key.NewMachine(), key.NewMachine()
	msg := []byte("homenet selftest")
	if got, ok := b.OpenFrom(a.Public(), a.SealTo(b.Public(), msg)); !ok || !bytes.Equal(got, msg) {
		return "", errors.New("a message sealed between two machine keys did not open")
	}
	return "control server up: Noise key made and stored, pre-auth key created, stored nodes loaded; machine keys seal and open", nil
}

// relay starts the relay on loopback with control's admission, passes a
// packet between the two registered nodes, checks that a stranger is
// refused and that STUN answers, and stops the relay.
func (st *selftest) relay(ctx context.Context) (string, error) {
	rl, err := relay.Start(ctx, relay.Config{
		Listen:     "127.0.0.1:0",
		STUNListen: "127.0.0.1:0",
		Hostname:   "127.0.0.1",
		StateDir:   filepath.Join(st.dir, "relay"),
	}, st.srv.Admit, st.logger)
	if err != nil {
		return "", err
	}
	defer rl.Close()
	region := rl.Region()
	node := region.Nodes[0]

	// DERP over TLS, the self-signed certificate pinned by the region.
	var clients [2]*derphttp.Client
	for i, k := range st.nodes {
		c := derphttp.NewRegionClient(k, func(string, ...any) {}, netmon.NewStatic(), rl.Region)
		defer c.Close()
		if err := derpConnect(ctx, c); err != nil {
			return "", fmt.Errorf("node %d: %w", i+1, err)
		}
		clients[i] = c
	}
	payload := []byte("homenet selftest packet")
	if err := clients[0].Send(st.nodes[1].Public(), payload); err != nil {
		return "", fmt.Errorf("DERP send: %w", err)
	}
	if err := derpRecvPacket(ctx, clients[1], st.nodes[0].Public(), payload); err != nil {
		return "", err
	}

	stranger := derphttp.NewRegionClient(key.NewNode(), func(string, ...any) {}, netmon.NewStatic(), rl.Region)
	defer stranger.Close()
	if err := derpConnect(ctx, stranger); err == nil {
		return "", errors.New("the relay admitted a node control does not know")
	}

	mapped, err := stunRoundTrip(ctx, net.JoinHostPort(node.IPv4, fmt.Sprint(node.STUNPort)))
	if err != nil {
		return "", err
	}
	if err := rl.Close(); err != nil {
		return "", fmt.Errorf("stopping: %w", err)
	}
	return fmt.Sprintf("relay on 127.0.0.1:%d: DERP packet relayed between registered nodes, stranger refused; STUN on port %d saw %v; stopped",
		node.DERPPort, node.STUNPort, mapped), nil
}

// derpConnect connects c and waits for the server's first message, which
// it sends only to admitted clients.
func derpConnect(ctx context.Context, c *derphttp.Client) error {
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("DERP connect: %w", err)
	}
	m, err := derpRecv(ctx, c)
	if err != nil {
		return fmt.Errorf("DERP: no server info after connecting (refused?): %w", err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		return fmt.Errorf("DERP: first message is %T, want server info", m)
	}
	return nil
}

// derpRecvPacket waits for the packet from src with payload.
func derpRecvPacket(ctx context.Context, c *derphttp.Client, src key.NodePublic, payload []byte) error {
	for {
		m, err := derpRecv(ctx, c)
		if err != nil {
			return fmt.Errorf("DERP receive: %w", err)
		}
		if p, ok := m.(derp.ReceivedPacket); ok {
			if p.Source != src || !bytes.Equal(p.Data, payload) {
				return fmt.Errorf("DERP: got packet %q from %v, want %q from %v", p.Data, p.Source.ShortString(), payload, src.ShortString())
			}
			return nil
		}
	}
}

// derpRecv returns c's next message, or ctx's error (closing c).
func derpRecv(ctx context.Context, c *derphttp.Client) (derp.ReceivedMessage, error) {
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
	case r := <-ch:
		return r.m, r.err
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// stunRoundTrip sends a STUN binding request to addr and returns the
// address the server saw.
func stunRoundTrip(ctx context.Context, addr string) (netip.AddrPort, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("STUN: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	tx := stun.NewTxID()
	buf := make([]byte, 1500)
	// UDP may drop on a busy host: try a few times.
	for try := 0; ; try++ {
		if _, err := conn.Write(stun.Request(tx)); err != nil {
			return netip.AddrPort{}, fmt.Errorf("STUN send: %w", err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && try < 4 && ctx.Err() == nil {
				continue
			}
			return netip.AddrPort{}, fmt.Errorf("STUN: no answer: %w", err)
		}
		gotTx, mapped, err := stun.ParseResponse(buf[:n])
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("STUN answer: %w", err)
		}
		if gotTx != tx {
			continue
		}
		return mapped, nil
	}
}
