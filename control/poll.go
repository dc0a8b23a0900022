package control

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/util/zstdframe"
)

const (
	// keepAliveBase plus jitter stays well inside the client's 120 s
	// watchdog.
	keepAliveBase = 50 * time.Second
	// ephemeralGrace is how long an ephemeral node may stay offline
	// before it is deleted.
	ephemeralGrace = 2 * time.Minute
	maxEndpoints   = 64
)

// mapSession is one streaming map poll. It remembers what it has sent so
// that every later message is a delta against exactly that.
type mapSession struct {
	nodeID    tailcfg.NodeID
	wake      chan struct{}
	cancel    context.CancelFunc
	seen      uint64                  // the change log generation sent up to
	sentPeers map[tailcfg.NodeID]bool // peers the client knows of
	sentDERP  uint64
}

func (s *Server) serveMap(w http.ResponseWriter, r *http.Request) {
	var req tailcfg.MapRequest
	if err := readJSON(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Version < MinCapVer {
		http.Error(w, "client too old; homenet needs Tailscale 1.80 or newer", http.StatusBadRequest)
		return
	}
	mkey := peerMachineKey(r)
	s.mu.Lock()
	n := s.byNodeKey[req.NodeKey]
	if n == nil || n.MachineKey != mkey {
		s.mu.Unlock()
		http.Error(w, "node not registered", http.StatusForbidden)
		return
	}
	n.capVer = req.Version
	switch {
	case req.ReadOnly || r.Context().Err() != nil:
	case !req.Stream:
		s.applyUpdateLocked(r.Context(), n, &req)
	default:
		s.fillFromStreamLocked(r.Context(), n, &req)
	}
	if !req.Stream {
		var res *tailcfg.MapResponse
		if !req.OmitPeers {
			res = s.fullMapLocked(n, time.Now())
		}
		s.mu.Unlock()
		if res != nil {
			writeFrame(w, res, req.Compress == "zstd")
		}
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ms := s.startSessionLocked(n, cancel)
	first := s.fullMapLocked(n, time.Now())
	s.markSentLocked(ms, n)
	s.mu.Unlock()
	defer s.endSession(ms)

	s.stream(ctx, w, ms, first, req.Compress == "zstd")
}

// stream sends first, then deltas whenever something changes, and
// keep-alives in between, until ctx ends or a write fails.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, ms *mapSession, first *tailcfg.MapResponse, compress bool) {
	if err := writeFrame(w, first, compress); err != nil {
		return
	}
	keepAlive := time.NewTimer(keepAliveBase + rand.N(9*time.Second))
	defer keepAlive.Stop()
	for {
		var res *tailcfg.MapResponse
		select {
		case <-ctx.Done():
			return
		case <-keepAlive.C:
			res = &tailcfg.MapResponse{KeepAlive: true}
		case <-ms.wake:
			s.mu.Lock()
			res = s.deltaLocked(ms, time.Now())
			s.mu.Unlock()
			if res == nil {
				continue
			}
		}
		if err := writeFrame(w, res, compress); err != nil {
			return
		}
		keepAlive.Reset(keepAliveBase + rand.N(9*time.Second))
	}
}

// applyUpdateLocked takes endpoints, disco key and Hostinfo from a
// non-streaming map request.
func (s *Server) applyUpdateLocked(ctx context.Context, n *node, req *tailcfg.MapRequest) {
	var u nodeUpdate
	u.endpoints(n, cleanEndpoints(req.Endpoints))
	if !req.DiscoKey.IsZero() {
		u.disco(n, req.DiscoKey)
	}
	if hi := req.Hostinfo; hi != nil {
		if ni := hi.NetInfo; ni != nil {
			u.homeDERP(n, ni.PreferredDERP)
		}
		// Hostinfo changes durably only on renames, new routes and the
		// like; NetInfo changes with every network move.
		u.save = u.save || durableHostinfoChanged(n.Hostinfo, hi)
		n.Hostinfo = hi.Clone()
	}
	s.commitLocked(ctx, n, u)
}

// fillFromStreamLocked takes from a streaming request only what the server
// doesn't know. Clients push changes in separate non-streaming requests,
// and by the protocol a stream's fields may be stale; but they are all we
// have for a node whose state predates a server crash.
func (s *Server) fillFromStreamLocked(ctx context.Context, n *node, req *tailcfg.MapRequest) {
	var u nodeUpdate
	if n.DiscoKey.IsZero() && !req.DiscoKey.IsZero() {
		u.disco(n, req.DiscoKey)
	}
	if len(n.Endpoints) == 0 {
		u.endpoints(n, cleanEndpoints(req.Endpoints))
	}
	if hi := req.Hostinfo; hi != nil && n.HomeDERP == 0 && hi.NetInfo != nil {
		u.homeDERP(n, hi.NetInfo.PreferredDERP)
	}
	s.commitLocked(ctx, n, u)
}

// nodeUpdate collects what an update changed about a node.
type nodeUpdate struct {
	changed bool // peers must hear of it
	save    bool // worth a write to the store
}

func (u *nodeUpdate) endpoints(n *node, eps []netip.AddrPort) {
	if !slices.Equal(eps, n.Endpoints) {
		n.Endpoints, n.unsaved, u.changed = eps, true, true
	}
}

// disco and homeDERP change rarely (a client restart) and peers lose their
// paths to a node whose disco key they are told is gone, so they are saved.
func (u *nodeUpdate) disco(n *node, k key.DiscoPublic) {
	if k != n.DiscoKey {
		n.DiscoKey, u.changed, u.save = k, true, true
	}
}

func (u *nodeUpdate) homeDERP(n *node, region int) {
	if region != 0 && region != n.HomeDERP {
		n.HomeDERP, u.changed, u.save = region, true, true
	}
}

func (s *Server) commitLocked(ctx context.Context, n *node, u nodeUpdate) {
	if u.save {
		if err := s.saveLocked(ctx, n); err != nil {
			s.log.Error("control: saving node update", "node", n.Name, "err", err)
		}
	}
	if u.changed || u.save {
		s.touchLocked(n)
	}
}

// durableHostinfoChanged reports whether b differs from a in more than
// NetInfo, which changes with every network move.
func durableHostinfoChanged(a, b *tailcfg.Hostinfo) bool {
	if a == nil {
		return true
	}
	a2, b2 := *a, *b
	a2.NetInfo, b2.NetInfo = nil, nil
	return !reflect.DeepEqual(&a2, &b2)
}

// cleanEndpoints drops endpoints peers can't use: zoned and link-local
// IPv6, and any beyond a sane count.
func cleanEndpoints(eps []netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(eps))
	for _, ep := range eps {
		a := ep.Addr()
		if !ep.IsValid() || a.Zone() != "" || a.IsLinkLocalUnicast() || a.IsUnspecified() {
			continue
		}
		out = append(out, ep)
		if len(out) == maxEndpoints {
			break
		}
	}
	return out
}

func (s *Server) startSessionLocked(n *node, cancel context.CancelFunc) *mapSession {
	// A node has one live stream; a new one replaces the old.
	for old := range s.sessions {
		if old.nodeID == n.ID {
			old.cancel()
		}
	}
	ms := &mapSession{
		nodeID:    n.ID,
		wake:      make(chan struct{}, 1),
		cancel:    cancel,
		sentPeers: map[tailcfg.NodeID]bool{},
	}
	s.sessions[ms] = true
	n.streams++
	if n.streams == 1 {
		s.touchLocked(n) // now online
	}
	return ms
}

func (s *Server) endSession(ms *mapSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ms)
	n := s.nodes[ms.nodeID]
	if n == nil {
		return
	}
	n.streams--
	if n.streams > 0 {
		return
	}
	n.LastSeen = time.Now()
	s.touchLocked(n) // now offline
	if n.Ephemeral && !s.closed {
		id := n.ID
		time.AfterFunc(ephemeralGrace, func() { s.reapEphemeral(id) })
	}
}

// reapEphemeral deletes an ephemeral node that stayed offline.
func (s *Server) reapEphemeral(id tailcfg.NodeID) {
	s.mu.Lock()
	n := s.nodes[id]
	gone := n == nil || n.streams > 0 || s.closed
	s.mu.Unlock()
	if gone {
		return
	}
	if err := s.DeleteNode(context.Background(), id); err != nil {
		s.log.Error("control: deleting offline ephemeral node", "id", id, "err", err)
	}
}

// markSentLocked records that the full map for n was sent on ms.
func (s *Server) markSentLocked(ms *mapSession, n *node) {
	ms.seen, ms.sentDERP = s.gen, s.derpGen
	for id := range s.nodes {
		if id != n.ID {
			ms.sentPeers[id] = true
		}
	}
}

// deltaLocked returns what changed since ms last sent, or nil.
func (s *Server) deltaLocked(ms *mapSession, now time.Time) *tailcfg.MapResponse {
	res := &tailcfg.MapResponse{}
	changed := false
	if s.derpGen != ms.sentDERP {
		res.DERPMap, ms.sentDERP, changed = s.derpMap, s.derpGen, true
	}
	for _, id := range s.changedSinceLocked(ms.seen) {
		n := s.nodes[id]
		switch {
		case id == ms.nodeID:
			if n != nil {
				res.Node, changed = s.tailNodeLocked(n, now, true), true
			}
		case n != nil:
			res.PeersChanged = append(res.PeersChanged, s.tailNodeLocked(n, now, false))
			ms.sentPeers[id], changed = true, true
		case ms.sentPeers[id]:
			res.PeersRemoved = append(res.PeersRemoved, id)
			delete(ms.sentPeers, id)
			changed = true
		}
	}
	ms.seen = s.gen
	if !changed {
		return nil
	}
	return res
}

// writeFrame sends one map message: a little-endian uint32 length, then
// the JSON, zstd-compressed when the client asked for it (all do).
func writeFrame(w io.Writer, res *tailcfg.MapResponse, compress bool) error {
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encoding map response: %w", err)
	}
	if compress {
		b = zstdframe.AppendEncode(nil, b, zstdframe.FastestCompression)
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}
