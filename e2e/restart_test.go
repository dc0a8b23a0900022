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
// reports homenet's RSS with three nodes joined.
//
// It runs with the server on a public and on a private address: for an
// http:// login server on a public address, the real client falls back to
// Noise over TLS on port 443 once a reconnect fails, and stays there while
// it retries (control/ts2021/client.go, health.LastNoiseDialWasRecent).
func TestRestartKeepsNodes(t *testing.T) {
	for _, wan := range []string{publicWAN, privateWAN} {
		t.Run("wan="+wan+".0/24", func(t *testing.T) {
			t.Parallel()
			testRestartKeepsNodes(t, tailnetOpts{WAN: wan})
		})
	}
}

func testRestartKeepsNodes(t *testing.T, opts tailnetOpts) {
	tn := newTailnet(t, opts)
	phones := []*lab.Phone{tn.phone("p1"), tn.phone("p2"), tn.phone("p3")}
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
	time.Sleep(2 * time.Second) // let the server settle after the joins
	if rss, err := tn.hn.RSS(); err != nil {
		t.Errorf("reading homenet's RSS: %v", err)
	} else {
		t.Logf("homenet serve RSS with 3 nodes joined: %.1f MiB", float64(rss)/(1<<20))
	}

	tn.hn.Restart()
	restarted := time.Now()

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
			if strings.Contains(p.Daemon.Log(), fmt.Sprintf("dial tcp %v:443", tn.gw.Addr())) {
				t.Errorf("%s: tailscaled gave up on %s after the restart and dials Noise over TLS on %v:443 instead "+
					"(the client does that for http:// servers on non-private addresses); nothing answers there", p.Name, tn.hn.URL, tn.gw.Addr())
			}
		}
		t.Fatalf("waiting for all 3 nodes online in homenet after the restart: %v", err)
	}
	t.Logf("nodes back online %v after the restart", time.Since(restarted).Round(time.Millisecond))

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
	for _, p := range phones {
		if err := p.WaitPeers(joinTimeout, without(phones, p)...); err != nil {
			t.Error(err)
		}
	}
	icmpReaches(t, phones[0], ip4(t, phones[1]))
	icmpReaches(t, phones[2], ip4(t, phones[0]))
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
