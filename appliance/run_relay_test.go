package appliance

import (
	"net/netip"
	"testing"

	"tailscale.com/tailcfg"
)

func TestDERPMapFor(t *testing.T) {
	v4, v6 := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")
	ddns := DDNSConfig{Provider: "rfc2136", Name: "home.example.net", IPv4: true, IPv6: true}
	tests := []struct {
		name             string
		url              string
		ddns             DDNSConfig
		reach            Reachability
		wantIPv4, wantV6 string
	}{
		{"no public IPv4", "https://home.example.net:8443", ddns, Reachability{IPv6: v6}, "none", ""},
		{"no IPv6", "https://home.example.net:8443", ddns, Reachability{IPv4: v4}, "", "none"},
		{"both", "https://home.example.net:8443", ddns, Reachability{IPv4: v4, IPv6: v6}, "", ""},
		{"A record not managed", "https://home.example.net:8443", DDNSConfig{Provider: "rfc2136", Name: "home.example.net", IPv6: true}, Reachability{IPv6: v6}, "", ""},
		{"relay has another name", "https://relay.example.net:8443", ddns, Reachability{IPv6: v6}, "", ""},
		{"no ddns", "https://home.example.net:8443", DDNSConfig{}, Reachability{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Server: ServerConfig{URL: tt.url}, DDNS: tt.ddns}
			region := &tailcfg.DERPRegion{RegionID: 900, Nodes: []*tailcfg.DERPNode{{Name: "900a", HostName: cfg.RelayHostname()}}}
			m := derpMapFor(region, cfg, tt.reach)
			n := m.Regions[900].Nodes[0]
			if n.IPv4 != tt.wantIPv4 || n.IPv6 != tt.wantV6 {
				t.Errorf("node IPv4 %q IPv6 %q, want %q %q", n.IPv4, n.IPv6, tt.wantIPv4, tt.wantV6)
			}
		})
	}
}

func TestIPCertChallengeAddr(t *testing.T) {
	tests := []struct {
		url, hostname, want string
	}{
		{"https://203.0.113.5", "", ":80"},
		{"https://[2001:db8::5]", "", ":80"},
		{"http://203.0.113.5:8080", "", ""},  // http: the pinned self-signed certificate
		{"https://192.168.1.2", "", ""},      // private: no CA certifies it
		{"https://home.example.net", "", ""}, // a name: DNS-01 or TLS-ALPN-01
		{"https://home.example.net", "203.0.113.5", ":80"},
	}
	for _, tt := range tests {
		cfg := Config{Server: ServerConfig{URL: tt.url, Listen: ":80"}, Relay: RelayConfig{Hostname: tt.hostname}}
		if got := ipCertChallengeAddr(cfg); got != tt.want {
			t.Errorf("url %s, relay.hostname %q: %q, want %q", tt.url, tt.hostname, got, tt.want)
		}
	}
}
