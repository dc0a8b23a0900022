package lab_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// TestCGNATHome checks the home without public IPv4 with real traffic:
// carrier NAT for IPv4, routed IPv6 with the ISP's port filter, a phone's
// stateful IPv6 firewall, RFC 2136 updates to bind9 seen through a
// phone's resolver, renumbering, and pebble resolving through bind9.
func TestCGNATHome(t *testing.T) {
	start := time.Now()
	l := lab.New(t)
	lab.PebbleBinary(t) // skip before building anything
	home := l.CGNATHome()
	mobile, phone := home.MobilePhone("p1")
	gw, www, dns := home.GW, home.WWW, home.DNS
	t.Logf("topology up in %v", time.Since(start).Round(time.Millisecond))

	const whoamiPort = 9999
	www.LabtoolServer("whoami", "-listen", fmt.Sprintf(":%d", whoamiPort))
	phone.LabtoolServer("whoami", "-listen", fmt.Sprintf(":%d", whoamiPort))
	// The gateway listens on the relay's port and on every port the ISP
	// filters, over both families (and TCP and UDP).
	gwPorts := append([]int{lab.RelayPort}, lab.ISPBlockedTCP...)
	for _, port := range gwPorts {
		gw.LabtoolServer("whoami", "-listen", fmt.Sprintf(":%d", port))
	}

	// seen returns the address the whoami server at addr saw from's
	// connection come from.
	seen := func(from *lab.Host, proto string, addr netip.AddrPort) (netip.AddrPort, error) {
		out, err := from.Labtool(10*time.Second, "whoami-query", "-addr", addr.String(), "-proto", proto, "-timeout", "1s")
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.ParseAddrPort(strings.TrimSpace(out))
	}
	// mustSee checks that from reaches addr and is seen from want.
	mustSee := func(from *lab.Host, proto string, addr netip.AddrPort, want netip.Addr) {
		t.Helper()
		got, err := seen(from, proto, addr)
		if err != nil {
			t.Errorf("%s cannot reach %s over %s: %v", from.Name, addr, proto, err)
		} else if got.Addr().Unmap() != want {
			t.Errorf("%s → %s over %s: seen from %v, want %v", from.Name, addr, proto, got.Addr(), want)
		}
	}
	// unreachable checks, all at once, that no connection gets through.
	type attempt struct {
		from  *lab.Host
		proto string
		addr  netip.AddrPort
		why   string
	}
	unreachable := func(attempts ...attempt) {
		t.Helper()
		var wg sync.WaitGroup
		for _, a := range attempts {
			wg.Go(func() {
				if got, err := seen(a.from, a.proto, a.addr); err == nil {
					t.Errorf("%s reached %s over %s (seen as %v), but %s", a.from.Name, a.addr, a.proto, got, a.why)
				}
			})
		}
		wg.Wait()
	}
	ap := func(addr string, port int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port))
	}
	ispPublic := netip.MustParseAddr(lab.CGNATISPPublic)
	gw6, phone6 := gw.Addr6(), phone.Addr6()

	// 1. Carrier NAT: the gateway has a shared address, leaves through the
	// ISP's public one, and nobody on the internet can connect in.
	if !netip.MustParsePrefix("100.64.0.0/10").Contains(gw.Addr()) {
		t.Errorf("gateway's WAN IPv4 %v is not a shared (carrier NAT) address", gw.Addr())
	}
	mustSee(gw, "tcp", ap(lab.CGNATWWW4, whoamiPort), ispPublic)
	mustSee(gw, "udp", ap(lab.CGNATWWW4, whoamiPort), ispPublic)
	mustSee(home.ISP.Host, "tcp", netip.AddrPortFrom(gw.Addr(), lab.RelayPort), netip.MustParseAddr("100.64.0.1")) // listener is up
	unreachable(
		attempt{www, "tcp", netip.AddrPortFrom(ispPublic, lab.RelayPort), "the carrier NAT forwards nothing in"},
		attempt{www, "udp", netip.AddrPortFrom(ispPublic, lab.RelayPort), "the carrier NAT forwards nothing in"},
		attempt{www, "tcp", netip.AddrPortFrom(gw.Addr(), lab.RelayPort), "shared addresses are not routed on the internet"},
		attempt{phone, "tcp", netip.AddrPortFrom(ispPublic, lab.RelayPort), "the carrier NAT forwards nothing in"},
	)

	// 2. Over IPv6 the gateway is reachable, untranslated, on the relay's
	// port (TCP and UDP), not on the ports the ISP filters.
	mustSee(phone, "tcp", netip.AddrPortFrom(gw6, lab.RelayPort), phone6)
	mustSee(phone, "udp", netip.AddrPortFrom(gw6, lab.RelayPort), phone6)
	mustSee(www, "tcp", netip.AddrPortFrom(gw6, lab.RelayPort), www.Addr6())
	var filtered []attempt
	for _, port := range lab.ISPBlockedTCP {
		// The listener is up: the ISP's router itself reaches it.
		mustSee(home.ISP.Host, "tcp", netip.AddrPortFrom(gw6, uint16(port)), netip.MustParseAddr("2001:db8:100::1"))
		filtered = append(filtered, attempt{phone, "tcp", netip.AddrPortFrom(gw6, uint16(port)), "the ISP filters that port"})
	}
	unreachable(filtered...)
	mustSee(phone, "udp", netip.AddrPortFrom(gw6, 443), phone6) // only TCP is filtered

	// 3. The phone's network lets replies in, not new connections.
	mustSee(phone, "tcp", ap(lab.CGNATWWW6, whoamiPort), phone6)
	mustSee(phone, "tcp", ap(lab.CGNATWWW4, whoamiPort), netip.MustParseAddr("198.51.100.21"))
	mustSee(mobile.Host, "tcp", netip.AddrPortFrom(phone6, whoamiPort), netip.MustParseAddr("2001:db8:201::1")) // listener is up
	unreachable(
		attempt{www, "tcp", netip.AddrPortFrom(phone6, whoamiPort), "the mobile network's firewall is stateful"},
		attempt{www, "udp", netip.AddrPortFrom(phone6, whoamiPort), "the mobile network's firewall is stateful"},
		attempt{gw, "tcp", netip.AddrPortFrom(phone6, whoamiPort), "the mobile network's firewall is stateful"},
	)

	// 4. RFC 2136: a TSIG-signed update adds the gateway's AAAA, which the
	// phone resolves through its resolv.conf; unsigned updates are refused.
	home6 := dns.Name("home")
	if err := dns.Update(gw, fmt.Sprintf("update add %s 60 AAAA %v", home6, gw6)); err != nil {
		t.Fatalf("signed update from the gateway: %v", err)
	}
	if got, err := phone.Resolve(home6, "AAAA"); err != nil || !slices.Equal(got, []string{gw6.String()}) {
		t.Errorf("phone resolves %s AAAA to %q (%v), want %v", home6, got, err, gw6)
	}
	if got, err := phone.Resolve("home", "AAAA"); err != nil || !slices.Equal(got, []string{gw6.String()}) {
		t.Errorf("phone resolves home (search %s) AAAA to %q (%v), want %v", dns.Zone, got, err, gw6)
	}
	wantLog := fmt.Sprintf("/key %s: updating zone '%s/IN': adding an RR at '%s' AAAA", dns.KeyName, dns.Zone, home6)
	if !strings.Contains(dns.Log(), wantLog) {
		t.Errorf("bind9's log lacks %q", wantLog)
	}
	unsigned := fmt.Sprintf("server %v\nzone %s.\nupdate add evil.%s 60 TXT x\nsend\n", dns.Addrs[len(dns.Addrs)-1].Addr(), dns.Zone, dns.Zone)
	out, err := gw.RunTimeout(20*time.Second, "sh", "-c", `printf '%s' "$1" | nsupdate -t 5`, "sh", unsigned)
	if err == nil || !strings.Contains(out, "REFUSED") {
		t.Errorf("an unsigned update (over IPv6) was not refused: %v\n%s", err, out)
	}
	if got, err := dns.Lookup("evil."+dns.Zone, "TXT"); err != nil || len(got) != 0 {
		t.Errorf("after the unsigned update, evil.%s TXT = %q (%v), want nothing", dns.Zone, got, err)
	}

	// 5. Renumbering: the gateway moves to the ISP's new prefix.
	home.RenumberGW()
	newGW6 := netip.MustParseAddr(lab.CGNATGW6Next)
	if got := gw.Addr6(); got != newGW6 {
		t.Errorf("gw.Addr6() = %v after renumbering, want %v", got, newGW6)
	}
	mustSee(phone, "tcp", netip.AddrPortFrom(newGW6, lab.RelayPort), phone6)
	mustSee(gw, "tcp", ap(lab.CGNATWWW6, whoamiPort), newGW6)
	unreachable(attempt{phone, "tcp", netip.AddrPortFrom(gw6, lab.RelayPort), "the old prefix is gone"})

	// 6. Pebble, resolving through bind9, serves its directory to the
	// gateway (through the carrier NAT).
	ca := home.CA()
	if want := "Using custom DNS resolver for ACME challenges: " + dns.Addrs[0].String(); !strings.Contains(ca.Proc.Log(), want) {
		t.Errorf("pebble's log lacks %q:\n%s", want, ca.Proc.Tail(20))
	}
	ca.Trust(gw)
	if out, err := gw.Labtool(15*time.Second, "http-get", "-timeout=5s", ca.Directory); err != nil || !strings.Contains(out, "newOrder") {
		t.Errorf("gateway fetching %s: %v\n%s", ca.Directory, err, out)
	}
	if got, err := ca.Host.Resolve("ca."+dns.Zone, "A"); err != nil || !slices.Equal(got, []string{lab.CGNATCA4}) {
		t.Errorf("CA host resolves ca.%s to %q (%v), want %s", dns.Zone, got, err, lab.CGNATCA4)
	}
	t.Logf("all checks done in %v", time.Since(start).Round(time.Millisecond))
}
