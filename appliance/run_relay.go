package appliance

import (
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"

	"homenet/control"
	"homenet/ddns/provider"
	"homenet/relay"

	"tailscale.com/tailcfg"
)

// dns01Provider returns p when it can answer DNS-01 challenges for the
// relay's hostname, that is when the hostname lies in the [ddns] zone;
// else nil, and the relay validates by TLS-ALPN-01.
func dns01Provider(cfg Config, p provider.Provider) relay.DNSProvider {
	if p == nil || !inZone(cfg.RelayHostname(), cfg.DDNSZone()) {
		return nil
	}
	return p
}

// followDERPMap gives control the relay's region now and again whenever
// the host's addresses change what clients should dial.
func followDERPMap(srv *control.Server, region *tailcfg.DERPRegion, cfg Config, w *netWatch) {
	var mu sync.Mutex
	var last *tailcfg.DERPMap
	set := func(r Reachability) {
		m := derpMapFor(region.Clone(), cfg, r)
		mu.Lock()
		defer mu.Unlock()
		if last != nil && reflect.DeepEqual(last, m) {
			return
		}
		last = m
		srv.SetDERPMap(m)
		srv.SetLocalDERPMap(localDERPMap(m, cfg.Relay.Listen))
	}
	set(w.Reachability())
	w.setOnChange(set)
}

// derpMapFor is the DERP map with the relay's region. When [ddns] keeps
// the relay's own name, a family the host has no address of is marked
// "none", so clients don't waste dials on a record that is not there.
func derpMapFor(region *tailcfg.DERPRegion, cfg Config, r Reachability) *tailcfg.DERPMap {
	if d := cfg.DDNS; d.Provider != "" && normName(cfg.RelayHostname()) == normName(d.Name) {
		for _, n := range region.Nodes {
			if d.IPv4 && !r.IPv4.IsValid() {
				n.IPv4 = "none"
			}
			if d.IPv6 && !r.IPv6.IsValid() {
				n.IPv6 = "none"
			}
		}
	}
	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{region.RegionID: region}}
}

// localDERPMap is m for the gateway agent in this process: it reaches the
// relay on the address relay.listen binds, not through the public name or
// address, which behind a home router without NAT loopback leads nowhere.
// STUN still goes the public way, through a STUN-only copy of each node:
// its answer is the address phones reach the agent at.
func localDERPMap(m *tailcfg.DERPMap, relayListen string) *tailcfg.DERPMap {
	ip4, ip6 := "127.0.0.1", "none"
	if host, _, err := net.SplitHostPort(relayListen); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			ip4, ip6 = "none", "none"
			if ip.Is4() {
				ip4 = ip.String()
			} else {
				ip6 = ip.String()
			}
		}
	}
	local := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}}
	for id, r := range m.Regions {
		r = r.Clone()
		var nodes []*tailcfg.DERPNode
		for _, n := range r.Nodes {
			relay, stun := *n, *n
			relay.IPv4, relay.IPv6, relay.STUNPort = ip4, ip6, -1
			stun.Name, stun.STUNOnly = n.Name+"-stun", true
			nodes = append(nodes, &relay, &stun)
		}
		r.Nodes = nodes
		local.Regions[id] = r
	}
	return local
}

// ipCertChallengeAddr returns server.listen when the relay should get an
// ACME certificate for its IP address, validated by HTTP-01 on that
// listener: when server.url is https and the relay's hostname a public IP
// address. Else "", and an IP keeps its self-signed certificate, pinned by
// hash (no CA issues certificates for private addresses).
func ipCertChallengeAddr(cfg Config) string {
	u, err := url.Parse(cfg.Server.URL)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	ip, err := netip.ParseAddr(strings.Trim(cfg.RelayHostname(), "[]"))
	if err != nil || addrClass(ip) != addrPublic {
		return ""
	}
	return cfg.Server.Listen
}
