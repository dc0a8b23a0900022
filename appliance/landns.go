package appliance

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"homenet/internal/uci"

	"golang.org/x/net/publicsuffix"
)

// LANDNS is the home LAN's resolver and domains, sent to clients as
// split DNS so that names such as nas.lan resolve on the road. Split DNS
// needs both; each is set when found, so that a config naming the other
// can complete it.
type LANDNS struct {
	Resolver netip.Addr `json:"resolver,omitzero"`
	Domains  []string   `json:"domains,omitempty"`
	Why      string     `json:"why"` // how they were found, or why not; one line for status and logs
}

// Files detectLANDNS reads, as seen on the host (without the root).
const (
	uciDHCPPath    = "/etc/config/dhcp"
	resolvConfPath = "/etc/resolv.conf"
	procNetUDP     = "/proc/net/udp"
	procNetUDP6    = "/proc/net/udp6"
)

// systemdResolvedStub is the address of systemd-resolved's stub resolver.
// It listens on loopback only, so it can never serve the LAN.
var systemdResolvedStub = netip.MustParseAddr("127.0.0.53")

// DetectLANDNS finds the home LAN's resolver and domains on this host.
// lanRoutes are the prefixes the gateway advertises, lanAddrs its own
// addresses in them (see LANAddrs), baseDomain the tailnet's MagicDNS
// domain, which is never a LAN domain. It never fails: what it could not
// find is in Why.
func DetectLANDNS(lanRoutes []netip.Prefix, lanAddrs []netip.Addr, baseDomain string) LANDNS {
	return detectLANDNS("/", lanRoutes, lanAddrs, baseDomain, udpListening("/"))
}

// detectLANDNS is DetectLANDNS on the files under root, asking listening
// whether a DNS server listens on one of this host's addresses.
//
// OpenWrt's /etc/config/dhcp wins when it names a domain: dnsmasq serves
// it on the router's LAN address. Elsewhere /etc/resolv.conf names the
// domains and the resolver.
func detectLANDNS(root string, lanRoutes []netip.Prefix, lanAddrs []netip.Addr, baseDomain string, listening func(netip.AddrPort) bool) LANDNS {
	own := addrsInRoutes(lanAddrs, lanRoutes)
	var uciNote string
	if b, err := os.ReadFile(filepath.Join(root, uciDHCPPath)); err == nil {
		secs := uci.Parse(string(b))
		domains, skipped := lanDomains(dnsmasqDomains(secs), baseDomain)
		if len(domains) > 0 {
			d := openwrtLANDNS(domains, skipped, own, listening)
			if d.Resolver.IsValid() && dnsmasqLocalService(secs) {
				d.Why += localServiceNote
			}
			return d
		}
		uciNote = fmt.Sprintf("%s names no LAN domain%s; ", uciDHCPPath, skippedNote(skipped))
	}

	b, err := os.ReadFile(filepath.Join(root, resolvConfPath))
	if err != nil {
		return LANDNS{Why: "no split DNS: " + uciNote + readError(resolvConfPath, err)}
	}
	rc := parseResolvConf(string(b))
	domains, skipped := lanDomains(rc.Search, baseDomain)
	resolver, how := resolvConfResolver(rc.Nameservers, lanRoutes, own, listening)
	d := LANDNS{Resolver: resolver, Domains: domains}
	names := strings.Join(domains, ", ")
	switch {
	case len(domains) > 0 && resolver.IsValid():
		d.Why = fmt.Sprintf("split DNS for %s via %v: from %s, %s%s", names, resolver, resolvConfPath, how, skippedNote(skipped))
	case resolver.IsValid():
		d.Why = fmt.Sprintf("no split DNS: %s%s has no LAN search domain%s; its LAN resolver is %v, %s", uciNote, resolvConfPath, skippedNote(skipped), resolver, how)
	case len(domains) > 0:
		d.Why = fmt.Sprintf("no split DNS: %s%s names %s but no LAN resolver: %s", uciNote, resolvConfPath, names, how)
	default:
		d.Why = fmt.Sprintf("no split DNS: %s%s has no LAN search domain%s and no LAN resolver: %s", uciNote, resolvConfPath, skippedNote(skipped), how)
	}
	return d
}

// openwrtLANDNS returns the split DNS for an OpenWrt router whose dnsmasq
// serves domains. dnsmasq answers on the router's own LAN address, unless
// it is stopped or its DNS is off (option port '0', as when AdGuard Home
// replaces it); so ask whether anything listens there.
func openwrtLANDNS(domains, skipped []string, own []netip.Addr, listening func(netip.AddrPort) bool) LANDNS {
	names := strings.Join(domains, ", ")
	if len(own) == 0 {
		return LANDNS{Domains: domains, Why: fmt.Sprintf("no split DNS: %s names %s, but no address of this router lies inside the LAN routes", uciDHCPPath, names)}
	}
	r, ok := listeningAddr(own, listening)
	if !ok {
		return LANDNS{Domains: domains, Why: fmt.Sprintf("no split DNS: %s names %s, but nothing listens on UDP port 53 at %v (dnsmasq stopped, or its DNS off with option port)", uciDHCPPath, names, own[0])}
	}
	return LANDNS{
		Resolver: r,
		Domains:  domains,
		Why:      fmt.Sprintf("split DNS for %s via %v: domain from %s, dnsmasq listening on %v", names, r, uciDHCPPath, netip.AddrPortFrom(r, 53)) + skippedNote(skipped),
	}
}

// resolvConfResolver returns the first of nameservers that serves the LAN,
// and how it does: one inside routes is the LAN's resolver; a loopback one
// (dnsmasq, Pi-hole, systemd-resolved on this host) counts only if a DNS
// server also listens on one of this host's LAN addresses own, which is
// then the resolver. Without one, it returns what it saw of each.
func resolvConfResolver(nameservers []netip.Addr, routes []netip.Prefix, own []netip.Addr, listening func(netip.AddrPort) bool) (netip.Addr, string) {
	if len(nameservers) == 0 {
		return netip.Addr{}, "no nameserver line"
	}
	var notes []string
	for _, ns := range nameservers {
		if p, ok := routeOf(ns, routes); ok {
			return ns, fmt.Sprintf("nameserver %v inside %v", ns, p)
		}
		// glibc reads nameserver 0.0.0.0 as this host, too.
		if !ns.IsLoopback() && !ns.IsUnspecified() {
			notes = append(notes, fmt.Sprintf("%v is outside the LAN routes", ns))
			continue
		}
		if r, ok := listeningAddr(own, listening); ok {
			return r, fmt.Sprintf("nameserver %v is this host, listening on %v", ns, netip.AddrPortFrom(r, 53))
		}
		switch {
		case len(own) == 0:
			notes = append(notes, fmt.Sprintf("%v is this host, but no address of it lies inside the LAN routes", ns))
		case ns == systemdResolvedStub:
			notes = append(notes, fmt.Sprintf("%v is systemd-resolved's stub, which does not listen on %v", ns, netip.AddrPortFrom(own[0], 53)))
		default:
			notes = append(notes, fmt.Sprintf("%v is this host, but nothing listens on %v", ns, netip.AddrPortFrom(own[0], 53)))
		}
	}
	return netip.Addr{}, "nameserver " + strings.Join(notes, "; ")
}

// listeningAddr returns the first of addrs where a DNS server listens.
func listeningAddr(addrs []netip.Addr, listening func(netip.AddrPort) bool) (netip.Addr, bool) {
	for _, a := range addrs {
		if listening(netip.AddrPortFrom(a, 53)) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// routeOf returns the prefix of routes that contains a.
func routeOf(a netip.Addr, routes []netip.Prefix) (netip.Prefix, bool) {
	a = a.WithZone("").Unmap()
	for _, p := range routes {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// addrsInRoutes returns the addresses of addrs inside routes, without
// zones or duplicates, IPv4 first: phones reach the LAN over IPv4 routes
// unless IPv6 ones are configured too.
func addrsInRoutes(addrs []netip.Addr, routes []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.WithZone("").Unmap()
		if _, ok := routeOf(a, routes); ok && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		}
		return 1
	})
	return out
}

// LANAddrs returns this host's addresses on up interfaces that lie inside
// routes, IPv4 first.
func LANAddrs(routes []netip.Prefix) ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var all []netip.Addr
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // the interface went away meanwhile
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					all = append(all, ip)
				}
			}
		}
	}
	return addrsInRoutes(all, routes), nil
}

// lanDomains returns the names of candidates that may be routed to the LAN
// resolver, normalized, in order, without duplicates; and the others, each
// with the reason it was skipped.
func lanDomains(candidates []string, baseDomain string) (keep, skipped []string) {
	for _, c := range candidates {
		d := normName(c)
		if why := notLANDomain(d, baseDomain); why != "" {
			skipped = append(skipped, fmt.Sprintf("%q: %s", c, why))
		} else if !slices.Contains(keep, d) {
			keep = append(keep, d)
		}
	}
	return keep, skipped
}

// notLANDomain says why d (normalized) must not be a split-DNS route to
// the LAN, or "" if it may be.
func notLANDomain(d, baseDomain string) string {
	if d == "" || len(d) > 253 {
		return "not a domain"
	}
	for _, l := range strings.Split(d, ".") {
		if !isDNSLabel(l) {
			return "not a domain"
		}
	}
	switch {
	case d == "local":
		return "mDNS, which does not cross the tunnel"
	case d == "localdomain" || d == "localhost":
		return "names this host only"
	case baseDomain != "" && inZone(d, baseDomain):
		return "the tailnet's own domain"
	case baseDomain != "" && inZone(baseDomain, d):
		return "contains the tailnet's domain" // as dns.lan_domains may not
	case d == "home.arpa":
		return "" // RFC 8375's home domain, in the public suffix list as every home has its own
	}
	// Routing a suffix such as com or co.uk to the LAN would break every
	// name below it on the phone; lan, home or fritz.box are fine.
	if s, icann := publicsuffix.PublicSuffix(d); icann && s == d {
		return "a public suffix"
	}
	return ""
}

func skippedNote(skipped []string) string {
	if len(skipped) == 0 {
		return ""
	}
	return " (skipped " + strings.Join(skipped, ", ") + ")"
}

// readError describes a failed read of p, without the root.
func readError(p string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return p + " is missing"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("cannot read %s: %v", p, err)
}

// resolvConf is what detectLANDNS uses of /etc/resolv.conf.
type resolvConf struct {
	Search      []string // from search and domain lines, in order
	Nameservers []netip.Addr
}

func parseResolvConf(text string) resolvConf {
	var rc resolvConf
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "search", "domain":
			for _, d := range f[1:] {
				if strings.HasPrefix(d, "#") || strings.HasPrefix(d, ";") {
					break
				}
				rc.Search = append(rc.Search, d)
			}
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil {
				rc.Nameservers = append(rc.Nameservers, a.WithZone("").Unmap())
			}
		}
	}
	return rc
}

// dnsmasqDomains returns the local domains of the dnsmasq sections of
// OpenWrt's /etc/config/dhcp: option domain, then those of option local,
// which takes dnsmasq's "/lan/" form.
func dnsmasqDomains(secs []uci.Section) []string {
	var out []string
	for _, s := range secs {
		if s.Type != "dnsmasq" {
			continue
		}
		if d := s.Options["domain"]; d != "" {
			out = append(out, d)
		}
		for _, l := range append([]string{s.Options["local"]}, s.Lists["local"]...) {
			out = append(out, dnsmasqLocalDomains(l)...)
		}
	}
	return out
}

// localServiceNote is what a phone needs changed on a router whose
// dnsmasq answers only hosts on its own subnets: a phone's queries come
// from its tailnet address, on no subnet of the router's.
const localServiceNote = "; but dnsmasq's option localservice '1' refuses queries from tailnet addresses: run uci set dhcp.@dnsmasq[0].localservice='0'; uci commit dhcp; /etc/init.d/dnsmasq restart (the firewall still keeps the WAN out)"

// dnsmasqLocalService reports whether a dnsmasq section of OpenWrt's dhcp
// config answers local subnets only: localservice '1' without an
// interface list, which makes dnsmasq drop the option.
func dnsmasqLocalService(secs []uci.Section) bool {
	for _, s := range secs {
		if s.Type == "dnsmasq" && s.Options["localservice"] == "1" && len(s.Lists["interface"]) == 0 && s.Options["interface"] == "" {
			return true
		}
	}
	return false
}

// dnsmasqLocalDomains returns the domains of a dnsmasq --local value,
// "/lan/" or "/lan/home/". A value with a server after the last slash
// forwards rather than answers locally, so it has none.
func dnsmasqLocalDomains(v string) []string {
	parts := strings.Split(v, "/")
	if len(parts) < 3 || parts[0] != "" || parts[len(parts)-1] != "" {
		return nil
	}
	var out []string
	for _, d := range parts[1 : len(parts)-1] {
		if d != "" { // "//" stands for unqualified names
			out = append(out, d)
		}
	}
	return out
}

// udpListening returns a function that reports whether a UDP socket on
// this host under root is bound to an address and port, or to the
// wildcard address on that port, by reading /proc/net/udp and udp6.
func udpListening(root string) func(netip.AddrPort) bool {
	return udpListeningOrder(root, binary.NativeEndian)
}

// udpListeningOrder is udpListening for /proc files written by a kernel
// of byte order order, so that tests of little-endian files pass on
// big-endian MIPS routers too.
func udpListeningOrder(root string, order binary.ByteOrder) func(netip.AddrPort) bool {
	return func(ap netip.AddrPort) bool {
		for _, p := range []string{procNetUDP, procNetUDP6} {
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				continue // no IPv6, or not Linux
			}
			if slices.ContainsFunc(parseProcNetUDP(string(b), order), func(s netip.AddrPort) bool { return receives(s, ap) }) {
				return true
			}
		}
		return false
	}
}

// receives reports whether a socket bound to sock receives datagrams sent
// to ap. A socket on [::] takes IPv4 too unless it set IPV6_V6ONLY, which
// /proc does not show; Go servers (AdGuard Home, CoreDNS) listen so.
func receives(sock, ap netip.AddrPort) bool {
	if sock.Port() != ap.Port() {
		return false
	}
	s, a := sock.Addr().Unmap(), ap.Addr().WithZone("").Unmap()
	switch {
	case s == a:
		return true
	case !s.IsUnspecified():
		return false
	}
	return s.Is6() || a.Is4()
}

// parseProcNetUDP returns the local addresses of the unconnected sockets
// in a /proc/net/udp or udp6 file. The kernel prints each 32-bit word of
// an address as a hex number in its own byte order; the port is plain hex.
func parseProcNetUDP(text string, order binary.ByteOrder) []netip.AddrPort {
	var out []netip.AddrPort
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		local, err1 := parseProcAddrPort(f[1], order)
		remote, err2 := parseProcAddrPort(f[2], order)
		if err1 != nil || err2 != nil || remote.Port() != 0 {
			continue // the header, or a connected socket: a client, not a server
		}
		out = append(out, local)
	}
	return out
}

// parseProcAddrPort parses "0101A8C0:0035" (192.168.1.1:53 on a
// little-endian host).
func parseProcAddrPort(s string, order binary.ByteOrder) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || (len(h) != 8 && len(h) != 32) {
		return netip.AddrPort{}, fmt.Errorf("%q is not a /proc/net/udp address", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not a /proc/net/udp address", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q has no hex port", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		order.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b) // 4 or 16 bytes
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// maxReverseZones bounds ReverseZones' answer, which clients receive as
// that many split-DNS routes.
const maxReverseZones = 256

// minReverseBits is the shortest prefix ReverseZones accepts: a shorter
// one is an exit-node route (/0) or the Internet, not a LAN, and its zones
// would send reverse lookups for the world to the home resolver.
const minReverseBits = 8

// ReverseZones returns the reverse-DNS zones (in-addr.arpa or ip6.arpa, no
// trailing dot) that cover p exactly, for split DNS of PTR lookups. Zones
// are whole octets (IPv4) or nibbles (IPv6): a /24 or /16 is one zone, a
// /23 two /24 zones, a /20 sixteen. A prefix longer than /24 (IPv4) or /64
// (IPv6) gets the one /24 or /64 zone containing it, as resolvers serve
// no smaller zones without RFC 2317 delegation.
func ReverseZones(p netip.Prefix) ([]string, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("reverse zones of %v: not a valid prefix", p)
	}
	if p.Bits() < minReverseBits {
		return nil, fmt.Errorf("reverse zones of %v: shorter than /%d, so not a LAN", p, minReverseBits)
	}
	p = p.Masked()
	unit, base, longest, suffix := 8, 10, 24, "in-addr.arpa"
	if p.Addr().Is6() {
		unit, base, longest, suffix = 4, 16, 64, "ip6.arpa"
	}
	zoneBits := min((p.Bits()+unit-1)/unit*unit, longest)
	n := 1 << max(zoneBits-p.Bits(), 0)
	if n > maxReverseZones {
		return nil, fmt.Errorf("reverse zones of %v: %d zones, more than %d", p, n, maxReverseZones)
	}
	// The zones differ only in their last unit, which p leaves zero.
	labels := addrUnits(p.Addr(), unit)[:zoneBits/unit]
	first := labels[len(labels)-1]
	zones := make([]string, 0, n)
	for i := range n {
		labels[len(labels)-1] = first + i
		var b strings.Builder
		for j := len(labels) - 1; j >= 0; j-- {
			b.WriteString(strconv.FormatInt(int64(labels[j]), base))
			b.WriteByte('.')
		}
		zones = append(zones, b.String()+suffix)
	}
	return zones, nil
}

// addrUnits returns the octets (unit 8) or nibbles (unit 4) of a, most
// significant first.
func addrUnits(a netip.Addr, unit int) []int {
	var out []int
	for _, b := range a.AsSlice() {
		if unit == 8 {
			out = append(out, int(b))
		} else {
			out = append(out, int(b>>4), int(b&0xf))
		}
	}
	return out
}
