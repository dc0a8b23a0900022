package control

import (
	"context"
	"errors"
	"expvar"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"homenet/internal/ratelimit"

	"tailscale.com/metrics"
	"tailscale.com/types/key"
)

// What one address on the internet may cost. Anyone may open /ts2021,
// finish the Noise handshake with a fresh machine key and ask to register,
// and homenet runs on a small router, so each of these is bounded per
// source (an IPv4 address or an IPv6 /64, see ratelimit.Source). Clients on
// this host (the gateway agent) are exempt.
//
// The numbers are several times what the busiest legitimate source does:
// a home or office behind one address whose phones all reconnect at once
// after a network change. A Tailscale client opens one Noise connection per
// control session (two when it races port 80 against 443), and registers
// once per login plus a long poll for approval that it repeats only if it
// times out.
const (
	// Noise upgrades per source: 10 a minute, 20 at once. The handshake is
	// the costliest thing a stranger can ask for (five X25519 operations on
	// our side, slow on a router's CPU).
	upgradeEvery = 6 * time.Second
	upgradeBurst = 20
	// Registrations per source: 30 a minute, 30 at once. Each may look up
	// an auth key in the store.
	registerEvery = 2 * time.Second
	registerBurst = 30
	// maxPendingPerSource is a source's share of maxPending interactive
	// logins, so that one address cannot take them all and lock the owner
	// out of approving a new phone for pendingTTL. 32 addresses still can;
	// see docs/config.md, "Limits".
	maxPendingPerSource = 8
	// Unauthenticated Noise connections (the upgrade in progress, then until
	// the machine is known to control): at most maxUnauth in all and
	// maxUnauthPerSource per source. Each holds goroutines and HTTP/2's
	// buffers until it ends.
	maxUnauth          = 512
	maxUnauthPerSource = 32
	// An unauthenticated connection is closed after unauthIdle without a
	// request in flight, and after unauthMaxAge in any case: a login waits
	// no longer than pendingTTL for the owner. The client redials if it
	// still wants something.
	unauthIdle   = time.Minute
	unauthMaxAge = pendingTTL + time.Minute
	// maxLimitedSources bounds each table of token buckets: a full one
	// holds about 540 KiB (measured: a 32-byte bucket, the LRU's entry and
	// its map slot per source).
	maxLimitedSources = 2048
)

// limits holds the per-source state of the limits above.
type limits struct {
	upgrades  *ratelimit.Buckets
	registers *ratelimit.Buckets
	unauth    unauthConns

	// Refusals, by what was refused.
	limitedUpgrade  expvar.Int // /ts2021: the source's upgrade rate
	limitedRegister expvar.Int // /machine/register: the source's registration rate
	limitedPending  expvar.Int // interactive logins: the source's share of pending logins
	limitedUnauth   expvar.Int // /ts2021: too many unauthenticated connections
}

func newLimits() *limits {
	return &limits{
		upgrades:  ratelimit.New(upgradeEvery, upgradeBurst, maxLimitedSources),
		registers: ratelimit.New(registerEvery, registerBurst, maxLimitedSources),
		unauth: unauthConns{
			max:       maxUnauth,
			perSource: maxUnauthPerSource,
			idle:      unauthIdle,
			maxAge:    unauthMaxAge,
		},
	}
}

// addMetrics adds the limits' series to set (see Server.ExpVar).
func (l *limits) addMetrics(set *metrics.Set) {
	lim := &metrics.LabelMap{Label: "what"}
	lim.Set("noise_upgrade", &l.limitedUpgrade)
	lim.Set("register", &l.limitedRegister)
	lim.Set("pending_login", &l.limitedPending)
	lim.Set("unauthenticated_connections", &l.limitedUnauth)
	set.Set("counter_rate_limited_total", lim)
	closed := &metrics.LabelMap{Label: "reason"}
	closed.Set("idle", &l.unauth.closedIdle)
	closed.Set("age", &l.unauth.closedAge)
	closed.Set("evicted", &l.unauth.evicted)
	set.Set("counter_unauthenticated_closed_total", closed)
	set.Set("gauge_unauthenticated_connections", expvar.Func(func() any { return int64(l.unauth.count()) }))
}

// sourceCtx holds the limited source of a Noise connection, a
// netip.Prefix; unauthCtx its *unauthConn. Neither is set for a client on
// this host.
type (
	sourceCtx struct{}
	unauthCtx struct{}
)

// sourceOf is the source that the Noise connection of ctx counts against;
// the zero Prefix for an exempt one.
func sourceOf(ctx context.Context) netip.Prefix {
	src, _ := ctx.Value(sourceCtx{}).(netip.Prefix)
	return src
}

// requestSource is the source r counts against, or exempt for a client on
// this host. A reverse proxy on this host is trusted to say in
// X-Forwarded-For (its last address) or X-Real-Ip whom it serves; one that
// does not say makes all its clients one source.
func requestSource(r *http.Request) (src netip.Prefix, exempt bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Not TCP (a test's pipe, say): one source for all such.
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), false
	}
	a := ap.Addr().Unmap()
	if !a.IsLoopback() {
		return ratelimit.Source(a), false
	}
	if isLocalRequest(r) {
		return netip.Prefix{}, true
	}
	if fwd, ok := forwardedFor(r); ok {
		return ratelimit.Source(fwd), false
	}
	return ratelimit.Source(a), false
}

// forwardedFor is the client address a reverse proxy on this host passed.
func forwardedFor(r *http.Request) (netip.Addr, bool) {
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		last := xff[len(xff)-1]
		last = strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		if a, err := netip.ParseAddr(last); err == nil {
			return a, true
		}
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); err == nil {
		return a, true
	}
	return netip.Addr{}, false
}

// tooMany answers 429 with Retry-After; Tailscale clients back off on it.
func tooMany(w http.ResponseWriter, retry time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfter(retry)))
	http.Error(w, msg, http.StatusTooManyRequests)
}

// limitUpgrade guards /ts2021: the source's upgrade rate, then a place
// among the unauthenticated connections, held until the connection ends
// or its machine turns out to be known (see noiseAccepted).
func (s *Server) limitUpgrade(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src, exempt := requestSource(r)
		if exempt {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		if ok, retry := s.limits.upgrades.Allow(src, now); !ok {
			s.limits.limitedUpgrade.Add(1)
			s.log.Debug("control: noise upgrade rate-limited", "source", src, "remote", r.RemoteAddr)
			tooMany(w, retry, "too many connections from your address; try again later")
			return
		}
		c, err := s.limits.unauth.acquire(src, now)
		if err != nil {
			s.limits.limitedUnauth.Add(1)
			s.log.Debug("control: noise upgrade refused", "source", src, "remote", r.RemoteAddr, "err", err)
			if errors.Is(err, errUnauthFull) {
				w.Header().Set("Retry-After", "10")
				http.Error(w, "server busy; try again later", http.StatusServiceUnavailable)
				return
			}
			tooMany(w, unauthIdle, "too many unauthenticated connections from your address; try again later")
			return
		}
		// next, the upgrade, gives c back when the connection ends.
		ctx := context.WithValue(r.Context(), sourceCtx{}, src)
		ctx = context.WithValue(ctx, unauthCtx{}, c)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// noiseAccepted is called when the Noise handshake of r's upgrade is done:
// a known machine gives back its place among the unauthenticated
// connections; another keeps it, and conn is closed when it idles or ages
// (see unauthConns) or is evicted.
func (s *Server) noiseAccepted(r *http.Request, peer key.MachinePublic, closeConn func()) {
	c, _ := r.Context().Value(unauthCtx{}).(*unauthConn)
	if c == nil {
		return
	}
	if s.knownMachine(peer) {
		s.limits.unauth.release(c)
		return
	}
	s.limits.unauth.attach(c, closeConn, time.Now())
}

// limitNoise wraps the handler of requests inside a Noise connection: it
// limits the source's registrations and keeps the connection's
// unauthenticated state (requests in flight; known once its machine is).
func (s *Server) limitNoise(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if src := sourceOf(r.Context()); src.IsValid() && r.URL.Path == "/machine/register" {
			if ok, retry := s.limits.registers.Allow(src, time.Now()); !ok {
				s.limits.limitedRegister.Add(1)
				s.log.Debug("control: registration rate-limited", "source", src)
				tooMany(w, retry, "too many registrations from your address; try again later")
				return
			}
		}
		c, _ := r.Context().Value(unauthCtx{}).(*unauthConn)
		if c == nil || s.knownMachine(peerMachineKey(r)) {
			s.limits.unauth.release(c)
			next.ServeHTTP(w, r)
			return
		}
		s.limits.unauth.begin(c)
		defer func() {
			s.limits.unauth.end(c, time.Now())
			if s.knownMachine(peerMachineKey(r)) {
				s.limits.unauth.release(c)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// knownMachine reports whether mk is the machine key of a registered
// node: the Noise handshake proved the peer holds it, so it is one of the
// owner's devices and not a stranger.
func (s *Server) knownMachine(mk key.MachinePublic) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byMachine[mk] != nil
}

// pendingShareLocked refuses a new interactive login from src when src
// already has its share of the pending ones. Expired logins must have been
// dropped.
func (s *Server) pendingShareLocked(src netip.Prefix) error {
	if !src.IsValid() {
		return nil
	}
	n := 0
	for _, p := range s.pending {
		if p.source == src {
			n++
		}
	}
	if n >= maxPendingPerSource {
		s.limits.limitedPending.Add(1)
		return registerError("too many logins from your address are waiting for approval; try again later")
	}
	return nil
}

var (
	errUnauthFull       = errors.New("too many unauthenticated connections")
	errUnauthSourceFull = errors.New("too many unauthenticated connections from this source")
)

// unauthConns counts the Noise connections not known to be the owner's:
// upgrades in progress, and connections whose machine is not registered.
// Its map has an entry only for a source with a connection, so it holds at
// most max entries.
//
// When all max places are taken, a new connection takes one from the
// source holding the most (its oldest connection past the handshake):
// strangers filling the server push out each other, not a lone new phone.
type unauthConns struct {
	max, perSource int
	idle, maxAge   time.Duration

	evicted    expvar.Int // closed to make room for another source's
	closedIdle expvar.Int // closed after idle without a request
	closedAge  expvar.Int // closed after maxAge

	mu       sync.Mutex
	bySource map[netip.Prefix][]*unauthConn // oldest first
	n        int
}

// unauthConn is one unauthenticated connection. Its fields are guarded by
// unauthConns.mu.
type unauthConn struct {
	src       netip.Prefix
	started   time.Time
	close     func()      // closes the connection; nil while the upgrade is in progress
	timer     *time.Timer // runs check; nil until attached
	inflight  int         // requests being served
	idleSince time.Time   // when inflight last fell to 0
	gone      bool        // released or closed: no longer counted
}

// acquire takes a place for a new connection from src.
func (u *unauthConns) acquire(src netip.Prefix, now time.Time) (*unauthConn, error) {
	u.mu.Lock()
	if len(u.bySource[src]) >= u.perSource {
		u.mu.Unlock()
		return nil, errUnauthSourceFull
	}
	var victim *unauthConn
	if u.n >= u.max {
		if victim = u.victimLocked(); victim == nil {
			u.mu.Unlock()
			return nil, errUnauthFull
		}
		u.removeLocked(victim)
	}
	c := &unauthConn{src: src, started: now, idleSince: now}
	if u.bySource == nil {
		u.bySource = map[netip.Prefix][]*unauthConn{}
	}
	u.bySource[src] = append(u.bySource[src], c)
	u.n++
	u.mu.Unlock()
	if victim != nil {
		u.evicted.Add(1)
		victim.close()
	}
	return c, nil
}

// victimLocked picks the oldest connection past its handshake of the
// source that holds the most such.
func (u *unauthConns) victimLocked() *unauthConn {
	var victim *unauthConn
	most := 0
	for _, cs := range u.bySource {
		i := slices.IndexFunc(cs, func(c *unauthConn) bool { return c.close != nil })
		if i < 0 || len(cs) <= most {
			continue
		}
		most, victim = len(cs), cs[i]
	}
	return victim
}

// attach records that c's handshake is done and closeConn closes it, and
// starts watching it for idleness and age.
func (u *unauthConns) attach(c *unauthConn, closeConn func(), now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if c.gone {
		return
	}
	c.close = closeConn
	c.idleSince = now
	c.timer = time.AfterFunc(u.idle, func() { u.check(c, time.Now()) })
}

// check closes c if it idled or aged, else looks again when it might.
func (u *unauthConns) check(c *unauthConn, now time.Time) {
	u.mu.Lock()
	if c.gone {
		u.mu.Unlock()
		return
	}
	age := now.Sub(c.started)
	var counter *expvar.Int
	next := u.maxAge - age
	switch {
	case age >= u.maxAge:
		counter = &u.closedAge
	case c.inflight == 0 && now.Sub(c.idleSince) >= u.idle:
		counter = &u.closedIdle
	case c.inflight == 0:
		next = min(next, u.idle-now.Sub(c.idleSince))
	default:
		next = min(next, u.idle)
	}
	if counter == nil {
		c.timer.Reset(next)
		u.mu.Unlock()
		return
	}
	u.removeLocked(c)
	u.mu.Unlock()
	counter.Add(1)
	c.close()
}

// begin and end bracket a request on c.
func (u *unauthConns) begin(c *unauthConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c.inflight++
}

func (u *unauthConns) end(c *unauthConn, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c.inflight--
	if c.inflight == 0 {
		c.idleSince = now
	}
}

// release gives back c's place, if it still has one. c may be nil.
func (u *unauthConns) release(c *unauthConn) {
	if c == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !c.gone {
		u.removeLocked(c)
	}
}

func (u *unauthConns) removeLocked(c *unauthConn) {
	c.gone = true
	if c.timer != nil {
		c.timer.Stop()
	}
	cs := slices.DeleteFunc(u.bySource[c.src], func(o *unauthConn) bool { return o == c })
	if len(cs) == 0 {
		delete(u.bySource, c.src)
	} else {
		u.bySource[c.src] = cs
	}
	u.n--
}

func (u *unauthConns) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}
