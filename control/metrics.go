package control

import (
	"expvar"
	"time"

	"tailscale.com/metrics"
)

// serverMetrics are the control server's counters. The zero value is
// ready; ExpVar exports them.
type serverMetrics struct {
	mapSessions expvar.Int // streaming map sessions open (a gauge)
	mapRequests expvar.Int // /machine/map requests, streaming or not
	mapStreams  expvar.Int // streaming map sessions started

	// Registrations by outcome.
	regAuthKey  expvar.Int // enrolled with a pre-auth key
	regApproved expvar.Int // enrolled by the owner's approval of an interactive login
	regRekey    expvar.Int // a registered node rotated its node key
	regRefused  expvar.Int // refused: a bad or used-up key, a denied or expired login, …
	regFailed   expvar.Int // failed on the server's side (the store)

	noiseUpgrades      expvar.Int // /ts2021 upgrades to a Noise connection
	noiseUpgradeErrors expvar.Int // /ts2021 requests that did not become one
}

// ExpVar returns the control server's metrics, for the caller to publish
// (the server publishes nothing globally). The keys follow tsweb/varz's
// conventions: under a prefix such as "homenet_control" they become the
// Prometheus series
//
//	homenet_control_map_sessions                  gauge
//	homenet_control_map_requests_total            counter
//	homenet_control_map_streams_total             counter
//	homenet_control_registrations_total{outcome}  counter: authkey, approved, rekey, refused, failed
//	homenet_control_noise_upgrades_total          counter
//	homenet_control_noise_upgrade_errors_total    counter
//	homenet_control_nodes                         gauge: registered nodes
//	homenet_control_logins_pending                gauge: interactive logins awaiting approval
//	homenet_control_rate_limited_total{what}      counter: noise_upgrade, register, pending_login, unauthenticated_connections
//	homenet_control_unauthenticated_connections   gauge: Noise connections not known to be the owner's
//	homenet_control_unauthenticated_closed_total{reason} counter: idle, age, evicted
func (s *Server) ExpVar() expvar.Var {
	m := &s.metrics
	set := new(metrics.Set)
	set.Set("gauge_map_sessions", &m.mapSessions)
	set.Set("counter_map_requests_total", &m.mapRequests)
	set.Set("counter_map_streams_total", &m.mapStreams)
	reg := &metrics.LabelMap{Label: "outcome"}
	reg.Set("authkey", &m.regAuthKey)
	reg.Set("approved", &m.regApproved)
	reg.Set("rekey", &m.regRekey)
	reg.Set("refused", &m.regRefused)
	reg.Set("failed", &m.regFailed)
	set.Set("counter_registrations_total", reg)
	set.Set("counter_noise_upgrades_total", &m.noiseUpgrades)
	set.Set("counter_noise_upgrade_errors_total", &m.noiseUpgradeErrors)
	set.Set("gauge_nodes", expvar.Func(func() any {
		s.mu.Lock()
		defer s.mu.Unlock()
		return int64(len(s.nodes))
	}))
	set.Set("gauge_logins_pending", expvar.Func(func() any {
		now := time.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		var n int64
		for _, p := range s.pending {
			if now.Sub(p.created) <= pendingTTL {
				n++
			}
		}
		return n
	}))
	s.limits.addMetrics(set)
	return set
}
