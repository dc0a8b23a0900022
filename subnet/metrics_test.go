//go:build linux

package subnet

import (
	"encoding/json"
	"expvar"
	"strings"
	"testing"

	"homenet/internal/promtext"

	"tailscale.com/tsd"
	"tailscale.com/tsweb/varz"
	"tailscale.com/util/usermetric"
)

func TestExpVarPrometheus(t *testing.T) {
	sys := tsd.NewSystem()
	reg := sys.UserMetricsRegistry()
	reg.NewGauge("tailscaled_approved_routes", "Number of approved routes").Set(2)
	reg.DroppedPacketsInbound().Add(usermetric.DropLabels{Reason: usermetric.ReasonACL}, 3)
	tests := []struct {
		name  string
		agent *Agent
		want  map[string]float64 // series without labels, or summed over them
		types map[string]string
	}{
		{
			name:  "not started",
			agent: &Agent{},
			want:  map[string]float64{"homenet_gateway_connected": 0, "homenet_gateway_firewall_repairs_total": 0},
			types: map[string]string{"homenet_gateway_connected": "gauge", "homenet_gateway_firewall_repairs_total": "counter"},
		},
		{
			name:  "with the engine's user metrics",
			agent: &Agent{sys: sys},
			want: map[string]float64{
				"homenet_gateway_connected":                0,
				"tailscaled_approved_routes":               2,
				"tailscaled_inbound_dropped_packets_total": 3,
			},
			types: map[string]string{
				"tailscaled_approved_routes":                "gauge",
				"tailscaled_inbound_dropped_packets_total":  "counter",
				"tailscaled_outbound_dropped_packets_total": "counter",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			varz.WritePrometheusExpvar(&out, expvar.KeyValue{Key: "homenet_gateway", Value: tt.agent.ExpVar()})
			e, err := promtext.Parse(strings.NewReader(out.String()))
			if err != nil {
				t.Fatalf("gateway metrics do not parse: %v\n%s", err, out.String())
			}
			for name, want := range tt.want {
				if got, n := e.Sum(name); n == 0 || got != want {
					t.Errorf("%s = %v (%d samples), want %v\n%s", name, got, n, want, out.String())
				}
			}
			for name, want := range tt.types {
				if got := e.Types[name]; got != want {
					t.Errorf("type of %s = %q, want %q", name, got, want)
				}
			}
			if s := tt.agent.ExpVar().String(); !json.Valid([]byte(s)) {
				t.Errorf("ExpVar().String() = %q, want JSON", s)
			}
		})
	}
}
