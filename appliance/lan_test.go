package appliance

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func up(name string, addrs ...string) lanIface {
	return lanIface{Name: name, Up: true, Addrs: pfxs(addrs...)}
}

func TestDetectLAN(t *testing.T) {
	lo := lanIface{Name: "lo", Up: true, Loopback: true, Addrs: pfxs("127.0.0.1/8", "::1/128")}
	tests := []struct {
		name       string
		in         lanInput
		wantRoutes []netip.Prefix
		wantWAN    string
		wantWhy    []string // substrings, each must appear in some Why line
	}{
		{
			name: "router with one LAN bridge",
			in: lanInput{
				Ifaces:       []lanIface{lo, up("eth0", "198.51.100.1/24", "2001:db8::1/64"), up("lan0", "192.168.1.1/24", "fe80::1/64")},
				DefaultRoute: "eth0",
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWAN:    "eth0",
			wantWhy:    []string{"WAN is eth0", "serving 192.168.1.0/24: directly connected on lan0", "IPv6 is not advertised"},
		},
		{
			name: "host bits are masked, duplicates merged, several LANs sorted by interface",
			in: lanInput{
				Ifaces:       []lanIface{up("eth2", "172.16.5.9/16"), up("eth1", "10.0.0.7/8", "10.3.3.3/8"), up("eth0", "203.0.113.9/24")},
				DefaultRoute: "eth0",
			},
			wantRoutes: pfxs("10.0.0.0/8", "172.16.0.0/16"),
			wantWAN:    "eth0",
		},
		{
			name: "private WAN (double NAT) is not served when there is a LAN",
			in: lanInput{
				Ifaces:       []lanIface{up("wan", "192.168.0.23/24"), up("br-lan", "192.168.8.1/24")},
				DefaultRoute: "wan",
			},
			wantRoutes: pfxs("192.168.8.0/24"),
			wantWAN:    "wan",
		},
		{
			name: "containers, VPNs, tailnet, link-local, /32, CGNAT and public are skipped",
			in: lanInput{
				Ifaces: []lanIface{
					up("eth0", "100.64.3.4/24"), // ISP CGNAT WAN
					up("docker0", "172.17.0.1/16"),
					up("br-3f2a1b4c5d6e", "172.18.0.1/16"),
					up("veth12ab", "169.254.1.1/16"),
					up("tailscale0", "100.86.0.1/32"),
					up("wg0", "10.8.0.1/24"),
					up("virbr0", "192.168.122.1/24"),
					up("lan0", "192.168.1.1/24", "10.9.9.9/32", "169.254.3.3/16", "100.70.0.1/16", "8.8.8.8/24"),
				},
				DefaultRoute: "eth0",
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWAN:    "eth0",
			wantWhy: []string{
				"skipped docker0", "skipped br-3f2a1b4c5d6e", "skipped tailscale0", "skipped wg0", "skipped virbr0",
				"skipped 10.9.9.9/32 on lan0: a /32", "skipped 169.254.0.0/16 on lan0: link-local",
				"skipped 100.70.0.0/16 on lan0: in 100.64.0.0/10", "skipped 8.8.8.0/24 on lan0: not a private",
			},
		},
		{
			name: "a bridge named br-lan is not a docker bridge",
			in: lanInput{
				Ifaces:       []lanIface{up("br-lan", "192.168.1.1/24"), up("eth0", "198.51.100.1/24")},
				DefaultRoute: "eth0",
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWAN:    "eth0",
		},
		{
			name: "down interface is skipped",
			in: lanInput{
				Ifaces:       []lanIface{{Name: "eth1", Addrs: pfxs("192.168.2.1/24")}, up("eth2", "192.168.3.1/24"), up("eth0", "198.51.100.1/24")},
				DefaultRoute: "eth0",
			},
			wantRoutes: pfxs("192.168.3.0/24"),
			wantWAN:    "eth0",
			wantWhy:    []string{"skipped eth1: down"},
		},
		{
			name: "OpenWrt prefers br-lan over guest networks",
			in: lanInput{
				Ifaces:       []lanIface{up("br-guest", "192.168.3.1/24"), up("br-lan", "192.168.1.1/24"), up("eth1", "10.10.0.1/24"), up("wan", "198.51.100.7/24")},
				DefaultRoute: "wan",
				OpenWrt:      true,
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWAN:    "wan",
			wantWhy:    []string{"on br-guest: OpenWrt, serving br-lan only", "on eth1: OpenWrt"},
		},
		{
			name: "OpenWrt without br-lan falls back to every LAN",
			in: lanInput{
				Ifaces:       []lanIface{up("eth1", "192.168.1.1/24"), up("wan", "198.51.100.7/24")},
				DefaultRoute: "wan",
				OpenWrt:      true,
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWAN:    "wan",
		},
		{
			name: "single-interface host on the LAN serves its own network",
			in: lanInput{
				Ifaces:       []lanIface{lo, up("eth0", "192.168.1.50/24", "fd00::50/64"), up("docker0", "172.17.0.1/16")},
				DefaultRoute: "eth0",
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWAN:    "eth0",
			wantWhy:    []string{"the only interface"},
		},
		{
			name: "single public interface: nothing to serve",
			in: lanInput{
				Ifaces:       []lanIface{lo, up("eth0", "203.0.113.5/24")},
				DefaultRoute: "eth0",
			},
			wantWAN: "eth0",
			wantWhy: []string{"no LAN prefix found; set gateway.routes"},
		},
		{
			name: "no default route: every private prefix is LAN",
			in: lanInput{
				Ifaces: []lanIface{up("eth0", "198.51.100.1/24"), up("lan0", "192.168.1.1/24")},
			},
			wantRoutes: pfxs("192.168.1.0/24"),
			wantWhy:    []string{"WAN unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := detectLAN(tt.in)
			if !slices.Equal(got.Routes, tt.wantRoutes) {
				t.Errorf("Routes = %v, want %v", got.Routes, tt.wantRoutes)
			}
			if got.WAN != tt.wantWAN {
				t.Errorf("WAN = %q, want %q", got.WAN, tt.wantWAN)
			}
			all := strings.Join(got.Why, "\n")
			for _, w := range tt.wantWhy {
				if !strings.Contains(all, w) {
					t.Errorf("Why lacks %q:\n%s", w, all)
				}
			}
			if t.Failed() {
				t.Logf("Why:\n%s", all)
			}
		})
	}
}

func TestDefaultRouteIface(t *testing.T) {
	const procRoute = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	0001A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
wwan0	00000000	0101A8C0	0003	0	0	700	00000000	0	0	0
eth1	00000000	0102A8C0	0003	0	0	100	00000000	0	0	0
eth2	00000000	0103A8C0	0002	0	0	1	00000000	0	0	0
`
	if got := defaultRouteIface(strings.NewReader(procRoute)); got != "eth1" {
		t.Errorf("defaultRouteIface = %q, want eth1 (lowest metric among up default routes)", got)
	}
	const noDefault = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
		"lan0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	if got := defaultRouteIface(strings.NewReader(noDefault)); got != "" {
		t.Errorf("defaultRouteIface without a default route = %q, want \"\"", got)
	}
	const devRoute = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
	if got := defaultRouteIface(strings.NewReader(devRoute)); got != "eth0" {
		t.Errorf("defaultRouteIface with a device default route = %q, want eth0", got)
	}
}

func TestGatewayLANFromConfig(t *testing.T) {
	c := DefaultConfig()
	c.Gateway.Routes = []string{"192.168.7.1/24", "10.1.0.0/16"}
	lan, err := c.GatewayLAN()
	if err != nil {
		t.Fatal(err)
	}
	if want := pfxs("192.168.7.0/24", "10.1.0.0/16"); !slices.Equal(lan.Routes, want) {
		t.Errorf("Routes = %v, want %v", lan.Routes, want)
	}
	if !strings.Contains(strings.Join(lan.Why, "\n"), "from gateway.routes") {
		t.Errorf("Why does not name the config: %q", lan.Why)
	}
}
