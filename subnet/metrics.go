//go:build linux

package subnet

import (
	"encoding/json"
	"expvar"
	"io"
	"net/http"

	"tailscale.com/metrics"
	"tailscale.com/util/usermetric"
)

// ExpVar returns the agent's metrics, for the caller to publish (the agent
// publishes nothing globally). Its keys follow tsweb/varz's conventions:
// under a prefix such as "homenet_gateway" they become
//
//	homenet_gateway_connected               gauge: 1 while the agent holds a map poll open to control
//	homenet_gateway_firewall_repairs_total  counter: times the watchdog put rules back (Status.Repairs)
//
// and, under their own names, the engine's user metrics, which tailscaled
// serves at its /metrics: tailscaled_inbound_bytes_total{path},
// tailscaled_outbound_bytes_total{path}, the same for packets,
// tailscaled_inbound_dropped_packets_total{reason},
// tailscaled_outbound_dropped_packets_total{reason},
// tailscaled_advertised_routes, tailscaled_approved_routes,
// tailscaled_health_messages{type} and tailscaled_home_derp_region_id.
// The byte and packet counters are the WireGuard traffic with peers, by
// path (direct_ipv4, direct_ipv6, derp, …): what goes through the TUN, in
// and out, plus WireGuard's overhead.
func (a *Agent) ExpVar() expvar.Var {
	set := new(metrics.Set)
	set.Set("gauge_connected", expvar.Func(func() any {
		if a.sys != nil && a.sys.HealthTracker.Get().GetInPollNetMap() {
			return int64(1)
		}
		return int64(0)
	}))
	set.Set("counter_firewall_repairs_total", expvar.Func(func() any {
		if a.rtr == nil {
			return int64(0)
		}
		return int64(a.rtr.Repairs())
	}))
	if a.sys != nil {
		set.Set("tailscaled", userMetrics{a.sys.UserMetricsRegistry()})
	}
	return set
}

// userMetrics renders a usermetric.Registry for tsweb/varz under the
// registry's own metric names, whatever prefix varz passes.
type userMetrics struct{ reg *usermetric.Registry }

// String returns the registry's description, as a JSON string.
func (u userMetrics) String() string {
	b, _ := json.Marshal(u.reg.String())
	return string(b)
}

// WritePrometheus implements varz.PrometheusWriter.
func (u userMetrics) WritePrometheus(w io.Writer, _ string) {
	u.reg.Handler(textResponse{w, http.Header{}}, new(http.Request))
}

// textResponse is an http.ResponseWriter that keeps only the body.
type textResponse struct {
	io.Writer
	header http.Header
}

func (r textResponse) Header() http.Header { return r.header }
func (r textResponse) WriteHeader(int)     {}
