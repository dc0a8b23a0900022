package lab_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// The lab's own tests: they check the topology works as the scenario tests
// assume, without homenet.

func TestMain(m *testing.M) { lab.Main(m) }

// natLab is the shape every scenario uses: a server on the internet and
// two hosts, each behind its own NAT router.
type natLab struct {
	l        *lab.Lab
	srv      *lab.Host
	p1, p2   *lab.Host
	nat1     *lab.NATRouter
	nat2     *lab.NATRouter
	inetNet  *lab.Net
	homeHost *lab.Host
}

func newNATLab(t *testing.T, randomFully2 bool) *natLab {
	l := lab.New(t)
	inet := l.Internet()
	n := &natLab{l: l, inetNet: inet}
	n.srv = l.Host("srv", inet.Link("198.51.100.200/24"))
	n.nat1 = l.NATRouter("nat1", inet.Link("198.51.100.11/24"), "10.1.0.1/24", lab.NATOpts{})
	n.nat2 = l.NATRouter("nat2", inet.Link("198.51.100.12/24"), "10.2.0.1/24", lab.NATOpts{RandomFully: randomFully2})
	n.p1 = l.Host("p1", n.nat1.LAN.Link("10.1.0.2/24"))
	n.p2 = l.Host("p2", n.nat2.LAN.Link("10.2.0.2/24"))
	return n
}

func TestNATRewritesSource(t *testing.T) {
	n := newNATLab(t, true)
	n.srv.LabtoolServer("whoami", "-listen", ":9999")

	for _, h := range []*lab.Host{n.p1, n.p2} {
		if out, err := h.Run("ping", "-n", "-c", "1", "-W", "2", "198.51.100.200"); err != nil {
			t.Fatalf("%s cannot ping the internet server: %v\n%s", h.Name, err, out)
		}
	}

	seen := func(h *lab.Host, proto string, lport int) netip.AddrPort {
		t.Helper()
		out, err := h.Labtool(10*time.Second, "whoami-query", "-addr", "198.51.100.200:9999", "-proto", proto, "-lport", fmt.Sprint(lport))
		if err != nil {
			t.Fatalf("whoami from %s: %v", h.Name, err)
		}
		ap, err := netip.ParseAddrPort(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("whoami from %s: %q: %v", h.Name, out, err)
		}
		return ap
	}

	// Plain MASQUERADE: source address rewritten, source port kept; this is
	// what lets tailscale's direct paths form.
	if got, want := seen(n.p1, "udp", 41641), netip.MustParseAddrPort("198.51.100.11:41641"); got != want {
		t.Errorf("p1 (plain MASQUERADE) UDP seen as %v, want %v", got, want)
	}
	if got := seen(n.p1, "tcp", 0); got.Addr() != netip.MustParseAddr("198.51.100.11") {
		t.Errorf("p1 TCP seen from %v, want 198.51.100.11", got.Addr())
	}

	// A peer's packet that reaches the NAT before our own first packet to
	// that peer (hole punching from both sides at once) must not take the
	// port: the router drops it, and our mapping still keeps 41641.
	n.srv.LabtoolServer("whoami", "-listen", ":9998", "-poke", "198.51.100.11:41642")
	time.Sleep(100 * time.Millisecond)
	out, err := n.p1.Labtool(10*time.Second, "whoami-query", "-addr", "198.51.100.200:9998", "-proto", "udp", "-lport", "41642")
	if err != nil || strings.TrimSpace(out) != "198.51.100.11:41642" {
		t.Errorf("after an unsolicited packet to 198.51.100.11:41642, p1's packets from port 41642 are seen as %q (%v), want 198.51.100.11:41642", out, err)
	}

	// --random-fully: address rewritten, ports randomized per flow. One
	// port could stay the same by chance (about 1 in 28000), three cannot.
	kept := 0
	for _, lport := range []int{41641, 41642, 41643} {
		got := seen(n.p2, "udp", lport)
		if got.Addr() != netip.MustParseAddr("198.51.100.12") {
			t.Errorf("p2 (random-fully) UDP seen from %v, want 198.51.100.12", got)
		}
		if int(got.Port()) == lport {
			kept++
		}
	}
	if kept == 3 {
		t.Errorf("p2 behind --random-fully kept its source port three times; the NAT does not randomize")
	}

	// The NATs let nothing in, and the LANs cannot see each other.
	if out, err := n.srv.Run("ping", "-n", "-c", "1", "-W", "1", "10.1.0.2"); err == nil {
		t.Errorf("internet server reached the private host 10.1.0.2 behind nat1:\n%s", out)
	}
	if out, err := n.p1.Run("ping", "-n", "-c", "1", "-W", "1", "10.2.0.2"); err == nil {
		t.Errorf("p1 reached p2's private address:\n%s", out)
	}
}

func TestHomeLAN(t *testing.T) {
	l := lab.New(t)
	inet := l.Internet()
	gw := l.Host("gw", inet.Link("198.51.100.1/24"))
	home := gw.Bridge("lan0", "192.168.1.1/24")
	lanHost := l.Host("lan1", home.Link("192.168.1.10/24"))
	if got := gw.Addr(); got != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("gw.Addr() = %v, want its first link's address", got)
	}
	if out, err := lanHost.Run("ping", "-n", "-c", "1", "-W", "2", "192.168.1.1"); err != nil {
		t.Fatalf("LAN host cannot ping gw: %v\n%s", err, out)
	}
	out := lanHost.MustRun("ip", "-4", "route", "show", "default")
	if !strings.Contains(out, "via 192.168.1.1 dev eth0") {
		t.Errorf("LAN host default route = %q, want via 192.168.1.1", out)
	}
}

// TestPrivateEtc: /etc written inside a host stays in that host.
func TestPrivateEtc(t *testing.T) {
	before, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	l := lab.New(t)
	a, b := l.Host("a"), l.Host("b")
	const conf = "nameserver 192.0.2.53\n"
	if err := a.WriteFile("/etc/resolv.conf", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	// tailscaled's "direct" DNS mode renames files in /etc: that must work
	// and stay private too.
	a.MustRun("sh", "-c", "cp /etc/resolv.conf /etc/x.tmp && mv /etc/x.tmp /etc/resolv.conf && touch /etc/resolv.pre-tailscale-backup.conf")
	if got := a.MustRun("cat", "/etc/resolv.conf"); got != conf {
		t.Errorf("a's /etc/resolv.conf = %q, want %q", got, conf)
	}
	if got, _ := b.Run("cat", "/etc/resolv.conf"); got != string(before) {
		t.Errorf("b's /etc/resolv.conf = %q, want the machine's %q", got, before)
	}
	after, _ := os.ReadFile("/etc/resolv.conf")
	if string(after) != string(before) {
		t.Errorf("the machine's /etc/resolv.conf changed to %q", after)
	}
	if _, err := os.Stat("/etc/resolv.pre-tailscale-backup.conf"); err == nil {
		t.Errorf("a file written to /etc inside a host appeared in the machine's /etc")
	}
}

// TestCleanup: after a test, its namespaces and processes are gone, also
// when the test failed.
func TestCleanup(t *testing.T) {
	var names []string
	var pids []int
	t.Run("inner", func(t *testing.T) {
		l := lab.New(t)
		inet := l.Internet()
		h := l.Host("h", inet.Link("198.51.100.5/24"))
		p := h.Start("sleeper", nil, "sleep", "600")
		// A process started behind the lab's back, in the namespace.
		out := h.MustRun("sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!")
		var stray int
		fmt.Sscan(out, &stray)
		names = append(names, h.NS, inet.Owner.NS)
		pids = append(pids, p.Pid(), stray)
	})
	list, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range names {
		if strings.Contains(string(list), ns) {
			t.Errorf("namespace %s still exists after the test", ns)
		}
	}
	time.Sleep(100 * time.Millisecond) // the stray is reaped by init
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d still runs after the test: %s", pid, b)
		}
	}
}

// TestCloudResolverDropRule shows the lab can see the problem the
// disable-linux-cgnat-drop-rule attribute solves: a resolver at
// 100.100.2.136 answers a host until tailscaled's kind of rule (drop
// 100.64.0.0/10 sources not from tailscale0) is installed.
func TestCloudResolverDropRule(t *testing.T) {
	l := lab.New(t)
	inet := l.Internet()
	cloud := l.NATRouter("cloud", inet.Link("198.51.100.30/24"), "10.30.0.1/24", lab.NATOpts{})
	cloud.Resolver("100.100.2.136", "metadata.cloud.test=10.30.0.99")
	vm := l.Host("vm", cloud.LAN.Link("10.30.0.2/24"))
	if err := vm.WriteFile("/etc/resolv.conf", []byte("nameserver 100.100.2.136\noptions timeout:1 attempts:2\n")); err != nil {
		t.Fatal(err)
	}
	query := func() error {
		out, err := vm.Labtool(10*time.Second, "dns-query", "-server", "100.100.2.136:53", "-name", "metadata.cloud.test", "-timeout", "2s")
		if err == nil && strings.TrimSpace(out) != "10.30.0.99" {
			return fmt.Errorf("answer %q, want 10.30.0.99", out)
		}
		return err
	}
	if err := query(); err != nil {
		t.Fatalf("VM cannot query its cloud resolver: %v", err)
	}
	if out, err := vm.Run("getent", "hosts", "metadata.cloud.test"); err != nil || !strings.Contains(out, "10.30.0.99") {
		t.Fatalf("getent through the VM's resolv.conf: %v\n%s", err, out)
	}
	rule := []string{"INPUT", "-s", "100.64.0.0/10", "!", "-i", "tailscale0", "-j", "DROP"}
	vm.MustRun(append([]string{"iptables", "-I"}, rule...)...)
	if err := query(); err == nil {
		t.Fatalf("query succeeded despite the CGNAT drop rule; the lab would not catch a missing attribute")
	}
	vm.MustRun(append([]string{"iptables", "-D"}, rule...)...)
	if err := query(); err != nil {
		t.Fatalf("query fails after removing the drop rule: %v", err)
	}
}

// TestTailscaledStarts runs the real tailscaled behind a NAT: it must come
// up, create its TUN and wait for a login. This builds (or reuses) the
// cached tailscale binaries.
func TestTailscaledStarts(t *testing.T) {
	n := newNATLab(t, false)
	p := n.l.Phone(n.p1)
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.BackendState != "NeedsLogin" && st.BackendState != "NoState" {
		t.Errorf("BackendState = %q, want NeedsLogin", st.BackendState)
	}
	if out, err := p.Run("ip", "link", "show", "tailscale0"); err != nil {
		t.Errorf("no tailscale0 in the phone's namespace: %v\n%s", err, out)
	}
	if _, err := p.IP4(); err == nil {
		t.Errorf("a phone that never logged in has a tailnet address")
	}
}
