package appliance

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"homenet/ddns/provider"
)

// reachability is Reachability for init: read from the live system, or,
// when the test or image build gave the network, from that.
func (in *initRun) reachability(n NetInfo) Reachability {
	if in.o.Net == nil && in.root == "/" {
		if r, err := DetectReachability(netip.Addr{}); err == nil {
			return r
		}
	}
	var addrs []hostAddr
	for _, a := range n.WANAddrs {
		addrs = append(addrs, hostAddr{Iface: n.LAN.WAN, Up: true, Addr: a.Addr(), PreferredLft: 0xFFFFFFFF})
	}
	for _, a := range n.GlobalIPv6 {
		addrs = append(addrs, hostAddr{Iface: n.LAN.WAN, Up: true, Addr: a, PreferredLft: 0xFFFFFFFF})
	}
	return reachabilityFrom(n.LAN.WAN, addrs, netip.Addr{})
}

// checkDDNS checks the dynamic-DNS options before anything is written:
// the provider and name, and that the credentials file is there, private
// and has the provider's keys.
func (in *initRun) checkDDNS() error {
	d := in.o.DDNS
	if d.Provider == "" {
		if d.Name != "" || d.CredentialsFile != "" || d.Zone != "" {
			return fmt.Errorf("--ddns: name the DNS provider (one of alidns, dnspod, cloudflare, rfc2136) for --ddns-name and --ddns-credentials")
		}
		return nil
	}
	c := Config{DDNS: d}
	c.DDNS.IPv4, c.DDNS.IPv6 = true, true
	if err := c.validateDDNS(); err != nil {
		return err
	}
	if d.CredentialsFile == "" {
		return fmt.Errorf("ddns.credentials_file: init needs --ddns-credentials FILE (KEY=VALUE lines, mode 600) for the service to read")
	}
	if !filepath.IsAbs(d.CredentialsFile) {
		return fmt.Errorf("ddns.credentials_file: %q is not an absolute path", d.CredentialsFile)
	}
	creds, err := provider.LoadCredentials(d.Provider, filepath.Join(in.root, d.CredentialsFile), os.Getenv)
	if err != nil {
		return fmt.Errorf("ddns.credentials_file: %w", err)
	}
	if _, err := provider.New(d.Provider, creds); err != nil {
		return fmt.Errorf("ddns.credentials_file %s: %w", d.CredentialsFile, err)
	}
	return nil
}

// applyDDNS puts the dynamic-DNS options into c: the [ddns] section and,
// unless the URL was given, https://NAME:PORT served by the relay's TLS
// listener on PORT, with the plain control listener on loopback only (the
// in-process gateway agent uses it). It returns why the URL is what it is,
// or "" when it left the URL alone.
func (in *initRun) applyDDNS(c *Config) string {
	o := &in.o
	if o.DDNS.Provider == "" {
		return ""
	}
	ipv4, ipv6 := c.DDNS.IPv4, c.DDNS.IPv6
	if c.DDNS.Provider == "" {
		ipv4, ipv6 = true, true
	}
	c.DDNS = o.DDNS
	c.DDNS.IPv4, c.DDNS.IPv6 = ipv4, ipv6
	c.DDNS.Name = normName(c.DDNS.Name)
	if o.ServerURL != "" {
		return ""
	}
	port := cmp.Or(o.HTTPSPort, DefaultHTTPSPort)
	c.Server.URL = "https://" + net.JoinHostPort(c.DDNS.Name, port)
	c.Relay.Enabled = true
	c.Relay.Listen = ":" + port
	c.Relay.Hostname = ""
	if c.Server.Listen == DefaultConfig().Server.Listen {
		c.Server.Listen = "127.0.0.1:8080"
	}
	return fmt.Sprintf("the dynamic-DNS name on port %s, with a certificate by DNS-01", port)
}

// askDDNS offers dynamic DNS when init may ask, the host is reachable
// over IPv6 only, and neither the flags nor the existing config set it up.
func (in *initRun) askDDNS(existing *Config) error {
	o := &in.o
	if o.Ask == nil || o.DDNS.Provider != "" || o.ServerURL != "" || in.res.Reachability.Case != ReachIPv6Only ||
		(existing != nil && existing.DDNS.Provider != "") {
		return nil
	}
	in.logf("No public IPv4: phones reach this host over IPv6 at a DNS name that homenet keeps current.")
	for {
		ans, err := o.Ask("DNS provider for that name (alidns, dnspod, cloudflare, rfc2136; \"none\" to skip)", "none")
		if err != nil {
			return err
		}
		if ans == "" || ans == "none" {
			return nil
		}
		if !slices.Contains(provider.Names, ans) {
			in.logf("  %q is not one of %s", ans, strings.Join(provider.Names, ", "))
			continue
		}
		o.DDNS.Provider = ans
		break
	}
	questions := []struct {
		q    string
		into *string
		ok   func(string) error
	}{
		{"DNS name, such as home.example.net", &o.DDNS.Name, func(s string) error {
			if !isDNSName(s) {
				return fmt.Errorf("%q is not a DNS name such as home.example.net", s)
			}
			return nil
		}},
		{"Credentials file (KEY=VALUE lines, mode 600; keys in docs/config.md)", &o.DDNS.CredentialsFile, func(s string) error {
			if !filepath.IsAbs(s) {
				return fmt.Errorf("%q is not an absolute path", s)
			}
			_, err := provider.LoadCredentials(o.DDNS.Provider, filepath.Join(in.root, s), os.Getenv)
			return err
		}},
	}
	for _, qa := range questions {
		for {
			ans, err := o.Ask(qa.q, "")
			if err != nil {
				return err
			}
			if err := qa.ok(ans); err != nil {
				in.logf("  %v", err)
				continue
			}
			*qa.into = ans
			break
		}
	}
	return nil
}
