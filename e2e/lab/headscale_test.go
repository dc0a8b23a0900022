package lab_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// The headscale harness's own tests: real tailscaled phones join a stock
// headscale with pre-auth keys and reach each other, directly and through
// its embedded DERP server. They skip without a headscale binary (see
// lab.HeadscaleBinary).

// headscaleLab is headscale on the internet and two phones, each behind
// its own NAT; hard NATs (--random-fully on both) leave DERP as the only
// path between the phones.
type headscaleLab struct {
	l          *lab.Lab
	hs         *lab.Headscale
	nat1, nat2 *lab.NATRouter
	p1, p2     *lab.Phone
}

func newHeadscaleLab(t *testing.T, opts lab.HeadscaleOpts, hardNATs bool) *headscaleLab {
	t.Helper()
	l := lab.New(t)
	lab.HeadscaleBinary(t) // skip before building anything else
	inet := l.Internet()
	srv := l.Host("hs", inet.Link("198.51.100.200/24"))
	nat1 := l.NATRouter("nat1", inet.Link("198.51.100.11/24"), "10.1.0.1/24", lab.NATOpts{RandomFully: hardNATs})
	nat2 := l.NATRouter("nat2", inet.Link("198.51.100.12/24"), "10.2.0.1/24", lab.NATOpts{RandomFully: hardNATs})
	h1 := l.Host("p1", nat1.LAN.Link("10.1.0.2/24"))
	h2 := l.Host("p2", nat2.LAN.Link("10.2.0.2/24"))
	hs := l.Headscale(srv, opts)
	hs.PrepareClient(h1, h2)
	return &headscaleLab{l: l, hs: hs, nat1: nat1, nat2: nat2, p1: l.Phone(h1), p2: l.Phone(h2)}
}

// phone starts one more phone, on nat1's LAN at addr.
func (n *headscaleLab) phone(name, addr string) *lab.Phone {
	h := n.l.Host(name, n.nat1.LAN.Link(addr))
	n.hs.PrepareClient(h)
	return n.l.Phone(h)
}

// join creates a user and a reusable key and brings both phones up with
// it, then waits until each sees the other.
func (n *headscaleLab) join(t *testing.T, extra ...string) {
	t.Helper()
	uid, err := n.hs.CreateUser("alice")
	if err != nil {
		t.Fatal(err)
	}
	key, err := n.hs.CreateKey(uid, "--reusable", "--expiration", "1h")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*lab.Phone{n.p1, n.p2} {
		if err := n.hs.Join(p, key, extra...); err != nil {
			t.Fatalf("%s joining headscale: %v", p.Name, err)
		}
		if err := p.WaitRunning(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][2]*lab.Phone{{n.p1, n.p2}, {n.p2, n.p1}} {
		if err := pair[0].WaitPeers(30*time.Second, pair[1]); err != nil {
			t.Fatal(err)
		}
	}
	lab.WaitFor(t, 20*time.Second, "headscale to list both phones online", func() error {
		for _, p := range []*lab.Phone{n.p1, n.p2} {
			node, err := n.hs.Node(p.Hostname)
			if err != nil {
				return err
			}
			if !node.Online || len(node.IPAddresses) == 0 || node.User.Name != "alice" {
				return fmt.Errorf("node %s: online %v, IPs %v, user %q", p.Hostname, node.Online, node.IPAddresses, node.User.Name)
			}
		}
		return nil
	})
}

// pingEachOther checks ICMP over the tailnet both ways and returns what
// `tailscale ping` from p1 to p2 printed.
func (n *headscaleLab) pingEachOther(t *testing.T, tsPingArgs ...string) string {
	t.Helper()
	for _, pair := range [][2]*lab.Phone{{n.p1, n.p2}, {n.p2, n.p1}} {
		ip, err := pair[1].IP4()
		if err != nil {
			t.Fatal(err)
		}
		lab.WaitFor(t, 30*time.Second, fmt.Sprintf("ICMP from %s to %s (%v) over the tailnet", pair[0].Name, pair[1].Name, ip), func() error {
			return pair[0].ICMPPing(ip)
		})
	}
	ip2, _ := n.p2.IP4()
	out, err := n.p1.TailscalePing(append(tsPingArgs, ip2.String())...)
	if err != nil {
		t.Fatalf("tailscale ping %v from p1: %v\n%s", ip2, err, out)
	}
	t.Logf("tailscale ping p1 → p2:\n%s", out)
	return out
}

// TestHeadscale: two phones behind ordinary NATs join headscale with a
// reusable pre-auth key, see each other, ping each other over the
// tailnet, and find a direct path (headscale's STUN server gives them
// their public endpoints).
func TestHeadscale(t *testing.T) {
	n := newHeadscaleLab(t, lab.HeadscaleOpts{}, false)
	n.join(t)
	out := n.pingEachOther(t, "--c=20", "--until-direct=true")
	if !strings.Contains(out, "via 198.51.100.12:") {
		t.Errorf("p1 → p2 never went direct to nat2's public address:\n%s", out)
	}
}

// TestHeadscaleDERP: behind two hard NATs, the phones reach each other
// only through headscale's embedded DERP server, over plain HTTP (clients
// with TS_DEBUG_USE_DERP_HTTP=1) and over TLS with a certificate for
// headscale's address (clients trusting the lab CA, as with a real
// certificate).
func TestHeadscaleDERP(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts lab.HeadscaleOpts
	}{
		{"http", lab.HeadscaleOpts{}},
		{"tls", lab.HeadscaleOpts{TLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newHeadscaleLab(t, tc.opts, true)
			if tc.opts.TLS && !strings.HasPrefix(n.hs.URL, "https://") {
				t.Fatalf("URL %s, want https", n.hs.URL)
			}
			n.join(t)
			out := n.pingEachOther(t, "--c=3", "--until-direct=false")
			if !strings.Contains(out, "via DERP(headscale)") {
				t.Errorf("p1 → p2 not via headscale's DERP region:\n%s", out)
			}
			// The DERP map the phones got names only headscale's region.
			dm, err := n.p1.DERPMap()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(dm), `"RegionCode": "headscale"`) || !strings.Contains(string(dm), `"HostName": "198.51.100.200"`) {
				t.Errorf("p1's DERP map does not name headscale at 198.51.100.200:\n%s", dm)
			}
		})
	}
}

// TestHeadscaleRoutes: a subnet router's advertised route waits for
// approval (ApproveRoutes) when the router is user-owned, and is approved
// at once by the policy's autoApprovers when the router is tagged through
// its pre-auth key; either way the other phone's netmap then routes the
// prefix to it. It also records how headscale treats --advertise-tags
// with a pre-auth key, which is what homenet's gateway agent sends.
func TestHeadscaleRoutes(t *testing.T) {
	const policy = `{
	"tagOwners": {"tag:gateway": ["alice@"]},
	"autoApprovers": {"routes": {"192.168.78.0/24": ["tag:gateway"]}},
	"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`
	n := newHeadscaleLab(t, lab.HeadscaleOpts{Policy: policy, BaseDomain: "hs.test"}, false)
	hs := n.hs
	uid, err := hs.CreateUser("alice")
	if err != nil {
		t.Fatal(err)
	}
	userKey, err := hs.CreateKey(uid, "--reusable")
	if err != nil {
		t.Fatal(err)
	}
	// With --user too, which 0.28+ need not but 0.27 requires.
	tagKey, err := hs.CreateKey(uid, "--reusable", "--tags", "tag:gateway")
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.Join(n.p1, userKey); err != nil {
		t.Fatal(err)
	}

	// What homenet's gateway agent does: a pre-auth key and
	// --advertise-tags=tag:gateway (AdvertiseTags in its prefs). Logged,
	// not asserted: headscale 0.27 registers the node with the tag (its
	// user owns tag:gateway), 0.28 and later refuse the registration
	// with either key ("requested tags [tag:gateway] are invalid or not
	// permitted"): a key-registered node takes its tags from the key only.
	for i, k := range []struct{ name, key string }{{"user-owned key", userKey}, {"tagged key", tagKey}} {
		gw := n.phone(fmt.Sprintf("gw%d", i+1), fmt.Sprintf("10.1.0.%d/24", 11+i))
		out, err := gw.CLI(40*time.Second, "up", "--login-server="+hs.URL, "--authkey="+k.key,
			"--hostname="+gw.Hostname, "--advertise-tags=tag:gateway", "--timeout=20s")
		st, _ := gw.Status()
		state := ""
		if st != nil {
			state = st.BackendState
		}
		last := strings.TrimSpace(out)
		if nl := strings.LastIndex(last, "\n"); nl >= 0 {
			last = last[nl+1:]
		}
		t.Logf("--advertise-tags=tag:gateway with a %s: state %s, up failed: %v, said %q", k.name, state, err != nil, last)
		if node, err := hs.Node(gw.Hostname); err == nil {
			t.Logf("headscale registered %s: tags %v, user %q", gw.Hostname, node.Tags, node.User.Name)
		}
	}

	// A user-owned router: its route waits for approval.
	lan1 := netip.MustParsePrefix("192.168.77.0/24")
	if err := n.p2.Up(hs.URL, userKey, "--advertise-routes="+lan1.String()); err != nil {
		t.Fatal(err)
	}
	var node lab.HeadscaleNode
	lab.WaitFor(t, 20*time.Second, "headscale to list p2's advertised route", func() error {
		node, err = hs.Node("p2")
		if err != nil {
			return err
		}
		if !slices.Contains(node.AvailableRoutes, lan1) {
			return fmt.Errorf("p2 advertises %v", node.AvailableRoutes)
		}
		return nil
	})
	if len(node.ApprovedRoutes) != 0 || len(node.SubnetRoutes) != 0 {
		t.Errorf("user-owned p2's route approved without asking: approved %v, serving %v", node.ApprovedRoutes, node.SubnetRoutes)
	}
	if len(node.Tags) != 0 || node.User.Name != "alice" {
		t.Errorf("p2 registered with a user key: tags %v, user %q", node.Tags, node.User.Name)
	}
	if err := hs.ApproveRoutes(node.ID, lan1); err != nil {
		t.Fatal(err)
	}
	waitPeerRoute(t, n.p1, "p2", lan1)

	// A tagged router: autoApprovers approve its route at once.
	lan2 := netip.MustParsePrefix("192.168.78.0/24")
	r := n.phone("rtr", "10.1.0.4/24")
	if err := r.Up(hs.URL, tagKey, "--advertise-routes="+lan2.String()); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, 20*time.Second, "tagged rtr with its route auto-approved", func() error {
		node, err = hs.Node("rtr")
		if err != nil {
			return err
		}
		if !slices.Equal(node.Tags, []string{"tag:gateway"}) || !slices.Contains(node.SubnetRoutes, lan2) {
			return fmt.Errorf("rtr: tags %v, user %q, advertised %v, approved %v, serving %v",
				node.Tags, node.User.Name, node.AvailableRoutes, node.ApprovedRoutes, node.SubnetRoutes)
		}
		return nil
	})
	waitPeerRoute(t, n.p1, "rtr", lan2)
	if st, err := r.Status(); err == nil && st.Self != nil {
		t.Logf("rtr self: DNS name %q, tags %v", st.Self.DNSName, st.Self.Tags)
	}
}

// waitPeerRoute waits until p's netmap routes prefix to the peer named
// peer (its PrimaryRoutes).
func waitPeerRoute(t *testing.T, p *lab.Phone, peer string, prefix netip.Prefix) {
	t.Helper()
	lab.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to route %v to %s", p.Name, prefix, peer), func() error {
		st, err := p.Status()
		if err != nil {
			return err
		}
		ps := lab.Peer(st, peer)
		if ps == nil {
			return fmt.Errorf("no peer %s", peer)
		}
		if ps.PrimaryRoutes == nil || !slices.Contains(ps.PrimaryRoutes.AsSlice(), prefix) {
			return fmt.Errorf("peer %s primary routes %v", peer, ps.PrimaryRoutes)
		}
		return nil
	})
}
