package webadmin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/control"
	"homenet/control/store"

	"tailscale.com/tailcfg"
)

// fakeBackend is a Backend with a small fixed tailnet that records every
// call that changes something.
type fakeBackend struct {
	mu      sync.Mutex
	calls   []string
	status  control.Status
	nodes   []control.NodeInfo
	keys    []control.AuthKeyInfo
	routes  []control.RouteInfo
	pending []control.PendingLogin
	failing error // if set, every change fails with it
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func newFakeBackend() *fakeBackend {
	lan := netip.MustParsePrefix("192.168.1.0/24")
	return &fakeBackend{
		status: control.Status{
			Version: "1.2.3", ServerURL: "http://192.168.1.2:8080",
			Prefix4: netip.MustParsePrefix("100.64.0.0/10"), Prefix6: netip.MustParsePrefix("fd7a:115c:a1e0::/48"),
			Started: t0.Add(-3 * time.Hour), Nodes: 2, Online: 1, Pending: 1,
			DERPRegions: []control.DERPRegion{{ID: 900, Code: "home", HostName: "home.example.net", DERPPort: 443, STUNPort: 3478}},
			Extra: map[string]any{
				"reachability": map[string]any{"case": "ipv6-only", "wan": "eth0", "wan_ipv4": "100.64.3.9", "global_ipv6": "2001:db8::2", "ipv6_interface": "eth0", "advice": "No public IPv4 (carrier NAT)."},
				"ddns":         map[string]any{"provider": "cloudflare", "name": "home.example.net", "published": []string{"AAAA 2001:db8::2"}, "updates": 3},
				"certificate":  map[string]any{"mode": "acme-dns-01", "names": []string{"home.example.net"}, "not_after": t0.Add(60 * 24 * time.Hour)},
				"gateway": map[string]any{"state": "Running", "tun": "homenet0", "firewall": "nftables", "connected": true,
					"advertised_routes": []string{"192.168.1.0/24", "0.0.0.0/0", "::/0"}, "approved_routes": []string{"192.168.1.0/24"}, "exit_node": true, "wan": "eth0"},
				"gateway_lan": map[string]any{"routes": []string{"192.168.1.0/24"}, "wan": "eth0", "why": []string{"eth1 holds 192.168.1.2/24 and is not the WAN"}},
				"lan_dns":     map[string]any{"resolver": "192.168.1.1", "domains": []string{"lan"}, "why": "split DNS for lan via 192.168.1.1: domain from /etc/config/dhcp, dnsmasq listening on 192.168.1.1:53"},
			},
		},
		nodes: []control.NodeInfo{
			{ID: 1, Name: "gateway", Hostname: "gateway", OS: "linux", Addresses: []netip.Addr{netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("fd7a:115c:a1e0::1")},
				Online: true, Tags: []string{"tag:gateway"}, AdvertisedRoutes: []netip.Prefix{lan}, ApprovedRoutes: []netip.Prefix{lan}},
			{ID: 2, Name: "pixel", Hostname: "Pixel 9", OS: "android", Addresses: []netip.Addr{netip.MustParseAddr("100.64.0.2")},
				LastSeen: t0.Add(-2 * time.Hour), KeyExpiry: t0.Add(170 * 24 * time.Hour)},
		},
		keys: []control.AuthKeyInfo{
			{ID: 1, Prefix: "hn-aaaaaaaaaaaa", Reusable: true, Created: t0.Add(-time.Hour), Expiry: t0.Add(23 * time.Hour), Valid: true},
			{ID: 2, Prefix: "hn-bbbbbbbbbbbb", Created: t0.Add(-48 * time.Hour), Expiry: t0.Add(-24 * time.Hour)},
			{ID: 3, Prefix: "hn-cccccccccccc", Created: t0.Add(-time.Hour), Expiry: t0.Add(time.Hour), Used: 1},
			{ID: 4, Prefix: "hn-dddddddddddd", Reusable: true, Created: t0.Add(-time.Hour), Expiry: t0.Add(time.Hour)},
		},
		routes: []control.RouteInfo{
			{NodeID: 1, NodeName: "gateway", Prefix: lan, Approved: true},
			{NodeID: 1, NodeName: "gateway", Prefix: netip.MustParsePrefix("0.0.0.0/0"), ExitNode: true},
		},
		pending: []control.PendingLogin{
			{Code: "0123456789ab", Hostname: "iPhone <b>15</b>", OS: "iOS", MachineKey: "mkey:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", Created: t0.Add(-2 * time.Minute)},
		},
	}
}

func (f *fakeBackend) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.failing
}

// takeCalls returns the calls recorded since the last takeCalls.
func (f *fakeBackend) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeBackend) CreateAuthKey(ctx context.Context, opts control.AuthKeyOptions) (control.AuthKeyInfo, string, error) {
	if err := f.record("CreateAuthKey reusable=%v ephemeral=%v expiry=%v tags=%v", opts.Reusable, opts.Ephemeral, opts.Expiry, opts.Tags); err != nil {
		return control.AuthKeyInfo{}, "", err
	}
	info := control.AuthKeyInfo{ID: 9, Prefix: "hn-999999999999", Reusable: opts.Reusable, Ephemeral: opts.Ephemeral,
		Tags: opts.Tags, Created: t0, Expiry: t0.Add(opts.Expiry), Valid: true}
	f.mu.Lock()
	f.keys = append(f.keys, info)
	f.mu.Unlock()
	return info, "hn-999999999999-0123456789abcdef0123456789abcdef", nil
}

func (f *fakeBackend) AuthKeys(context.Context) ([]control.AuthKeyInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.AuthKeyInfo(nil), f.keys...), nil
}

func (f *fakeBackend) ExpireAuthKey(ctx context.Context, id int64) error {
	return f.record("ExpireAuthKey %d", id)
}

func (f *fakeBackend) DeleteAuthKey(ctx context.Context, id int64) error {
	return f.record("DeleteAuthKey %d", id)
}

func (f *fakeBackend) Nodes(context.Context) ([]control.NodeInfo, error) { return f.nodes, nil }

func (f *fakeBackend) ApproveRegistration(ctx context.Context, code string) (control.NodeInfo, error) {
	if err := f.record("ApproveRegistration %s", code); err != nil {
		return control.NodeInfo{}, err
	}
	f.dropPending(code)
	return control.NodeInfo{ID: 3, Name: "iphone-15", Hostname: "iPhone 15", Addresses: []netip.Addr{netip.MustParseAddr("100.64.0.3")}}, nil
}

func (f *fakeBackend) RenameNode(ctx context.Context, id tailcfg.NodeID, name string) error {
	return f.record("RenameNode %d %s", id, name)
}

func (f *fakeBackend) ExpireNode(ctx context.Context, id tailcfg.NodeID) error {
	return f.record("ExpireNode %d", id)
}

func (f *fakeBackend) DeleteNode(ctx context.Context, id tailcfg.NodeID) error {
	return f.record("DeleteNode %d", id)
}

func (f *fakeBackend) Routes(context.Context) ([]control.RouteInfo, error) { return f.routes, nil }

func (f *fakeBackend) SetRouteApproved(ctx context.Context, id tailcfg.NodeID, route netip.Prefix, approved bool) error {
	return f.record("SetRouteApproved %d %s %v", id, route, approved)
}

func (f *fakeBackend) Status(context.Context) (control.Status, error) { return f.status, nil }

func (f *fakeBackend) PendingLogins(context.Context) ([]control.PendingLogin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.PendingLogin(nil), f.pending...), nil
}

func (f *fakeBackend) DenyRegistration(ctx context.Context, code string) error {
	if err := f.record("DenyRegistration %s", code); err != nil {
		return err
	}
	f.dropPending(code)
	return nil
}

func (f *fakeBackend) dropPending(code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = slices.DeleteFunc(f.pending, func(p control.PendingLogin) bool { return p.Code == code })
}

var _ Backend = (*fakeBackend)(nil)

const testPassword = "correct horse battery staple"

// harness is a web admin on a fake backend with a settable clock and
// captured logs.
type harness struct {
	t    *testing.T
	be   *fakeBackend
	srv  *Server
	h    http.Handler
	logs *syncBuffer

	mu  sync.Mutex
	now time.Time
}

// syncBuffer is a bytes.Buffer safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newHarness(t *testing.T, secure bool) *harness {
	t.Helper()
	h := &harness{t: t, be: newFakeBackend(), logs: new(syncBuffer), now: t0}
	srv, err := New(Config{
		Backend:  h.be,
		Password: func() string { return testPassword },
		Secure:   secure,
		Logger:   slog.New(slog.NewTextHandler(h.logs, nil)),
		Now:      h.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

// do sends a request from src (an IP address) with cookie, if any; a
// non-nil form is sent as a POST body.
func (h *harness) do(method, path, src string, cookie *http.Cookie, form url.Values) *httptest.ResponseRecorder {
	h.t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(src), 50000).String()
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

// login logs in from src and returns the session cookie and its CSRF
// token.
func (h *harness) login(src string) (*http.Cookie, string) {
	h.t.Helper()
	w := h.do("POST", "/login", src, nil, url.Values{"password": {testPassword}})
	if w.Code != http.StatusSeeOther {
		h.t.Fatalf("login from %s: status %d, body %s", src, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == h.srv.cookieName() {
			sess := h.srv.sessions.get(c.Value, h.clock())
			if sess == nil {
				h.t.Fatalf("login from %s: cookie names no session", src)
			}
			return c, sess.csrf
		}
	}
	h.t.Fatalf("login from %s: no session cookie in %v", src, w.Result().Cookies())
	return nil, ""
}

// errNope is a backend failure for tests.
var errNope = fmt.Errorf("node 7: %w", store.ErrNotFound)
