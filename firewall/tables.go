//go:build linux

package firewall

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
	"tailscale.com/atomicfile"
)

// iptables-nft has no tables of its own in the kernel: the first chain or
// rule we add to "filter", "nat" or "mangle" makes it create the nf_tables
// table of that name (family ip, or ip6 for ip6tables) if there is none,
// and in it the built-in base chain the rule needs if that is missing.
// Removing our chains leaves both there, hooked into every packet's path
// for nothing. Remove cannot tell them from the system's own, which look
// the same; only what was there before we started can. So the caller
// records the tables and their built-in chains before its first Apply
// (RecordTables) and, after Remove, deletes the new ones that hold nothing
// (RemoveCreatedTables). The record is a file, so that the start after a
// kill -9 can finish what the dead run did not.
//
// iptables-legacy's tables are x_tables ones, which the kernel
// instantiates on first use and keeps until its module unloads: there is
// nothing to delete, and they stay.

// iptBuiltinChains are, for each table that iptChains uses, its built-in
// chains: the base chains iptables-nft may create in it (all of them at
// once before iptables 1.8.3).
var iptBuiltinChains = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
}

// tableRecord is the content of the record file.
type tableRecord struct {
	// Tables are the nf_tables tables there were, of every family, as
	// "family name" ("ip filter", "inet fw4").
	Tables []string `json:"nf_tables"`
	// Chains are the built-in base chains there were in the ip and ip6
	// filter, nat and mangle tables, as "family table chain" ("ip filter
	// INPUT").
	Chains []string `json:"builtin_chains"`
}

// RecordTables writes to path which nf_tables tables, and which built-in
// chains in the tables iptables uses, exist now, for RemoveCreatedTables.
// Call it before the first Apply.
//
// An existing record is kept: it was taken before a run that did not
// finish its cleanup (killed, or deleting failed), so it still tells what
// was there before that run; a new one would count what that run created
// as the system's own.
func RecordTables(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tables, err := listNfTables(nil)
	if err != nil {
		return err
	}
	rec := tableRecord{Tables: []string{}, Chains: []string{}}
	for _, t := range tables {
		rec.Tables = append(rec.Tables, t.id())
		for _, c := range t.chains {
			if t.builtin(c) {
				rec.Chains = append(rec.Chains, t.id()+" "+c.name)
			}
		}
	}
	slices.Sort(rec.Tables)
	slices.Sort(rec.Chains)
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeRecord(path, append(b, '\n')); err != nil {
		return fmt.Errorf("firewall: recording tables: %w", err)
	}
	return nil
}

// RemoveCreatedTables deletes what iptables-nft created on our behalf
// since RecordTables wrote path: in family ip and ip6, the filter, nat and
// mangle tables that are not in the record and hold nothing but built-in
// base chains with policy accept and no rules, and, in those that are, such
// built-in chains that are not. Call it after Remove (or RemoveAll), when
// our chains are gone. A new table or chain that holds anything else is
// someone else's now and stays; kept names those, with why.
//
// It removes the record once done; without a record it does nothing. On
// error the record stays, for the next start to try again.
func RemoveCreatedTables(path string) (removed, kept []string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("firewall: %w", err)
	}
	var rec tableRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		os.Remove(path)
		return nil, nil, fmt.Errorf("firewall: %s: %w (removed)", path, err)
	}
	now, err := listNfTables(&rec)
	if err != nil {
		return nil, nil, err
	}
	del, kept := toDelete(rec, now)
	var errs []error
	for _, d := range del {
		if err := d.delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, d.id())
	}
	if err := errors.Join(errs...); err != nil {
		return removed, kept, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return removed, kept, fmt.Errorf("firewall: %w", err)
	}
	return removed, kept, nil
}

// nfTable is an nf_tables table as toDelete judges it. Only iptables'
// tables (ipt) come with their chains.
type nfTable struct {
	family    nftables.TableFamily
	name      string
	chains    []nfChain
	others    int    // sets, maps, named objects and flowtables; -1: not counted
	othersErr string // why others could not be counted
}

type nfChain struct {
	name   string
	base   bool // hooked into the packet path
	accept bool // a base chain with policy accept
	rules  int  // -1: not counted
}

// id is the table as nft names it: "ip filter".
func (t nfTable) id() string {
	return familyName(t.family) + " " + t.name
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprintf("family%d", f)
}

// ipt reports whether t may be a table iptables-nft made for our chains:
// filter, nat or mangle of ip or ip6.
func (t nfTable) ipt() bool {
	if t.family != nftables.TableFamilyIPv4 && t.family != nftables.TableFamilyIPv6 {
		return false
	}
	_, ok := iptBuiltinChains[t.name]
	return ok
}

// builtin reports whether c is one of t's built-in base chains.
func (t nfTable) builtin(c nfChain) bool {
	return c.base && slices.Contains(iptBuiltinChains[t.name], c.name)
}

// notEmpty returns why c, a built-in chain, holds something, or "".
func (c nfChain) notEmpty() string {
	switch {
	case !c.accept:
		return "chain " + c.name + " has a policy other than accept"
	case c.rules < 0:
		return "chain " + c.name + ": rules not counted"
	case c.rules > 0:
		return fmt.Sprintf("chain %s holds %d rules", c.name, c.rules)
	}
	return ""
}

// notEmpty returns why t holds more than empty built-in chains with
// policy accept, or "".
func (t nfTable) notEmpty() string {
	for _, c := range t.chains {
		if !t.builtin(c) {
			return "chain " + c.name + " is not a built-in one"
		}
		if why := c.notEmpty(); why != "" {
			return why
		}
	}
	switch {
	case t.othersErr != "":
		return t.othersErr
	case t.others < 0:
		return "sets and objects not counted"
	case t.others > 0:
		return fmt.Sprintf("it holds %d sets or objects", t.others)
	}
	return ""
}

// nfDeletion is a table to delete whole (chain "") or one chain in it.
type nfDeletion struct {
	table nfTable
	chain string
}

// id is "ip nat" for a table, "ip filter FORWARD" for a chain.
func (d nfDeletion) id() string {
	if d.chain == "" {
		return d.table.id()
	}
	return d.table.id() + " " + d.chain
}

// toDelete returns what of now homenet had iptables-nft create and may
// delete, now that its own chains are gone: the ip or ip6 filter, nat or
// mangle tables not in rec that hold nothing but empty built-in chains
// with policy accept; and in such tables that are in rec, the built-in
// chains not in rec that are empty with policy accept. kept lists the
// other new tables and built-in chains, with why they stay.
func toDelete(rec tableRecord, now []nfTable) (del []nfDeletion, kept []string) {
	for _, t := range now {
		if !t.ipt() {
			continue
		}
		if !slices.Contains(rec.Tables, t.id()) {
			if why := t.notEmpty(); why != "" {
				kept = append(kept, t.id()+" ("+why+")")
			} else {
				del = append(del, nfDeletion{table: t})
			}
			continue
		}
		for _, c := range t.chains {
			if !t.builtin(c) || slices.Contains(rec.Chains, t.id()+" "+c.name) {
				continue
			}
			if why := c.notEmpty(); why != "" {
				kept = append(kept, t.id()+" "+c.name+" ("+why+")")
			} else {
				del = append(del, nfDeletion{table: t, chain: c.name})
			}
		}
	}
	return del, kept
}

// listNfTables lists every nf_tables table; iptables' tables (ipt) come
// with their chains. With rec, it also counts what toDelete needs to
// know: the rules of the chains not in rec or in a table not in rec, and
// what else the tables not in rec hold.
func listNfTables(rec *tableRecord) ([]nfTable, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: %w", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: listing tables: %w", err)
	}
	var out []nfTable
	var chains []*nftables.Chain
	for _, nt := range tables {
		t := nfTable{family: nt.Family, name: nt.Name, others: -1}
		if !t.ipt() {
			out = append(out, t)
			continue
		}
		if chains == nil {
			if chains, err = c.ListChains(); err != nil {
				return nil, fmt.Errorf("firewall: nftables: listing chains: %w", err)
			}
		}
		newTable := rec != nil && !slices.Contains(rec.Tables, t.id())
		for _, ch := range chains {
			if ch.Table == nil || ch.Table.Family != nt.Family || ch.Table.Name != nt.Name {
				continue
			}
			nc := nfChain{
				name:   ch.Name,
				base:   ch.Hooknum != nil,
				accept: ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept,
				rules:  -1,
			}
			if newTable || rec != nil && !slices.Contains(rec.Chains, t.id()+" "+ch.Name) {
				rules, err := c.GetRules(nt, ch)
				if err != nil {
					return nil, fmt.Errorf("firewall: nftables: listing rules of %s %s: %w", t.id(), ch.Name, err)
				}
				nc.rules = len(rules)
			}
			t.chains = append(t.chains, nc)
		}
		if newTable {
			countOthers(c, nt, &t)
		}
		out = append(out, t)
	}
	return out, nil
}

// countOthers counts the sets, named objects and flowtables of t, the
// table nt. iptables-nft creates none, so a table that holds one is
// somebody's. (The kernel counts them in the table's use count too, but
// the nftables package decodes that in host byte order.)
func countOthers(c *nftables.Conn, nt *nftables.Table, t *nfTable) {
	sets, err := c.GetSets(nt)
	if err != nil {
		t.othersErr = "listing its sets: " + err.Error()
		return
	}
	objs, err := c.GetObjects(nt)
	if err != nil {
		t.othersErr = "listing its objects: " + err.Error()
		return
	}
	fts, err := c.ListFlowtables(nt)
	if err != nil {
		t.othersErr = "listing its flowtables: " + err.Error()
		return
	}
	t.others = len(sets) + len(objs) + len(fts)
}

// delete deletes the table with its empty chains, or the chain, alone in
// its batch so that a failure leaves the rest to be deleted. Between the
// listing and this, another process could add a rule, which would go too:
// nf_tables can refuse to delete what is not empty (NLM_F_NONREC), but the
// nftables package cannot ask it to. The window is a few netlink round
// trips, at stop.
func (d nfDeletion) delete() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	t := &nftables.Table{Family: d.table.family, Name: d.table.name}
	if d.chain == "" {
		c.DelTable(t)
	} else {
		c.DelChain(&nftables.Chain{Table: t, Name: d.chain})
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) { // ENOENT: gone already
		return fmt.Errorf("firewall: nftables: deleting %s: %w", d.id(), err)
	}
	return nil
}

// writeRecord writes path through a temporary file and fsync, so that a
// power cut leaves either no record or a whole one: it must survive the
// crash it is for.
func writeRecord(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}
