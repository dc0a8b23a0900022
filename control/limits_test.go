package control

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"homenet/internal/ratelimit"

	"tailscale.com/control/controlbase"
	"tailscale.com/control/controlhttp/controlhttpcommon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Addresses on the internet that tests pretend to come from.
const (
	sourceA = "192.0.2.1"
	sourceB = "198.51.100.2"
	sourceC = "2001:db8:1:2::3"
)

// fakeSourceListener reports every connection it accepts as coming from
// remote, so that a test on loopback can be a client on the internet.
type fakeSourceListener struct {
	net.Listener
	remote netip.Addr
}

func (l fakeSourceListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return fakeSourceConn{c, net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.remote, uint16(c.RemoteAddr().(*net.TCPAddr).Port)))}, nil
}

type fakeSourceConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeSourceConn) RemoteAddr() net.Addr { return c.remote }

// urlFrom serves ts's handler on a new listener where every client seems
// to come from remote, and returns its URL.
func (ts *testServer) urlFrom(t *testing.T, remote string) string {
	t.Helper()
	hs := httptest.NewUnstartedServer(ts.Handler())
	hs.Listener = fakeSourceListener{hs.Listener, netip.MustParseAddr(remote)}
	hs.Start()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs.URL
}

// tryUpgrade makes one /ts2021 upgrade with a fresh machine key at url and
// returns the response; on 101 the Noise connection stays open until the
// test ends.
func tryUpgrade(t *testing.T, url string, serverKey key.MachinePublic) *http.Response {
	t.Helper()
	return tryUpgradeAs(t, url, serverKey, key.NewMachine())
}

func tryUpgradeAs(t *testing.T, url string, serverKey key.MachinePublic, mk key.MachinePrivate) *http.Response {
	t.Helper()
	init, cont, err := controlbase.ClientDeferred(mk, serverKey, uint16(tailcfg.CurrentCapabilityVersion))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url+"/ts2021", nil)
	req.Header.Set("Upgrade", controlhttpcommon.UpgradeHeaderValue)
	req.Header.Set("Connection", "upgrade")
	req.Header.Set(controlhttpcommon.HandshakeHeaderName, base64.StdEncoding.EncodeToString(init))
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("upgrade at %s: %v", url, err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return res
	}
	// Finish the handshake, as a client does, so that the server holds a
	// Noise connection.
	nc, err := cont(context.Background(), bufferedConn{conn, br})
	if err != nil {
		t.Fatalf("noise handshake at %s: %v", url, err)
	}
	// And HTTP/2's preface and empty SETTINGS, so the server's HTTP/2
	// does not log a missing preface at the end.
	if _, err := nc.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		t.Fatalf("HTTP/2 preface at %s: %v", url, err)
	}
	conn.SetDeadline(time.Time{})
	t.Cleanup(func() { nc.Close() })
	return res
}

// bufferedConn reads through the reader that read the HTTP response.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func TestRequestSource(t *testing.T) {
	tests := []struct {
		name       string
		remote     string
		header     map[string]string
		want       string // "" for none
		wantExempt bool
	}{
		{"IPv4", "192.0.2.1:4242", nil, "192.0.2.1/32", false},
		{"IPv4-mapped", "[::ffff:192.0.2.1]:4242", nil, "192.0.2.1/32", false},
		{"IPv6 by /64", "[2001:db8:1:2:3:4:5:6]:4242", nil, "2001:db8:1:2::/64", false},
		{"loopback: this host", "127.0.0.1:4242", nil, "", true},
		{"IPv6 loopback", "[::1]:4242", nil, "", true},
		{"proxy on this host", "127.0.0.1:4242", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9/32", false},
		{"proxy: last hop counts", "127.0.0.1:4242", map[string]string{"X-Forwarded-For": "10.9.9.9, 203.0.113.9"}, "203.0.113.9/32", false},
		{"proxy: X-Real-Ip", "127.0.0.1:4242", map[string]string{"X-Real-Ip": "2001:db8::1"}, "2001:db8::/64", false},
		{"proxy that does not say", "127.0.0.1:4242", map[string]string{"Forwarded": "for=unknown"}, "127.0.0.1/32", false},
		{"forwarding headers from afar are ignored", "192.0.2.1:4242", map[string]string{"X-Forwarded-For": "127.0.0.1"}, "192.0.2.1/32", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/ts2021", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			src, exempt := requestSource(r)
			got := ""
			if src.IsValid() {
				got = src.String()
			}
			if got != tt.want || exempt != tt.wantExempt {
				t.Errorf("requestSource(%s, %v) = %q, %v; want %q, %v", tt.remote, tt.header, got, exempt, tt.want, tt.wantExempt)
			}
		})
	}
}

// One source hammering /ts2021 gets 429 after its burst, with a
// Retry-After; another source, and this host, are not affected.
func TestUpgradeRateLimit(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	serverKey := s.noiseKey.Public()
	urlA, urlB := s.urlFrom(t, sourceA), s.urlFrom(t, sourceB)

	start := time.Now()
	var ok, limited int
	for i := range 100 {
		res := tryUpgrade(t, urlA, serverKey)
		switch res.StatusCode {
		case http.StatusSwitchingProtocols:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 6 {
				t.Errorf("429's Retry-After = %q, want 1 to 6 seconds", res.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("upgrade %d from %s: status %s", i, sourceA, res.Status)
		}
	}
	// The bucket refills by one every upgradeEvery while the loop runs.
	maxOK := upgradeBurst + int(time.Since(start)/upgradeEvery)
	if ok < upgradeBurst || ok > maxOK {
		t.Errorf("%d of 100 upgrades from one source succeeded, want %d to %d", ok, upgradeBurst, maxOK)
	}
	if got := s.limits.limitedUpgrade.Value(); got != int64(limited) {
		t.Errorf("limitedUpgrade = %d, want %d", got, limited)
	}

	if res := tryUpgrade(t, urlB, serverKey); res.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("upgrade from another source during the flood: %s, want 101", res.Status)
	}
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{})
	if res := newTestNode(t, urlB, "phone").register(t, ak); !res.MachineAuthorized {
		t.Errorf("registering from another source during the flood = %+v, want authorized", res)
	}
	// This host (the gateway agent) is never limited.
	for i := range 2 * upgradeBurst {
		if res := tryUpgrade(t, s.url, serverKey); res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d over loopback: %s, want 101", i, res.Status)
		}
	}
}

// One source's interactive logins are capped at its share of the pending
// ones; another source, and this host, still get theirs.
func TestPendingPerSource(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	urlA, urlB := s.urlFrom(t, sourceA), s.urlFrom(t, sourceB)

	var first *testNode
	for i := range maxPendingPerSource {
		n := newTestNode(t, urlA, fmt.Sprintf("stranger%d", i))
		startLogin(t, n)
		if first == nil {
			first = n
		}
	}
	// tsp returns RegisterResponse.Error as its error, as tailscale up shows it.
	res, err := newTestNode(t, urlA, "one-too-many").tryRegister("")
	if err == nil || !strings.Contains(err.Error(), "too many logins from your address") {
		t.Errorf("login %d from one source = %+v, %v; want a RegisterResponse.Error about its address", maxPendingPerSource+1, res, err)
	}
	if got := s.limits.limitedPending.Value(); got != 1 {
		t.Errorf("limitedPending = %d, want 1", got)
	}
	// A device already waiting may ask again: it keeps its login.
	startLogin(t, first)

	phone := newTestNode(t, urlB, "phone")
	code := startLogin(t, phone)
	startLogin(t, newTestNode(t, s.url, "local"))
	if got, _ := s.PendingLogins(ctx); len(got) != maxPendingPerSource+2 {
		t.Errorf("%d logins pending, want %d", len(got), maxPendingPerSource+2)
	}
	if _, err := s.ApproveRegistration(ctx, code); err != nil {
		t.Errorf("approving the login from another source: %v", err)
	}

	// A login that ends frees its source's place.
	got, _ := s.PendingLogins(ctx)
	for _, p := range got {
		if p.Hostname == "stranger0" {
			if err := s.DenyRegistration(ctx, p.Code); err != nil {
				t.Fatal(err)
			}
		}
	}
	startLogin(t, newTestNode(t, urlA, "next"))
}

// Past its burst, a source's registrations get 429; this host's do not.
func TestRegisterRateLimit(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	n := newTestNode(t, s.urlFrom(t, sourceC), "eager")
	for i := range registerBurst {
		if _, err := n.tryRegister(""); err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	if _, err := n.tryRegister(""); err == nil || !strings.Contains(err.Error(), "429") {
		t.Errorf("registration %d from one source: %v, want http 429", registerBurst+1, err)
	}
	if got := s.limits.limitedRegister.Value(); got != 1 {
		t.Errorf("limitedRegister = %d, want 1", got)
	}
	local := newTestNode(t, s.url, "agent")
	for i := range registerBurst + 5 {
		if _, err := local.tryRegister(""); err != nil {
			t.Fatalf("registration %d over loopback: %v", i, err)
		}
	}
}

// A Noise connection counts as unauthenticated until its machine is
// registered, and a known machine's does not count at all.
func TestUnauthenticatedConnections(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	serverKey := s.noiseKey.Public()
	urlA := s.urlFrom(t, sourceA)
	unauth := func() int { return s.limits.unauth.count() }

	tryUpgrade(t, urlA, serverKey)
	waitFor(t, "one unauthenticated connection", func() bool { return unauth() == 1 })

	// The server gives the place back just after it answers.
	phone := newTestNode(t, urlA, "phone")
	phone.register(t, mustAuthKey(t, s.Server, AuthKeyOptions{}))
	waitFor(t, "the registered phone's connection to count no more", func() bool { return unauth() == 1 })
	// The same machine, dialing again, is known from its handshake.
	tryUpgradeAs(t, urlA, serverKey, phone.mk)
	waitFor(t, "a known machine's connection to count no more", func() bool { return unauth() == 1 })
	// A login waiting for approval is unauthenticated.
	startLogin(t, newTestNode(t, urlA, "laptop"))
	if got := unauth(); got != 2 {
		t.Errorf("with a login waiting, %d unauthenticated connections, want 2", got)
	}
	e := scrape(t, s.Server)
	if got, _ := e.Value("homenet_control_unauthenticated_connections"); got != 2 {
		t.Errorf("homenet_control_unauthenticated_connections = %v, want 2", got)
	}
}

func TestLimitsMetrics(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	urlB := s.urlFrom(t, sourceB)
	var ok, limited float64
	for range upgradeBurst + 3 {
		if tryUpgrade(t, urlB, s.noiseKey.Public()).StatusCode == http.StatusTooManyRequests {
			limited++
		} else {
			ok++
		}
	}
	if limited == 0 {
		t.Fatalf("no upgrade of %d was refused", upgradeBurst+3)
	}
	e := scrape(t, s.Server)
	tests := []struct {
		name   string
		typ    string
		labels []string
		want   float64
	}{
		{"homenet_control_rate_limited_total", "counter", []string{"what", "noise_upgrade"}, limited},
		{"homenet_control_rate_limited_total", "counter", []string{"what", "register"}, 0},
		{"homenet_control_rate_limited_total", "counter", []string{"what", "pending_login"}, 0},
		{"homenet_control_rate_limited_total", "counter", []string{"what", "unauthenticated_connections"}, 0},
		{"homenet_control_unauthenticated_closed_total", "counter", []string{"reason", "idle"}, 0},
		{"homenet_control_unauthenticated_closed_total", "counter", []string{"reason", "age"}, 0},
		{"homenet_control_unauthenticated_closed_total", "counter", []string{"reason", "evicted"}, 0},
		{"homenet_control_unauthenticated_connections", "gauge", nil, ok}, // each still open
	}
	for _, tt := range tests {
		if got := e.Types[tt.name]; got != tt.typ {
			t.Errorf("type of %s = %q, want %q", tt.name, got, tt.typ)
		}
		if got, ok := e.Value(tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
}

// unauthConns' places: per source, in all, and who is pushed out when all
// are taken.
func TestUnauthConns(t *testing.T) {
	a, b, c := ratelimit.Source(netip.MustParseAddr(sourceA)), ratelimit.Source(netip.MustParseAddr(sourceB)), ratelimit.Source(netip.MustParseAddr(sourceC))
	type op struct {
		src     netip.Prefix
		attach  bool   // finish the handshake
		wantErr error  // of acquire
		closed  string // the connection closed to make room, by name; "" none
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{"per source", []op{{a, true, nil, ""}, {a, true, nil, ""}, {a, true, errUnauthSourceFull, ""}, {b, true, nil, ""}}},
		{"full: the heaviest source's oldest goes", []op{
			{a, true, nil, ""}, {b, true, nil, ""}, {a, true, nil, ""}, {c, true, nil, ""},
			{b, true, nil, "0"},
		}},
		{"full: upgrades in progress are not pushed out", []op{
			{a, false, nil, ""}, {a, true, nil, ""}, {b, false, nil, ""}, {b, false, nil, ""},
			{c, true, nil, "1"},
			{c, true, nil, "4"}, // c is now the only source with one to push out
		}},
		{"full of upgrades in progress", []op{
			{a, false, nil, ""}, {a, false, nil, ""}, {b, false, nil, ""}, {b, false, nil, ""},
			{c, true, errUnauthFull, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unauthConns{max: 4, perSource: 2, idle: time.Hour, maxAge: time.Hour}
			var closed []string
			for i, o := range tt.ops {
				before := len(closed)
				c, err := u.acquire(o.src, time.Now())
				if err != o.wantErr {
					t.Fatalf("op %d: acquire(%v) = %v, want %v", i, o.src, err, o.wantErr)
				}
				if err == nil && o.attach {
					name := strconv.Itoa(i)
					u.attach(c, func() { closed = append(closed, name) }, time.Now())
				}
				got := ""
				if len(closed) > before {
					got = strings.Join(closed[before:], ",")
				}
				if got != o.closed {
					t.Errorf("op %d: closed %q, want %q", i, got, o.closed)
				}
				if u.count() > u.max {
					t.Errorf("op %d: %d places taken, max %d", i, u.count(), u.max)
				}
			}
			if got := u.evicted.Value(); got != int64(len(closed)) {
				t.Errorf("evicted = %d, want %d", got, len(closed))
			}
		})
	}
}

// An unauthenticated connection is closed after idling, and after its
// maximum age even with a request in flight; one released is left alone.
func TestUnauthConnsIdleAndAge(t *testing.T) {
	u := &unauthConns{max: 10, perSource: 10, idle: 50 * time.Millisecond, maxAge: time.Second}
	src := ratelimit.Source(netip.MustParseAddr(sourceA))
	var idle, busy, released atomic.Bool
	start := time.Now()
	cIdle, _ := u.acquire(src, start)
	u.attach(cIdle, func() { idle.Store(true) }, start)
	cBusy, _ := u.acquire(src, start)
	u.attach(cBusy, func() { busy.Store(true) }, start)
	u.begin(cBusy)
	cReleased, _ := u.acquire(src, start)
	u.attach(cReleased, func() { released.Store(true) }, start)
	u.release(cReleased)
	u.release(cReleased) // twice is fine

	waitFor(t, "the idle connection closed", idle.Load)
	if d := time.Since(start); d < u.idle {
		t.Errorf("idle connection closed after %v, before idle %v", d, u.idle)
	}
	if busy.Load() {
		t.Errorf("a connection with a request in flight was closed for idling")
	}
	waitFor(t, "the busy connection closed at its age", busy.Load)
	if d := time.Since(start); d < u.maxAge {
		t.Errorf("busy connection closed after %v, before maxAge %v", d, u.maxAge)
	}
	if released.Load() || u.count() != 0 {
		t.Errorf("released closed = %v, %d places taken; want false, 0", released.Load(), u.count())
	}
	if u.closedIdle.Value() != 1 || u.closedAge.Value() != 1 {
		t.Errorf("closedIdle, closedAge = %d, %d; want 1, 1", u.closedIdle.Value(), u.closedAge.Value())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
