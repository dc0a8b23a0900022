package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// TestRestartKeepsNodes: after `homenet serve` restarts, nodes reconnect
// without logging in again and keep their addresses; traffic flows. It also
// reports homenet's RSS with three nodes joined, and how long the nodes took
// to come back.
//
// It runs in the two setups homenet documents. On a private address with an
// http:// URL, the client speaks Noise over plain HTTP only. On the
// internet, the real client insists, once a reconnect has failed, on Noise
// over TLS on port 443 (control/ts2021/client.go, controlhttp's
// forceNoise443, health.LastNoiseDialWasRecent): there homenet runs under a
// DNS name, https://hn.test, with control on :80 and :443 and DERP on :443,
// certified by ACME. In that setup p3 sits behind a hard NAT, so that its
// traffic goes through the ACME-certified relay, before and after the
// restart.
func TestRestartKeepsNodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts tailnetOpts
	}{
		{"https=hn.test", tailnetOpts{Name: "hn.test"}},
		{"wan=" + privateWAN + ".0/24", tailnetOpts{WAN: privateWAN}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRestartKeepsNodes(t, tc.opts)
		})
	}
}

func testRestartKeepsNodes(t *testing.T, opts tailnetOpts) {
	tn := newTailnet(t, opts)
	named := opts.Name != ""
	phones := []*lab.Phone{tn.phone("p1"), tn.phone("p2")}
	if named {
		_, h := tn.natHostWith("p3", lab.NATOpts{RandomFully: true})
		phones = append(phones, tn.phoneOn(h))
	} else {
		phones = append(phones, tn.phone("p3"))
	}
	tn.join(t, tn.key(t), phones...)

	type identity struct {
		ips     []netip.Addr
		nodeKey string
	}
	before := map[string]identity{}
	for _, p := range phones {
		st, err := p.Status()
		if err != nil {
			t.Fatal(err)
		}
		before[p.Hostname] = identity{st.TailscaleIPs, st.Self.PublicKey.String()}
	}
	icmpReaches(t, phones[0], ip4(t, phones[2]))
	issued := 0
	if named {
		derpCheck(t, phones[0])
		derpPing(t, phones[0], phones[2])
		if issued = tn.ca.Issued(); issued != 1 {
			t.Errorf("pebble issued %d certificates, want 1 (homenet's)", issued)
		}
	}
	time.Sleep(2 * time.Second) // let the server settle after the joins
	if rss, err := tn.hn.RSS(); err != nil {
		t.Errorf("reading homenet's RSS: %v", err)
	} else {
		t.Logf("homenet serve RSS with 3 nodes joined: %.1f MiB", float64(rss)/(1<<20))
	}

	logMark := map[*lab.Phone]int{}
	for _, p := range phones {
		logMark[p] = len(p.Daemon.Log())
	}
	stopped := time.Now()
	tn.hn.Restart()
	restarted := time.Now()
	t.Logf("homenet serve stopped and answering again in %v", restarted.Sub(stopped).Round(time.Millisecond))

	// Every node is online again as far as the server knows: the phones
	// reconnected to the new process.
	err := lab.Poll(joinTimeout, func() error {
		nodes, err := tn.hn.Nodes()
		if err != nil {
			return err
		}
		online := 0
		for _, n := range nodes {
			if n.Online {
				online++
			}
		}
		if len(nodes) != 3 || online != 3 {
			return fmt.Errorf("%d nodes, %d online", len(nodes), online)
		}
		return nil
	})
	if err != nil {
		for _, p := range phones {
			if !named && strings.Contains(p.Daemon.Log(), fmt.Sprintf("dial tcp %v:443", tn.gw.Addr())) {
				t.Errorf("%s: tailscaled gave up on %s after the restart and dials Noise over TLS on %v:443 instead "+
					"(the client does that for http:// servers on non-private addresses); nothing answers there", p.Name, tn.hn.URL, tn.gw.Addr())
			}
		}
		t.Fatalf("waiting for all 3 nodes online in homenet after the restart: %v", err)
	}
	t.Logf("all 3 nodes back online %v after homenet answered again", time.Since(restarted).Round(time.Millisecond))
	if named {
		var over443 []string
		for _, p := range phones {
			if strings.Contains(p.Daemon.Log()[logMark[p]:], "forcing port 443 dial") {
				over443 = append(over443, p.Name)
			}
		}
		t.Logf("phones whose client reconnected with Noise over TLS on :443 only: %v", over443)
	}

	for _, p := range phones {
		st, err := p.Status()
		if err != nil {
			t.Fatal(err)
		}
		was := before[p.Hostname]
		if st.BackendState != "Running" || st.AuthURL != "" {
			t.Errorf("%s after restart: BackendState %q, AuthURL %q; want Running without re-auth", p.Name, st.BackendState, st.AuthURL)
		}
		if got := st.Self.PublicKey.String(); got != was.nodeKey {
			t.Errorf("%s node key changed across the restart: %s → %s", p.Name, was.nodeKey, got)
		}
		if !slices.Equal(st.TailscaleIPs, was.ips) {
			t.Errorf("%s addresses changed across the restart: %v → %v", p.Name, was.ips, st.TailscaleIPs)
		}
	}
	peersStart := time.Now()
	for _, p := range phones {
		if err := p.WaitPeers(joinTimeout, without(phones, p)...); err != nil {
			t.Error(err)
		}
	}
	dPeers := time.Since(peersStart)
	d12 := icmpReaches(t, phones[0], ip4(t, phones[1]))
	d31 := icmpReaches(t, phones[2], ip4(t, phones[0]))
	t.Logf("pings through %v after homenet answered again (waited %v for full netmaps, then %v for p1 → p2, then %v for p3 → p1)",
		time.Since(restarted).Round(time.Millisecond), dPeers.Round(time.Millisecond), d12.Round(time.Millisecond), d31.Round(time.Millisecond))
	if named {
		// The relay came back with the certificate it cached, without
		// asking the CA, and p3's traffic still goes through it.
		derpPing(t, phones[0], phones[2])
		if n := tn.ca.Issued(); n != issued {
			t.Errorf("pebble issued %d certificates after the restart, want none (the relay caches its certificate)", n-issued)
		}
	}
}

func without(phones []*lab.Phone, p *lab.Phone) []*lab.Phone {
	var out []*lab.Phone
	for _, o := range phones {
		if o != p {
			out = append(out, o)
		}
	}
	return out
}
