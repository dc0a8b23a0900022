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

	// What a user does: credentials in a private file, then init.
	creds := gw.Dir + "/ddns.env"
	credText := fmt.Sprintf("RFC2136_NAMESERVER=%s\nRFC2136_TSIG_KEY=%s\nRFC2136_TSIG_SECRET=%s\nRFC2136_TSIG_ALGORITHM=%s\n",
		home.DNS.Addrs[0], home.DNS.KeyName, home.DNS.Secret, home.DNS.Algorithm)
	if err := os.WriteFile(creds, []byte(credText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath, stateDir := gw.Dir+"/homenet.toml", gw.Dir+"/state"
	out, err := gw.Output(60*time.Second, lab.HomenetBinary(t), "init", "--non-interactive", "--root", "/", "--no-service",
		"--config", cfgPath, "--state-dir", stateDir, "--lan", "192.168.1.0/24",
		"--ddns", "rfc2136", "--ddns-name", name, "--ddns-credentials", creds,
		"--acme-directory", ca.Directory, "--json")
	if err != nil {
		t.Fatalf("homenet init: %v\n%s", err, out)
	}
	var res appliance.InitResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("homenet init --json: %v\n%s", err, out)
	}
	wantURL := "https://" + name + ":8443"
	if res.ServerURL != wantURL || res.Reachability.Case != appliance.ReachIPv6Only || res.Reachability.IPv6.String() != lab.CGNATGW6 {
		t.Fatalf("homenet init: server URL %q, reachability %+v; want %s, %s with %s", res.ServerURL, res.Reachability, wantURL, appliance.ReachIPv6Only, lab.CGNATGW6)
	}
	for _, w := range res.Warnings {
		t.Logf("init warning %s: %s %s", w.Code, w.Message, w.Fix)
	}
	conf, _ := os.ReadFile(cfgPath)
	t.Logf("homenet init wrote:\n%s", conf)

	hn := l.HomenetAt(gw, cfgPath, stateDir, wantURL)
	hn.StartTimeout = 90 * time.Second // DNS, then a certificate by DNS-01
	start := time.Now()
	hn.StartArgs("--log-level", "debug")
	issueTime := time.Since(start)
	t.Logf("homenet serve → AAAA published, certificate issued by DNS-01, https answering: %v", issueTime.Round(time.Millisecond))
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
	st := homenetStatus(t, hn)
	t.Logf("homenet status:\n%s", st)
	for _, want := range []string{"ipv6-only", "AAAA " + lab.CGNATGW6, "A none", "acme-dns-01"} {
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
	start = time.Now()
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
	// and the phones come back within 60 s without logging in again.
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
	waitOnline(t, hn, len(nodesBefore), max(60*time.Second-time.Since(start), time.Second))
	t.Logf("renumbered → all %d nodes online in homenet nodes list: %v", len(nodesBefore), time.Since(start).Round(time.Millisecond))
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
