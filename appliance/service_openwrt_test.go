package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUCIRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Gateway.Enabled = true
	secs := openwrtSections(&cfg)[uciFirewallPath]
	tests := []struct {
		name     string
		before   string
		between  string // appended by the user after init added ours
		wantBack string // after removal; "" means before+between
	}{
		{name: "empty file", before: ""},
		{name: "stock firewall", before: openwrtFirewall},
		{name: "no final newline", before: "config defaults\n\toption input 'REJECT'", wantBack: "config defaults\n\toption input 'REJECT'\n"},
		{
			name:    "user sections and comments after ours survive",
			before:  openwrtFirewall,
			between: "\n# my port forward\nconfig redirect 'web'\n\toption src 'wan'\n\toption dest_port '80'\n",
		},
		{
			name:   "a user's own homenet-looking section without the tag stays",
			before: "config rule 'homenet_extra'\n\toption name 'mine'\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, uciFirewallPath)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(tt.before), 0o600)

			st, err := uciAdd(root, uciFirewallPath, secs)
			if err != nil || st.Result != ResultUpdated {
				t.Fatalf("uciAdd: %+v, %v", st, err)
			}
			added, _ := os.ReadFile(p)
			for _, s := range secs {
				if !strings.Contains(string(added), s.text()) {
					t.Errorf("section %s missing:\n%s", s.Name, added)
				}
			}
			if st, _ := uciAdd(root, uciFirewallPath, secs); st.Result != ResultUnchanged {
				t.Errorf("second uciAdd: %+v", st)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want the file's own 0600", fi.Mode().Perm())
			}
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(tt.between)
			f.Close()

			st, err = uciRemove(root, uciFirewallPath)
			if err != nil || st.Result != ResultRemoved {
				t.Fatalf("uciRemove: %+v, %v", st, err)
			}
			got, _ := os.ReadFile(p)
			want := tt.wantBack
			if want == "" {
				want = tt.before + tt.between
			}
			if string(got) != want {
				t.Errorf("after removal:\n%q\nwant:\n%q", got, want)
			}
			if st, _ := uciRemove(root, uciFirewallPath); st.Result != ResultAbsent {
				t.Errorf("second uciRemove: %+v", st)
			}
		})
	}
}

func TestOpenWrtSections(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Gateway.Enabled = false
	cfg.Relay.STUNListen = ""
	cfg.Server.Listen = ":9090"
	got := openwrtSections(&cfg)
	if _, ok := got[uciNetworkPath]; ok {
		t.Errorf("no gateway, yet a network section: %+v", got[uciNetworkPath])
	}
	var names []string
	for _, s := range got[uciFirewallPath] {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "homenet_control homenet_relay" {
		t.Errorf("firewall sections %v, want only the control and relay rules", names)
	}
	if !strings.Contains(got[uciFirewallPath][0].text(), "option dest_port '9090'") {
		t.Errorf("control rule:\n%s", got[uciFirewallPath][0].text())
	}
}

func TestProcdScript(t *testing.T) {
	got := string(ProcdScript(ProcdParams{Binary: "/usr/sbin/homenet", Config: "/etc/homenet/homenet.toml"}))
	for _, want := range []string{
		"#!/bin/sh /etc/rc.common\n# " + initMarker,
		"USE_PROCD=1\nSTART=80\n",
		"PROG=/usr/sbin/homenet\nCONFIG=/etc/homenet/homenet.toml\n",
		"\tprocd_set_param command \"$PROG\" serve --config \"$CONFIG\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("script does not contain %q:\n%s", want, got)
		}
	}
	// homenet serve sets its own memory limit (LimitMemory); a GOMEMLIMIT
	// here would override it.
	if strings.Contains(got, "GOMEMLIMIT") || strings.Contains(got, "procd_set_param env") {
		t.Errorf("script sets the environment:\n%s", got)
	}
	odd := string(ProcdScript(ProcdParams{Binary: "/opt/my homenet/homenet", Config: "/etc/it's.toml"}))
	if !strings.Contains(odd, "PROG='/opt/my homenet/homenet'\nCONFIG='/etc/it'\\''s.toml'\n") {
		t.Errorf("quoting:\n%s", odd)
	}
}
