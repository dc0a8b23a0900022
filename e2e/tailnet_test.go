package e2e

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// The home tailnet every scenario starts from:
//
//	internet 198.51.100.0/24 ─┬─ gw .1    homenet serve (control :8080, DERP :8443, STUN :3478)
//	                          │          └─ home LAN 192.168.1.0/24
//	                          ├─ nat1 .11 ── 10.1.0.0/24 ── p1 10.1.0.2  tailscaled
//	                          ├─ nat2 .12 ── 10.2.0.0/24 ── p2 10.2.0.2  tailscaled
//	                          └─ …
//
// With tailnetOpts.Name, homenet runs as on the internet under that DNS
// name, and an ACME CA joins the internet:
//
//	internet ─┬─ gw .1  homenet serve, https://NAME: control :80 and :443, DERP :443, STUN :3478
//	          ├─ ca .2  pebble: ACME :14000, validates TLS-ALPN-01 on NAME:443; DNS NAME → gw .1
//	          └─ nat1 .11, …
type tailnet struct {
	lab  *lab.Lab
	inet *lab.Net
	gw   *lab.Host
	ca   *lab.CA // with opts.Name only
	hn   *lab.Homenet
	opts tailnetOpts
	nats int
}

type tailnetOpts struct {
	Prefix4     string // tailnet.prefix4; "" for homenet's default
	RandomFully bool   // phones' NAT routers use MASQUERADE --random-fully
	// WAN is the first three octets of the internet's /24: publicWAN (the
	// default) or privateWAN. The real client treats an http:// login
	// server on a private address differently (it never falls back to
	// Noise over TLS on :443), so some scenarios try both.
	WAN string
	// Name, when set, is the DNS name homenet serves under, with a
	// certificate from the lab's ACME CA: server.url https://NAME. Phones
	// resolve it through /etc/hosts and trust the CA's root.
	Name string
	// IPCert: homenet serves https://<gw address> with an ACME
	// certificate for the address (HTTP-01 on :80); phones trust the CA.
	IPCert bool
}

const (
	publicWAN  = "198.51.100" // TEST-NET-2: public as far as the client can tell
	privateWAN = "172.16.0"   // RFC 1918
)

// Timeouts shared by the scenarios.
const (
	joinTimeout = 60 * time.Second // tailscale up until peers see each other
	pathTimeout = 60 * time.Second // until a ping gets through
)

func newTailnet(t *testing.T, opts tailnetOpts) *tailnet {
	if opts.WAN == "" {
		opts.WAN = publicWAN
	}
	l := lab.New(t)
	if opts.Name != "" || opts.IPCert {
		lab.PebbleBinary(t) // skip before building anything
	}
	inet := l.Internet()
	gw := l.Host("gw", inet.Link(opts.WAN+".1/24"))
	gw.Bridge("lan0", "192.168.1.1/24") // the home LAN, for the gateway agent later
	tn := &tailnet{lab: l, inet: inet, gw: gw, opts: opts}
	cfg := lab.HomenetConfig{Prefix4: opts.Prefix4}
	if opts.Name != "" {
		caHost := l.Host("ca", inet.Link(opts.WAN+".2/24"))
		tn.ca = l.CA(caHost, fmt.Sprintf("%s=%v", opts.Name, gw.Addr()))
		cfg.Name, cfg.CA = opts.Name, tn.ca
	}
	if opts.IPCert {
		tn.ca = l.CA(l.Host("ca", inet.Link(opts.WAN+".2/24")))
		cfg.IPCert, cfg.CA = true, tn.ca
	}
	tn.hn = l.Homenet(gw, cfg)
	return tn
}

// wanAddr returns the internet address WAN.host.
func (tn *tailnet) wanAddr(host int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("%s.%d", tn.opts.WAN, host))
}

// natHost puts a new host named name behind a NAT router of its own on the
// internet (nat<N> at WAN.1N, LAN 10.N.0.0/24, the host at 10.N.0.2).
func (tn *tailnet) natHost(name string) (*lab.NATRouter, *lab.Host) {
	return tn.natHostWith(name, lab.NATOpts{RandomFully: tn.opts.RandomFully})
}

// natHostWith is natHost with NAT options of its own.
func (tn *tailnet) natHostWith(name string, opts lab.NATOpts) (*lab.NATRouter, *lab.Host) {
	tn.nats++
	n := tn.nats
	nat := tn.lab.NATRouter(fmt.Sprintf("nat%d", n), tn.inet.Link(fmt.Sprintf("%v/24", tn.wanAddr(10+n))),
		fmt.Sprintf("10.%d.0.1/24", n), opts)
	return nat, tn.lab.Host(name, nat.LAN.Link(fmt.Sprintf("10.%d.0.2/24", n)))
}

// phone puts a new phone behind a NAT router of its own and starts its
// tailscaled; it is not logged in yet.
func (tn *tailnet) phone(name string) *lab.Phone {
	_, h := tn.natHost(name)
	return tn.phoneOn(h)
}

// phoneOn starts tailscaled in h. With a named server, h first learns the
// name (/etc/hosts) and trusts the CA, as a phone on the internet would
// through public DNS and its built-in roots.
func (tn *tailnet) phoneOn(h *lab.Host) *lab.Phone {
	if tn.ca != nil {
		tn.ca.Trust(h)
	}
	if tn.opts.Name != "" {
		h.AddHosts(tn.gw.Addr(), tn.opts.Name)
	}
	return tn.lab.Phone(h)
}

// key creates a reusable pre-auth key.
func (tn *tailnet) key(t *testing.T) string {
	t.Helper()
	k, err := tn.hn.CreateKey("--reusable")
	if err != nil {
		t.Fatalf("creating a pre-auth key: %v", err)
	}
	return k
}

// join runs `tailscale up` with key on all phones at once and waits until
// every phone sees every other.
func (tn *tailnet) join(t *testing.T, key string, phones ...*lab.Phone) {
	t.Helper()
	errs := make([]error, len(phones))
	var wg sync.WaitGroup
	for i, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Up(tn.hn.URL, key)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("tailscale up on %s: %v", phones[i].Name, err)
		}
	}
	for _, p := range phones {
		if err := p.WaitPeers(joinTimeout, without(phones, p)...); err != nil {
			t.Fatal(err)
		}
	}
}

// ip4 returns p's tailnet IPv4 address, failing the test if it has none.
func ip4(t *testing.T, p *lab.Phone) netip.Addr {
	t.Helper()
	ip, err := p.IP4()
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

var (
	cgnat         = netip.MustParsePrefix("100.64.0.0/10")
	tailscaleULA  = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
	carrierPool   = netip.MustParsePrefix("100.64.0.0/16")
	serviceRange  = netip.MustParsePrefix("100.100.0.0/16")
	defaultPrefix = "" // tailnet.prefix4 left empty
)

// checkAddresses checks p's tailnet addresses against the rules:
// IPv4 from prefix4 (the default lies in 100.64.0.0/10 outside
// 100.64.0.0/16 and 100.100.0.0/16), IPv6 valid inside fd7a:115c:a1e0::/48.
func checkAddresses(t *testing.T, p *lab.Phone, prefix4 string) {
	t.Helper()
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	var v4, v6 int
	for _, ip := range st.TailscaleIPs {
		switch {
		case ip.Is4():
			v4++
			if prefix4 == defaultPrefix {
				if !cgnat.Contains(ip) || carrierPool.Contains(ip) || serviceRange.Contains(ip) {
					t.Errorf("%s got %v; the default prefix must lie in %v outside %v and %v", p.Name, ip, cgnat, carrierPool, serviceRange)
				}
			} else if pfx := netip.MustParsePrefix(prefix4); !pfx.Contains(ip) {
				t.Errorf("%s got %v, outside prefix4 %v", p.Name, ip, pfx)
			}
		case ip.Is6():
			v6++
			if !tailscaleULA.Contains(ip) {
				t.Errorf("%s got IPv6 %v, outside %v", p.Name, ip, tailscaleULA)
			}
		}
	}
	if v4 != 1 || v6 != 1 {
		t.Errorf("%s has tailnet addresses %v, want one IPv4 and one IPv6", p.Name, st.TailscaleIPs)
	}
}

// icmpReaches waits until p gets an ICMP echo reply from ip, returning how
// long that took.
func icmpReaches(t *testing.T, p *lab.Phone, ip netip.Addr) time.Duration {
	t.Helper()
	return lab.WaitFor(t, pathTimeout, fmt.Sprintf("ICMP ping %s → %v", p.Name, ip), func() error {
		return p.ICMPPing(ip)
	})
}

// tcpReaches checks a TCP connection from `from` to an echo server on `to`'s
// tailnet address carries 64 KiB both ways.
func tcpReaches(t *testing.T, from, to *lab.Phone) {
	t.Helper()
	to.LabtoolServer("tcp-echo", "-listen", ":7777")
	addr := netip.AddrPortFrom(ip4(t, to), 7777).String()
	lab.WaitFor(t, pathTimeout, fmt.Sprintf("TCP %s → %s (%s)", from.Name, to.Name, addr), func() error {
		_, err := from.Labtool(20*time.Second, "tcp-check", "-addr", addr, "-timeout", "15s")
		return err
	})
}
