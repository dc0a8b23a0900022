package webadmin

import (
	"context"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"homenet/control"
)

func TestNewRejectsIncompleteConfig(t *testing.T) {
	be := newFakeBackend()
	pw := func() string { return "x" }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no backend", Config{Password: pw}},
		{"no password", Config{Backend: be}},
		{"negative TTL", Config{Backend: be, Password: pw, SessionTTL: -time.Second}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		password   string
		next       string
		wantCode   int
		wantTo     string // Location on success
		wantBody   string
		wantCookie bool
	}{
		{"right password", testPassword, "", http.StatusSeeOther, "/", "", true},
		{"right password, next page", testPassword, "/keys", http.StatusSeeOther, "/keys", "", true},
		{"next off site", testPassword, "//evil.example/x", http.StatusSeeOther, "/", "", true},
		{"next with scheme", testPassword, "https://evil.example/", http.StatusSeeOther, "/", "", true},
		{"wrong password", "hunter2", "", http.StatusUnauthorized, "", "Wrong password. 4 more tries", false},
		{"empty password", "", "", http.StatusUnauthorized, "", "Wrong password.", false},
		{"password prefix", testPassword[:5], "", http.StatusUnauthorized, "", "Wrong password.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			w := h.do("POST", "/login", "192.0.2.1", nil, url.Values{"password": {tt.password}, "next": {tt.next}})
			if w.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d; body:\n%s", w.Code, tt.wantCode, w.Body)
			}
			if got := w.Header().Get("Location"); got != tt.wantTo {
				t.Errorf("Location = %q, want %q", got, tt.wantTo)
			}
			if !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("body lacks %q:\n%s", tt.wantBody, w.Body)
			}
			if got := len(w.Result().Cookies()) > 0; got != tt.wantCookie {
				t.Errorf("cookie set = %v, want %v", got, tt.wantCookie)
			}
			logs := h.logs.String()
			if strings.Contains(logs, testPassword) || (tt.password != "" && strings.Contains(logs, tt.password)) {
				t.Errorf("the logs contain the password:\n%s", logs)
			}
			wantLog := `msg="webadmin: login" source=192.0.2.1`
			if !tt.wantCookie {
				wantLog = `msg="webadmin: login failed" source=192.0.2.1`
			}
			if !strings.Contains(logs, wantLog) {
				t.Errorf("logs lack %q:\n%s", wantLog, logs)
			}
		})
	}
}

func TestLoginWithoutPasswordSet(t *testing.T) {
	srv, err := New(Config{Backend: newFakeBackend(), Password: func() string { return "" }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, h: srv.Handler()}
	if w := h.do("GET", "/login", "192.0.2.1", nil, nil); !strings.Contains(w.Body.String(), "No admin password is set") {
		t.Errorf("login page does not say that no password is set:\n%s", w.Body)
	}
	if w := h.do("POST", "/login", "192.0.2.1", nil, url.Values{"password": {""}}); w.Code != http.StatusUnauthorized {
		t.Errorf("logging in with the empty password: status %d, want 401", w.Code)
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		h := newHarness(t, secure)
		c, _ := h.login("192.0.2.1")
		wantName := map[bool]string{false: "homenet_admin", true: "__Host-homenet_admin"}[secure]
		if c.Name != wantName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != secure ||
			c.Path != "/" || c.Domain != "" || c.MaxAge != int(DefaultSessionTTL.Seconds()) || len(c.Value) < 20 {
			t.Errorf("secure=%v: cookie = %+v; want %s, HttpOnly, SameSite=Strict, Secure=%v, Path=/, no Domain, Max-Age=%v",
				secure, c, wantName, secure, DefaultSessionTTL.Seconds())
		}
	}
}

func TestLockout(t *testing.T) {
	h := newHarness(t, false)
	const guesser, owner = "192.0.2.66", "2001:db8::7"
	for i := 1; i <= MaxLoginFailures; i++ {
		w := h.do("POST", "/login", guesser, nil, url.Values{"password": {"guess"}})
		want := http.StatusUnauthorized
		if i == MaxLoginFailures {
			want = http.StatusTooManyRequests
		}
		if w.Code != want {
			t.Fatalf("failure %d: status %d, want %d", i, w.Code, want)
		}
	}
	// Locked out: even the right password is refused, and plainly.
	w := h.do("POST", "/login", guesser, nil, url.Values{"password": {testPassword}})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || len(w.Result().Cookies()) > 0 {
		t.Errorf("right password while locked out: status %d, Retry-After %q, cookies %v; want 429, a Retry-After, no cookie",
			w.Code, w.Header().Get("Retry-After"), w.Result().Cookies())
	}
	if body := w.Body.String(); !strings.Contains(body, "Too many wrong passwords") || !strings.Contains(body, "in 15 minutes") {
		t.Errorf("lockout page does not say so plainly:\n%s", body)
	}
	if w := h.do("GET", "/login", guesser, nil, nil); !strings.Contains(w.Body.String(), "Too many wrong passwords") {
		t.Errorf("login form shown to a locked-out source:\n%s", w.Body)
	}
	if !strings.Contains(h.logs.String(), `msg="webadmin: login refused, source locked out" source=192.0.2.66`) {
		t.Errorf("refused login not logged:\n%s", h.logs)
	}

	// Other sources are not affected.
	h.login(owner)
	h.login("192.0.2.67")

	// After the lockout the guesser may try again.
	h.advance(LockoutDuration + time.Second)
	h.login(guesser)
}

func TestFailuresForgottenAfterWindow(t *testing.T) {
	h := newHarness(t, false)
	for range MaxLoginFailures - 1 {
		h.do("POST", "/login", "192.0.2.1", nil, url.Values{"password": {"guess"}})
	}
	h.advance(failureWindow + time.Second)
	if w := h.do("POST", "/login", "192.0.2.1", nil, url.Values{"password": {"guess"}}); w.Code != http.StatusUnauthorized {
		t.Errorf("a failure long after the others: status %d, want 401 (no lockout)", w.Code)
	}
}

func TestLimiterTableIsBounded(t *testing.T) {
	l := newLoginLimiter()
	locked := netipAddr(t, "10.255.255.255")
	for range MaxLoginFailures {
		l.fail(locked, t0)
	}
	for i := range maxSources + 100 {
		l.fail(netipAddr(t, "10.0."+itoa(i/256)+"."+itoa(i%256)), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(l.sources) > maxSources {
		t.Errorf("limiter holds %d sources, want at most %d", len(l.sources), maxSources)
	}
	if l.lockedUntil(locked, t0.Add(time.Minute)).IsZero() {
		t.Error("a flood of other sources unlocked a locked-out source")
	}
}

func TestPagesNeedLogin(t *testing.T) {
	h := newHarness(t, false)
	for _, path := range []string{"/", "/devices", "/pending", "/routes", "/keys", "/phone"} {
		w := h.do("GET", path, "192.0.2.1", nil, nil)
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login?next=") {
			t.Errorf("GET %s without login: status %d, Location %q; want a redirect to /login", path, w.Code, w.Header().Get("Location"))
		}
	}
	if w := h.do("GET", "/api/pending", "192.0.2.1", nil, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/pending without login: status %d, want 401", w.Code)
	}
	if w := h.do("POST", "/devices/2/delete", "192.0.2.1", nil, url.Values{}); w.Code != http.StatusUnauthorized {
		t.Errorf("POST without login: status %d, want 401", w.Code)
	}
	if calls := h.be.takeCalls(); len(calls) > 0 {
		t.Errorf("backend called without login: %v", calls)
	}
}

func TestSessionExpires(t *testing.T) {
	h := newHarness(t, false)
	c, _ := h.login("192.0.2.1")
	if w := h.do("GET", "/", "192.0.2.1", c, nil); w.Code != http.StatusOK {
		t.Fatalf("overview right after login: status %d", w.Code)
	}
	h.advance(DefaultSessionTTL)
	if w := h.do("GET", "/", "192.0.2.1", c, nil); w.Code != http.StatusSeeOther {
		t.Errorf("overview after the session TTL: status %d, want a redirect to log in", w.Code)
	}
}

func TestLogout(t *testing.T) {
	h := newHarness(t, false)
	c, csrf := h.login("192.0.2.1")
	w := h.do("POST", "/logout", "192.0.2.1", c, url.Values{"csrf": {csrf}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Fatalf("logout: status %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookies = %v, want the session cookie deleted", cs)
	}
	if w := h.do("GET", "/", "192.0.2.1", c, nil); w.Code != http.StatusSeeOther {
		t.Errorf("old cookie after logout: status %d, want a redirect to log in", w.Code)
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t, false)
	c, csrf := h.login("192.0.2.1")
	c2, csrf2 := h.login("192.0.2.2")
	tests := []struct {
		name     string
		cookie   *http.Cookie
		token    string
		wantCode int
	}{
		{"no token", c, "", http.StatusForbidden},
		{"wrong token", c, "x" + csrf[1:], http.StatusForbidden},
		{"another session's token", c, csrf2, http.StatusForbidden},
		{"right token", c, csrf, http.StatusOK},
		{"other session, its token", c2, csrf2, http.StatusOK},
	}
	for _, tt := range tests {
		for _, path := range []string{"/devices/2/expire", "/keys", "/pending/0123456789ab/deny", "/logout"} {
			if path == "/logout" && tt.wantCode == http.StatusOK {
				continue // would end the session the other cases use
			}
			w := h.do("POST", path, "192.0.2.1", tt.cookie, url.Values{"csrf": {tt.token}, "expiry": {"1h"}})
			want := tt.wantCode
			if want == http.StatusOK && path != "/keys" {
				want = http.StatusSeeOther // actions redirect; creating a key shows it
			}
			if w.Code != want {
				t.Errorf("%s: POST %s: status %d, want %d", tt.name, path, w.Code, want)
			}
			calls := h.be.takeCalls()
			if tt.wantCode == http.StatusForbidden {
				if len(calls) > 0 {
					t.Errorf("%s: POST %s called the backend: %v", tt.name, path, calls)
				}
				if !strings.Contains(w.Body.String(), "nothing was done") {
					t.Errorf("%s: POST %s: the refusal does not say nothing was done:\n%s", tt.name, path, w.Body)
				}
			}
		}
	}
}

func TestCrossOriginRefused(t *testing.T) {
	h := newHarness(t, false)
	c, csrf := h.login("192.0.2.1")
	tests := []struct {
		name, path string
		header     http.Header
		cookie     *http.Cookie
		form       url.Values
	}{
		{"login from another site", "/login", http.Header{"Sec-Fetch-Site": {"cross-site"}}, nil, url.Values{"password": {"guess"}}},
		{"login, foreign Origin", "/login", http.Header{"Origin": {"http://evil.example"}}, nil, url.Values{"password": {"guess"}}},
		{"action from another site", "/devices/2/delete", http.Header{"Sec-Fetch-Site": {"cross-site"}}, c, url.Values{"csrf": {csrf}}},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", tt.path, strings.NewReader(tt.form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tt.header {
			r.Header[k] = v
		}
		r.RemoteAddr = "192.0.2.1:50000"
		if tt.cookie != nil {
			r.AddCookie(tt.cookie)
		}
		w := httptest.NewRecorder()
		h.h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", tt.name, w.Code)
		}
	}
	if calls := h.be.takeCalls(); len(calls) > 0 {
		t.Errorf("cross-origin requests called the backend: %v", calls)
	}
	// Refused logins do not count towards a lockout.
	if left, _ := h.srv.limiter.fail(netipAddr(t, "192.0.2.1"), t0); left != MaxLoginFailures-1 {
		t.Errorf("after refused cross-origin logins, %d tries left, want %d", left, MaxLoginFailures-1)
	}
	// Same-origin browser requests pass.
	r := httptest.NewRequest("POST", "/devices/2/expire", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Origin", "http://example.com")
	r.AddCookie(c)
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		t.Errorf("same-origin action: status %d, want 303", w.Code)
	}
}

func TestPagesRender(t *testing.T) {
	h := newHarness(t, false)
	c, csrf := h.login("192.0.2.1")
	tests := []struct {
		path string
		want []string
	}{
		{"/", []string{
			"http://192.168.1.2:8080", "100.64.0.0/10", "2 (1 online)", "ipv6-only", "2001:db8::2", "No public IPv4 (carrier NAT).",
			"home.example.net at cloudflare", "AAAA 2001:db8::2", "acme-dns-01", "Region 900", "DERP port 443, STUN port 3478",
			"Running on homenet0", "nftables", "not approved: 0.0.0.0/0, ::/0", "eth1 holds 192.168.1.2/24",
			"1 login is waiting for approval.", "The gateway advertises routes that are not approved",
		}},
		{"/devices", []string{
			"gateway", "100.64.0.1, fd7a:115c:a1e0::1", "tag:gateway", "online", "pixel", "android", "2 hours ago", "expires in 170 days",
			`action="/devices/2/rename"`, `action="/devices/2/expire"`, `action="/devices/2/delete"`,
		}},
		{"/pending", []string{
			"iPhone &lt;b&gt;15&lt;/b&gt;", "iOS", "mkey:00112233…", "2 minutes ago", `action="/pending/0123456789ab/approve"`, `action="/pending/0123456789ab/deny"`,
		}},
		{"/routes", []string{"192.168.1.0/24", "0.0.0.0/0", "exit node", `action="/routes/unapprove"`, `action="/routes/approve"`, `name="node_id" value="1"`}},
		{"/keys", []string{"hn-aaaaaaaaaaaa", "valid", "hn-bbbbbbbbbbbb", "expired", "hn-cccccccccccc", "used", "hn-dddddddddddd", "revoked", `action="/keys/1/expire"`, `name="reusable"`}},
		{"/phone", []string{
			"http://192.168.1.2:8080", `<svg class="qr"`, "Use an alternate server", "Custom control server URL", "Use a custom coordination server",
			"Log in…", `id="live-pending"`, "iPhone &lt;b&gt;15&lt;/b&gt;", `name="return" value="/phone"`,
		}},
	}
	for _, tt := range tests {
		w := h.do("GET", tt.path, "192.0.2.1", c, nil)
		body := w.Body.String()
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: status %d:\n%s", tt.path, w.Code, body)
			continue
		}
		want := append(tt.want, `<meta name="csrf" content="`+csrf+`">`, `<span class="badge">1</span>`)
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: page lacks %q", tt.path, s)
			}
		}
		if strings.Contains(body, "<b>15</b>") {
			t.Errorf("GET %s: a device's host name is not escaped", tt.path)
		}
		if rp := w.Header().Get("Referrer-Policy"); rp != "same-origin" {
			t.Errorf("Referrer-Policy %q, want same-origin (no-referrer makes browsers send Origin: null, and every form is refused)", rp)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: CSP %q, Cache-Control %q", tt.path, csp, w.Header().Get("Cache-Control"))
		}
		// Every form that posts carries the CSRF token.
		if n, m := strings.Count(body, `method="post"`), strings.Count(body, `name="csrf" value="`+csrf+`"`); n != m {
			t.Errorf("GET %s: %d forms post but %d carry the CSRF token", tt.path, n, m)
		}
	}
	for _, path := range []string{"/static/style.css", "/static/app.js"} {
		if w := h.do("GET", path, "192.0.2.1", nil, nil); w.Code != http.StatusOK || w.Body.Len() == 0 {
			t.Errorf("GET %s: status %d, %d bytes", path, w.Code, w.Body.Len())
		}
	}
	if w := h.do("GET", "/static/nope.js", "192.0.2.1", nil, nil); w.Code != http.StatusNotFound {
		t.Errorf("GET /static/nope.js: status %d, want 404", w.Code)
	}
	if w := h.do("GET", "/nope", "192.0.2.1", c, nil); w.Code != http.StatusNotFound {
		t.Errorf("GET /nope: status %d, want 404", w.Code)
	}
}

func TestActions(t *testing.T) {
	tests := []struct {
		path     string
		form     url.Values
		wantCall string // "" for none
		wantTo   string
		wantMsg  string
	}{
		{"/devices/2/rename", url.Values{"name": {"my-phone"}}, "RenameNode 2 my-phone", "/devices", "Renamed pixel to my-phone."},
		{"/devices/2/rename", url.Values{"name": {"  "}}, "", "/devices", "the new name is empty"},
		{"/devices/x/rename", url.Values{"name": {"a"}}, "", "/devices", `device ID "x" is not a positive integer`},
		{"/devices/2/expire", nil, "ExpireNode 2", "/devices", "Expired the key of pixel"},
		{"/devices/2/delete", nil, "DeleteNode 2", "/devices", "Deleted pixel."},
		{"/pending/0123456789ab/approve", nil, "ApproveRegistration 0123456789ab", "/pending", "Approved iPhone 15: it joins as iphone-15 with 100.64.0.3."},
		{"/pending/0123456789ab/approve", url.Values{"return": {"/phone"}}, "ApproveRegistration 0123456789ab", "/phone", "Approved"},
		{"/pending/0123456789ab/deny", url.Values{"return": {"https://evil.example/"}}, "DenyRegistration 0123456789ab", "/pending", "Denied the login of iPhone <b>15</b>"},
		{"/routes/approve", url.Values{"node_id": {"1"}, "prefix": {"0.0.0.0/0"}}, "SetRouteApproved 1 0.0.0.0/0 true", "/routes", "Approved the exit node (0.0.0.0/0 and ::/0) via gateway."},
		{"/routes/unapprove", url.Values{"node_id": {"1"}, "prefix": {"192.168.1.0/24"}}, "SetRouteApproved 1 192.168.1.0/24 false", "/routes", "Unapproved 192.168.1.0/24 via gateway."},
		{"/routes/approve", url.Values{"node_id": {"1"}, "prefix": {"192.168.1.7/24"}}, "", "/routes", "has host bits set"},
		{"/routes/approve", url.Values{"node_id": {"0"}, "prefix": {"10.0.0.0/8"}}, "", "/routes", "not a positive integer"},
		{"/keys/1/expire", nil, "ExpireAuthKey 1", "/keys", "Expired key hn-aaaaaaaaaaaa"},
		{"/keys", url.Values{"expiry": {"3y"}}, "", "/keys", `key expiry "3y" is not one of the choices`},
	}
	for _, tt := range tests {
		h := newHarness(t, false)
		c, csrf := h.login("192.0.2.1")
		form := url.Values{"csrf": {csrf}}
		for k, v := range tt.form {
			form[k] = v
		}
		w := h.do("POST", tt.path, "192.0.2.1", c, form)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.wantTo {
			t.Errorf("POST %s %v: status %d, Location %q; want 303 to %s", tt.path, tt.form, w.Code, w.Header().Get("Location"), tt.wantTo)
		}
		calls := h.be.takeCalls()
		if tt.wantCall == "" && len(calls) > 0 || tt.wantCall != "" && !slices.Equal(calls, []string{tt.wantCall}) {
			t.Errorf("POST %s %v: backend calls %q, want %q", tt.path, tt.form, calls, tt.wantCall)
		}
		// The outcome shows once, on the next page.
		next := h.do("GET", tt.wantTo, "192.0.2.1", c, nil).Body.String()
		if !strings.Contains(next, html.EscapeString(tt.wantMsg)) {
			t.Errorf("POST %s %v: the next page lacks %q", tt.path, tt.form, tt.wantMsg)
		}
		if again := h.do("GET", tt.wantTo, "192.0.2.1", c, nil).Body.String(); strings.Contains(again, `class="flash`) {
			t.Errorf("POST %s %v: the outcome shows twice", tt.path, tt.form)
		}
	}
}

func TestActionFailureShown(t *testing.T) {
	h := newHarness(t, false)
	h.be.failing = errNope
	c, csrf := h.login("192.0.2.1")
	h.do("POST", "/devices/7/delete", "192.0.2.1", c, url.Values{"csrf": {csrf}})
	body := h.do("GET", "/devices", "192.0.2.1", c, nil).Body.String()
	if !strings.Contains(body, `class="flash error"`) || !strings.Contains(body, "deleting device 7: node 7: not found") {
		t.Errorf("the devices page does not show the failure:\n%s", body)
	}
	if !strings.Contains(h.logs.String(), `msg="webadmin: action failed"`) {
		t.Errorf("the failure is not logged:\n%s", h.logs)
	}
}

func TestCreateKeyShownOnce(t *testing.T) {
	const key = "hn-999999999999-0123456789abcdef0123456789abcdef"
	tests := []struct {
		form     url.Values
		wantCall string
	}{
		{url.Values{}, "CreateAuthKey reusable=false ephemeral=false expiry=24h0m0s tags=[]"},
		{url.Values{"reusable": {"on"}, "ephemeral": {"on"}, "expiry": {"7d"}, "tags": {"tag:tv, tag:kids"}},
			"CreateAuthKey reusable=true ephemeral=true expiry=168h0m0s tags=[tag:tv tag:kids]"},
	}
	for _, tt := range tests {
		h := newHarness(t, false)
		c, csrf := h.login("192.0.2.1")
		form := url.Values{"csrf": {csrf}}
		for k, v := range tt.form {
			form[k] = v
		}
		w := h.do("POST", "/keys", "192.0.2.1", c, form)
		body := w.Body.String()
		if w.Code != http.StatusOK {
			t.Fatalf("POST /keys %v: status %d:\n%s", tt.form, w.Code, body)
		}
		if calls := h.be.takeCalls(); !slices.Equal(calls, []string{tt.wantCall}) {
			t.Errorf("POST /keys %v: backend calls %q, want %q", tt.form, calls, tt.wantCall)
		}
		for _, want := range []string{`spellcheck="false">` + key + `</textarea>`, `<svg class="qr"`, "it is shown only this once", "tailscale up --login-server http://192.168.1.2:8080 --auth-key " + key} {
			if !strings.Contains(body, want) {
				t.Errorf("POST /keys %v: page lacks %q", tt.form, want)
			}
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("the page with the key may be cached: Cache-Control %q", w.Header().Get("Cache-Control"))
		}
		if again := h.do("GET", "/keys", "192.0.2.1", c, nil).Body.String(); strings.Contains(again, key) {
			t.Errorf("the key shows again on the keys page")
		}
		if logs := h.logs.String(); strings.Contains(logs, key) || !strings.Contains(logs, `msg="webadmin: key created"`) {
			t.Errorf("logs contain the key, or lack its creation:\n%s", logs)
		}
	}
}

func TestPendingJSON(t *testing.T) {
	h := newHarness(t, false)
	c, _ := h.login("192.0.2.1")
	w := h.do("GET", "/api/pending", "192.0.2.1", c, nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	var got struct {
		Pending []struct {
			Code, Hostname, OS, Age string
			MachineKeyShort         string `json:"machine_key_short"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, w.Body)
	}
	if len(got.Pending) != 1 {
		t.Fatalf("pending = %+v, want 1", got.Pending)
	}
	p := got.Pending[0]
	if p.Code != "0123456789ab" || p.Hostname != "iPhone <b>15</b>" || p.OS != "iOS" || p.Age != "2 minutes ago" || p.MachineKeyShort != "mkey:00112233…" {
		t.Errorf("pending[0] = %+v", p)
	}
}

func TestNextPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/keys", "/keys"},
		{"/devices?x=1", "/devices?x=1"},
		{"//evil.example", "/"},
		{`/\evil.example`, "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"/login?next=/keys", "/"},
		{"keys", "/"},
	}
	for _, tt := range tests {
		if got := nextPath(tt.in); got != tt.want {
			t.Errorf("nextPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNextPath(f *testing.F) {
	for _, s := range []string{"/", "/keys", "//x", `/\x`, "http://x/", "/%2F%2Fx", "/\t/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := nextPath(next)
		u, err := url.Parse(got)
		if err != nil || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.Contains(got, `\`) ||
			strings.ContainsFunc(got, unicode.IsControl) || u.Host != "" || u.Scheme != "" {
			t.Errorf("nextPath(%q) = %q leads off the site", next, got)
		}
	})
}

func netipAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func itoa(i int) string { return strconv.Itoa(i) }

// failingBackend fails to list anything.
type failingBackend struct{ *fakeBackend }

func (failingBackend) Nodes(context.Context) ([]control.NodeInfo, error) { return nil, errNope }

func TestPageLoadFailureShown(t *testing.T) {
	h := newHarness(t, false)
	srv, err := New(Config{Backend: failingBackend{h.be}, Password: func() string { return testPassword }, Logger: slog.New(slog.DiscardHandler), Now: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	c, _ := h.login("192.0.2.1")
	w := h.do("GET", "/devices", "192.0.2.1", c, nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "listing devices: node 7: not found") {
		t.Errorf("devices page with a failing backend: status %d:\n%s", w.Code, w.Body)
	}
}
