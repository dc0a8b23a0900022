package control

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/control/store"

	"tailscale.com/control/tsp"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// testServer is a control server on a loopback httptest server, backed by
// a real store in a temp dir.
type testServer struct {
	*Server
	url   string
	db    *store.DB
	path  string
	close func()
}

func newTestServer(t testing.TB, prefix string) *testServer {
	t.Helper()
	return openTestServer(t, filepath.Join(t.TempDir(), "homenet.db"), prefix)
}

// openTestServer starts a server on dbPath; mods change its Config first.
func openTestServer(t testing.TB, dbPath, prefix string, mods ...func(*Config)) *testServer {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Start()
	cfg := Config{
		ServerURL: hs.URL,
		Prefix4:   netip.MustParsePrefix(prefix),
		Store:     db,
		Logger:    slog.New(slog.DiscardHandler),
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = s.Handler()
	ts := &testServer{Server: s, url: hs.URL, db: db, path: dbPath}
	ts.close = func() {
		hs.CloseClientConnections()
		hs.Close()
		s.Close()
		db.Close()
	}
	t.Cleanup(ts.close)
	return ts
}

// testNode is a tsp client with its keys.
type testNode struct {
	c       *tsp.Client
	mk      key.MachinePrivate
	nk      key.NodePrivate
	name    string
	session *tsp.MapSession
	peers   map[tailcfg.NodeID]*tailcfg.Node // as a client would hold them
}

func newTestNode(t *testing.T, url, name string) *testNode {
	t.Helper()
	mk := key.NewMachine()
	c, err := tsp.NewClient(tsp.ClientOpts{ServerURL: url, MachineKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testNode{c: c, mk: mk, nk: key.NewNode(), name: name}
}

func (n *testNode) register(t *testing.T, authKey string) *tailcfg.RegisterResponse {
	t.Helper()
	res, err := n.tryRegister(authKey)
	if err != nil {
		t.Fatalf("register %s: %v", n.name, err)
	}
	return res
}

func (n *testNode) tryRegister(authKey string) (*tailcfg.RegisterResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.c.Register(ctx, tsp.RegisterOpts{
		NodeKey:  n.nk,
		AuthKey:  authKey,
		Hostinfo: &tailcfg.Hostinfo{Hostname: n.name, OS: "linux"},
	})
}

func (n *testNode) stream(t *testing.T) *tailcfg.MapResponse {
	t.Helper()
	s, err := n.c.Map(context.Background(), tsp.MapOpts{NodeKey: n.nk, Stream: true})
	if err != nil {
		t.Fatalf("map %s: %v", n.name, err)
	}
	t.Cleanup(func() { s.Close() })
	n.session = s
	first, err := s.Next()
	if err != nil {
		t.Fatalf("first map message for %s: %v", n.name, err)
	}
	n.peers = map[tailcfg.NodeID]*tailcfg.Node{}
	for _, p := range first.Peers {
		n.peers[p.ID] = p.Clone()
	}
	return first
}

// apply updates n.peers with a delta the way a client does.
func (n *testNode) apply(t *testing.T, res *tailcfg.MapResponse) {
	t.Helper()
	for _, p := range res.PeersChanged {
		n.peers[p.ID] = p.Clone()
	}
	for _, id := range res.PeersRemoved {
		delete(n.peers, id)
	}
	for _, pc := range res.PeersChangedPatch {
		p := n.peers[pc.NodeID]
		if p == nil {
			t.Fatalf("%s: patch for unknown peer %d", n.name, pc.NodeID)
		}
		if pc.DERPRegion != 0 {
			p.HomeDERP = pc.DERPRegion
		}
		if pc.Endpoints != nil {
			p.Endpoints = pc.Endpoints
		}
		if pc.DiscoKey != nil {
			p.DiscoKey = *pc.DiscoKey
		}
		if pc.Online != nil {
			p.Online = pc.Online
		}
		if pc.LastSeen != nil {
			p.LastSeen = pc.LastSeen
		}
	}
}

// next returns the next non-keep-alive message, failing after timeout.
func (n *testNode) next(t *testing.T, timeout time.Duration) *tailcfg.MapResponse {
	t.Helper()
	type result struct {
		res *tailcfg.MapResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		for {
			res, err := n.session.Next()
			if err != nil || !res.KeepAlive {
				ch <- result{res, err}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: reading map: %v", n.name, r.err)
		}
		n.apply(t, r.res)
		return r.res
	case <-time.After(timeout):
		t.Fatalf("%s: no map message within %v", n.name, timeout)
	}
	return nil
}

func mustAuthKey(t *testing.T, s *Server, opts AuthKeyOptions) string {
	t.Helper()
	_, k, err := s.CreateAuthKey(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJoinStreamAndDelete(t *testing.T) {
	for _, prefix := range []string{"100.86.0.0/16", "10.77.0.0/16"} {
		t.Run(prefix, func(t *testing.T) {
			s := newTestServer(t, prefix)
			ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
			a, b := newTestNode(t, s.url, "phone-a"), newTestNode(t, s.url, "phone-b")
			for _, n := range []*testNode{a, b} {
				if res := n.register(t, ak); !res.MachineAuthorized || res.Error != "" {
					t.Fatalf("register %s: %+v", n.name, res)
				}
			}
			first := a.stream(t)
			self := first.Node
			if self == nil || len(self.Addresses) != 2 {
				t.Fatalf("first map has no self node with two addresses: %+v", self)
			}
			v4, v6 := self.Addresses[0].Addr(), self.Addresses[1].Addr()
			if !netip.MustParsePrefix(prefix).Contains(v4) {
				t.Errorf("self IPv4 %v not in %v", v4, prefix)
			}
			if !Prefix6.Contains(v6) {
				t.Errorf("self IPv6 %v not in %v", v6, Prefix6)
			}
			if _, ok := self.CapMap[tailcfg.NodeAttrDisableLinuxCGNATDropRule]; !ok {
				t.Errorf("self CapMap lacks %s: %v", tailcfg.NodeAttrDisableLinuxCGNATDropRule, self.CapMap)
			}
			if len(first.Peers) != 1 || first.Peers[0].Key != b.nk.Public() {
				t.Fatalf("first map peers = %v, want phone-b", first.Peers)
			}

			// b comes online and publishes its disco key: a sees both.
			b.stream(t)
			disco := key.NewDisco().Public()
			if err := b.c.SendMapUpdate(context.Background(), tsp.SendMapUpdateOpts{NodeKey: b.nk, DiscoKey: disco}); err != nil {
				t.Fatal(err)
			}
			waitPeer(t, a, func(p *tailcfg.Node) bool {
				return p.Key == b.nk.Public() && p.DiscoKey == disco && p.Online != nil && *p.Online
			})

			// Deleting b removes it from a's netmap and from the relay's view.
			id := first.Peers[0].ID
			start := time.Now()
			if err := s.DeleteNode(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			for {
				res := a.next(t, 5*time.Second)
				if len(res.PeersRemoved) == 1 && res.PeersRemoved[0] == id {
					break
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("peer removal took %v", d)
			}
			if s.Admit(b.nk.Public()) {
				t.Error("deleted node still admitted to the relay")
			}
			if !s.Admit(a.nk.Public()) {
				t.Error("registered node not admitted to the relay")
			}
		})
	}
}

// waitPeer reads deltas until a peer matches ok.
func waitPeer(t *testing.T, n *testNode, ok func(*tailcfg.Node) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n.next(t, time.Until(deadline))
		for _, p := range n.peers {
			if ok(p) {
				return
			}
		}
	}
	t.Fatalf("%s: no matching peer change", n.name)
}

func TestAuthKeyRules(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	oneOff := mustAuthKey(t, s.Server, AuthKeyOptions{})
	short := mustAuthKey(t, s.Server, AuthKeyOptions{Expiry: time.Millisecond})
	revoked := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	keys, _ := s.AuthKeys(context.Background())
	if err := s.ExpireAuthKey(context.Background(), keys[2].ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)

	tests := []struct {
		name, key, wantErr string
	}{
		{"one-off first use", oneOff, ""},
		{"one-off second use", oneOff, "already used"},
		{"expired", short, "expired"},
		{"revoked", revoked, "expired"},
		{"wrong secret", oneOff[:len(oneOff)-4] + "0000", "invalid auth key"},
		{"malformed", "tskey-nonsense", "invalid auth key"},
		{"unknown prefix", "hn-000000000000-00000000000000000000000000000000", "invalid auth key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newTestNode(t, s.url, "n").tryRegister(tt.key)
			if tt.wantErr == "" {
				if err != nil || !res.MachineAuthorized {
					t.Fatalf("got %+v, %v; want authorized", res, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %+v, %v; want error containing %q", res, err, tt.wantErr)
			}
		})
	}
}

func TestInteractiveApproval(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	n := newTestNode(t, s.url, "laptop")
	res := n.register(t, "")
	if res.AuthURL == "" || res.MachineAuthorized {
		t.Fatalf("register without key = %+v, want an AuthURL", res)
	}
	code := res.AuthURL[strings.LastIndex(res.AuthURL, "/")+1:]
	if _, err := s.ApproveRegistration(context.Background(), "nope"); err == nil {
		t.Error("approving an unknown code succeeded")
	}
	info, err := s.ApproveRegistration(context.Background(), code)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "laptop" || info.NodeKey != n.nk.Public().String() {
		t.Errorf("approved node = %+v", info)
	}
	if res := n.register(t, ""); !res.MachineAuthorized {
		t.Errorf("register after approval = %+v, want authorized", res)
	}
}

func TestRestartKeepsNodes(t *testing.T) {
	s := newTestServer(t, "10.77.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{})
	n := newTestNode(t, s.url, "phone")
	n.register(t, ak)
	disco := key.NewDisco().Public()
	if err := n.c.SendMapUpdate(context.Background(), tsp.SendMapUpdateOpts{NodeKey: n.nk, DiscoKey: disco}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Nodes(context.Background())
	noiseKey := s.noiseKey.Public()
	s.close()

	s2 := openTestServer(t, s.path, "10.77.0.0/16")
	after, _ := s2.Nodes(context.Background())
	if len(after) != 1 || after[0].Addresses[0] != before[0].Addresses[0] || after[0].Name != before[0].Name {
		t.Fatalf("after restart nodes = %+v, want %+v", after, before)
	}
	if s2.noiseKey.Public() != noiseKey {
		t.Error("noise key changed across restart")
	}
	// Peers' first netmap after the restart still has the disco key: a
	// zero one would make them drop their paths to the node.
	peer := newTestNode(t, s2.url, "peer")
	peer.register(t, mustAuthKey(t, s2.Server, AuthKeyOptions{}))
	if first := peer.stream(t); len(first.Peers) != 1 || first.Peers[0].DiscoKey != disco {
		t.Errorf("after restart, peer sees %+v, want disco key %v", first.Peers, disco)
	}
	// The node is still registered: the same key needs no new login.
	n2 := &testNode{mk: n.mk, nk: n.nk, name: "phone"}
	c, _ := tsp.NewClient(tsp.ClientOpts{ServerURL: s2.url, MachineKey: n.mk})
	t.Cleanup(func() { c.Close() })
	n2.c = c
	if res := n2.register(t, ""); !res.MachineAuthorized || res.AuthURL != "" {
		t.Fatalf("register after restart = %+v, want authorized without login", res)
	}
}

func TestExpireAndLogout(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	n := newTestNode(t, s.url, "phone")
	n.register(t, ak)
	nodes, _ := s.Nodes(context.Background())
	if err := s.ExpireNode(context.Background(), nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	if s.Admit(n.nk.Public()) {
		t.Error("expired node admitted to relay")
	}
	if res := n.register(t, ""); res.AuthURL == "" {
		t.Errorf("expired node re-registering without key got %+v, want a login URL", res)
	}
	// Re-registering with a new node key keeps the node's identity.
	old := nodes[0]
	n.nk = key.NewNode()
	n.register(t, ak)
	nodes, _ = s.Nodes(context.Background())
	if len(nodes) != 1 || nodes[0].ID != old.ID || nodes[0].Addresses[0] != old.Addresses[0] || nodes[0].Expired {
		t.Fatalf("after re-registration nodes = %+v, want the same unexpired node", nodes)
	}
}

func TestOneOffKeyReuse(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{})
	n := newTestNode(t, s.url, "phone")
	n.register(t, ak)
	// Running tailscale up again with the same key on the same machine works.
	n.nk = key.NewNode()
	if _, err := n.tryRegister(ak); err != nil {
		t.Fatalf("same machine, same one-off key: %v", err)
	}
	// Another machine can't use it.
	if _, err := newTestNode(t, s.url, "other").tryRegister(ak); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second machine with a spent one-off key: err = %v", err)
	}
	// After expiry, a spent key is no way back in.
	nodes, _ := s.Nodes(context.Background())
	s.ExpireNode(context.Background(), nodes[0].ID)
	n.nk = key.NewNode()
	if _, err := n.tryRegister(ak); err == nil {
		t.Fatal("expired node re-registered with a spent one-off key")
	}
}

func TestExpiryByTime(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	s.cfg.NodeKeyExpiry = time.Hour
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	a, b := newTestNode(t, s.url, "a"), newTestNode(t, s.url, "b")
	a.register(t, ak)
	b.register(t, ak)
	a.stream(t)
	now := time.Now()
	keys := s.expireDue(now, now.Add(2*time.Hour))
	if len(keys) != 2 {
		t.Fatalf("expireDue found %d keys, want 2", len(keys))
	}
	// The expiry is news to peers: a delta carries b again.
	waitPeer(t, a, func(p *tailcfg.Node) bool { return p.Key == b.nk.Public() })
	if got := s.expireDue(now.Add(2*time.Hour), now.Add(3*time.Hour)); len(got) != 0 {
		t.Errorf("expired keys reported twice: %v", got)
	}
}

// Many changes let the server trim its change log while a session reads
// it; the session still gets every change and the final removal.
func TestChangeLogTrimming(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	a, b := newTestNode(t, s.url, "a"), newTestNode(t, s.url, "b")
	a.register(t, ak)
	b.register(t, ak)
	a.stream(t)
	var last key.DiscoPublic
	for range 200 {
		last = key.NewDisco().Public()
		if err := b.c.SendMapUpdate(context.Background(), tsp.SendMapUpdateOpts{NodeKey: b.nk, DiscoKey: last}); err != nil {
			t.Fatal(err)
		}
	}
	waitPeer(t, a, func(p *tailcfg.Node) bool { return p.DiscoKey == last })
	s.mu.Lock()
	logLen := len(s.changes)
	s.mu.Unlock()
	if logLen > 100 {
		t.Errorf("change log holds %d entries after 200 changes with 2 nodes; it should be trimmed", logLen)
	}
	nodes, _ := s.Nodes(context.Background())
	if err := s.DeleteNode(context.Background(), nodes[1].ID); err != nil {
		t.Fatal(err)
	}
	for {
		if res := a.next(t, 5*time.Second); len(res.PeersRemoved) == 1 {
			break
		}
	}
}

// Sessions at the same point share one encoded delta. A peer the client
// knows gets a patch for a change of endpoints or presence, and the whole
// node for anything else.
func TestDeltaSharingAndPatches(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	for _, name := range []string{"a", "b", "c"} {
		newTestNode(t, s.url, name).register(t, ak)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b, c := s.nodes[s.ids[0]], s.nodes[s.ids[1]], s.nodes[s.ids[2]]
	sa := s.startSessionLocked(a, func() {}, false, false)
	sc := s.startSessionLocked(c, func() {}, false, false)
	fresh := s.startSessionLocked(c, func() {}, false, false)
	for _, ms := range []*mapSession{sa, sc, fresh} {
		s.markSentLocked(ms, s.nodes[ms.nodeID])
	}

	addedGen := s.changes[slices.IndexFunc(s.changes, func(c change) bool { return c.id == b.ID })].gen
	ep := netip.MustParseAddrPort("198.51.100.7:41641")
	tests := []struct {
		name   string
		change func()
		want   string // what sa and sc get for b: "patch", "peer" or "removed"
	}{
		{"endpoints", func() {
			var u nodeUpdate
			u.endpoints(b, []netip.AddrPort{ep})
			s.commitLocked(context.Background(), b, u)
		}, "patch"},
		{"online", func() { b.streams++; s.touchPatchLocked(b) }, "patch"},
		{"rename", func() { b.Name = "b2"; s.touchLocked(b) }, "peer"},
		{"delete", func() { s.removeNodeLocked(b) }, "removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh.seen = addedGen - 1 // as if b were new to it
			tt.change()
			fa, fc := s.deltaLocked(sa, time.Now()), s.deltaLocked(sc, time.Now())
			if fa.b == nil || &fa.b[0] != &fc.b[0] {
				t.Fatalf("sessions at the same point got frames %p and %p, want one shared frame", fa.b, fc.b)
			}
			got := decodeFrame(t, fa)
			switch tt.want {
			case "patch":
				if len(got.PeersChangedPatch) != 1 || len(got.PeersChanged) != 0 || got.PeersChangedPatch[0].NodeID != b.ID {
					t.Fatalf("got %+v, want one patch for node %d", got, b.ID)
				}
				if p := got.PeersChangedPatch[0]; !slices.Contains(p.Endpoints, ep) || p.Online == nil {
					t.Errorf("patch %+v lacks endpoint %v or online", p, ep)
				}
			case "peer":
				if len(got.PeersChanged) != 1 || got.PeersChanged[0].Name != "b2."+s.domain+"." {
					t.Fatalf("got %+v, want node b2 whole", got)
				}
			case "removed":
				if !slices.Equal(got.PeersRemoved, []tailcfg.NodeID{b.ID}) {
					t.Fatalf("got %+v, want node %d removed", got, b.ID)
				}
			}
			// A session that doesn't know b can't take a patch.
			if ff := s.deltaLocked(fresh, time.Now()); tt.want == "patch" {
				if !slices.ContainsFunc(decodeFrame(t, ff).PeersChanged, func(p *tailcfg.Node) bool { return p.ID == b.ID }) {
					t.Errorf("session without b got %+v, want b whole", decodeFrame(t, ff))
				}
			}
		})
	}
}

func decodeFrame(t *testing.T, f frame) *tailcfg.MapResponse {
	t.Helper()
	b, err := f.b, f.err
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint32(b); int(n) != len(b)-4 {
		t.Fatalf("frame length %d, have %d bytes", n, len(b)-4)
	}
	var res tailcfg.MapResponse
	if err := json.Unmarshal(b[4:], &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// A client on this host gets the local DERP map, in full maps and deltas;
// others get the public one, and the two never share a cached frame.
func TestLocalDERPMap(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	for _, name := range []string{"a", "b"} {
		newTestNode(t, s.url, name).register(t, ak)
	}
	public := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{900: {RegionID: 900, Nodes: []*tailcfg.DERPNode{{Name: "900a", RegionID: 900, HostName: "203.0.113.9"}}}}}
	local := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{900: {RegionID: 900, Nodes: []*tailcfg.DERPNode{{Name: "900a", RegionID: 900, HostName: "203.0.113.9", IPv4: "127.0.0.1"}}}}}
	s.SetDERPMap(public)
	s.SetLocalDERPMap(local)

	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := s.nodes[s.ids[0]], s.nodes[s.ids[1]]
	if got := s.fullMapLocked(a, time.Now(), true).head.DERPMap; got != local {
		t.Errorf("full map of a local client has DERP map %v, want the local one", got)
	}
	if got := s.fullMapLocked(a, time.Now(), false).head.DERPMap; got != public {
		t.Errorf("full map of a remote client has DERP map %v, want the public one", got)
	}
	sl := s.startSessionLocked(a, func() {}, false, true)
	sr := s.startSessionLocked(b, func() {}, false, false)
	for _, ms := range []*mapSession{sl, sr} {
		s.markSentLocked(ms, s.nodes[ms.nodeID])
	}
	s.derpGen++ // as SetDERPMap does, without its lock
	for _, tt := range []struct {
		ms   *mapSession
		want string
	}{{sl, "127.0.0.1"}, {sr, ""}} {
		got := decodeFrame(t, s.deltaLocked(tt.ms, time.Now()))
		if got.DERPMap == nil || got.DERPMap.Regions[900].Nodes[0].IPv4 != tt.want {
			t.Errorf("local %v: delta DERP map %+v, want node IPv4 %q", tt.ms.local, got.DERPMap, tt.want)
		}
	}
}

func TestIsLocalRequest(t *testing.T) {
	tests := []struct {
		remote string
		header string
		want   bool
	}{
		{"127.0.0.1:5000", "", true},
		{"[::1]:5000", "", true},
		{"[::ffff:127.0.0.1]:5000", "", true},
		{"127.0.0.1:5000", "X-Forwarded-For", false},
		{"127.0.0.1:5000", "Forwarded", false},
		{"192.168.1.20:5000", "", false},
		{"garbage", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/ts2021", nil)
		r.RemoteAddr = tt.remote
		if tt.header != "" {
			r.Header.Set(tt.header, "203.0.113.7")
		}
		if got := isLocalRequest(r); got != tt.want {
			t.Errorf("isLocalRequest(%s, %q) = %v, want %v", tt.remote, tt.header, got, tt.want)
		}
	}
}

// Expiring a key shows it revoked as of now; deleting one keeps the nodes
// it registered, which can still be changed.
func TestExpireAndDeleteAuthKey(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	info, key, err := s.CreateAuthKey(ctx, AuthKeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newTestNode(t, s.url, "laptop").register(t, key)
	keyState := func(id int64) (AuthKeyInfo, bool) {
		keys, err := s.AuthKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.ID == id {
				return k, true
			}
		}
		return AuthKeyInfo{}, false
	}
	if k, _ := keyState(info.ID); k.State != "used" || k.Valid {
		t.Errorf("a single-use key after its registration: state %q, valid %v; want used", k.State, k.Valid)
	}
	other, _, _ := s.CreateAuthKey(ctx, AuthKeyOptions{Reusable: true})
	if err := s.ExpireAuthKey(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if k, _ := keyState(other.ID); k.State != "revoked" || k.Valid || time.Since(k.Expiry) > time.Minute || time.Until(k.Expiry) > 0 {
		t.Errorf("expired key: state %q, valid %v, expiry %v; want revoked, expiring now", k.State, k.Valid, k.Expiry)
	}

	if err := s.DeleteAuthKey(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := keyState(info.ID); ok {
		t.Errorf("key %d still listed after delete", info.ID)
	}
	if err := s.DeleteAuthKey(ctx, info.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}
	nodes, _ := s.Nodes(ctx)
	if len(nodes) != 1 {
		t.Fatalf("nodes after deleting their key: %+v", nodes)
	}
	if err := s.RenameNode(ctx, nodes[0].ID, "laptop2"); err != nil {
		t.Errorf("renaming a node whose key was deleted: %v", err)
	}
}

// Approving a route the node does not advertise is refused, naming what it
// does advertise; unapproving one is harmless.
func TestApproveUnadvertisedRoute(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	newTestNode(t, s.url, "nas").register(t, mustAuthKey(t, s.Server, AuthKeyOptions{}))
	nodes, _ := s.Nodes(ctx)
	p := netip.MustParsePrefix("192.168.9.0/24")
	err := s.SetRouteApproved(ctx, nodes[0].ID, p, true)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "does not advertise 192.168.9.0/24") {
		t.Errorf("approving an unadvertised route: %v, want ErrInvalid naming it", err)
	}
	if err := s.SetRouteApproved(ctx, nodes[0].ID, p, false); err != nil {
		t.Errorf("unapproving an unadvertised route: %v", err)
	}
}

// Admin actions and refused registrations are logged, naming what changed.
func TestAdminActionsLogged(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	var buf strings.Builder
	s.log = slog.New(slog.NewTextHandler(&syncWriter{w: &buf}, nil))
	info, key, err := s.CreateAuthKey(ctx, AuthKeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, s.url, "laptop")
	n.register(t, key)
	n2 := newTestNode(t, s.url, "intruder")
	if _, err := n2.tryRegister(key); err == nil {
		t.Fatal("a spent single-use key registered a second node")
	}
	nodes, _ := s.Nodes(ctx)
	id := nodes[0].ID
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.RenameNode(ctx, id, "laptop2"))
	must(s.ExpireAuthKey(ctx, info.ID))
	must(s.DeleteAuthKey(ctx, info.ID))
	must(s.ExpireNode(ctx, id))
	must(s.DeleteNode(ctx, id))
	for _, want := range []string{
		`msg="control: auth key created" id=` + fmt.Sprint(info.ID),
		`msg="control: registration refused"`,
		`msg="control: node renamed"`, `name=laptop2`,
		`msg="control: auth key expired"`, `msg="control: auth key deleted"`,
		`msg="control: node expired"`, `msg="control: node deleted"`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), key) {
		t.Errorf("the log shows the key's secret:\n%s", buf.String())
	}
}

// syncWriter serializes writes from the server's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
