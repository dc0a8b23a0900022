package control

import (
	"context"
	"net/netip"
	"time"

	"tailscale.com/tailcfg"
)

// Admin is what the admin API (the unix socket behind `homenet keys|nodes|
// routes|status`) can do. *Server implements it; the socket handler and its
// tests depend only on this interface.
type Admin interface {
	CreateAuthKey(ctx context.Context, opts AuthKeyOptions) (AuthKeyInfo, string, error)
	AuthKeys(ctx context.Context) ([]AuthKeyInfo, error)
	ExpireAuthKey(ctx context.Context, id int64) error
	DeleteAuthKey(ctx context.Context, id int64) error

	Nodes(ctx context.Context) ([]NodeInfo, error)
	// ApproveRegistration approves the pending interactive login whose
	// code was shown to the user (the last path element of its AuthURL).
	ApproveRegistration(ctx context.Context, code string) (NodeInfo, error)
	// PendingLogins lists the interactive logins waiting for approval;
	// DenyRegistration refuses one.
	PendingLogins(ctx context.Context) ([]PendingLogin, error)
	DenyRegistration(ctx context.Context, code string) error
	RenameNode(ctx context.Context, id tailcfg.NodeID, name string) error
	ExpireNode(ctx context.Context, id tailcfg.NodeID) error
	DeleteNode(ctx context.Context, id tailcfg.NodeID) error

	Routes(ctx context.Context) ([]RouteInfo, error)
	SetRouteApproved(ctx context.Context, id tailcfg.NodeID, route netip.Prefix, approved bool) error

	Status(ctx context.Context) (Status, error)
}

// AuthKeyOptions are the choices made when creating a pre-auth key.
type AuthKeyOptions struct {
	Reusable  bool          `json:"reusable"`
	Ephemeral bool          `json:"ephemeral"`
	Expiry    time.Duration `json:"expiry"` // zero: DefaultAuthKeyExpiry
	Tags      []string      `json:"tags,omitempty"`
}

// DefaultAuthKeyExpiry is how long a pre-auth key lives when no expiry is given.
const DefaultAuthKeyExpiry = 24 * time.Hour

// AuthKeyInfo describes a pre-auth key without its secret.
type AuthKeyInfo struct {
	ID        int64     `json:"id"`
	Prefix    string    `json:"prefix"` // the public part of the key, to tell keys apart
	Reusable  bool      `json:"reusable"`
	Ephemeral bool      `json:"ephemeral"`
	Tags      []string  `json:"tags,omitempty"`
	Created   time.Time `json:"created"`
	Expiry    time.Time `json:"expiry"`
	Used      int       `json:"used"` // how many nodes registered with it
	Valid     bool      `json:"valid"`
	// State is "valid", "used" (a single-use key that registered its
	// node), "expired" or "revoked" (expired by hand).
	State string `json:"state"`
}

// NodeInfo describes a registered node for the admin API.
type NodeInfo struct {
	ID               tailcfg.NodeID `json:"id"`
	Name             string         `json:"name"`
	Hostname         string         `json:"hostname"`
	OS               string         `json:"os,omitempty"`
	NodeKey          string         `json:"node_key"`
	Addresses        []netip.Addr   `json:"addresses"`
	Online           bool           `json:"online"`
	LastSeen         time.Time      `json:"last_seen,omitzero"`
	Created          time.Time      `json:"created"`
	KeyExpiry        time.Time      `json:"key_expiry,omitzero"` // zero: never
	Expired          bool           `json:"expired"`
	Ephemeral        bool           `json:"ephemeral"`
	Tags             []string       `json:"tags,omitempty"`
	Endpoints        []string       `json:"endpoints,omitempty"`
	HomeDERP         int            `json:"home_derp,omitempty"`
	AdvertisedRoutes []netip.Prefix `json:"advertised_routes,omitempty"`
	ApprovedRoutes   []netip.Prefix `json:"approved_routes,omitempty"`
}

// RouteInfo is one route a node advertises, with its approval.
type RouteInfo struct {
	NodeID   tailcfg.NodeID `json:"node_id"`
	NodeName string         `json:"node_name"`
	Prefix   netip.Prefix   `json:"prefix"`
	Approved bool           `json:"approved"`
	ExitNode bool           `json:"exit_node"` // 0.0.0.0/0 or ::/0
}

// Status summarises the running server.
type Status struct {
	Version     string         `json:"version"`
	ServerURL   string         `json:"server_url"`
	Prefix4     netip.Prefix   `json:"prefix4"`
	Prefix6     netip.Prefix   `json:"prefix6"`
	Started     time.Time      `json:"started"`
	Nodes       int            `json:"nodes"`
	Online      int            `json:"online"`
	Pending     int            `json:"pending_registrations"`
	DERPRegions []DERPRegion   `json:"derp_regions,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"` // filled by the appliance (relay, gateway)
	// Joined is set by a host that runs no control server of its own: its
	// gateway agent joins ServerURL, and the node counts are not known.
	Joined bool `json:"joined,omitempty"`
}

// DERPRegion summarises one region of the DERP map sent to clients.
type DERPRegion struct {
	ID       int    `json:"id"`
	Code     string `json:"code"`
	HostName string `json:"host_name"`
	DERPPort int    `json:"derp_port"`
	STUNPort int    `json:"stun_port"`
}
