package uci

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// openwrtFirewall is the start of /etc/config/firewall as OpenWrt 24.10
// ships it.
const openwrtFirewall = `
config defaults
	option syn_flood	1
	option input		REJECT
	option output		ACCEPT
	option forward		REJECT

config zone
	option name		lan
	list   network		'lan'
	option input		ACCEPT
	option output		ACCEPT
	option forward		ACCEPT

config zone
	option name		wan
	list   network		'wan'
	list   network		'wan6'
	option input		REJECT
	option output		ACCEPT
	option forward		REJECT
	option masq		1
	option mtu_fix		1

config forwarding
	option src		lan
	option dest		wan
`

func TestParse(t *testing.T) {
	text := `# comment
package dhcp
option orphan 'ignored'

config dnsmasq
	option domain 'lan' # trailing comment
	option local "/lan/"
	option bare value
	option joined 'it'\''s'" \"quoted\""
	option hash 'a#b'
	list server '/example.com/10.0.0.1'
	list server /corp/10.0.0.2
	option broken 'unterminated
	option short
	bogus line here

config dhcp 'lan'
	option interface lan

config 'broken
	option lost 'not in the lan section'
`
	want := []Section{
		{
			Type: "dnsmasq",
			Options: map[string]string{
				"domain": "lan", "local": "/lan/", "bare": "value",
				"joined": `it's "quoted"`, "hash": "a#b",
			},
			Lists: map[string][]string{"server": {"/example.com/10.0.0.1", "/corp/10.0.0.2"}},
		},
		{Type: "dhcp", Name: "lan", Options: map[string]string{"interface": "lan"}, Lists: map[string][]string{}},
	}
	got := Parse(text)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if got := Parse(openwrtFirewall); len(got) != 4 || got[1].Options["forward"] != "ACCEPT" || !slices.Equal(got[2].Lists["network"], []string{"wan", "wan6"}) || got[3].Options["dest"] != "wan" {
		t.Errorf("Parse(OpenWrt's firewall) = %+v", got)
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		line string
		want []string // nil for an unterminated quote
	}{
		{"", []string{}},
		{"  option  a   b ", []string{"option", "a", "b"}},
		{`option a 'b c'`, []string{"option", "a", "b c"}},
		{`option a "b \"c\""`, []string{"option", "a", `b "c"`}},
		{`option a 'it'\''s'`, []string{"option", "a", "it's"}},
		{`option a b\ c`, []string{"option", "a", "b c"}},
		{"option a b # c", []string{"option", "a", "b"}},
		{"option a b#c", []string{"option", "a", "b#c"}},
		{"option a 'b", nil},
		{`option a "b`, nil},
	}
	for _, tt := range tests {
		got, ok := Fields(tt.line)
		if ok != (tt.want != nil) || (ok && !slices.Equal(got, tt.want)) {
			t.Errorf("Fields(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

// quote is how uci export writes a word: in single quotes, each quote
// inside closed, escaped and reopened.
func quote(w string) string {
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

func FuzzParse(f *testing.F) {
	f.Add(openwrtFirewall)
	f.Add("config dnsmasq\n\toption local '/lan/home/'\n\tlist local \"/x/\"\n")
	f.Add("config 'a\noption \"b\\\" c\nlist\\ x '' \"\"\n")
	f.Add("\x00\xff config\r\n\toption domain 'LAN.'\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, s := range Parse(text) {
			if s.Type == "" || s.Options == nil || s.Lists == nil {
				t.Errorf("section without a type: %+v", s)
			}
		}
		// Every line's words, written back as uci export writes them,
		// read back the same.
		for _, line := range strings.Split(text, "\n") {
			words, ok := Fields(line)
			if !ok {
				continue
			}
			var b strings.Builder
			for _, w := range words {
				b.WriteString(quote(w) + " ")
			}
			again, ok := Fields(b.String())
			if !ok || !slices.Equal(again, words) {
				t.Errorf("Fields(%q) = %q; written back as %q, read back as %q, %v", line, words, b.String(), again, ok)
			}
		}
	})
}
