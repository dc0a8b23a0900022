package relay

import (
	"encoding/json"
	"expvar"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"homenet/internal/promtext"

	"tailscale.com/tailcfg"
	"tailscale.com/tsweb/varz"
	"tailscale.com/types/key"
)

// A source whose node keys admission refused past the burst gets 429 on
// /derp before the upgrade; other sources, a source whose keys are
// admitted, and loopback go through.
func TestRefusalsGate(t *testing.T) {
	member := key.NewNode().Public()
	rf := newRefusals()
	admit := &admitHandler{admit: func(k key.NodePublic) bool { return k == member }, stats: new(counters), refusals: rf}
	ask := func(src string, k key.NodePublic) {
		b, _ := json.Marshal(tailcfg.DERPAdmitClientRequest{NodePublic: k, Source: netip.MustParseAddr(src)})
		if rec := serveAdmit(admit, "POST", string(b)); rec.Code != http.StatusOK {
			t.Fatalf("admission query: %d %s", rec.Code, rec.Body.String())
		}
	}
	var reached int
	gate := rf.gate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	dial := func(remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/derp", nil)
		r.RemoteAddr = remote
		rec := httptest.NewRecorder()
		gate.ServeHTTP(rec, r)
		return rec
	}

	// Every member and loopback connection is admitted: nothing is taken.
	for range 2 * refusalBurst {
		ask("192.0.2.7", member)
		ask("127.0.0.1", key.NewNode().Public())
		ask("::1", key.NewNode().Public())
	}
	// A stranger's flood of fresh keys, as the DERP server would ask.
	for range refusalBurst {
		ask("192.0.2.1", key.NewNode().Public())
		ask("2001:db8:1:2::1", key.NewNode().Public())
	}

	tests := []struct {
		remote string
		want   int
	}{
		{"192.0.2.1:1234", http.StatusTooManyRequests},
		{"[::ffff:192.0.2.1]:1234", http.StatusTooManyRequests},
		{"[2001:db8:1:2::99]:1234", http.StatusTooManyRequests}, // the same /64
		{"[2001:db8:1:3::1]:1234", http.StatusOK},
		{"192.0.2.2:1234", http.StatusOK},
		{"192.0.2.7:1234", http.StatusOK},
		{"127.0.0.1:1234", http.StatusOK},
		{"[::1]:1234", http.StatusOK},
	}
	for _, tt := range tests {
		before := reached
		rec := dial(tt.remote)
		if rec.Code != tt.want {
			t.Errorf("/derp from %s: %d %s, want %d", tt.remote, rec.Code, strings.TrimSpace(rec.Body.String()), tt.want)
		}
		if passed := reached > before; passed != (tt.want == http.StatusOK) {
			t.Errorf("/derp from %s reached the DERP server = %v", tt.remote, passed)
		}
		if tt.want == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > int(refusalEvery.Seconds()) {
				t.Errorf("/derp from %s: Retry-After %q, want 1 to %v seconds", tt.remote, rec.Header().Get("Retry-After"), refusalEvery.Seconds())
			}
		}
	}
	if got := rf.limited.Value(); got != 3 {
		t.Errorf("limited = %d, want 3", got)
	}
	if got := rf.buckets.Len(); got != 2 {
		t.Errorf("%d sources remembered, want 2 (only refused ones)", got)
	}
}

// The counter is among the relay's metrics.
func TestRefusalsMetric(t *testing.T) {
	r := startRelay(t, newTestLogger(t), Config{}, newRegistry().admit)
	var out strings.Builder
	varz.WritePrometheusExpvar(&out, expvar.KeyValue{Key: "homenet_relay", Value: r.ExpVar()})
	e, err := promtext.Parse(strings.NewReader(out.String()))
	if err != nil {
		t.Fatalf("relay metrics do not parse: %v\n%s", err, out.String())
	}
	const name = "homenet_relay_admit_rate_limited"
	if got, ok := e.Value(name); !ok || got != 0 || e.Types[name] != "counter" {
		t.Errorf("%s = %v (found %v), type %q; want a counter at 0", name, got, ok, e.Types[name])
	}
}
