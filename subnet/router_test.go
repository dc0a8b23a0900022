//go:build linux

package subnet

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/wgengine/router"

	"homenet/firewall"
)

// The router tests change routing and rules, so each runs in a network
// namespace of its own: the test re-executes itself under `unshare --net`.
const inNetnsEnv = "HOMENET_SUBNET_TEST_IN_NETNS"

// inNetns reports whether the calling test should run its body: true in
// the re-executed child, which lives in a fresh network namespace; false in
// the parent, which has run the child and reported its result. It skips
// when not root.
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inNetnsEnv) == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (re-runs itself under unshare --net); run as root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	cmd := exec.Command("unshare", "--net", os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a private network namespace: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("in a private network namespace:\n%s", out)
	}
	return false
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// snapshot is what must be identical before a router starts and after it
// closes.
func snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
		{"ip", "addr", "show", "dev", "tailscale0"},
	} {
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(args, " "), sh(t, args...))
	}
	// The link's flags (UP, LOWER_UP) and counters may differ; keep the
	// addresses only.
	return regexp.MustCompile(`(?m)^\d+: tailscale0: .*$\n\s+link/.*$`).ReplaceAllString(b.String(), "tailscale0")
}

// newTun creates a persistent TUN named tailscale0, as the engine would.
func newTun(t *testing.T) {
	t.Helper()
	sh(t, "ip", "tuntap", "add", "dev", "tailscale0", "mode", "tun")
	sh(t, "ip", "link", "set", "lo", "up")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "tailscale0").Run() })
}

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// fakeFW is a firewall.Firewall that records calls; its rules can be
// "flushed from outside".
type fakeFW struct {
	mu      sync.Mutex
	applied []firewall.Rules
	have    *firewall.Rules
	removed int
}

func (f *fakeFW) Name() string { return "fake" }
func (f *fakeFW) Apply(r firewall.Rules) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, r)
	f.have = &r
	return nil
}
func (f *fakeFW) Intact(r firewall.Rules) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.have != nil && f.have.Tun == r.Tun && f.have.WireGuardPort == r.WireGuardPort, nil
}
func (f *fakeFW) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed++
	f.have = nil
	return nil
}
func (f *fakeFW) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.have = nil
}
func (f *fakeFW) applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

var testCfg = &router.Config{
	LocalAddrs:   pfx("100.86.0.1/32", "fd7a:115c:a1e0:ab12:4843:cd96:6256:1/128"),
	Routes:       pfx("100.86.0.2/32", "100.86.0.3/32", "10.55.0.0/24", "fd7a:115c:a1e0::/48", "100.100.100.100/32"),
	LocalRoutes:  pfx("192.168.77.0/24"),
	SubnetRoutes: pfx("192.168.1.0/24", "0.0.0.0/0", "::/0"),
}

func TestRouterSetAndClose(t *testing.T) {
	if !inNetns(t) {
		return
	}
	newTun(t)
	before := snapshot(t)

	fw := &fakeFW{}
	r, err := NewRouter(RouterConfig{Tun: "tailscale0", Firewall: fw, Logf: t.Logf,
		Rules: firewall.Rules{TailnetPrefixes: pfx("100.86.0.0/16"), MasqueradeLAN: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Up(); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(testCfg.Clone()); err != nil {
		t.Fatal(err)
	}

	rules4 := sh(t, "ip", "-4", "rule")
	for _, want := range []string{
		"5310:	from all fwmark 0x80000/0xff0000 lookup main",
		"5330:	from all fwmark 0x80000/0xff0000 lookup default",
		"5350:	from all fwmark 0x80000/0xff0000 unreachable",
		"5370:	from all lookup 153",
	} {
		if !strings.Contains(rules4, want) {
			t.Errorf("ip -4 rule lacks %q:\n%s", want, rules4)
		}
		if rules6 := sh(t, "ip", "-6", "rule"); !strings.Contains(rules6, want) {
			t.Errorf("ip -6 rule lacks %q:\n%s", want, rules6)
		}
	}
	routes := sh(t, "ip", "-4", "route", "show", "table", "153") + sh(t, "ip", "-6", "route", "show", "table", "153")
	for _, want := range []string{
		"100.86.0.2 dev tailscale0", "100.86.0.3 dev tailscale0", "10.55.0.0/24 dev tailscale0",
		"100.100.100.100 dev tailscale0", "throw 192.168.77.0/24", "fd7a:115c:a1e0::/48 dev tailscale0",
	} {
		if !strings.Contains(routes, want) {
			t.Errorf("table 153 lacks %q:\n%s", want, routes)
		}
	}
	if main := sh(t, "ip", "route", "show", "table", "main"); strings.Contains(main, "tailscale0") {
		t.Errorf("main table has tun routes:\n%s", main)
	}
	addrs := sh(t, "ip", "addr", "show", "dev", "tailscale0")
	for _, want := range []string{"inet 100.86.0.1/32", "inet6 fd7a:115c:a1e0:ab12:4843:cd96:6256:1/128"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("tailscale0 lacks %q:\n%s", want, addrs)
		}
	}
	if fw.applies() != 1 {
		t.Errorf("firewall applied %d times, want 1", fw.applies())
	}
	if got := fw.applied[0]; got.Tun != "tailscale0" || !got.MasqueradeLAN || !slices.Equal(got.TailnetPrefixes, pfx("100.86.0.0/16")) {
		t.Errorf("firewall got %+v", got)
	}

	// Set with an equal config, even a copy, changes nothing.
	after1 := snapshot(t)
	for range 2 {
		if err := r.Set(testCfg.Clone()); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t); got != after1 {
			t.Errorf("second Set with the same config changed the system:\n--- before\n%s\n--- after\n%s", after1, got)
		}
	}

	// A changed config adds and removes only the difference.
	cfg2 := testCfg.Clone()
	cfg2.Routes = pfx("100.86.0.2/32", "100.86.0.9/32")
	cfg2.LocalRoutes = nil
	if err := r.Set(cfg2); err != nil {
		t.Fatal(err)
	}
	routes = sh(t, "ip", "-4", "route", "show", "table", "153") + sh(t, "ip", "-6", "route", "show", "table", "153")
	if !strings.Contains(routes, "100.86.0.9 dev tailscale0") || strings.Contains(routes, "100.86.0.3") ||
		strings.Contains(routes, "throw") || strings.Contains(routes, "fd7a") {
		t.Errorf("after a changed Set, table 153 is:\n%s", routes)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t); got != before {
		t.Errorf("Close did not restore rules and routes:\n--- before\n%s\n--- after Close\n%s", before, got)
	}
	if fw.removed != 1 {
		t.Errorf("firewall Remove called %d times, want 1", fw.removed)
	}
	if err := r.Set(testCfg); err == nil {
		t.Errorf("Set after Close succeeded")
	}
}

// TestRouterBesideTailscaled: a stock tailscaled's table 52 and rules
// 5210–5270, and another program's rule at one of our priorities, survive
// our router and our cleanup.
func TestRouterBesideTailscaled(t *testing.T) {
	if !inNetns(t) {
		return
	}
	newTun(t)
	sh(t, "ip", "tuntap", "add", "dev", "ts-stock", "mode", "tun")
	sh(t, "ip", "link", "set", "ts-stock", "up")
	for _, fam := range []string{"-4", "-6"} {
		sh(t, "ip", fam, "rule", "add", "pref", "5210", "fwmark", "0x80000/0xff0000", "table", "main")
		sh(t, "ip", fam, "rule", "add", "pref", "5230", "fwmark", "0x80000/0xff0000", "table", "default")
		sh(t, "ip", fam, "rule", "add", "pref", "5250", "fwmark", "0x80000/0xff0000", "unreachable")
		sh(t, "ip", fam, "rule", "add", "pref", "5270", "table", "52")
		// Someone else's rule at our priority, pointing elsewhere.
		sh(t, "ip", fam, "rule", "add", "pref", "5370", "fwmark", "0x1", "table", "99")
	}
	sh(t, "ip", "route", "add", "100.64.0.7/32", "dev", "ts-stock", "table", "52")
	sh(t, "ip", "route", "add", "10.1.2.0/24", "dev", "ts-stock", "table", "99")
	before := snapshot(t)

	r, err := NewRouter(RouterConfig{Tun: "tailscale0", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Up(); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(testCfg.Clone()); err != nil {
		t.Fatal(err)
	}
	// Rule order: the stock daemon's before ours.
	rules := sh(t, "ip", "-4", "rule")
	if i, j := strings.Index(rules, "lookup 52"), strings.Index(rules, "lookup 153"); i < 0 || j < 0 || i > j {
		t.Errorf("want tailscaled's lookup 52 before our lookup 153:\n%s", rules)
	}
	// A crashed run: Cleanup removes ours without Close.
	if err := Cleanup("", nil); err != nil {
		t.Logf("Cleanup: %v", err) // firewall backends may complain in a bare namespace
	}
	r.mu.Lock()
	r.closed = true // the "dead" router must not repair what Cleanup removed
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	sh(t, "ip", "addr", "flush", "dev", "tailscale0") // the kernel does this when the TUN dies
	sh(t, "ip", "link", "set", "tailscale0", "down")
	if got := snapshot(t); got != before {
		t.Errorf("Cleanup after a crash did not give back the state before:\n--- before\n%s\n--- after\n%s", before, got)
	}
}

// TestRouterWatchdog: rules, routes and netfilter rules removed from
// outside come back.
func TestRouterWatchdog(t *testing.T) {
	if !inNetns(t) {
		return
	}
	newTun(t)
	fw := &fakeFW{}
	r, err := NewRouter(RouterConfig{Tun: "tailscale0", Firewall: fw, Logf: t.Logf, CheckInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Up(); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(testCfg.Clone()); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t)

	sh(t, "ip", "-4", "rule", "del", "pref", "5370")
	sh(t, "ip", "-6", "rule", "del", "pref", "5310")
	sh(t, "ip", "-4", "route", "flush", "table", "153")
	sh(t, "ip", "addr", "del", "100.86.0.1/32", "dev", "tailscale0")
	fw.flush()
	n := fw.applies()

	deadline := time.Now().Add(5 * time.Second)
	for {
		got := snapshot(t)
		if got == want && fw.applies() > n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchdog did not restore within 5 s (firewall applies %d → %d):\n--- want\n%s\n--- got\n%s", n, fw.applies(), want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Repairs() == 0 {
		t.Errorf("Repairs = 0 after repairs")
	}
}

// TestRouterWatchdogNetfilter: with each real netfilter backend, rules
// flushed from outside come back. The nf_tables backends skip reading the
// ruleset while no change is notified; this checks that the watchdog still
// sees the flush.
func TestRouterWatchdogNetfilter(t *testing.T) {
	if !inNetns(t) {
		return
	}
	newTun(t)
	tests := []struct {
		kind  string
		flush []string
	}{
		{firewall.KindNftables, []string{"nft", "flush", "table", "inet", "homenet"}},
		{firewall.KindIPTablesNft, []string{"iptables-nft", "-F", "HN-FORWARD"}},
		{firewall.KindIPTablesLegacy, []string{"iptables-legacy", "-F", "HN-FORWARD"}},
	}
	rules := firewall.Rules{Tun: "tailscale0", TailnetPrefixes: pfx("10.77.0.0/16", "fd7a:115c:a1e0::/48"), MasqueradeLAN: true}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			if _, err := exec.LookPath(tt.flush[0]); err != nil {
				t.Skipf("%s not installed", tt.flush[0])
			}
			fw, err := firewall.New(tt.kind)
			if err != nil {
				t.Skipf("backend %s unavailable: %v", tt.kind, err)
			}
			r, err := NewRouter(RouterConfig{Tun: "tailscale0", Firewall: fw, Rules: rules, Logf: t.Logf, CheckInterval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Up(); err != nil {
				t.Fatal(err)
			}
			// Let the watchdog find the rules intact a few times, so that
			// the nf_tables backends trust their cache.
			time.Sleep(350 * time.Millisecond)
			if n := r.Repairs(); n != 0 {
				t.Fatalf("Repairs = %d before anything was removed", n)
			}
			sh(t, tt.flush...)
			deadline := time.Now().Add(5 * time.Second)
			for r.Repairs() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("watchdog did not restore the netfilter rules within 5 s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if ok, err := fw.Intact(rules); !ok || err != nil {
				t.Errorf("Intact after repair = %v, %v", ok, err)
			}
		})
	}
}
