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
	nodeID   tailcfg.NodeID
	wake     chan struct{}
	cancel   context.CancelFunc
	compress bool   // the client reads zstd frames
	local    bool   // the client is on this host (isLocal)
	seen     uint64 // the change log generation sent up to
	sentDERP uint64
}

func (s *Server) serveMap(w http.ResponseWriter, r *http.Request) {
	s.metrics.mapRequests.Add(1)
	var req tailcfg.MapRequest
	if err := readJSON(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Version < MinCapVer {
		// Only a node registered before MinCapVer was raised gets here. Its
		// client shows no HTTP error, but the refusal keeps it offline for
		// its peers, and its next login (tailscaled or the app restarting,
		// tailscale up) is refused with the message (tooOld).
		http.Error(w, needVersion(req.Version, req.Hostinfo), http.StatusBadRequest)
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
	n.setCapVer(req.Version)
	switch {
	case req.ReadOnly || r.Context().Err() != nil:
	case !req.Stream:
		s.applyUpdateLocked(r.Context(), n, &req)
	default:
		s.fillFromStreamLocked(r.Context(), n, &req)
	}
	if !req.Stream {
		var fm *fullMap
		if !req.OmitPeers {
			fm = s.fullMapLocked(n, time.Now(), isLocal(r))
		}
		s.mu.Unlock()
		if fm != nil {
			s.send(w, s.encodeFullMap(r.Context(), fm, req.Compress == "zstd"))
		}
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ms := s.startSessionLocked(n, cancel, req.Compress == "zstd", isLocal(r))
	first := s.fullMapLocked(n, time.Now(), ms.local)
	s.markSentLocked(ms, n)
	s.mu.Unlock()
	defer s.endSession(ms)

	// The first message is the largest by far: encode it unlocked, once
	// it may be sent (sendSlot).
	release, err := s.sendSlot(ctx)
	if err != nil {
		return
	}
	f := s.encodeFullMap(ctx, first, ms.compress)
	ok := s.send(w, f)
	release()
	if ok {
		s.stream(ctx, w, ms)
	}
}

// stream sends deltas whenever something changes, and keep-alives in
// between, until ctx ends or a write fails.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, ms *mapSession) {
	keepAlive := time.NewTimer(keepAliveBase + rand.N(9*time.Second))
	defer keepAlive.Stop()
	for {
		var f frame
		select {
		case <-ctx.Done():
			return
		case <-keepAlive.C:
			f = s.encodeFrame(&tailcfg.MapResponse{KeepAlive: true}, ms.compress)
		case <-ms.wake:
			s.mu.Lock()
			f = s.deltaLocked(ms, time.Now())
			s.mu.Unlock()
			if f.b == nil && f.err == nil {
				continue
			}
		}
		if !s.send(w, f) {
			return
		}
		keepAlive.Reset(keepAliveBase + rand.N(9*time.Second))
	}
}

// send writes f and reports whether the stream may go on.
func (s *Server) send(w http.ResponseWriter, f frame) bool {
	if f.err != nil {
		s.log.Error("control: map response", "err", f.err)
		return false
	}
	return writeFrame(w, f.b) == nil
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
		if durableHostinfoChanged(n.Hostinfo, hi) {
			u.save, u.full = true, true
		}
		n.setHostinfo(hi)
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
	full    bool // more than a tailcfg.PeerChange carries changed
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
	switch {
	case u.full:
		s.touchLocked(n)
	case u.changed || u.save:
		s.touchPatchLocked(n)
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

func (s *Server) startSessionLocked(n *node, cancel context.CancelFunc, compress, local bool) *mapSession {
	// A node has one live stream; a new one replaces the old.
	for old := range s.sessions {
		if old.nodeID == n.ID {
			old.cancel()
		}
	}
	ms := &mapSession{
		nodeID:   n.ID,
		wake:     make(chan struct{}, 1),
		cancel:   cancel,
		compress: compress,
		local:    local,
	}
	s.sessions[ms] = true
	s.metrics.mapStreams.Add(1)
	s.metrics.mapSessions.Add(1)
	n.streams++
	if n.streams == 1 {
		s.touchPatchLocked(n) // now online
	}
	return ms
}

func (s *Server) endSession(ms *mapSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ms)
	s.metrics.mapSessions.Add(-1)
	n := s.nodes[ms.nodeID]
	if n == nil {
		return
	}
	n.streams--
	if n.streams > 0 {
		return
	}
	n.LastSeen = time.Now()
	s.touchPatchLocked(n) // now offline
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
}

// deltaItem is one entry of a delta: a node, and how it is sent.
type deltaItem struct {
	kind byte // one of the item kinds below
	id   tailcfg.NodeID
}

// Delta item kinds; they are also the bytes of a delta's cache key.
const (
	itemSelf    = 's' // the session's own node changed
	itemPeer    = 'c' // a peer, whole: new, or changed beyond a patch
	itemPatch   = 'p' // a peer the client knows, as a tailcfg.PeerChange
	itemRemoved = 'r' // a peer is gone
	itemDERP    = 'd' // the DERP map changed
)

// deltaLocked returns what changed since ms last sent, or the zero frame,
// and marks it sent. Sessions that were at the same point share one frame:
// a change is rendered, encoded and compressed once, not once per session.
// Deltas are small, so they are encoded under the lock; that also spares
// the other sessions a wait for whichever encodes first.
func (s *Server) deltaLocked(ms *mapSession, now time.Time) frame {
	items := s.deltaItemsLocked(ms)
	if len(items) == 0 {
		return frame{}
	}
	ck := []byte{0}
	if ms.compress {
		ck[0] |= 1
	}
	if ms.local {
		ck[0] |= 2 // another DERP map
	}
	for _, it := range items {
		if it.kind == itemSelf {
			return s.encodeFrame(s.renderDeltaLocked(items, now, ms.local), ms.compress)
		}
		ck = binary.AppendUvarint(append(ck, it.kind), uint64(it.id))
	}
	if s.framesAt != [2]uint64{s.gen, s.derpGen} {
		clear(s.frames)
		s.framesAt = [2]uint64{s.gen, s.derpGen}
	}
	f, ok := s.frames[string(ck)]
	if !ok {
		f = s.encodeFrame(s.renderDeltaLocked(items, now, ms.local), ms.compress)
		s.frames[string(ck)] = f
	}
	return f
}

// deltaItemsLocked lists what ms must be sent and records it as sent.
func (s *Server) deltaItemsLocked(ms *mapSession) []deltaItem {
	var items []deltaItem
	if s.derpGen != ms.sentDERP {
		items = append(items, deltaItem{kind: itemDERP})
		ms.sentDERP = s.derpGen
	}
	for _, c := range s.changedSinceLocked(ms.seen) {
		n := s.nodes[c.id]
		switch {
		case c.id == ms.nodeID:
			if n != nil {
				items = append(items, deltaItem{itemSelf, c.id})
			}
		case n == nil:
			// Clients ignore the removal of a peer they never had,
			// which spares every session a set of the peers it knows.
			items = append(items, deltaItem{itemRemoved, c.id})
		// A peer new to the client has its addition in the log, which
		// is no patch. An empty endpoint list can't be patched either:
		// PeerChange omits it.
		case c.patch && len(n.Endpoints) > 0:
			items = append(items, deltaItem{itemPatch, c.id})
		default:
			items = append(items, deltaItem{itemPeer, c.id})
		}
	}
	ms.seen = s.gen
	return items
}

func (s *Server) renderDeltaLocked(items []deltaItem, now time.Time, local bool) *tailcfg.MapResponse {
	res := &tailcfg.MapResponse{}
	for _, it := range items {
		switch it.kind {
		case itemDERP:
			res.DERPMap = s.derpMapLocked(local)
		case itemSelf:
			res.Node = s.tailNodeLocked(s.nodes[it.id], now, true)
		case itemPeer:
			res.PeersChanged = append(res.PeersChanged, s.tailNodeLocked(s.nodes[it.id], now, false))
		case itemPatch:
			res.PeersChangedPatch = append(res.PeersChangedPatch, peerPatch(s.nodes[it.id]))
		case itemRemoved:
			res.PeersRemoved = append(res.PeersRemoved, it.id)
		}
	}
	return res
}

// peerPatch renders the fields of n that touchPatchLocked changes may
// have changed.
func peerPatch(n *node) *tailcfg.PeerChange {
	online := n.streams > 0
	pc := &tailcfg.PeerChange{
		NodeID:     n.ID,
		DERPRegion: n.HomeDERP,
		Cap:        n.capVer,
		Endpoints:  slices.Clone(n.Endpoints),
		Online:     &online,
	}
	if !n.DiscoKey.IsZero() {
		dk := n.DiscoKey
		pc.DiscoKey = &dk
	}
	if !online && !n.LastSeen.IsZero() {
		ls := n.LastSeen
		pc.LastSeen = &ls
	}
	return pc
}

// frame is one encoded map message, or why it could not be encoded.
type frame struct {
	b   []byte
	err error
}

// encodeFrame renders a map message as clients read it: a little-endian
// uint32 length, then the JSON, zstd-compressed when the client asked for
// it (all do).
func (s *Server) encodeFrame(res *tailcfg.MapResponse, compress bool) frame {
	j, err := json.Marshal(res)
	if err != nil {
		return frame{err: fmt.Errorf("encoding map response: %w", err)}
	}
	return s.jsonFrame(j, compress)
}

// jsonFrame frames the JSON message j. The frame is allocated at its
// exact size: frames wait in memory while slow clients read them, and in
// the delta cache, and a compressed one is a tenth of the JSON.
func (s *Server) jsonFrame(j []byte, compress bool) frame {
	if !compress {
		b := make([]byte, 4+len(j))
		binary.LittleEndian.PutUint32(b, uint32(len(j)))
		copy(b[4:], j)
		return frame{b: b}
	}
	bp := s.getBuf()
	defer s.putBuf(bp)
	// A default encoder keeps about 9 MiB of tables and history, one per
	// concurrent encode; these options keep about 0.5 MiB and compress
	// map responses as well.
	z := zstdframe.AppendEncode((*bp)[:0], j, zstdframe.FastestCompression, zstdframe.LowMemory(true), zstdframe.MaxWindowSize(64<<10))
	*bp = z
	b := make([]byte, 4+len(z))
	binary.LittleEndian.PutUint32(b, uint32(len(z)))
	copy(b[4:], z)
	return frame{b: b}
}

// frameChunk bounds each Write of a map message. HTTP/2's framer keeps a
// write buffer as large as the largest frame it ever wrote, for the life of
// the connection, and its server sends one large Write as frames of up to
// 16 KiB; pieces no larger than its 4 KiB handler buffer keep every DATA
// frame, and so each of N connections' buffers, at 4 KiB. (At N=1000,
// framer buffers were 13 MiB of the heap before.)
const frameChunk = 4 << 10

// writeFrame sends one encoded map message.
func writeFrame(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), frameChunk)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}
