package appliance

import (
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
