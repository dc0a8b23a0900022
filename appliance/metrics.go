package appliance

import (
	"expvar"
	"net/http"
	"time"

	"homenet/ddns"
	"homenet/portmap"
	"homenet/relay"

	"tailscale.com/metrics"
	"tailscale.com/tsweb/varz"
)

// Metrics prefixes: each part's expvars appear under one in /metrics (see
// docs/config.md, "Metrics").
const (
	metricsControl     = "homenet_control"
	metricsRelay       = "homenet_relay"
	metricsCertificate = "homenet_certificate"
	metricsGateway     = "homenet_gateway"
	metricsDDNS        = "homenet_ddns"
	metricsPortmap     = "homenet_portmap"
)

// newMetrics returns the set served at /metrics, with only the build info
// in it; Serve adds each part under its prefix as the part starts. A
// metrics.Set, unlike an expvar.Map, is descended into by tsweb/varz, and
// takes new keys while it is being served.
func newMetrics() *metrics.Set {
	m := new(metrics.Set)
	build := &metrics.LabelMap{Label: "version"}
	one := new(expvar.Int)
	one.Set(1)
	build.Set(Version, one)
	m.Set("gauge_homenet_build_info", build)
	return m
}

// metricsHandler serves m in the Prometheus text format.
func metricsHandler(m *metrics.Set) http.Handler {
	return http.HandlerFunc(varz.ExpvarDoHandler(m.Do))
}

// ddnsMetrics are dynamic DNS's: homenet_ddns_updates_total and
// homenet_ddns_failures_total (provider writes that succeeded, attempts
// that failed), homenet_ddns_last_success_timestamp_seconds (0: none yet),
// homenet_ddns_failing (1 while the last attempt failed) and
// homenet_ddns_updating (1 while a write is in flight).
func ddnsMetrics(status func() ddns.Status) expvar.Var {
	m := new(metrics.Set)
	m.Set("counter_updates_total", statusFunc(status, func(st ddns.Status) int64 { return int64(st.Updates) }))
	m.Set("counter_failures_total", statusFunc(status, func(st ddns.Status) int64 { return int64(st.Failures) }))
	m.Set("gauge_last_success_timestamp_seconds", statusFunc(status, func(st ddns.Status) int64 { return unixOrZero(st.LastUpdate) }))
	m.Set("gauge_failing", statusFunc(status, func(st ddns.Status) int64 { return boolInt(st.LastError != "") }))
	m.Set("gauge_updating", statusFunc(status, func(st ddns.Status) int64 { return boolInt(st.Updating) }))
	return m
}

// certMetrics are the relay certificate's:
// homenet_certificate_not_after_timestamp_seconds (0 while none is
// loaded), homenet_certificate_obtaining (1 while an ACME order is in
// flight) and homenet_certificate_failing (1 while the last ACME attempt
// failed).
func certMetrics(status func() relay.CertStatus) expvar.Var {
	m := new(metrics.Set)
	m.Set("gauge_not_after_timestamp_seconds", statusFunc(status, func(st relay.CertStatus) int64 { return unixOrZero(st.NotAfter) }))
	m.Set("gauge_obtaining", statusFunc(status, func(st relay.CertStatus) int64 { return boolInt(st.Obtaining) }))
	m.Set("gauge_failing", statusFunc(status, func(st relay.CertStatus) int64 { return boolInt(st.LastError != "") }))
	return m
}

// portmapMetrics are the port mappings': homenet_portmap_ports (asked of
// the home router) and homenet_portmap_mapped_ports (that it has mapped).
func portmapMetrics(status func() portmap.Status) expvar.Var {
	m := new(metrics.Set)
	m.Set("gauge_ports", statusFunc(status, func(st portmap.Status) int64 { return int64(len(st.Mappings)) }))
	m.Set("gauge_mapped_ports", statusFunc(status, func(st portmap.Status) int64 {
		var n int64
		for _, mp := range st.Mappings {
			if mp.External != 0 {
				n++
			}
		}
		return n
	}))
	return m
}

// statusFunc is an expvar whose value is get of a fresh status.
func statusFunc[S any](status func() S, get func(S) int64) expvar.Func {
	return func() any { return get(status()) }
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
