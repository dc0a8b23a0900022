package control

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"

	"tailscale.com/tailcfg"
	"tailscale.com/types/dnstype"
)

func TestDNSConfig(t *testing.T) {
	lan := netip.MustParseAddr("192.168.1.1")
	tests := []struct {
		name string
		dns  DNS
		want *tailcfg.DNSConfig
	}{
		{"nothing", DNS{}, nil},
		{"magicdns", DNS{MagicDNS: true}, &tailcfg.DNSConfig{Proxied: true, Domains: []string{DefaultBaseDomain}}},
		{"base domain normalized", DNS{MagicDNS: true, BaseDomain: "Home.Internal."},
			&tailcfg.DNSConfig{Proxied: true, Domains: []string{"home.internal"}}},
		{"nameservers used with the exit node", DNS{Nameservers: []netip.Addr{netip.MustParseAddr("9.9.9.9")}},
			&tailcfg.DNSConfig{Resolvers: []*dnstype.Resolver{{Addr: "9.9.9.9", UseWithExitNode: true}}}},
		{"split DNS without MagicDNS", DNS{Routes: map[string][]netip.Addr{"lan.": {lan}, "1.168.192.in-addr.arpa": {lan}}},
			&tailcfg.DNSConfig{Routes: map[string][]*dnstype.Resolver{
				"lan":                    {{Addr: "192.168.1.1", UseWithExitNode: true}},
				"1.168.192.in-addr.arpa": {{Addr: "192.168.1.1", UseWithExitNode: true}},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.dns.tailcfg(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tailcfg() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestMapNamesAndTaildrop checks what a map says about names and file
// sharing: the DNS config, names under the base domain, Taildrop for a
// person's devices, and tagged nodes owned by tagged-devices.
func TestMapNamesAndTaildrop(t *testing.T) {
	lan := netip.MustParseAddr("192.168.1.1")
	dns := DNS{MagicDNS: true, BaseDomain: "home.internal", Routes: map[string][]netip.Addr{"lan": {lan}}}
	s := openTestServer(t, filepath.Join(t.TempDir(), "homenet.db"), "100.86.0.0/16", func(c *Config) { c.DNS = dns })
	phone, gw := newTestNode(t, s.url, "phone"), newTestNode(t, s.url, "gw")
	phone.register(t, mustAuthKey(t, s.Server, AuthKeyOptions{}))
	gw.register(t, mustAuthKey(t, s.Server, AuthKeyOptions{Tags: []string{"tag:gateway"}}))

	m := phone.stream(t)
	if !reflect.DeepEqual(m.DNSConfig, dns.tailcfg()) {
		t.Errorf("DNSConfig = %+v, want %+v", m.DNSConfig, dns.tailcfg())
	}
	if m.Node.Name != "phone.home.internal." {
		t.Errorf("self name %q, want phone.home.internal.", m.Node.Name)
	}
	if _, ok := m.Node.CapMap[tailcfg.CapabilityFileSharing]; !ok {
		t.Errorf("untagged self lacks %s: %v", tailcfg.CapabilityFileSharing, m.Node.CapMap)
	}
	if m.Node.User != homeUser.ID {
		t.Errorf("untagged self owned by %v, want %v", m.Node.User, homeUser.ID)
	}
	if len(m.Peers) != 1 || m.Peers[0].User != taggedUser.ID {
		t.Fatalf("peers %+v: want the tagged gateway, owned by %v", m.Peers, taggedUser.ID)
	}
	profiles := map[tailcfg.UserID]bool{}
	for _, p := range m.UserProfiles {
		profiles[p.ID] = true
	}
	if !profiles[homeUser.ID] || !profiles[taggedUser.ID] {
		t.Errorf("UserProfiles %+v lack home or tagged-devices", m.UserProfiles)
	}

	g := gw.stream(t)
	if _, ok := g.Node.CapMap[tailcfg.CapabilityFileSharing]; ok {
		t.Errorf("tagged self has %s: it would take files", tailcfg.CapabilityFileSharing)
	}
}
