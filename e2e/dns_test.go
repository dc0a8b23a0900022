package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
	"homenet/firewall"
)

// The DNS scenarios' network (issue 12): the gateway lab of
// gateway_lab_test.go with DNS servers on both sides.
//
//	WAN 198.51.100.0/24 ─┬─ gw .1   homenet serve, gateway and exit node; resolv.conf: see below
//	                     │   └─ lan0 192.168.1.1/24  dnsmasq on 192.168.1.1 and 127.0.0.1:53,
//	                     │       │                   "lan": nas.lan → 192.168.1.10; the rest → dns
//	                     │       └─ lanhost 192.168.1.10  HTTP :80
//	                     ├─ isp .254 ── 203.0.113.0/24 ─┬─ www .200  whoami :9999
//	                     │                              └─ dns .53   bind9 for hn.test (www.hn.test)
//	                     ├─ nat1 .11 ── p1 10.1.0.2  resolv.conf: dns, search hn.test
//	                     └─ nat2 .12 ── p2 10.2.0.2  the same
//
// "detected": the gateway's resolv.conf is OpenWrt's (nameserver
// 127.0.0.1, search lan), and homenet finds the LAN domain and resolver
// itself. "configured": its resolv.conf names only the internet's DNS, and
// [dns] lan_domains and lan_resolver say what it cannot find.
type dnsNet struct {
	*gwNet // phone is p1
	p2     *lab.Phone
	bind   *lab.BIND    // the internet's DNS
	lanDNS *lab.Dnsmasq // the home LAN's DNS, on the gateway
}

const (
	dnsServerIP  = "203.0.113.53"
	dnsZone      = "hn.test"
	dnsWWW       = "www." + dnsZone // a name on the internet
	dnsNAS       = "nas.lan"        // a name on the home LAN
	dnsGatewayIP = "192.168.1.1"    // the gateway's LAN address
	// dnsTimeout bounds how long a phone takes to apply DNS settings it
	// got (tailscaled rewrites its resolv.conf).
	dnsTimeout = 20 * time.Second
	// renameTimeout bounds how long a rename takes to reach other phones'
	// MagicDNS.
	renameTimeout = 5 * time.Second
)

// TestMagicDNS (issue 12): a phone on the road resolves the other phone by
// its short and its full MagicDNS name and pings it by name; it resolves
// a home LAN name (nas.lan, from the router's dnsmasq) through the
// gateway's subnet route and fetches a page by that name, while a phone
// with --accept-dns=false does not resolve it; internet names keep
// resolving after joining, with and without the exit node; Taildrop
// carries a file between the phones but never offers the gateway; a rename
// reaches the other phone's MagicDNS within 5 s. The LAN domain and
// resolver are either detected on the gateway or set in [dns]. The
// machine's own /etc/resolv.conf is never touched.
func TestMagicDNS(t *testing.T) {
	t.Parallel()
	hostResolvConfUntouched(t)
	t.Run("detected", func(t *testing.T) {
		t.Parallel()
		testMagicDNSDetected(t)
	})
	t.Run("configured", func(t *testing.T) {
		t.Parallel()
		testMagicDNSConfigured(t)
	})
}

// hostResolvConfUntouched checks, once everything t started is gone, that
// the machine's /etc/resolv.conf is byte for byte what it was.
func hostResolvConfUntouched(t *testing.T) {
	t.Helper()
	const path = "/etc/resolv.conf"
	read := func() string {
		data, err := os.ReadFile(path)
		link, _ := os.Readlink(path)
		return fmt.Sprintf("link %q, err %v, content:\n%s", link, err, data)
	}
	before := read()
	t.Cleanup(func() {
		if after := read(); after != before {
			t.Errorf("the machine's %s changed:\nbefore: %s\nafter: %s", path, before, after)
		}
	})
}

func testMagicDNSDetected(t *testing.T) {
	n := newDNSNet(t, true, "")
	n.gw.WriteResolvConf([]string{"127.0.0.1"}, "lan") // as on OpenWrt
	n.checkLANDNS(t)
	n.start(t)
	p1, p2 := n.phone, n.p2

	// Before joining: internet names resolve, home LAN names do not.
	n.checkResolves(t, p1, "before tailscale up", dnsWWW, netip.MustParseAddr(gwWWWIP))
	if ip, err := getentHosts(p1.Host, dnsNAS); err == nil {
		t.Fatalf("%s resolves %s to %v before joining; the scenario proves nothing", p1.Name, dnsNAS, ip)
	}

	// p2 joins with the LAN route but without DNS settings.
	key, err := n.hn.CreateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Up(n.hn.URL, key, "--accept-routes", "--accept-dns=false"); err != nil {
		t.Fatalf("tailscale up --accept-dns=false on %s: %v", p2.Name, err)
	}
	p2IPs := tailnetIPs(t, p2)

	// p1 joins.
	upStart := time.Now()
	_, exitArg := n.join(t)
	if err := p1.WaitPeers(joinTimeout, p2); err != nil {
		t.Fatal(err)
	}
	upDone := time.Since(upStart)

	// 1. MagicDNS.
	if _, ok := n.eventually(t, dnsTimeout, p1.Name+" resolving p2 by its short name", func() error {
		return resolvesTo(p1.Host, "p2", p2IPs)
	}); ok {
		t.Logf("%s: tailscale up (returned after %v) → resolves p2 by its short name: %v", p1.Name, upDone.Round(time.Millisecond), time.Since(upStart).Round(time.Millisecond))
	}
	n.eventually(t, 5*time.Second, p1.Name+" resolving p2.homenet.internal", func() error {
		return resolvesTo(p1.Host, "p2.homenet.internal", p2IPs)
	})
	// (100.100.100.100 answers for peers' names even without MagicDNS
	// settings; this checks the name under the base domain.)
	n.eventually(t, 5*time.Second, "tailscale dns query p2.homenet.internal on "+p1.Name, func() error {
		out, err := p1.CLI(15*time.Second, "dns", "query", "p2.homenet.internal")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "RCodeSuccess") || !strings.Contains(out, p2IPs[0].String()) {
			return fmt.Errorf("no answer %v from 100.100.100.100:\n%s", p2IPs[0], out)
		}
		return nil
	})
	n.eventually(t, 5*time.Second, p1.Name+" pinging p2 by name", func() error {
		out, err := p1.RunTimeout(10*time.Second, "ping", "-c1", "-W2", "p2")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})

	// 2. The home LAN's names, through the gateway.
	n.checkNAS(t, p1, upStart)
	lab.WaitFor(t, pathTimeout, p2.Name+" fetching the LAN host's page by address", func() error {
		_, err := lanPage(p2, 3*time.Second)
		return err
	})
	if ip, err := getentHosts(p2.Host, dnsNAS); err == nil {
		t.Errorf("%s, with --accept-dns=false, resolves %s to %v; want no answer: only the tailnet's DNS settings know the home LAN", p2.Name, dnsNAS, ip)
	} else {
		t.Logf("%s, with --accept-dns=false, reaches the LAN host by address but does not resolve %s: %v", p2.Name, dnsNAS, err)
	}
	if rc := p2.ResolvConf(); strings.Contains(rc, "100.100.100.100") {
		t.Errorf("%s, with --accept-dns=false, has 100.100.100.100 in its resolv.conf:\n%s", p2.Name, rc)
	}

	// 3. Internet names, after joining and through the exit node.
	n.checkResolves(t, p1, "after tailscale up", dnsWWW, netip.MustParseAddr(gwWWWIP))
	n.viaExitNode(t, exitArg, func() {
		n.checkResolves(t, p1, "through the exit node", dnsNAS, netip.MustParseAddr(gwLANHostIP))
		n.checkResolves(t, p1, "through the exit node", "p2", p2IPs...)
	})
	n.checkResolves(t, p1, "after leaving the exit node", dnsWWW, netip.MustParseAddr(gwWWWIP))

	// 4. Taildrop.
	n.checkTaildrop(t)

	// 5. A rename reaches MagicDNS.
	node, err := n.hn.Node("p2")
	if err != nil {
		t.Fatal(err)
	}
	const newName = "phone2"
	if out, err := n.hn.CLI("nodes", "rename", fmt.Sprint(int64(node.ID)), newName); err != nil {
		t.Fatalf("homenet nodes rename %d %s: %v\n%s", node.ID, newName, err, out)
	}
	renamed := time.Now()
	if _, ok := n.eventually(t, renameTimeout, p1.Name+" resolving p2's new name "+newName, func() error {
		return resolvesTo(p1.Host, newName, p2IPs)
	}); ok {
		t.Logf("homenet nodes rename → %s resolves %s: %v", p1.Name, newName, time.Since(renamed).Round(time.Millisecond))
	}
	n.eventually(t, renameTimeout, p1.Name+" no longer resolving p2's old name", func() error {
		if ip, err := getentHosts(p1.Host, "p2.homenet.internal"); err == nil {
			return fmt.Errorf("p2.homenet.internal still resolves to %v", ip)
		}
		return nil
	})
}

func testMagicDNSConfigured(t *testing.T) {
	const baseDomain = "home.internal"
	n := newDNSNet(t, false, fmt.Sprintf("[dns]\nbase_domain = %q\nlan_domains = [\"lan\"]\nlan_resolver = %q\nnameservers = [%q]\n", baseDomain, dnsGatewayIP, dnsServerIP))
	// Nothing to detect: no search domain, no resolver on the LAN.
	n.gw.WriteResolvConf([]string{dnsServerIP})
	n.checkLANDNS(t)
	n.start(t)
	p1 := n.phone

	upStart := time.Now()
	_, exitArg := n.join(t)

	// MagicDNS under base_domain: the gateway by its full name.
	st, err := p1.Status()
	if err != nil {
		t.Fatal(err)
	}
	gwPeer := gatewayPeer(st)
	if gwPeer == nil {
		t.Fatalf("%s sees no gateway peer", p1.Name)
	}
	if !strings.HasSuffix(st.Self.DNSName, "."+baseDomain+".") || !strings.HasSuffix(gwPeer.DNSName, "."+baseDomain+".") {
		t.Errorf("MagicDNS names %q (self) and %q (gateway), want them under base_domain %s", st.Self.DNSName, gwPeer.DNSName, baseDomain)
	}
	gwName := strings.TrimSuffix(gwPeer.DNSName, ".")
	n.eventually(t, dnsTimeout, p1.Name+" resolving the gateway's MagicDNS name "+gwName, func() error {
		return resolvesTo(p1.Host, gwName, gwPeer.TailscaleIPs)
	})

	n.checkNAS(t, p1, upStart)
	n.checkResolves(t, p1, "after tailscale up", dnsWWW, netip.MustParseAddr(gwWWWIP))
	// dns.nameservers: the phone's resolver for everything else, also
	// through the exit node below.
	if out, err := p1.CLI(15*time.Second, "dns", "query", dnsWWW); err != nil || !strings.Contains(out, gwWWWIP) || !strings.Contains(out, dnsServerIP) {
		t.Errorf("tailscale dns query %s on %s: want %s, forwarded to dns.nameservers %s: %v\n%s", dnsWWW, p1.Name, gwWWWIP, dnsServerIP, err, out)
	}
	// Here, unlike with OpenWrt's resolv.conf, the exit node's own
	// resolver (which answers p1's other queries) does not know nas.lan:
	// only the split-DNS route marked UseWithExitNode does.
	n.viaExitNode(t, exitArg, func() {
		n.checkResolves(t, p1, "through the exit node", dnsNAS, netip.MustParseAddr(gwLANHostIP))
	})

	// A LAN resolver that stops answering takes only the LAN's names.
	if err := n.lanDNS.Proc.Stop(); err != nil {
		t.Logf("stopping dnsmasq: %v", err)
	}
	if ip, err := getentHosts(p1.Host, dnsNAS); err == nil {
		t.Errorf("%s resolves %s to %v with the LAN resolver stopped", p1.Name, dnsNAS, ip)
	}
	n.checkResolves(t, p1, "with the LAN resolver stopped", dnsWWW, netip.MustParseAddr(gwWWWIP))

	// Without the tailnet's DNS settings the LAN name is gone, while the
	// LAN itself is still there.
	if out, err := p1.CLI(30*time.Second, "set", "--accept-dns=false"); err != nil {
		t.Fatalf("tailscale set --accept-dns=false: %v\n%s", err, out)
	}
	n.eventually(t, dnsTimeout, p1.Name+" with --accept-dns=false no longer resolving "+dnsNAS, func() error {
		if ip, err := getentHosts(p1.Host, dnsNAS); err == nil {
			return fmt.Errorf("%s still resolves to %v", dnsNAS, ip)
		}
		return nil
	})
	if _, err := lanPage(p1, 5*time.Second); err != nil {
		t.Errorf("%s with --accept-dns=false: the LAN host's page by address: %v", p1.Name, err)
	}
	n.checkResolves(t, p1, "with --accept-dns=false", dnsWWW, netip.MustParseAddr(gwWWWIP))
}

// newDNSNet builds the network in the picture; homenet is configured with
// extra (TOML) but not started. With twoPhones, p2 is there too.
func newDNSNet(t *testing.T, twoPhones bool, extra string) *dnsNet {
	t.Helper()
	lab.BINDBinaries(t) // skip before building anything
	lab.DnsmasqBinary(t)
	l := lab.New(t)
	inet := l.Internet()
	isp := l.Host("isp", inet.Link(publicWAN+".254/24"))
	isp.EnableForwarding()
	public := isp.Bridge("pub0", "203.0.113.1/24")
	www := l.Host("www", public.Link(gwWWWIP+"/24"))
	www.LabtoolServer("whoami", "-listen", fmt.Sprintf(":%d", gwWhoamiPort))
	bind := l.BIND(l.Host("dns", public.Link(dnsServerIP+"/24")), dnsZone, "www\tIN A "+gwWWWIP)

	gw := l.Host("gw", inet.Link(publicWAN+".1/24").Via(publicWAN+".254"))
	lanHost := l.Host("lanhost", gw.Bridge("lan0", dnsGatewayIP+"/24").Link(gwLANHostIP+"/24").Via(""))
	startLANWeb(t, lanHost)
	lanDNS := l.Dnsmasq(gw, lab.DnsmasqOpts{
		Listen:   []string{dnsGatewayIP, "127.0.0.1"},
		Domain:   "lan",
		Records:  []string{dnsNAS + "=" + gwLANHostIP},
		Upstream: []string{dnsServerIP},
	})

	hn := l.NewHomenet(gw, lab.HomenetConfig{Extra: "[gateway]\nenabled = true\nexit_node = true\n\n" + extra})
	n := &dnsNet{
		gwNet:  &gwNet{lab: l, opts: gwOpts{WAN: publicWAN}, gw: gw, lanHost: lanHost, inet: www, hn: hn},
		bind:   bind,
		lanDNS: lanDNS,
	}
	n.fwKind, _ = firewall.Detect()
	n.baseFirewall(t)

	names := []string{"p1"}
	if twoPhones {
		names = append(names, "p2")
	}
	var phones []*lab.Phone
	for i, name := range names {
		nat := l.NATRouter(fmt.Sprintf("nat%d", i+1), inet.Link(fmt.Sprintf("%s.%d/24", publicWAN, 11+i)).Via(publicWAN+".254"),
			fmt.Sprintf("10.%d.0.1/24", i+1), lab.NATOpts{})
		h := l.Host(name, nat.LAN.Link(fmt.Sprintf("10.%d.0.2/24", i+1)))
		bind.UseAsResolver(h) // the mobile network's resolver
		phones = append(phones, l.Phone(h))
	}
	n.phone = phones[0]
	if twoPhones {
		n.p2 = phones[1]
	}
	l.OnFailure(func() {
		n.dumpGateway(t)
		t.Logf("---- [gw] /etc/resolv.conf ----\n%s", gw.ResolvConf())
		for _, p := range phones {
			t.Logf("%s", dnsDiag(p))
		}
	})
	return n
}

// checkLANDNS checks the home LAN's dnsmasq before homenet runs: the LAN
// host and the gateway itself (through its resolv.conf) resolve nas.lan,
// and it forwards internet names.
func (n *dnsNet) checkLANDNS(t *testing.T) {
	t.Helper()
	gwAddr := netip.MustParseAddr(dnsGatewayIP)
	if got, err := n.lanDNS.Lookup(n.lanHost, gwAddr, dnsNAS); err != nil || !slices.Equal(got, []string{gwLANHostIP}) {
		t.Fatalf("the LAN host asking dnsmasq at %v: %s = %v (%v), want %s", gwAddr, dnsNAS, got, err, gwLANHostIP)
	}
	if got, err := n.lanDNS.Lookup(n.lanHost, gwAddr, dnsWWW); err != nil || !slices.Equal(got, []string{gwWWWIP}) {
		t.Fatalf("the LAN host asking dnsmasq at %v: %s = %v (%v), want %s (forwarded to %s)", gwAddr, dnsWWW, got, err, gwWWWIP, dnsServerIP)
	}
	if _, err := n.lanDNS.Lookup(n.lanHost, gwAddr, "nosuch.lan"); err == nil || !strings.Contains(err.Error(), "NameError") {
		t.Fatalf("the LAN host asking dnsmasq at %v for nosuch.lan: %v; want NXDOMAIN (RCodeNameError), answered locally", gwAddr, err)
	}
	if strings.Contains(n.gw.ResolvConf(), "nameserver 127.0.0.1") {
		if err := resolvesTo(n.gw, dnsNAS, []netip.Addr{netip.MustParseAddr(gwLANHostIP)}); err != nil {
			t.Fatalf("the gateway, through its resolv.conf: %v", err)
		}
	}
	if err := resolvesTo(n.gw, dnsWWW, []netip.Addr{netip.MustParseAddr(gwWWWIP)}); err != nil {
		t.Fatalf("the gateway, through its resolv.conf: %v", err)
	}
}

// checkNAS checks that p, joined with --accept-routes at upStart,
// resolves nas.lan, also through 100.100.100.100, with a query that
// reaches the gateway's dnsmasq from p's tailnet address (through the
// subnet route), and fetches the LAN host's page by that name.
func (n *dnsNet) checkNAS(t *testing.T, p *lab.Phone, upStart time.Time) {
	t.Helper()
	nas := netip.MustParseAddr(gwLANHostIP)
	if _, ok := n.eventually(t, dnsTimeout, p.Name+" resolving "+dnsNAS, func() error {
		return resolvesTo(p.Host, dnsNAS, []netip.Addr{nas})
	}); ok {
		t.Logf("%s: tailscale up → resolves %s: %v", p.Name, dnsNAS, time.Since(upStart).Round(time.Millisecond))
	}
	if out, err := p.CLI(15*time.Second, "dns", "query", dnsNAS); err != nil || !strings.Contains(out, gwLANHostIP) || !dnsLANResolverRe.MatchString(out) {
		t.Errorf("tailscale dns query %s on %s: want %s, forwarded to %s: %v\n%s", dnsNAS, p.Name, gwLANHostIP, dnsGatewayIP, err, out)
	}
	pIP := ip4(t, p)
	if from := n.lanDNS.QueriedFrom(dnsNAS); !slices.Contains(from, pIP) {
		t.Errorf("dnsmasq logged queries for %s from %v, none from %s's tailnet address %v: no query came through the subnet route", dnsNAS, from, p.Name, pIP)
	}
	// Reverse lookups of the LAN go the same way (dnsmasq's host record
	// answers the PTR query too).
	n.eventually(t, dnsTimeout, p.Name+" resolving "+gwLANHostIP+" back to "+dnsNAS, func() error {
		out, err := p.RunTimeout(10*time.Second, "getent", "hosts", gwLANHostIP)
		if err == nil && !strings.Contains(out, dnsNAS) {
			err = fmt.Errorf("getent hosts %s = %q, want %s", gwLANHostIP, strings.TrimSpace(out), dnsNAS)
		}
		return err
	})
	url := fmt.Sprintf("http://%s:%d/", dnsNAS, gwHTTPPort)
	n.eventually(t, 10*time.Second, p.Name+" fetching "+url, func() error {
		out, err := p.Labtool(10*time.Second, "http-get", "-timeout=5s", url)
		if err == nil && !strings.Contains(out, "hello from the LAN host") {
			err = fmt.Errorf("unexpected page:\n%s", out)
		}
		return err
	})
}

// checkResolves checks that p resolves name, with the system's resolver,
// to one of want within a few seconds, and logs how long it took.
func (n *dnsNet) checkResolves(t *testing.T, p *lab.Phone, when, name string, want ...netip.Addr) {
	t.Helper()
	if took, ok := n.eventually(t, 10*time.Second, fmt.Sprintf("%s resolving %s %s", p.Name, name, when), func() error {
		return resolvesTo(p.Host, name, want)
	}); ok && took > time.Second {
		t.Logf("%s resolves %s %s after %v", p.Name, name, when, took.Round(time.Millisecond))
	}
}

// viaExitNode makes the gateway p1's exit node, checks that the internet
// sees the gateway's WAN address and that internet names resolve, runs
// more checks, and leaves the exit node.
func (n *dnsNet) viaExitNode(t *testing.T, exitArg string, checks func()) {
	t.Helper()
	p := n.phone
	if out, err := p.CLI(30*time.Second, "set", "--exit-node="+exitArg); err != nil {
		t.Fatalf("tailscale set --exit-node=%s: %v\n%s", exitArg, err, out)
	}
	start := time.Now()
	lab.WaitFor(t, pathTimeout, "the internet host to see the gateway's WAN address", func() error {
		src, err := n.whoami(3 * time.Second)
		if err == nil && src != n.wanIP(1) {
			err = fmt.Errorf("internet host saw %v, want the gateway's WAN %v", src, n.wanIP(1))
		}
		return err
	})
	if _, ok := n.eventually(t, dnsTimeout, p.Name+" resolving "+dnsWWW+" through the exit node", func() error {
		return resolvesTo(p.Host, dnsWWW, []netip.Addr{netip.MustParseAddr(gwWWWIP)})
	}); ok {
		t.Logf("%s: exit node set → resolves %s: %v", p.Name, dnsWWW, time.Since(start).Round(time.Millisecond))
	}
	checks()
	if out, err := p.CLI(30*time.Second, "set", "--exit-node="); err != nil {
		t.Fatalf("tailscale set --exit-node=: %v\n%s", err, out)
	}
}

// checkTaildrop sends a 1 MiB file from p1 to p2 with `tailscale file cp`
// and checks what `tailscale file get` gives p2; then that p1 is not
// offered the gateway as a target.
func (n *dnsNet) checkTaildrop(t *testing.T) {
	t.Helper()
	p1, p2 := n.phone, n.p2
	data := make([]byte, 1<<20)
	rand.Read(data)
	src := filepath.Join(p1.Dir, "taildrop.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	targets, err := p1.CLI(15*time.Second, "file", "cp", "--targets")
	t.Logf("tailscale file cp --targets on %s: %v\n%s", p1.Name, err, targets)
	start := time.Now()
	if out, err := p1.CLI(60*time.Second, "file", "cp", src, "p2:"); err != nil {
		t.Errorf("tailscale file cp %s p2: on %s: %v\n%s", src, p1.Name, err, out)
		return // the gateway check below would pass for the wrong reason
	}
	inbox := filepath.Join(p2.Dir, "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := p2.CLI(30*time.Second, "file", "get", "--wait", inbox); err != nil {
		t.Errorf("tailscale file get --wait %s on %s: %v\n%s", inbox, p2.Name, err, out)
		return
	}
	got, err := os.ReadFile(filepath.Join(inbox, "taildrop.bin"))
	if err != nil {
		entries, _ := os.ReadDir(inbox)
		t.Errorf("Taildrop: %v (the inbox holds %v)", err, entries)
		return
	}
	if sha256.Sum256(got) != sha256.Sum256(data) || !bytes.Equal(got, data) {
		t.Errorf("Taildrop: %s got %d bytes with sha256 %x; sent %d bytes with sha256 %x", p2.Name, len(got), sha256.Sum256(got), len(data), sha256.Sum256(data))
	} else {
		t.Logf("Taildrop %s → %s: 1 MiB, sha256 %x, in %v", p1.Name, p2.Name, sha256.Sum256(data), time.Since(start).Round(time.Millisecond))
	}

	// The gateway, a tagged node, is no target.
	st, err := p1.Status()
	if err != nil {
		t.Fatal(err)
	}
	gw := gatewayPeer(st)
	if gw == nil {
		t.Fatalf("%s sees no gateway peer", p1.Name)
	}
	gwName, _, _ := strings.Cut(gw.DNSName, ".")
	for _, line := range strings.Split(targets, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[1] == gwName || slices.ContainsFunc(gw.TailscaleIPs, func(ip netip.Addr) bool { return ip.String() == f[0] })) {
			t.Errorf("tailscale file cp --targets on %s lists the gateway: %q", p1.Name, line)
		}
	}
	if !strings.Contains(targets, "\tp2") {
		t.Errorf("tailscale file cp --targets on %s does not list p2 (though the file went through):\n%s", p1.Name, targets)
	}
	if out, err := p1.CLI(30*time.Second, "file", "cp", src, gwName+":"); err == nil {
		t.Errorf("tailscale file cp %s %s: succeeded; the gateway must not take files\n%s", src, gwName+":", out)
	} else {
		t.Logf("tailscale file cp to the gateway fails, as it must: %v", err)
	}
}

// eventually is lab.Poll that, on timeout, reports an error with p1's
// resolv.conf and lets the test go on (at the end, the lab's failure hooks
// show what tailscaled says about DNS, and the dnsmasq and bind9 logs). It
// returns how long cond took to hold and whether it did.
func (n *dnsNet) eventually(t *testing.T, timeout time.Duration, what string, cond func() error) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	if err := lab.Poll(timeout, cond); err != nil {
		t.Errorf("waiting for %s: %v\n---- [%s] /etc/resolv.conf ----\n%s", what, err, n.phone.Name, n.phone.ResolvConf())
		return 0, false
	}
	return time.Since(start), true
}

// getentHosts resolves name in h as programs do (glibc: /etc/hosts, then
// DNS through /etc/resolv.conf) and returns the first address.
func getentHosts(h *lab.Host, name string) (netip.Addr, error) {
	out, err := h.RunTimeout(15*time.Second, "getent", "hosts", name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("getent hosts %s: %w", name, err)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return netip.Addr{}, fmt.Errorf("getent hosts %s: empty output", name)
	}
	return netip.ParseAddr(f[0])
}

// resolvesTo checks that h resolves name to one of want.
func resolvesTo(h *lab.Host, name string, want []netip.Addr) error {
	ip, err := getentHosts(h, name)
	if err != nil {
		return err
	}
	if !slices.Contains(want, ip) {
		return fmt.Errorf("%s resolves %s to %v, want one of %v", h.Name, name, ip, want)
	}
	return nil
}

// tailnetIPs returns p's tailnet addresses.
func tailnetIPs(t *testing.T, p *lab.Phone) []netip.Addr {
	t.Helper()
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.TailscaleIPs) == 0 {
		t.Fatalf("%s has no tailnet addresses (state %s)", p.Name, st.BackendState)
	}
	return st.TailscaleIPs
}

// dnsDiag returns p's resolv.conf and what tailscaled says about DNS.
func dnsDiag(p *lab.Phone) string {
	var b strings.Builder
	fmt.Fprintf(&b, "---- [%s] /etc/resolv.conf ----\n%s", p.Name, p.ResolvConf())
	for _, args := range [][]string{{"dns", "status", "--all"}, {"status"}} {
		out, err := p.CLI(15*time.Second, args...)
		fmt.Fprintf(&b, "---- [%s] tailscale %s ----\n%s", p.Name, strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "%v\n", err)
		}
	}
	return b.String()
}

// dnsLANResolverRe finds the LAN resolver where `tailscale dns query`
// names the resolver it forwarded to (not 192.168.1.10, the answer).
var dnsLANResolverRe = regexp.MustCompile(`\b` + regexp.QuoteMeta(dnsGatewayIP) + `(:53)?\b`)
