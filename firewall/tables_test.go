//go:build linux

package firewall

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
)

func TestToDelete(t *testing.T) {
	const (
		ip  = nftables.TableFamilyIPv4
		ip6 = nftables.TableFamilyIPv6
	)
	// empty is a table with empty built-in chains, everything counted.
	empty := func(fam nftables.TableFamily, name string, chains ...string) nfTable {
		t := nfTable{family: fam, name: name}
		for _, c := range chains {
			t.chains = append(t.chains, nfChain{name: c, base: true, accept: true})
		}
		return t
	}
	with := func(t nfTable, edit func(*nfTable)) nfTable {
		t.chains = slices.Clone(t.chains)
		edit(&t)
		return t
	}
	filter := empty(ip, "filter", "INPUT", "FORWARD")
	tests := []struct {
		name     string
		rec      tableRecord
		now      []nfTable
		wantDel  []string
		wantKept []string // prefixes: the table or chain, then why
	}{
		{
			name:    "fresh host: all six go",
			now:     []nfTable{filter, empty(ip, "nat", "POSTROUTING"), empty(ip, "mangle", "FORWARD"), empty(ip6, "filter", "INPUT", "FORWARD"), empty(ip6, "nat", "POSTROUTING"), empty(ip6, "mangle", "FORWARD")},
			wantDel: []string{"ip filter", "ip nat", "ip mangle", "ip6 filter", "ip6 nat", "ip6 mangle"},
		},
		{
			name: "there before, even empty: stays",
			rec:  tableRecord{Tables: []string{"ip filter", "ip6 nat"}, Chains: []string{"ip filter FORWARD", "ip filter INPUT", "ip6 nat POSTROUTING"}},
			now:  []nfTable{filter, empty(ip6, "nat", "POSTROUTING")},
		},
		{
			name:    "only the new table goes",
			rec:     tableRecord{Tables: []string{"inet fw4", "ip filter"}, Chains: []string{"ip filter FORWARD", "ip filter INPUT"}},
			now:     []nfTable{filter, empty(ip, "nat", "POSTROUTING"), {family: nftables.TableFamilyINet, name: "fw4"}},
			wantDel: []string{"ip nat"},
		},
		{
			name:    "a built-in chain added to a table there before goes, alone",
			rec:     tableRecord{Tables: []string{"ip filter"}, Chains: []string{"ip filter INPUT"}},
			now:     []nfTable{with(filter, func(t *nfTable) { t.chains[0].rules = 3 })},
			wantDel: []string{"ip filter FORWARD"},
		},
		{
			name:     "a built-in chain added to a table there before, with someone's rule",
			rec:      tableRecord{Tables: []string{"ip filter"}, Chains: []string{"ip filter INPUT"}},
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains[1].rules = 1 })},
			wantKept: []string{"ip filter FORWARD (chain FORWARD holds 1 rules"},
		},
		{
			name:     "a built-in chain added to a table there before, policy drop",
			rec:      tableRecord{Tables: []string{"ip filter"}, Chains: []string{"ip filter INPUT"}},
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains[1].accept = false })},
			wantKept: []string{"ip filter FORWARD (chain FORWARD has a policy other than accept"},
		},
		{
			name:     "a built-in chain whose rules were not counted",
			rec:      tableRecord{Tables: []string{"ip filter"}, Chains: []string{"ip filter INPUT"}},
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains[1].rules = -1 })},
			wantKept: []string{"ip filter FORWARD (chain FORWARD: rules not counted"},
		},
		{
			name: "other chains in a table there before are not judged",
			rec:  tableRecord{Tables: []string{"ip filter"}, Chains: []string{"ip filter FORWARD", "ip filter INPUT"}},
			now: []nfTable{with(filter, func(t *nfTable) {
				t.chains = append(t.chains, nfChain{name: "DOCKER", rules: -1}, nfChain{name: "input", base: true, accept: true, rules: -1})
			})},
		},
		{
			name:    "every built-in chain, as iptables before 1.8.3 creates them",
			now:     []nfTable{empty(ip, "mangle", "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"), empty(ip, "nat", "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")},
			wantDel: []string{"ip mangle", "ip nat"},
		},
		{
			name:    "no chains left at all",
			now:     []nfTable{empty(ip6, "filter")},
			wantDel: []string{"ip6 filter"},
		},
		{
			name:     "someone's rule",
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains[1].rules = 2 })},
			wantKept: []string{"ip filter (chain FORWARD holds 2 rules"},
		},
		{
			name:     "someone's chain",
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains = append(t.chains, nfChain{name: "DOCKER"}) })},
			wantKept: []string{"ip filter (chain DOCKER is not a built-in one"},
		},
		{
			name:     "our chain still there",
			now:      []nfTable{with(empty(ip, "nat", "POSTROUTING"), func(t *nfTable) { t.chains = append(t.chains, nfChain{name: "HN-POSTROUTING"}) })},
			wantKept: []string{"ip nat (chain HN-POSTROUTING is not a built-in one"},
		},
		{
			name:     "a built-in name in the wrong table",
			now:      []nfTable{empty(ip, "nat", "FORWARD")},
			wantKept: []string{"ip nat (chain FORWARD is not a built-in one"},
		},
		{
			name:     "a base chain not built in",
			now:      []nfTable{empty(ip, "filter", "input")},
			wantKept: []string{"ip filter (chain input is not a built-in one"},
		},
		{
			name:     "policy drop",
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains[0].accept = false })},
			wantKept: []string{"ip filter (chain INPUT has a policy other than accept"},
		},
		{
			name:     "rules not counted",
			now:      []nfTable{with(filter, func(t *nfTable) { t.chains[0].rules = -1 })},
			wantKept: []string{"ip filter (chain INPUT: rules not counted"},
		},
		{
			name:     "a set",
			now:      []nfTable{with(filter, func(t *nfTable) { t.others = 1 })},
			wantKept: []string{"ip filter (it holds 1 sets or objects"},
		},
		{
			name:     "sets not counted",
			now:      []nfTable{with(filter, func(t *nfTable) { t.others = -1 })},
			wantKept: []string{"ip filter (sets and objects not counted"},
		},
		{
			name:     "sets could not be counted",
			now:      []nfTable{with(filter, func(t *nfTable) { t.others, t.othersErr = -1, "listing its sets: EPERM" })},
			wantKept: []string{"ip filter (listing its sets: EPERM"},
		},
		{
			name: "not a table of ours by name or family",
			now:  []nfTable{empty(ip, "raw", "PREROUTING"), empty(ip, "security", "INPUT"), empty(nftables.TableFamilyINet, "filter", "INPUT"), empty(nftables.TableFamilyBridge, "filter", "FORWARD"), empty(nftables.TableFamilyARP, "filter", "INPUT")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, kept := toDelete(tt.rec, tt.now)
			var got []string
			for _, d := range del {
				got = append(got, d.id())
			}
			if !slices.Equal(got, tt.wantDel) {
				t.Errorf("delete %q, want %q", got, tt.wantDel)
			}
			if len(kept) != len(tt.wantKept) {
				t.Fatalf("kept %q, want %q", kept, tt.wantKept)
			}
			for i := range kept {
				if !strings.HasPrefix(kept[i], tt.wantKept[i]) {
					t.Errorf("kept[%d] = %q, want it to start with %q", i, kept[i], tt.wantKept[i])
				}
			}
		})
	}
}

// Every table our iptables chains live in has its built-in chains listed,
// or its new empty tables would be kept as someone else's.
func TestIPTBuiltinChains(t *testing.T) {
	for _, c := range iptChains {
		if !slices.Contains(iptBuiltinChains[c.table], c.builtin) {
			t.Errorf("iptBuiltinChains lacks %s in table %s", c.builtin, c.table)
		}
	}
}

// The record, against real netfilter: with iptables-nft on a fresh host
// RemoveCreatedTables deletes the tables it created for our chains, and
// only those; after a crash the first record still counts.
func TestRemoveCreatedTables(t *testing.T) {
	if netnsSkip != "" {
		t.Skip(netnsSkip)
	}
	for _, bin := range []string{"nft", "iptables-nft", "ip6tables-nft", "iptables-nft-restore", "ip6tables-nft-restore"} {
		need(t, bin)
	}
	tests := []struct {
		name        string
		kind        string
		setup       func(t *testing.T) // before the record
		during      func(t *testing.T) // after Apply, before Remove
		crash       bool               // Apply, record again, and remove from a new Firewall
		wantRemoved []string
		wantKept    []string // prefixes
		wantAfter   string   // "" for the ruleset before; else a part of it
	}{
		{
			name:        "fresh host",
			kind:        KindIPTablesNft,
			wantRemoved: []string{"ip filter", "ip mangle", "ip nat", "ip6 filter", "ip6 mangle", "ip6 nat"},
		},
		{
			name:        "fresh host after a crash",
			kind:        KindIPTablesNft,
			crash:       true,
			wantRemoved: []string{"ip filter", "ip mangle", "ip nat", "ip6 filter", "ip6 mangle", "ip6 nat"},
		},
		{
			name:  "tables there before",
			kind:  KindIPTablesNft,
			setup: func(t *testing.T) { installStock(t, KindIPTablesNft) },
		},
		{
			name: "some there before, empty",
			kind: KindIPTablesNft,
			setup: func(t *testing.T) {
				run(t, "nft", "add", "table", "ip", "filter")
				run(t, "nft", "add", "chain", "ip", "filter", "INPUT", "{ type filter hook input priority filter; policy accept; }")
			},
			wantRemoved: []string{"ip filter FORWARD", "ip mangle", "ip nat", "ip6 filter", "ip6 mangle", "ip6 nat"},
		},
		{
			name: "a rule in a chain created for us in a table there before",
			kind: KindIPTablesNft,
			setup: func(t *testing.T) {
				run(t, "nft", "add", "table", "ip", "filter")
				run(t, "nft", "add", "chain", "ip", "filter", "INPUT", "{ type filter hook input priority filter; policy accept; }")
			},
			during:      func(t *testing.T) { run(t, "iptables-nft", "-A", "FORWARD", "-o", "eth9", "-j", "ACCEPT") },
			wantRemoved: []string{"ip mangle", "ip nat", "ip6 filter", "ip6 mangle", "ip6 nat"},
			wantKept:    []string{"ip filter FORWARD (chain FORWARD holds 1 rules"},
			wantAfter:   "oifname \"eth9\"",
		},
		{
			name: "someone's rules meanwhile",
			kind: KindIPTablesNft,
			during: func(t *testing.T) {
				run(t, "ip6tables-nft", "-t", "nat", "-A", "POSTROUTING", "-o", "eth9", "-j", "MASQUERADE")
				run(t, "iptables-nft", "-N", "DOCKER")
				run(t, "nft", "add", "set", "ip", "mangle", "blocked", "{ type ipv4_addr; }")
			},
			wantRemoved: []string{"ip nat", "ip6 filter", "ip6 mangle"},
			wantKept:    []string{"ip filter (chain DOCKER", "ip mangle (it holds 1 sets", "ip6 nat (chain POSTROUTING holds 1 rules"},
			wantAfter:   "oifname \"eth9\"",
		},
		{
			name: "nftables",
			kind: KindNftables,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resetNetfilter(t)
			t.Cleanup(func() { resetNetfilter(t) })
			if tt.setup != nil {
				tt.setup(t)
			}
			before := run(t, "nft", "-s", "list", "ruleset")
			record := filepath.Join(t.TempDir(), "netfilter-restore.json")
			if err := RecordTables(record); err != nil {
				t.Fatalf("RecordTables: %v", err)
			}
			fw, err := New(tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			apply(t, fw, gatewayRules())
			if tt.during != nil {
				tt.during(t)
			}
			if tt.crash {
				// The dead run's record stays; a new one would hold the
				// tables created for it.
				saved, err := os.ReadFile(record)
				if err != nil {
					t.Fatal(err)
				}
				if err := RecordTables(record); err != nil {
					t.Fatalf("RecordTables again: %v", err)
				}
				if again, _ := os.ReadFile(record); string(again) != string(saved) {
					t.Errorf("RecordTables replaced an existing record:\n%s\nwas:\n%s", again, saved)
				}
				if err := RemoveAll(); err != nil {
					t.Fatal(err)
				}
			} else {
				remove(t, fw)
			}
			removed, kept, err := RemoveCreatedTables(record)
			if err != nil {
				t.Fatalf("RemoveCreatedTables: %v", err)
			}
			slices.Sort(removed)
			if !slices.Equal(removed, tt.wantRemoved) {
				t.Errorf("removed %q, want %q", removed, tt.wantRemoved)
			}
			slices.Sort(kept)
			if len(kept) != len(tt.wantKept) {
				t.Errorf("kept %q, want %q", kept, tt.wantKept)
			} else {
				for i := range kept {
					if !strings.HasPrefix(kept[i], tt.wantKept[i]) {
						t.Errorf("kept[%d] = %q, want it to start with %q", i, kept[i], tt.wantKept[i])
					}
				}
			}
			after := run(t, "nft", "-s", "list", "ruleset")
			if tt.wantAfter == "" && after != before {
				t.Errorf("ruleset differs from before the record:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if tt.wantAfter != "" && !strings.Contains(after, tt.wantAfter) {
				t.Errorf("ruleset lacks %q:\n%s", tt.wantAfter, after)
			}
			if _, err := os.Stat(record); !os.IsNotExist(err) {
				t.Errorf("record still there after RemoveCreatedTables (stat: %v)", err)
			}
			// Without a record: nothing to do.
			if removed, kept, err := RemoveCreatedTables(record); err != nil || removed != nil || kept != nil {
				t.Errorf("RemoveCreatedTables without a record = %q, %q, %v", removed, kept, err)
			}
		})
	}
}

// A record that cannot be read is an error naming it, and goes.
func TestRemoveCreatedTablesBadRecord(t *testing.T) {
	if netnsSkip != "" {
		t.Skip(netnsSkip)
	}
	record := filepath.Join(t.TempDir(), "netfilter-restore.json")
	if err := os.WriteFile(record, []byte("{nf_tables"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := RemoveCreatedTables(record)
	if err == nil || !strings.Contains(err.Error(), record) {
		t.Errorf("RemoveCreatedTables(bad record) = %v, want an error naming %s", err, record)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Errorf("bad record still there (stat: %v)", err)
	}
}
