package control

import (
	"context"
	"expvar"
	"net/http"
	"strings"
	"testing"
	"time"

	"homenet/internal/promtext"

	"tailscale.com/control/tsp"
	"tailscale.com/tailcfg"
	"tailscale.com/tsweb/varz"
	"tailscale.com/types/key"
)

// scrape renders s.ExpVar as /metrics would under "homenet_control".
func scrape(t *testing.T, s *Server) *promtext.Exposition {
	t.Helper()
	var b strings.Builder
	varz.WritePrometheusExpvar(&b, expvar.KeyValue{Key: "homenet_control", Value: s.ExpVar()})
	e, err := promtext.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("control metrics do not parse: %v\n%s", err, b.String())
	}
	return e
}

func TestMetricsTypes(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	e := scrape(t, s.Server)
	want := map[string]string{
		"homenet_control_map_sessions":               "gauge",
		"homenet_control_map_requests_total":         "counter",
		"homenet_control_map_streams_total":          "counter",
		"homenet_control_registrations_total":        "counter",
		"homenet_control_noise_upgrades_total":       "counter",
		"homenet_control_noise_upgrade_errors_total": "counter",
		"homenet_control_nodes":                      "gauge",
		"homenet_control_logins_pending":             "gauge",
	}
	for name, typ := range want {
		if got := e.Types[name]; got != typ {
			t.Errorf("type of %s = %q, want %q", name, got, typ)
		}
		if !e.Has(name) {
			t.Errorf("no sample of %s", name)
		}
	}
	for _, o := range []string{"authkey", "approved", "rekey", "refused", "failed"} {
		if v, ok := e.Value("homenet_control_registrations_total", "outcome", o); !ok || v != 0 {
			t.Errorf("registrations_total{outcome=%q} = %v, %v; want 0 before any registration", o, v, ok)
		}
	}
}

func TestMetricsCount(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	ak := mustAuthKey(t, s.Server, AuthKeyOptions{})

	phone := newTestNode(t, s.url, "phone")
	phone.register(t, ak)
	if _, err := newTestNode(t, s.url, "thief").tryRegister(ak); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("registering with a used one-off key: %v; want a refusal", err)
	}
	laptop := newTestNode(t, s.url, "laptop")
	code := startLogin(t, laptop)
	if got, _ := scrape(t, s.Server).Value("homenet_control_logins_pending"); got != 1 {
		t.Errorf("logins_pending with a login waiting = %v, want 1", got)
	}
	if _, err := s.ApproveRegistration(context.Background(), code); err != nil {
		t.Fatal(err)
	}
	phone.stream(t)
	if err := phone.c.SendMapUpdate(context.Background(), tsp.SendMapUpdateOpts{NodeKey: phone.nk, DiscoKey: key.NewDisco().Public()}); err != nil {
		t.Fatal(err)
	}
	// tsp cannot rotate a node key; the server's side of a rotation is
	// all that counts here.
	if _, err := s.register(context.Background(), laptop.mk.Public(), &tailcfg.RegisterRequest{NodeKey: key.NewNode().Public(), OldNodeKey: laptop.nk.Public()}); err != nil {
		t.Fatalf("rotating laptop's node key: %v", err)
	}
	res, err := http.Get(s.url + "/ts2021") // no Upgrade header
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	e := scrape(t, s.Server)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"homenet_control_registrations_total", []string{"outcome", "authkey"}, 1},
		{"homenet_control_registrations_total", []string{"outcome", "approved"}, 1},
		{"homenet_control_registrations_total", []string{"outcome", "refused"}, 1},
		{"homenet_control_registrations_total", []string{"outcome", "rekey"}, 1},
		{"homenet_control_registrations_total", []string{"outcome", "failed"}, 0},
		{"homenet_control_map_streams_total", nil, 1},
		{"homenet_control_map_requests_total", nil, 2}, // the stream and the update
		{"homenet_control_map_sessions", nil, 1},
		{"homenet_control_nodes", nil, 2},
		{"homenet_control_logins_pending", nil, 0},
		{"homenet_control_noise_upgrade_errors_total", nil, 1},
	}
	for _, tt := range tests {
		if got, ok := e.Value(tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// One Noise connection per client at least; a client may redial.
	if got, _ := e.Value("homenet_control_noise_upgrades_total"); got < 3 {
		t.Errorf("noise_upgrades_total = %v, want at least 3 (three clients)", got)
	}

	// The session's end shows in the gauge.
	phone.session.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := scrape(t, s.Server).Value("homenet_control_map_sessions")
		if got == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("map_sessions = %v after the stream closed, want 0", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
