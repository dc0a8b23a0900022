// Package portmap keeps port mappings for homenet's ports on the upstream
// home router, and learns the router's external IPv4 address. It is for
// homenet on a NAS or Raspberry Pi behind the home router: the router, not
// this host, has the public address, and phones away from home reach
// control, the relay and STUN only through ports the router forwards.
//
// A Mapper asks the router (the default route's gateway unless told
// otherwise) in this order: UPnP IGD (WANIPConnection 2 or 1, or
// WANPPPConnection 1, found by SSDP from the interface facing the router),
// then PCP (RFC 6887, MAP), then NAT-PMP (RFC 6886). The first that
// answers is kept while it keeps answering. Mappings are renewed at half
// their lease, failures are retried with back-off, and Close deletes every
// mapping the Mapper made, so a stopped homenet leaves no holes in the
// router. A router that speaks none of the three is reported once and then
// asked again every five minutes, quietly.
//
// Why not tailscale.com/net/portmapper: it maps exactly one UDP port, the
// one magicsock's WireGuard socket is bound to (Client.SetLocalPort), and
// is built around magicsock's needs (an event bus, netmon, one cached
// mapping it may move to another port). homenet needs several ports, TCP
// among them (the control server's HTTP(S) and the DERP relay), each kept
// on the external port the phones were told about.
//
// The external address the router reports may itself be private (a router
// behind carrier NAT); Status shows it as the router says, and callers
// decide what it is good for.
package portmap
