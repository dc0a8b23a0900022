package appliance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"homenet/internal/uci"
)

// ProcdParams fill in ProcdScript.
type ProcdParams struct {
	Binary string // the homenet binary, such as /usr/sbin/homenet
	Config string // the config file, such as /etc/homenet/homenet.toml
	// Owner is the comment that says who wrote the script. homenet init
	// writes its marker, which "homenet uninstall" looks for; the package
	// says that it owns the file, so that init leaves it alone.
	Owner string
}

// procdText is the template of ProcdScript. It sets no GOMEMLIMIT:
// homenet serve sets its own limit from the RAM (LimitMemory).
const procdText = `#!/bin/sh /etc/rc.common
# {{.Owner}}
# homenet: Tailscale-compatible control server, DERP relay and subnet router.

# shellcheck disable=SC2034 # rc.common reads USE_PROCD, START, STOP and EXTRA_*
USE_PROCD=1
START=80
STOP=10
EXTRA_COMMANDS="wan_rules"
EXTRA_HELP="	wan_rules	Point homenet's fw4 WAN rules at the configured ports"

PROG={{.Binary}}
CONFIG={{.Config}}

# wan_rules points the fw4 WAN rules homenet added (firewall.homenet_*,
# tagged homenet_managed) at the ports the config listens on ("homenet
# ports"), so that a changed listen port needs only a restart, and reloads
# the firewall when one changed. Rules homenet did not add stay as they are.
wan_rules() {
	command -v uci >/dev/null || return 0
	ports=$("$PROG" ports --config "$CONFIG") || return 0
	changed=
	while read -r proto port name _; do
		[ -n "$name" ] || continue
		rule=firewall.homenet_$(echo "$name" | tr '[:upper:]' '[:lower:]')
		[ "$(uci -q get "$rule.homenet_managed")" = 1 ] || continue
		[ "$(uci -q get "$rule.proto")" = "$proto" ] && [ "$(uci -q get "$rule.dest_port")" = "$port" ] && continue
		uci set "$rule.proto=$proto"
		uci set "$rule.dest_port=$port"
		changed=1
	done <<EOF
$ports
EOF
	[ -n "$changed" ] || return 0
	uci commit firewall
	"$IPKG_INSTROOT/etc/init.d/firewall" reload
}

start_service() {
	wan_rules
	procd_open_instance
	procd_set_param command "$PROG" serve --config "$CONFIG"
	procd_set_param respawn 3600 5 5
	procd_set_param stdout 1
	procd_set_param stderr 1
	procd_set_param file "$CONFIG"
	procd_close_instance
}
`

// ProcdScript returns the OpenWrt init script (/etc/init.d/homenet) that
// runs homenet under procd: started late in boot (START=80), restarted when
// it dies, reloaded when the config file changes, logging to logread. Each
// start first points homenet's fw4 WAN rules at the configured ports. The
// OpenWrt package ships this same text with its own Owner
// (packaging/openwrt).
func ProcdScript(p ProcdParams) []byte {
	if p.Owner == "" {
		p.Owner = initMarker + `; "homenet uninstall" removes it.`
	}
	p.Binary, p.Config = shellQuote(p.Binary), shellQuote(p.Config)
	// Parsed here, not at package init: every homenet command, serve
	// included, would pay for it at start, and only init needs it.
	t := template.Must(template.New("procd").Parse(procdText))
	var b bytes.Buffer
	t.Execute(&b, p)
	return b.Bytes()
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// procdInstall enables the init script and has homenet running: restarted
// when the script or config changed, started when it was not running.
func procdInstall(ctx context.Context, run Runner, changed bool) ([]Step, error) {
	var steps []Step
	step := func(result, detail string) {
		steps = append(steps, Step{What: "procd", Target: procdScriptPath, Result: result, Detail: detail})
	}
	if _, err := run.Run(ctx, procdScriptPath, "enabled"); err == nil {
		step(ResultUnchanged, "enabled")
	} else if !exitedNonZero(err) {
		return steps, err
	} else {
		if _, err := run.Run(ctx, procdScriptPath, "enable"); err != nil {
			return steps, err
		}
		step(ResultDone, "enabled: starts at boot")
	}
	_, err := run.Run(ctx, procdScriptPath, "running")
	running := err == nil
	switch {
	case running && changed:
		if _, err := run.Run(ctx, procdScriptPath, "restart"); err != nil {
			return steps, err
		}
		step(ResultDone, "restarted with the new configuration")
	case running:
		step(ResultUnchanged, "running")
	default:
		if _, err := run.Run(ctx, procdScriptPath, "start"); err != nil {
			return steps, err
		}
		step(ResultDone, "started")
	}
	return steps, nil
}

// procdRemove stops and disables the init script.
func procdRemove(ctx context.Context, run Runner) ([]Step, error) {
	var steps []Step
	if _, err := run.Run(ctx, procdScriptPath, "running"); err == nil {
		if _, err := run.Run(ctx, procdScriptPath, "stop"); err != nil {
			return steps, err
		}
		steps = append(steps, Step{What: "procd", Target: procdScriptPath, Result: ResultDone, Detail: "stopped"})
	}
	if _, err := run.Run(ctx, procdScriptPath, "enabled"); err == nil {
		if _, err := run.Run(ctx, procdScriptPath, "disable"); err != nil {
			return steps, err
		}
		steps = append(steps, Step{What: "procd", Target: procdScriptPath, Result: ResultDone, Detail: "disabled"})
	}
	return steps, nil
}

// UCI files init adds sections to on OpenWrt.
const (
	uciNetworkPath  = "/etc/config/network"
	uciFirewallPath = "/etc/config/firewall"
)

// uciManagedOption tags every UCI section homenet adds, so that uninstall
// removes exactly those.
const uciManagedOption = "homenet_managed"

// uciSection is one named UCI section.
type uciSection struct {
	Type, Name string
	Lines      []string // "option key 'value'" and "list key 'value'"
}

func (s uciSection) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s '%s'\n", s.Type, s.Name)
	for _, l := range s.Lines {
		b.WriteString("\t" + l + "\n")
	}
	fmt.Fprintf(&b, "\toption %s '1'\n", uciManagedOption)
	return b.String()
}

func uciOpt(k, v string) string  { return fmt.Sprintf("option %s '%s'", k, v) }
func uciList(k, v string) string { return fmt.Sprintf("list %s '%s'", k, v) }

// openwrtSections returns the UCI sections homenet needs on OpenWrt, per
// file: an interface for the tunnel and a firewall zone for it that may
// reach the LAN (and the WAN for an exit node) and be reached from the LAN,
// with MSS clamping; and WAN rules that let phones reach the control
// server, the relay, STUN and WireGuard. fw4 drops all of that otherwise.
// openwrtRuleName names the firewall rule of an exposedPort role.
func openwrtRuleName(role string) string {
	if role == "control and relay" {
		return "relay"
	}
	return role
}

func openwrtSections(cfg *Config) map[string][]uciSection {
	var network, fw []uciSection
	if cfg.Gateway.Enabled {
		network = append(network, uciSection{Type: "interface", Name: "homenet", Lines: []string{
			uciOpt("proto", "none"), uciOpt("device", tunName),
		}})
		fw = append(fw, uciSection{Type: "zone", Name: "homenet", Lines: []string{
			uciOpt("name", "homenet"), uciList("network", "homenet"),
			uciOpt("input", "ACCEPT"), uciOpt("output", "ACCEPT"), uciOpt("forward", "ACCEPT"),
			uciOpt("masq", "1"), uciOpt("mtu_fix", "1"),
		}})
		fwd := func(name, src, dest string) uciSection {
			return uciSection{Type: "forwarding", Name: name, Lines: []string{uciOpt("src", src), uciOpt("dest", dest)}}
		}
		fw = append(fw, fwd("homenet_to_lan", "homenet", "lan"), fwd("homenet_from_lan", "lan", "homenet"))
		if cfg.Gateway.ExitNode {
			fw = append(fw, fwd("homenet_to_wan", "homenet", "wan"))
		}
	}
	rule := func(name, title, proto, port string) uciSection {
		return uciSection{Type: "rule", Name: name, Lines: []string{
			uciOpt("name", title), uciOpt("src", "wan"), uciOpt("proto", proto),
			uciOpt("dest_port", port), uciOpt("target", "ACCEPT"),
		}}
	}
	for _, p := range exposedPorts(cfg) {
		name := openwrtRuleName(p.role)
		fw = append(fw, rule("homenet_"+strings.ToLower(name), "Allow-homenet-"+name, p.proto, p.port))
	}
	out := map[string][]uciSection{uciFirewallPath: fw}
	if len(network) > 0 {
		out[uciNetworkPath] = network
	}
	return out
}

// uciBlock is a section of a UCI file: its config line, its options and the
// blank or comment lines after them. The first block of a file may have no
// config line.
type uciBlock struct {
	Type, Name string
	Managed    bool
	Body       []string // the lines, with their newlines
}

// parseUCI splits a UCI file into blocks, keeping every line.
func parseUCI(b []byte) []uciBlock {
	var blocks []uciBlock
	cur := &uciBlock{}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		f, ok := uci.Fields(strings.TrimRight(line, "\n"))
		switch {
		case !ok:
		case len(f) >= 2 && f[0] == "config":
			blocks = append(blocks, *cur)
			cur = &uciBlock{Type: f[1]}
			if len(f) > 2 {
				cur.Name = f[2]
			}
		case len(f) >= 3 && f[0] == "option" && f[1] == uciManagedOption && f[2] == "1":
			cur.Managed = true
		}
		cur.Body = append(cur.Body, line)
	}
	return append(blocks, *cur)
}

// uciAdd appends the sections of secs that the UCI file at p (under root)
// does not have yet, by name. Sections already there are kept as they are,
// even if the user changed them.
func uciAdd(root, p string, secs []uciSection) (Step, error) {
	st := Step{What: "UCI", Target: p}
	hp := filepath.Join(root, p)
	have, err := os.ReadFile(hp)
	if err != nil && !os.IsNotExist(err) {
		return st, fmt.Errorf("UCI %s: %w", p, err)
	}
	names := map[string]bool{}
	for _, b := range parseUCI(have) {
		if b.Name != "" {
			names[b.Name] = true
		}
	}
	out := bytes.Clone(have)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	var added []string
	for _, s := range secs {
		if names[s.Name] {
			continue
		}
		if len(out) > 0 {
			out = append(out, '\n')
		}
		out = append(out, s.text()...)
		added = append(added, s.Type+" "+s.Name)
	}
	if len(added) == 0 {
		st.Result = ResultUnchanged
		return st, nil
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(hp); err == nil {
		mode = fi.Mode().Perm()
		st.Result = ResultUpdated
	} else {
		st.Result = ResultCreated
	}
	st.Detail = "added " + strings.Join(added, ", ")
	if err := writeFileAtomic(hp, out, mode); err != nil {
		return st, fmt.Errorf("UCI %s: %w", p, err)
	}
	return st, nil
}

// uciRemove removes the sections of the UCI file at p that homenet added:
// those tagged with homenet_managed, named homenet or homenet_*. The blank
// line init put before each goes too, so that the file is as before.
func uciRemove(root, p string) (Step, error) {
	st := Step{What: "UCI", Target: p}
	hp := filepath.Join(root, p)
	have, err := os.ReadFile(hp)
	if os.IsNotExist(err) {
		st.Result = ResultAbsent
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("UCI %s: %w", p, err)
	}
	var out strings.Builder
	var removed []string
	for _, b := range parseUCI(have) {
		ours := b.Managed && (b.Name == "homenet" || strings.HasPrefix(b.Name, "homenet_"))
		if !ours {
			out.WriteString(strings.Join(b.Body, ""))
			continue
		}
		removed = append(removed, b.Type+" "+b.Name)
		s := strings.TrimSuffix(out.String(), "\n") // the blank line before the section
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		out.Reset()
		out.WriteString(s)
		// Blank and comment lines after the options belong to what follows.
		last := 0
		for i, l := range b.Body {
			if f := strings.Fields(l); len(f) > 0 && (f[0] == "option" || f[0] == "list" || f[0] == "config") {
				last = i
			}
		}
		out.WriteString(strings.Join(b.Body[last+1:], ""))
	}
	if len(removed) == 0 {
		st.Result = ResultAbsent
		return st, nil
	}
	fi, err := os.Stat(hp)
	if err != nil {
		return st, err
	}
	if err := writeFileAtomic(hp, []byte(out.String()), fi.Mode().Perm()); err != nil {
		return st, fmt.Errorf("UCI %s: %w", p, err)
	}
	st.Result, st.Detail = ResultRemoved, strings.Join(removed, ", ")
	return st, nil
}

// openwrtReload reloads the network and firewall after UCI changes.
func openwrtReload(ctx context.Context, run Runner, files []string) []Step {
	var steps []Step
	for _, f := range files {
		svc := "/etc/init.d/" + filepath.Base(f)
		st := Step{What: "UCI", Target: svc, Result: ResultDone, Detail: "reloaded"}
		if _, err := run.Run(ctx, svc, "reload"); err != nil {
			st.Result, st.Detail = ResultFailed, err.Error()
		}
		steps = append(steps, st)
	}
	return steps
}
