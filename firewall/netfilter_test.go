//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run against real netfilter, never the host's: TestMain
// re-executes the test binary in a network namespace of its own (the
// in-kernel equivalent of `unshare --net`), and the child refuses to run
// unless its namespace differs from the parent's.

const netnsEnv = "HOMENET_FIREWALL_TEST_PARENT_NETNS"

// netnsSkip is why the netfilter tests skip; "" when they can run.
var netnsSkip string

func TestMain(m *testing.M) {
	if parent := os.Getenv(netnsEnv); parent != "" {
		self, err := os.Readlink("/proc/self/ns/net")
		if err != nil || self == parent {
			fmt.Fprintf(os.Stderr, "firewall test: refusing to touch netfilter: netns %q (err %v) is the parent's %q\n", self, err, parent)
			os.Exit(2)
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		netnsSkip = "firewall: needs root to create a network namespace"
		os.Exit(m.Run())
	}
	parent, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		netnsSkip = fmt.Sprintf("firewall: cannot read own netns: %v", err)
		os.Exit(m.Run())
	}
	exe, err := os.Executable()
	if err != nil {
		netnsSkip = fmt.Sprintf("firewall: cannot re-exec test binary: %v", err)
		os.Exit(m.Run())
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), netnsEnv+"="+parent)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exitErr):
		os.Exit(exitErr.ExitCode())
	}
	netnsSkip = fmt.Sprintf("firewall: cannot create a network namespace: %v", err)
	os.Exit(m.Run())
}

// backends are the kinds exercised by every netfilter test, each with the
// tools that show its state.
var backends = []struct {
	kind       string
	save4      string // iptables-save of the matching variant; "" for nftables
	save6      string
	bin4, bin6 string // iptables binaries for tampering and baselines
}{
	{KindIPTablesNft, "iptables-nft-save", "ip6tables-nft-save", "iptables-nft", "ip6tables-nft"},
	{KindIPTablesLegacy, "iptables-legacy-save", "ip6tables-legacy-save", "iptables-legacy", "ip6tables-legacy"},
	{KindNftables, "", "", "", ""},
}

// forEachBackend runs f as a subtest per available backend, each starting
// from an empty netfilter state.
func forEachBackend(t *testing.T, f func(t *testing.T, kind string, fw Firewall)) {
	t.Helper()
	if netnsSkip != "" {
		t.Skip(netnsSkip)
	}
	need(t, "nft") // to reset state and to inspect it
	for _, b := range backends {
		t.Run(b.kind, func(t *testing.T) {
			for _, bin := range []string{b.save4, b.save6, b.bin4, b.bin6} {
				if bin != "" {
					need(t, bin)
				}
			}
			fw, err := New(b.kind)
			if err != nil {
				t.Skipf("backend %s unavailable: %v", b.kind, err)
			}
			if fw.Name() != b.kind {
				t.Fatalf("Name() = %q, want %q", fw.Name(), b.kind)
			}
			resetNetfilter(t)
			t.Cleanup(func() { resetNetfilter(t) })
			f(t, b.kind, fw)
		})
	}
}

func need(t testing.TB, bin string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		t.Skipf("%s not installed (apt-get install -y iptables nftables)", bin)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func runStdin(t testing.TB, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s\ninput:\n%s", name, strings.Join(args, " "), err, out, stdin)
	}
}

// resetNetfilter empties this namespace's netfilter: every nf_tables table
// (iptables-nft's included) and every x_tables (legacy) chain.
func resetNetfilter(t testing.TB) {
	t.Helper()
	run(t, "nft", "flush", "ruleset")
	for _, fam := range []struct{ names, bin string }{
		{"/proc/net/ip_tables_names", "iptables-legacy"},
		{"/proc/net/ip6_tables_names", "ip6tables-legacy"},
	} {
		b, err := os.ReadFile(fam.names)
		if err != nil {
			continue
		}
		for _, table := range strings.Fields(string(b)) {
			run(t, fam.bin, "-t", table, "-F")
			run(t, fam.bin, "-t", table, "-X")
		}
	}
}

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot is all netfilter state of the namespace, in text: the nf_tables
// ruleset (which includes iptables-nft's) and the legacy tables.
func snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(run(t, "nft", "-s", "list", "ruleset"))
	for _, save := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		if _, err := exec.LookPath(save); err != nil {
			continue
		}
		for _, line := range strings.Split(run(t, save), "\n") {
			if !strings.HasPrefix(line, "#") {
				b.WriteString(countersRE.ReplaceAllString(line, "[-]") + "\n")
			}
		}
	}
	return b.String()
}

// view is what the backend installed, as its own tools print it.
func view(t *testing.T, kind string) (v4, v6 string) {
	t.Helper()
	for _, b := range backends {
		if b.kind == kind && b.save4 != "" {
			return run(t, b.save4), run(t, b.save6)
		}
	}
	s := run(t, "nft", "-s", "list", "ruleset")
	return s, s
}

func binsOf(kind string) (bin4, bin6 string) {
	for _, b := range backends {
		if b.kind == kind {
			return b.bin4, b.bin6
		}
	}
	return "", ""
}

func apply(t testing.TB, fw Firewall, r Rules) {
	t.Helper()
	if err := fw.Apply(r); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func remove(t *testing.T, fw Firewall) {
	t.Helper()
	if err := fw.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}

func intact(t testing.TB, fw Firewall, r Rules) bool {
	t.Helper()
	ok, err := fw.Intact(r)
	if err != nil {
		t.Fatalf("Intact: %v", err)
	}
	return ok
}

func writesOf(fw Firewall) int {
	switch fw := fw.(type) {
	case *iptablesFW:
		return fw.writes
	case *nftablesFW:
		return fw.writes
	}
	panic(fmt.Sprintf("unknown backend %T", fw))
}

func gatewayRules() Rules {
	return Rules{
		Tun:             "tailscale0",
		TailnetPrefixes: []netip.Prefix{pfx4, pfx6},
		MasqueradeLAN:   true,
		WANInterface:    "eth1",
		WireGuardPort:   41641,
	}
}

// 1. Apply installs the expected rules, and nothing about 100.64.0.0/10.
func TestApplyInstalls(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		apply(t, fw, gatewayRules())
		v4, v6 := view(t, kind)
		var want4, want6 []string
		if kind == KindNftables {
			want4 = []string{
				"table inet homenet {",
				"chain input {\n\t\ttype filter hook input priority filter; policy accept;",
				`iifname "lo" return`,
				`ip saddr 10.77.0.0/16 iifname != "tailscale0" drop`,
				`ip6 saddr fd7a:115c:a1e0::/48 iifname != "tailscale0" drop`,
				"udp dport 41641 accept",
				"chain forward {\n\t\ttype filter hook forward priority filter; policy accept;",
				`iifname "tailscale0" accept`,
				`oifname "tailscale0" accept`,
				"chain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;",
				`ip saddr 10.77.0.0/16 oifname != "tailscale0" masquerade`,
				`ip6 saddr fd7a:115c:a1e0::/48 oifname != "tailscale0" masquerade`,
				"chain mss {\n\t\ttype filter hook forward priority mangle; policy accept;",
				`iifname "tailscale0" tcp flags syn / syn,rst tcp option maxseg size set rt mtu`,
				`oifname "tailscale0" tcp flags syn / syn,rst tcp option maxseg size set rt mtu`,
			}
		} else {
			common := func(p string) []string {
				return []string{
					"-A INPUT -j HN-INPUT",
					"-A HN-INPUT -i lo -j RETURN",
					"-A HN-INPUT -s " + p + " ! -i tailscale0 -j DROP",
					"-A HN-INPUT -p udp -m udp --dport 41641 -j ACCEPT",
					"-A FORWARD -j HN-FORWARD",
					"-A HN-FORWARD -s " + p + " ! -i tailscale0 -j DROP",
					"-A HN-FORWARD -i tailscale0 -j ACCEPT",
					"-A HN-FORWARD -o tailscale0 -j ACCEPT",
					"-A POSTROUTING -j HN-POSTROUTING",
					"-A HN-POSTROUTING -s " + p + " ! -o tailscale0 -j MASQUERADE",
					"-A FORWARD -j HN-MSS",
					"-A HN-MSS -i tailscale0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
					"-A HN-MSS -o tailscale0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
				}
			}
			want4, want6 = common("10.77.0.0/16"), common("fd7a:115c:a1e0::/48")
			if strings.Contains(v4, "fd7a:") || strings.Contains(v6, "10.77.") {
				t.Errorf("families mixed up:\n%s\n%s", v4, v6)
			}
		}
		for _, w := range want4 {
			if !strings.Contains(v4, w) {
				t.Errorf("missing %q in\n%s", w, v4)
			}
		}
		for _, w := range want6 {
			if !strings.Contains(v6, w) {
				t.Errorf("missing %q in\n%s", w, v6)
			}
		}
		if strings.Contains(v4+v6, "100.64.") {
			t.Errorf("a rule mentions 100.64.0.0/10:\n%s\n%s", v4, v6)
		}
		if !intact(t, fw, gatewayRules()) {
			t.Error("Intact = false right after Apply")
		}
	})
}

// 2. Apply twice == Apply once, and the second Apply changes nothing at all,
// also from a fresh Firewall value (a restarted process).
func TestApplyIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		r := gatewayRules()
		apply(t, fw, r)
		once := snapshot(t)
		w := writesOf(fw)
		apply(t, fw, r)
		if got := writesOf(fw) - w; got != 0 {
			t.Errorf("second Apply made %d changes, want 0", got)
		}
		fw2, err := New(kind)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, fw2, r)
		if got := writesOf(fw2); got != 0 {
			t.Errorf("Apply from a new Firewall made %d changes, want 0", got)
		}
		if twice := snapshot(t); twice != once {
			t.Errorf("ruleset changed by a repeated Apply:\nonce:\n%s\ntwice:\n%s", once, twice)
		}
	})
}

// 3. Apply with changed Rules updates to exactly the new set: the result
// equals applying the new Rules to an empty system.
func TestApplyUpdates(t *testing.T) {
	base := gatewayRules()
	steps := []struct {
		name string
		edit func(*Rules)
	}{
		{"exit node on", func(r *Rules) { r.ExitNode = true }},
		{"masquerade only to WAN", func(r *Rules) { r.MasqueradeLAN, r.ExitNode = false, true }},
		{"port change", func(r *Rules) { r.WireGuardPort = 41642 }},
		{"port off", func(r *Rules) { r.WireGuardPort = 0 }},
		{"v4 only", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{pfx4} }},
		{"other prefix", func(r *Rules) { r.TailnetPrefixes = []netip.Prefix{netip.MustParsePrefix("100.86.0.0/16"), pfx6} }},
		{"tun renamed", func(r *Rules) { r.Tun = "tailscale1" }},
		{"bare", func(r *Rules) { *r = Rules{Tun: "tailscale0"} }},
	}
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		for _, step := range steps {
			t.Run(step.name, func(t *testing.T) {
				next := base
				next.TailnetPrefixes = append([]netip.Prefix(nil), base.TailnetPrefixes...)
				step.edit(&next)

				resetNetfilter(t)
				apply(t, fw, base)
				freshBase := snapshot(t)
				resetNetfilter(t)
				apply(t, fw, next)
				fresh := snapshot(t)

				resetNetfilter(t)
				apply(t, fw, base)
				apply(t, fw, next)
				if got := snapshot(t); got != fresh {
					t.Errorf("update result differs from a fresh Apply:\nupdated:\n%s\nfresh:\n%s", got, fresh)
				}
				if !intact(t, fw, next) {
					t.Error("Intact(new) = false after update")
				}
				if intact(t, fw, base) && freshBase != fresh {
					t.Error("Intact(old) = true after update")
				}
				// And back.
				apply(t, fw, base)
				if !intact(t, fw, base) {
					t.Error("Intact(old) = false after updating back")
				}
			})
		}
	})
}

// 4. Intact notices a flush (firewall reload) or a lost jump, and re-Apply
// repairs it.
func TestIntact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		r := gatewayRules()
		if intact(t, fw, r) {
			t.Error("Intact = true before Apply")
		}
		if !intact(t, fw, Rules{}) {
			t.Error("Intact(zero Rules) = false")
		}
		bin4, bin6 := binsOf(kind)
		type tamper struct {
			name string
			cmds [][]string
		}
		var tampers []tamper
		if kind == KindNftables {
			tampers = []tamper{
				{"flush table", [][]string{{"nft", "flush", "table", "inet", "homenet"}}},
				{"delete chain", [][]string{{"nft", "delete", "chain", "inet", "homenet", "mss"}}},
				{"delete table", [][]string{{"nft", "delete", "table", "inet", "homenet"}}},
				{"extra rule", [][]string{{"nft", "add", "rule", "inet", "homenet", "input", "accept"}}},
				{"policy", [][]string{{"nft", "add", "chain", "inet", "homenet", "input", "{ policy drop; }"}}},
				{"dormant", [][]string{{"nft", "add", "table", "inet", "homenet", "{ flags dormant; }"}}},
			}
		} else {
			tampers = []tamper{
				{"flush chain", [][]string{{bin4, "-F", "HN-FORWARD"}}},
				{"flush v6 chain", [][]string{{bin6, "-t", "nat", "-F", "HN-POSTROUTING"}}},
				{"delete jump", [][]string{{bin4, "-t", "mangle", "-D", "FORWARD", "-j", "HN-MSS"}}},
				{"delete v6 jump", [][]string{{bin6, "-D", "INPUT", "-j", "HN-INPUT"}}},
				{"delete chain", [][]string{{bin4, "-t", "mangle", "-D", "FORWARD", "-j", "HN-MSS"}, {bin4, "-t", "mangle", "-F", "HN-MSS"}, {bin4, "-t", "mangle", "-X", "HN-MSS"}}},
				{"replace rule", [][]string{{bin4, "-R", "HN-FORWARD", "2", "-i", "tailscale9", "-j", "ACCEPT"}}},
				{"delete rule", [][]string{{bin6, "-D", "HN-FORWARD", "3"}}},
				{"extra rule", [][]string{{bin4, "-A", "HN-INPUT", "-j", "ACCEPT"}}},
				{"reload", [][]string{{bin4, "-F"}, {bin4, "-X"}}},
			}
		}
		checkers := []struct {
			name string
			fw   Firewall
		}{{"", fw}}
		if kind != KindNftables {
			// The same without iptables-save, as where it is missing.
			slow, err := newIPTables(kind)
			if err != nil {
				t.Fatal(err)
			}
			for i := range slow.fams {
				slow.fams[i].save = ""
			}
			checkers = append(checkers, struct {
				name string
				fw   Firewall
			}{" by listing", slow})
		}
		for _, c := range checkers {
			for _, tamper := range tampers {
				t.Run(tamper.name+c.name, func(t *testing.T) {
					apply(t, c.fw, r)
					if !intact(t, c.fw, r) {
						t.Fatal("Intact = false after Apply")
					}
					for _, a := range tamper.cmds {
						run(t, a[0], a[1:]...)
					}
					if intact(t, c.fw, r) {
						t.Fatal("Intact = true after tampering")
					}
					apply(t, c.fw, r)
					if !intact(t, c.fw, r) {
						t.Fatal("Intact = false after re-Apply")
					}
				})
			}
		}
	})
}

// Intact reads the ruleset back only when it may have changed: the
// nf_tables backends after a change notification, for other Rules, or
// once the cache is older than its maximum age; iptables-legacy, which
// sends no notifications, every time.
func TestIntactReads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		r := gatewayRules()
		other := gatewayRules()
		other.WireGuardPort++
		notified := kind != KindIPTablesLegacy
		steps := []struct {
			name     string
			before   func(t *testing.T)
			rules    Rules
			want     bool
			wantRead bool
		}{
			{"first", nil, r, true, true},
			{"unchanged", nil, r, true, !notified},
			{"unchanged again", nil, r, true, !notified},
			{"unrelated change", func(t *testing.T) { run(t, "nft", "add", "table", "inet", "hnother") }, r, true, true},
			{"unchanged after it", nil, r, true, !notified},
			{"other rules", nil, other, false, true},
			{"false is not cached", nil, other, false, true},
			{"back", nil, r, true, true},
			{"after a no-op Apply", func(t *testing.T) { apply(t, fw, r) }, r, true, true},
			{"unchanged after Apply", nil, r, true, !notified},
			{"after maximum age", func(t *testing.T) { cacheOf(fw).maxAge = 0 }, r, true, true},
			{"still after maximum age", nil, r, true, true},
			{"our chain flushed", func(t *testing.T) { flushOurs(t, kind) }, r, false, true},
		}
		apply(t, fw, r)
		for _, step := range steps {
			if step.before != nil {
				step.before(t)
			}
			n := readsOf(fw)
			if got := intact(t, fw, step.rules); got != step.want {
				t.Errorf("%s: Intact = %v, want %v", step.name, got, step.want)
			}
			if read := readsOf(fw) > n; read != step.wantRead {
				t.Errorf("%s: read the ruleset = %v, want %v", step.name, read, step.wantRead)
			}
		}
	})
}

// flushOurs empties one of the backend's chains from outside.
func flushOurs(t *testing.T, kind string) {
	t.Helper()
	if kind == KindNftables {
		run(t, "nft", "flush", "chain", "inet", "homenet", "forward")
		return
	}
	bin4, _ := binsOf(kind)
	run(t, bin4, "-F", "HN-FORWARD")
}

func readsOf(fw Firewall) int {
	switch fw := fw.(type) {
	case *iptablesFW:
		return fw.reads
	case *nftablesFW:
		return fw.reads
	}
	panic(fmt.Sprintf("unknown backend %T", fw))
}

// cacheOf returns the backend's Intact cache; a throwaway one for
// iptables-legacy, which has none.
func cacheOf(fw Firewall) *intactCache {
	var c *intactCache
	switch fw := fw.(type) {
	case *iptablesFW:
		c = fw.cache
	case *nftablesFW:
		c = fw.cache
	}
	if c == nil {
		c = newIntactCache()
	}
	return c
}

// Intact on a clean system finds nothing and, like Remove, creates
// nothing: listing an iptables-legacy table would instantiate it.
func TestIntactClean(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		before := snapshot(t)
		if intact(t, fw, gatewayRules()) {
			t.Error("Intact = true on a clean system")
		}
		if after := snapshot(t); after != before {
			t.Errorf("Intact on a clean system changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// stockTailscaled is a ruleset like a stock tailscaled's beside ours (and a
// system's own table for nftables). It also instantiates every built-in
// chain, so that "Remove restores the pre-Apply ruleset" is exact: with
// iptables-nft an empty system gains empty filter/nat/mangle tables on first
// use, which Remove leaves; RemoveCreatedTables takes them away
// (tables_test.go).
const stockTailscaled4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ts-forward - [0:0]
:ts-input - [0:0]
-A INPUT -j ts-input
-A FORWARD -j ts-forward
-A ts-forward -i tailscale0 -j MARK --set-xmark 0x40000/0xff0000
-A ts-forward -m mark --mark 0x40000/0xff0000 -j ACCEPT
-A ts-forward -s 100.64.0.0/10 -o tailscale0 -j DROP
-A ts-forward -o tailscale0 -j ACCEPT
-A ts-input -s 100.64.0.0/10 ! -i tailscale0 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ts-postrouting - [0:0]
-A POSTROUTING -j ts-postrouting
-A ts-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
`

var stockTailscaled6 = strings.NewReplacer(
	"-A ts-forward -s 100.64.0.0/10 -o tailscale0 -j DROP\n", "",
	"-A ts-input -s 100.64.0.0/10 ! -i tailscale0 -j DROP\n", "",
).Replace(stockTailscaled4)

const systemNft = `table inet fw4test {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "wan" ip saddr 192.0.2.0/24 drop
	}
}
`

func installStock(t *testing.T, kind string) {
	t.Helper()
	bin4, bin6 := binsOf(kind)
	if kind == KindNftables {
		// tailscaled's default is iptables; on an nft system that is
		// iptables-nft, which shares nf_tables with us.
		bin4, bin6 = "iptables-nft", "ip6tables-nft"
		runStdin(t, systemNft, "nft", "-f", "-")
	}
	need(t, bin4+"-restore")
	need(t, bin6+"-restore")
	runStdin(t, stockTailscaled4, bin4+"-restore")
	runStdin(t, stockTailscaled6, bin6+"-restore")
}

// 5 and 6. Remove restores the exact pre-Apply ruleset, also when another
// Firewall value (after a crash) removes, and leaves a stock tailscaled's
// chains alone throughout.
func TestRemoveRestores(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		installStock(t, kind)
		before := snapshot(t)
		stock := tsLines(before)
		if len(stock) < 5 {
			t.Fatalf("stock tailscaled rules missing from snapshot:\n%s", before)
		}

		t.Run("normal", func(t *testing.T) {
			apply(t, fw, gatewayRules())
			if got := tsLines(snapshot(t)); strings.Join(got, "\n") != strings.Join(stock, "\n") {
				t.Errorf("Apply changed tailscaled's chains:\n%s\nwant\n%s", got, stock)
			}
			remove(t, fw)
			if after := snapshot(t); after != before {
				t.Errorf("Remove left a different ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
		t.Run("after crash", func(t *testing.T) {
			crashed, err := New(kind)
			if err != nil {
				t.Fatal(err)
			}
			apply(t, crashed, gatewayRules())
			fresh, err := New(kind)
			if err != nil {
				t.Fatal(err)
			}
			remove(t, fresh)
			if after := snapshot(t); after != before {
				t.Errorf("Remove after crash left a different ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
		t.Run("zero Rules", func(t *testing.T) {
			apply(t, fw, gatewayRules())
			apply(t, fw, Rules{})
			if after := snapshot(t); after != before {
				t.Errorf("Apply(Rules{}) left a different ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
		t.Run("twice", func(t *testing.T) {
			remove(t, fw)
			if after := snapshot(t); after != before {
				t.Errorf("Remove without Apply changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	})
}

// tsLines are the lines of a snapshot that belong to the stock tailscaled
// (or the system table) installed by installStock.
func tsLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "ts-") || strings.Contains(l, "0x00040000") || strings.Contains(l, "0x40000") ||
			strings.Contains(l, "192.0.2.0/24") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// 5. On a clean system Remove is a no-op: it must not even instantiate
// tables.
func TestRemoveClean(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		before := snapshot(t)
		remove(t, fw)
		remove(t, fw)
		if after := snapshot(t); after != before {
			t.Errorf("Remove on a clean system changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if got := writesOf(fw); got != 0 {
			t.Errorf("Remove on a clean system made %d changes", got)
		}
	})
}

func TestApplyInvalid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		before := snapshot(t)
		bad := gatewayRules()
		bad.TailnetPrefixes = []netip.Prefix{netip.MustParsePrefix("10.77.0.1/16")}
		if err := fw.Apply(bad); err == nil {
			t.Fatal("Apply with a non-masked prefix succeeded")
		}
		if _, err := fw.Intact(bad); err == nil {
			t.Fatal("Intact with a non-masked prefix succeeded")
		}
		if after := snapshot(t); after != before {
			t.Errorf("failed Apply changed the ruleset:\n%s", after)
		}
	})
}

// 7. Packet level: a forwarded packet with a tailnet source arriving on a
// LAN interface is dropped by our rules (and only because of them).
//
//	peer netns                 test netns
//	hnv1 192.168.77.2/24  ---  hnv0 192.168.77.1/24
//	     10.77.0.5/32          hnd0 192.168.88.1/24 (veth to hnd1, no one behind)
//
// The peer pings 192.168.88.2 from each source; a test-owned nft table
// counts what reaches prerouting and, after our filter chains (priority
// 10), forward.
func TestSpoofedPacketDropped(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string, fw Firewall) {
		need(t, "ip")
		need(t, "ping")
		need(t, "nsenter")
		peer := newPeerNetns(t)
		inPeer := func(args ...string) string {
			return run(t, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(peer) + "/ns/net"}, args...)...)
		}
		run(t, "ip", "link", "add", "hnv0", "type", "veth", "peer", "name", "hnv1", "netns", strconv.Itoa(peer))
		t.Cleanup(func() { exec.Command("ip", "link", "del", "hnv0").Run() })
		// The far side: a veth whose peer nobody answers on, so forwarded
		// packets end in a failed neighbour lookup.
		run(t, "ip", "link", "add", "hnd0", "type", "veth", "peer", "name", "hnd1")
		t.Cleanup(func() { exec.Command("ip", "link", "del", "hnd0").Run() })
		run(t, "ip", "link", "set", "hnd1", "up")
		run(t, "ip", "addr", "add", "192.168.77.1/24", "dev", "hnv0")
		run(t, "ip", "addr", "add", "192.168.88.1/24", "dev", "hnd0")
		run(t, "ip", "link", "set", "hnv0", "up")
		run(t, "ip", "link", "set", "hnd0", "up")
		for k, v := range map[string]string{
			"net/ipv4/ip_forward":          "1",
			"net/ipv4/conf/all/rp_filter":  "0",
			"net/ipv4/conf/hnv0/rp_filter": "0",
		} {
			if err := os.WriteFile("/proc/sys/"+k, []byte(v+"\n"), 0); err != nil {
				t.Fatal(err)
			}
		}
		inPeer("ip", "addr", "add", "192.168.77.2/24", "dev", "hnv1")
		inPeer("ip", "addr", "add", "10.77.0.5/32", "dev", "hnv1")
		inPeer("ip", "link", "set", "hnv1", "up")
		inPeer("ip", "route", "add", "192.168.88.0/24", "via", "192.168.77.1")

		const counters = `table inet hntest {
	counter pre_spoofed {}
	counter fwd_spoofed {}
	counter fwd_lan {}
	chain count_pre {
		type filter hook prerouting priority raw; policy accept;
		ip saddr 10.77.0.5 counter name "pre_spoofed"
	}
	chain count_fwd {
		type filter hook forward priority 10; policy accept;
		ip saddr 10.77.0.5 counter name "fwd_spoofed"
		ip saddr 192.168.77.2 counter name "fwd_lan"
	}
}
`
		runStdin(t, counters, "nft", "-f", "-")
		count := func(name string) int {
			out := run(t, "nft", "list", "counter", "inet", "hntest", name)
			m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no counter in %q", out)
			}
			n, _ := strconv.Atoi(m[1])
			return n
		}
		ping := func(src string) {
			// No reply will come (nothing answers behind the dummy); only
			// the counters matter.
			exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(peer)+"/ns/net",
				"ping", "-n", "-c", "1", "-W", "0.2", "-I", src, "192.168.88.2").Run()
		}

		// Wait for the veth link and the neighbour entry, so the counted
		// pings aren't lost to a link still coming up on a busy machine.
		warm := false
		for i := 0; i < 50 && !warm; i++ {
			warm = exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(peer)+"/ns/net",
				"ping", "-n", "-c", "1", "-W", "0.2", "192.168.77.1").Run() == nil
		}
		if !warm {
			t.Fatal("peer can't reach 192.168.77.1: test topology broken")
		}
		ping("10.77.0.5")
		if n := count("fwd_spoofed"); n != 1 {
			t.Fatalf("without our rules, %d spoofed packets forwarded, want 1 (test topology broken?)", n)
		}

		r := gatewayRules()
		r.Tun = "hntun0"
		apply(t, fw, r)
		ping("10.77.0.5")
		ping("192.168.77.2")
		if n := count("pre_spoofed"); n != 2 {
			t.Errorf("%d spoofed packets arrived, want 2", n)
		}
		if n := count("fwd_spoofed"); n != 1 {
			t.Errorf("with our rules, spoofed packets forwarded = %d, want still 1", n)
		}
		if n := count("fwd_lan"); n != 1 {
			t.Errorf("LAN-sourced packets forwarded = %d, want 1", n)
		}

		remove(t, fw)
		ping("10.77.0.5")
		if n := count("fwd_spoofed"); n != 2 {
			t.Errorf("after Remove, spoofed packets forwarded = %d, want 2", n)
		}
	})
}

// newPeerNetns starts a process in a new network namespace and returns its
// pid; the namespace lives until the test ends.
func newPeerNetns(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting peer netns: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until the child is in its own namespace (it is from clone on,
	// but /proc may lag the exec).
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"); err == nil {
			return cmd.Process.Pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("peer netns did not appear")
	return 0
}

// RemoveAll cleans up after every backend at once, as after a change of
// backend between runs.
func TestRemoveAll(t *testing.T) {
	if netnsSkip != "" {
		t.Skip(netnsSkip)
	}
	for _, bin := range []string{"nft", "iptables-nft-restore", "ip6tables-nft-restore", "iptables-legacy-restore", "ip6tables-legacy-restore"} {
		need(t, bin)
	}
	resetNetfilter(t)
	t.Cleanup(func() { resetNetfilter(t) })
	installStock(t, KindNftables) // iptables-nft tailscaled and a system nft table
	installStock(t, KindIPTablesLegacy)
	before := snapshot(t)
	for _, b := range backends {
		fw, err := New(b.kind)
		if err != nil {
			t.Fatalf("New(%s): %v", b.kind, err)
		}
		apply(t, fw, gatewayRules())
	}
	if err := RemoveAll(); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	if after := snapshot(t); after != before {
		t.Errorf("RemoveAll left a different ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// nftChanges sees every commit to nf_tables that completed before it is
// asked, and counts an overflowed queue as a change.
func TestNftChanges(t *testing.T) {
	if netnsSkip != "" {
		t.Skip(netnsSkip)
	}
	need(t, "nft")
	resetNetfilter(t)
	t.Cleanup(func() { resetNetfilter(t) })
	c, err := newNftChanges()
	if err != nil {
		t.Fatal(err)
	}
	if c.changed() {
		t.Error("changed = true before any change")
	}
	pokeNftables(t, 0)
	if !c.changed() {
		t.Error("changed = false right after a commit")
	}
	if c.changed() {
		t.Error("changed = true twice for one commit")
	}

	// Overflow: far more notifications than the smallest queue holds.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		pokeNftables(t, i)
	}
	if !c.changed() {
		t.Error("changed = false after an overflow")
	}
	if c.changed() {
		t.Error("changed = true after draining an overflow")
	}
}
