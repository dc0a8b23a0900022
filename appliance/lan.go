package appliance

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LAN is what the gateway serves: the prefixes it advertises and the
// interface it considers the WAN, with the reasons, one line per decision,
// for `homenet status`.
type LAN struct {
	Routes []netip.Prefix `json:"routes"`
	WAN    string         `json:"wan,omitempty"` // "" when there is no default route
	Why    []string       `json:"why"`
}

// GatewayLAN returns the LAN the gateway agent serves: gateway.routes when
// the config names any, else what DetectLAN finds. The WAN is always
// detected.
func (c *Config) GatewayLAN() (LAN, error) {
	lan, err := DetectLAN()
	if err != nil {
		return LAN{}, err
	}
	if len(c.Gateway.Routes) == 0 {
		return lan, nil
	}
	var routes []netip.Prefix
	for _, s := range c.Gateway.Routes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return LAN{}, fmt.Errorf("gateway.routes: %q is not a CIDR prefix", s)
		}
		routes = append(routes, p.Masked())
	}
	why := []string{fmt.Sprintf("routes %v: from gateway.routes in the config (detection would have picked %v)", routes, lan.Routes)}
	for _, w := range lan.Why {
		if strings.HasPrefix(w, "WAN") {
			why = append(why, w)
		}
	}
	return LAN{Routes: routes, WAN: lan.WAN, Why: why}, nil
}

// DetectLAN finds the prefixes a home gateway should advertise: the
// directly connected private IPv4 prefixes (RFC 1918) of its up, non-WAN
// interfaces, skipping container, VPN and tailnet interfaces. The WAN is the
// interface of the IPv4 default route. On OpenWrt, br-lan wins when it has
// such a prefix. A host with nothing but its WAN (a Raspberry Pi on the home
// LAN) serves the WAN's own private prefix.
func DetectLAN() (LAN, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return LAN{}, fmt.Errorf("listing interfaces: %w", err)
	}
	var in lanInput
	for _, ifc := range ifs {
		li := lanIface{
			Name:     ifc.Name,
			Up:       ifc.Flags&net.FlagUp != 0,
			Loopback: ifc.Flags&net.FlagLoopback != 0,
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			bits, _ := ipn.Mask.Size()
			li.Addrs = append(li.Addrs, netip.PrefixFrom(ip.Unmap(), bits))
		}
		in.Ifaces = append(in.Ifaces, li)
	}
	if f, err := os.Open("/proc/net/route"); err == nil {
		in.DefaultRoute = defaultRouteIface(f)
		f.Close()
	}
	if _, err := os.Stat("/etc/openwrt_release"); err == nil {
		in.OpenWrt = true
	}
	return detectLAN(in), nil
}

// lanInput is everything detectLAN looks at, so that it can be tested
// without a machine.
type lanInput struct {
	Ifaces       []lanIface
	DefaultRoute string // interface of the IPv4 default route; "" if none
	OpenWrt      bool
}

type lanIface struct {
	Name     string
	Up       bool
	Loopback bool
	Addrs    []netip.Prefix // address with prefix length, as configured
}

// ignoredIface matches interfaces that are never the home LAN: the tailnet
// itself, containers and VMs (docker0, br-<12 hex> from docker networks,
// veth pairs, libvirt, LXC/LXD, podman, CNI, Kubernetes overlays) and other
// VPNs (WireGuard, ZeroTier, OpenVPN tun/tap).
var ignoredIface = regexp.MustCompile(`^(tailscale|docker|veth|br-[0-9a-f]{12}$|virbr|vnet|lxcbr|lxdbr|podman|cni|flannel|cali|cilium|kube|vxlan|weave|wg|zt|tun|tap)`)

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// detectLAN is DetectLAN on given data.
func detectLAN(in lanInput) LAN {
	var lan LAN
	why := func(format string, args ...any) { lan.Why = append(lan.Why, fmt.Sprintf(format, args...)) }

	lan.WAN = in.DefaultRoute
	if lan.WAN != "" {
		why("WAN is %s: it has the IPv4 default route", lan.WAN)
	} else {
		why("WAN unknown: no IPv4 default route")
	}

	ifaces := slices.Clone(in.Ifaces)
	slices.SortFunc(ifaces, func(a, b lanIface) int { return strings.Compare(a.Name, b.Name) })

	// candidates returns the private IPv4 prefixes of ifc, explaining
	// every address it skips when explain is set.
	candidates := func(ifc lanIface, explain bool) []netip.Prefix {
		var out []netip.Prefix
		for _, a := range ifc.Addrs {
			p := a.Masked()
			ip := a.Addr()
			skip := ""
			switch {
			case !ip.Is4():
				skip = "IPv6 is not advertised automatically; list it in gateway.routes"
			case ip.IsLinkLocalUnicast():
				skip = "link-local"
			case a.Bits() == 32:
				skip = "a /32 is not a network"
			case cgnat.Contains(ip):
				skip = "in 100.64.0.0/10 (carrier-grade NAT or a tailnet)"
			case !ip.IsPrivate():
				skip = "not a private (RFC 1918) prefix; list it in gateway.routes to serve it"
			}
			if skip != "" {
				if explain {
					why("skipped %s on %s: %s", p, ifc.Name, skip)
				}
				continue
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out
	}

	type found struct {
		iface  string
		routes []netip.Prefix
	}
	var lans []found
	for _, ifc := range ifaces {
		switch {
		case ifc.Loopback:
			continue
		case ifc.Name == lan.WAN:
			continue
		case ignoredIface.MatchString(ifc.Name):
			if len(ifc.Addrs) > 0 {
				why("skipped %s: a container, VPN or tailnet interface", ifc.Name)
			}
			continue
		case !ifc.Up:
			if len(ifc.Addrs) > 0 {
				why("skipped %s: down", ifc.Name)
			}
			continue
		}
		if rs := candidates(ifc, true); len(rs) > 0 {
			lans = append(lans, found{ifc.Name, rs})
		}
	}

	if in.OpenWrt {
		for _, f := range lans {
			if f.iface == "br-lan" {
				for _, o := range lans {
					if o.iface != "br-lan" {
						why("skipped %v on %s: OpenWrt, serving br-lan only", o.routes, o.iface)
					}
				}
				lans = []found{f}
				break
			}
		}
	}

	for _, f := range lans {
		for _, p := range f.routes {
			if !slices.Contains(lan.Routes, p) {
				lan.Routes = append(lan.Routes, p)
				why("serving %s: directly connected on %s", p, f.iface)
			}
		}
	}
	if len(lan.Routes) > 0 || lan.WAN == "" {
		if len(lan.Routes) == 0 {
			why("no LAN prefix found; set gateway.routes")
		}
		return lan
	}

	// Nothing but the WAN: a host on the home LAN rather than the router.
	// Its own network is the LAN.
	for _, ifc := range ifaces {
		if ifc.Name != lan.WAN {
			continue
		}
		for _, p := range candidates(ifc, false) {
			lan.Routes = append(lan.Routes, p)
			why("serving %s: directly connected on %s, the only interface (this host sits on the LAN rather than routing it)", p, ifc.Name)
		}
	}
	if len(lan.Routes) == 0 {
		why("no LAN prefix found; set gateway.routes")
	}
	return lan
}

// defaultRouteIface parses /proc/net/route and returns the interface of the
// IPv4 default route with the lowest metric, or "".
func defaultRouteIface(r io.Reader) string {
	best, bestMetric := "", uint64(1<<63)
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue // header
		}
		dst, err1 := hex.DecodeString(f[1])
		mask, err2 := hex.DecodeString(f[7])
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.ParseUint(f[6], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		const rtfUp = 0x1
		if flags&rtfUp == 0 || !allZero(dst) || !allZero(mask) {
			continue
		}
		if metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	return best
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}
