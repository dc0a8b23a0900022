package relay

import (
	"fmt"
	"net/netip"
	"strings"

	"tailscale.com/tailcfg"
)

// hostname is Config.Hostname classified: an IP literal, a DNS name, or empty.
type hostname struct {
	ip   netip.Addr // valid when the hostname is an IP literal
	name string     // DNS name; empty for IP literals and an empty hostname
}

// parseHostname classifies h. IPv6 literals may be bracketed.
func parseHostname(h string) (hostname, error) {
	if h == "" {
		return hostname{}, nil
	}
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		if ip.Zone() != "" {
			return hostname{}, fmt.Errorf("relay: hostname %q: IP address with a zone cannot be dialled by clients", h)
		}
		return hostname{ip: ip.Unmap()}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if !strings.Contains(name, ".") || strings.ContainsAny(name, ":/ \t[]") {
		return hostname{}, fmt.Errorf("relay: hostname %q is neither an IP address nor a fully qualified DNS name", h)
	}
	return hostname{name: name}, nil
}

// String returns the hostname as clients dial it.
func (h hostname) String() string {
	if h.ip.IsValid() {
		return h.ip.String()
	}
	return h.name
}

// regionFor builds the one-node "home" region.
func regionFor(h hostname, derpPort, stunPort int, certName string) *tailcfg.DERPRegion {
	node := &tailcfg.DERPNode{
		Name:     nodeName,
		RegionID: RegionID,
		HostName: h.String(),
		CertName: certName,
		DERPPort: derpPort,
		STUNPort: stunPort,
	}
	switch {
	case h.ip.Is4():
		node.IPv4, node.IPv6 = h.ip.String(), "none"
	case h.ip.Is6():
		node.IPv4, node.IPv6 = "none", h.ip.String()
	}
	return &tailcfg.DERPRegion{
		RegionID:   RegionID,
		RegionCode: RegionCode,
		RegionName: RegionName,
		Nodes:      []*tailcfg.DERPNode{node},
	}
}
