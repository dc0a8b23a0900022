package webadmin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Login limits. They are per source address: a guesser on the LAN locks
// out only itself, not the owner's phone on the tailnet.
const (
	MaxLoginFailures  = 5                // failed logins from one source before it is locked out
	LockoutDuration   = 15 * time.Minute // how long a locked-out source is refused
	DefaultSessionTTL = 12 * time.Hour   // how long a login lasts
)

const (
	// failureWindow is how long a failed login counts against its source.
	failureWindow = LockoutDuration
	// maxSources bounds the failure table. A LAN rarely has more than a
	// few hundred addresses; past this, the least recent unlocked entries
	// are forgotten.
	maxSources = 1024
	// maxSessions bounds the session table; the oldest session is ended
	// to make room, so logging in again and again cannot exhaust memory.
	maxSessions = 64
	// maxFormBody bounds POST bodies: every form here is a few fields.
	maxFormBody = 16 << 10
)

// passwordMatches compares got with want in time independent of where they
// differ and of their lengths, by comparing their hashes. An empty want
// matches nothing.
func passwordMatches(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// tokenEqual compares two secret tokens in constant time.
func tokenEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// newToken returns a random token of 130 bits, URL-safe.
func newToken() string { return rand.Text() }

// sourceAddr is the address a request came from. The handler is served
// directly, never behind a proxy, so X-Forwarded-For is not trusted: any
// client could set it to dodge the lockout.
func sourceAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap().WithZone("")
}

// loginLimiter counts failed logins per source and locks a source out
// after MaxLoginFailures of them within failureWindow.
type loginLimiter struct {
	mu      sync.Mutex
	sources map[netip.Addr]*failures
}

type failures struct {
	n           int       // failures since first
	first       time.Time // the first failure counted
	lockedUntil time.Time // zero: not locked
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{sources: map[netip.Addr]*failures{}}
}

// lockedUntil returns when src's lockout ends, or the zero time if src may
// try to log in now.
func (l *loginLimiter) lockedUntil(src netip.Addr, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.sources[src]; f != nil && now.Before(f.lockedUntil) {
		return f.lockedUntil
	}
	return time.Time{}
}

// fail records a failed login from src and returns how many more failures
// it may make before a lockout, and when its lockout ends if this failure
// locked it out.
func (l *loginLimiter) fail(src netip.Addr, now time.Time) (left int, lockedUntil time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[src]
	if f == nil {
		l.makeRoomLocked(now)
		f = &failures{}
		l.sources[src] = f
	}
	if f.n == 0 || now.Sub(f.first) > failureWindow {
		f.n, f.first = 0, now
	}
	f.n++
	if f.n >= MaxLoginFailures {
		// The count starts again once the lockout ends.
		f.n, f.lockedUntil = 0, now.Add(LockoutDuration)
		return 0, f.lockedUntil
	}
	return MaxLoginFailures - f.n, time.Time{}
}

// succeed forgets src's failures.
func (l *loginLimiter) succeed(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sources, src)
}

// makeRoomLocked drops entries that no longer matter and, if the table is
// still full, the unlocked entry with the oldest failure. Locked entries
// are kept: forgetting them would let a guesser with many addresses unlock
// itself.
func (l *loginLimiter) makeRoomLocked(now time.Time) {
	if len(l.sources) < maxSources {
		return
	}
	var oldest netip.Addr
	var oldestAt time.Time
	for src, f := range l.sources {
		locked := now.Before(f.lockedUntil)
		switch {
		case !locked && now.Sub(f.first) > failureWindow:
			delete(l.sources, src)
		case !locked && (oldestAt.IsZero() || f.first.Before(oldestAt)):
			oldest, oldestAt = src, f.first
		}
	}
	if len(l.sources) >= maxSources && oldest.IsValid() {
		delete(l.sources, oldest)
	}
}

// A session is one login: its cookie carries id, and every form it is
// shown carries csrf.
type session struct {
	id      string
	csrf    string
	source  netip.Addr // where the login came from, for the logs
	created time.Time
	expires time.Time
	flash   *flash // shown once, on the next page
}

// flash is the outcome of an action, shown on the page the action
// redirects to.
type flash struct {
	Message string
	Error   bool
}

// sessionStore keeps sessions in memory: a restart logs everyone out,
// which is fine for one owner and keeps secrets off the flash storage.
type sessionStore struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]*session
}

func newSessionStore(ttl time.Duration) *sessionStore {
	return &sessionStore{ttl: ttl, m: map[string]*session{}}
}

// create starts a session for a login from src.
func (st *sessionStore) create(src netip.Addr, now time.Time) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, s := range st.m {
		if !now.Before(s.expires) {
			delete(st.m, id)
		}
	}
	if len(st.m) >= maxSessions {
		var oldest *session
		for _, s := range st.m {
			if oldest == nil || s.created.Before(oldest.created) {
				oldest = s
			}
		}
		delete(st.m, oldest.id)
	}
	s := &session{id: newToken(), csrf: newToken(), source: src, created: now, expires: now.Add(st.ttl)}
	st.m[s.id] = s
	return s
}

// get returns a copy of the live session with id, or nil.
func (st *sessionStore) get(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(st.m, id)
		return nil
	}
	c := *s
	return &c
}

// takeFlash returns session id's flash, if any, and clears it so that it
// shows once.
func (st *sessionStore) takeFlash(id string) *flash {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[id]
	if s == nil {
		return nil
	}
	f := s.flash
	s.flash = nil
	return f
}

// setFlash sets the message shown on session id's next page.
func (st *sessionStore) setFlash(id string, f flash) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := st.m[id]; s != nil {
		s.flash = &f
	}
}

// end ends session id.
func (st *sessionStore) end(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}
