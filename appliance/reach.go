package appliance

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Reachability cases: how phones away from home can reach this host.
const (
	// ReachPublicIPv4: the WAN interface has a public IPv4 address.
	ReachPublicIPv4 = "public-ipv4"
	// ReachIPv6Only: no public IPv4 (carrier NAT, or behind another
	// router), but a stable global IPv6 address.
	ReachIPv6Only = "ipv6-only"
	// ReachNone: neither. Phones away from home cannot connect in.
	ReachNone = "none"
)

// Reachability is what this host's own addresses say about reaching it
// from the internet. Finding it reads the interfaces and sends nothing, so
// it cannot see an upstream NAT or firewall: a public address is where
// phones may reach, not proof that they do.
type Reachability struct {
	Case string `json:"case"`
	WAN  string `json:"wan,omitempty"`
	// IPv4 is the WAN interface's public IPv4 address, if it has one.
	IPv4 netip.Addr `json:"public_ipv4,omitzero"`
	// WANIPv4 is the WAN's IPv4 address when it is not public, for the
	// advice ("100.64.3.9 is carrier NAT").
	WANIPv4 netip.Addr `json:"wan_ipv4,omitzero"`
	// IPv6 is the global IPv6 address DNS should name: stable (not a
	// temporary privacy address), preferred (not deprecated), on the WAN
	// if it has one there, else on another interface (OpenWrt puts the
	// delegated prefix on br-lan).
	IPv6 netip.Addr `json:"global_ipv6,omitzero"`
	// IPv6Iface is the interface IPv6 is on.
	IPv6Iface string `json:"ipv6_interface,omitempty"`
	Advice    string `json:"advice"`
}

// Address flags from <linux/if_addr.h>.
const (
	ifaFSecondary  = 0x01 // IFA_F_TEMPORARY for IPv6
	ifaFDadFailed  = 0x08
	ifaFDeprecated = 0x20
	ifaFTentative  = 0x40
)

// hostAddr is one address of an interface, with the kernel's flags.
type hostAddr struct {
	Iface string
	Up    bool
	Addr  netip.Addr
	Flags int
	// PreferredLft is the preferred lifetime in seconds; the kernel
	// reports "forever" as 0xFFFFFFFF, and 0 means deprecated.
	PreferredLft uint32
}

// usableIPv6 reports whether a is a global IPv6 address DNS may name.
func usableIPv6(a hostAddr) bool {
	ip := a.Addr
	switch {
	case !a.Up || !ip.Is6() || ip.Is4In6() || !ip.IsGlobalUnicast() || ip.IsPrivate():
		return false
	case ignoredIface.MatchString(a.Iface):
		return false
	case a.Flags&(ifaFSecondary|ifaFDadFailed|ifaFDeprecated|ifaFTentative) != 0:
		return false
	case a.PreferredLft == 0:
		return false
	}
	return true
}

// reachabilityFrom decides the Reachability of a host whose IPv4 default
// route leaves through wan and which has addrs. keep is the IPv6 address
// chosen last time: it stays while it is usable, so that DNS does not
// flap between two addresses of one prefix.
func reachabilityFrom(wan string, addrs []hostAddr, keep netip.Addr) Reachability {
	r := Reachability{WAN: wan}
	var v6 []hostAddr
	for _, a := range addrs {
		if a.Iface == wan && a.Up && a.Addr.Is4() {
			switch addrClass(a.Addr) {
			case addrPublic:
				if !r.IPv4.IsValid() {
					r.IPv4 = a.Addr
				}
			case addrCGNAT, addrPrivate:
				if !r.WANIPv4.IsValid() {
					r.WANIPv4 = a.Addr
				}
			}
		}
		if usableIPv6(a) {
			v6 = append(v6, a)
		}
	}
	// Keep last time's choice; else prefer the WAN, the longest preferred
	// lifetime, then the lowest address for a stable pick.
	slices.SortStableFunc(v6, func(a, b hostAddr) int {
		if c := boolOrder(a.Addr == keep, b.Addr == keep); c != 0 {
			return c
		}
		if c := boolOrder(a.Iface == wan, b.Iface == wan); c != 0 {
			return c
		}
		if c := cmp.Compare(b.PreferredLft, a.PreferredLft); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	if len(v6) > 0 {
		r.IPv6, r.IPv6Iface = v6[0].Addr, v6[0].Iface
	}
	switch {
	case r.IPv4.IsValid():
		r.Case = ReachPublicIPv4
		r.Advice = fmt.Sprintf("The WAN %s has the public IPv4 address %s: phones reach this host directly once its ports are open.", wan, r.IPv4)
	case r.IPv6.IsValid():
		r.Case = ReachIPv6Only
		r.Advice = fmt.Sprintf("No public IPv4 (%s), but the global IPv6 address %s on %s: phones with IPv6 reach it. "+
			"Give it a DNS name kept current by [ddns], a certificate by DNS-01 and a port your ISP does not block, "+
			"such as https://NAME:8443: see \"No public IPv4\" in docs/config.md.", noV4Why(r), r.IPv6, r.IPv6Iface)
	default:
		r.Case = ReachNone
		r.Advice = fmt.Sprintf("Neither a public IPv4 (%s) nor a global IPv6 address: phones away from home cannot connect in. "+
			"Run control and relay on a small VPS and join this gateway to it, or, if this host sits behind your router, forward its ports there.", noV4Why(r))
	}
	return r
}

// noV4Why says why there is no public IPv4.
func noV4Why(r Reachability) string {
	switch {
	case r.WAN == "":
		return "no IPv4 default route"
	case !r.WANIPv4.IsValid():
		return fmt.Sprintf("the WAN %s has no IPv4 address", r.WAN)
	case cgnat.Contains(r.WANIPv4):
		return fmt.Sprintf("the WAN address %s is carrier-grade NAT", r.WANIPv4)
	}
	return fmt.Sprintf("the WAN address %s is private: another router is in front", r.WANIPv4)
}

// boolOrder sorts true before false.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}
