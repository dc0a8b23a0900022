package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// IPv6 in the lab. It is there only when a test asks for it: the internet
// gets a core router with Net.EnableIPv6, hosts get addresses with
// Link.With6, and routers route a global /64 to their LAN (NATOpts.LAN6,
// ISPRouter). Addresses are static and added without duplicate address
// detection, so they work at once; there is no SLAAC.

// lanGateway6 is the link-local address every router with an IPv6 LAN
// takes on lan0, and which its LAN hosts route through: like a real
// router's, it stays when the global prefix changes (see Renumber6).
var lanGateway6 = netip.MustParseAddr("fe80::1")

// ISPBlockedTCP are the TCP ports an ISPRouter drops on their way in to its
// customers over IPv6, as many access providers do.
var ISPBlockedTCP = []int{80, 443, 8080}

// EnableIPv6 makes n's owner the IPv6 router of n: it takes addr6 (CIDR,
// e.g. "2001:db8::1/64") on the bridge and forwards IPv6. Hosts that join
// n later with an IPv6 address (Link.With6) get their default IPv6 route
// via it, and routers with an IPv6 LAN behind n (NATOpts.LAN6, ISPRouter)
// get a route for it in n's owner. For the internet, this is the core
// router. It returns n.
func (n *Net) EnableIPv6(addr6 string) *Net {
	h := n.Owner
	h.lab.t.Helper()
	p := netip.MustParsePrefix(addr6)
	h.EnableForwarding6()
	h.MustRun("ip", "-6", "addr", "add", p.String(), "dev", n.Bridge, "nodad")
	h.addrs6 = append(h.addrs6, p)
	n.Gateway6 = p.Addr()
	return n
}

// EnableForwarding6 turns on IPv6 forwarding in h.
func (h *Host) EnableForwarding6() {
	h.MustRun("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
}

// Addr6 returns h's first global IPv6 address.
func (h *Host) Addr6() netip.Addr {
	if len(h.addrs6) == 0 {
		h.lab.t.Fatalf("host %s has no IPv6 address", h.Name)
	}
	return h.addrs6[0].Addr()
}

// Renumber6 replaces h's IPv6 address old (CIDR) by new (CIDR) on the same
// interface, as a host does when its provider changes the prefix. Routes
// via a link-local gateway (a router's LAN, see NATRouter.AddPrefix6) stay.
func (h *Host) Renumber6(old, new string) {
	t := h.lab.t
	t.Helper()
	op, np := netip.MustParsePrefix(old), netip.MustParsePrefix(new)
	dev := ""
	for _, line := range strings.Split(h.MustRun("ip", "-o", "-6", "addr", "show"), "\n") {
		// "3: eth0    inet6 2001:db8:100::2/64 scope global nodad ..."
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == "inet6" && f[3] == op.String() {
			dev = f[1]
		}
	}
	if dev == "" {
		t.Fatalf("host %s: no IPv6 address %s to renumber", h.Name, op)
	}
	h.MustRun("ip", "-6", "addr", "add", np.String(), "dev", dev, "nodad")
	h.MustRun("ip", "-6", "addr", "del", op.String(), "dev", dev)
	if i := slices.Index(h.addrs6, op); i >= 0 {
		h.addrs6[i] = np
	}
}

// AddPrefix6 routes one more global IPv6 prefix to r's LAN: r takes addr6
// (CIDR, e.g. "2001:db8:101::1/64") on lan0 and the router of r's WAN Net
// routes the prefix to r's WAN IPv6 address. LAN hosts keep their default
// route via r's link-local address, so a test renumbers a host with
// Host.Renumber6 and then drops the old prefix with RemovePrefix6.
func (r *NATRouter) AddPrefix6(addr6 string) {
	t := r.lab.t
	t.Helper()
	p := netip.MustParsePrefix(addr6)
	core := r.wan.Net
	if !r.wan.Addr6.IsValid() || !core.Gateway6.IsValid() {
		t.Fatalf("router %s: an IPv6 LAN needs an IPv6 WAN: a WAN link with an address (Link.With6) on a Net with IPv6 (Net.EnableIPv6)", r.Name)
	}
	if !r.LAN.Gateway6.IsValid() {
		r.EnableForwarding6()
		r.MustRun("ip", "-6", "addr", "add", netip.PrefixFrom(lanGateway6, 64).String(), "dev", r.LAN.Bridge, "nodad")
		r.LAN.Gateway6 = lanGateway6
	}
	r.MustRun("ip", "-6", "addr", "add", p.String(), "dev", r.LAN.Bridge, "nodad")
	r.addrs6 = append(r.addrs6, p)
	core.Owner.MustRun("ip", "-6", "route", "add", p.Masked().String(), "via", r.wan.Addr6.Addr().String(), "dev", core.Bridge)
}

// RemovePrefix6 undoes AddPrefix6(addr6): the prefix no longer reaches r's
// LAN.
func (r *NATRouter) RemovePrefix6(addr6 string) {
	t := r.lab.t
	t.Helper()
	p := netip.MustParsePrefix(addr6)
	r.wan.Net.Owner.MustRun("ip", "-6", "route", "del", p.Masked().String())
	r.MustRun("ip", "-6", "addr", "del", p.String(), "dev", r.LAN.Bridge)
	r.addrs6 = slices.DeleteFunc(r.addrs6, func(q netip.Prefix) bool { return q == p })
}

// ISPRouter creates an access provider's router in front of a home that
// has no public IPv4 address. IPv4: carrier-grade NAT, like NATRouter with
// RandomFully, for a LAN lan (CIDR, e.g. "100.64.0.1/24"); the customer's
// router gets a shared address (100.64.0.0/10) and nothing on the internet
// can open a connection to it. IPv6: the global prefix of lan6 (CIDR,
// e.g. "2001:db8:100::1/64") is routed to the LAN untranslated and open,
// except TCP ports ISPBlockedTCP, which are dropped on the way in. wan
// needs an IPv6 address on a Net with IPv6. Renumber with AddPrefix6 and
// RemovePrefix6.
func (l *Lab) ISPRouter(name string, wan Link, lan, lan6 string) *NATRouter {
	l.t.Helper()
	r := l.natRouter(name, wan, lan, NATOpts{RandomFully: true})
	r.AddPrefix6(lan6)
	for _, port := range ISPBlockedTCP {
		r.MustRun("ip6tables", "-A", "FORWARD", "-i", "eth0", "-o", r.LAN.Bridge, "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
	}
	return r
}
