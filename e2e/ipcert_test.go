package e2e

import (
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
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

	gw := tn.gw.Addr().String()
	checkDERPNode(t, p1, gw, 443, gw, "none")
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

	phones := natPhones(t, l, inet, ca.Trust, "p1", "p2")
	upAll(t, hn, phones)
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
