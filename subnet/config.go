package subnet

import (
	"context"
	"log/slog"
	"net/netip"

	"tailscale.com/types/key"
)

// Config configures the gateway agent.
type Config struct {
	// ControlURL is the coordination server, normally the in-process one
	// (http://127.0.0.1:8080).
	ControlURL string
	// AuthKey mints a one-off pre-auth key tagged as the gateway. It is
	// called only when the agent must register: on first start, or when
	// control no longer knows the node.
	AuthKey func(ctx context.Context) (string, error)
	// StateDir holds the agent's state (tailscaled.state: machine and node
	// keys) and the sysctl restore file. Keep it across restarts: it is
	// the node's identity.
	StateDir string
	// Hostname is the node's name; empty means the host name.
	Hostname string
	// Routes are the LAN prefixes to advertise.
	Routes []netip.Prefix
	// Tags are the ACL tags the node asks for (tailscale up
	// --advertise-tags). homenet's own keys tag the gateway already;
	// headscale 0.28 and later refuse a key registration that asks for
	// tags, so a joined agent asks for none.
	Tags []string
	// ExitNode also advertises 0.0.0.0/0 and ::/0.
	ExitNode bool
	// TailnetPrefixes are the tailnet's ranges (tailnet.prefix4 and
	// fd7a:115c:a1e0::/48), for anti-spoofing and masquerading.
	TailnetPrefixes []netip.Prefix
	// Firewall is the netfilter backend, as firewall.New takes it; ""
	// means "auto".
	Firewall string
	// MasqueradeLAN rewrites tailnet sources to the gateway's address on
	// the LAN. Exit traffic through the WAN is masqueraded regardless.
	MasqueradeLAN bool
	// WANInterface is the default-route interface; empty means detected
	// now.
	WANInterface string
	// ListenPort is the WireGuard/disco UDP port; 0 means 41641.
	ListenPort uint16
	// Tun is the kernel TUN's name; empty means "tailscale0". Tailscale's
	// code recognises its own interface by the "tailscale" prefix, so keep
	// it.
	Tun string
	// NodeKnown, if set, reports whether control knows a node by this key
	// and it has not expired (control.Server.Admit). The agent asks every
	// CheckInterval: a client whose node was deleted only gets errors from
	// control and never learns it must log in again, so the agent
	// registers anew when the answer is no twice in a row.
	NodeKnown func(key.NodePublic) bool
	// Logger gets our messages at Info and the engine's at Debug.
	Logger *slog.Logger
}

// DefaultListenPort is tailscaled's default WireGuard port.
const DefaultListenPort = 41641

// DefaultTun is the name of the kernel TUN.
const DefaultTun = "tailscale0"

// StateFile is the agent's tailscaled-style state file in Config.StateDir.
const StateFile = "tailscaled.state"

// Status is what `homenet status` shows about the agent.
type Status struct {
	State string `json:"state"` // NeedsLogin, Starting, Running, …
	// ControlURL is the control server the agent logs in to.
	ControlURL string `json:"control_url"`
	// Connected says whether the agent holds a map poll open to control.
	Connected  bool           `json:"connected"`
	Tun        string         `json:"tun"`
	Addresses  []netip.Prefix `json:"addresses,omitempty"`
	Advertised []netip.Prefix `json:"advertised_routes"`
	// Approved are the advertised routes control has approved, as the
	// netmap's AllowedIPs of this node show them.
	Approved  []netip.Prefix `json:"approved_routes"`
	ExitNode  bool           `json:"exit_node"`
	Firewall  string         `json:"firewall"`
	WAN       string         `json:"wan,omitempty"`
	Sysctls   []string       `json:"sysctls_set,omitempty"`
	Table     int            `json:"route_table"`
	RulePrefs []int          `json:"rule_prefs"`
	Repairs   int            `json:"repairs"` // times the watchdog put rules back
	LastError string         `json:"last_error,omitempty"`
	LocalAPI  string         `json:"localapi_socket,omitempty"` // for tailscale --socket=…
}
