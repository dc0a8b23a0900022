package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"homenet/control"
	"homenet/ddns/provider"

	"github.com/BurntSushi/toml"
)

// Config is the whole homenet configuration, as read from TOML. Every key is
// documented in docs/config.md; keep the two in step.
type Config struct {
	StateDir string        `toml:"state_dir"`
	Server   ServerConfig  `toml:"server"`
	Relay    RelayConfig   `toml:"relay"`
	Tailnet  TailnetConfig `toml:"tailnet"`
	Gateway  GatewayConfig `toml:"gateway"`
	DDNS     DDNSConfig    `toml:"ddns"`
	UPnP     UPnPConfig    `toml:"upnp"`
	Web      WebConfig     `toml:"web"`
	DNS      DNSConfig     `toml:"dns"`
}

// DNSConfig configures the names clients see: MagicDNS for the nodes, the
// home LAN's names through split DNS, and global resolvers.
type DNSConfig struct {
	// MagicDNS gives every node a name under BaseDomain that clients
	// resolve themselves, also by its short name.
	MagicDNS bool `toml:"magic_dns"`
	// BaseDomain is the domain node names live under.
	BaseDomain string `toml:"base_domain"`
	// Nameservers, when set, resolve all other names for clients; empty
	// leaves clients their own resolvers.
	Nameservers []string `toml:"nameservers"`
	// LANDomains are the home LAN's domains, such as "lan", resolved on
	// the road by LANResolver. Empty means detected on the gateway.
	LANDomains []string `toml:"lan_domains"`
	// LANResolver is the home LAN's DNS server, inside one of the
	// gateway's routes. Empty means detected on the gateway.
	LANResolver string `toml:"lan_resolver"`
}

// WebConfig configures the web admin.
type WebConfig struct {
	// Listen is the web admin's TCP address; empty turns it off. It
	// answers only connections to this host's loopback, LAN and tailnet
	// addresses, never to its WAN address.
	Listen string `toml:"listen"`
}

// UPnPConfig configures port mappings on the home router, for homenet on
// a NAS or Pi behind it.
type UPnPConfig struct {
	// Enabled asks the router (UPnP IGD, PCP or NAT-PMP) to forward the
	// ports phones need, when this host's WAN address is a private one
	// behind it, and deletes the mappings at stop.
	Enabled bool `toml:"enabled"`
}

// ServerConfig configures the coordination server.
type ServerConfig struct {
	// URL is what clients are told to use as their login server.
	URL string `toml:"url"`
	// Listen is the TCP address of the control HTTP server.
	Listen string `toml:"listen"`
	// AdminPasswordFile holds the password that approves interactive logins
	// in the browser. Empty means "admin-password" in the state dir,
	// generated on first start.
	AdminPasswordFile string `toml:"admin_password_file"`
}

// RelayConfig configures the embedded DERP relay and STUN server.
type RelayConfig struct {
	Enabled    bool   `toml:"enabled"`
	Listen     string `toml:"listen"`      // DERP over TLS
	STUNListen string `toml:"stun_listen"` // empty: no STUN
	// Hostname is the name or IP address clients dial for DERP and STUN.
	// Empty means the host of server.url.
	Hostname string `toml:"hostname"`
	// ACMEDirectory is the ACME directory URL used when Hostname is a domain
	// name. Empty means Let's Encrypt.
	ACMEDirectory string `toml:"acme_directory"`
	// ACMEEmail is the contact address given to the ACME CA.
	ACMEEmail string `toml:"acme_email"`
}

// TailnetConfig configures the addresses handed to nodes.
type TailnetConfig struct {
	// Prefix4 is the IPv4 prefix node addresses come from. Empty means
	// DefaultPrefix4, inside 100.64.0.0/10.
	Prefix4 string `toml:"prefix4"`
	// NodeKeyExpiry is how long a node stays logged in, e.g. "180d" or
	// "720h". Empty or "0" means never.
	NodeKeyExpiry string `toml:"node_key_expiry"`
}

// GatewayConfig configures the subnet-router and exit-node agent.
type GatewayConfig struct {
	Enabled bool `toml:"enabled"`
	// Name is the gateway's node name in the tailnet (MagicDNS); the host
	// name would be "OpenWrt" on every router.
	Name     string   `toml:"name"`
	Routes   []string `toml:"routes"` // empty: detected
	ExitNode bool     `toml:"exit_node"`
	// Firewall picks the netfilter backend: "auto", "iptables",
	// "iptables-nft", "iptables-legacy" or "nftables".
	Firewall string `toml:"firewall"`
	// Masquerade rewrites tailnet sources to the gateway's LAN address, so
	// LAN hosts need no route back to the tailnet.
	Masquerade bool `toml:"masquerade"`
	// ControlURL, when set, is a control server elsewhere (homenet on a
	// VPS, or headscale) that the gateway joins. This host then runs only
	// the gateway agent: no control server, relay or dynamic DNS, and the
	// [server], [relay] and [ddns] sections are ignored.
	ControlURL string `toml:"control_url"`
	// AuthKeyFile holds the pre-auth key the agent registers with at
	// ControlURL. It is read only to register: once registered, the
	// agent's state dir keeps its identity.
	AuthKeyFile string `toml:"auth_key_file"`
}

// DDNSConfig keeps a DNS name pointing at this host: its A record at the
// public IPv4 address, if the host has one, and its AAAA record at its
// stable global IPv6 address. The same provider answers the relay's ACME
// DNS-01 challenges when the relay's hostname is in the zone.
type DDNSConfig struct {
	// Provider is "alidns", "dnspod", "cloudflare" or "rfc2136"; empty
	// turns dynamic DNS off.
	Provider string `toml:"provider"`
	// Name is the DNS name to keep current, such as "home.example.net".
	Name string `toml:"name"`
	// Zone is the zone at the provider that holds Name. Empty means Name
	// without its first label.
	Zone string `toml:"zone"`
	// CredentialsFile holds the provider's KEY=VALUE credentials, readable
	// by its owner only. Empty means the environment.
	CredentialsFile string `toml:"credentials_file"`
	// IPv4 and IPv6 say whether homenet manages the name's A and AAAA
	// records. A managed A record is removed while the host has no public
	// IPv4 address, so clients don't dial a stale one.
	IPv4 bool `toml:"ipv4"`
	IPv6 bool `toml:"ipv6"`
	// TTL is the records' TTL in seconds; 0 means the provider's usual
	// minimum (600 for alidns and dnspod, 60 for the others).
	TTL int `toml:"ttl"`
}

// DefaultGatewayName is the gateway's default node name.
const DefaultGatewayName = "gateway"

// DefaultWebPort is the web admin's port.
const DefaultWebPort = 8088

// FirewallKinds are the values gateway.firewall accepts.
var FirewallKinds = []string{"auto", "iptables", "iptables-nft", "iptables-legacy", "nftables"}

// DefaultPrefix4 lies inside 100.64.0.0/10 but avoids 100.64.0.0/16, where
// carrier CGNAT pools usually start, and 100.100.0.0/16, where cloud hosts
// (Aliyun) and Tailscale's own service addresses live.
var DefaultPrefix4 = netip.MustParsePrefix("100.86.0.0/16")

// DefaultConfig returns the embedded defaults. The server URL is derived from
// the host's outbound address, so it is only a guess; serve prints it.
func DefaultConfig() Config {
	return Config{
		StateDir: "/var/lib/homenet",
		Server: ServerConfig{
			URL:    "http://" + net.JoinHostPort(guessHostIP(), "8080"),
			Listen: ":8080",
		},
		Relay: RelayConfig{
			Enabled:    true,
			Listen:     ":8443",
			STUNListen: ":3478",
		},
		Gateway: GatewayConfig{Name: DefaultGatewayName, ExitNode: true, Firewall: "auto", Masquerade: true},
		DDNS:    DDNSConfig{IPv4: true, IPv6: true},
		UPnP:    UPnPConfig{Enabled: true},
		Web:     WebConfig{Listen: ":" + strconv.Itoa(DefaultWebPort)},
		DNS:     DNSConfig{MagicDNS: true, BaseDomain: control.DefaultBaseDomain},
	}
}

// LoadConfig reads the TOML file at path over the defaults and validates it.
// Errors name the file and the offending key.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if !filepath.IsAbs(c.StateDir) {
		c.StateDir = filepath.Join(filepath.Dir(path), c.StateDir)
	}
	return c, nil
}

// ParseConfig parses TOML over the defaults and validates the result.
func ParseConfig(b []byte) (Config, error) {
	c := DefaultConfig()
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return Config{}, fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return Config{}, typeError(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Config{}, fmt.Errorf("%s: unknown key", und[0])
	}
	return c, c.Validate()
}

// Validate checks every key and returns the first problem, naming the key.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		return errors.New("state_dir: must not be empty")
	}
	if _, err := c.Prefix4(); err != nil {
		return fmt.Errorf("tailnet.prefix4: %w", err)
	}
	if err := c.validateGateway(); err != nil {
		return err
	}
	if err := c.validateDNS(); err != nil {
		return err
	}
	if c.Joins() {
		return nil // [server], [relay] and [ddns] are not used
	}
	if err := validateServerURL(c.Server.URL); err != nil {
		return fmt.Errorf("server.url: %w", err)
	}
	if err := validateListen(c.Server.Listen); err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	if c.Web.Listen != "" {
		if err := validateListen(c.Web.Listen); err != nil {
			return fmt.Errorf("web.listen: %w", err)
		}
	}
	if c.Relay.Enabled {
		if err := validateListen(c.Relay.Listen); err != nil {
			return fmt.Errorf("relay.listen: %w", err)
		}
		if c.Relay.STUNListen != "" {
			if err := validateListen(c.Relay.STUNListen); err != nil {
				return fmt.Errorf("relay.stun_listen: %w", err)
			}
		}
		if u := c.Relay.ACMEDirectory; u != "" {
			if p, err := url.Parse(u); err != nil || p.Scheme != "https" {
				return fmt.Errorf("relay.acme_directory: %q is not an https URL", u)
			}
		}
	}
	if _, err := c.NodeKeyExpiry(); err != nil {
		return fmt.Errorf("tailnet.node_key_expiry: %w", err)
	}
	return c.validateDDNS()
}

// Joins reports whether this host joins a control server elsewhere
// (gateway.control_url) and runs only the gateway agent.
func (c *Config) Joins() bool { return c.Gateway.ControlURL != "" }

// validateGateway checks the [gateway] section.
func (c *Config) validateGateway() error {
	g := &c.Gateway
	if !slices.Contains(FirewallKinds, g.Firewall) {
		return fmt.Errorf("gateway.firewall: %q is not one of %s", g.Firewall, strings.Join(FirewallKinds, ", "))
	}
	if !isDNSLabel(g.Name) {
		return fmt.Errorf("gateway.name: %q is not a host name: use 1 to 63 letters, digits and hyphens, such as %q", g.Name, DefaultGatewayName)
	}
	for _, r := range g.Routes {
		if err := checkGatewayRoute(r); err != nil {
			return fmt.Errorf("gateway.routes: %w", err)
		}
	}
	if !c.Joins() {
		if g.AuthKeyFile != "" {
			return errors.New("gateway.auth_key_file: only used with gateway.control_url (the local control server mints the gateway's key itself)")
		}
		return nil
	}
	if err := validateServerURL(g.ControlURL); err != nil {
		return fmt.Errorf("gateway.control_url: %w", err)
	}
	if !g.Enabled {
		return errors.New("gateway.control_url: set, but gateway.enabled is false: a host that joins another control server runs only the gateway agent")
	}
	if g.AuthKeyFile != "" && !filepath.IsAbs(g.AuthKeyFile) {
		return fmt.Errorf("gateway.auth_key_file: %q is not an absolute path", g.AuthKeyFile)
	}
	return nil
}

// checkGatewayRoute checks one of gateway.routes: a CIDR prefix without
// host bits that a router can forward to, so not a link-local one.
func checkGatewayRoute(s string) error {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a CIDR prefix such as 192.168.1.0/24", s)
	case p != p.Masked():
		return fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	case p.Addr().IsLinkLocalUnicast():
		// 169.254.0.0/16 is what a host gives itself when DHCP fails, and
		// every link has its own fe80::/64: neither leaves its link.
		return fmt.Errorf("%q is link-local, which no router forwards; did you mean the LAN's own prefix, such as 192.168.1.0/24? (Leave gateway.routes empty to detect it.)", s)
	}
	return nil
}

// validateDDNS checks the [ddns] section. The credentials are read at
// start, not here: init writes configs for files that may not exist yet.
func (c *Config) validateDDNS() error {
	d := &c.DDNS
	if d.Provider == "" {
		if d.Name != "" {
			return fmt.Errorf("ddns.provider: must be set when ddns.name is (one of %s)", strings.Join(provider.Names, ", "))
		}
		return nil
	}
	if !slices.Contains(provider.Names, d.Provider) {
		return fmt.Errorf("ddns.provider: %q is not one of %s", d.Provider, strings.Join(provider.Names, ", "))
	}
	if !isDNSName(d.Name) {
		return fmt.Errorf("ddns.name: %q is not a fully qualified DNS name such as home.example.net", d.Name)
	}
	zone := c.DDNSZone()
	if !isDNSName(zone) {
		return fmt.Errorf("ddns.zone: %q is not a DNS zone such as example.net", zone)
	}
	if !inZone(d.Name, zone) {
		return fmt.Errorf("ddns.name: %q is not inside ddns.zone %q", d.Name, zone)
	}
	if !d.IPv4 && !d.IPv6 {
		return errors.New("ddns.ipv4, ddns.ipv6: both are false, so there is nothing to publish")
	}
	if d.TTL < 0 || d.TTL > 86400 {
		return fmt.Errorf("ddns.ttl: %d is not between 0 and 86400 seconds", d.TTL)
	}
	return nil
}

// DDNSZone returns ddns.zone, defaulted to ddns.name without its first
// label, lower case and without a trailing dot.
func (c *Config) DDNSZone() string {
	if c.DDNS.Zone != "" {
		return normName(c.DDNS.Zone)
	}
	_, parent, _ := strings.Cut(normName(c.DDNS.Name), ".")
	return parent
}

// normName lower-cases a DNS name and drops its trailing dot.
func normName(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }

// inZone reports whether name is zone or below it.
func inZone(name, zone string) bool {
	name, zone = normName(name), normName(zone)
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// isDNSName reports whether s is a DNS name of at least two labels, each
// of letters, digits, hyphens and underscores.
// isDNSLabel reports whether l is one label of a host name.
func isDNSLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range strings.ToLower(l) {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func isDNSName(s string) bool {
	s = normName(s)
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	return true
}

// Prefix4 returns the tailnet IPv4 prefix, defaulted.
func (c *Config) Prefix4() (netip.Prefix, error) {
	if c.Tailnet.Prefix4 == "" {
		return DefaultPrefix4, nil
	}
	p, err := netip.ParsePrefix(c.Tailnet.Prefix4)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", c.Tailnet.Prefix4)
	case !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%q is not IPv4", c.Tailnet.Prefix4)
	case p != p.Masked():
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", c.Tailnet.Prefix4, p.Masked())
	case p.Bits() > 28:
		return netip.Prefix{}, fmt.Errorf("%q is too small; use /28 or larger", c.Tailnet.Prefix4)
	case p.Bits() < 8:
		return netip.Prefix{}, fmt.Errorf("%q is too large; use /8 or smaller", c.Tailnet.Prefix4)
	}
	return p, nil
}

// NodeKeyExpiry returns tailnet.node_key_expiry; zero means never.
func (c *Config) NodeKeyExpiry() (time.Duration, error) {
	v := c.Tailnet.NodeKeyExpiry
	if v == "" || v == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a whole number of days", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Minute {
		return 0, fmt.Errorf("%q is not a duration of at least a minute (like \"180d\" or \"720h\")", v)
	}
	return d, nil
}

// RelayHostname is the name or address clients dial for the relay.
func (c *Config) RelayHostname() string {
	if c.Relay.Hostname != "" {
		return c.Relay.Hostname
	}
	u, err := url.Parse(c.Server.URL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// AdminSocket is the path of the admin API's unix socket.
func (c *Config) AdminSocket() string { return filepath.Join(c.StateDir, "admin.sock") }

// AdminPasswordPath is the path of the file with the password that
// approves logins in the browser: server.admin_password_file, defaulted.
func (c *Config) AdminPasswordPath() string {
	if c.Server.AdminPasswordFile != "" {
		return c.Server.AdminPasswordFile
	}
	return filepath.Join(c.StateDir, "admin-password")
}

func validateServerURL(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	// Without "://", url.Parse takes "192.168.1.2:8080" for an error and
	// "gw.example.net:8080" for the scheme "gw.example.net".
	if !strings.Contains(s, "://") {
		return fmt.Errorf("%q has no scheme: add http:// or https://", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%q: must not have a path", s)
	}
	return nil
}

func validateListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && host != "localhost" {
			return fmt.Errorf("%q: host must be an IP address or empty", s)
		}
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// guessHostIP returns the source address the host would use to reach the
// internet. It sends nothing: a UDP "connect" only picks a route.
func guessHostIP() string {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
