package appliance

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"homenet/control"

	"golang.org/x/net/publicsuffix"
)

// validateDNS checks the [dns] section.
func (c *Config) validateDNS() error {
	d := &c.DNS
	base := normName(d.BaseDomain)
	if !isDNSName(base) {
		return fmt.Errorf("dns.base_domain: %q is not a DNS name of two or more labels, such as %q", d.BaseDomain, control.DefaultBaseDomain)
	}
	if ps, icann := publicsuffix.PublicSuffix(base); icann && ps == base {
		return fmt.Errorf("dns.base_domain: %q is a public suffix: every name under it would shadow a real one on the internet; use one under .internal, such as %q", d.BaseDomain, control.DefaultBaseDomain)
	}
	for _, n := range c.ownNames() {
		if inZone(n.name, base) {
			return fmt.Errorf("dns.base_domain: %q contains %s %q: phones would look it up through MagicDNS and lose the server; pick another, such as %q", d.BaseDomain, n.key, n.name, control.DefaultBaseDomain)
		}
	}
	for _, s := range d.Nameservers {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("dns.nameservers: %q is not an IP address such as 1.1.1.1", s)
		}
	}
	for _, dom := range d.LANDomains {
		if !isDomain(dom) {
			return fmt.Errorf("dns.lan_domains: %q is not a domain such as \"lan\"", dom)
		}
		if inZone(dom, base) || inZone(base, dom) {
			return fmt.Errorf("dns.lan_domains: %q overlaps dns.base_domain %q", dom, d.BaseDomain)
		}
	}
	if s := d.LANResolver; s != "" {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("dns.lan_resolver: %q is not an IP address such as 192.168.1.1", s)
		}
	}
	return nil
}

// ownName is a DNS name this host is reached at, and the key that sets it.
type ownName struct{ key, name string }

// ownNames are the names phones must resolve on the internet, not through
// MagicDNS: the server URL's, the relay's and the dynamic DNS name.
func (c *Config) ownNames() []ownName {
	var out []ownName
	add := func(key, name string) {
		name = normName(strings.Trim(name, "[]"))
		if _, err := netip.ParseAddr(name); name != "" && err != nil {
			out = append(out, ownName{key, name})
		}
	}
	for _, u := range []struct{ key, url string }{{"server.url", c.Server.URL}, {"gateway.control_url", c.Gateway.ControlURL}} {
		if p, err := url.Parse(u.url); err == nil {
			add(u.key, p.Hostname())
		}
	}
	add("relay.hostname", c.Relay.Hostname)
	add("ddns.name", c.DDNS.Name)
	return out
}

// isDomain reports whether s is a DNS domain of one or more labels.
func isDomain(s string) bool {
	s = normName(s)
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// clientDNS is what control tells clients about names: MagicDNS and the
// nameservers from [dns], and split DNS for the home LAN's domains to its
// resolver, forward and reverse, as configured or detected (lanDNS).
func (c *Config) clientDNS(lan LAN, lanDNS LANDNS) (control.DNS, error) {
	d := control.DNS{MagicDNS: c.DNS.MagicDNS, BaseDomain: normName(c.DNS.BaseDomain)}
	for _, s := range c.DNS.Nameservers {
		d.Nameservers = append(d.Nameservers, netip.MustParseAddr(s))
	}
	if !lanDNS.Resolver.IsValid() || len(lanDNS.Domains) == 0 {
		return d, nil
	}
	d.Routes = map[string][]netip.Addr{}
	resolver := []netip.Addr{lanDNS.Resolver}
	for _, dom := range lanDNS.Domains {
		d.Routes[normName(dom)] = resolver
	}
	var errs []error
	for _, p := range lan.Routes {
		zones, err := ReverseZones(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, z := range zones {
			d.Routes[z] = resolver
		}
	}
	return d, errors.Join(errs...)
}

// lanDNS is the home LAN's resolver and domains: dns.lan_resolver and
// dns.lan_domains where set, detected on this host where not. A resolver
// outside the gateway's routes is dropped: phones could not reach it.
func (c *Config) lanDNS(lan LAN) LANDNS {
	var d LANDNS
	if len(c.DNS.LANDomains) == 0 || c.DNS.LANResolver == "" {
		addrs, _ := LANAddrs(lan.Routes)
		d = DetectLANDNS(lan.Routes, addrs, normName(c.DNS.BaseDomain))
	}
	var from []string
	if len(c.DNS.LANDomains) > 0 {
		d.Domains = nil
		for _, dom := range c.DNS.LANDomains {
			d.Domains = append(d.Domains, normName(dom))
		}
		from = append(from, "domains from dns.lan_domains")
	}
	if c.DNS.LANResolver != "" {
		d.Resolver = netip.MustParseAddr(c.DNS.LANResolver)
		from = append(from, "resolver from dns.lan_resolver")
	}
	switch {
	case d.Resolver.IsValid() && !inRoutes(d.Resolver, lan.Routes):
		d.Why = fmt.Sprintf("no split DNS: the resolver %v is outside the gateway's routes %v, so phones could not reach it", d.Resolver, lan.Routes)
		d.Resolver = netip.Addr{}
	case len(from) == 2:
		d.Why = fmt.Sprintf("split DNS for %s via %v: %s", strings.Join(d.Domains, ", "), d.Resolver, strings.Join(from, ", "))
	case len(from) == 1 && d.Resolver.IsValid() && len(d.Domains) > 0:
		d.Why = fmt.Sprintf("split DNS for %s via %v: %s, the rest detected (%s)", strings.Join(d.Domains, ", "), d.Resolver, from[0], d.Why)
	case len(from) == 1 && len(c.DNS.LANDomains) > 0:
		d.Why = fmt.Sprintf("no split DNS: %s, but no resolver detected; set dns.lan_resolver (%s)", from[0], d.Why)
	case len(from) == 1:
		d.Why = fmt.Sprintf("no split DNS: %s, but no domain detected; set dns.lan_domains (%s)", from[0], d.Why)
	}
	return d
}

func inRoutes(ip netip.Addr, routes []netip.Prefix) bool {
	for _, p := range routes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
