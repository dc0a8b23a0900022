package appliance

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"tailscale.com/net/stun"
)

func TestNetInfoFrom(t *testing.T) {
	lan := LAN{WAN: "eth0", Routes: pfxs("192.168.8.0/24")}
	ifaces := []lanIface{
		{Name: "lo", Up: true, Loopback: true, Addrs: pfxs("127.0.0.1/8", "::1/128")},
		up("eth0", "100.72.1.9/10", "fe80::1/64", "2a01:4f8::9/64", "fd00::9/64"),
		up("br-lan", "192.168.8.1/24", "fd12::1/64"),
		up("docker0", "172.17.0.1/16", "2a01:4f8:1::1/64"),
		up("tailscale0", "100.86.0.1/32", "fd7a:115c:a1e0::1/128"),
	}
	n := netInfoFrom(lan, ifaces)
	if !slices.Equal(n.WANAddrs, pfxs("100.72.1.9/10", "2a01:4f8::9/64", "fd00::9/64")) {
		t.Errorf("WAN addresses %v", n.WANAddrs)
	}
	if n.LANAddr != netip.MustParseAddr("192.168.8.1") {
		t.Errorf("LAN address %v", n.LANAddr)
	}
	if !slices.Equal(n.GlobalIPv6, []netip.Addr{netip.MustParseAddr("2a01:4f8::9")}) {
		t.Errorf("global IPv6 %v", n.GlobalIPv6)
	}
	if n.HostAddr != netip.MustParseAddr("100.72.1.9") {
		t.Errorf("host address %v", n.HostAddr)
	}
	if n.WANIPv4() != netip.MustParseAddr("100.72.1.9") {
		t.Errorf("WAN IPv4 %v", n.WANIPv4())
	}
}

func TestChooseServerURL(t *testing.T) {
	tests := []struct {
		name    string
		n       NetInfo
		want    string
		wantWhy string
	}{
		{"public WAN", netOf("eth0", "198.51.100.4/24", "192.168.1.0/24"), "http://198.51.100.4:8080", "public address of the WAN interface eth0"},
		{"host on the LAN", netOf("eth0", "192.168.1.20/24", "192.168.1.0/24"), "http://192.168.1.20:8080", "LAN address"},
		{"router in CGNAT uses its LAN side", func() NetInfo {
			n := netOf("wan", "100.64.7.7/10", "192.168.1.0/24")
			n.LANAddr = netip.MustParseAddr("192.168.1.1")
			return n
		}(), "http://192.168.1.1:8080", "100.64.7.7 is not public"},
		{"STUN's answer wins", func() NetInfo {
			n := netOf("eth0", "192.168.1.20/24", "192.168.1.0/24")
			n.Public, n.STUNServer = netip.MustParseAddr("203.0.113.50"), "stun.example:3478"
			return n
		}(), "http://203.0.113.50:8080", "STUN server stun.example:3478"},
		{"only a WAN", netOf("eth0", "10.9.9.9/8"), "http://10.9.9.9:8080", "not public"},
		{"no route, an address", NetInfo{HostAddr: netip.MustParseAddr("192.0.2.2")}, "http://192.0.2.2:8080", "neither a WAN nor a LAN"},
		{"nothing", NetInfo{}, "http://127.0.0.1:8080", "only this host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := chooseServerURL(tt.n, "8080")
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("got %s (%s), want %s (%s)", got, why, tt.want, tt.wantWhy)
			}
		})
	}
}

func TestReachabilityWarnings(t *testing.T) {
	openwrt := Platform{Kind: PlatformOpenWrt}
	pi := Platform{Kind: PlatformSystemd}
	cfgFor := func(url string) *Config {
		c := DefaultConfig()
		c.Server.URL = url
		c.Gateway.Enabled = true
		return &c
	}
	withV6 := func(n NetInfo, a string) NetInfo {
		n.GlobalIPv6 = []netip.Addr{netip.MustParseAddr(a)}
		return n
	}
	tests := []struct {
		name     string
		p        Platform
		n        NetInfo
		url      string
		urlGiven bool
		want     []string // codes, in order
		wantText []string // in messages and fixes
		notText  []string
	}{
		{
			name: "router with a public WAN and IPv6", p: openwrt,
			n:   withV6(netOf("wan", "198.51.100.4/24", "192.168.1.0/24"), "2001:db8:1::4"),
			url: "https://home.example.net:8443",
		},
		{
			name: "router with a public WAN and a plain http URL", p: openwrt,
			n:   withV6(netOf("wan", "198.51.100.4/24", "192.168.1.0/24"), "2001:db8:1::4"),
			url: "http://198.51.100.4:8080", want: []string{"public-http-url"},
			wantText: []string{"first failed connection", "--server-url https://NAME"},
		},
		{
			name: "router with an https URL on the default port", p: openwrt,
			n:   withV6(netOf("wan", "198.51.100.4/24", "192.168.1.0/24"), "2001:db8:1::4"),
			url: "https://home.example.net", want: []string{"https-port"},
			wantText: []string{"port 443", "listens on port 8443", "Forward TCP 443 on your router to port 8443"},
		},
		{
			name: "Pi with a public WAN must open its firewall", p: pi,
			n:    withV6(netOf("eth0", "198.51.100.4/24"), "2001:db8:1::4"),
			url:  "http://198.51.100.4:8080",
			want: []string{"open-ports", "public-http-url"}, wantText: []string{"TCP 8080 (control), TCP 8443 (relay), UDP 3478 (STUN) and UDP 41641 (WireGuard)"},
		},
		{
			name: "router in ISP CGNAT with IPv6", p: openwrt,
			n:   withV6(netOf("wan", "100.64.7.7/10", "192.168.1.0/24"), "2001:db8:1::1"),
			url: "http://192.168.1.1:8080", want: []string{"cgnat"},
			wantText: []string{"carrier-grade NAT", "--ddns PROVIDER", "https://NAME:8443", "IPv6 firewall", "VPS"},
		},
		{
			name: "router in ISP CGNAT without IPv6", p: openwrt,
			n:   netOf("wan", "100.64.7.7/10", "192.168.1.0/24"),
			url: "http://192.168.1.1:8080", want: []string{"cgnat"},
			wantText: []string{"public IPv4 address", "VPS"}, notText: []string{"--server-url"},
		},
		{
			name: "router behind another router", p: openwrt,
			n:   netOf("wan", "192.168.0.5/24", "192.168.1.0/24"),
			url: "http://192.168.1.1:8080", want: []string{"double-nat", "no-ipv6"},
			wantText: []string{"double NAT", "upstream router, forward TCP 8080 (control)", "to 192.168.0.5", "--server-url http://<your public address or a DNS name>:8080"},
		},
		{
			name: "Pi on the home LAN", p: pi,
			n:   netOf("eth0", "192.168.1.20/24", "192.168.1.0/24"),
			url: "http://192.168.1.20:8080", want: []string{"behind-nat", "no-ipv6"},
			wantText: []string{"homenet asks your router to forward TCP 8080 (control)", "by hand to 192.168.1.20", "--ddns PROVIDER"},
			notText:  []string{"--server-url http://"},
		},
		{
			name: "Pi on the home LAN with a DNS name given", p: pi,
			n:   netOf("eth0", "192.168.1.20/24", "192.168.1.0/24"),
			url: "http://home.example.net:8080", urlGiven: true, want: []string{"behind-nat", "public-http-url", "no-ipv6"},
			wantText: []string{"forward"}, notText: []string{"--server-url http://"},
		},
		{
			name: "Pi on the home LAN, STUN saw the public address", p: pi,
			n: func() NetInfo {
				n := netOf("eth0", "192.168.1.20/24", "192.168.1.0/24")
				n.Public, n.STUNServer = netip.MustParseAddr("203.0.113.50"), "stun.example"
				return n
			}(),
			url: "http://203.0.113.50:8080", want: []string{"behind-nat", "public-http-url", "no-ipv6"},
			wantText: []string{"saw your public address as 203.0.113.50", "forward"}, notText: []string{"--server-url http://"},
		},
		{
			name: "private URL given on a public host", p: pi,
			n:   withV6(netOf("eth0", "198.51.100.4/24"), "2001:db8:1::4"),
			url: "http://10.0.0.1:8080", urlGiven: true, want: []string{"open-ports", "private-url"},
		},
		{
			name: "no default route", p: pi,
			n:   NetInfo{},
			url: "http://127.0.0.1:8080", want: []string{"no-wan", "private-url", "no-ipv6"},
			wantText: []string{"only on this host"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := reachabilityWarnings(tt.p, tt.n, cfgFor(tt.url), tt.urlGiven, "homenet init")
			var codes []string
			var text strings.Builder
			for _, w := range ws {
				codes = append(codes, w.Code)
				text.WriteString(w.Message + "\n" + w.Fix + "\n")
			}
			if !slices.Equal(codes, tt.want) {
				t.Errorf("warnings %q, want %q:\n%s", codes, tt.want, text.String())
			}
			for _, s := range tt.wantText {
				if !strings.Contains(text.String(), s) {
					t.Errorf("warnings do not say %q:\n%s", s, text.String())
				}
			}
			for _, s := range tt.notText {
				if strings.Contains(text.String(), s) {
					t.Errorf("warnings say %q:\n%s", s, text.String())
				}
			}
		})
	}
}

func TestSTUNProbe(t *testing.T) {
	// A STUN server on loopback that claims the client is 203.0.113.9;
	// it ignores the first request, so the probe must retry.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for n := 0; ; n++ {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			tx, err := stun.ParseBindingRequest(buf[:k])
			if err != nil || n == 0 {
				continue
			}
			pc.WriteTo(stun.Response(tx, netip.MustParseAddrPort("203.0.113.9:41000")), from)
		}
	}()
	got, err := stunProbe(context.Background(), pc.LocalAddr().String())
	if err != nil || got != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("stunProbe = %v, %v", got, err)
	}

	// Through Init: the answer becomes the server URL.
	pcase := platformCases()[4] // Debian container
	n := netOf("eth0", "192.168.1.20/24", "192.168.1.0/24")
	res, err := Init(context.Background(), InitOptions{Root: makeRoot(t, pcase), NoService: true, Net: &n, STUNServer: pc.LocalAddr().String()})
	if err != nil || res.ServerURL != "http://203.0.113.9:8080" || res.Network.Public != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("Init with STUN: %v, URL %s, network %+v", err, res.ServerURL, res.Network)
	}
}

func TestHTTPSListeners(t *testing.T) {
	pi, openwrt := Platform{Kind: PlatformSystemd}, Platform{Kind: PlatformOpenWrt}
	tests := []struct {
		name        string
		p           Platform
		url         string
		relayListen string
		want        [2]string // server.listen, relay.listen after
	}{
		{"https name on a Pi", pi, "https://home.example.net", ":8443", [2]string{":80", ":443"}},
		{"http URL", pi, "http://home.example.net:8080", ":8443", [2]string{":8080", ":8443"}},
		{"https with a port", pi, "https://home.example.net:8443", ":8443", [2]string{":8080", ":8443"}},
		{"https on a public address: an IP certificate by HTTP-01 on :80", pi, "https://198.51.100.4", ":8443", [2]string{":80", ":443"}},
		{"https on a private address", pi, "https://192.168.1.2", ":8443", [2]string{":8080", ":8443"}},
		{"OpenWrt, where LuCI holds 443", openwrt, "https://home.example.net", ":8443", [2]string{":8080", ":8443"}},
		{"a port the user chose", pi, "https://home.example.net", ":9443", [2]string{":8080", ":9443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Server.URL, c.Relay.Listen = tt.url, tt.relayListen
			moved := httpsListeners(&c, tt.p)
			if got := [2]string{c.Server.Listen, c.Relay.Listen}; got != tt.want {
				t.Errorf("listeners %q, want %q", got, tt.want)
			}
			if moved != (tt.want[1] == ":443") {
				t.Errorf("httpsListeners reported %v", moved)
			}
			if moved && len(schemeWarnings(&c, addrPublic, "homenet init")) != 0 {
				t.Errorf("warnings after moving: %+v", schemeWarnings(&c, addrPublic, "homenet init"))
			}
		})
	}
}

func TestSchemeWarnings(t *testing.T) {
	tests := []struct {
		url, relayListen string
		want             string // the warning's code, or ""
	}{
		{"http://192.168.1.2:8080", ":8443", ""},
		{"http://198.51.100.4:8080", ":8443", "public-http-url"},
		{"http://home.example.net:8080", ":8443", "public-http-url"},
		{"https://home.example.net", ":443", ""},
		{"https://home.example.net", ":8443", "https-port"},
		{"https://home.example.net:8443", ":8443", ""},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.Server.URL, c.Relay.Listen = tt.url, tt.relayListen
		var got string
		if ws := urlSchemeWarnings(&c); len(ws) > 0 {
			got = ws[0].Code
		}
		if got != tt.want {
			t.Errorf("urlSchemeWarnings(%s, relay %s) = %q, want %q", tt.url, tt.relayListen, got, tt.want)
		}
	}
}
