package control

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"tailscale.com/tailcfg"
)

// A full map, the first message of every stream, holds every peer, so N
// clients opening their streams make N×N peers to send. Rendering each of
// them anew for every viewer made a burst of N new streams allocate
// O(N²) (4 GB at N=1000) and hold it all at once. Instead, each node's
// peer JSON is rendered once per change of the node and shared by every
// full map, and at most a few full maps are assembled and compressed at
// a time.

// fullMap is a full map as captured under s.mu: the message without its
// peers, and the peers' JSON, in ID order. The pieces are immutable, so
// it can be encoded after s.mu is released.
type fullMap struct {
	head  *tailcfg.MapResponse // Peers nil
	peers [][]byte             // tailcfg.Node JSON of each peer
}

// peerJSONLocked returns n's JSON as a peer sees it, rendered once per
// change of n (see invalidatePeerLocked).
func (s *Server) peerJSONLocked(n *node, now time.Time) ([]byte, error) {
	expired := n.expired(now)
	if n.peerJSON != nil && n.peerExpired == expired {
		return n.peerJSON, nil
	}
	j, err := json.Marshal(s.tailNodeLocked(n, now, false))
	if err != nil {
		return nil, fmt.Errorf("encoding node %d: %w", n.ID, err)
	}
	n.peerJSON, n.peerExpired = j, expired
	return j, nil
}

// invalidatePeer drops n's cached peer JSON after a change to anything
// tailNodeLocked renders. Every change peers hear of is logged
// (logChangeLocked), which calls it; the setters below are for the
// changes that are not.
func (n *node) invalidatePeer() { n.peerJSON = nil }

// setCapVer records the capability version of n's latest map request.
func (n *node) setCapVer(v tailcfg.CapabilityVersion) {
	if v != n.capVer {
		n.capVer = v
		n.invalidatePeer()
	}
}

// setHostinfo records n's latest Hostinfo; a change only in NetInfo is
// not sent to peers, but full maps show it.
func (n *node) setHostinfo(hi *tailcfg.Hostinfo) {
	n.Hostinfo = hi.Clone()
	n.invalidatePeer()
}

// encode renders fm as clients read it. It takes one of s's encode slots,
// waiting for one until ctx ends: a burst of new streams then holds N
// small fullMaps, not N encoded netmaps.
func (s *Server) encodeFullMap(ctx context.Context, fm *fullMap, compress bool) frame {
	select {
	case s.encodeSlots <- struct{}{}:
	case <-ctx.Done():
		return frame{err: fmt.Errorf("encoding full map: %w", context.Cause(ctx))}
	}
	defer func() { <-s.encodeSlots }()

	head, err := json.Marshal(fm.head)
	if err != nil {
		return frame{err: fmt.Errorf("encoding map response: %w", err)}
	}
	bp := s.getBuf()
	defer s.putBuf(bp)
	b := append((*bp)[:0], head...)
	if len(fm.peers) > 0 {
		// head is a JSON object with Peers omitted: append them to it.
		b = b[:len(b)-1]
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"Peers":[`...)
		for i, p := range fm.peers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, p...)
		}
		b = append(b, "]}"...)
	}
	*bp = b
	return s.jsonFrame(b, compress)
}

// sendSlot waits until fewer than cap(s.sendSlots) full maps are being
// encoded and sent, and returns the function that gives the slot back.
// When N clients open their streams at once, the full maps that wait for
// slow readers would otherwise be N encoded netmaps, O(N²) bytes. A slot
// is given back after sendSlotHold even if its client is still reading,
// so a few stuck clients can't hold up the others.
func (s *Server) sendSlot(ctx context.Context) (release func(), err error) {
	select {
	case s.sendSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	var once sync.Once
	free := func() { once.Do(func() { <-s.sendSlots }) }
	t := time.AfterFunc(sendSlotHold, free)
	return func() { t.Stop(); free() }, nil
}

// sendSlotHold is how long a full map being sent may hold its slot.
const sendSlotHold = 2 * time.Second

// newEncodeSlots is how many full maps may be encoded at once: the CPUs
// can't do more, and each one waiting for a CPU would hold its netmap.
func newEncodeSlots() chan struct{} {
	return make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
}

// newSendSlots is how many full maps may be on their way at once: enough
// to keep the encoders busy while others are written.
func newSendSlots() chan struct{} { return make(chan struct{}, 4*cap(newEncodeSlots())) }

// getBuf returns a scratch buffer for a frame being built. Only a few
// are in use at a time (encodeSlots), and frames that are kept are copied
// out at their exact size.
func (s *Server) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

// putBuf returns a buffer to the pool, unless it grew beyond what the
// netmap of a few thousand nodes needs.
func (s *Server) putBuf(b *[]byte) {
	if cap(*b) <= 16<<20 {
		*b = (*b)[:0]
		s.bufs.Put(b)
	}
}
