package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"homenet/control/store"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Config is what the appliance hands the control server.
type Config struct {
	ServerURL string       // what clients are told to use; also the base of auth URLs
	Prefix4   netip.Prefix // node IPv4 addresses come from here
	Store     *store.DB
	// AdminPassword approves interactive logins in the browser. Empty
	// disables browser approval; the CLI still works.
	AdminPassword string
	// NodeKeyExpiry is how long a node key lives after registration. Zero
	// means node keys never expire.
	NodeKeyExpiry time.Duration
	// AutoApproveTags lists tags whose nodes get every advertised route
	// approved without an admin, e.g. the gateway's own agent.
	AutoApproveTags []string
	// OnRevoke, if set, is called (without locks held) with the node key of a
	// node that was deleted, expired or logged out, so the relay can drop it.
	OnRevoke func(key.NodePublic)
	// DNS is what clients are told about names: MagicDNS, resolvers and
	// split DNS.
	DNS DNS
	// StatusExtra, if set, adds the other parts' state to Status.
	StatusExtra func() map[string]any
	Version     string
	Logger      *slog.Logger
}

// Server is the coordination server. Its in-memory state is authoritative
// while running; the store is written only on durable changes.
type Server struct {
	cfg      Config
	log      *slog.Logger
	noiseKey key.MachinePrivate
	domain   string
	dns      *tailcfg.DNSConfig // cfg.DNS for clients
	started  time.Time

	mu        sync.Mutex
	nodes     map[tailcfg.NodeID]*node
	byNodeKey map[key.NodePublic]*node
	byMachine map[key.MachinePublic]*node
	pending   map[string]*pendingReg // interactive registrations by code
	sessions  map[*mapSession]bool
	derpMap   *tailcfg.DERPMap
	derpGen   uint64
	// localDERPMap is derpMap for clients on this host; nil: derpMap.
	localDERPMap *tailcfg.DERPMap
	ids          []tailcfg.NodeID // the keys of nodes, sorted
	changes      []change         // the change log, by gen
	gen          uint64           // the last change's generation
	frames       map[string]frame // deltas of generation framesAt, by deltaLocked's key
	framesAt     [2]uint64        // gen and derpGen the frames are for
	// encodeSlots bounds the full maps being encoded at once
	// (encodeFullMap), sendSlots those being encoded or sent (sendSlot);
	// bufs holds their scratch buffers (getBuf).
	encodeSlots chan struct{}
	sendSlots   chan struct{}
	bufs        sync.Pool
	// noiseHandler serves every Noise connection (newNoiseHandler).
	noiseHandler http.Handler
	closed       bool
	done         chan struct{} // closed by Close

	metrics serverMetrics // see ExpVar
	limits  *limits       // what one address on the internet may cost
}

// node is a registered node: its durable part plus what only lives while
// the server runs.
type node struct {
	store.Node
	capVer  tailcfg.CapabilityVersion
	streams int // open streaming map sessions; online when > 0
	// unsaved is set when endpoints changed but were not written: they
	// change with every network move, too often for flash, so they are
	// saved only with other changes and at Close.
	unsaved bool
	// peerJSON is the node as peers see it, shared by every full map
	// until it changes (peerJSONLocked); peerExpired is whether it was
	// rendered as expired.
	peerJSON    []byte
	peerExpired bool
}

// noiseKeySetting is the store setting holding the TS2021 private key. It
// must never change: clients pin it, and a new one orphans every node.
const noiseKeySetting = "noise_private_key"

// New loads the server's state from cfg.Store. It does not listen; serve
// Handler from an http.Server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("control: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("control: bad server URL %q", cfg.ServerURL)
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		domain:      cfg.DNS.baseDomain(),
		dns:         cfg.DNS.tailcfg(),
		started:     time.Now(),
		nodes:       map[tailcfg.NodeID]*node{},
		byNodeKey:   map[key.NodePublic]*node{},
		byMachine:   map[key.MachinePublic]*node{},
		pending:     map[string]*pendingReg{},
		sessions:    map[*mapSession]bool{},
		frames:      map[string]frame{},
		encodeSlots: newEncodeSlots(),
		sendSlots:   newSendSlots(),
		derpMap:     &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}},
		done:        make(chan struct{}),
		limits:      newLimits(),
	}
	s.noiseHandler = s.newNoiseHandler()
	if s.noiseKey, err = loadOrCreateNoiseKey(ctx, cfg.Store); err != nil {
		return nil, err
	}
	stored, err := cfg.Store.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("control: loading nodes: %w", err)
	}
	for _, sn := range stored {
		s.addNodeLocked(&node{Node: sn})
	}
	s.log.Info("control: loaded state", "nodes", len(stored), "noise_key", s.noiseKey.Public().ShortString())
	go s.expireLoop(expiryCheckInterval)
	return s, nil
}

const expiryCheckInterval = 15 * time.Second

// expireLoop notices node keys that expire with the passing of time: peers
// must learn of it and the relay must drop them.
func (s *Server) expireLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			for _, k := range s.expireDue(last, now) {
				s.revoke(k)
			}
			last = now
		}
	}
}

// expireDue marks nodes whose keys expired in (since, now] as changed and
// returns their keys.
func (s *Server) expireDue(since, now time.Time) []key.NodePublic {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []key.NodePublic
	for _, n := range s.nodes {
		if e := n.KeyExpiry; !e.IsZero() && e.After(since) && !e.After(now) {
			s.touchLocked(n)
			keys = append(keys, n.NodeKey)
		}
	}
	return keys
}

func loadOrCreateNoiseKey(ctx context.Context, db *store.DB) (key.MachinePrivate, error) {
	var k key.MachinePrivate
	v, ok, err := db.Setting(ctx, noiseKeySetting)
	if err != nil {
		return k, fmt.Errorf("control: reading noise key: %w", err)
	}
	if ok {
		if err := k.UnmarshalText([]byte(v)); err != nil {
			return k, fmt.Errorf("control: stored noise key is corrupt: %w", err)
		}
		return k, nil
	}
	k = key.NewMachine()
	b, _ := k.MarshalText()
	if err := db.SetSetting(ctx, noiseKeySetting, string(b)); err != nil {
		return k, fmt.Errorf("control: saving noise key: %w", err)
	}
	return k, nil
}

// Handler serves the public endpoints: /key, /ts2021, the interactive
// login pages and a health check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /key", s.serveKey)
	mux.Handle("/ts2021", s.limitUpgrade(http.HandlerFunc(s.serveNoiseUpgrade)))
	mux.HandleFunc("/register/{code}", s.serveRegisterPage)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /{$}", s.serveIndex)
	return mux
}

// SetDERPMap replaces the DERP map sent to clients; connected clients get
// it at once.
func (s *Server) SetDERPMap(m *tailcfg.DERPMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.derpMap = m
	s.derpGen++
	s.notifyLocked()
}

// SetLocalDERPMap sets the DERP map sent to clients on this host (over
// loopback, not through a proxy), such as the in-process gateway agent;
// nil means the one of SetDERPMap. Behind a home router the relay's public
// address may not lead back to this host (no NAT loopback), so the local
// agent dials the relay on loopback.
func (s *Server) SetLocalDERPMap(m *tailcfg.DERPMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.localDERPMap = m
	s.derpGen++
	s.notifyLocked()
}

// derpMapLocked is the DERP map for a local client or another.
func (s *Server) derpMapLocked(local bool) *tailcfg.DERPMap {
	if local && s.localDERPMap != nil {
		return s.localDERPMap
	}
	return s.derpMap
}

// Admit reports whether k is the node key of a registered, unexpired node.
// The relay asks this for every connection.
func (s *Server) Admit(k key.NodePublic) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.byNodeKey[k]
	return n != nil && !n.expired(time.Now())
}

// Close ends all map sessions and saves what was kept only in memory.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	close(s.done)
	s.closed = true
	for ms := range s.sessions {
		ms.cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, n := range s.nodes {
		if n.unsaved || n.streams > 0 {
			if n.streams > 0 {
				n.LastSeen = time.Now()
			}
			errs = append(errs, s.saveLocked(ctx, n))
		}
	}
	return errors.Join(errs...)
}

// saveLocked writes n's durable state.
func (s *Server) saveLocked(ctx context.Context, n *node) error {
	if err := s.cfg.Store.PutNode(ctx, &n.Node); err != nil {
		return fmt.Errorf("saving node %q: %w", n.Name, err)
	}
	n.unsaved = false
	return nil
}

func (n *node) expired(now time.Time) bool {
	return !n.KeyExpiry.IsZero() && !now.Before(n.KeyExpiry)
}

func (s *Server) addNodeLocked(n *node) {
	s.nodes[n.ID] = n
	s.byNodeKey[n.NodeKey] = n
	s.byMachine[n.MachineKey] = n
	i, _ := slices.BinarySearch(s.ids, n.ID)
	s.ids = slices.Insert(s.ids, i, n.ID)
	s.logChangeLocked(n.ID, false)
}

func (s *Server) removeNodeLocked(n *node) {
	delete(s.nodes, n.ID)
	delete(s.byNodeKey, n.NodeKey)
	delete(s.byMachine, n.MachineKey)
	if i, ok := slices.BinarySearch(s.ids, n.ID); ok {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	s.logChangeLocked(n.ID, false)
	for ms := range s.sessions {
		if ms.nodeID == n.ID {
			ms.cancel()
		}
	}
}

// touchLocked records that n changed in a way its peers (or itself) see,
// and wakes every map session.
func (s *Server) touchLocked(n *node) {
	s.logChangeLocked(n.ID, false)
	s.notifyLocked()
}

// touchPatchLocked is touchLocked for a change only in fields a
// tailcfg.PeerChange carries (endpoints, home DERP, disco key, online):
// peers that know n get a patch of about a fifth the size of the node.
func (s *Server) touchPatchLocked(n *node) {
	s.logChangeLocked(n.ID, true)
	s.notifyLocked()
}

// change says node id was added, changed or removed at generation gen.
type change struct {
	gen   uint64
	id    tailcfg.NodeID
	patch bool // only fields of a tailcfg.PeerChange changed
}

// logChangeLocked appends to the change log that map sessions read their
// deltas from, so a delta costs what changed, not the size of the tailnet.
// Entries every session has read are dropped now and then.
func (s *Server) logChangeLocked(id tailcfg.NodeID, patch bool) {
	if n := s.nodes[id]; n != nil {
		n.invalidatePeer()
	}
	s.gen++
	s.changes = append(s.changes, change{s.gen, id, patch})
	if len(s.changes) < 64+2*len(s.ids) {
		return
	}
	oldest := s.gen
	for ms := range s.sessions {
		oldest = min(oldest, ms.seen)
	}
	i, _ := slices.BinarySearchFunc(s.changes, oldest+1, func(c change, g uint64) int { return cmp.Compare(c.gen, g) })
	s.changes = slices.Delete(s.changes, 0, i)
}

// changedSinceLocked returns the nodes changed after generation gen, by
// ID, once each; patch is set for a node only if every change since gen
// was a patch.
func (s *Server) changedSinceLocked(gen uint64) []change {
	i, _ := slices.BinarySearchFunc(s.changes, gen+1, func(c change, g uint64) int { return cmp.Compare(c.gen, g) })
	out := slices.Clone(s.changes[i:])
	slices.SortStableFunc(out, func(a, b change) int { return cmp.Compare(a.id, b.id) })
	j := 0
	for _, c := range out {
		if j > 0 && out[j-1].id == c.id {
			out[j-1].patch = out[j-1].patch && c.patch
			continue
		}
		out[j] = c
		j++
	}
	return out[:j]
}

func (s *Server) notifyLocked() {
	for ms := range s.sessions {
		select {
		case ms.wake <- struct{}{}:
		default:
		}
	}
}

// revoke tells the relay that k may no longer connect. It must be called
// without s.mu held.
func (s *Server) revoke(k key.NodePublic) {
	if s.cfg.OnRevoke != nil && !k.IsZero() {
		s.cfg.OnRevoke(k)
	}
}

// usedIPv4Locked returns every IPv4 address in use.
func (s *Server) usedIPv4Locked() map[netip.Addr]bool {
	used := make(map[netip.Addr]bool, len(s.nodes))
	for _, n := range s.nodes {
		used[n.IPv4] = true
	}
	return used
}
