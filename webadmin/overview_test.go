package webadmin

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/control"
	"homenet/ddns"
	"homenet/portmap"
	"homenet/relay"
	"homenet/subnet"
)

// TestOverviewReadsRealTypes feeds Extra the status types the appliance
// puts there (those this package may import), so that a renamed JSON
// field shows up here rather than as a blank on the page.
func TestOverviewReadsRealTypes(t *testing.T) {
	lan := netip.MustParsePrefix("192.168.1.0/24")
	exit := netip.MustParsePrefix("0.0.0.0/0")
	st := control.Status{Extra: map[string]any{
		"ddns": ddns.Status{Provider: "alidns", Name: "home.example.net", Published: []string{"A 203.0.113.7"},
			LastError: "403 from the provider", LastErrorAt: t0.Add(-time.Minute), Updates: 2, Failures: 1},
		"certificate": relay.CertStatus{Mode: relay.CertModeDNS01, Names: []string{"home.example.net"},
			NotAfter: t0.Add(2 * 24 * time.Hour), LastError: "DNS-01 timed out"},
		"upnp": portmap.Status{Protocol: "pcp", Router: "192.168.1.1", ExternalIPv4: netip.MustParseAddr("203.0.113.7"),
			Mappings: []portmap.MappingStatus{{Proto: "udp", Internal: 41641, External: 41641}}, LastError: "lease refused"},
		"gateway": subnet.Status{State: "Starting", Tun: "homenet0", Firewall: "iptables-nft",
			Advertised: []netip.Prefix{lan, exit}, Approved: []netip.Prefix{lan}, ExitNode: true, LastError: "no route to control"},
		// appliance.Reachability and appliance.LAN, as JSON: this package
		// cannot import the appliance.
		"reachability": map[string]any{"case": "none", "advice": "Run control on a VPS."},
		"gateway_lan":  map[string]any{"routes": []string{"192.168.1.0/24"}, "why": []string{"found it"}},
		"lan_dns":      map[string]any{"resolver": "192.168.1.1", "domains": []string{"lan"}, "why": "split DNS for lan via 192.168.1.1"},
		"warnings":     []map[string]any{{"code": "port", "message": "Port 443 is taken.", "fix": "Free it."}},
	}}
	o := newOverview(st, "https://home.example.net", 0, t0)

	if o.DDNS == nil || o.DDNS.Name != "home.example.net" || o.DDNS.LastError == "" || o.DDNS.Updates != 2 {
		t.Errorf("DDNS = %+v", o.DDNS)
	}
	if o.Certificate == nil || o.Certificate.Mode != "acme-dns-01" || !o.Certificate.NotAfter.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("Certificate = %+v", o.Certificate)
	}
	if pm := o.Portmap; pm == nil || pm.Protocol != "pcp" || len(pm.Mappings) != 1 || pm.Mappings[0].External != 41641 || !pm.ExternalIPv4.IsValid() {
		t.Errorf("Portmap = %+v", o.Portmap)
	}
	if gw := o.Gateway; gw == nil || gw.State != "Starting" || gw.Firewall != "iptables-nft" || !gw.ExitNode ||
		!slices.Equal(gw.Advertised, []netip.Prefix{lan, exit}) || !slices.Equal(gw.Approved, []netip.Prefix{lan}) {
		t.Errorf("Gateway = %+v", o.Gateway)
	}
	if !slices.Equal(o.Unapproved, []netip.Prefix{exit}) {
		t.Errorf("Unapproved = %v, want [%v]", o.Unapproved, exit)
	}
	if o.Reachability == nil || o.Reachability.Case != "none" || o.LAN == nil || len(o.LAN.Why) != 1 {
		t.Errorf("Reachability = %+v, LAN = %+v", o.Reachability, o.LAN)
	}
	if d := o.LANDNS; d == nil || d.Resolver != netip.MustParseAddr("192.168.1.1") || !slices.Equal(d.Domains, []string{"lan"}) || d.Why == "" {
		t.Errorf("LANDNS = %+v", o.LANDNS)
	}

	want := []string{
		"Phones away from home cannot reach this gateway.",
		"The relay's certificate expires in 2 days.",
		"Getting the relay's certificate failed: DNS-01 timed out",
		"Updating home.example.net at alidns failed: 403 from the provider",
		"The gateway agent is Starting, not running.",
		"The gateway advertises routes that are not approved: 0.0.0.0/0.",
		"Gateway: no route to control",
		"Port mapping on the home router failed: lease refused",
		"Port 443 is taken.",
	}
	var got []string
	for _, w := range o.Warnings {
		got = append(got, w.Message)
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOverviewWarnings(t *testing.T) {
	tests := []struct {
		name    string
		extra   map[string]any
		pending int
		want    []string
	}{
		{"all well", map[string]any{
			"reachability": map[string]any{"case": "public-ipv4"},
			"gateway":      map[string]any{"state": "Running", "advertised_routes": []string{"10.0.0.0/24"}, "approved_routes": []string{"10.0.0.0/24"}},
			"certificate":  map[string]any{"mode": "self-signed"},
		}, 0, nil},
		{"nothing known", nil, 0, nil},
		{"logins waiting", nil, 2, []string{"2 logins are waiting for approval."}},
		{"certificate expired", map[string]any{"certificate": map[string]any{"mode": "acme-tls-alpn-01", "not_after": t0.Add(-time.Hour)}}, 0,
			[]string{"The relay's certificate expired 1 hour ago."}},
		{"undecodable parts are skipped", map[string]any{"gateway": "running", "ddns": 7}, 0, nil},
	}
	for _, tt := range tests {
		o := newOverview(control.Status{Extra: tt.extra}, "", tt.pending, t0)
		var got []string
		for _, w := range o.Warnings {
			got = append(got, w.Message)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: warnings %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRelTime(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"},
		{-30 * time.Second, "just now"},
		{-time.Minute, "1 minute ago"},
		{-59 * time.Minute, "59 minutes ago"},
		{3 * time.Hour, "in 3 hours"},
		{-47 * time.Hour, "47 hours ago"},
		{72 * time.Hour, "in 3 days"},
	}
	for _, tt := range tests {
		if got := relTime(t0, t0.Add(tt.d)); got != tt.want {
			t.Errorf("relTime(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := relTime(t0, time.Time{}); got != "-" {
		t.Errorf("relTime(zero) = %q, want -", got)
	}
}

func TestQRSVG(t *testing.T) {
	svg, err := qrSVG("http://192.168.1.2:8080")
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if !strings.HasPrefix(s, `<svg class="qr"`) || !strings.HasSuffix(s, "</svg>") || !strings.Contains(s, `d="M`) {
		t.Errorf("qrSVG = %.200s…", s)
	}
	if _, err := qrSVG(strings.Repeat("x", 5000)); err == nil {
		t.Error("qrSVG of 5000 bytes succeeded; QR codes hold less")
	}
}
