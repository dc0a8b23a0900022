//go:build linux

package firewall

import "testing"

func TestIfnameMatches(t *testing.T) {
	tests := []struct {
		data string
		name string
		want bool
	}{
		{"tailscale0\x00", "tailscale0", true},
		{"tailscale0\x00\x00\x00\x00\x00\x00", "tailscale0", true}, // padded to IFNAMSIZ
		{"tailscale1\x00", "tailscale0", false},
		{"tailscale\x00", "tailscale0", false}, // exact, not a prefix
		{"tailscale", "tailscale0", true},      // iifname "tailscale*"
		{"br-", "tailscale0", false},
		{"", "tailscale0", false},
	}
	for _, tt := range tests {
		if got := ifnameMatches([]byte(tt.data), tt.name); got != tt.want {
			t.Errorf("ifnameMatches(%q, %q) = %v, want %v", tt.data, tt.name, got, tt.want)
		}
	}
}

// fw4Ruleset is the forward chain fw4 generates for a stock router
// (firewall4's tests/01_configuration/01_ruleset), with ZONES standing for
// the zone dispatch rules and POLICY for the policy.
func fw4Ruleset(policy, zones string) string {
	return `table inet fw4 {
	chain forward {
		type filter hook forward priority filter; policy ` + policy + `;
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle forwarded flows"
		iifname "br-lan" jump forward_lan comment "!fw4: Handle lan IPv4/IPv6 forward traffic"
` + zones + `
		jump handle_reject
	}
	chain handle_reject {
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"
	}
	chain forward_lan {
		jump accept_to_lan
	}
	chain forward_homenet {
		jump accept_to_lan
	}
	chain accept_to_lan {
		oifname "br-lan" counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}
}
`
}

// TestCheckFW4 loads fw4-like rulesets into the test's own network
// namespace and reads them back.
func TestCheckFW4(t *testing.T) {
	if netnsSkip != "" {
		t.Skip(netnsSkip)
	}
	need(t, "nft")
	tests := []struct {
		name    string
		ruleset string // "" for no fw4 table
		want    FW4
		drops   bool
	}{
		{name: "no fw4", ruleset: "", want: FW4{}},
		{name: "other table only", ruleset: systemNft, want: FW4{}},
		{name: "fw4 drop, no zone for the tunnel", ruleset: fw4Ruleset("drop", ""),
			want: FW4{Present: true, ForwardPolicy: "drop"}, drops: true},
		{name: "fw4 drop, the tunnel in a zone", ruleset: fw4Ruleset("drop", `		iifname "tailscale0" jump forward_homenet`),
			want: FW4{Present: true, ForwardPolicy: "drop", TunMatched: true}},
		{name: "fw4 drop, a zone of several devices", ruleset: fw4Ruleset("drop", `		iifname { "wg0", "tailscale0" } jump forward_homenet`),
			want: FW4{Present: true, ForwardPolicy: "drop", TunMatched: true}},
		{name: "fw4 drop, a wildcard zone", ruleset: fw4Ruleset("drop", `		iifname "tailscale*" jump forward_homenet`),
			want: FW4{Present: true, ForwardPolicy: "drop", TunMatched: true}},
		{name: "fw4 drop, another tunnel's zone", ruleset: fw4Ruleset("drop", `		iifname "tailscale1" jump forward_homenet`),
			want: FW4{Present: true, ForwardPolicy: "drop"}, drops: true},
		{name: "fw4 drop, the tunnel matched as output only", ruleset: fw4Ruleset("drop", `		oifname "tailscale0" jump forward_homenet`),
			want: FW4{Present: true, ForwardPolicy: "drop"}, drops: true},
		{name: "fw4 accept", ruleset: fw4Ruleset("accept", ""),
			want: FW4{Present: true, ForwardPolicy: "accept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resetNetfilter(t)
			t.Cleanup(func() { resetNetfilter(t) })
			if tt.ruleset != "" {
				runStdin(t, tt.ruleset, "nft", "-f", "-")
			}
			got, err := CheckFW4("tailscale0")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || got.DropsForward() != tt.drops {
				t.Errorf("CheckFW4 = %+v (drops %v), want %+v (drops %v)", got, got.DropsForward(), tt.want, tt.drops)
			}
		})
	}
}
