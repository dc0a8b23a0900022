package appliance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"tailscale.com/net/stun"
)

// NetInfo is what init learned about the host's network: the LAN and WAN
// as DetectLAN sees them, and the addresses that matter for reaching the
// server. Finding it sends nothing anywhere, unless a STUN server was
// named.
type NetInfo struct {
	LAN LAN `json:"lan"`
	// WANAddrs are the addresses of the WAN interface.
	WANAddrs []netip.Prefix `json:"wan_addresses,omitempty"`
	// LANAddr is this host's IPv4 address inside one of the LAN routes.
	LANAddr netip.Addr `json:"lan_address,omitzero"`
	// HostAddr is this host's first IPv4 address on any interface that is
	// up (not loopback, link-local, a tunnel or a container's), the last
	// resort for the server URL.
	HostAddr netip.Addr `json:"host_address,omitzero"`
	// GlobalIPv6 are this host's global unicast IPv6 addresses (not ULA,
	// not link-local, not on tunnels or containers).
	GlobalIPv6 []netip.Addr `json:"global_ipv6,omitempty"`
	// Public is the address STUNServer saw, when one was asked.
	Public     netip.Addr `json:"public_address,omitzero"`
	STUNServer string     `json:"stun_server,omitempty"`
}

// ProbeNetwork finds the host's NetInfo. It reads interfaces and routes
// only, and sends nothing.
func ProbeNetwork() (NetInfo, error) {
	lan, err := DetectLAN()
	if err != nil {
		return NetInfo{}, err
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return NetInfo{}, fmt.Errorf("listing interfaces: %w", err)
	}
	var ifaces []lanIface
	for _, ifc := range ifs {
		li := lanIface{Name: ifc.Name, Up: ifc.Flags&net.FlagUp != 0, Loopback: ifc.Flags&net.FlagLoopback != 0}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					bits, _ := ipn.Mask.Size()
					li.Addrs = append(li.Addrs, netip.PrefixFrom(ip.Unmap(), bits))
				}
			}
		}
		ifaces = append(ifaces, li)
	}
	return netInfoFrom(lan, ifaces), nil
}

// netInfoFrom is ProbeNetwork on given data, without STUN.
func netInfoFrom(lan LAN, ifaces []lanIface) NetInfo {
	n := NetInfo{LAN: lan}
	for _, ifc := range ifaces {
		if ifc.Loopback || !ifc.Up || ignoredIface.MatchString(ifc.Name) {
			continue
		}
		for _, a := range ifc.Addrs {
			ip := a.Addr()
			if ifc.Name == lan.WAN && !ip.IsLinkLocalUnicast() {
				n.WANAddrs = append(n.WANAddrs, a)
			}
			if ip.Is6() && ip.IsGlobalUnicast() && !ip.IsPrivate() {
				n.GlobalIPv6 = append(n.GlobalIPv6, ip)
			}
			if ip.Is4() && !ip.IsLinkLocalUnicast() && !n.HostAddr.IsValid() {
				n.HostAddr = ip
			}
			if ip.Is4() && !n.LANAddr.IsValid() {
				for _, r := range lan.Routes {
					if r.Contains(ip) {
						n.LANAddr = ip
						break
					}
				}
			}
		}
	}
	return n
}

// WANIPv4 returns the first IPv4 address of the WAN interface, or the zero
// Addr.
func (n NetInfo) WANIPv4() netip.Addr {
	for _, a := range n.WANAddrs {
		if a.Addr().Is4() {
			return a.Addr()
		}
	}
	return netip.Addr{}
}

// Address classes, as addrClass returns them.
const (
	addrNone      = "none"
	addrPublic    = "public"
	addrPrivate   = "private" // RFC 1918 or ULA
	addrCGNAT     = "cgnat"   // 100.64.0.0/10
	addrLoopback  = "loopback"
	addrLinkLocal = "link-local"
)

func addrClass(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return addrNone
	case a.IsLoopback():
		return addrLoopback
	case a.IsLinkLocalUnicast():
		return addrLinkLocal
	case cgnat.Contains(a):
		return addrCGNAT
	case a.IsPrivate():
		return addrPrivate
	}
	return addrPublic
}

// chooseServerURL picks the URL phones are told to use when none was given,
// on the control server's port, and says why. Only a public address found
// on the WAN interface (or by the STUN probe) reaches phones away from
// home; otherwise it takes this host's LAN address, which works at home,
// and the warnings say what to do.
func chooseServerURL(n NetInfo, port string) (string, string) {
	mk := func(a netip.Addr) string { return "http://" + net.JoinHostPort(a.String(), port) }
	wan := n.WANIPv4()
	switch {
	case addrClass(n.Public) == addrPublic:
		return mk(n.Public), fmt.Sprintf("the public address the STUN server %s saw", n.STUNServer)
	case addrClass(wan) == addrPublic:
		return mk(wan), fmt.Sprintf("the public address of the WAN interface %s", n.LAN.WAN)
	case n.LANAddr.IsValid():
		if wan.IsValid() {
			return mk(n.LANAddr), fmt.Sprintf("this host's LAN address: the WAN address %s is not public", wan)
		}
		return mk(n.LANAddr), "this host's LAN address: there is no WAN address"
	case wan.IsValid():
		return mk(wan), fmt.Sprintf("the WAN interface %s's address, which is not public", n.LAN.WAN)
	case n.HostAddr.IsValid():
		return mk(n.HostAddr), "this host's address: there is neither a WAN nor a LAN address"
	}
	return mk(netip.MustParseAddr("127.0.0.1")), "no usable address found: only this host can use it"
}

// webPortsFree reports whether init may put c's listeners on 80 and 443:
// the relay is on, both listeners are at their defaults (the user chose
// nothing else), and the platform's web interface does not hold those
// ports, as it does on OpenWrt, Synology and QNAP.
func webPortsFree(c Config, p Platform) bool {
	switch p.Kind {
	case PlatformOpenWrt, PlatformSynology, PlatformQNAP:
		return false
	}
	def := DefaultConfig()
	return c.Relay.Enabled && c.Server.Listen == def.Server.Listen && c.Relay.Listen == def.Relay.Listen
}

// httpsForWAN returns https://ADDR for a guessed http://ADDR:PORT URL when
// ADDR is the public address of this host's own WAN interface and the
// platform leaves ports 80 and 443 to homenet (httpsListeners then moves
// the listeners there), else "". A client of a public http:// server
// insists on TLS on port 443 with a trusted certificate after its first
// failed connection, so plain http loses phones at the first restart; the
// relay gets a certificate for the address by HTTP-01 on port 80.
func httpsForWAN(guess string, n NetInfo, c Config, p Platform) string {
	u, err := url.Parse(guess)
	wan := n.WANIPv4()
	if err != nil || u.Scheme != "http" || addrClass(wan) != addrPublic || u.Hostname() != wan.String() || !webPortsFree(c, p) {
		return ""
	}
	return "https://" + wan.String()
}

// Warning tells the user why phones may not reach the server, and what to
// do about it.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// reachabilityWarnings explains who can reach the server at cfg's URL,
// given the network and the platform. urlGiven says the URL was not picked
// by init this time; rerun is the command that changes it.
func reachabilityWarnings(p Platform, n NetInfo, cfg *Config, urlGiven bool, rerun string) []Warning {
	var ws []Warning
	add := func(code, msg, fix string) { ws = append(ws, Warning{Code: code, Message: msg, Fix: fix}) }
	ports := portList(cfg)
	wan := n.WANIPv4()
	urlAddr, urlClass := serverURLClass(cfg.Server.URL)
	// The user named a public address or name: don't tell them to.
	serverURLFix := func(what string) string {
		if urlGiven && urlClass == addrPublic {
			return ""
		}
		return fmt.Sprintf(", and run %s --server-url http://%s:%s", rerun, what, portOf(cfg.Server.Listen))
	}
	v6 := ""
	if len(n.GlobalIPv6) > 0 {
		v6 = n.GlobalIPv6[0].String()
	}

	switch addrClass(wan) {
	case addrNone:
		if n.LAN.WAN == "" {
			add("no-wan", "No default route: this host cannot reach the internet, and phones away from home cannot reach it.",
				"Connect the WAN (or set a default route) and run homenet init again.")
		} else {
			add("no-wan", fmt.Sprintf("The WAN interface %s has no IPv4 address: phones away from home cannot reach this host over IPv4.", n.LAN.WAN),
				"Check the WAN connection and run homenet init again.")
		}
	case addrCGNAT:
		msg := fmt.Sprintf("The WAN address %s is in 100.64.0.0/10: your ISP shares one public IPv4 address among many customers (carrier-grade NAT). "+
			"Nothing on the internet can connect in, so phones away from home cannot reach the server or the relay over IPv4.", wan)
		fix := "Ask your ISP for a public IPv4 address (many give one on request), enable IPv6 if your ISP offers it, or run homenet on a VPS with a public address."
		switch {
		case v6 != "" && cfg.DDNS.Provider != "":
			fix = fmt.Sprintf("Phones with IPv6 reach %s at this host's global IPv6 address %s, which [ddns] keeps in DNS: "+
				"allow %s to this host in your router's IPv6 firewall. For phones without IPv6, run homenet on a VPS.",
				cfg.Server.URL, v6, ports)
		case v6 != "":
			fix = fmt.Sprintf("This host has the global IPv6 address %s, which phones with IPv6 can reach, but it changes when your line reconnects: "+
				"give it a DNS name kept current with %s --ddns PROVIDER --ddns-name NAME --ddns-credentials FILE, "+
				"which also gets a certificate by DNS-01 and serves https://NAME:%s (see \"No public IPv4\" in docs/config.md), "+
				"and allow the ports it prints in the router's IPv6 firewall. For phones without IPv6, run homenet on a VPS.",
				v6, rerun, DefaultHTTPSPort)
		}
		add("cgnat", msg, fix)
	case addrPrivate, addrLinkLocal, addrLoopback:
		public := "<your public address or a DNS name>"
		seen := ""
		if addrClass(n.Public) == addrPublic {
			public = n.Public.String()
			seen = fmt.Sprintf(" The STUN server %s saw your public address as %s.", n.STUNServer, n.Public)
		}
		fixURL := serverURLFix(public)
		if urlAddr == n.Public && n.Public.IsValid() {
			fixURL = ""
		}
		if p.Kind == PlatformOpenWrt {
			add("double-nat",
				fmt.Sprintf("The WAN address %s is private: this router sits behind another router (double NAT), so phones away from home cannot reach it as things are.%s", wan, seen),
				fmt.Sprintf("On the upstream router, forward %s to %s%s. Or put the upstream modem in bridge mode.", ports, wan, fixURL))
		} else {
			add("behind-nat",
				fmt.Sprintf("This host's address %s is private: it sits behind your home router, so phones away from home cannot reach it as things are.%s", wan, seen),
				behindNATFix(cfg, ports, wan.String(), fixURL, rerun))
		}
	case addrPublic:
		if p.Kind != PlatformOpenWrt {
			add("open-ports", fmt.Sprintf("The WAN address %s is public: phones connect to this host directly.", wan),
				fmt.Sprintf("Make sure this host's firewall accepts %s.", ports))
		}
	}

	ws = append(ws, schemeWarnings(cfg, urlClass, rerun)...)

	switch urlClass {
	case addrPrivate, addrLoopback, addrLinkLocal, addrCGNAT:
		if addrClass(wan) == addrPublic || urlGiven || urlClass == addrLoopback {
			who := "only on your home network"
			if urlClass == addrLoopback {
				who = "only on this host"
			}
			add("private-url", fmt.Sprintf("The server URL %s names a %s address: phones can use it %s.", cfg.Server.URL, urlClass, who),
				fmt.Sprintf("Run %s --server-url naming a public address or DNS name.", rerun))
		}
	}

	if v6 == "" && addrClass(wan) != addrCGNAT && addrClass(wan) != addrPublic {
		add("no-ipv6", "This host has no global IPv6 address either, which phones could reach without port forwards on the IPv4 NAT.",
			"If your ISP offers IPv6, enable it on your router and run homenet init again.")
	}
	return ws
}

// behindNATFix says how phones reach a host behind the home router: ports
// forwarded by UPnP (or by hand), and a name with a certificate.
func behindNATFix(cfg *Config, ports, wan, fixURL, rerun string) string {
	if !cfg.UPnP.Enabled {
		return fmt.Sprintf("On your router, forward %s to %s (and give this host a fixed address there)%s. Until then, phones can join only on your home network.", ports, wan, fixURL)
	}
	fix := fmt.Sprintf("Once it runs, homenet asks your router to forward %s (UPnP, PCP or NAT-PMP; homenet status shows the mappings). "+
		"If the router has that off, turn it on or forward them by hand to %s.", ports, wan)
	if cfg.DDNS.Provider == "" {
		fix += fmt.Sprintf(" Give phones a name that follows your public address, with a certificate: %s --ddns PROVIDER --ddns-name NAME --ddns-credentials FILE "+
			"(https://NAME:%s; see \"homenet on a NAS behind your router\" in docs/install.md).", rerun, DefaultHTTPSPort)
	}
	return fix
}

// serverURLClass returns the address in a server URL and its class; a DNS
// name counts as public, assuming it resolves to where phones can go.
func serverURLClass(serverURL string) (netip.Addr, string) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		return netip.Addr{}, addrNone
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return a, addrPublic
	}
	return a, addrClass(a)
}

// urlSchemeWarnings is schemeWarnings for `homenet serve`, which has no
// network detection: only what the config itself shows.
func urlSchemeWarnings(cfg *Config) []Warning {
	_, class := serverURLClass(cfg.Server.URL)
	return schemeWarnings(cfg, class, "homenet init")
}

// schemeWarnings checks the server URL's scheme against what Tailscale
// clients do: after one failed connection to a server on a public address
// they dial only Noise over TLS, on port 443 or the https URL's port, and
// trust only a real certificate (tailscale/tailscale#13597).
func schemeWarnings(cfg *Config, urlClass, rerun string) []Warning {
	u, err := url.Parse(cfg.Server.URL)
	if err != nil {
		return nil
	}
	switch {
	case u.Scheme == "http" && urlClass == addrPublic:
		return []Warning{{Code: "public-http-url",
			Message: fmt.Sprintf("The server URL %s is plain http on a public address or name: Tailscale clients use it only until their first failed connection (a homenet restart, a network change). "+
				"After that they insist on TLS with a certificate they trust, and phones stay disconnected.", cfg.Server.URL),
			Fix: fmt.Sprintf("Give this host a DNS name (a dynamic-DNS name works), forward TCP 80 and 443 to it and run %s --server-url https://NAME; "+
				"see \"Phones on the internet\" in docs/config.md.", rerun)}}
	case u.Scheme == "https" && cfg.Relay.Enabled && cmp.Or(u.Port(), "443") != portOf(cfg.Relay.Listen):
		port := cmp.Or(u.Port(), "443")
		return []Warning{{Code: "https-port",
			Message: fmt.Sprintf("The server URL %s is https, so clients dial TLS on port %s, but the relay, whose TLS listener serves control too, listens on port %s.", cfg.Server.URL, port, portOf(cfg.Relay.Listen)),
			Fix: fmt.Sprintf("Forward TCP %s on your router to port %s of this host, or set relay.listen = \":%s\" and server.listen = \":80\" "+
				"(on OpenWrt, Synology and QNAP the web interface holds 80 and 443: forward instead).", port, portOf(cfg.Relay.Listen), port)}}
	}
	return nil
}

// httpsListeners puts the listeners where clients of an https:// server
// dial: Noise over plain HTTP on :80 first, then over TLS on :443, which
// the relay's listener answers with a Let's Encrypt certificate for the
// URL's name, or for its public IP address (validated by HTTP-01 on :80). It moves only default ports, and not on platforms whose web
// interface holds 80 and 443. It reports whether it moved them.
func httpsListeners(c *Config, p Platform) bool {
	u, err := url.Parse(c.Server.URL)
	if err != nil || u.Scheme != "https" || u.Port() != "" || !webPortsFree(*c, p) {
		return false
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && addrClass(ip) != addrPublic {
		return false // no CA certifies a private address
	}
	c.Server.Listen, c.Relay.Listen = ":80", ":443"
	return true
}

// exposedPort is a port phones need to reach.
type exposedPort struct {
	proto, port, role string
}

// exposedPorts lists cfg's ports that phones need: control, relay, STUN and
// the gateway's WireGuard port, as far as they are enabled.
func exposedPorts(cfg *Config) []exposedPort {
	var ps []exposedPort
	if cfg.Joins() {
		return []exposedPort{{"udp", fmt.Sprint(wireGuardPort), "WireGuard"}}
	}
	if !isLoopbackListen(cfg.Server.Listen) {
		ps = append(ps, exposedPort{"tcp", portOf(cfg.Server.Listen), "control"})
	}
	if cfg.Relay.Enabled {
		role := "relay"
		if u, err := url.Parse(cfg.Server.URL); err == nil && u.Scheme == "https" && cmp.Or(u.Port(), "443") == portOf(cfg.Relay.Listen) {
			role = "control and relay"
		}
		ps = append(ps, exposedPort{"tcp", portOf(cfg.Relay.Listen), role})
		if cfg.Relay.STUNListen != "" {
			ps = append(ps, exposedPort{"udp", portOf(cfg.Relay.STUNListen), "STUN"})
		}
	}
	if cfg.Gateway.Enabled {
		ps = append(ps, exposedPort{"udp", fmt.Sprint(wireGuardPort), "WireGuard"})
	}
	return ps
}

// isLoopbackListen reports whether a listen address is on loopback only.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return host == "localhost" || (err == nil && ip.IsLoopback())
}

// portList describes the ports phones need, as in "TCP 8080 (control),
// TCP 8443 (relay), UDP 3478 (STUN) and UDP 41641 (WireGuard)".
func portList(cfg *Config) string {
	var ps []string
	for _, p := range exposedPorts(cfg) {
		ps = append(ps, fmt.Sprintf("%s %s (%s)", strings.ToUpper(p.proto), p.port, p.role))
	}
	if len(ps) == 1 {
		return ps[0]
	}
	return strings.Join(ps[:len(ps)-1], ", ") + " and " + ps[len(ps)-1]
}

// wireGuardPort is the gateway agent's UDP port (subnet.DefaultListenPort).
const wireGuardPort = 41641

// portOf returns the port of a host:port listen address.
func portOf(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	return port
}

// stunProbe asks the STUN server at server ("host" or "host:port", default
// port 3478) which address it sees this host's packets come from.
func stunProbe(ctx context.Context, server string) (netip.Addr, error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "3478")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	tx := stun.NewTxID()
	req := stun.Request(tx)
	buf := make([]byte, 1500)
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		if _, err := c.Write(req); err != nil {
			return netip.Addr{}, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break // timeout: send again
			}
			got, addr, err := stun.ParseResponse(buf[:n])
			if err == nil && got == tx {
				return addr.Addr().Unmap(), nil
			}
		}
	}
	if ctx.Err() != nil {
		return netip.Addr{}, fmt.Errorf("no answer from %s: %w", server, ctx.Err())
	}
	return netip.Addr{}, errors.New("no answer from " + server)
}
