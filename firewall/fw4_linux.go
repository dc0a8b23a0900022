//go:build linux

package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// CheckFW4 reads fw4's forward chain and whether it handles tun. Without
// table inet fw4 (not OpenWrt, or an OpenWrt with iptables' fw3) it returns
// a zero FW4.
func CheckFW4(tun string) (FW4, error) {
	c, err := nftables.New()
	if err != nil {
		return FW4{}, fmt.Errorf("firewall: fw4: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return FW4{}, fmt.Errorf("firewall: fw4: listing inet tables: %w", err)
	}
	var t *nftables.Table
	for _, tb := range tables {
		if tb.Name == fw4Table {
			t = tb
		}
	}
	if t == nil {
		return FW4{}, nil
	}
	ch, err := c.ListChain(t, fw4Chain)
	if err != nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward {
		return FW4{}, nil // no forward base chain: fw4 filters nothing here
	}
	f := FW4{Present: true, ForwardPolicy: "accept"}
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		f.ForwardPolicy = "drop"
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return f, fmt.Errorf("firewall: fw4: listing rules of inet fw4 forward: %w", err)
	}
	for _, r := range rules {
		m, err := ruleMatchesIIF(c, t, r, tun)
		if err != nil {
			return f, err
		}
		if m {
			f.TunMatched = true
			break
		}
	}
	return f, nil
}

// ruleMatchesIIF reports whether rule r compares the input interface name
// with a value (or a set element) that tun matches: fw4 writes
// `iifname "tailscale0"`, `iifname "tailscale*"` or `iifname { … }`.
func ruleMatchesIIF(c *nftables.Conn, t *nftables.Table, r *nftables.Rule, tun string) (bool, error) {
	iifReg := uint32(0) // the register meta iifname loaded, 0 for none
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			iifReg = 0
			if e.Key == expr.MetaKeyIIFNAME && !e.SourceRegister {
				iifReg = e.Register
			}
		case *expr.Cmp:
			if iifReg != 0 && e.Register == iifReg && e.Op == expr.CmpOpEq && ifnameMatches(e.Data, tun) {
				return true, nil
			}
		case *expr.Lookup:
			if iifReg == 0 || e.SourceRegister != iifReg || e.Invert {
				continue
			}
			set, err := c.GetSetByName(t, e.SetName)
			if err != nil {
				return false, fmt.Errorf("firewall: fw4: reading set %s: %w", e.SetName, err)
			}
			elems, err := c.GetSetElements(set)
			if err != nil {
				return false, fmt.Errorf("firewall: fw4: reading elements of set %s: %w", e.SetName, err)
			}
			for _, el := range elems {
				if !el.IntervalEnd && ifnameMatches(el.Key, tun) {
					return true, nil
				}
			}
		}
	}
	return false, nil
}
