package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"

	"tailscale.com/tailcfg"
)

// TestIPCertLogin: with server.url https://<public IP>, homenet gets an
// ACME certificate for the address from the lab's CA (HTTP-01 on :80, as
// Let's Encrypt issues short-lived IP certificates), so phones verify
// control and the relay like any public server: the DERP node pins
// nothing. A restart brings both phones back on the control server, as
// `homenet nodes list` counts them, without a new certificate.
func TestIPCertLogin(t *testing.T) {
	t.Parallel()
	tn := newTailnet(t, tailnetOpts{IPCert: true})
	p1, p2 := tn.phone("p1"), tn.phone("p2")
	tn.join(t, tn.key(t), p1, p2)
	icmpReaches(t, p1, ip4(t, p2))

	dmJSON, err := p1.DERPMap()
	if err != nil {
		t.Fatalf("tailscale debug derp-map: %v", err)
	}
	var dm tailcfg.DERPMap
	if err := json.Unmarshal(dmJSON, &dm); err != nil {
		t.Fatalf("tailscale debug derp-map: %v\n%s", err, dmJSON)
	}
	gw := tn.gw.Addr().String()
	var nodes []*tailcfg.DERPNode
	for _, r := range dm.Regions {
		nodes = append(nodes, r.Nodes...)
	}
	if len(nodes) != 1 || nodes[0].HostName != gw || nodes[0].DERPPort != 443 || nodes[0].CertName != "" {
		t.Errorf("DERP map %s: want one node %s on port 443 without a CertName pin", dmJSON, gw)
	}
	derpCheck(t, p2)
	for _, p := range []string{p1.Daemon.Log(), p2.Daemon.Log()} {
		if strings.Contains(p, "TLS cert verificication") || strings.Contains(p, "TLS cert verification") {
			t.Errorf("a phone's tailscaled logged a certificate verification failure for the server")
		}
	}

	before, err := tn.hn.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tn.hn.Restart()
	waitOnline(t, tn.hn, len(before), 60*time.Second)
	t.Logf("homenet stop → started → both phones online on the control server again: %v", time.Since(start).Round(time.Millisecond))
	sameNodes(t, tn.hn, before)
	if n := tn.ca.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1 (the restart must reuse the stored one)", n)
	}
}

// TestInitPublicIPv4 is a gateway with a public IPv4 address on its WAN:
// what `homenet init` writes there (https://ADDR, control on :80 and the
// relay on :443 with a certificate for the address) brings both phones
// back on the control server within 60 s of a homenet restart, as
// `homenet nodes list` counts them. (With the http://ADDR:8080 init used to
// write, 0 of 2 phones were back: after one failed dial a client of a
// public http:// server insists on TLS on 443.)
func TestInitPublicIPv4(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	lab.PebbleBinary(t)
	inet := l.Internet()
	// The default route's next hop stands for the ISP; the phones' routers
	// share the /24, so it is never used.
	gw := l.Host("gw", inet.Link(publicWAN+".1/24").Via(publicWAN+".254"))
	ca := l.CA(l.Host("ca", inet.Link(publicWAN+".2/24")))
	ca.Trust(gw)
	hn := initAndServe(t, l, gw, "https://"+publicWAN+".1", "--lan", "none", "--acme-directory", ca.Directory)

	var phones []*lab.Phone
	for i, name := range []string{"p1", "p2"} {
		nat := l.NATRouter(fmt.Sprintf("nat%d", i+1), inet.Link(fmt.Sprintf("%s.%d/24", publicWAN, 11+i)), fmt.Sprintf("10.%d.0.1/24", i+1), lab.NATOpts{})
		h := l.Host(name, nat.LAN.Link(fmt.Sprintf("10.%d.0.2/24", i+1)))
		ca.Trust(h)
		phones = append(phones, l.Phone(h))
	}
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
	before, err := hn.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		start := time.Now()
		hn.Restart()
		waitOnline(t, hn, len(before), 60*time.Second)
		t.Logf("restart %d: homenet stop → both phones online on the control server again: %v", i+1, time.Since(start).Round(time.Millisecond))
	}
	sameNodes(t, hn, before)
	icmpReaches(t, phones[0], ip4(t, phones[1]))
	if n := ca.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
}
