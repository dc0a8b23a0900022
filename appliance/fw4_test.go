package appliance

import (
	"strings"
	"testing"

	"homenet/firewall"
)

func TestFW4Warning(t *testing.T) {
	drop := firewall.FW4{Present: true, ForwardPolicy: "drop"}
	tests := []struct {
		name     string
		fw       firewall.FW4
		exitNode bool
		want     []string // in Message+Fix; nil for no warning
	}{
		{name: "no fw4", fw: firewall.FW4{}},
		{name: "accept", fw: firewall.FW4{Present: true, ForwardPolicy: "accept"}},
		{name: "zone", fw: firewall.FW4{Present: true, ForwardPolicy: "drop", TunMatched: true}},
		{name: "drop, subnet router", fw: drop, want: []string{"policy drop", "phones cannot reach the LAN.", "uci set firewall.homenet=zone", "firewall.homenet_to_lan.dest=lan", "/etc/init.d/firewall reload"}},
		{name: "drop, exit node", fw: drop, exitNode: true, want: []string{"exit node", "firewall.homenet_to_wan.dest=wan", "network.homenet.device=tailscale0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := fw4Warning(tt.fw, tt.exitNode)
			if (w != nil) != (tt.want != nil) {
				t.Fatalf("warning %+v, want one: %v", w, tt.want != nil)
			}
			if w == nil {
				return
			}
			text := w.Message + " " + w.Fix
			for _, s := range tt.want {
				if !strings.Contains(text, s) {
					t.Errorf("warning lacks %q:\n%s", s, text)
				}
			}
			if !tt.exitNode && strings.Contains(text, "homenet_to_wan") {
				t.Errorf("fix adds the exit node's forwarding without an exit node:\n%s", text)
			}
			if w.Code != "fw4-forward-drop" {
				t.Errorf("code %q", w.Code)
			}
		})
	}
}
