//go:build linux

package firewall

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables backend owns one table, "inet homenet", talking netlink (no
// nft binary needed). One inet table serves IPv4 and IPv6; nat in an inet
// table needs Linux ≥ 5.2. Remove deletes the table.
//
// An accept verdict in our table is not final: every base chain on a hook
// runs, whatever table it is in, and a drop in any of them wins. So fw4's
// "inet fw4" (OpenWrt) or firewalld's table can still drop what we accept;
// the OpenWrt packaging puts the tun in a fw4 zone for that reason. Our
// drops, on the other hand, do hold.
const nftTableName = "homenet"

var nftChains = [numChains]struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
}{
	chainInput:       {"input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter},
	chainForward:     {"forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter},
	chainPostrouting: {"postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource},
	chainMSS:         {"mss", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityMangle},
}

type nftablesFW struct {
	mu     sync.Mutex   // serializes Apply, Intact and Remove
	cache  *intactCache // lets Intact skip reading back while nf_tables is quiet
	writes int          // netlink batches sent, for tests
	reads  int          // rulesets read back by Intact, for tests
}

func newNftables() (*nftablesFW, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: %w", err)
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		return nil, fmt.Errorf("firewall: nftables unusable (no nf_tables in the kernel?): %w", err)
	}
	return &nftablesFW{cache: newIntactCache()}, nil
}

func (fw *nftablesFW) Name() string { return KindNftables }

func (fw *nftablesFW) Apply(r Rules) error {
	if err := r.Validate(); err != nil {
		return err
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if r.IsZero() {
		return fw.remove()
	}
	fw.cache.forget()
	want, err := nftPlan(r)
	if err != nil {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	have, ok, err := readNftTable(c)
	if err != nil {
		return err
	}
	if ok && nftEqual(have, want) {
		return nil
	}
	// Replace the whole table in one batch: nf_tables commits a batch
	// atomically, so there is no moment without the spoof drops.
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: nftTableName}
	if have != nil {
		c.DelTable(t)
	}
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	p := plan(r)
	for i, spec := range nftChains {
		ch := c.AddChain(&nftables.Chain{
			Name:     spec.name,
			Table:    t,
			Type:     spec.typ,
			Hooknum:  spec.hook,
			Priority: spec.priority,
			Policy:   &accept,
		})
		for _, rl := range p[i] {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: nftExprs(rl)})
		}
	}
	fw.writes++
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: nftables: installing table inet %s: %w", nftTableName, err)
	}
	return nil
}

func (fw *nftablesFW) Intact(r Rules) (bool, error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	if r.IsZero() {
		return true, nil
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.cache.fresh(r) {
		return true, nil
	}
	ok, err := fw.intact(r)
	fw.cache.store(r, ok && err == nil)
	return ok, err
}

// intact reads our table back and compares it with r.
func (fw *nftablesFW) intact(r Rules) (bool, error) {
	want, err := nftPlan(r)
	if err != nil {
		return false, err
	}
	fw.reads++
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("firewall: nftables: %w", err)
	}
	have, ok, err := readNftTable(c)
	if err != nil || !ok {
		return false, err
	}
	return nftEqual(have, want), nil
}

func (fw *nftablesFW) Remove() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.remove()
}

func (fw *nftablesFW) remove() error {
	fw.cache.forget()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	t, err := findNftTable(c)
	if err != nil || t == nil {
		return err
	}
	c.DelTable(t)
	fw.writes++
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: nftables: deleting table inet %s: %w", nftTableName, err)
	}
	return nil
}

// nftRules is the content of our table: per chain, each rule's expressions
// marshaled to netlink bytes, which makes rules comparable whatever
// defaults the decoder fills in.
type nftRules [numChains][][][]byte

func nftPlan(r Rules) (nftRules, error) {
	var out nftRules
	for i, rules := range plan(r) {
		for _, rl := range rules {
			b, err := marshalExprs(nftExprs(rl))
			if err != nil {
				return out, err
			}
			out[i] = append(out[i], b)
		}
	}
	return out, nil
}

// marshalExprs marshals the expressions that the nftables package can also
// decode when it reads rules back. It silently skips those it cannot (rt
// and byteorder, used by the MSS clamp), so both sides of a comparison
// leave them out; a tampered MSS rule is still noticed by its remaining
// matches and its position.
func marshalExprs(exprs []expr.Any) ([][]byte, error) {
	var out [][]byte
	for _, e := range exprs {
		switch e.(type) {
		case *expr.Rt, *expr.Byteorder:
			continue
		}
		b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			return nil, fmt.Errorf("firewall: nftables: marshaling %T: %w", e, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func findNftTable(c *nftables.Conn) (*nftables.Table, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: listing tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == nftTableName {
			return t, nil
		}
	}
	return nil, nil
}

// readNftTable returns the installed table's content, or nil if the table
// does not exist. ok is false if the table is dormant or its chains are not
// exactly ours (one missing, an extra one, or a hook, priority or policy
// altered).
func readNftTable(c *nftables.Conn) (have *nftRules, ok bool, err error) {
	t, err := findNftTable(c)
	if err != nil || t == nil {
		return nil, false, err
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, false, fmt.Errorf("firewall: nftables: listing chains: %w", err)
	}
	have = new(nftRules)
	ok = t.Flags == 0 // not dormant
	seen := 0
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != nftTableName {
			continue
		}
		seen++
		i := nftChainIndex(ch)
		if i < 0 {
			ok = false
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, false, fmt.Errorf("firewall: nftables: listing rules of %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			b, err := marshalExprs(r.Exprs)
			if err != nil {
				return nil, false, err
			}
			have[i] = append(have[i], b)
		}
	}
	return have, ok && seen == int(numChains), nil
}

func nftChainIndex(ch *nftables.Chain) int {
	for i, spec := range nftChains {
		if ch.Name == spec.name && ch.Type == spec.typ &&
			ch.Hooknum != nil && *ch.Hooknum == *spec.hook &&
			ch.Priority != nil && *ch.Priority == *spec.priority &&
			ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept {
			return i
		}
	}
	return -1
}

func nftEqual(a *nftRules, b nftRules) bool {
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if len(a[i][j]) != len(b[i][j]) {
				return false
			}
			for k := range a[i][j] {
				if !bytes.Equal(a[i][j][k], b[i][j][k]) {
					return false
				}
			}
		}
	}
	return true
}

// nftExprs renders one rule. Matches load into register 1 and compare; a
// source prefix first pins the family (meta nfproto), as nft itself does
// for "ip saddr" in an inet table.
func nftExprs(r rule) []expr.Any {
	var e []expr.Any
	if r.src.IsValid() {
		proto, off := byte(unix.NFPROTO_IPV4), uint32(12)
		if r.src.Addr().Is6() {
			proto, off = unix.NFPROTO_IPV6, 8
		}
		addr := r.src.Addr().AsSlice()
		mask := make([]byte, len(addr))
		for i := range r.src.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(addr))},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)), Mask: mask, Xor: make([]byte, len(addr))},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		)
	}
	ifMatch := func(key expr.MetaKey, name string, not bool) {
		op := expr.CmpOpEq
		if not {
			op = expr.CmpOpNeq
		}
		e = append(e,
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: op, Register: 1, Data: ifnameBytes(name)},
		)
	}
	if r.iif != "" {
		ifMatch(expr.MetaKeyIIFNAME, r.iif, r.iifNot)
	}
	if r.oif != "" {
		ifMatch(expr.MetaKeyOIFNAME, r.oif, r.oifNot)
	}
	if r.udpPort != 0 {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(r.udpPort >> 8), byte(r.udpPort)}},
		)
	}
	if r.tcpSYN {
		const syn, rst = 0x02, 0x04
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			// tcp flags & (syn | rst) == syn
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{syn | rst}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syn}},
		)
	}
	switch r.verdict {
	case vAccept:
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case vDrop:
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	case vReturn:
		e = append(e, &expr.Verdict{Kind: expr.VerdictReturn})
	case vMasquerade:
		e = append(e, &expr.Masq{})
	case vClampMSS:
		// tcp option maxseg size set rt mtu: the route's MSS is loaded in
		// host order and written into the MSS option (kind 2, 2 bytes at
		// offset 2) in network order.
		e = append(e,
			&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
			&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
		)
	}
	return e
}

// ifnameBytes pads an interface name to IFNAMSIZ, as nft does.
func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
