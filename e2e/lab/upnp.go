package lab

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A home router that forwards ports when hosts on its LAN ask: Debian's
// miniupnpd (nftables backend) in a NATRouter, speaking UPnP IGD, NAT-PMP
// and PCP on the LAN, as OpenWrt's does. Its port forwards go into
// nftables chains of its own, which the router's rules jump to, so they
// really open the router: without them the router drops unsolicited
// traffic from the WAN (see natRouter).
//
// miniupnpd refuses to forward anything when the WAN address is private
// or reserved (RFC 1918, 100.64.0.0/10, and also the documentation
// ranges 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24 the rest of the
// lab uses), as a router behind another NAT should. Give a router with
// miniupnpd a WAN address outside those, on an internet of its own: the
// address never leaves the lab's namespaces.

// NeedsMiniUPnPdMessage is the reason port-mapping scenarios skip without
// miniupnpd. The package only unpacks a binary and scripts (no
// maintainer scripts, no service), so installing it changes nothing on
// the machine; the "miniupnpd" package, which would add the service, is
// not needed.
const NeedsMiniUPnPdMessage = "e2e: miniupnpd or nft not found; install them: apt-get install -y --no-install-recommends miniupnpd-nftables nftables"

// MiniUPnPdBinary returns the path of miniupnpd, skipping the test if it
// or nft is not installed.
func MiniUPnPdBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("miniupnpd")
	if err != nil {
		// Debian installs it in /usr/sbin, which is not on every PATH.
		if _, serr := os.Stat("/usr/sbin/miniupnpd"); serr != nil {
			t.Skip(NeedsMiniUPnPdMessage)
		}
		p = "/usr/sbin/miniupnpd"
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip(NeedsMiniUPnPdMessage)
	}
	return p
}

// UPnPOpts are the choices for a router's miniupnpd.
type UPnPOpts struct {
	// NoUPnP turns UPnP IGD off (enable_upnp=no): the router answers
	// NAT-PMP and PCP only.
	NoUPnP bool
}

// MiniUPnPd is miniupnpd running in a NATRouter.
type MiniUPnPd struct {
	Router *NATRouter
	Proc   *Proc
	// ConfPath is its config; LeasePath the file where it keeps its
	// mappings (see Leases).
	ConfPath, LeasePath string
}

// The nftables names the router's miniupnpd uses (its upnp_table_name,
// upnp_forward_chain, upnp_nat_chain, upnp_nat_postrouting_chain).
const (
	upnpTable       = "miniupnpd"
	upnpForward     = "miniupnpd"
	upnpPrerouting  = "prerouting_miniupnpd"
	upnpPostrouting = "postrouting_miniupnpd"
)

// UPnP starts miniupnpd in r: WAN eth0, LAN lan0, UPnP IGD (unless
// opts.NoUPnP), NAT-PMP and PCP, secure mode (a host may map ports only to
// itself), ports 1024-65535 for the LAN only. It waits until miniupnpd
// listens, and skips the test if it is not installed.
func (r *NATRouter) UPnP(opts UPnPOpts) *MiniUPnPd {
	t := r.lab.t
	t.Helper()
	bin := MiniUPnPdBinary(t)
	lan := r.lanPrefix()
	m := &MiniUPnPd{Router: r, ConfPath: r.Dir + "/miniupnpd.conf", LeasePath: r.Dir + "/miniupnpd.leases"}
	r.hookUPnPChains()

	enable := map[bool]string{true: "yes", false: "no"}
	conf := fmt.Sprintf(`ext_ifname=eth0
listening_ip=%s
http_port=0
enable_upnp=%s
enable_natpmp=yes
secure_mode=yes
ipv6_disable=yes
system_uptime=no
uuid=%s
lease_file=%s
upnp_table_name=%s
upnp_nat_table_name=%s
upnp_forward_chain=%s
upnp_nat_chain=%s
upnp_nat_postrouting_chain=%s
allow 1024-65535 %s 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, r.LAN.Bridge, enable[!opts.NoUPnP], newUUID(), m.LeasePath, upnpTable, upnpTable, upnpForward, upnpPrerouting, upnpPostrouting, lan.Masked())
	if err := os.WriteFile(m.ConfPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -d: foreground, log to stderr; -P: keep the pid file out of /run.
	m.Proc = r.Start("miniupnpd", nil, bin, "-d", "-f", m.ConfPath, "-P", r.Dir+"/miniupnpd.pid")
	m.Proc.DumpLines = 60
	r.lab.OnFailure(func() {
		rules, err := m.Ruleset()
		t.Logf("---- miniupnpd on %s: nftables table %s (err %v) ----\n%s", r.Name, upnpTable, err, rules)
	})
	want := "HTTP listening on port"
	if opts.NoUPnP {
		want = "Listening for NAT-PMP/PCP traffic"
	}
	took := WaitFor(t, 10*time.Second, "miniupnpd on "+r.Name+" to listen", func() error {
		log := m.Proc.Log()
		if strings.Contains(log, "Port forwarding is impossible") {
			t.Fatalf("miniupnpd on %s: WAN address %v is reserved, so it forwards nothing; use an address outside the private and documentation ranges:\n%s", r.Name, r.wan.Addr, m.Proc.Tail(20))
		}
		if exited, err := m.Proc.Exited(); exited {
			return fmt.Errorf("exited: %v\n%s", err, m.Proc.Tail(20))
		}
		if !strings.Contains(log, want) {
			return fmt.Errorf("no %q in its log yet", want)
		}
		return nil
	})
	t.Logf("lab: miniupnpd on %s (WAN %v, LAN %v, UPnP %s) up in %v", r.Name, r.wan.Addr.Addr(), lan, enable[!opts.NoUPnP], took.Round(time.Millisecond))
	return m
}

// lanPrefix returns the address and prefix of r's LAN bridge.
func (r *NATRouter) lanPrefix() netip.Prefix {
	for _, p := range r.addrs {
		if p.Addr() == r.LAN.Gateway {
			return p
		}
	}
	r.lab.t.Fatalf("router %s has no LAN address", r.Name)
	return netip.Prefix{}
}

// hookUPnPChains creates the chains miniupnpd fills and hooks them into
// r's forwarding, as OpenWrt's firewall hooks its upnp_* chains: a DNAT
// from the WAN goes to miniupnpd's prerouting chain, and a packet forwarded
// from the WAN passes only if it belongs to a connection the LAN started
// or miniupnpd's forward chain accepts it. The router's own iptables rules
// (which drop everything new from the WAN) live in other nftables tables
// that cannot jump here, so they let DNATed packets through and leave the
// verdict to this table.
func (r *NATRouter) hookUPnPChains() {
	t := r.lab.t
	t.Helper()
	rules := fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		meta nfproto != ipv4 accept
		iifname "eth0" ct state established,related accept
		iifname "eth0" jump %[2]s
		iifname "eth0" drop
	}
	chain %[2]s {
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth0" jump %[3]s
	}
	chain %[3]s {
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" jump %[4]s
	}
	chain %[4]s {
	}
}
`, upnpTable, upnpForward, upnpPrerouting, upnpPostrouting)
	path := r.Dir + "/miniupnpd.nft"
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	r.MustRun("nft", "-f", path)
	r.MustRun("iptables", "-I", "FORWARD", "1", "-i", "eth0", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT")
}

// Ruleset returns the router's miniupnpd table as `nft list` prints it:
// the DNAT and accept rules of the current mappings.
func (m *MiniUPnPd) Ruleset() (string, error) {
	return m.Router.Output(10*time.Second, "nft", "list", "table", "inet", upnpTable)
}

// DNATRules returns the DNAT rules in miniupnpd's prerouting chain, one per
// current mapping, as `nft list` prints them.
func (m *MiniUPnPd) DNATRules() ([]string, error) {
	out, err := m.Router.Output(10*time.Second, "nft", "list", "chain", "inet", upnpTable, upnpPrerouting)
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "dnat") {
			rules = append(rules, strings.TrimSpace(line))
		}
	}
	return rules, nil
}

// UPnPLease is one mapping in miniupnpd's lease file, made by UPnP,
// NAT-PMP or PCP.
type UPnPLease struct {
	Proto    string // "TCP" or "UDP"
	External uint16
	Internal netip.AddrPort
	// Expires is when miniupnpd drops the mapping; zero if permanent.
	Expires     time.Time
	Description string
}

// Leases returns the mappings miniupnpd has now, from its lease file.
func (m *MiniUPnPd) Leases() ([]UPnPLease, error) {
	b, err := os.ReadFile(m.LeasePath)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseUPnPLeases(string(b))
}

// parseUPnPLeases parses lines "PROTO:EXT:IADDR:IPORT:EXPIRES:DESC".
func parseUPnPLeases(s string) ([]UPnPLease, error) {
	var ls []UPnPLease
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, ":", 6)
		if len(f) != 6 {
			return nil, fmt.Errorf("miniupnpd lease %q: want 6 fields", line)
		}
		ext, err1 := strconv.ParseUint(f[1], 10, 16)
		ip, err2 := netip.ParseAddr(f[2])
		iport, err3 := strconv.ParseUint(f[3], 10, 16)
		exp, err4 := strconv.ParseInt(f[4], 10, 64)
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				return nil, fmt.Errorf("miniupnpd lease %q: %v", line, err)
			}
		}
		l := UPnPLease{Proto: f[0], External: uint16(ext), Internal: netip.AddrPortFrom(ip, uint16(iport)), Description: f[5]}
		if exp != 0 {
			l.Expires = time.Unix(exp, 0)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// newUUID returns a random UUID for miniupnpd's device description.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
