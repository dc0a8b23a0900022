package control

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"tailscale.com/tailcfg"
	"tailscale.com/types/dnstype"
)

// DefaultBaseDomain is the domain node names live under when DNS sets
// none. ".internal" is reserved for private use (ICANN, 2024): it is never
// delegated on the internet, so it can't shadow a real name.
const DefaultBaseDomain = "homenet.internal"

// DNS is what clients are told about names.
type DNS struct {
	// MagicDNS turns on the clients' own resolver at 100.100.100.100 for
	// node names under BaseDomain, which also becomes their search
	// domain, so short names work.
	MagicDNS bool
	// BaseDomain is the domain node names live under; "" means
	// DefaultBaseDomain.
	BaseDomain string
	// Nameservers, when set, resolve every other name for clients. When
	// empty, clients keep their own resolvers.
	Nameservers []netip.Addr
	// Routes sends names at or below a domain to its resolvers: split
	// DNS, such as the home LAN's "lan" to the LAN's resolver, reached
	// through the gateway's subnet route.
	Routes map[string][]netip.Addr
}

func (d DNS) baseDomain() string {
	if d.BaseDomain == "" {
		return DefaultBaseDomain
	}
	return strings.TrimSuffix(strings.ToLower(d.BaseDomain), ".")
}

// tailcfg renders d for clients, or nil when there is nothing to say. The
// resolvers we send are used with an exit node too: the user chose them,
// and the LAN's resolver sits behind the gateway, which is the exit node.
func (d DNS) tailcfg() *tailcfg.DNSConfig {
	if !d.MagicDNS && len(d.Nameservers) == 0 && len(d.Routes) == 0 {
		return nil
	}
	c := &tailcfg.DNSConfig{Proxied: d.MagicDNS}
	if d.MagicDNS {
		c.Domains = []string{d.baseDomain()}
	}
	for _, ns := range d.Nameservers {
		c.Resolvers = append(c.Resolvers, &dnstype.Resolver{Addr: ns.String(), UseWithExitNode: true})
	}
	if len(d.Routes) > 0 {
		c.Routes = map[string][]*dnstype.Resolver{}
		for _, dom := range slices.Sorted(maps.Keys(d.Routes)) {
			var rs []*dnstype.Resolver
			for _, ns := range d.Routes[dom] {
				rs = append(rs, &dnstype.Resolver{Addr: ns.String(), UseWithExitNode: true})
			}
			c.Routes[strings.TrimSuffix(dom, ".")] = rs
		}
	}
	return c
}
