package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"homenet/appliance"
	"homenet/e2e/lab"
	"homenet/internal/promtext"
)

// TestWebAdminListener: the web admin answers on the gateway's LAN address,
// on loopback and on its tailnet address, and not on its WAN address,
// although it listens on all of them.
func TestWebAdminListener(t *testing.T) {
	t.Parallel()
	n := newGwNet(t, gwOpts{})
	n.start(t)
	gwIP, _ := n.join(t)
	page := func(from string, get func(url string) (string, error), host string) (string, error) {
		return get(fmt.Sprintf("http://%s:%d/login", host, appliance.DefaultWebPort))
	}
	hostGet := func(h interface {
		Labtool(time.Duration, ...string) (string, error)
	}) func(string) (string, error) {
		return func(url string) (string, error) { return h.Labtool(10*time.Second, "http-get", "-timeout=3s", url) }
	}
	tests := []struct {
		from   string
		get    func(string) (string, error)
		host   string
		answer bool
	}{
		{"the LAN host", hostGet(n.lanHost), "192.168.1.1", true},
		{"the gateway itself", hostGet(n.gw), "127.0.0.1", true},
		{"the phone, over the tailnet", hostGet(n.phone.Host), gwIP.String(), true},
		{"the internet host, to the WAN address", hostGet(n.inet), n.wanIP(1).String(), false},
	}
	for _, tt := range tests {
		out, err := page(tt.from, tt.get, tt.host)
		answered := err == nil && strings.Contains(out, "password")
		if answered != tt.answer {
			t.Errorf("%s → %s: answered %v, want %v (%v)\n%s", tt.from, tt.host, answered, tt.answer, err, out)
		}
	}
}

// TestMetrics: /metrics on the web admin listener answers the LAN without
// a login, in the Prometheus text format, with every part's series; and
// the counters move as a phone joins and reaches the LAN through the
// gateway.
func TestMetrics(t *testing.T) {
	t.Parallel()
	n := newGwNet(t, gwOpts{})
	n.start(t)
	scrape := func(when string) *promtext.Exposition {
		t.Helper()
		url := fmt.Sprintf("http://192.168.1.1:%d/metrics", appliance.DefaultWebPort)
		out, err := n.lanHost.Labtool(15*time.Second, "http-get", "-timeout=5s", url)
		if err != nil {
			t.Fatalf("%s: GET %s from the LAN host: %v\n%s", when, url, err, out)
		}
		status, body, _ := strings.Cut(out, "\n")
		if status != "200 OK" {
			t.Fatalf("%s: GET %s = %q, want 200 OK", when, url, status)
		}
		if len(body) >= 60<<10 {
			t.Fatalf("%s: /metrics is %d bytes, too close to labtool's 64 KiB limit to be read whole", when, len(body))
		}
		e, err := promtext.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: /metrics does not parse: %v\n%s", when, err, body)
		}
		t.Logf("%s: /metrics has %d samples of %d typed families", when, len(e.Samples), len(e.Types))
		return e
	}
	before := scrape("before the phone joined")

	gwIP, _ := n.join(t)
	if _, err := n.httpLAN(10 * time.Second); err != nil {
		t.Fatalf("the phone reaching the LAN host: %v", err)
	}
	if out, err := n.phone.TailscalePing("-c", "3", gwIP.String()); err != nil {
		t.Logf("tailscale ping %v: %v\n%s", gwIP, err, out) // traffic only; the path does not matter
	}
	var after *promtext.Exposition
	// The counters are read as they are: a few may trail the traffic by
	// a moment (the relay counts a frame once it is written).
	lab.WaitFor(t, 15*time.Second, "the metrics to count the phone", func() error {
		after = scrape("after the phone's traffic")
		return metricsMoved(before, after)
	})

	// Every family is there, with its type.
	families := []struct{ name, typ string }{
		{"homenet_build_info", "gauge"},
		{"homenet_control_map_sessions", "gauge"},
		{"homenet_control_map_requests_total", "counter"},
		{"homenet_control_map_streams_total", "counter"},
		{"homenet_control_registrations_total", "counter"},
		{"homenet_control_noise_upgrades_total", "counter"},
		{"homenet_control_noise_upgrade_errors_total", "counter"},
		{"homenet_control_nodes", "gauge"},
		{"homenet_control_logins_pending", "gauge"},
		{"homenet_relay_admit_allowed", "counter"},
		{"homenet_relay_admit_denied", "counter"},
		{"homenet_relay_derp_accepts", "counter"},
		{"homenet_relay_derp_current_connections", "gauge"},
		{"homenet_relay_derp_bytes_received", "counter"},
		{"homenet_relay_derp_bytes_sent", "counter"},
		{"homenet_relay_derp_packets_received", "counter"},
		{"homenet_relay_derp_packets_sent", "counter"},
		{"homenet_certificate_not_after_timestamp_seconds", "gauge"},
		{"homenet_certificate_obtaining", "gauge"},
		{"homenet_gateway_connected", "gauge"},
		{"homenet_gateway_firewall_repairs_total", "counter"},
		{"tailscaled_inbound_bytes_total", "counter"},
		{"tailscaled_outbound_bytes_total", "counter"},
		{"tailscaled_inbound_packets_total", "counter"},
		{"tailscaled_outbound_packets_total", "counter"},
		{"tailscaled_approved_routes", "gauge"},
	}
	for _, f := range families {
		if got := after.Types[f.name]; got != f.typ {
			t.Errorf("type of %s = %q, want %q", f.name, got, f.typ)
		}
		if !after.Has(f.name) {
			t.Errorf("no sample of %s", f.name)
		}
	}
	gauges := []struct {
		name string
		want float64
	}{
		{"homenet_control_nodes", 2},          // the gateway and the phone
		{"homenet_control_map_sessions", 2},   // their streams
		{"homenet_gateway_connected", 1},      // the agent polls control
		{"homenet_relay_admit_denied", 0},     // nobody was refused
		{"tailscaled_approved_routes", 1},     // the LAN (exit routes are not counted)
		{"homenet_control_logins_pending", 0}, // both joined with keys
	}
	for _, g := range gauges {
		if got, ok := after.Value(g.name); !ok || got != g.want {
			t.Errorf("%s = %v (found %v), want %v", g.name, got, ok, g.want)
		}
	}
	if na, _ := after.Value("homenet_certificate_not_after_timestamp_seconds"); na <= float64(time.Now().Unix()) {
		t.Errorf("certificate not_after %v is not in the future", na)
	}
}

// metricsMoved says which counters that the phone's joining and traffic
// must move did not move from before to after.
func metricsMoved(before, after *promtext.Exposition) error {
	value := func(e *promtext.Exposition, name string, labels ...string) float64 {
		if len(labels) > 0 {
			v, _ := e.Value(name, labels...)
			return v
		}
		v, _ := e.Sum(name) // over paths, for tailscaled's
		return v
	}
	moved := []struct {
		name   string
		labels []string
	}{
		{"homenet_control_registrations_total", []string{"outcome", "authkey"}},
		{"homenet_control_map_requests_total", nil},
		{"homenet_control_map_streams_total", nil},
		{"homenet_control_noise_upgrades_total", nil},
		{"homenet_relay_admit_allowed", nil},
		{"homenet_relay_derp_bytes_received", nil},
		{"homenet_relay_derp_bytes_sent", nil},
		{"tailscaled_inbound_bytes_total", nil},
		{"tailscaled_outbound_bytes_total", nil},
	}
	var stuck []string
	for _, m := range moved {
		b, a := value(before, m.name, m.labels...), value(after, m.name, m.labels...)
		if a <= b {
			stuck = append(stuck, fmt.Sprintf("%s%v %v → %v", m.name, m.labels, b, a))
		}
	}
	if len(stuck) > 0 {
		return fmt.Errorf("did not move: %s", strings.Join(stuck, "; "))
	}
	return nil
}
