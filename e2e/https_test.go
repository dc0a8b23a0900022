package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"

	"tailscale.com/ipn/ipnstate"
)

// TestHTTPSLogin: with server.url https://hn.test (certificate from the
// lab's ACME CA), `tailscale up --login-server=https://hn.test` works end to
// end. p1's client fetches /key over verified TLS on :443 and speaks Noise
// over plain HTTP on :80; p2 sits on a network that lets only 443 through
// to the server, so its client speaks Noise over TLS on :443. Both see each
// other and ping; the relay's DERP node is the name on 443 with no pinned
// certificate, so clients verify it like any public one.
func TestHTTPSLogin(t *testing.T) {
	t.Parallel()
	tn := newTailnet(t, tailnetOpts{Name: "hn.test"})
	nat1, h1 := tn.natHost("p1")
	nat2, h2 := tn.natHost("p2")
	gw := tn.gw.Addr().String()
	// Count the connections p1 and p2 open to the server, by port; p2's
	// router refuses port 80 (tcp-reset, so the client falls back at once).
	for _, nat := range []*lab.NATRouter{nat1, nat2} {
		for _, port := range []string{"80", "443"} {
			nat.MustRun("iptables", "-I", "FORWARD", "-i", "lan0", "-d", gw, "-p", "tcp", "--syn", "--dport", port)
		}
	}
	nat2.MustRun("iptables", "-I", "FORWARD", "-i", "lan0", "-d", gw, "-p", "tcp", "--syn", "--dport", "80",
		"-j", "REJECT", "--reject-with", "tcp-reset")
	p1, p2 := tn.phoneOn(h1), tn.phoneOn(h2)

	// What a browser would see first: /key over https with the phones'
	// trust, and over http on :80 where the network allows it.
	for _, c := range []struct {
		h      *lab.Host
		url    string
		wantOK bool
	}{
		{h1, "https://hn.test/key?v=113", true},
		{h1, "http://hn.test/key?v=113", true},
		{h2, "https://hn.test/key?v=113", true},
		{h2, "http://hn.test/key?v=113", false},
	} {
		out, err := c.h.Labtool(10*time.Second, "http-get", "-timeout=5s", c.url)
		if (err == nil) != c.wantOK {
			t.Fatalf("GET %s from %s: err = %v, want success %v\n%s", c.url, c.h.Name, err, c.wantOK, out)
		}
	}
	before := map[*lab.NATRouter][2]int{nat1: synCounts(t, nat1), nat2: synCounts(t, nat2)}

	start := time.Now()
	tn.join(t, tn.key(t), p1, p2)
	t.Logf("tailscale up --login-server=%s → peers in netmap: %v", tn.hn.URL, time.Since(start).Round(time.Millisecond))

	for _, c := range []struct {
		nat    *lab.NATRouter
		p      *lab.Phone
		want80 string
	}{
		{nat1, p1, "Noise over plain HTTP"},
		{nat2, p2, "a first try, refused by its network"},
	} {
		was, now := before[c.nat], synCounts(t, c.nat)
		d80, d443 := now[0]-was[0], now[1]-was[1]
		t.Logf("%s's connections to the server during tailscale up: %d to :80, %d to :443", c.p.Name, d80, d443)
		if d80 == 0 {
			t.Errorf("%s made no connection to %s:80; want %s", c.p.Name, gw, c.want80)
		}
		if d443 == 0 {
			t.Errorf("%s made no connection to %s:443; want /key over TLS (and, for p2, Noise over TLS)", c.p.Name, gw)
		}
		// Noise over TLS ignores certificate errors, but logs them
		// (sic: "verificication").
		if log := c.p.Daemon.Log(); strings.Contains(log, "TLS cert verificication") || strings.Contains(log, "TLS cert verification") {
			t.Errorf("%s's tailscaled logged a certificate verification failure for the server", c.p.Name)
		}
	}

	// The DERP map names the relay by its DNS name on 443, with no pin.
	checkDERPNode(t, p1, "hn.test", 443, "", "")

	icmpReaches(t, p1, ip4(t, p2))
	icmpReaches(t, p2, ip4(t, p1))
	derpCheck(t, p2)
}

// synCounts returns how many TCP connections from the router's LAN to the
// gateway on ports 80 and 443 went through (or were refused by) its
// FORWARD chain, from the counters of the rules TestHTTPSLogin inserted.
func synCounts(t *testing.T, nat *lab.NATRouter) [2]int {
	t.Helper()
	out, err := nat.Run("iptables", "-L", "FORWARD", "-v", "-x", "-n")
	if err != nil {
		t.Fatal(err)
	}
	var n [2]int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkts, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "dpt:80 "), strings.HasSuffix(line, "dpt:80"):
			n[0] += pkts
		case strings.Contains(line, "dpt:443 "), strings.HasSuffix(line, "dpt:443"):
			n[1] += pkts
		}
	}
	return n
}

// derpCheck runs `tailscale debug derp home` on p: from p's tailscaled, a
// TLS handshake with the relay verified as the client verifies DERP
// servers, DERP connections and a STUN query. Errors about IPv6 are
// expected: the lab has none.
func derpCheck(t *testing.T, p *lab.Phone) {
	t.Helper()
	out, err := p.CLI(60*time.Second, "debug", "derp", "home")
	if err != nil {
		t.Fatalf("tailscale debug derp home on %s: %v\n%s", p.Name, err, out)
	}
	js := out // the CLI's stdout and stderr: skip anything before the JSON
	if i := strings.Index(out, "{"); i > 0 {
		js = out[i:]
	}
	var rep ipnstate.DebugDERPRegionReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("tailscale debug derp home on %s: %v\n%s", p.Name, err, out)
	}
	for _, e := range rep.Errors {
		if !strings.Contains(e, "IPv6") {
			t.Errorf("tailscale debug derp home on %s: %s", p.Name, e)
		}
	}
	info := strings.Join(rep.Info, "\n")
	for _, want := range []string{"Successfully established a DERP connection", "returned IPv4 STUN response"} {
		if !strings.Contains(info, want) {
			t.Errorf("tailscale debug derp home on %s: no %q in\n%s", p.Name, want, out)
		}
	}
}

// derpPing checks that `tailscale ping` from p to q gets pongs through the
// home relay.
func derpPing(t *testing.T, p, q *lab.Phone) {
	t.Helper()
	ip := ip4(t, q)
	var pongs pongList
	lab.WaitFor(t, pathTimeout, fmt.Sprintf("a pong %s → %s via DERP(home)", p.Name, q.Name), func() error {
		out, err := p.TailscalePing("--c=3", "--until-direct=false", ip.String())
		pongs = parsePongs(out)
		if !pongs.via("DERP(home)") {
			return fmt.Errorf("pongs %v: %v\n%s", pongs, err, out)
		}
		return nil
	})
	t.Logf("tailscale ping %s → %s: %v", p.Name, q.Name, pongs)
}
