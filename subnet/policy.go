//go:build linux

package subnet

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
	"tailscale.com/tsconst"
)

// Policy routing. Peer and route entries go into a table of our own, looked
// up by a rule of our own; the engine's own packets carry the bypass mark and
// skip it. This mirrors tailscaled (table 52, rule prefs 5210–5270), one
// step further down, so that a stock tailscaled installed beside homenet
// keeps its table, its rules and their precedence:
//
//	5310  from all fwmark 0x80000/0xff0000 lookup main
//	5330  from all fwmark 0x80000/0xff0000 lookup default
//	5350  from all fwmark 0x80000/0xff0000 unreachable
//	5370  from all lookup 153
//
// for IPv4 and, when the kernel has it, IPv6.
const (
	// Table is our routing table. It stays below 256 so that busybox `ip`
	// (8-bit table IDs) can show it.
	Table = 153

	// RulePrefBase is the base of our rule priorities; see RulePrefs.
	RulePrefBase = 5300

	// bypassMark is set on the engine's own sockets by tailscale's net/netns
	// (SO_MARK); the value is the library's, so it is shared with a stock
	// tailscaled, and rightly: both mean "not into a tailnet table".
	bypassMark = tsconst.LinuxBypassMarkNum // 0x80000
	fwmarkMask = tsconst.LinuxFwmarkMaskNum // 0xff0000
)

// RulePrefs are the priorities of our policy rules, each family.
var RulePrefs = []int{RulePrefBase + 10, RulePrefBase + 30, RulePrefBase + 50, RulePrefBase + 70}

// ourRules returns the policy rules for one address family (unix.AF_INET
// or unix.AF_INET6), in priority order.
func ourRules(family int) []netlink.Rule {
	mask := uint32(fwmarkMask)
	rule := func(pref int) netlink.Rule {
		r := *netlink.NewRule()
		r.Family = family
		r.Priority = pref
		return r
	}
	main := rule(RulePrefs[0])
	main.Mark, main.Mask, main.Table = bypassMark, &mask, unix.RT_TABLE_MAIN
	dflt := rule(RulePrefs[1])
	dflt.Mark, dflt.Mask, dflt.Table = bypassMark, &mask, unix.RT_TABLE_DEFAULT
	unreach := rule(RulePrefs[2])
	unreach.Mark, unreach.Mask, unreach.Type = bypassMark, &mask, unix.RTN_UNREACHABLE
	ours := rule(RulePrefs[3])
	ours.Table = Table
	return []netlink.Rule{main, dflt, unreach, ours}
}

// isOurRule reports whether a rule read back from the kernel is one of
// ours: same priority and the same action, table and mark. A rule of
// another program at one of our priorities is never ours.
func isOurRule(got netlink.Rule) bool {
	for _, want := range ourRules(got.Family) {
		if sameRule(got, want) {
			return true
		}
	}
	return false
}

// sameRule compares the fields ourRules sets.
func sameRule(got, want netlink.Rule) bool {
	if got.Priority != want.Priority || got.Invert || got.Src != nil || got.Dst != nil ||
		got.IifName != "" || got.OifName != "" || got.Mark != want.Mark {
		return false
	}
	gotMask, wantMask := uint32(0), uint32(0)
	if got.Mask != nil {
		gotMask = *got.Mask
	}
	if want.Mask != nil {
		wantMask = *want.Mask
	}
	if gotMask != wantMask {
		return false
	}
	if want.Type == unix.RTN_UNREACHABLE {
		return got.Type == unix.RTN_UNREACHABLE
	}
	return got.Table == want.Table && got.Type == unix.RTN_UNICAST // FR_ACT_TO_TBL
}

var native = nl.NativeEndian()

// missingRules returns the rules of family that are not installed.
func missingRules(family int) ([]netlink.Rule, error) {
	have, err := listRules(family)
	if err != nil {
		return nil, err
	}
	var missing []netlink.Rule
	for _, want := range ourRules(family) {
		found := false
		for _, h := range have {
			if sameRule(h, want) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, want)
		}
	}
	return missing, nil
}

// addRules installs whatever of our rules for family is missing.
func addRules(family int) error {
	missing, err := missingRules(family)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range missing {
		if err := netlink.RuleAdd(&r); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("ip %s rule add pref %d: %w", familyName(family), r.Priority, err))
		}
	}
	return errors.Join(errs...)
}

// delRules deletes every rule of ours for family, however many copies a
// crashed run left behind, and nothing else.
func delRules(family int) error {
	have, err := listRules(family)
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range have {
		if !isOurRule(h) {
			continue
		}
		// Delete by the full description, so the kernel cannot pick another
		// program's rule at the same priority.
		for _, want := range ourRules(family) {
			if !sameRule(h, want) {
				continue
			}
			if err := netlink.RuleDel(&want); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("ip %s rule del pref %d: %w", familyName(family), want.Priority, err))
			}
		}
	}
	return errors.Join(errs...)
}

// listRules dumps the rules of family. It parses the dump itself because
// netlink.RuleList leaves out the rule's action (Type), which tells our
// unreachable rule from someone else's rule at the same priority.
func listRules(family int) ([]netlink.Rule, error) {
	for range 5 {
		req := nl.NewNetlinkRequest(unix.RTM_GETRULE, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(family))
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWRULE)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ip %s rule list: %w", familyName(family), err)
		}
		var rules []netlink.Rule
		for _, m := range msgs {
			msg := nl.DeserializeRtMsg(m)
			attrs, err := nl.ParseRouteAttr(m[msg.Len():])
			if err != nil {
				return nil, fmt.Errorf("ip %s rule list: %w", familyName(family), err)
			}
			r := *netlink.NewRule()
			r.Priority = 0
			r.Family = int(msg.Family)
			r.Type = msg.Type
			r.Table = int(msg.Table)
			r.Invert = msg.Flags&netlink.FibRuleInvert != 0
			for _, a := range attrs {
				switch a.Attr.Type {
				case nl.FRA_TABLE:
					r.Table = int(native.Uint32(a.Value))
				case nl.FRA_PRIORITY:
					r.Priority = int(native.Uint32(a.Value))
				case nl.FRA_FWMARK:
					r.Mark = native.Uint32(a.Value)
				case nl.FRA_FWMASK:
					mask := native.Uint32(a.Value)
					r.Mask = &mask
				case nl.FRA_SRC:
					r.Src = &net.IPNet{IP: a.Value}
				case nl.FRA_DST:
					r.Dst = &net.IPNet{IP: a.Value}
				case nl.FRA_IIFNAME:
					r.IifName = strings.TrimRight(string(a.Value), "\x00")
				case nl.FRA_OIFNAME:
					r.OifName = strings.TrimRight(string(a.Value), "\x00")
				}
			}
			rules = append(rules, r)
		}
		return rules, nil
	}
	return nil, fmt.Errorf("ip %s rule list: dump interrupted 5 times", familyName(family))
}

// tableRoutes lists every route of family in our table.
func tableRoutes(family int) ([]netlink.Route, error) {
	for range 5 {
		rs, err := netlink.RouteListFiltered(family, &netlink.Route{Table: Table}, netlink.RT_FILTER_TABLE)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ip %s route show table %d: %w", familyName(family), Table, err)
		}
		return rs, nil
	}
	return nil, fmt.Errorf("ip %s route show table %d: dump interrupted 5 times", familyName(family), Table)
}

// flushTable deletes every route of family in our table. The table is
// ours alone, so everything in it is ours.
func flushTable(family int) error {
	rs, err := tableRoutes(family)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("ip %s route del %v table %d: %w", familyName(family), r.Dst, Table, err))
		}
	}
	return errors.Join(errs...)
}

func familyName(family int) string {
	if family == unix.AF_INET6 {
		return "-6"
	}
	return "-4"
}

// ipv6Usable reports whether the kernel has IPv6 enabled, globally and, if
// it exists, on the tun.
func ipv6Usable(tun string) bool {
	if v, err := readSysctl("/proc/sys", "net/ipv6/conf/all/disable_ipv6"); err != nil || v != "0" {
		return false
	}
	if tun != "" {
		if v, err := readSysctl("/proc/sys", "net/ipv6/conf/"+tun+"/disable_ipv6"); err == nil && v != "0" {
			return false
		}
	}
	return true
}
