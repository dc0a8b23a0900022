package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"homenet/appliance"
	"homenet/firewall"
)

func TestPorts(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "homenet.toml")
	os.WriteFile(config, []byte("state_dir = \"state\"\n[server]\nlisten = \":9090\"\n[relay]\nenabled = true\nlisten = \":9443\"\nstun_listen = \"\"\n[gateway]\nenabled = true\n"), 0o600)
	code, stdout, stderr := runCLI(t, "ports", "--config", config)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	want := []string{"tcp 9090 control control", "tcp 9443 relay relay", "udp 41641 WireGuard WireGuard"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("homenet ports:\n%s\nwant (as fields):\n%s", stdout, strings.Join(want, "\n"))
	}
	code, stdout, _ = runCLI(t, "ports", "--config", config, "--json")
	var ps []appliance.Port
	if err := json.Unmarshal([]byte(stdout), &ps); code != exitOK || err != nil || len(ps) != 3 || ps[0].Port != "9090" {
		t.Errorf("homenet ports --json: code %d, %v, %+v", code, err, ps)
	}
}

// TestPrintFW4 prints the "fw4" part of the status as it arrives from the
// server: JSON, decoded into a map.
func TestPrintFW4(t *testing.T) {
	tests := []struct {
		name string
		st   appliance.FW4Status
		want []string // "" for no output
	}{
		{"no fw4", appliance.FW4Status{}, nil},
		{"drops", appliance.FW4Status{FW4: firewall.FW4{Present: true, ForwardPolicy: "drop"},
			Warning: &appliance.Warning{Code: "fw4-forward-drop", Message: "fw4 drops it.", Fix: "uci set firewall.homenet=zone"}},
			[]string{"fw4:", "fw4 drops it.", "Fix:", "uci set firewall.homenet=zone"}},
		{"zone", appliance.FW4Status{FW4: firewall.FW4{Present: true, ForwardPolicy: "drop", TunMatched: true}},
			[]string{"fw4:", "a zone takes the tunnel's traffic (forward policy drop)"}},
		{"error", appliance.FW4Status{Error: "operation not permitted"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.st)
			var v any
			json.Unmarshal(b, &v)
			var out strings.Builder
			printFW4(&out, v)
			if len(tt.want) == 0 && out.Len() > 0 {
				t.Errorf("printed %q, want nothing", out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
		})
	}
}
