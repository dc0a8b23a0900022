package control

import (
	"errors"
	"fmt"
	"net/netip"

	"tailscale.com/net/tsaddr"
)

// ula6 is the /96 inside Tailscale's fd7a:115c:a1e0::/48 under which every
// node's IPv6 address embeds its IPv4 address. For CGNAT addresses this is
// exactly tsaddr.Tailscale4To6; unlike that function it also gives a valid
// address for prefixes outside 100.64.0.0/10, which clients need: a node
// without a valid address in the ULA range fails to configure its tunnel.
var ula6 = netip.MustParsePrefix("fd7a:115c:a1e0:ab12:4843:cd96::/96")

// Prefix6 is the IPv6 prefix all node addresses come from.
var Prefix6 = tsaddr.TailscaleULARange()

// v6For returns the IPv6 address paired with the IPv4 address a.
func v6For(a netip.Addr) netip.Addr {
	b := ula6.Addr().As16()
	v4 := a.As4()
	copy(b[12:], v4[:])
	return netip.AddrFrom16(b)
}

// reserved4 are addresses clients treat specially; never hand them out.
var reserved4 = []netip.Prefix{
	tsaddr.ChromeOSVMRange(),
	netip.PrefixFrom(tsaddr.TailscaleServiceIP(), 32),
	netip.MustParsePrefix("100.100.100.0/24"),
}

// nextFreeIPv4 returns the lowest usable address in p that used does not
// contain, skipping the network and broadcast addresses.
func nextFreeIPv4(p netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	if !p.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("prefix %v is not IPv4", p)
	}
	last := lastAddr(p)
	for a := p.Masked().Addr().Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if used[a] || isReserved(a) {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, errors.New("tailnet prefix " + p.String() + " is full")
}

func isReserved(a netip.Addr) bool {
	for _, r := range reserved4 {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
