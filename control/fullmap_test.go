package control

import (
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/util/zstdframe"
)

// A full map built from the cached peer JSON says what rendering every
// peer anew says, after every kind of change to a peer, compressed or not.
func TestFullMapMatchesRender(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{Reusable: true})
	for _, name := range []string{"a", "b", "c"} {
		newTestNode(t, s.url, name).register(t, ak)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := s.nodes[s.ids[0]], s.nodes[s.ids[1]]
	now := time.Now()
	tests := []struct {
		name   string
		change func()
		at     time.Duration // after now
	}{
		{"unchanged", func() {}, 0},
		{"again, from the cache", func() {}, 0},
		{"endpoints", func() {
			var u nodeUpdate
			u.endpoints(b, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.7:41641")})
			s.commitLocked(context.Background(), b, u)
		}, 0},
		{"online", func() { b.streams++; s.touchPatchLocked(b) }, 0},
		{"rename", func() { b.Name = "b2"; s.touchLocked(b) }, 0},
		{"capability version", func() { b.setCapVer(b.capVer + 1) }, 0},
		{"NetInfo only", func() {
			hi := b.Hostinfo.Clone()
			hi.NetInfo = &tailcfg.NetInfo{PreferredDERP: 7}
			b.setHostinfo(hi)
		}, 0},
		{"key expiry set", func() { b.KeyExpiry = now.Add(time.Hour); s.touchLocked(b) }, 0},
		{"key expired with time", func() {}, 2 * time.Hour},
		{"new node", func() {
			d := &node{Node: b.Node}
			d.ID, d.Name, d.NodeKey = s.ids[len(s.ids)-1]+1, "d", key.NewNode().Public()
			s.addNodeLocked(d)
		}, 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change()
			at := now.Add(tt.at)
			fm := s.fullMapLocked(a, at, false)
			want := *fm.head
			for _, id := range s.ids {
				if id != a.ID {
					want.Peers = append(want.Peers, s.tailNodeLocked(s.nodes[id], at, false))
				}
			}
			for _, compress := range []bool{false, true} {
				f := s.encodeFullMap(context.Background(), fm, compress)
				if f.err != nil {
					t.Fatal(f.err)
				}
				j := f.b[4:]
				if compress {
					var err error
					if j, err = zstdframe.AppendDecode(nil, j); err != nil {
						t.Fatalf("decompressing: %v", err)
					}
				}
				assertSameJSON(t, j, &want)
			}
		})
	}
}

// assertSameJSON fails unless got and the JSON of want are the same
// object, field order aside.
func assertSameJSON(t *testing.T, got []byte, want any) {
	t.Helper()
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("full map is not JSON: %v\n%s", err, got)
	}
	json.Unmarshal(wb, &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("full map\n%s\nwant\n%s", got, wb)
	}
}

// A full map waits for an encode slot, and gives up when its request
// ends, holding nothing.
func TestFullMapWaitsForSlot(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	for range cap(s.encodeSlots) {
		s.encodeSlots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	fm := &fullMap{head: &tailcfg.MapResponse{Domain: "x"}}
	if f := s.encodeFullMap(ctx, fm, true); f.err == nil || f.b != nil {
		t.Fatalf("with every slot taken, got frame %q, err %v; want an error", f.b, f.err)
	}
	<-s.encodeSlots
	if f := s.encodeFullMap(context.Background(), fm, false); f.err != nil || len(f.b) == 0 {
		t.Fatalf("with a slot free: frame %q, err %v", f.b, f.err)
	}
}
