//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

// The iptables backend keeps everything in chains of its own, one per
// plan chain, each reached by a single jump at position 1 of the built-in
// chain. The HN- prefix cannot collide with a stock tailscaled's ts-*
// chains installed beside ours.
var iptChains = [numChains]struct {
	table, builtin, name string
}{
	chainInput:       {"filter", "INPUT", "HN-INPUT"},
	chainForward:     {"filter", "FORWARD", "HN-FORWARD"},
	chainPostrouting: {"nat", "POSTROUTING", "HN-POSTROUTING"},
	chainMSS:         {"mangle", "FORWARD", "HN-MSS"},
}

type iptablesFW struct {
	mu     sync.Mutex // serializes Apply, Intact and Remove
	name   string
	legacy bool         // x_tables: listing a table instantiates it
	fams   []iptFamily  // v4, then v6 if the kernel and binary have it
	cache  *intactCache // nil for legacy, which sends no change notifications
	writes int          // mutating commands run, for tests
	reads  int          // families read back by Intact, for tests
}

// iptFamily is the iptables or the ip6tables of the backend's variant.
type iptFamily struct {
	ipt  *iptables.IPTables
	v6   bool
	save string // the matching iptables-save; "" if there is none
}

func newIPTables(kind string) (*iptablesFW, error) {
	bin4, bin6 := "iptables", "ip6tables"
	if kind != KindIPTables {
		suffix := strings.TrimPrefix(kind, "iptables")
		bin4, bin6 = bin4+suffix, bin6+suffix
	}
	path4, err := exec.LookPath(bin4)
	if err != nil {
		return nil, fmt.Errorf("firewall: %s backend: %w", kind, err)
	}
	out, err := exec.Command(path4, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("firewall: %s --version: %w", path4, err)
	}
	fw := &iptablesFW{name: kind}
	if kind == KindIPTables {
		if v := variantOf(out); v != "" {
			fw.name = v
		}
	}
	fw.legacy = fw.name == KindIPTablesLegacy
	if fw.name == KindIPTablesNft {
		fw.cache = newIntactCache()
	}

	// Timeout is how long to wait for the xtables lock; 0 would wait forever.
	ipt4, err := iptables.New(iptables.Path(path4), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("firewall: %s: %w", bin4, err)
	}
	fw.fams = []iptFamily{{ipt: ipt4, save: saveBinary(bin4, fw.name)}}
	// IPv6 rules only where they can matter and can be installed: no IPv6
	// in the kernel means no IPv6 packets; no ip6tables binary means we
	// cannot filter them (and left nothing behind to remove).
	if kernelHasIPv6() {
		if path6, err := exec.LookPath(bin6); err == nil {
			ipt6, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6),
				iptables.Path(path6), iptables.Timeout(10))
			if err != nil {
				return nil, fmt.Errorf("firewall: %s: %w", bin6, err)
			}
			fw.fams = append(fw.fams, iptFamily{ipt: ipt6, v6: true, save: saveBinary(bin6, fw.name)})
		}
	}
	return fw, nil
}

// saveBinary returns the path of the iptables-save (or ip6tables-save) of
// the same variant as bin, an iptables or ip6tables binary of backend
// kind, or "" if there is none.
func saveBinary(bin, kind string) string {
	names := []string{bin + "-save"}
	if variant := strings.TrimPrefix(kind, "iptables"); !strings.HasSuffix(bin, variant) {
		// bin is the plain iptables, of a known variant: prefer the save
		// binary that names it, present since iptables 1.8; before, plain
		// iptables-save is legacy like the rest.
		names = []string{bin + variant + "-save", bin + "-save"}
	}
	for _, n := range names {
		if path, err := exec.LookPath(n); err == nil {
			return path
		}
	}
	return ""
}

func (fw *iptablesFW) Name() string { return fw.name }

func (fw *iptablesFW) Apply(r Rules) error {
	if err := r.Validate(); err != nil {
		return err
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if r.IsZero() {
		return fw.remove()
	}
	fw.cache.forget()
	p := plan(r)
	for _, fam := range fw.fams {
		for id, c := range iptChains {
			want := iptSpecs(c.name, p[id], fam.v6)
			if err := fw.applyChain(fam.ipt, c.table, c.builtin, c.name, want); err != nil {
				return fmt.Errorf("firewall: %s: %s/%s: %w", fw.name, c.table, c.name, err)
			}
		}
	}
	return nil
}

// applyChain makes chain contain exactly want (lines as `iptables -S`
// prints them) and be jumped to from builtin. It rewrites only rules that
// differ, so re-applying the same rules runs no mutating command and never
// opens a window in which a spoof drop is missing.
func (fw *iptablesFW) applyChain(ipt *iptables.IPTables, table, builtin, chain string, want []string) error {
	exists, err := ipt.ChainExists(table, chain)
	if err != nil {
		return err
	}
	if !exists {
		fw.writes++
		if err := ipt.NewChain(table, chain); err != nil {
			return err
		}
	}
	have, err := listRules(ipt, table, chain)
	if err != nil {
		return err
	}
	for i, line := range want {
		spec := strings.Fields(line)[2:] // drop "-A CHAIN"
		switch {
		case i >= len(have):
			fw.writes++
			err = ipt.Append(table, chain, spec...)
		case have[i] != line:
			fw.writes++
			err = ipt.Replace(table, chain, i+1, spec...)
		}
		if err != nil {
			return err
		}
	}
	for n := len(have); n > len(want); n-- {
		fw.writes++
		if err := ipt.Delete(table, chain, strconv.Itoa(n)); err != nil {
			return err
		}
	}
	jumped, err := ipt.Exists(table, builtin, "-j", chain)
	if err != nil {
		return err
	}
	if !jumped {
		fw.writes++
		return ipt.Insert(table, builtin, 1, "-j", chain)
	}
	return nil
}

func (fw *iptablesFW) Intact(r Rules) (bool, error) {
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
	p := plan(r)
	for _, fam := range fw.fams {
		ok, err := fw.familyIntact(fam, p)
		if err != nil || !ok {
			fw.cache.store(r, false)
			return false, err
		}
	}
	fw.cache.store(r, true)
	return true, nil
}

// familyIntact reads one family's ruleset back with a single
// iptables-save, all tables at once, and compares our chains and jumps
// with p. The watchdog runs this every few seconds, and each fork of
// iptables costs milliseconds of CPU (far more on a MIPS router), so it
// does not ask chain by chain.
func (fw *iptablesFW) familyIntact(fam iptFamily, p [numChains][]rule) (bool, error) {
	if fw.legacy {
		// iptables-legacy-save only dumps tables listed as loaded, so it
		// instantiates none; a table that is not there holds nothing of
		// ours anyway, and this spares the fork.
		loaded := legacyTables(fam.v6)
		for _, c := range iptChains {
			if !slices.Contains(loaded, c.table) {
				return false, nil
			}
		}
	}
	if fam.save == "" {
		return fw.familyIntactByListing(fam, p)
	}
	fw.reads++
	out, err := exec.Command(fam.save).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return false, fmt.Errorf("firewall: %s: reading rules with %s: %w", fw.name, fam.save, err)
	}
	have := parseSave(out)
	for id, c := range iptChains {
		t := have[c.table]
		if t == nil || !t.chains[c.name] ||
			!slices.Equal(t.rules[c.name], iptSpecs(c.name, p[id], fam.v6)) ||
			!slices.Contains(t.rules[c.builtin], iptJump(c.builtin, c.name)) {
			return false, nil
		}
	}
	return true, nil
}

// familyIntactByListing is familyIntact where there is no iptables-save:
// three forks of iptables per chain.
func (fw *iptablesFW) familyIntactByListing(fam iptFamily, p [numChains][]rule) (bool, error) {
	fw.reads++
	for id, c := range iptChains {
		exists, err := fam.ipt.ChainExists(c.table, c.name)
		if err != nil || !exists {
			return false, err
		}
		have, err := listRules(fam.ipt, c.table, c.name)
		if err != nil {
			return false, err
		}
		if !slices.Equal(have, iptSpecs(c.name, p[id], fam.v6)) {
			return false, nil
		}
		jumped, err := fam.ipt.Exists(c.table, c.builtin, "-j", c.name)
		if err != nil || !jumped {
			return false, err
		}
	}
	return true, nil
}

// iptJump is the rule, as iptables-save prints it, by which builtin
// reaches chain.
func iptJump(builtin, chain string) string {
	return "-A " + builtin + " -j " + chain
}

// savedTable is one table of iptables-save output: the chains it declares
// and each chain's "-A" lines, in order.
type savedTable struct {
	chains map[string]bool
	rules  map[string][]string
}

// parseSave parses iptables-save output into its tables, by name. It
// keeps rule lines verbatim, to be compared with iptSpecs, and ignores
// comments, policies and COMMIT.
func parseSave(out []byte) map[string]*savedTable {
	tables := map[string]*savedTable{}
	var t *savedTable
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "*"):
			t = &savedTable{chains: map[string]bool{}, rules: map[string][]string{}}
			tables[line[1:]] = t
		case t == nil:
			// Comments before the first table.
		case strings.HasPrefix(line, ":"):
			if name, _, _ := strings.Cut(line[1:], " "); name != "" {
				t.chains[name] = true
			}
		case strings.HasPrefix(line, "-A "):
			if chain, _, _ := strings.Cut(line[3:], " "); chain != "" {
				t.rules[chain] = append(t.rules[chain], line)
			}
		}
	}
	return tables
}

func (fw *iptablesFW) Remove() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.remove()
}

func (fw *iptablesFW) remove() error {
	fw.cache.forget()
	var errs []error
	for _, fam := range fw.fams {
		for _, c := range iptChains {
			if err := fw.removeChain(fam.ipt, fam.v6, c.table, c.builtin, c.name); err != nil {
				errs = append(errs, fmt.Errorf("firewall: %s: removing %s/%s: %w", fw.name, c.table, c.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (fw *iptablesFW) removeChain(ipt *iptables.IPTables, v6 bool, table, builtin, chain string) error {
	// A legacy table that was never instantiated holds nothing of ours,
	// and listing it would instantiate it: stay out.
	if fw.legacy && !legacyTableLoaded(v6, table) {
		return nil
	}
	exists, err := ipt.ChainExists(table, chain)
	if err != nil || !exists {
		return err // a jump to a missing chain cannot exist
	}
	// Delete every jump, in case one was ever added twice.
	for range 64 {
		jumped, err := ipt.Exists(table, builtin, "-j", chain)
		if err != nil {
			return err
		}
		if !jumped {
			break
		}
		fw.writes++
		if err := ipt.Delete(table, builtin, "-j", chain); err != nil {
			return err
		}
	}
	fw.writes++
	return ipt.ClearAndDeleteChain(table, chain)
}

// listRules returns the "-A" lines of chain as `iptables -S` prints them.
func listRules(ipt *iptables.IPTables, table, chain string) ([]string, error) {
	lines, err := ipt.List(table, chain)
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			rules = append(rules, l)
		}
	}
	return rules, nil
}

// iptSpecs renders rules for one family as `iptables -S` prints them
// (options in iptables' canonical order: -s, -i, -o, -p, -m, -j), so that
// the installed chain can be compared line by line.
func iptSpecs(chain string, rules []rule, v6 bool) []string {
	var lines []string
	for _, r := range rules {
		if !r.forFamily(v6) {
			continue
		}
		s := []string{"-A", chain}
		if r.src.IsValid() {
			s = append(s, "-s", r.src.String())
		}
		if r.iif != "" {
			if r.iifNot {
				s = append(s, "!")
			}
			s = append(s, "-i", r.iif)
		}
		if r.oif != "" {
			if r.oifNot {
				s = append(s, "!")
			}
			s = append(s, "-o", r.oif)
		}
		if r.udpPort != 0 {
			s = append(s, "-p", "udp", "-m", "udp", "--dport", strconv.Itoa(int(r.udpPort)))
		}
		if r.tcpSYN {
			s = append(s, "-p", "tcp", "-m", "tcp", "--tcp-flags", "SYN,RST", "SYN")
		}
		switch r.verdict {
		case vAccept:
			s = append(s, "-j", "ACCEPT")
		case vDrop:
			s = append(s, "-j", "DROP")
		case vReturn:
			s = append(s, "-j", "RETURN")
		case vMasquerade:
			s = append(s, "-j", "MASQUERADE")
		case vClampMSS:
			s = append(s, "-j", "TCPMSS", "--clamp-mss-to-pmtu")
		}
		lines = append(lines, strings.Join(s, " "))
	}
	return lines
}

// legacyTableLoaded reports whether the x_tables table exists in this
// network namespace (tables are instantiated on first use).
func legacyTableLoaded(v6 bool, table string) bool {
	return slices.Contains(legacyTables(v6), table)
}

// legacyTables lists the x_tables tables instantiated in this network
// namespace.
func legacyTables(v6 bool) []string {
	name := "/proc/net/ip_tables_names"
	if v6 {
		name = "/proc/net/ip6_tables_names"
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}
