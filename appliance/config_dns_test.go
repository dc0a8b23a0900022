package appliance

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestClientDNS(t *testing.T) {
	lan := LAN{Routes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.0.0.0/23")}}
	r := netip.MustParseAddr("192.168.1.1")
	tests := []struct {
		name       string
		toml       string
		wantRoutes map[string][]netip.Addr
		wantWhy    string
	}{
		{
			name: "configured",
			toml: "[dns]\nlan_domains = [\"lan\", \"Fritz.Box.\"]\nlan_resolver = \"192.168.1.1\"\n",
			wantRoutes: map[string][]netip.Addr{
				"lan": {r}, "fritz.box": {r},
				"1.168.192.in-addr.arpa": {r}, "0.0.10.in-addr.arpa": {r}, "1.0.10.in-addr.arpa": {r},
			},
			wantWhy: "split DNS for lan, fritz.box via 192.168.1.1: domains from dns.lan_domains, resolver from dns.lan_resolver",
		},
		{
			name:    "resolver outside the LAN",
			toml:    "[dns]\nlan_domains = [\"lan\"]\nlan_resolver = \"8.8.8.8\"\n",
			wantWhy: "no split DNS: the resolver 8.8.8.8 is outside the gateway's routes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			ld := c.lanDNS(lan)
			if !strings.Contains(ld.Why, tt.wantWhy) {
				t.Errorf("Why = %q, want %q", ld.Why, tt.wantWhy)
			}
			d, err := c.clientDNS(lan, ld)
			if err != nil {
				t.Fatal(err)
			}
			if !d.MagicDNS || d.BaseDomain != "homenet.internal" {
				t.Errorf("MagicDNS %v under %q, want on under homenet.internal", d.MagicDNS, d.BaseDomain)
			}
			if !reflect.DeepEqual(d.Routes, tt.wantRoutes) {
				t.Errorf("routes = %v, want %v", d.Routes, tt.wantRoutes)
			}
		})
	}
}
