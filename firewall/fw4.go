package firewall

import (
	"bytes"
	"strings"
)

// FW4 is what OpenWrt's fw4 does with a tunnel's forwarded traffic, read
// from its live nftables table (inet fw4). homenet's own accepts are not
// final (see nftTableName): when fw4's forward chain drops by policy and
// none of its rules picks the tunnel out for a zone, phones reach neither
// the LAN nor, through the exit node, the internet.
type FW4 struct {
	// Present says that table inet fw4 with a forward base chain exists.
	Present bool `json:"present"`
	// ForwardPolicy is that chain's policy: "accept" or "drop".
	ForwardPolicy string `json:"forward_policy,omitempty"`
	// TunMatched says a rule of the forward chain matches the tunnel by
	// input interface name (exactly, as a wildcard such as "tailscale*",
	// or in a set): fw4's dispatch to the tunnel's zone.
	TunMatched bool `json:"tun_matched"`
}

// DropsForward reports whether fw4 drops what arrives on the tunnel to be
// forwarded.
func (f FW4) DropsForward() bool {
	return f.Present && f.ForwardPolicy == "drop" && !f.TunMatched
}

// fw4Table and fw4Chain name fw4's table and its forward base chain, which
// fw4 always generates (templates/ruleset.uc).
const (
	fw4Table = "fw4"
	fw4Chain = "forward"
)

// ifnameMatches reports whether an interface name as nft compares it
// matches name: the name and a NUL for an exact match ("tailscale0"), or
// the bare prefix for a wildcard ("tailscale*" compares "tailscale").
func ifnameMatches(data []byte, name string) bool {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return string(data[:i]) == name
	}
	return len(data) > 0 && strings.HasPrefix(name, string(data))
}
