package store

import (
	"net/netip"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// Node is a registered node as persisted. Volatile per-session data
// (endpoints, DERP home, disco key, online state) is deliberately absent: it
// lives in memory and is resent by clients after every reconnect.
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
