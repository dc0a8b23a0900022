package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/control"
	"homenet/e2e/lab"
	"homenet/firewall"
	"tailscale.com/ipn/ipnstate"
)

// The gateway scenarios' network:
//
//	WAN.0/24 ─┬─ gw .1     homenet serve with [gateway] enabled; default via .254
//	          │   └─ lan0 192.168.1.1/24 ── lanhost 192.168.1.10  HTTP :80 (no default route)
//	          ├─ isp .254  routes (no NAT) to 203.0.113.0/24 ── www 203.0.113.200  whoami :9999
//	          └─ nat1 .11 ── 10.1.0.0/24 ── p1 10.1.0.2  tailscaled (the phone)
//
// The web host www sits off the WAN's subnet: tailscaled's exit-node
// filter refuses the exit node's own connected networks. With WAN =
// 100.64.0 the gateway's WAN address is in carrier-grade NAT space, as
// behind a CGNAT ISP (the ISP routes it here rather than translating it, so
// www sees it). LAN and web hosts have no route back to the tailnet, so
// every reply depends on the gateway's masquerading: when its netfilter
// rules are gone, access is gone, which the flush scenario needs.
type gwNet struct {
	lab     *lab.Lab
	opts    gwOpts
	gw      *lab.Host
	lanHost *lab.Host
	inet    *lab.Host
	hn      *lab.Homenet
	phone   *lab.Phone
	fwKind  string // the netfilter backend in use
}

type gwOpts struct {
	Prefix4  string // tailnet.prefix4; "" for the default
	WAN      string // first three octets of the internet /24; "" for publicWAN
	Firewall string // gateway.firewall; "" for auto
	NoIPT    bool   // hide every iptables binary on the gateway
}

const (
	gwLANHostIP     = "192.168.1.10"
	gwWWWIP         = "203.0.113.200"
	gwLANPrefix     = "192.168.1.0/24"
	gatewayTag      = "tag:gateway"
	gwHTTPPort      = 80
	gwWhoamiPort    = 9999
	gwHTTPHelperEnv = "HOMENET_E2E_HTTP_SERVE"
	gwLogLevel      = "debug"
	gwUpTimeout     = 60 * time.Second
)

// The e2e test binary doubles as the LAN host's web server: run with
// HOMENET_E2E_HTTP_SERVE=ADDR it serves a page naming the client's address
// and never returns to the tests.
func init() {
	if addr := os.Getenv(gwHTTPHelperEnv); addr != "" {
		gwServeHTTP(addr)
		os.Exit(1)
	}
}

func gwServeHTTP(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println("listening on", ln.Addr())
	name, _ := os.Hostname()
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s %s from %s\n", r.Method, r.URL, r.RemoteAddr)
		io.WriteString(w, "hello from the LAN host "+name+"; you came from "+r.RemoteAddr+"\n")
	}))
}

func newGwNet(t *testing.T, opts gwOpts) *gwNet {
	if opts.WAN == "" {
		opts.WAN = publicWAN
	}
	l := lab.New(t)
	inetNet := l.Internet()
	isp := l.Host("isp", inetNet.Link(opts.WAN+".254/24"))
	isp.EnableForwarding()
	public := isp.Bridge("pub0", "203.0.113.1/24")
	gw := l.Host("gw", inetNet.Link(opts.WAN+".1/24").Via(opts.WAN+".254"))
	lan := gw.Bridge("lan0", "192.168.1.1/24")
	if opts.NoIPT {
		gw.HideIPTables()
	}
	n := &gwNet{
		lab:     l,
		opts:    opts,
		gw:      gw,
		lanHost: l.Host("lanhost", lan.Link(gwLANHostIP+"/24").Via("")),
		inet:    l.Host("www", public.Link(gwWWWIP+"/24")),
	}

	p := n.lanHost.Start("http", []string{fmt.Sprintf("%s=:%d", gwHTTPHelperEnv, gwHTTPPort)}, os.Args[0])
	lab.WaitFor(t, 10*time.Second, "the LAN host's web server", func() error {
		if !strings.Contains(p.Log(), "listening on") {
			return fmt.Errorf("not listening yet:\n%s", p.Log())
		}
		return nil
	})
	n.inet.LabtoolServer("whoami", "-listen", fmt.Sprintf(":%d", gwWhoamiPort))
	n.fwKind = opts.Firewall
	if n.fwKind == "" || n.fwKind == "auto" {
		n.fwKind, _ = firewall.Detect()
	}
	n.baseFirewall(t)

	extra := "[gateway]\nenabled = true\nexit_node = true\n"
	if opts.Firewall != "" {
		extra += fmt.Sprintf("firewall = %q\n", opts.Firewall)
	}
	n.hn = l.NewHomenet(gw, lab.HomenetConfig{Prefix4: opts.Prefix4, Extra: extra})

	nat := l.NATRouter("nat1", inetNet.Link(opts.WAN+".11/24").Via(opts.WAN+".254"), "10.1.0.1/24", lab.NATOpts{})
	n.phone = l.Phone(l.Host("p1", nat.LAN.Link("10.1.0.2/24")))
	l.OnFailure(func() { n.dumpGateway(t) })
	return n
}

func (n *gwNet) wanIP(host int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("%s.%d", n.opts.WAN, host))
}

// start starts homenet serve on the gateway and waits until the agent is
// Running with its routes approved, as seen from control.
func (n *gwNet) start(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	n.hn.StartArgs("--log-level", gwLogLevel)
	lab.WaitFor(t, gwUpTimeout, "the gateway agent to be online with approved routes", func() error {
		gw, err := n.gatewayNode()
		if err != nil {
			return err
		}
		if !gw.Online {
			return fmt.Errorf("gateway node %s not online", gw.Name)
		}
		for _, want := range []string{gwLANPrefix, "0.0.0.0/0", "::/0"} {
			if !slices.Contains(gw.ApprovedRoutes, netip.MustParsePrefix(want)) {
				return fmt.Errorf("gateway node approved routes %v (advertised %v) lack %s", gw.ApprovedRoutes, gw.AdvertisedRoutes, want)
			}
		}
		if !gw.KeyExpiry.IsZero() {
			return fmt.Errorf("gateway node expires at %v; want never", gw.KeyExpiry)
		}
		return nil
	})
	return time.Since(start)
}

// gatewayCLI runs the stock tailscale CLI against the agent's LocalAPI
// socket (state_dir/gateway/tailscaled.sock) on the gateway.
func (n *gwNet) gatewayCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	_, tailscale := lab.TailscaleBinaries(t)
	sock := n.hn.StateDir + "/gateway/tailscaled.sock"
	return n.gw.Output(15*time.Second, append([]string{tailscale, "--socket=" + sock}, args...)...)
}

// gatewayNode returns the node registered with tag:gateway.
func (n *gwNet) gatewayNode() (control.NodeInfo, error) {
	nodes, err := n.hn.Nodes()
	if err != nil {
		return control.NodeInfo{}, err
	}
	var found []control.NodeInfo
	for _, nd := range nodes {
		if slices.Contains(nd.Tags, gatewayTag) {
			found = append(found, nd)
		}
	}
	if len(found) != 1 {
		return control.NodeInfo{}, fmt.Errorf("%d nodes tagged %s, want 1: %+v", len(found), gatewayTag, nodes)
	}
	return found[0], nil
}

// join logs the phone in with --accept-routes and waits until it sees the
// gateway offering the LAN and an exit node. It returns the gateway's
// tailnet IPv4 address and what names it to `tailscale set --exit-node`:
// its IPv6 address, because the CLI looks addresses up among a peer's
// TailscaleIPs, which hold IPv4 only inside 100.64.0.0/10.
func (n *gwNet) join(t *testing.T) (gwIP netip.Addr, exitArg string) {
	t.Helper()
	key, err := n.hn.CreateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.phone.Up(n.hn.URL, key, "--accept-routes"); err != nil {
		t.Fatalf("tailscale up --accept-routes: %v", err)
	}
	lab.WaitFor(t, joinTimeout, "the phone to see the gateway with the LAN route and as an exit node", func() error {
		st, err := n.phone.Status()
		if err != nil {
			return err
		}
		ps := gatewayPeer(st)
		if ps == nil {
			return fmt.Errorf("no peer tagged %s (peers: %d)", gatewayTag, len(st.Peer))
		}
		if ps.PrimaryRoutes == nil || !slices.Contains(ps.PrimaryRoutes.AsSlice(), netip.MustParsePrefix(gwLANPrefix)) {
			return fmt.Errorf("gateway peer's primary routes %v lack %s", ps.PrimaryRoutes, gwLANPrefix)
		}
		if !ps.ExitNodeOption {
			return fmt.Errorf("gateway peer is not offered as an exit node")
		}
		for _, ip := range ps.AllowedIPs.All() {
			if ip.Addr().Is4() && ip.IsSingleIP() {
				gwIP = ip.Addr()
			}
		}
		if !gwIP.IsValid() {
			return fmt.Errorf("gateway peer has no IPv4 address in %v", ps.AllowedIPs)
		}
		for _, ip := range ps.TailscaleIPs {
			if ip.Is6() {
				exitArg = ip.String()
			}
		}
		if exitArg == "" {
			return fmt.Errorf("gateway peer has no IPv6 tailnet address in %v", ps.TailscaleIPs)
		}
		return nil
	})
	return gwIP, exitArg
}

func gatewayPeer(st *ipnstate.Status) *ipnstate.PeerStatus {
	for _, ps := range st.Peer {
		if ps.Tags != nil && slices.Contains(ps.Tags.AsSlice(), gatewayTag) {
			return ps
		}
	}
	return nil
}

var gwCameFromRe = regexp.MustCompile(`you came from (\S+)`)

// httpLAN fetches the LAN host's page from the phone and returns the
// client address the LAN host saw.
func (n *gwNet) httpLAN(timeout time.Duration) (string, error) {
	out, err := n.phone.Labtool(timeout+5*time.Second, "http-get", "-timeout="+timeout.String(), fmt.Sprintf("http://%s:%d/", gwLANHostIP, gwHTTPPort))
	if err != nil {
		return "", err
	}
	m := gwCameFromRe.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected page:\n%s", out)
	}
	return m[1], nil
}

// whoami asks the internet host which address the phone's TCP connection
// came from.
func (n *gwNet) whoami(timeout time.Duration) (netip.Addr, error) {
	out, err := n.phone.Labtool(timeout+5*time.Second, "whoami-query", "-proto=tcp", "-timeout="+timeout.String(),
		"-addr", netip.AddrPortFrom(netip.MustParseAddr(gwWWWIP), gwWhoamiPort).String())
	if err != nil {
		return netip.Addr{}, err
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(out))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("whoami answered %q", out)
	}
	return ap.Addr(), nil
}

// gwState is what must be the same before homenet first runs and after it
// stops: netfilter, policy rules, every routing table, the links, and the
// sysctls the agent may touch. It is read from outside the gateway's mount
// namespace, so it sees the iptables binaries even when the gateway hides
// them. Nothing is left out, empty tables included.
func (n *gwNet) gwState(t *testing.T) string {
	t.Helper()
	return gwJoin(n.gwSections(t))
}

// gwSection is one command's part of gwState.
type gwSection struct {
	cmd []string
	out string // normalized
}

func (n *gwNet) gwSections(t *testing.T) []gwSection {
	t.Helper()
	cmds := [][]string{
		{"nft", "list", "ruleset"},
		{"iptables-nft-save"}, {"ip6tables-nft-save"},
		{"iptables-legacy-save"}, {"ip6tables-legacy-save"},
		{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
		{"ip", "-br", "link"},
		{"sh", "-c", "cd /proc/sys && grep -H . net/ipv4/ip_forward net/ipv4/conf/*/forwarding net/ipv4/conf/*/accept_redirects " +
			"net/ipv4/conf/all/src_valid_mark net/ipv6/conf/*/forwarding net/ipv6/conf/*/accept_ra net/ipv4/conf/*/rp_filter"},
	}
	var secs []gwSection
	for _, c := range cmds {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		secs = append(secs, gwSection{cmd: c, out: gwNormalize(n.gwExec(t, "", c...))})
	}
	return secs
}

func gwJoin(secs []gwSection) string {
	var b strings.Builder
	for _, s := range secs {
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(s.cmd, " "), s.out)
	}
	return b.String()
}

var (
	gwNftTable     = regexp.MustCompile(`(?ms)^table (\S+ \S+) \{\n(.*?)^\}\n`)
	gwNftChain     = regexp.MustCompile(`(?ms)^\tchain .*?^\t\}\n`)
	gwNftBaseChain = regexp.MustCompile(`^\s*chain \S+ \{\s*type \w+ hook \w+ priority [^;]+; policy accept;\s*\}\s*$`)
	gwSaveTable    = regexp.MustCompile(`(?ms)^\*(\S+)\n(.*?)^COMMIT\n`)
	gwSaveBuiltin  = regexp.MustCompile(`^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT \[n:n\]$`)
)

// gwEmptyTables names the tables of `nft list ruleset` or `iptables-save`
// output that hold only empty built-in chains with policy ACCEPT.
func gwEmptyTables(s string) []string {
	var empty []string
	for _, m := range gwNftTable.FindAllStringSubmatch(s, -1) {
		if !slices.ContainsFunc(gwNftChain.FindAllString(m[2], -1), func(chain string) bool {
			return !gwNftBaseChain.MatchString(strings.ReplaceAll(chain, "\n", " "))
		}) {
			empty = append(empty, "table "+m[1])
		}
	}
	for _, m := range gwSaveTable.FindAllStringSubmatch(s, -1) {
		if !slices.ContainsFunc(strings.Split(strings.TrimSpace(m[2]), "\n"), func(l string) bool {
			return !gwSaveBuiltin.MatchString(l)
		}) {
			empty = append(empty, "*"+m[1])
		}
	}
	return empty
}

// gwSaveTables names the tables of iptables-save output s, as "*nat".
func gwSaveTables(s string) []string {
	var names []string
	for _, m := range gwSaveTable.FindAllStringSubmatch(s, -1) {
		names = append(names, "*"+m[1])
	}
	return names
}

// gwSectionOf returns the output of the command named cmd in a gwState.
func gwSectionOf(state, cmd string) string {
	_, out, ok := strings.Cut(state, "$ "+cmd+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index("\n"+out, "\n$ "); i >= 0 {
		out = out[:i] // up to the next command
	}
	return out
}

// gwDropSaveTable removes table ("*nat") from iptables-save output s.
func gwDropSaveTable(s, table string) string {
	return gwSaveTable.ReplaceAllStringFunc(s, func(tbl string) string {
		if strings.HasPrefix(tbl, table+"\n") {
			return ""
		}
		return tbl
	})
}

var (
	gwSaveComment = regexp.MustCompile(`(?m)^#.*\n`)
	gwCounters    = regexp.MustCompile(`\[\d+:\d+\]`)
	gwNftCounter  = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	gwLinkState   = regexp.MustCompile(`(?m)^(\S+)\s+(UP|DOWN|UNKNOWN|LOWERLAYERDOWN)\s`)
)

func gwNormalize(s string) string {
	s = gwSaveComment.ReplaceAllString(s, "")
	s = gwCounters.ReplaceAllString(s, "[n:n]")
	s = gwNftCounter.ReplaceAllString(s, "counter")
	return gwLinkState.ReplaceAllString(s, "$1 ")
}

// gwDiff shows the lines only in a and only in b.
func gwDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range al {
		if !slices.Contains(bl, l) {
			fmt.Fprintf(&out, "- %s\n", l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			fmt.Fprintf(&out, "+ %s\n", l)
		}
	}
	return out.String()
}

// baseFirewall gives the gateway the firewall of a home router, written
// with the tool of the backend under test: it must survive homenet
// untouched, and it makes the tables exist before homenet runs, as they do
// on any router.
func (n *gwNet) baseFirewall(t *testing.T) {
	t.Helper()
	if n.fwKind == firewall.KindNftables {
		n.gwExec(t, gwBaseNft, "nft", "-f", "-")
		return
	}
	suffix := strings.TrimPrefix(n.fwKind, "iptables") // "-nft", "-legacy" or ""
	for _, fam := range []struct {
		bin   string
		rules [][]string
	}{
		{"iptables" + suffix, gwBaseRules4},
		{"ip6tables" + suffix, gwBaseRules6},
	} {
		for _, r := range fam.rules {
			n.gwExec(t, "", append([]string{fam.bin}, r...)...)
		}
	}
}

var (
	gwBaseRules4 = [][]string{
		{"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "lan0", "-o", "eth0", "-j", "ACCEPT"},
		{"-t", "nat", "-A", "POSTROUTING", "-s", "192.168.1.0/24", "-o", "eth0", "-j", "MASQUERADE"},
		{"-t", "mangle", "-A", "FORWARD", "-o", "eth0", "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--clamp-mss-to-pmtu"},
	}
	gwBaseRules6 = [][]string{
		{"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "lan0", "-o", "eth0", "-j", "ACCEPT"},
		{"-t", "mangle", "-A", "FORWARD", "-o", "eth0", "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--clamp-mss-to-pmtu"},
	}
	gwBaseNft = `table inet homerouter {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "lan0" oifname "eth0" accept
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 192.168.1.0/24 oifname "eth0" masquerade
	}
}
`
)

// reloadFirewall does what a firewall reload does: it empties netfilter
// (every chain flushed and every user chain deleted with iptables; `nft
// flush ruleset`, as /etc/nftables.conf begins, with nftables) and puts the
// system's own rules back. Ours are gone until the agent notices.
func (n *gwNet) reloadFirewall(t *testing.T) {
	t.Helper()
	if n.fwKind == firewall.KindNftables {
		n.gwExec(t, "", "nft", "flush", "ruleset")
	} else {
		suffix := strings.TrimPrefix(n.fwKind, "iptables")
		for _, bin := range []string{"iptables" + suffix, "ip6tables" + suffix} {
			for _, table := range []string{"filter", "nat", "mangle"} {
				n.gwExec(t, "", bin, "-t", table, "-F")
				n.gwExec(t, "", bin, "-t", table, "-X")
			}
		}
	}
	n.baseFirewall(t)
}

// gwExec runs a command in the gateway's network namespace but the
// machine's mount namespace (so hidden iptables binaries still run), with
// stdin.
func (n *gwNet) gwExec(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.gw.NS}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("[gw] %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// settle waits until the gateway's IPv6 addresses finished duplicate
// address detection: the kernel adds their local routes only then, which
// would otherwise show up as a difference between two snapshots.
func (n *gwNet) settle(t *testing.T) {
	t.Helper()
	lab.WaitFor(t, 10*time.Second, "IPv6 DAD on the gateway", func() error {
		if out := n.gwExec(t, "", "ip", "-6", "addr", "show", "tentative"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("tentative addresses:\n%s", out)
		}
		return nil
	})
}

func (n *gwNet) dumpGateway(t *testing.T) {
	for _, c := range [][]string{
		{"ip", "rule"}, {"ip", "route", "show", "table", "153"}, {"ip", "addr"},
		{"nft", "list", "ruleset"}, {"iptables-save"}, {"iptables-legacy-save"},
		{"sh", "-c", "cat /proc/sys/net/ipv4/ip_forward"},
	} {
		args := append([]string{"netns", "exec", n.gw.NS}, c...)
		out, err := exec.Command("ip", args...).CombinedOutput()
		t.Logf("---- [gw] %s ----\n%s%v", strings.Join(c, " "), out, gwErr(err))
	}
}

func gwErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
