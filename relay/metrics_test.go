package relay

import (
	"context"
	"expvar"
	"strings"
	"testing"

	"homenet/internal/promtext"

	"tailscale.com/tsweb/varz"
	"tailscale.com/types/key"
)

// TestExpVarPrometheus: ExpVar renders as Prometheus series under a
// prefix, the DERP server's included, and they count traffic and refusals.
func TestExpVarPrometheus(t *testing.T) {
	logger := newTestLogger(t)
	a, b, stranger := key.NewNode(), key.NewNode(), key.NewNode()
	r := startRelay(t, logger, Config{}, newRegistry(a.Public(), b.Public()).admit)
	region := r.Region()
	ca, cb := newClient(t, logger, a, region), newClient(t, logger, b, region)
	connectAdmitted(t, ca)
	connectAdmitted(t, cb)
	if err := ca.Send(b.Public(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	recvPacket(t, cb)
	cs := newClient(t, logger, stranger, region)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cs.Connect(ctx) // refused after the handshake
	recvTimeout(cs, testTimeout)

	var out strings.Builder
	varz.WritePrometheusExpvar(&out, expvar.KeyValue{Key: "homenet_relay", Value: r.ExpVar()})
	e, err := promtext.Parse(strings.NewReader(out.String()))
	if err != nil {
		t.Fatalf("relay metrics do not parse: %v\n%s", err, out.String())
	}
	tests := []struct {
		name string
		typ  string
		min  float64
	}{
		{"homenet_relay_admit_allowed", "counter", 2},
		{"homenet_relay_admit_denied", "counter", 1},
		{"homenet_relay_admit_invalid", "counter", 0},
		{"homenet_relay_disconnects", "counter", 0},
		{"homenet_relay_derp_accepts", "counter", 3},
		{"homenet_relay_derp_current_connections", "gauge", 2},
		{"homenet_relay_derp_bytes_received", "counter", 5},
		{"homenet_relay_derp_bytes_sent", "counter", 5},
		{"homenet_relay_derp_packets_received", "counter", 1},
		{"homenet_relay_derp_packets_sent", "counter", 1},
	}
	for _, tt := range tests {
		if got := e.Types[tt.name]; got != tt.typ {
			t.Errorf("type of %s = %q, want %q", tt.name, got, tt.typ)
		}
		if got, ok := e.Value(tt.name); !ok || got < tt.min {
			t.Errorf("%s = %v (found %v), want >= %v", tt.name, got, ok, tt.min)
		}
	}
}
