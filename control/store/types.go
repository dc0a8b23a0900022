package store

import (
	"net/netip"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Node is a registered node as persisted. Online state is absent: it lives
// in memory. The disco key, home DERP and endpoints are kept so that the
// first netmaps after a server restart match what clients already know;
// they are written when they change, which is rare (a client restart, a
// network move), never on every map request.
type Node struct {
	ID         tailcfg.NodeID // assigned by PutNode when zero
	MachineKey key.MachinePublic
	NodeKey    key.NodePublic
	// Name is the unique, DNS-safe name shown to users.
	Name           string
	IPv4           netip.Addr
	IPv6           netip.Addr
	Hostinfo       *tailcfg.Hostinfo // may be nil; stored as JSON
	Created        time.Time
	KeyExpiry      time.Time // zero: never expires
	LastSeen       time.Time // written rarely (on disconnect), not per request
	Ephemeral      bool
	Tags           []string
	ApprovedRoutes []netip.Prefix
	AuthKeyID      int64 // zero: registered interactively
	DiscoKey       key.DiscoPublic
	HomeDERP       int
	Endpoints      []netip.AddrPort
}

// AuthKey is a pre-auth key. Only a hash of its secret is stored.
type AuthKey struct {
	ID        int64  // assigned by PutAuthKey when zero
	Prefix    string // public part, unique
	Hash      []byte // SHA-256 of the secret part
	Reusable  bool
	Ephemeral bool
	Tags      []string
	Created   time.Time
	Expiry    time.Time
	Used      int  // nodes registered with it
	Revoked   bool // expired by hand
}
