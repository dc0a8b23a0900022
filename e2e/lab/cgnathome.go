package lab

import "fmt"

// A home without a public IPv4 address: the ISP gives the home gateway a
// carrier-NAT address and a routed IPv6 prefix, so the gateway is
// reachable from the internet over IPv6 only, and only on ports the ISP
// does not filter. CGNATHome builds it:
//
//	internet 198.51.100.0/24, 2001:db8::/64 (core router "inet" at 2001:db8::1)
//	 ├─ dns  .53  ::53   bind9, authoritative for the zone; every host's resolver
//	 ├─ ca   .10  ::10   pebble resolving through dns (CGNATHome.CA)
//	 ├─ www  .200 ::200  a server on the internet
//	 ├─ isp  .2   ::2    carrier NAT to 100.64.0.0/24; 2001:db8:100::/64 routed
//	 │   │               in, open except TCP 80, 443, 8080
//	 │   └─ gw  100.64.0.2, 2001:db8:100::2 (eth0; gateways 100.64.0.1, fe80::1)
//	 │       └─ lan0 192.168.1.1/24 ── lanhost 192.168.1.10 (no default route)
//	 └─ mN   .2N  ::2N   phone N's mobile network: NAT to 10.N.0.0/24, and
//	     │               2001:db8:20N::/64 behind a stateful firewall
//	     └─ phone 10.N.0.2, 2001:db8:20N::2 (CGNATHome.MobilePhone)
//
// The same from the building blocks:
//
//	l := lab.New(t)
//	inet := l.Internet().EnableIPv6("2001:db8::1/64")
//	dns := l.BIND(l.Host("dns", inet.Link("198.51.100.53/24").With6("2001:db8::53/64")), "hn.test")
//	isp := l.ISPRouter("isp", inet.Link("198.51.100.2/24").With6("2001:db8::2/64"), "100.64.0.1/24", "2001:db8:100::1/64")
//	gw := l.Host("gw", isp.LAN.Link("100.64.0.2/24").With6("2001:db8:100::2/64"))
//	lan := gw.Bridge("lan0", "192.168.1.1/24")
//	m1 := l.NATRouter("m1", inet.Link("198.51.100.21/24").With6("2001:db8::21/64"), "10.1.0.1/24",
//		lab.NATOpts{LAN6: "2001:db8:201::1/64"})
//	phone := l.Host("p1", m1.LAN.Link("10.1.0.2/24").With6("2001:db8:201::2/64"))
//	dns.UseAsResolver(gw, phone)
//	ca := l.CAWithDNS(l.Host("ca", inet.Link("198.51.100.10/24").With6("2001:db8::10/64")), dns)
//	dns.Update(gw, "update add home.hn.test 60 AAAA 2001:db8:100::2")
//
// and renumbering:
//
//	isp.AddPrefix6("2001:db8:101::1/64")
//	gw.Renumber6("2001:db8:100::2/64", "2001:db8:101::2/64")
//	isp.RemovePrefix6("2001:db8:100::1/64")
type CGNATHome struct {
	Internet *Net
	DNS      *BIND
	ISP      *NATRouter
	GW       *Host // eth0 on the ISP's LAN, lan0 the home LAN
	LAN      *Net
	LANHost  *Host
	WWW      *Host

	lab    *Lab
	phones int
}

// Addresses of CGNATHome.
const (
	CGNATZone      = "hn.test"
	CGNATISPPublic = "198.51.100.2"
	CGNATGW4       = "100.64.0.2"
	CGNATGW6       = "2001:db8:100::2"
	CGNATGW6Next   = "2001:db8:101::2" // the gateway's address after RenumberGW
	CGNATWWW4      = "198.51.100.200"
	CGNATWWW6      = "2001:db8::200"
	CGNATCA4       = "198.51.100.10"
	CGNATCA6       = "2001:db8::10"
)

// CGNATHome builds the home without public IPv4 (see the picture above),
// with bind9 authoritative for CGNATZone, which has records ns1 and ca and
// is the resolver of the gateway. It skips the test if bind9 is missing.
func (l *Lab) CGNATHome() *CGNATHome {
	l.t.Helper()
	BINDBinaries(l.t) // skip before building anything
	inet := l.Internet().EnableIPv6("2001:db8::1/64")
	c := &CGNATHome{Internet: inet, lab: l}
	c.DNS = l.BIND(l.Host("dns", inet.Link("198.51.100.53/24").With6("2001:db8::53/64")), CGNATZone,
		"ca\tIN A "+CGNATCA4, "ca\tIN AAAA "+CGNATCA6)
	c.WWW = l.Host("www", inet.Link(CGNATWWW4+"/24").With6(CGNATWWW6+"/64"))
	c.ISP = l.ISPRouter("isp", inet.Link(CGNATISPPublic+"/24").With6("2001:db8::2/64"), "100.64.0.1/24", "2001:db8:100::1/64")
	c.GW = l.Host("gw", c.ISP.LAN.Link(CGNATGW4+"/24").With6(CGNATGW6+"/64"))
	c.LAN = c.GW.Bridge("lan0", "192.168.1.1/24")
	c.LANHost = l.Host("lanhost", c.LAN.Link("192.168.1.10/24").Via(""))
	c.DNS.UseAsResolver(c.GW)
	return c
}

// MobilePhone adds a phone's mobile network (router mN, see the picture)
// and the phone's host on it, whose resolver is the lab's bind9. Start
// tailscaled in it with Lab.Phone.
func (c *CGNATHome) MobilePhone(name string) (*NATRouter, *Host) {
	c.lab.t.Helper()
	c.phones++
	n := c.phones
	m := c.lab.NATRouter(fmt.Sprintf("m%d", n),
		c.Internet.Link(fmt.Sprintf("198.51.100.%d/24", 20+n)).With6(fmt.Sprintf("2001:db8::%d/64", 20+n)),
		fmt.Sprintf("10.%d.0.1/24", n), NATOpts{LAN6: fmt.Sprintf("2001:db8:%d::1/64", 200+n)})
	h := c.lab.Host(name, m.LAN.Link(fmt.Sprintf("10.%d.0.2/24", n)).With6(fmt.Sprintf("2001:db8:%d::2/64", 200+n)))
	c.DNS.UseAsResolver(h)
	return m, h
}

// CA starts pebble in a new host "ca" on the internet, resolving through
// the lab's bind9 (Lab.CAWithDNS). It skips the test without pebble.
func (c *CGNATHome) CA() *CA {
	c.lab.t.Helper()
	PebbleBinary(c.lab.t)
	return c.lab.CAWithDNS(c.lab.Host("ca", c.Internet.Link(CGNATCA4+"/24").With6(CGNATCA6+"/64")), c.DNS)
}

// RenumberGW moves the home to a new IPv6 prefix, as an ISP does now and
// then: the ISP routes 2001:db8:101::/64 to the home as well, the gateway
// swaps CGNATGW6 for CGNATGW6Next, and the old prefix is withdrawn.
func (c *CGNATHome) RenumberGW() {
	c.lab.t.Helper()
	c.ISP.AddPrefix6("2001:db8:101::1/64")
	c.GW.Renumber6(CGNATGW6+"/64", CGNATGW6Next+"/64")
	c.ISP.RemovePrefix6("2001:db8:100::1/64")
}
