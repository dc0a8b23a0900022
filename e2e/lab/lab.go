// Package lab builds throw-away network topologies out of Linux network
// namespaces for homenet's end-to-end tests: an "internet" bridge, NAT
// routers, a home gateway and hosts behind them, each host with its own
// network stack and its own /etc. It needs root.
//
// Every address lives inside namespaces the lab made; the machine's own
// interfaces, routes, rules and /etc are never touched. Everything a lab
// starts or creates is removed in t.Cleanup, also after a failed test.
//
//	l := lab.New(t)
//	inet := l.Internet()
//	gw := l.Host("gw", inet.Link("198.51.100.1/24"))
//	nat := l.NATRouter("nat1", inet.Link("198.51.100.11/24"), "10.1.0.1/24", lab.NATOpts{})
//	phone := l.Host("p1", nat.LAN.Link("10.1.0.2/24")) // default route via 10.1.0.1
//
// IPv6 is there only when asked for (ipv6.go): Net.EnableIPv6 makes the
// internet's owner a core router, Link.With6 gives a link an IPv6 address,
// NATOpts.LAN6 and ISPRouter route a /64 to a LAN. BIND runs bind9 for a
// zone with RFC 2136 updates, and CAWithDNS runs pebble resolving through
// it. CGNATHome puts these together: a home behind carrier-grade NAT with
// routed IPv6, phones on mobile networks, bind9 and pebble (cgnathome.go).
package lab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// NeedsRootMessage is the reason lab tests skip when not run as root.
const NeedsRootMessage = "e2e: needs root for network namespaces; run as root (CI does)"

// requiredTools are the commands the lab itself runs. Debian packages:
// iproute2 (ip), iptables, util-linux (nsenter), iputils-ping (ping).
var requiredTools = []string{"ip", "iptables", "nsenter", "ping", "sh", "sleep"}

var (
	labSeq    atomic.Int32
	sweepOnce sync.Once
)

// Lab is one test's topology. Create it with New; it is torn down when the
// test ends.
type Lab struct {
	t   testing.TB
	id  string // prefix of every namespace name: hn<pid>-<seq>
	dir string // short temporary directory: unix socket paths must stay < 108 bytes

	mu        sync.Mutex
	hosts     []*Host
	procs     []*Proc
	onFailure []func()
	inet      *Net
	nports    int
}

// New returns an empty lab. It skips the test when not root and fails it
// when a required tool is missing.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(NeedsRootMessage)
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("e2e: %s not found; install it: apt-get install -y iproute2 iptables iputils-ping util-linux", tool)
		}
	}
	sweepOnce.Do(func() { sweepStale(t) })

	dir, err := os.MkdirTemp("", "hn")
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{
		t:   t,
		id:  fmt.Sprintf("hn%d-%d", os.Getpid(), labSeq.Add(1)),
		dir: dir,
	}
	t.Cleanup(l.close)
	return l
}

// Dir is the lab's scratch directory, removed at the end of the test
// (unless HOMENET_E2E_KEEP=1).
func (l *Lab) Dir() string { return l.dir }

// OnFailure registers f to run, before teardown, if the test failed. Use it
// to dump logs and state while processes still run. Hooks run last first.
func (l *Lab) OnFailure(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onFailure = append(l.onFailure, f)
}

// Internet returns the lab's "internet": a bridge in a namespace of its own,
// with no address and no way out of the lab. Hosts join it with
// inet.Link("198.51.100.X/24").
func (l *Lab) Internet() *Net {
	l.t.Helper()
	if l.inet != nil {
		return l.inet
	}
	h := l.Host("inet")
	l.inet = h.Bridge("br0", "")
	return l.inet
}

// Net is a broadcast domain: a Linux bridge living in its owner's namespace.
type Net struct {
	Owner  *Host
	Bridge string
	// Gateway is the owner's address on the bridge, if it has one; hosts
	// that join get their default route through it unless told otherwise.
	Gateway netip.Addr
	// Gateway6 is the same for IPv6, set by EnableIPv6 (and by routers
	// with an IPv6 LAN); it serves links that have an IPv6 address.
	Gateway6 netip.Addr
}

// Link describes one interface of a host: which Net it is plugged into,
// its address (CIDR) and, optionally, its default gateway; and the same for
// IPv6 when the link has an IPv6 address (see With6).
type Link struct {
	Net   *Net
	Addr  netip.Prefix
	Gw    netip.Addr
	Addr6 netip.Prefix
	Gw6   netip.Addr
}

// Link returns a link into n with address addr (CIDR, e.g. "10.1.0.2/24");
// its default route goes via n's Gateway when n has one.
func (n *Net) Link(addr string) Link {
	return Link{Net: n, Addr: netip.MustParsePrefix(addr), Gw: n.Gateway, Gw6: n.Gateway6}
}

// With6 returns lk with the IPv6 address addr6 (CIDR, e.g.
// "2001:db8::5/64") besides its IPv4 one. The default IPv6 route goes via
// the Net's Gateway6 when it has one; the address is usable at once (no
// duplicate address detection).
func (lk Link) With6(addr6 string) Link {
	lk.Addr6 = netip.MustParsePrefix(addr6)
	return lk
}

// Via6 returns lk with its default IPv6 route through gw ("" for none).
func (lk Link) Via6(gw string) Link {
	lk.Gw6 = netip.Addr{}
	if gw != "" {
		lk.Gw6 = netip.MustParseAddr(gw)
	}
	return lk
}

// Via returns lk with its default route through gw ("" for none).
func (lk Link) Via(gw string) Link {
	lk.Gw = netip.Addr{}
	if gw != "" {
		lk.Gw = netip.MustParseAddr(gw)
	}
	return lk
}

// Host is a network namespace with its own mount namespace, in which /etc
// is a private overlay: what a test (or tailscaled) writes to
// /etc/resolv.conf there stays there. Interfaces are named eth0, eth1, … in
// the order of the links given to Lab.Host.
type Host struct {
	Name string
	NS   string // network namespace name, as in `ip netns list`
	Dir  string // scratch directory for this host's state and logs

	lab    *Lab
	anchor *exec.Cmd // holds the mount namespace; commands enter via nsenter
	ifaces int
	addrs  []netip.Prefix
	addrs6 []netip.Prefix // global IPv6 addresses, in the order added
	env    []string       // set by SetEnv; guarded by lab.mu
}

// Host creates a host with one interface per link. The first link with a
// gateway sets the default route.
func (l *Lab) Host(name string, links ...Link) *Host {
	l.t.Helper()
	h := &Host{
		Name: name,
		NS:   l.id + "-" + name,
		Dir:  l.dir + "/" + name,
		lab:  l,
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "add", h.NS).CombinedOutput(); err != nil {
		l.t.Fatalf("ip netns add %s: %v\n%s", h.NS, err, out)
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	h.startAnchor()
	h.MustRun("ip", "link", "set", "lo", "up")
	for _, lk := range links {
		h.AddLink(lk)
	}
	return h
}

// startAnchor starts the long-lived process whose mount namespace holds the
// private /etc: a tmpfs carries the overlay's upper layer, so nothing is
// written to the real /etc. `ip netns exec` has already made the mount
// namespace a slave of the machine's, so these mounts never propagate out.
func (h *Host) startAnchor() {
	t := h.lab.t
	t.Helper()
	ov := h.Dir + "/.etc"
	if err := os.MkdirAll(ov, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount -t tmpfs -o mode=0755 hn-etc "$1"
mkdir "$1/upper" "$1/work"
mount -t overlay hn-etc -o lowerdir=/etc,upperdir="$1/upper",workdir="$1/work" /etc
echo ready
exec sleep infinity`
	cmd := exec.Command("ip", "netns", "exec", h.NS, "sh", "-c", script, "sh", ov)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("host %s: starting namespace anchor: %v", h.Name, err)
	}
	h.anchor = cmd
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		h.anchor = nil
		t.Fatalf("host %s: could not give it a private /etc (tmpfs + overlay mount in its mount namespace): %s", h.Name, stderr.String())
	}
}

// AddLink plugs h into lk.Net with a new veth pair: ethN in h, a bridge
// port in the Net's owner.
func (h *Host) AddLink(lk Link) {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	l.nports++
	port := fmt.Sprintf("vp%d", l.nports)
	l.mu.Unlock()
	ifname := fmt.Sprintf("eth%d", h.ifaces)
	h.ifaces++
	owner := lk.Net.Owner
	// Create the pair directly in the two namespaces: nothing appears in
	// the machine's own namespace, not even for a moment.
	owner.MustRun("ip", "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", h.NS)
	owner.MustRun("ip", "link", "set", port, "master", lk.Net.Bridge, "up")
	h.MustRun("ip", "addr", "add", lk.Addr.String(), "dev", ifname)
	h.MustRun("ip", "link", "set", ifname, "up")
	h.addrs = append(h.addrs, lk.Addr)
	if lk.Gw.IsValid() && !h.hasDefaultRoute("-4") {
		h.MustRun("ip", "route", "add", "default", "via", lk.Gw.String(), "dev", ifname)
	}
	if lk.Addr6.IsValid() {
		h.MustRun("ip", "-6", "addr", "add", lk.Addr6.String(), "dev", ifname, "nodad")
		h.addrs6 = append(h.addrs6, lk.Addr6)
		if lk.Gw6.IsValid() && !h.hasDefaultRoute("-6") {
			h.MustRun("ip", "-6", "route", "add", "default", "via", lk.Gw6.String(), "dev", ifname)
		}
	}
}

// hasDefaultRoute reports whether h has a default route for family "-4"
// or "-6".
func (h *Host) hasDefaultRoute(family string) bool {
	out, _ := h.Run("ip", family, "route", "show", "default")
	return strings.TrimSpace(out) != ""
}

// Bridge creates a bridge in h, with address addr (CIDR) when not empty,
// and returns it as a Net other hosts can join.
func (h *Host) Bridge(name, addr string) *Net {
	h.lab.t.Helper()
	h.MustRun("ip", "link", "add", name, "type", "bridge")
	n := &Net{Owner: h, Bridge: name}
	if addr != "" {
		p := netip.MustParsePrefix(addr)
		h.MustRun("ip", "addr", "add", p.String(), "dev", name)
		h.addrs = append(h.addrs, p)
		n.Gateway = p.Addr()
	}
	h.MustRun("ip", "link", "set", name, "up")
	return n
}

// Addr returns the address of h's first interface.
func (h *Host) Addr() netip.Addr {
	if len(h.addrs) == 0 {
		h.lab.t.Fatalf("host %s has no address", h.Name)
	}
	return h.addrs[0].Addr()
}

// EnableForwarding turns on IPv4 forwarding in h.
func (h *Host) EnableForwarding() {
	h.MustRun("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
}

// NATOpts are the choices for a NAT router.
type NATOpts struct {
	// RandomFully adds --random-fully to MASQUERADE: every flow gets a
	// random source port, so the NAT behaves like a "hard" (symmetric)
	// NAT and direct paths cannot form through it.
	RandomFully bool
	// LAN6, when set (CIDR, e.g. "2001:db8:201::1/64"), also routes a
	// global IPv6 prefix to the LAN, untranslated, behind a stateful
	// firewall as on mobile networks: replies come in, new connections
	// from the WAN do not. The router takes this address on lan0; the WAN
	// link needs an IPv6 address on a Net with IPv6 (see Net.EnableIPv6),
	// whose owner gets a route for the prefix. See NATRouter.AddPrefix6.
	LAN6 string
}

// NATRouter is a host that masquerades its LAN behind its WAN address.
type NATRouter struct {
	*Host
	LAN *Net

	wan Link
}

// NATRouter creates a router with WAN interface eth0 on wan and a LAN
// bridge "lan0" with address lan (CIDR, e.g. "10.1.0.1/24"), which hosts on
// the LAN use as their default gateway. Traffic from the LAN leaving eth0
// is MASQUERADEd; unsolicited traffic from the WAN is dropped.
func (l *Lab) NATRouter(name string, wan Link, lan string, opts NATOpts) *NATRouter {
	l.t.Helper()
	r := l.natRouter(name, wan, lan, opts)
	if opts.LAN6 != "" {
		r.AddPrefix6(opts.LAN6)
		// Stateful, like a mobile network's: only what the LAN asked for
		// comes in. (INPUT stays open: neighbour discovery needs it.)
		r.MustRun("ip6tables", "-A", "FORWARD", "-i", "eth0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		r.MustRun("ip6tables", "-A", "FORWARD", "-i", "eth0", "-j", "DROP")
	}
	return r
}

// natRouter is NATRouter without IPv6.
func (l *Lab) natRouter(name string, wan Link, lan string, opts NATOpts) *NATRouter {
	l.t.Helper()
	h := l.Host(name, wan)
	r := &NATRouter{Host: h, LAN: h.Bridge("lan0", lan), wan: wan}
	h.EnableForwarding()
	args := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"}
	if opts.RandomFully {
		args = append(args, "--random-fully")
	}
	h.MustRun(args...)
	// Like every home router, drop unsolicited traffic from the WAN. This
	// matters for hole punching, not only for safety: a packet that
	// reaches the router itself unsolicited (say, a peer's disco ping to
	// WAN:41641 before our own first packet) would otherwise leave a
	// conntrack entry that takes the port, so MASQUERADE maps our later
	// packets to that peer to a different port and a direct path never
	// forms. A dropped packet's entry is never confirmed.
	for _, chain := range []string{"INPUT", "FORWARD"} {
		h.MustRun("iptables", "-A", chain, "-i", "eth0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		h.MustRun("iptables", "-A", chain, "-i", "eth0", "-j", "DROP")
	}
	return r
}

// WriteFile writes a file as seen from inside h, for example
// /etc/resolv.conf, which lands in h's private /etc.
func (h *Host) WriteFile(path string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "sh", "-c", `cat > "$1"`, "sh", path)
	cmd.Stdin = strings.NewReader(string(data))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("host %s: writing %s: %v: %s", h.Name, path, err, out)
	}
	return nil
}

// AddHosts adds a line "ip names…" to h's /etc/hosts (its private /etc),
// so that h resolves names to ip without DNS.
func (h *Host) AddHosts(ip netip.Addr, names ...string) {
	t := h.lab.t
	t.Helper()
	hosts, err := h.Output(10*time.Second, "cat", "/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	if hosts != "" && !strings.HasSuffix(hosts, "\n") {
		hosts += "\n"
	}
	hosts += ip.String() + "\t" + strings.Join(names, " ") + "\n"
	if err := h.WriteFile("/etc/hosts", []byte(hosts)); err != nil {
		t.Fatal(err)
	}
}

// close dumps diagnostics if the test failed, stops every process, kills
// whatever else runs in the lab's namespaces and deletes them.
func (l *Lab) close() {
	l.mu.Lock()
	hooks, procs, hosts := l.onFailure, l.procs, l.hosts
	l.mu.Unlock()
	if l.t.Failed() {
		for i := len(hooks) - 1; i >= 0; i-- {
			hooks[i]()
		}
		for _, p := range procs {
			p.dump()
		}
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
	for i := len(hosts) - 1; i >= 0; i-- {
		h := hosts[i]
		killNetnsPids(h.NS)
		if h.anchor != nil {
			h.anchor.Process.Kill()
			h.anchor.Wait()
		}
		if out, err := exec.Command("ip", "netns", "del", h.NS).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v: %s", h.NS, err, out)
		}
	}
	if os.Getenv("HOMENET_E2E_KEEP") == "1" {
		l.t.Logf("HOMENET_E2E_KEEP=1: keeping %s", l.dir)
		return
	}
	os.RemoveAll(l.dir)
}

// killNetnsPids SIGKILLs every process whose network namespace is ns.
func killNetnsPids(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

var staleNS = regexp.MustCompile(`^hn(\d+)-\d+-\S+`)

// sweepStale deletes namespaces left behind by lab processes that died
// without cleaning up (a killed `go test`). Only names in the lab's own
// pattern whose creating process is gone are touched.
func sweepStale(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleNS.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test binary still runs
		}
		killNetnsPids(f[0])
		exec.Command("ip", "netns", "del", f[0]).Run()
		t.Logf("lab: removed stale namespace %s", f[0])
	}
}

// Resolver gives h the extra address addr (on its loopback interface) and
// runs a DNS responder there that answers A queries for records
// ("name=IPv4"), NXDOMAIN for anything else. It models, for example, a
// cloud's metadata resolver at 100.100.2.136.
func (h *Host) Resolver(addr string, records ...string) *Proc {
	h.lab.t.Helper()
	ip := netip.MustParseAddr(addr)
	h.MustRun("ip", "addr", "add", netip.PrefixFrom(ip, ip.BitLen()).String(), "dev", "lo")
	args := []string{"dns-serve", "-listen", netip.AddrPortFrom(ip, 53).String()}
	for _, r := range records {
		args = append(args, "-record", r)
	}
	return h.LabtoolServer(args...)
}

// Labtool runs a labtool client subcommand (see e2e/internal/labtool) in h
// and returns its output.
func (h *Host) Labtool(timeout time.Duration, args ...string) (string, error) {
	return h.RunTimeout(timeout, append([]string{LabtoolBinary(h.lab.t)}, args...)...)
}

// LabtoolServer starts a labtool server subcommand (dns-serve, tcp-echo,
// whoami) in h and waits until it listens.
func (h *Host) LabtoolServer(args ...string) *Proc {
	t := h.lab.t
	t.Helper()
	bin := LabtoolBinary(t)
	// Servers of one kind in one host share a log: wait for one more
	// "listening on" than there was.
	logPath := fmt.Sprintf("%s/%s.log", h.Dir, args[0])
	before, _ := os.ReadFile(logPath)
	p := h.Start(args[0], nil, append([]string{bin}, args...)...)
	WaitFor(t, 10*time.Second, args[0]+" on "+h.Name+" to listen", func() error {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("exited: %v\n%s", err, p.Log())
		}
		if strings.Count(p.Log(), "listening on") <= strings.Count(string(before), "listening on") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	return p
}
