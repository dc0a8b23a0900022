package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// The client releases TestClientVersions runs beside the pinned one.
const (
	tooOldClient = "v1.80.3" // capability version 113: no sha256-raw pins
	oldestClient = "v1.84.0" // capability version 116: control.MinCapVer
)

// TestClientVersions: homenet serves Tailscale 1.84 and newer, the first
// release that can use the relay's pinned self-signed certificate (the lab's
// relay has an IP address for a hostname, so its DERP node carries a
// sha256-raw pin). In one gateway lab:
//
//	WAN ─┬─ gw .1    homenet serve, relay, gateway agent ── lanhost 192.168.1.10 (web page)
//	     ├─ nat1 .11 ── p1   tailscale (pinned, 1.102.5)
//	     ├─ nat2 .12 ── p180 tailscale 1.80.3
//	     └─ nat3 .13 ── p184 tailscale 1.84.0, behind a hard NAT (--random-fully)
//
// `tailscale up` on 1.80.3 exits at once with a message naming the version
// it needs, and homenet keeps no node for it. 1.84.0 and the pinned client
// join, see each other, reach the LAN host's page, and ping each other
// through the relay: the hard NAT leaves them no direct path, so the pongs
// come via DERP(home), which takes both clients' TLS connections to the
// relay, checked against the pin.
func TestClientVersions(t *testing.T) {
	t.Parallel()
	n := newGwNet(t, gwOpts{})
	// Build (or find in the cache) the old clients before anything waits
	// on a clock: a cold build takes minutes.
	for _, v := range []string{tooOldClient, oldestClient} {
		start := time.Now()
		lab.TailscaleBinariesVersion(t, v)
		t.Logf("tailscale %s ready after %v", v, time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	n.start(t)
	inet := n.lab.Internet()
	phoneBehind := func(i int, name, version string, opts lab.NATOpts) *lab.Phone {
		nat := n.lab.NATRouter(fmt.Sprintf("nat%d", i), inet.Link(fmt.Sprintf("%s.%d/24", publicWAN, 10+i)).Via(publicWAN+".254"),
			fmt.Sprintf("10.%d.0.1/24", i), opts)
		return n.lab.PhoneVersion(n.lab.Host(name, nat.LAN.Link(fmt.Sprintf("10.%d.0.2/24", i))), version)
	}
	p180 := phoneBehind(2, "p180", tooOldClient, lab.NATOpts{})
	p184 := phoneBehind(3, "p184", oldestClient, lab.NATOpts{RandomFully: true})
	p1 := n.phone
	key, err := n.hn.CreateKey("--reusable")
	if err != nil {
		t.Fatal(err)
	}

	// The too old client: no --timeout, so only the refusal ends it.
	upStart := time.Now()
	out, err := p180.CLI(60*time.Second, "up", "--login-server="+n.hn.URL, "--auth-key="+key, "--hostname="+p180.Hostname)
	took := time.Since(upStart)
	want := "homenet needs Tailscale 1.84 or newer (this client is 1.80.3)"
	t.Logf("tailscale up on %s (%s) after %v: %v\n%s", p180.Name, tooOldClient, took.Round(time.Millisecond), err, out)
	switch {
	case err == nil:
		t.Errorf("tailscale up on %s succeeded; want it refused", tooOldClient)
	case !strings.Contains(out, "backend error: "+want):
		t.Errorf("tailscale up on %s printed no %q", tooOldClient, "backend error: "+want)
	case took > 15*time.Second:
		t.Errorf("tailscale up on %s took %v to fail; want it at once", tooOldClient, took)
	}
	if st, err := p180.CLI(15*time.Second, "status", "--json"); !strings.Contains(st, want) {
		t.Errorf("tailscale status --json on %s does not say %q (%v):\n%s", tooOldClient, want, err, st)
	}
	nodes, err := n.hn.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		if nd.Hostname == p180.Hostname {
			t.Errorf("homenet registered the %s client: %+v", tooOldClient, nd)
		}
	}

	phones := []*lab.Phone{p1, p184}
	for _, p := range phones {
		if err := p.Up(n.hn.URL, key, "--accept-routes"); err != nil {
			t.Fatalf("tailscale up on %s (%s): %v", p.Name, phoneVersion(p), err)
		}
	}
	for _, p := range phones {
		if err := p.WaitPeers(joinTimeout, without(phones, p)...); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range phones {
		lab.WaitFor(t, pathTimeout, fmt.Sprintf("%s (%s) to fetch the LAN host's page", p.Name, phoneVersion(p)), func() error {
			_, err := lanPage(p, 5*time.Second)
			return err
		})
	}
	for _, p := range phones {
		peer := without(phones, p)[0]
		out, err := p.TailscalePing("--c=3", "--until-direct=false", ip4(t, peer).String())
		pongs := parsePongs(out)
		t.Logf("%s (%s) → %s: %v", p.Name, phoneVersion(p), peer.Name, pongs)
		if err != nil || !pongs.via("DERP(home)") {
			t.Errorf("tailscale ping from %s (%s) to %s: no pong via DERP(home): %v\n%s", p.Name, phoneVersion(p), peer.Name, err, out)
		}
	}
	t.Logf("from homenet serve to the last pong: %v", time.Since(start).Round(time.Millisecond))
}

// phoneVersion names the release p runs.
func phoneVersion(p *lab.Phone) string {
	if p.Version == "" {
		return "pinned"
	}
	return p.Version
}
