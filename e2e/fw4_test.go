package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// gwFW4 is OpenWrt fw4's table as it generates it for a router with a lan
// zone (firewall4's tests/01_configuration/01_ruleset, cut to the forward
// hook), on the lab gateway's interfaces: forward policy drop, accepted
// only what a zone's forwarding allows, the rest rejected. ZONES are extra
// zone dispatch rules.
func gwFW4(zones string) string {
	return `table inet fw4 {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle forwarded flows"
		iifname "lan0" jump forward_lan comment "!fw4: Handle lan IPv4/IPv6 forward traffic"
` + zones + `
		jump handle_reject
	}
	chain handle_reject {
		meta l4proto tcp counter reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"
	}
	chain forward_lan {
		jump accept_to_wan comment "!fw4: Accept lan to wan forwarding"
	}
	chain forward_homenet {
		jump accept_to_lan comment "!fw4: Accept homenet to lan forwarding"
		jump accept_to_wan comment "!fw4: Accept homenet to wan forwarding"
	}
	chain accept_to_lan {
		oifname "lan0" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}
	chain accept_to_wan {
		oifname "eth0" counter accept comment "!fw4: accept wan IPv4/IPv6 traffic"
	}
}
`
}

var gwRejectCounter = regexp.MustCompile(`counter packets (\d+) bytes \d+ reject with tcp reset`)

// TestGatewayFW4Drop runs homenet on a gateway whose fw4 has no zone for
// tailscale0, as with a binary copied to an OpenWrt router by hand: fw4's
// forward chain drops the phone's traffic to the LAN whatever homenet's
// own table accepts, and homenet status says so and how to fix it. With
// fw4's zone dispatch for tailscale0 added, as the fix's zone makes fw4
// generate, the LAN answers and the warning is gone.
func TestGatewayFW4Drop(t *testing.T) {
	n := newGwNet(t, gwOpts{Firewall: "nftables"})
	n.gwExec(t, gwFW4(""), "nft", "-f", "-")
	n.start(t)
	n.join(t)

	const warning = "drops traffic forwarded from tailscale0"
	status := func() string {
		out, err := n.hn.CLI("status")
		if err != nil {
			t.Fatalf("homenet status: %v\n%s", err, out)
		}
		return out
	}
	out := status()
	for _, want := range []string{"fw4:", warning, "Fix:", "uci set firewall.homenet=zone", "firewall.homenet_to_wan.dest=wan"} {
		if !strings.Contains(out, want) {
			t.Errorf("homenet status lacks %q:\n%s", want, out)
		}
	}
	if js, err := n.hn.CLI("status", "--json"); err != nil || !strings.Contains(js, `"code": "fw4-forward-drop"`) {
		t.Errorf("homenet status --json lacks the fw4 warning (err %v):\n%s", err, js)
	}
	// homenet's own accept rules are in place (the agent runs), yet fw4
	// rejects: the LAN stays out of reach.
	start := time.Now()
	if from, err := n.httpLAN(3 * time.Second); err == nil {
		t.Errorf("the phone reached the LAN host (as %s) through fw4's drop policy: the scenario tests nothing", from)
	}
	t.Logf("LAN host unreachable with fw4 dropping: checked in %v", time.Since(start).Round(time.Millisecond))
	if m := gwRejectCounter.FindStringSubmatch(n.gwExec(t, "", "nft", "list", "chain", "inet", "fw4", "handle_reject")); m == nil || m[1] == "0" {
		t.Errorf("fw4's TCP reject counted no packets (%v): something else kept the phone out", m)
	}
	t.Logf("homenet status with fw4 dropping:\n%s", out)

	// The fix: fw4 now sends tailscale0 to the homenet zone.
	n.gwExec(t, "", "nft", "delete", "table", "inet", "fw4")
	n.gwExec(t, gwFW4(`		iifname "tailscale0" jump forward_homenet comment "!fw4: Handle homenet IPv4/IPv6 forward traffic"`), "nft", "-f", "-")
	fixed := time.Now()
	lab.WaitFor(t, pathTimeout, "HTTP from the phone to the LAN host after the fix", func() error {
		_, err := n.httpLAN(3 * time.Second)
		return err
	})
	t.Logf("fw4 zone for tailscale0 → first HTTP page from the LAN host: %v", time.Since(fixed).Round(time.Millisecond))
	out = status()
	if strings.Contains(out, warning) || !strings.Contains(out, "fw4:") || !strings.Contains(out, "a zone takes the tunnel's traffic") {
		t.Errorf("homenet status after the fix:\n%s", out)
	}
	if err := n.hn.Stop(); err != nil {
		t.Errorf("homenet serve exited uncleanly on SIGTERM: %v", err)
	}
	if left := n.gwExec(t, "", "nft", "list", "table", "inet", "fw4"); !strings.Contains(left, `iifname "tailscale0" jump forward_homenet`) {
		t.Errorf("fw4's table changed under homenet:\n%s", left)
	}

}
