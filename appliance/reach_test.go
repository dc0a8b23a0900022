package appliance

import (
	"net/netip"
	"strings"
	"testing"
)

func TestReachabilityFrom(t *testing.T) {
	const forever = 0xFFFFFFFF
	a := func(iface, ip string, flags int, pref uint32) hostAddr {
		return hostAddr{Iface: iface, Up: true, Addr: netip.MustParseAddr(ip), Flags: flags, PreferredLft: pref}
	}
	tests := []struct {
		name      string
		wan       string
		addrs     []hostAddr
		keep      string
		wantCase  string
		wantV4    string
		wantV6    string
		adviceHas string
	}{
		{
			name: "public IPv4 and IPv6", wan: "eth0",
			addrs:    []hostAddr{a("eth0", "203.0.113.7", 0, forever), a("eth0", "2001:db8:100::2", 0, forever)},
			wantCase: ReachPublicIPv4, wantV4: "203.0.113.7", wantV6: "2001:db8:100::2", adviceHas: "203.0.113.7",
		},
		{
			name: "carrier NAT with IPv6", wan: "eth0",
			addrs:    []hostAddr{a("eth0", "100.64.0.2", 0, forever), a("eth0", "2001:db8:100::2", 0, forever)},
			wantCase: ReachIPv6Only, wantV6: "2001:db8:100::2", adviceHas: "100.64.0.2 is carrier-grade NAT",
		},
		{
			name: "temporary, deprecated, tentative, ULA, link-local and tunnel addresses are skipped", wan: "eth0",
			addrs: []hostAddr{
				a("eth0", "192.168.0.5", 0, forever),
				a("eth0", "2001:db8:100::aaaa", ifaFSecondary, 3600),
				a("eth0", "2001:db8:100::bbbb", ifaFDeprecated, 0),
				a("eth0", "2001:db8:100::cccc", 0, 0),
				a("eth0", "2001:db8:100::dddd", ifaFTentative, forever),
				a("eth0", "fd00::1", 0, forever),
				a("eth0", "fe80::1", 0, forever),
				a("tailscale0", "2001:db8:999::1", 0, forever),
				a("br-lan", "2001:db8:200::1", 0, 7200),
			},
			wantCase: ReachIPv6Only, wantV6: "2001:db8:200::1", adviceHas: "192.168.0.5 is private",
		},
		{
			name: "WAN preferred over LAN, then the longest lifetime", wan: "eth0",
			addrs: []hostAddr{
				a("br-lan", "2001:db8:200::1", 0, forever),
				a("eth0", "2001:db8:100::9", 0, 3600),
				a("eth0", "2001:db8:100::2", 0, 7200),
			},
			wantCase: ReachIPv6Only, wantV6: "2001:db8:100::2",
		},
		{
			name: "last choice kept while usable", wan: "eth0", keep: "2001:db8:100::9",
			addrs: []hostAddr{
				a("eth0", "2001:db8:100::2", 0, 7200),
				a("eth0", "2001:db8:100::9", 0, 3600),
			},
			wantCase: ReachIPv6Only, wantV6: "2001:db8:100::9",
		},
		{
			name: "renumbered: last choice gone", wan: "eth0", keep: "2001:db8:100::2",
			addrs:    []hostAddr{a("eth0", "2001:db8:101::2", 0, forever)},
			wantCase: ReachIPv6Only, wantV6: "2001:db8:101::2",
		},
		{
			name: "down interface does not count", wan: "eth0",
			addrs:    []hostAddr{a("eth0", "100.64.0.2", 0, forever), {Iface: "eth1", Addr: netip.MustParseAddr("2001:db8::5"), PreferredLft: forever}},
			wantCase: ReachNone, adviceHas: "VPS",
		},
		{
			name: "public IPv4 on a non-WAN interface is not the WAN's", wan: "eth0",
			addrs:    []hostAddr{a("eth1", "198.51.100.9", 0, forever)},
			wantCase: ReachNone, adviceHas: "has no IPv4 address",
		},
		{
			name: "no default route", wan: "",
			addrs:    nil,
			wantCase: ReachNone, adviceHas: "no IPv4 default route",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keep netip.Addr
			if tt.keep != "" {
				keep = netip.MustParseAddr(tt.keep)
			}
			r := reachabilityFrom(tt.wan, tt.addrs, keep)
			if r.Case != tt.wantCase {
				t.Errorf("case %q, want %q (%+v)", r.Case, tt.wantCase, r)
			}
			if got := addrString(r.IPv4); got != tt.wantV4 {
				t.Errorf("IPv4 %q, want %q", got, tt.wantV4)
			}
			if got := addrString(r.IPv6); got != tt.wantV6 {
				t.Errorf("IPv6 %q, want %q", got, tt.wantV6)
			}
			if !strings.Contains(r.Advice, tt.adviceHas) {
				t.Errorf("advice %q does not say %q", r.Advice, tt.adviceHas)
			}
		})
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
