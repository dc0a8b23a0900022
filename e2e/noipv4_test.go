package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/appliance"
	"homenet/control"
	"homenet/e2e/lab"

	"tailscale.com/tailcfg"
)

// TestNoPublicIPv4 is the home behind carrier NAT with a routed IPv6
// prefix whose ISP drops inbound TCP 80, 443 and 8080 (lab.CGNATHome):
// `homenet init --ddns rfc2136` writes a config whose `homenet serve`
// publishes the gateway's AAAA record through the lab's bind9, gets its
// certificate from pebble by DNS-01 and serves https://home.hn.test:8443.
// Two phones on mobile networks (IPv4 NAT, IPv6 behind a stateful
// firewall) join with a key, see each other and reach the home LAN; a
// restart keeps them without a new certificate; then the home is
// renumbered and the test measures how long DNS and the phones take.
func TestNoPublicIPv4(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	home := l.CGNATHome()
	ca := home.CA()
	gw := home.GW
	ca.Trust(gw) // pebble's API certificate
	name := home.DNS.Name("home")
	startLANWeb(t, home.LANHost)

	hn := initDDNS(t, l, gw, home.DNS, ca, name, "--lan", "192.168.1.0/24")
	st := homenetStatus(t, hn)
	if !strings.Contains(st, "ipv6-only") || !strings.Contains(st, lab.CGNATGW6) {
		t.Fatalf("homenet status does not say ipv6-only with %s:\n%s", lab.CGNATGW6, st)
	}
	if got, _ := home.DNS.Lookup(name, "AAAA"); !slices.Equal(got, []string{lab.CGNATGW6}) {
		t.Errorf("AAAA %s = %v, want [%s]", name, got, lab.CGNATGW6)
	}
	if got, _ := home.DNS.Lookup(name, "A"); len(got) != 0 {
		t.Errorf("A %s = %v; want none: the home has no public IPv4", name, got)
	}
	if n := ca.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
	if !strings.Contains(home.DNS.Log(), "_acme-challenge."+name) {
		t.Errorf("bind9 saw no _acme-challenge.%s update or query: the certificate did not come by DNS-01", name)
	}
	t.Logf("homenet status:\n%s", st)
	for _, want := range []string{"AAAA " + lab.CGNATGW6, "A none", "acme-dns-01"} {
		if !strings.Contains(st, want) {
			t.Errorf("homenet status lacks %q", want)
		}
	}

	// Two phones join with a key; p1 uses the home LAN.
	var phones []*lab.Phone
	for _, n := range []string{"p1", "p2"} {
		_, h := home.MobilePhone(n)
		ca.Trust(h)
		phones = append(phones, l.Phone(h))
	}
	p1, p2 := phones[0], phones[1]
	key, err := hn.CreateKey("--reusable")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p1.Up(hn.URL, key, "--accept-routes"); err != nil {
		t.Fatalf("tailscale up on p1: %v", err)
	}
	if err := p2.Up(hn.URL, key, "--accept-routes"); err != nil {
		t.Fatalf("tailscale up on p2: %v", err)
	}
	for _, p := range phones {
		if err := p.WaitPeers(joinTimeout, without(phones, p)...); err != nil {
			t.Fatal(err)
		}
	}
	icmpReaches(t, p1, ip4(t, p2))
	lanTime := lab.WaitFor(t, pathTimeout, "p1 fetching the LAN host's page through the gateway", func() error {
		_, err := lanPage(p1, 5*time.Second)
		return err
	})
	t.Logf("tailscale up → peers → the LAN host's page: %v (the page after %v)", time.Since(start).Round(time.Millisecond), lanTime.Round(time.Millisecond))
	logPaths(t, p1, p2)
	checkDERPNode(t, p1, name, 8443, "none", "")
	derpCheckIPv6(t, p1)

	// A restart: phones come back over TLS on 8443, no new certificate.
	nodesBefore, err := hn.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	hn.Restart()
	start = time.Now()
	waitOnline(t, hn, len(nodesBefore), 90*time.Second)
	t.Logf("homenet restart → all %d nodes online again: %v", len(nodesBefore), time.Since(start).Round(time.Millisecond))
	lab.WaitFor(t, pathTimeout, "p1 fetching the LAN host's page after the restart", func() error {
		_, err := lanPage(p1, 5*time.Second)
		return err
	})
	if n := ca.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates after the restart, want still 1", n)
	}
	sameNodes(t, hn, nodesBefore)

	// Renumbering: the ISP moves the home to a new /64 at once (the old
	// address is deleted, not deprecated). DNS must follow within 10 s,
	// and the phones reach the LAN again within 60 s without logging in
	// again: disco finds the gateway's new address through the relay.
	// Their control sessions are not checked: they stay on the dead
	// connection until the client gives up on it, many minutes later
	// (tailscale/tailscale#12021; docs/config.md, "No public IPv4"), and
	// homenet's own count of online nodes is no measure of it either: it
	// keeps a dead session until a write to it fails.
	start = time.Now()
	home.RenumberGW()
	dnsTime := lab.WaitFor(t, 10*time.Second, "the AAAA record to follow the new prefix", func() error {
		got, err := home.DNS.Lookup(name, "AAAA")
		if err != nil || !slices.Equal(got, []string{lab.CGNATGW6Next}) {
			return fmt.Errorf("AAAA %s = %v (%v), want [%s]", name, got, err, lab.CGNATGW6Next)
		}
		return nil
	})
	t.Logf("renumbered → AAAA %s: %v", lab.CGNATGW6Next, dnsTime.Round(time.Millisecond))
	for _, p := range phones {
		lab.WaitFor(t, 60*time.Second-time.Since(start), p.Name+" fetching the LAN host's page after the renumbering", func() error {
			_, err := lanPage(p, 3*time.Second)
			return err
		})
		t.Logf("renumbered → %s at the LAN host again: %v", p.Name, time.Since(start).Round(time.Millisecond))
	}
	sameNodes(t, hn, nodesBefore)
	if n := ca.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates by the end, want 1", n)
	}
	if rss, err := hn.RSS(); err == nil {
		t.Logf("homenet serve RSS with DDNS and certmagic, gateway on, 2 phones: %.1f MiB", float64(rss)/(1<<20))
	}
}

// startLANWeb starts the LAN host's web server (the e2e binary itself,
// see gwServeHTTP).
func startLANWeb(t *testing.T, h *lab.Host) {
	t.Helper()
	p := h.Start("http", []string{fmt.Sprintf("%s=:%d", gwHTTPHelperEnv, gwHTTPPort)}, os.Args[0])
	lab.WaitFor(t, 10*time.Second, "the LAN host's web server", func() error {
		if !strings.Contains(p.Log(), "listening on") {
			return fmt.Errorf("not listening yet:\n%s", p.Log())
		}
		return nil
	})
}

// lanPage fetches the LAN host's page from p.
func lanPage(p *lab.Phone, timeout time.Duration) (string, error) {
	return p.Labtool(timeout+5*time.Second, "http-get", "-timeout="+timeout.String(), fmt.Sprintf("http://%s:%d/", gwLANHostIP, gwHTTPPort))
}

// homenetStatus runs `homenet status`.
func homenetStatus(t *testing.T, hn *lab.Homenet) string {
	t.Helper()
	out, err := hn.CLI("status")
	if err != nil {
		t.Fatalf("homenet status: %v\n%s", err, out)
	}
	return out
}

// waitOnline waits until homenet lists n nodes, all online.
func waitOnline(t *testing.T, hn *lab.Homenet, n int, timeout time.Duration) {
	t.Helper()
	lab.WaitFor(t, timeout, fmt.Sprintf("%d nodes online in homenet nodes list", n), func() error {
		nodes, err := hn.Nodes()
		if err != nil {
			return err
		}
		online := 0
		for _, nd := range nodes {
			if nd.Online {
				online++
			}
		}
		if len(nodes) != n || online != n {
			return fmt.Errorf("%d nodes, %d online", len(nodes), online)
		}
		return nil
	})
}

// sameNodes checks that homenet has exactly the nodes it had, with the
// same IDs and keys: nobody logged in again.
func sameNodes(t *testing.T, hn *lab.Homenet, before []control.NodeInfo) {
	t.Helper()
	after, err := hn.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	key := func(ns []control.NodeInfo) []string {
		var s []string
		for _, n := range ns {
			s = append(s, fmt.Sprintf("%d %s %s", n.ID, n.Hostname, n.NodeKey))
		}
		slices.Sort(s)
		return s
	}
	if b, a := key(before), key(after); !slices.Equal(b, a) {
		t.Errorf("nodes changed (a new login?):\nbefore %v\nafter  %v", b, a)
	}
}

// logPaths logs how p1 reaches p2 and the gateway: direct (over which
// address) or through the relay.
func logPaths(t *testing.T, phones ...*lab.Phone) {
	t.Helper()
	for _, p := range phones {
		st, err := p.Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range st.Peer {
			if len(ps.TailscaleIPs) == 0 {
				continue
			}
			out, _ := p.TailscalePing("--c=5", "--until-direct=true", ps.TailscaleIPs[0].String())
			pongs := parsePongs(out)
			t.Logf("%s → %s: %v", p.Name, ps.HostName, pongs)
		}
	}
}

// checkDERPNode checks the DERP map p got: one node, host on port, no
// certificate pin, and IPv4 and IPv6 as given ("none" for a family clients
// must not dial, "" to let them resolve host).
func checkDERPNode(t *testing.T, p *lab.Phone, host string, port int, ipv4, ipv6 string) {
	t.Helper()
	dmJSON, err := p.DERPMap()
	if err != nil {
		t.Fatalf("tailscale debug derp-map: %v", err)
	}
	var dm tailcfg.DERPMap
	if err := json.Unmarshal(dmJSON, &dm); err != nil {
		t.Fatalf("tailscale debug derp-map: %v\n%s", err, dmJSON)
	}
	var nodes []*tailcfg.DERPNode
	for _, r := range dm.Regions {
		nodes = append(nodes, r.Nodes...)
	}
	if len(nodes) != 1 || nodes[0].HostName != host || nodes[0].DERPPort != port || nodes[0].CertName != "" || nodes[0].IPv4 != ipv4 || nodes[0].IPv6 != ipv6 {
		t.Errorf("DERP map %s: want one node %s on port %d, IPv4 %q, IPv6 %q, no CertName", dmJSON, host, port, ipv4, ipv6)
	}
}

// derpCheckIPv6 checks that p, which reaches the relay over IPv6 only,
// gets a DERP connection (`tailscale debug derp home`, a verified TLS
// handshake) and a STUN answer over IPv6 (`tailscale netcheck`, which asks
// the relay's STUN server).
func derpCheckIPv6(t *testing.T, p *lab.Phone) {
	t.Helper()
	out, err := p.CLI(60*time.Second, "debug", "derp", "home")
	if err != nil || !strings.Contains(out, "Successfully established a DERP connection") {
		t.Errorf("tailscale debug derp home on %s: %v\n%s", p.Name, err, out)
	}
	out, err = p.CLI(60*time.Second, "netcheck", "--format=json")
	var rep struct {
		IPv6     bool
		GlobalV6 string
	}
	if i := strings.Index(out, "{"); i >= 0 {
		out = out[i:]
	}
	// The JSON is followed by a warning line; decode the first value only.
	if err != nil || json.NewDecoder(strings.NewReader(out)).Decode(&rep) != nil || !rep.IPv6 || !strings.HasPrefix(rep.GlobalV6, "["+p.Addr6().String()+"]") {
		t.Errorf("tailscale netcheck on %s: want STUN over IPv6 to see %s; got %v\n%s", p.Name, p.Addr6(), err, out)
	}
}

// TestPublicIPv4DDNS is the home with a public IPv4 address (and IPv6):
// the same `homenet init --ddns rfc2136` now publishes an A record beside
// the AAAA, the DERP node names no "none", and phones with IPv4 only join
// https://home.hn.test:8443 and ping each other.
func TestPublicIPv4DDNS(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	lab.BINDBinaries(t)
	inet := l.Internet().EnableIPv6("2001:db8::1/64")
	dns := l.BIND(l.Host("dns", inet.Link("198.51.100.53/24").With6("2001:db8::53/64")), "hn.test")
	ca := l.CAWithDNS(l.Host("ca", inet.Link("198.51.100.10/24").With6("2001:db8::10/64")), dns)
	const gw4, gw6 = "198.51.100.1", "2001:db8::7"
	// The default route's next hop stands for the ISP; the phones' routers
	// share the /24, so it is never used.
	gw := l.Host("gw", inet.Link(gw4+"/24").With6(gw6+"/64").Via("198.51.100.254"))
	dns.UseAsResolver(gw)
	ca.Trust(gw)
	name := dns.Name("home")

	hn := initDDNS(t, l, gw, dns, ca, name, "--lan", "none")
	for qtype, want := range map[string]string{"A": gw4, "AAAA": gw6} {
		if got, _ := dns.Lookup(name, qtype); !slices.Equal(got, []string{want}) {
			t.Errorf("%s %s = %v, want [%s]", qtype, name, got, want)
		}
	}
	if st := homenetStatus(t, hn); !strings.Contains(st, "public-ipv4") || !strings.Contains(st, "A "+gw4) {
		t.Errorf("homenet status lacks public-ipv4 and the A record:\n%s", st)
	}

	phones := natPhones(t, l, inet, func(h *lab.Host) {
		dns.UseAsResolver(h)
		ca.Trust(h)
	}, "p1", "p2")
	upAll(t, hn, phones)
	icmpReaches(t, phones[0], ip4(t, phones[1]))
	checkDERPNode(t, phones[0], name, 8443, "", "")
	if n := ca.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
}

// initDDNS runs `homenet init --ddns rfc2136` on gw with dns's TSIG key
// and ca as the ACME CA (initAndServe).
func initDDNS(t *testing.T, l *lab.Lab, gw *lab.Host, dns *lab.BIND, ca *lab.CA, name string, extra ...string) *lab.Homenet {
	t.Helper()
	creds := gw.Dir + "/ddns.env"
	credText := fmt.Sprintf("RFC2136_NAMESERVER=%s\nRFC2136_TSIG_KEY=%s\nRFC2136_TSIG_SECRET=%s\nRFC2136_TSIG_ALGORITHM=%s\n",
		dns.Addrs[0], dns.KeyName, dns.Secret, dns.Algorithm)
	if err := os.WriteFile(creds, []byte(credText), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--ddns", "rfc2136", "--ddns-name", name, "--ddns-credentials", creds, "--acme-directory", ca.Directory}, extra...)
	return initAndServe(t, l, gw, "https://"+name+":8443", args...)
}

// initAndServe runs `homenet init --non-interactive --no-service ARGS` on
// gw, as a user would (only files under gw's directory and its private
// /etc), checks that it chose wantURL, starts `homenet serve` on the config
// it wrote and waits until wantURL answers, certificate included.
func initAndServe(t *testing.T, l *lab.Lab, gw *lab.Host, wantURL string, args ...string) *lab.Homenet {
	t.Helper()
	cfgPath, stateDir := gw.Dir+"/homenet.toml", gw.Dir+"/state"
	cmd := append([]string{lab.HomenetBinary(t), "init", "--non-interactive", "--root", "/", "--no-service",
		"--config", cfgPath, "--state-dir", stateDir, "--json"}, args...)
	out, err := gw.Output(60*time.Second, cmd...)
	if err != nil {
		t.Fatalf("homenet init: %v\n%s", err, out)
	}
	var res appliance.InitResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("homenet init --json: %v\n%s", err, out)
	}
	if res.ServerURL != wantURL {
		t.Fatalf("homenet init chose server URL %q, want %s", res.ServerURL, wantURL)
	}
	for _, w := range res.Warnings {
		t.Logf("init warning %s: %s %s", w.Code, w.Message, w.Fix)
	}
	conf, _ := os.ReadFile(cfgPath)
	t.Logf("homenet init (reachability %s) wrote:\n%s", res.Reachability.Case, conf)

	hn := l.HomenetAt(gw, cfgPath, stateDir, wantURL)
	hn.StartTimeout = 90 * time.Second // DNS, then a certificate
	start := time.Now()
	hn.StartArgs("--log-level", "debug")
	t.Logf("homenet serve → certificate issued, %s answering: %v", wantURL, time.Since(start).Round(time.Millisecond))
	if rss, err := hn.RSS(); err == nil {
		t.Logf("homenet serve RSS after the certificate, no phones yet: %.1f MiB", float64(rss)/(1<<20))
	}
	return hn
}

// natPhones starts a phone for each name, behind a NAT router of its own
// on inet (natN at 198.51.100.(10+N), LAN 10.N.0.0/24); prep readies each
// host before its tailscaled starts (resolver, trusted CA).
func natPhones(t *testing.T, l *lab.Lab, inet *lab.Net, prep func(*lab.Host), names ...string) []*lab.Phone {
	t.Helper()
	var phones []*lab.Phone
	for i, name := range names {
		nat := l.NATRouter(fmt.Sprintf("nat%d", i+1), inet.Link(fmt.Sprintf("%s.%d/24", publicWAN, 11+i)), fmt.Sprintf("10.%d.0.1/24", i+1), lab.NATOpts{})
		h := l.Host(name, nat.LAN.Link(fmt.Sprintf("10.%d.0.2/24", i+1)))
		prep(h)
		phones = append(phones, l.Phone(h))
	}
	return phones
}

// upAll logs every phone in to hn with one reusable key and waits until
// each sees the others.
func upAll(t *testing.T, hn *lab.Homenet, phones []*lab.Phone) {
	t.Helper()
	key, err := hn.CreateKey("--reusable")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range phones {
		if err := p.Up(hn.URL, key); err != nil {
			t.Fatalf("tailscale up on %s: %v", p.Name, err)
		}
	}
	for _, p := range phones {
		if err := p.WaitPeers(joinTimeout, without(phones, p)...); err != nil {
			t.Fatal(err)
		}
	}
}
