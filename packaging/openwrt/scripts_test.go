package openwrt

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fw4 schema: the options fw4 reads per section type and what it accepts,
// from openwrt/firewall4's root/usr/share/ucode/fw4.uc (parse_zone,
// parse_forwarding, parse_rule and their parse_* value parsers) and
// https://openwrt.org/docs/guide-user/firewall/firewall_configuration.
// fw4 logs "specifies unknown option" for any other option, and skips a
// section whose value does not parse.

// valueCheck says what is wrong with a value, or "".
type valueCheck func(v string, zones []string) string

func oneOf(choices ...string) valueCheck {
	return func(v string, _ []string) string {
		if slices.Contains(choices, strings.ToLower(v)) {
			return ""
		}
		return fmt.Sprintf("not one of %v", choices)
	}
}

var (
	fw4Bool   = oneOf("1", "0", "on", "off", "true", "false", "yes", "no")
	fw4Policy = oneOf("accept", "reject", "drop")
	fw4Target = oneOf("accept", "reject", "drop", "notrack", "helper", "mark", "dscp", "dnat", "snat", "masquerade")
	fw4Family = oneOf("any", "all", "*", "inet", "ipv4", "ipv6", "4", "6")
	fw4Proto  = oneOf("tcp", "udp", "tcpudp", "icmp", "ipv6-icmp", "icmpv6", "esp", "ah", "gre", "sctp", "udplite", "all", "any", "*")
	fw4Ident  = pattern(`^[a-zA-Z_.][a-zA-Z0-9/_.-]*$`)
	fw4String = pattern(`.`)
	fw4Device = pattern(`^!?[a-zA-Z0-9_.@+-]+$`)
)

func pattern(re string) valueCheck {
	rx := regexp.MustCompile(re)
	return func(v string, _ []string) string {
		if rx.MatchString(v) {
			return ""
		}
		return "does not match " + re
	}
}

// fw4Port is fw4's parse_port: a port or a range, 0 to 65535.
func fw4Port(v string, _ []string) string {
	lo, hi, isRange := strings.Cut(strings.TrimPrefix(v, "!"), "-")
	a, errA := strconv.ParseUint(lo, 10, 16)
	b, errB := a, error(nil)
	if isRange {
		b, errB = strconv.ParseUint(hi, 10, 16)
	}
	if errA != nil || errB != nil || a > b {
		return "not a port or port range 0-65535"
	}
	return ""
}

// fw4ZoneRef is parse_zone_ref: "*" or the name of a zone.
func fw4ZoneRef(v string, zones []string) string {
	if v == "*" || slices.Contains(zones, v) {
		return ""
	}
	return fmt.Sprintf("names no zone (zones: %v)", zones)
}

// fw4Option is one option of a section type.
type fw4Option struct {
	check    valueCheck
	list     bool // may be a list
	required bool
}

// fw4Schema holds the options of the section types homenet writes. Options
// fw4 marks UNSUPPORTED or DEPRECATED (extra, custom_chains, _name,
// monthdays) are left out: fw4 ignores them with a warning.
var fw4Schema = map[string]map[string]fw4Option{
	"zone": {
		"enabled": {check: fw4Bool}, "name": {check: fw4Ident, required: true}, "family": {check: fw4Family},
		"network": {check: fw4Device, list: true}, "device": {check: fw4Device, list: true}, "subnet": {check: fw4String, list: true},
		"input": {check: fw4Policy}, "output": {check: fw4Policy}, "forward": {check: fw4Policy},
		"masq": {check: fw4Bool}, "masq_allow_invalid": {check: fw4Bool}, "masq_src": {check: fw4String, list: true},
		"masq_dest": {check: fw4String, list: true}, "masq6": {check: fw4Bool}, "mtu_fix": {check: fw4Bool},
		"log": {check: pattern(`^[0-9]+$`)}, "log_limit": {check: fw4String}, "auto_helper": {check: fw4Bool},
		"helper": {check: fw4String, list: true}, "counter": {check: fw4Bool},
	},
	"forwarding": {
		"enabled": {check: fw4Bool}, "name": {check: fw4String}, "family": {check: fw4Family},
		"src": {check: fw4ZoneRef, required: true}, "dest": {check: fw4ZoneRef, required: true},
	},
	"rule": {
		"enabled": {check: fw4Bool}, "name": {check: fw4String}, "family": {check: fw4Family},
		"src": {check: fw4ZoneRef}, "dest": {check: fw4ZoneRef}, "device": {check: fw4Device}, "direction": {check: oneOf("in", "ingress", "out", "egress")},
		"ipset": {check: fw4String}, "helper": {check: fw4String}, "set_helper": {check: fw4String},
		"proto": {check: fw4Proto, list: true}, "src_ip": {check: fw4String, list: true}, "src_mac": {check: fw4String, list: true},
		"src_port": {check: fw4Port, list: true}, "dest_ip": {check: fw4String, list: true}, "dest_port": {check: fw4Port, list: true},
		"icmp_type": {check: fw4String, list: true}, "limit": {check: fw4String}, "limit_burst": {check: pattern(`^[0-9]+$`)},
		"utc_time": {check: fw4Bool}, "start_date": {check: fw4String}, "stop_date": {check: fw4String},
		"start_time": {check: fw4String}, "stop_time": {check: fw4String}, "weekdays": {check: fw4String},
		"mark": {check: fw4String}, "set_mark": {check: fw4String}, "set_xmark": {check: fw4String},
		"dscp": {check: fw4String}, "set_dscp": {check: fw4String}, "counter": {check: fw4Bool},
		"log": {check: fw4String}, "log_limit": {check: fw4String}, "target": {check: fw4Target},
	},
}

// netifdInterface are the options of network.homenet that matter for a
// device-only interface (netifd's interface and proto none).
var netifdInterface = map[string]fw4Option{
	"proto": {check: oneOf("none")}, "device": {check: fw4Device}, "auto": {check: fw4Bool}, "disabled": {check: fw4Bool},
}

// homenetTag is the option that marks homenet's sections for removal. fw4
// does not know it and says so on each reload ("Section … specifies
// unknown option 'homenet_managed'"), harmlessly: the section still
// applies. It is the one option allowed outside the schema.
const homenetTag = "homenet_managed"

// schemaErrors checks a UCI section against a schema.
func schemaErrors(s *uciSec, schema map[string]fw4Option, zones []string) []string {
	var errs []string
	for _, o := range s.Opts {
		if o.Name == homenetTag {
			if v := strings.Join(o.Values, " "); v != "1" {
				errs = append(errs, fmt.Sprintf("%s=%q, want 1", o.Name, v))
			}
			continue
		}
		spec, ok := schema[o.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("unknown option %s for config %s", o.Name, s.Type))
			continue
		case (o.List || len(o.Values) > 1) && !spec.list:
			errs = append(errs, fmt.Sprintf("option %s must not be a list", o.Name))
		}
		for _, v := range o.Values {
			words := []string{v}
			if spec.list {
				words = strings.Fields(v) // an option of a list type may hold several, space-separated
			}
			for _, w := range words {
				if msg := spec.check(w, zones); msg != "" {
					errs = append(errs, fmt.Sprintf("%s=%q: %s", o.Name, w, msg))
				}
			}
		}
	}
	for name, spec := range schema {
		if spec.required && s.opt(name) == nil {
			errs = append(errs, "missing required option "+name)
		}
	}
	return errs
}

// checkSchema checks homenet's sections (named homenet or homenet_* and
// tagged homenet_managed=1) against fw4's and netifd's schemas, and
// returns them. Untagged ones are the user's.
func checkSchema(t *testing.T, st *uciStore) map[string]*uciSec {
	t.Helper()
	var zones []string
	for _, s := range st.Sections {
		if s.Config == "firewall" && s.Type == "zone" {
			if v, ok := s.Get("name"); ok {
				zones = append(zones, v)
			}
		}
	}
	ours := map[string]*uciSec{}
	for _, s := range st.Sections {
		if tag, _ := s.Get(homenetTag); tag != "1" || (s.Name != "homenet" && !strings.HasPrefix(s.Name, "homenet_")) {
			continue
		}
		ours[s.Config+"."+s.Name] = s
		schema := fw4Schema[s.Type]
		if s.Config == "network" && s.Type == "interface" {
			schema = netifdInterface
		}
		if schema == nil || (s.Config != "firewall" && s.Config != "network") {
			t.Errorf("%s.%s: section type %s has no schema here", s.Config, s.Name, s.Type)
			continue
		}
		for _, e := range schemaErrors(s, schema, zones) {
			t.Errorf("%s.%s (%s): %s", s.Config, s.Name, s.Type, e)
		}
	}
	return ours
}

// TestSchemaCheckFails makes sure the schema check catches what fw4 would
// warn about or skip.
func TestSchemaCheckFails(t *testing.T) {
	zones := []string{"lan", "wan", "homenet"}
	tests := []struct {
		typ  string
		opts [][2]string
		want string
	}{
		{"zone", [][2]string{{"name", "homenet"}, {"masquerade", "1"}}, "unknown option masquerade"},
		{"zone", [][2]string{{"name", "homenet"}, {"input", "ALLOW"}}, `input="ALLOW": not one of`},
		{"zone", [][2]string{{"input", "ACCEPT"}}, "missing required option name"},
		{"zone", [][2]string{{"name", "home net"}}, `name="home net"`},
		{"forwarding", [][2]string{{"src", "homenet"}, {"dest", "guest"}}, `dest="guest": names no zone`},
		{"rule", [][2]string{{"dest_port", "80000"}}, `dest_port="80000": not a port`},
		{"rule", [][2]string{{"proto", "tcp"}, {"target", "ALLOW"}}, `target="ALLOW"`},
		{"rule", [][2]string{{"target", "ACCEPT"}, {homenetTag, "yes"}}, `homenet_managed="yes"`},
	}
	for _, tt := range tests {
		s := &uciSec{Config: "firewall", Name: "homenet_x", Type: tt.typ}
		for _, kv := range tt.opts {
			s.Opts = append(s.Opts, &uciOpt{Name: kv[0], Values: []string{kv[1]}})
		}
		errs := strings.Join(schemaErrors(s, fw4Schema[tt.typ], zones), "; ")
		if !strings.Contains(errs, tt.want) {
			t.Errorf("%s %v: errors %q, want one containing %q", tt.typ, tt.opts, errs, tt.want)
		}
	}
	good := &uciSec{Config: "firewall", Name: "homenet", Type: "zone", Opts: []*uciOpt{
		{Name: "name", Values: []string{"homenet"}}, {Name: "network", Values: []string{"homenet"}, List: true},
		{Name: "input", Values: []string{"ACCEPT"}}, {Name: "masq", Values: []string{"1"}}}}
	if errs := schemaErrors(good, fw4Schema["zone"], zones); len(errs) > 0 {
		t.Errorf("a valid zone: %v", errs)
	}
}

// configWith is the package's config with the listen lines replaced.
func configWith(t *testing.T, repl ...string) string {
	t.Helper()
	c := string(DefaultConfig())
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(c, repl[i]) {
			t.Fatalf("the package's config has no %q", repl[i])
		}
		c = strings.Replace(c, repl[i], repl[i+1], 1)
	}
	return c
}

// wantRule is a WAN rule the uci-defaults script should add.
type wantRule struct{ section, title, proto, port string }

func TestUCIDefaultsScript(t *testing.T) {
	defaults := []wantRule{
		{"homenet_control", "Allow-homenet-control", "tcp", "8080"},
		{"homenet_relay", "Allow-homenet-relay", "tcp", "8443"},
		{"homenet_stun", "Allow-homenet-STUN", "udp", "3478"},
		{"homenet_wireguard", "Allow-homenet-WireGuard", "udp", "41641"},
	}
	tests := []struct {
		name   string
		config string // "" for the package's
		rules  []wantRule
	}{
		{name: "package config", rules: defaults},
		{
			name:   "other ports",
			config: configWith(t, `listen = ":8080"`, `listen = ":9090"`, `listen = ":8443"`, `listen = ":9443"`, `stun_listen = ":3478"`, `stun_listen = ":3479"`),
			rules: []wantRule{
				{"homenet_control", "Allow-homenet-control", "tcp", "9090"},
				{"homenet_relay", "Allow-homenet-relay", "tcp", "9443"},
				{"homenet_stun", "Allow-homenet-STUN", "udp", "3479"},
				defaults[3],
			},
		},
		{
			name:   "relay off",
			config: configWith(t, "[relay]\nenabled = true", "[relay]\nenabled = false"),
			rules:  []wantRule{defaults[0], defaults[3]},
		},
		{
			name:   "config does not load: the package's ports",
			config: "this is not TOML [",
			rules:  defaults,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newOpenWrtRoot(t, cmpOr(tt.config, string(DefaultConfig())))
			script := filepath.Join(r.dir, "etc/uci-defaults/90_homenet")
			first := r.sh(script)
			st := r.store()
			ours := checkSchema(t, st)

			want := map[string]string{
				"network.homenet":           "interface",
				"firewall.homenet":          "zone",
				"firewall.homenet_to_lan":   "forwarding",
				"firewall.homenet_from_lan": "forwarding",
				"firewall.homenet_to_wan":   "forwarding",
			}
			for _, w := range tt.rules {
				want["firewall."+w.section] = "rule"
			}
			for k, typ := range want {
				if s := ours[k]; s == nil || s.Type != typ {
					t.Errorf("%s: %+v, want a %s", k, s, typ)
				}
			}
			for k := range ours {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected section %s", k)
				}
			}
			for _, w := range tt.rules {
				s := ours["firewall."+w.section]
				if s == nil {
					continue
				}
				for opt, v := range map[string]string{"name": w.title, "src": "wan", "proto": w.proto, "dest_port": w.port, "target": "ACCEPT"} {
					if got, _ := s.Get(opt); got != v {
						t.Errorf("%s.%s = %q, want %q", w.section, opt, got, v)
					}
				}
			}
			zone := ours["firewall.homenet"]
			for opt, v := range map[string]string{"name": "homenet", "network": "homenet", "forward": "ACCEPT", "masq": "1", "mtu_fix": "1"} {
				if got, _ := zone.Get(opt); got != v {
					t.Errorf("zone %s = %q, want %q", opt, got, v)
				}
			}
			if dev, _ := ours["network.homenet"].Get("device"); dev != "tailscale0" {
				t.Errorf("network.homenet.device = %q, want tailscale0", dev)
			}
			if len(st.Dirty) > 0 {
				t.Errorf("uncommitted changes to %v", st.Dirty)
			}
			for _, c := range []string{"homenet ports --config ROOT/etc/homenet/homenet.toml", "/etc/init.d/network reload", "/etc/init.d/firewall reload"} {
				if !slices.Contains(first, c) {
					t.Errorf("first run did not call %q; calls:\n%s", c, strings.Join(first, "\n"))
				}
			}
			// The stock sections are untouched.
			for _, s := range stockUCI().Sections {
				got := st.section(s.Config, s.Name)
				if got == nil || (&uciStore{Sections: []*uciSec{got}}).text() != (&uciStore{Sections: []*uciSec{s}}).text() {
					t.Errorf("stock section %s.%s changed or gone", s.Config, s.Name)
				}
			}

			// Run again (as after a sysupgrade): nothing changes.
			for _, c := range r.sh(script) {
				if strings.HasPrefix(c, "uci set") || strings.HasPrefix(c, "uci add_list") || strings.HasPrefix(c, "uci delete") {
					t.Errorf("second run changed something: %s", c)
				}
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestInitScriptActions runs the procd init script's actions the way
// OpenWrt does (/bin/sh /etc/rc.common /etc/init.d/homenet ACTION) and
// checks what it asks of procd and uci.
func TestInitScriptActions(t *testing.T) {
	r := newOpenWrtRoot(t, string(DefaultConfig()))
	r.sh(filepath.Join(r.dir, "etc/uci-defaults/90_homenet"))
	// A rule of the user's own, tagged like ours but not named so, and
	// one named like ours without the tag: wan_rules leaves both alone.
	r.sh("-c", `uci set firewall.myrule=rule; uci set firewall.myrule.dest_port=8080; uci set firewall.myrule.homenet_managed=1
uci set firewall.homenet_extra=rule; uci set firewall.homenet_extra.dest_port=3478; uci commit firewall`)

	r.rc("enable")
	for _, l := range []string{"S80homenet", "K10homenet"} {
		if target, err := os.Readlink(filepath.Join(r.dir, "etc/rc.d", l)); err != nil || target != "../init.d/homenet" {
			t.Errorf("enable: /etc/rc.d/%s → %q, %v; want ../init.d/homenet", l, target, err)
		}
	}
	r.rc("enabled")

	start := r.rc("start")
	bin, config := "ROOT/standin/homenet", "ROOT"+ConfigPath
	wantProcd := []string{
		"procd_open_service homenet ROOT" + InitPath,
		"procd_open_instance",
		"procd_set_param command " + bin + " serve --config " + config,
		"procd_set_param respawn 3600 5 5",
		"procd_set_param stdout 1",
		"procd_set_param stderr 1",
		"procd_set_param file " + config,
		"procd_close_instance",
		"procd_close_service set",
	}
	if got := filterPrefix(start, "procd_"); !slices.Equal(got, wantProcd) {
		t.Errorf("start: procd calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantProcd, "\n"))
	}
	if !slices.Contains(start, "homenet ports --config "+config) {
		t.Errorf("start did not read the ports: %v", start)
	}
	if got := filterPrefix(start, "uci set", "uci commit", "/etc/init.d/"); len(got) > 0 {
		t.Errorf("start with the rules on the configured ports changed them: %v", got)
	}

	// The ports change: the next start (or reload) moves the rules.
	os.WriteFile(filepath.Join(r.dir, ConfigPath), []byte(configWith(t, `listen = ":8080"`, `listen = ":9090"`, `stun_listen = ":3478"`, `stun_listen = ":3479"`)), 0o600)
	reload := r.rc("reload")
	want := []string{
		"uci set firewall.homenet_control.proto=tcp",
		"uci set firewall.homenet_control.dest_port=9090",
		"uci set firewall.homenet_stun.proto=udp",
		"uci set firewall.homenet_stun.dest_port=3479",
		"uci commit firewall",
		"/etc/init.d/firewall reload",
	}
	if got := filterPrefix(reload, "uci set", "uci commit", "/etc/init.d/"); !slices.Equal(got, want) {
		t.Errorf("reload after a port change:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := filterPrefix(reload, "procd_set_param command"); len(got) != 1 {
		t.Errorf("reload did not hand procd the instance again: %v", reload)
	}
	st := r.store()
	checkSchema(t, st)
	for sec, port := range map[string]string{"homenet_control": "9090", "homenet_stun": "3479", "homenet_extra": "3478", "myrule": "8080"} {
		if got, _ := st.section("firewall", sec).Get("dest_port"); got != port {
			t.Errorf("after the port change, firewall.%s.dest_port = %q, want %q", sec, got, port)
		}
	}
	if len(st.Dirty) > 0 {
		t.Errorf("uncommitted changes to %v", st.Dirty)
	}
	if got := filterPrefix(r.rc("wan_rules"), "uci set", "/etc/init.d/"); len(got) > 0 {
		t.Errorf("wan_rules again changed %v", got)
	}

	if got, want := r.rc("stop"), []string{"procd_kill homenet"}; !slices.Equal(filterPrefix(got, "procd_"), want) {
		t.Errorf("stop: %v, want %v", got, want)
	}
	r.rc("disable")
	if _, err := os.Lstat(filepath.Join(r.dir, "etc/rc.d/S80homenet")); !os.IsNotExist(err) {
		t.Errorf("disable left /etc/rc.d/S80homenet: %v", err)
	}
	if help := strings.Join(r.rc("help"), "\n"); help != "" {
		t.Errorf("help recorded calls: %s", help)
	}
}

// filterPrefix returns the calls that start with one of the prefixes.
func filterPrefix(calls []string, prefixes ...string) []string {
	var out []string
	for _, c := range calls {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p) {
				out = append(out, strings.TrimSpace(c))
				break
			}
		}
	}
	return out
}
