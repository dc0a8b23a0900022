package appliance

import "strings"

// Port is a port of this host that phones need to reach from the internet,
// as `homenet ports` prints it.
type Port struct {
	Proto string `json:"proto"` // "tcp" or "udp"
	Port  string `json:"port"`
	// Name is one word: control, relay, STUN or WireGuard. OpenWrt's
	// firewall rule for the port is firewall.homenet_<name in lower case>,
	// named Allow-homenet-<Name>.
	Name string `json:"name"`
	Role string `json:"role"` // what it serves, as in "control and relay"
}

// Ports lists cfg's ports that phones need to reach: control, relay, STUN
// and the gateway's WireGuard port, as far as they are enabled. OpenWrt's
// init script points the package's WAN rules at them on every start.
func Ports(cfg *Config) []Port {
	var ps []Port
	for _, p := range exposedPorts(cfg) {
		ps = append(ps, Port{Proto: p.proto, Port: p.port, Name: openwrtRuleName(p.role), Role: p.role})
	}
	return ps
}

// UCISection is the firewall section of a Port's rule on OpenWrt.
func (p Port) UCISection() string { return "homenet_" + strings.ToLower(p.Name) }
