package appliance

import (
	"context"
	"expvar"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"homenet/control"
	"homenet/control/store"
	"homenet/ddns"
	"homenet/internal/promtext"
	"homenet/portmap"
	"homenet/relay"

	"tailscale.com/types/key"
)

// TestMetrics: /metrics on the web admin's handler needs no login and
// serves every part's families in the Prometheus text format.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "homenet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv, err := control.New(ctx, control.Config{
		ServerURL: "http://127.0.0.1:1",
		Prefix4:   netip.MustParsePrefix("100.86.0.0/16"),
		Store:     db,
		Logger:    logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	rl, err := relay.Start(ctx, relay.Config{Listen: "127.0.0.1:0", Hostname: "127.0.0.1", StateDir: t.TempDir()},
		func(key.NodePublic) bool { return false }, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })

	lastUpdate := time.Unix(1_700_000_000, 0)
	vars := newMetrics()
	vars.Set(metricsControl, srv.ExpVar())
	vars.Set(metricsRelay, rl.ExpVar())
	vars.Set(metricsCertificate, certMetrics(rl.CertStatus))
	vars.Set(metricsDDNS, ddnsMetrics(func() ddns.Status {
		return ddns.Status{Updates: 3, Failures: 1, LastUpdate: lastUpdate, LastError: "timeout"}
	}))
	vars.Set(metricsPortmap, portmapMetrics(func() portmap.Status {
		return portmap.Status{Mappings: []portmap.MappingStatus{{Proto: "tcp", Internal: 443, External: 443}, {Proto: "udp", Internal: 3478}}}
	}))
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web admin") })
	hs := httptest.NewServer(withMetrics(web, metricsHandler(vars)))
	t.Cleanup(hs.Close)

	res, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, Content-Type %q, want 200 and text/plain\n%s", res.Status, res.Header.Get("Content-Type"), body)
	}
	e, err := promtext.Parse(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	notAfter := float64(rl.CertStatus().NotAfter.Unix())
	tests := []struct {
		name   string
		labels []string
		typ    string
		want   float64 // -1: any value
	}{
		{"homenet_build_info", []string{"version", Version}, "gauge", 1},
		{"homenet_control_map_sessions", nil, "gauge", 0},
		{"homenet_control_map_requests_total", nil, "counter", 0},
		{"homenet_control_map_streams_total", nil, "counter", 0},
		{"homenet_control_registrations_total", []string{"outcome", "authkey"}, "counter", 0},
		{"homenet_control_registrations_total", []string{"outcome", "approved"}, "counter", 0},
		{"homenet_control_registrations_total", []string{"outcome", "refused"}, "counter", 0},
		{"homenet_control_noise_upgrades_total", nil, "counter", 0},
		{"homenet_control_noise_upgrade_errors_total", nil, "counter", 0},
		{"homenet_control_nodes", nil, "gauge", 0},
		{"homenet_relay_admit_allowed", nil, "counter", 0},
		{"homenet_relay_admit_denied", nil, "counter", 0},
		{"homenet_relay_derp_accepts", nil, "counter", -1},
		{"homenet_relay_derp_current_connections", nil, "gauge", -1},
		{"homenet_relay_derp_bytes_received", nil, "counter", -1},
		{"homenet_relay_derp_bytes_sent", nil, "counter", -1},
		{"homenet_relay_derp_packets_received", nil, "counter", -1},
		{"homenet_relay_derp_packets_sent", nil, "counter", -1},
		{"homenet_certificate_not_after_timestamp_seconds", nil, "gauge", notAfter},
		{"homenet_certificate_obtaining", nil, "gauge", 0},
		{"homenet_certificate_failing", nil, "gauge", 0},
		{"homenet_ddns_updates_total", nil, "counter", 3},
		{"homenet_ddns_failures_total", nil, "counter", 1},
		{"homenet_ddns_last_success_timestamp_seconds", nil, "gauge", 1_700_000_000},
		{"homenet_ddns_failing", nil, "gauge", 1},
		{"homenet_ddns_updating", nil, "gauge", 0},
		{"homenet_portmap_ports", nil, "gauge", 2},
		{"homenet_portmap_mapped_ports", nil, "gauge", 1},
	}
	for _, tt := range tests {
		if got := e.Types[tt.name]; got != tt.typ {
			t.Errorf("type of %s = %q, want %q", tt.name, got, tt.typ)
		}
		got, ok := e.Value(tt.name, tt.labels...)
		if !ok || (tt.want != -1 && got != tt.want) {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if notAfter <= float64(time.Now().Unix()) {
		t.Errorf("self-signed certificate's not_after %v is not in the future", notAfter)
	}

	// Everything else is still the web admin's, /metrics included for
	// other methods.
	for _, req := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/login"}, {"POST", "/metrics"}} {
		r, _ := http.NewRequest(req.method, hs.URL+req.path, nil)
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "web admin" {
			t.Errorf("%s %s = %q, want the web admin's answer", req.method, req.path, b)
		}
	}
}

func TestMetricsDefaults(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		v      expvar.Var
		want   map[string]float64
	}{
		{
			name:   "ddns before its first update",
			prefix: metricsDDNS,
			v:      ddnsMetrics(func() ddns.Status { return ddns.Status{Updating: true} }),
			want:   map[string]float64{"homenet_ddns_last_success_timestamp_seconds": 0, "homenet_ddns_updating": 1, "homenet_ddns_failing": 0},
		},
		{
			name:   "ACME certificate not yet issued",
			prefix: metricsCertificate,
			v:      certMetrics(func() relay.CertStatus { return relay.CertStatus{Obtaining: true} }),
			want:   map[string]float64{"homenet_certificate_not_after_timestamp_seconds": 0, "homenet_certificate_obtaining": 1},
		},
		{
			name:   "router not answering",
			prefix: metricsPortmap,
			v:      portmapMetrics(func() portmap.Status { return portmap.Status{} }),
			want:   map[string]float64{"homenet_portmap_ports": 0, "homenet_portmap_mapped_ports": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := newMetrics()
			vars.Set(tt.prefix, tt.v)
			rec := httptest.NewRecorder()
			metricsHandler(vars).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			out := rec.Body.String()
			e, err := promtext.Parse(strings.NewReader(out))
			if err != nil {
				t.Fatalf("does not parse: %v\n%s", err, out)
			}
			for name, want := range tt.want {
				if got, ok := e.Value(name); !ok || got != want {
					t.Errorf("%s = %v (found %v), want %v", name, got, ok, want)
				}
			}
		})
	}
}
