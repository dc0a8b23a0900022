package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"testing"
	"time"

	"homenet/e2e/lab"
	"homenet/subnet"
)

// TestHeadscaleJoin: the home agent joins a stock headscale (v0.29 from
// the module proxy), with a key from `headscale preauthkeys create` and
// `homenet init --join`. Its routes wait for approval by hand, which
// `homenet status` says; once `headscale nodes approve-routes` approves
// them, a phone logged in to headscale reaches the home LAN.
//
//	198.51.100.0/24 ─┬─ hs   .5   headscale (https://198.51.100.5, embedded DERP)
//	                 ├─ gw   .1   homenet init --join ── lan0 192.168.1.1/24 ── lanhost .10
//	                 └─ nat1 .11  ── p1 10.1.0.2
func TestHeadscaleJoin(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	inet := l.Internet()
	// headscale's default prefix is 100.64.0.0/10; homenet's agent
	// anti-spoofs its own tailnet.prefix4 (100.86.0.0/16 by default).
	hs := l.Headscale(l.Host("hs", inet.Link(vpsIP+"/24")), lab.HeadscaleOpts{TLS: true, Prefix4: "100.86.0.0/16"})
	gw := l.Host("gw", inet.Link(publicWAN+".1/24"))
	lanHost := l.Host("lanhost", gw.Bridge("lan0", "192.168.1.1/24").Link(gwLANHostIP+"/24").Via(""))
	startLANWeb(t, lanHost)
	nat := l.NATRouter("nat1", inet.Link(publicWAN+".11/24"), "10.1.0.1/24", lab.NATOpts{})
	ph := l.Host("p1", nat.LAN.Link("10.1.0.2/24"))
	hs.PrepareClient(gw, ph)
	phone := l.Phone(ph)

	user, err := hs.CreateUser("home")
	if err != nil {
		t.Fatal(err)
	}
	key, err := hs.CreateKey(user)
	if err != nil {
		t.Fatal(err)
	}
	home := initJoin(t, l, gw, hs.URL, key)

	var node lab.HeadscaleNode
	lab.WaitFor(t, gwUpTimeout, "headscale to list the gateway with its routes", func() error {
		nodes, err := hs.Nodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if slices.Contains(n.AvailableRoutes, netip.MustParsePrefix(gwLANPrefix)) {
				node = n
				return nil
			}
		}
		return fmt.Errorf("no node advertises %s: %+v", gwLANPrefix, nodes)
	})
	awaiting := regexp.MustCompile(`Approved:\s+- \(not approved: ` + gwLANPrefix)
	lab.WaitFor(t, 30*time.Second, "homenet status at home to say the routes await approval", func() error {
		if st := homenetStatus(t, home); !awaiting.MatchString(st) {
			return fmt.Errorf("status:\n%s", st)
		}
		return nil
	})
	routes := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix(gwLANPrefix), netip.MustParsePrefix("::/0")} // sorted
	if err := hs.ApproveRoutes(node.ID, routes...); err != nil {
		t.Fatal(err)
	}
	approved := time.Now()
	lab.WaitFor(t, 30*time.Second, "the home agent to see its routes approved", func() error {
		var gwSt subnet.Status
		if _, err := statusPart(home, "gateway", &gwSt); err != nil {
			return err
		}
		slices.SortFunc(gwSt.Approved, netip.Prefix.Compare)
		if !gwSt.Connected || !slices.Equal(gwSt.Approved, routes) {
			return fmt.Errorf("connected %v, approved %v, error %q", gwSt.Connected, gwSt.Approved, gwSt.LastError)
		}
		return nil
	})
	t.Logf("headscale nodes approve-routes → the home agent sees them approved: %v", time.Since(approved).Round(time.Millisecond))

	pkey, err := hs.CreateKey(user)
	if err != nil {
		t.Fatal(err)
	}
	upStart := time.Now()
	if err := hs.Join(phone, pkey, "--accept-routes"); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, pathTimeout, "HTTP from the phone to the LAN host through the gateway", func() error {
		_, err := lanPage(phone, 3*time.Second)
		return err
	})
	t.Logf("phone: tailscale up at headscale → first page from the home LAN host: %v", time.Since(upStart).Round(time.Millisecond))
	logPaths(t, phone)
}
