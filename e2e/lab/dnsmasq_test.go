package lab_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"homenet/e2e/lab"
)

// TestDnsmasq: the home router's dnsmasq answers its host records on the
// LAN address and on loopback, answers NXDOMAIN for other names in its
// domain without asking upstream, forwards the rest, and logs where each
// query came from; the router resolves through its own resolv.conf as on
// OpenWrt, and no other host sees that resolv.conf.
func TestDnsmasq(t *testing.T) {
	l := lab.New(t)
	inet := l.Internet()
	up := l.Host("up", inet.Link("198.51.100.53/24"))
	up.Resolver("198.51.100.54", "www.hn.test=198.51.100.80")
	gw := l.Host("gw", inet.Link("198.51.100.1/24"))
	lanHost := l.Host("lan1", gw.Bridge("lan0", "192.168.1.1/24").Link("192.168.1.10/24"))
	d := l.Dnsmasq(gw, lab.DnsmasqOpts{
		Listen:   []string{"192.168.1.1", "127.0.0.1"},
		Domain:   "lan",
		Records:  []string{"nas.lan=192.168.1.10"},
		Upstream: []string{"198.51.100.54"},
	})
	gw.WriteResolvConf([]string{"127.0.0.1"}, "lan")
	lanHost.WriteResolvConf([]string{"192.168.1.1"}, "lan")

	lan := netip.MustParseAddr("192.168.1.1")
	if got, err := d.Lookup(lanHost, lan, "www.hn.test"); err != nil || !slices.Equal(got, []string{"198.51.100.80"}) {
		t.Errorf("www.hn.test through dnsmasq = %v (%v), want 198.51.100.80 from upstream", got, err)
	}
	if _, err := d.Lookup(lanHost, lan, "nosuch.lan"); err == nil || !strings.Contains(err.Error(), "NameError") {
		t.Errorf("nosuch.lan: %v, want NXDOMAIN", err)
	}
	if strings.Contains(d.Log(), "forwarded nosuch.lan") {
		t.Errorf("dnsmasq asked upstream for nosuch.lan, a name in its own domain:\n%s", d.Log())
	}
	for _, h := range []*lab.Host{gw, lanHost} {
		// "nas" through the search domain, as programs resolve it.
		if out, err := h.Run("getent", "hosts", "nas"); err != nil || !strings.HasPrefix(out, "192.168.1.10 ") {
			t.Errorf("getent hosts nas on %s: %v\n%s", h.Name, err, out)
		}
	}
	if from := d.QueriedFrom("nas.lan"); !slices.Contains(from, netip.MustParseAddr("192.168.1.10")) || !slices.Contains(from, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("dnsmasq logged queries for nas.lan from %v, want 192.168.1.10 and 127.0.0.1 among them\n%s", from, d.Log())
	}
	if rc := gw.ResolvConf(); rc != "nameserver 127.0.0.1\nsearch lan\n" {
		t.Errorf("gw's resolv.conf = %q", rc)
	}
	if rc := up.ResolvConf(); strings.Contains(rc, "search lan") {
		t.Errorf("another host's resolv.conf shows gw's: %q", rc)
	}
}
