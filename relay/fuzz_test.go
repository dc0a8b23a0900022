package relay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// FuzzAdmission drives the relay's admission path end to end, as a DERP
// client from the internet meets it: the same admission request (body)
// comes repeat times (modulo 2×refusalBurst+1), as derpserver asks once
// per connection, through the admission handler with the refusal limits
// of limits.go; then a DERP connection from remote (an
// http.Request.RemoteAddr) reaches the gate in front of the DERP handler. Against a model written independently of
// ratelimit.Source, it checks that:
//
//   - every body gets 200 if it is a JSON request with a node key within
//     maxAdmitBody, and 400 otherwise, and the counters agree;
//   - refusals are recorded only for refused keys from non-loopback
//     sources, so the limits remember at most that one source;
//   - the gate answers 429, with a Retry-After of 1–10 s and the limited
//     counter, exactly when remote is in the same source (the IPv4
//     address, IPv4-mapped or not; the IPv6 /64, zone ignored) as at
//     least refusalBurst refused requests, and is never loopback;
//     otherwise the connection reaches the DERP handler.
func FuzzAdmission(f *testing.F) {
	memberKey, strangerKey := keyStarting(f, 2), keyStarting(f, 1)
	for _, s := range []struct {
		key    key.NodePublic
		source string
		repeat uint8
		remote string
	}{
		{strangerKey, "192.0.2.1", refusalBurst, "192.0.2.1:41641"},
		{strangerKey, "192.0.2.1", refusalBurst - 1, "192.0.2.1:41641"},
		{strangerKey, "::ffff:192.0.2.1", refusalBurst, "192.0.2.1:443"},
		{strangerKey, "192.0.2.1", refusalBurst, "[::ffff:192.0.2.1]:443"},
		{strangerKey, "2001:db8:1:2::1", refusalBurst, "[2001:db8:1:2:ffff::9]:443"},
		{strangerKey, "2001:db8:1:2::1", refusalBurst, "[2001:db8:1:3::1]:443"},
		{strangerKey, "fe80::1%eth0", refusalBurst, "[fe80::2%eth1]:1"},
		{strangerKey, "127.0.0.1", 2 * refusalBurst, "127.0.0.1:1"},
		{strangerKey, "::1", 2 * refusalBurst, "[::1]:1"},
		{strangerKey, "::ffff:127.0.0.1", 2 * refusalBurst, "[::ffff:127.0.0.1]:1"},
		{strangerKey, "192.0.2.1", refusalBurst, "192.0.2.1"},
		{memberKey, "192.0.2.1", 2 * refusalBurst, "192.0.2.1:41641"},
	} {
		body, err := json.Marshal(tailcfg.DERPAdmitClientRequest{NodePublic: s.key, Source: netip.MustParseAddr(s.source)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(body), s.repeat, s.remote)
	}
	f.Add(`{"NodePublic":"nodekey:01"}`, uint8(refusalBurst), "192.0.2.1:1")
	f.Add(`{"Source":"192.0.2.1"}`, uint8(refusalBurst), "192.0.2.1:1")
	f.Add("\xff", uint8(1), "")

	f.Fuzz(func(t *testing.T, body string, repeat uint8, remote string) {
		n := int(repeat) % (2*refusalBurst + 1) // 0 to 2×burst requests
		stats, rf := new(counters), newRefusals()
		h := &admitHandler{admit: fuzzAdmit, stats: stats, refusals: rf}

		var req tailcfg.DERPAdmitClientRequest
		valid := len(body) <= maxAdmitBody && json.Unmarshal([]byte(body), &req) == nil && !req.NodePublic.IsZero()
		for i := range n {
			rec := serveAdmit(h, "POST", body)
			if want := map[bool]int{true: 200, false: 400}[valid]; rec.Code != want {
				t.Fatalf("request %d: status %d, want %d, for body %q", i, rec.Code, want, body)
			}
		}
		if valid {
			if got := stats.admitAllowed.Value() + stats.admitDenied.Value(); got != int64(n) || stats.admitInvalid.Value() != 0 {
				t.Fatalf("%d valid requests: allowed+denied = %d, invalid = %d", n, got, stats.admitInvalid.Value())
			}
		} else if got := stats.admitInvalid.Value(); got != int64(n) {
			t.Fatalf("%d invalid requests: admitInvalid = %d", n, got)
		}

		refused := 0 // refusals the limits should have counted against req.Source
		if valid && !fuzzAdmit(req.NodePublic) && req.Source.IsValid() && !req.Source.Unmap().IsLoopback() {
			refused = n
		}
		if got, want := rf.buckets.Len(), min(refused, 1); got != want {
			t.Fatalf("limits remember %d sources after %d refusals from %v, want %d", got, refused, req.Source, want)
		}

		ap, perr := netip.ParseAddrPort(remote)
		want429 := perr == nil && !ap.Addr().Unmap().IsLoopback() &&
			refused >= refusalBurst && sameFuzzSource(ap.Addr(), req.Source)
		checkGate(t, rf, remote, want429)
	})
}

// checkGate sends one DERP connection from remote through rf's gate.
func checkGate(t *testing.T, rf *refusals, remote string, want429 bool) {
	t.Helper()
	reached := false
	gate := rf.gate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	r := httptest.NewRequest("GET", "/derp", nil)
	r.RemoteAddr = remote
	rec := httptest.NewRecorder()
	gate.ServeHTTP(rec, r)
	desc := fmt.Sprintf("DERP connection from %q: status %d, reached the DERP handler %v", remote, rec.Code, reached)
	if !want429 {
		if !reached || rf.limited.Value() != 0 {
			t.Fatalf("%s, limited %d; want it let through", desc, rf.limited.Value())
		}
		return
	}
	if reached || rec.Code != http.StatusTooManyRequests || rf.limited.Value() != 1 {
		t.Fatalf("%s, limited %d; want 429", desc, rf.limited.Value())
	}
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || ra < 1 || ra > int(refusalEvery.Seconds()) {
		t.Fatalf("%s: Retry-After %q, want 1–%v s", desc, rec.Header().Get("Retry-After"), refusalEvery.Seconds())
	}
}

// sameFuzzSource is the model of ratelimit.Source's grouping: IPv4
// addresses (IPv4-mapped or not) alone, IPv6 addresses by their /64, zones
// ignored.
func sameFuzzSource(a, b netip.Addr) bool {
	a, b = a.Unmap(), b.Unmap()
	if !a.IsValid() || !b.IsValid() {
		return false
	}
	if a.Is4() || b.Is4() {
		return a.Is4() && b.Is4() && a == b
	}
	a16, b16 := a.As16(), b.As16()
	return [8]byte(a16[:8]) == [8]byte(b16[:8])
}

// fuzzAdmit admits a key whose first byte is even.
func fuzzAdmit(k key.NodePublic) bool { return k.Raw32()[0]%2 == 0 }

// keyStarting returns the node key whose first byte is b, the rest zero.
func keyStarting(tb testing.TB, b byte) key.NodePublic {
	var k key.NodePublic
	if err := k.UnmarshalText(fmt.Appendf(nil, "nodekey:%02x%062x", b, 0)); err != nil {
		tb.Fatal(err)
	}
	return k
}
