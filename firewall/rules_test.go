//go:build linux

package firewall

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// These tests need neither root nor netfilter.

var (
	pfx4 = netip.MustParsePrefix("10.77.0.0/16")
	pfx6 = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)

func TestValidate(t *testing.T) {
	good := Rules{Tun: "tailscale0", TailnetPrefixes: []netip.Prefix{pfx4, pfx6}, MasqueradeLAN: true, WireGuardPort: 41641}
	tests := []struct {
		name    string
		edit    func(*Rules)
		wantErr string // "" means valid
	}{
		{"good", func(*Rules) {}, ""},
		{"zero", func(r *Rules) { *r = Rules{} }, ""},
		{"tun only", func(r *Rules) { *r = Rules{Tun: "tailscale0"} }, ""},
		{"no tun", func(r *Rules) { r.Tun = "" }, "Tun is required"},
		{"tun too long", func(r *Rules) { r.Tun = "tailscale0123456" }, "1 to 15 characters"},
		{"tun wildcard", func(r *Rules) { r.Tun = "tailscale+" }, `character '+'`},
		{"tun space", func(r *Rules) { r.Tun = "tail scale" }, `character ' '`},
		{"tun slash", func(r *Rules) { r.Tun = "ts/0" }, `character '/'`},
		{"tun dotdot", func(r *Rules) { r.Tun = ".." }, "reserved"},
		{"wan bad", func(r *Rules) { r.WANInterface = "eth0!" }, "WANInterface"},
		{"wan is tun", func(r *Rules) { r.WANInterface = "tailscale0" }, "is the tun"},
		{"host bits", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{netip.MustParsePrefix("10.77.1.2/16")} }, "host bits set (want 10.77.0.0/16)"},
		{"invalid prefix", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{{}} }, "invalid prefix"},
		{"zero bits", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} }, "whole address family"},
		{"4in6", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{netip.MustParsePrefix("::ffff:10.77.0.0/112")} }, "plain IPv4 or IPv6"},
		{"duplicate", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{pfx4, pfx4} }, "listed twice"},
		{"exit without wan", func(r *Rules) { r.MasqueradeLAN, r.ExitNode = false, true }, "needs WANInterface"},
		{"exit with wan", func(r *Rules) { r.MasqueradeLAN, r.ExitNode, r.WANInterface = false, true, "eth1" }, ""},
		{"exit with masquerade", func(r *Rules) { r.ExitNode = true }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			err := r.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestMasqueradePlan pins down which masquerade rules each combination of
// MasqueradeLAN, ExitNode and WANInterface yields.
func TestMasqueradePlan(t *testing.T) {
	base := Rules{Tun: "tailscale0", TailnetPrefixes: []netip.Prefix{pfx4, pfx6}, WANInterface: "eth1"}
	tests := []struct {
		name         string
		lan, exit    bool
		want4, want6 []string
	}{
		{"none", false, false, nil, nil},
		{"lan", true, false,
			[]string{"-A HN-POSTROUTING -s 10.77.0.0/16 ! -o tailscale0 -j MASQUERADE"},
			[]string{"-A HN-POSTROUTING -s fd7a:115c:a1e0::/48 ! -o tailscale0 -j MASQUERADE"}},
		{"lan+exit is lan", true, true,
			[]string{"-A HN-POSTROUTING -s 10.77.0.0/16 ! -o tailscale0 -j MASQUERADE"},
			[]string{"-A HN-POSTROUTING -s fd7a:115c:a1e0::/48 ! -o tailscale0 -j MASQUERADE"}},
		{"exit only", false, true,
			[]string{"-A HN-POSTROUTING -s 10.77.0.0/16 -o eth1 -j MASQUERADE"},
			[]string{"-A HN-POSTROUTING -s fd7a:115c:a1e0::/48 -o eth1 -j MASQUERADE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.MasqueradeLAN, r.ExitNode = tt.lan, tt.exit
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			p := plan(r)
			if got := iptSpecs("HN-POSTROUTING", p[chainPostrouting], false); !slices.Equal(got, tt.want4) {
				t.Errorf("v4 = %q, want %q", got, tt.want4)
			}
			if got := iptSpecs("HN-POSTROUTING", p[chainPostrouting], true); !slices.Equal(got, tt.want6) {
				t.Errorf("v6 = %q, want %q", got, tt.want6)
			}
		})
	}
}

// TestNoCGNATDrop: only our own prefixes are anti-spoofed, whatever the
// Rules; an ISP's CGNAT WAN in 100.64.0.0/10 must keep working.
func TestNoCGNATDrop(t *testing.T) {
	r := Rules{Tun: "tailscale0", TailnetPrefixes: []netip.Prefix{pfx4}, MasqueradeLAN: true, ExitNode: true, WireGuardPort: 41641}
	for id, rules := range plan(r) {
		for _, line := range iptSpecs(iptChains[id].name, rules, false) {
			if strings.Contains(line, "100.64.") {
				t.Errorf("rule mentions CGNAT: %s", line)
			}
		}
	}
}

func TestVariantOf(t *testing.T) {
	tests := map[string]string{
		"iptables v1.8.9 (nf_tables)\n": KindIPTablesNft,
		"iptables v1.8.7 (legacy)\n":    KindIPTablesLegacy,
		"iptables v1.6.1\n":             KindIPTablesLegacy,
		"something else\n":              "",
	}
	for in, want := range tests {
		if got := variantOf([]byte(in)); got != want {
			t.Errorf("variantOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewUnknownKind(t *testing.T) {
	if _, err := New("pf"); err == nil || !strings.Contains(err.Error(), `unknown backend "pf"`) {
		t.Fatalf("New(pf) = %v, want unknown backend error", err)
	}
}

func TestDetect(t *testing.T) {
	kind, why := Detect()
	if !slices.Contains([]string{KindIPTables, KindIPTablesNft, KindIPTablesLegacy, KindNftables}, kind) || why == "" {
		t.Fatalf("Detect() = %q, %q", kind, why)
	}
	t.Logf("Detect: %s (%s)", kind, why)
}

// TestRulesEqual: equal tells apart Rules that differ in any one field,
// since Intact trusts an earlier check only for equal Rules.
func TestRulesEqual(t *testing.T) {
	base := Rules{Tun: "tailscale0", TailnetPrefixes: []netip.Prefix{pfx4, pfx6}, WANInterface: "eth1", WireGuardPort: 41641}
	if n := reflect.TypeFor[Rules]().NumField(); n != 6 {
		t.Fatalf("Rules has %d fields; update equal and this test", n)
	}
	edits := map[string]func(*Rules){
		"Tun":             func(r *Rules) { r.Tun = "tailscale1" },
		"TailnetPrefixes": func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{pfx4} },
		"prefix order":    func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{pfx6, pfx4} },
		"MasqueradeLAN":   func(r *Rules) { r.MasqueradeLAN = true },
		"ExitNode":        func(r *Rules) { r.ExitNode = true },
		"WANInterface":    func(r *Rules) { r.WANInterface = "" },
		"WireGuardPort":   func(r *Rules) { r.WireGuardPort = 41642 },
	}
	for name, edit := range edits {
		r := base.clone()
		edit(&r)
		if base.equal(r) || r.equal(base) {
			t.Errorf("%s: equal = true for differing Rules", name)
		}
	}
	c := base.clone()
	if !base.equal(c) {
		t.Error("clone is not equal")
	}
	c.TailnetPrefixes[0] = pfx6
	if base.TailnetPrefixes[0] != pfx4 {
		t.Error("clone shares TailnetPrefixes")
	}
}
