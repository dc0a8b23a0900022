package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
