package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Rules is everything the gateway needs from netfilter. The zero value
// installs nothing: applying it removes whatever an earlier Apply installed.
//
// Rules is a plain value; the caller (appliance) fills in its defaults, for
// example MasqueradeLAN = true unless the user turned it off.
type Rules struct {
	// Tun is the name of the tailnet interface, normally "tailscale0".
	// Required unless Rules is the zero value.
	Tun string

	// TailnetPrefixes are our tailnet's address ranges, for example
	// 10.77.0.0/16 and fd7a:115c:a1e0::/48. Sources in them are dropped when
	// they arrive on any interface but Tun (anti-spoofing) and masqueraded
	// when they leave through one. Each prefix must be masked (no host bits).
	// Only these prefixes are anti-spoofed: there is deliberately no blanket
	// 100.64.0.0/10 drop, because a home gateway's WAN may itself sit behind
	// an ISP's CGNAT in that range.
	TailnetPrefixes []netip.Prefix

	// MasqueradeLAN SNATs tailnet sources leaving through any interface that
	// is not Tun, so LAN hosts answer the gateway rather than needing a route
	// back to the tailnet. It covers the WAN too, which makes ExitNode
	// redundant while it is on (see ExitNode).
	MasqueradeLAN bool

	// ExitNode masquerades tailnet sources leaving through WANInterface.
	// With MasqueradeLAN on it adds no rule: "every interface but Tun"
	// already includes the WAN, and masquerading is not an access control
	// (what gets forwarded at all is decided by the routes control hands
	// out). With MasqueradeLAN off it needs WANInterface, so that exit
	// traffic is NATed while LAN-bound traffic keeps its tailnet source.
	ExitNode bool

	// WANInterface is the default-route interface, or "" if unknown.
	WANInterface string

	// WireGuardPort is a UDP port to accept on input; 0 opens none.
	WireGuardPort uint16
}

// IsZero reports whether r is the zero value, which installs nothing.
func (r Rules) IsZero() bool {
	return r.Tun == "" && len(r.TailnetPrefixes) == 0 && !r.MasqueradeLAN &&
		!r.ExitNode && r.WANInterface == "" && r.WireGuardPort == 0
}

// equal reports whether r and o are the same Rules. It must compare every
// field: Intact trusts an earlier check only for equal Rules.
func (r Rules) equal(o Rules) bool {
	return r.Tun == o.Tun && slices.Equal(r.TailnetPrefixes, o.TailnetPrefixes) &&
		r.MasqueradeLAN == o.MasqueradeLAN && r.ExitNode == o.ExitNode &&
		r.WANInterface == o.WANInterface && r.WireGuardPort == o.WireGuardPort
}

// clone returns a copy of r that shares no memory with it.
func (r Rules) clone() Rules {
	r.TailnetPrefixes = slices.Clone(r.TailnetPrefixes)
	return r
}

// Validate reports whether r can be installed.
func (r Rules) Validate() error {
	if r.IsZero() {
		return nil
	}
	var errs []error
	if r.Tun == "" {
		errs = append(errs, errors.New("firewall: Tun is required"))
	} else if err := checkIfName(r.Tun); err != nil {
		errs = append(errs, fmt.Errorf("firewall: Tun: %w", err))
	}
	if r.WANInterface != "" {
		if err := checkIfName(r.WANInterface); err != nil {
			errs = append(errs, fmt.Errorf("firewall: WANInterface: %w", err))
		} else if r.WANInterface == r.Tun {
			errs = append(errs, fmt.Errorf("firewall: WANInterface %q is the tun", r.WANInterface))
		}
	}
	for i, p := range r.TailnetPrefixes {
		switch {
		case !p.IsValid():
			errs = append(errs, fmt.Errorf("firewall: TailnetPrefixes[%d]: invalid prefix", i))
		case p.Addr().Zone() != "" || p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("firewall: TailnetPrefixes[%d]: %v: want a plain IPv4 or IPv6 prefix", i, p))
		case p.Bits() == 0:
			errs = append(errs, fmt.Errorf("firewall: TailnetPrefixes[%d]: %v covers the whole address family", i, p))
		case p != p.Masked():
			errs = append(errs, fmt.Errorf("firewall: TailnetPrefixes[%d]: %v has host bits set (want %v)", i, p, p.Masked()))
		case slices.Contains(r.TailnetPrefixes[:i], p):
			errs = append(errs, fmt.Errorf("firewall: TailnetPrefixes[%d]: %v listed twice", i, p))
		}
	}
	if r.ExitNode && !r.MasqueradeLAN && r.WANInterface == "" && len(r.TailnetPrefixes) > 0 {
		errs = append(errs, errors.New("firewall: ExitNode without MasqueradeLAN needs WANInterface"))
	}
	return errors.Join(errs...)
}

// checkIfName accepts what Linux accepts as an interface name (at most 15
// bytes), restricted to characters that mean nothing special to iptables
// ("+" is a wildcard there) or nft ("*").
func checkIfName(name string) error {
	if len(name) == 0 || len(name) > 15 {
		return fmt.Errorf("interface name %q: want 1 to 15 characters", name)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("interface name %q is reserved", name)
	}
	for _, c := range []byte(name) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("interface name %q: character %q not allowed", name, c)
		}
	}
	return nil
}

// The policy below is shared by every backend: plan turns Rules into an
// ordered list of abstract rules per chain, and each backend only renders
// them. The chains:
//
//	input       filter INPUT            spoof drops, WireGuard port
//	forward     filter FORWARD          spoof drops, accept to/from the tun
//	postrouting nat POSTROUTING         masquerade tailnet sources
//	mss         mangle FORWARD          clamp TCP MSS to the path MTU
type chainID int

const (
	chainInput chainID = iota
	chainForward
	chainPostrouting
	chainMSS
	numChains
)

type verdict int

const (
	vAccept verdict = iota
	vDrop
	vReturn
	vMasquerade
	vClampMSS
)

// rule is one abstract netfilter rule. Empty fields match anything.
type rule struct {
	src     netip.Prefix // source prefix; also restricts the rule to its family
	iif     string       // input interface
	iifNot  bool         // match iif != iif
	oif     string       // output interface
	oifNot  bool         // match oif != oif
	udpPort uint16       // UDP destination port
	tcpSYN  bool         // TCP with SYN set and RST clear
	verdict verdict
}

// forFamily reports whether the rule belongs in the v4 (v6=false) or v6
// ruleset of a backend that keeps the families apart.
func (r rule) forFamily(v6 bool) bool {
	return !r.src.IsValid() || r.src.Addr().Is6() == v6
}

// plan returns the rules r needs in each chain, in order. r must be valid
// and non-zero.
func plan(r Rules) [numChains][]rule {
	var p [numChains][]rule
	spoof := func() []rule {
		var rs []rule
		for _, pfx := range r.TailnetPrefixes {
			rs = append(rs, rule{src: pfx, iif: r.Tun, iifNot: true, verdict: vDrop})
		}
		return rs
	}

	// Loopback first: the gateway talking to its own tailnet address
	// arrives on lo with a tailnet source and must not count as spoofed.
	p[chainInput] = append([]rule{{iif: "lo", verdict: vReturn}}, spoof()...)
	// The gateway itself is a tailnet node: phones ping and reach it even
	// where the input policy is drop.
	p[chainInput] = append(p[chainInput], rule{iif: r.Tun, verdict: vAccept})
	if r.WireGuardPort != 0 {
		p[chainInput] = append(p[chainInput], rule{udpPort: r.WireGuardPort, verdict: vAccept})
	}

	// Spoof drops come before the accepts: "-o tun" would otherwise let a
	// LAN host forge a tailnet source into the tailnet.
	p[chainForward] = append(spoof(),
		rule{iif: r.Tun, verdict: vAccept},
		rule{oif: r.Tun, verdict: vAccept},
	)

	for _, pfx := range r.TailnetPrefixes {
		switch {
		case r.MasqueradeLAN:
			p[chainPostrouting] = append(p[chainPostrouting],
				rule{src: pfx, oif: r.Tun, oifNot: true, verdict: vMasquerade})
		case r.ExitNode:
			p[chainPostrouting] = append(p[chainPostrouting],
				rule{src: pfx, oif: r.WANInterface, verdict: vMasquerade})
		}
	}

	// The tun MTU (1280) is below the LAN's; without clamping, TCP through
	// the subnet router stalls on paths that drop ICMP too-big.
	p[chainMSS] = []rule{
		{iif: r.Tun, tcpSYN: true, verdict: vClampMSS},
		{oif: r.Tun, tcpSYN: true, verdict: vClampMSS},
	}
	return p
}
