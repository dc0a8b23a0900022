package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A home router's DNS server: Debian's dnsmasq, configured as OpenWrt's
// is, answering for the home's local domain ("lan") from its own host
// records and forwarding everything else upstream, as the ISP's resolver
// would be asked.

// NeedsDnsmasqMessage is the reason home-LAN DNS scenarios skip without
// dnsmasq. dnsmasq-base carries only the binary (no service), so
// installing it changes nothing on the machine; the "dnsmasq" package
// would also start a resolver on the machine's own port 53.
const NeedsDnsmasqMessage = "e2e: dnsmasq not found; install it: apt-get install -y --no-install-recommends dnsmasq-base"

// DnsmasqBinary returns the path of dnsmasq, skipping the test if it is
// not installed.
func DnsmasqBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("dnsmasq")
	if err != nil {
		// Debian installs it in /usr/sbin, which is not on every PATH.
		if _, serr := os.Stat("/usr/sbin/dnsmasq"); serr != nil {
			t.Skip(NeedsDnsmasqMessage)
		}
		p = "/usr/sbin/dnsmasq"
	}
	return p
}

// DnsmasqOpts are the choices for a lab dnsmasq.
type DnsmasqOpts struct {
	// Listen are the addresses it answers on, port 53, and only those
	// (--bind-interfaces): for example the router's LAN address and
	// 127.0.0.1, which its own /etc/resolv.conf names, as on OpenWrt.
	Listen []string
	// Domain is the local domain ("lan"): its names are answered from
	// Records only, never forwarded; others get NXDOMAIN.
	Domain string
	// Records are host records "name=IPv4", e.g. "nas.lan=192.168.1.10".
	Records []string
	// Upstream are the servers asked for every other name; none: such
	// names are REFUSED.
	Upstream []string
}

// Dnsmasq is dnsmasq running in a lab host.
type Dnsmasq struct {
	Host  *Host
	Addrs []netip.Addr // where it answers on port 53
	// LogPath is its log: with --log-queries, one "query[A] NAME from
	// ADDR" line a query, and how it was answered.
	LogPath string
	Proc    *Proc
}

// Dnsmasq starts dnsmasq in h with opts, as root and in the foreground,
// reading no config file, /etc/hosts or /etc/resolv.conf, and waits until
// it answers for the first record at every listen address. It skips the
// test if dnsmasq is not installed.
func (l *Lab) Dnsmasq(h *Host, opts DnsmasqOpts) *Dnsmasq {
	l.t.Helper()
	bin := DnsmasqBinary(l.t)
	if len(opts.Listen) == 0 {
		l.t.Fatal("lab: Dnsmasq needs at least one listen address")
	}
	d := &Dnsmasq{Host: h, LogPath: h.Dir + "/dnsmasq-queries.log"}
	args := []string{bin,
		"--keep-in-foreground",
		"--conf-file=/dev/null",
		"--user=root",
		"--pid-file=" + h.Dir + "/dnsmasq.pid",
		"--port=53",
		"--bind-interfaces",
		"--no-resolv",
		"--no-hosts",
		"--log-queries",
		"--log-facility=" + d.LogPath,
	}
	for _, a := range opts.Listen {
		d.Addrs = append(d.Addrs, netip.MustParseAddr(a))
		args = append(args, "--listen-address="+a)
	}
	if opts.Domain != "" {
		args = append(args, "--domain="+opts.Domain, "--local=/"+opts.Domain+"/")
	}
	var first, firstIP string
	for _, r := range opts.Records {
		name, ip, ok := strings.Cut(r, "=")
		if !ok {
			l.t.Fatalf("lab: dnsmasq record %q is not name=IPv4", r)
		}
		args = append(args, "--host-record="+name+","+ip)
		if first == "" {
			first, firstIP = name, ip
		}
	}
	for _, s := range opts.Upstream {
		args = append(args, "--server="+s)
	}
	d.Proc = h.Start("dnsmasq", nil, args...)
	l.OnFailure(func() {
		l.t.Logf("---- dnsmasq log on %s (%s), last lines ----\n%s", h.Name, d.LogPath, tail(d.Log(), 40))
	})
	took := WaitFor(l.t, 10*time.Second, "dnsmasq on "+h.Name+" to answer", func() error {
		if exited, err := d.Proc.Exited(); exited {
			return fmt.Errorf("dnsmasq exited: %v\n%s\n%s", err, d.Proc.Tail(20), tail(d.Log(), 20))
		}
		if first == "" {
			return nil
		}
		for _, a := range d.Addrs {
			got, err := d.Lookup(h, a, first)
			if err != nil {
				return err
			}
			if len(got) != 1 || got[0] != firstIP {
				return fmt.Errorf("dnsmasq at %v: %s = %v, want %s", a, first, got, firstIP)
			}
		}
		return nil
	})
	l.t.Logf("lab: dnsmasq on %s at %v up in %v", h.Name, d.Addrs, took.Round(time.Millisecond))
	return d
}

// Lookup asks the dnsmasq at addr, from host from, for name's A records.
func (d *Dnsmasq) Lookup(from *Host, addr netip.Addr, name string) ([]string, error) {
	out, err := from.Labtool(10*time.Second, "dns-query", "-timeout=2s",
		"-server", netip.AddrPortFrom(addr, 53).String(), "-name", name)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Log returns dnsmasq's log so far.
func (d *Dnsmasq) Log() string {
	data, _ := os.ReadFile(d.LogPath)
	return string(data)
}

// QueriedFrom returns the source addresses of the queries for name
// (of any type) that dnsmasq has logged.
func (d *Dnsmasq) QueriedFrom(name string) []netip.Addr {
	re := regexp.MustCompile(`query\[\w+\] ` + regexp.QuoteMeta(name) + ` from (\S+)`)
	var from []netip.Addr
	for _, m := range re.FindAllStringSubmatch(d.Log(), -1) {
		if a, err := netip.ParseAddr(m[1]); err == nil {
			from = append(from, a)
		}
	}
	return from
}

// WriteResolvConf writes h's private /etc/resolv.conf: a nameserver line
// for each of nameservers, then a search line if search is not empty.
func (h *Host) WriteResolvConf(nameservers []string, search ...string) {
	t := h.lab.t
	t.Helper()
	var b strings.Builder
	for _, ns := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if err := h.WriteFile("/etc/resolv.conf", []byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

// ResolvConf returns h's /etc/resolv.conf as h sees it (for a phone, what
// tailscaled made of it), or the error reading it.
func (h *Host) ResolvConf() string {
	out, err := h.RunTimeout(10*time.Second, "cat", "/etc/resolv.conf")
	if err != nil {
		return err.Error()
	}
	return out
}
