package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// TestTwoPhonesJoinAndPing: two phones, each behind its own NAT router,
// join with a pre-auth key and see each other; tailscale ping, ICMP and TCP
// work. Behind plain MASQUERADE a direct path forms; behind --random-fully
// everything still flows over the home DERP. Both with the default prefix
// and with a non-CGNAT one.
func TestTwoPhonesJoinAndPing(t *testing.T) {
	for _, prefix4 := range []string{defaultPrefix, "10.77.0.0/16"} {
		for _, randomFully := range []bool{false, true} {
			name := "prefix=default"
			if prefix4 != defaultPrefix {
				name = "prefix=" + prefix4
			}
			if randomFully {
				name += "/nat=random-fully"
			} else {
				name += "/nat=masquerade"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testTwoPhones(t, tailnetOpts{Prefix4: prefix4, RandomFully: randomFully})
			})
		}
	}
}

func testTwoPhones(t *testing.T, opts tailnetOpts) {
	tn := newTailnet(t, opts)
	p1, p2 := tn.phone("p1"), tn.phone("p2")
	key := tn.key(t)

	start := time.Now()
	tn.join(t, key, p1, p2)
	joined := time.Since(start)
	checkAddresses(t, p1, opts.Prefix4)
	checkAddresses(t, p2, opts.Prefix4)
	ip1, ip2 := ip4(t, p1), ip4(t, p2)

	icmpReaches(t, p1, ip2)
	t.Logf("tailscale up → peers in netmap: %v; → first successful ping: %v", joined.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	icmpReaches(t, p2, ip1)
	tcpReaches(t, p1, p2)

	if opts.RandomFully {
		// Both NATs are "hard": pings go through the home relay.
		out, err := p1.TailscalePing("--c=5", "--until-direct=false", ip2.String())
		if err != nil {
			t.Fatalf("tailscale ping %v: %v\n%s", ip2, err, out)
		}
		pongs := parsePongs(out)
		if !pongs.via("DERP(home)") {
			t.Errorf("tailscale ping behind --random-fully NATs: no pong via DERP(home):\n%s", out)
		}
		t.Logf("paths behind --random-fully NATs: %v", pongs)
		return
	}

	// Plain MASQUERADE keeps ports: with endpoints propagated, a direct
	// path to p2's public address forms.
	wantEndpoint := tn.wanAddr(12) // nat2
	var pongs pongList
	lab.WaitFor(t, pathTimeout, "a direct path p1 → p2", func() error {
		out, err := p1.TailscalePing("--c=10", ip2.String())
		pongs = append(pongs, parsePongs(out)...)
		if d, ok := pongs.direct(); ok {
			if d.Addr() != wantEndpoint {
				return fmt.Errorf("direct pong via %v, want p2's public address %v", d, wantEndpoint)
			}
			return nil
		}
		return fmt.Errorf("no direct pong yet (%v): %v\n%s", pongs, err, out)
	})
	t.Logf("paths behind plain MASQUERADE: %v", pongs)
}

// pong is one "pong from NAME (IP…) via VIA in LATENCY" line of tailscale ping.
type pong struct{ from, via, latency string }

type pongList []pong

var pongRe = regexp.MustCompile(`pong from (\S+) \([^)]*\) via (\S+) in (\S+)`)

func parsePongs(out string) pongList {
	var ps pongList
	for _, m := range pongRe.FindAllStringSubmatch(out, -1) {
		ps = append(ps, pong{from: m[1], via: m[2], latency: m[3]})
	}
	return ps
}

func (ps pongList) via(v string) bool {
	for _, p := range ps {
		if p.via == v {
			return true
		}
	}
	return false
}

// direct returns the endpoint of the first direct (ip:port) pong.
func (ps pongList) direct() (netip.AddrPort, bool) {
	for _, p := range ps {
		if ap, err := netip.ParseAddrPort(p.via); err == nil {
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

func (ps pongList) String() string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.via + " " + p.latency
	}
	if s == "" {
		return "no pongs"
	}
	return s
}
