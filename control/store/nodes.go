package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// nodeColumns are the nodes columns other than id, in encodeNode's order.
const nodeColumns = `machine_key, node_key, name, ipv4, ipv6, hostinfo,
	created, key_expiry, last_seen, ephemeral, tags, approved_routes, auth_key_id,
	disco_key, home_derp, endpoints`

// Nodes returns all nodes, ordered by ID.
func (db *DB) Nodes(ctx context.Context) ([]Node, error) {
	nodes, err := list(ctx, db.sql, "SELECT id, "+nodeColumns+" FROM nodes ORDER BY id", scanNode)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes, nil
}

// PutNode inserts n if n.ID is zero, setting n.ID, and otherwise updates the
// node with that ID. An error wraps ErrConflict if another node holds n's
// machine key, node key, name (ignoring ASCII case) or an address, and
// ErrNotFound if there is no node n.ID to update.
func (db *DB) PutNode(ctx context.Context, n *Node) error {
	var id tailcfg.NodeID
	err := db.inTx(ctx, func(tx *sql.Tx) (err error) {
		id, err = putNode(ctx, tx, n)
		return err
	})
	if err != nil {
		return fmt.Errorf("put node %q: %w", n.Name, err)
	}
	n.ID = id
	return nil
}

// RegisterWithAuthKey counts a use of auth key keyID and puts n (as PutNode
// does, with n.AuthKeyID set to keyID) in one transaction: either both are
// stored or neither is. It enforces what could otherwise race: an error wraps
// ErrNotFound if the key does not exist, and ErrKeyUnusable if it is revoked
// or single-use and already used. Expiry and tags are the caller's policy.
func (db *DB) RegisterWithAuthKey(ctx context.Context, n *Node, keyID int64) error {
	m := *n
	m.AuthKeyID = keyID
	err := db.inTx(ctx, func(tx *sql.Tx) (err error) {
		if err := useAuthKey(ctx, tx, keyID); err != nil {
			return err
		}
		m.ID, err = putNode(ctx, tx, &m)
		return err
	})
	if err != nil {
		return fmt.Errorf("register node %q with auth key %d: %w", n.Name, keyID, err)
	}
	n.ID, n.AuthKeyID = m.ID, keyID
	return nil
}

// DeleteNode deletes the node with the given ID; the error wraps ErrNotFound
// if there is none.
func (db *DB) DeleteNode(ctx context.Context, id tailcfg.NodeID) error {
	res, err := db.sql.ExecContext(ctx, "DELETE FROM nodes WHERE id = ?", id)
	if err == nil {
		err = wantOneRow(res)
	}
	if err != nil {
		return fmt.Errorf("delete node %d: %w", id, err)
	}
	return nil
}

// putNode inserts or updates n in tx and returns its ID.
func putNode(ctx context.Context, tx *sql.Tx, n *Node) (tailcfg.NodeID, error) {
	args, err := encodeNode(n)
	if err != nil {
		return 0, err
	}
	err = checkUnique(ctx, tx, "nodes", "node", int64(n.ID), []unique{
		{"machine key", "machine_key", args[0]},
		{"node key", "node_key", args[1]},
		{"name", "name", args[2]},
		{"IPv4 address", "ipv4", args[3]},
		{"IPv6 address", "ipv6", args[4]},
	})
	if err != nil {
		return 0, err
	}
	id, err := put(ctx, tx, "nodes", nodeColumns, int64(n.ID), args)
	return tailcfg.NodeID(id), err
}

// encodeNode validates n and returns its column values in nodeColumns order.
func encodeNode(n *Node) ([]any, error) {
	switch {
	case n.MachineKey.IsZero():
		return nil, errors.New("machine key is zero")
	case n.NodeKey.IsZero():
		return nil, errors.New("node key is zero")
	case n.Name == "":
		return nil, errors.New("name is empty")
	case n.IPv4.IsValid() && !n.IPv4.Is4():
		return nil, fmt.Errorf("IPv4 address %v is not IPv4", n.IPv4)
	case n.IPv6.IsValid() && (!n.IPv6.Is6() || n.IPv6.Is4In6()):
		return nil, fmt.Errorf("IPv6 address %v is not IPv6", n.IPv6)
	}
	var authKeyID any // NULL: registered interactively
	if n.AuthKeyID != 0 {
		authKeyID = n.AuthKeyID
	}
	var e encoder
	args := []any{
		n.MachineKey.String(), n.NodeKey.String(), n.Name,
		addrText(n.IPv4), addrText(n.IPv6), e.json(n.Hostinfo),
		e.time(n.Created), e.time(n.KeyExpiry), e.time(n.LastSeen),
		n.Ephemeral, e.json(n.Tags), e.json(n.ApprovedRoutes), authKeyID,
		discoText(n.DiscoKey), n.HomeDERP, e.json(n.Endpoints),
	}
	return args, e.err
}

func discoText(k key.DiscoPublic) string {
	if k.IsZero() {
		return ""
	}
	return k.String()
}

// scanNode reads a row of id and nodeColumns.
func scanNode(row scanner) (Node, error) {
	var (
		n                             Node
		machineKey, nodeKey, hostinfo string
		created, keyExpiry, lastSeen  string
		tags, routes                  string
		disco, endpoints              string
		ipv4, ipv6                    sql.NullString
		authKeyID                     sql.NullInt64
	)
	err := row.Scan(&n.ID, &machineKey, &nodeKey, &n.Name, &ipv4, &ipv6, &hostinfo,
		&created, &keyExpiry, &lastSeen, &n.Ephemeral, &tags, &routes, &authKeyID,
		&disco, &n.HomeDERP, &endpoints)
	if err != nil {
		return n, err
	}
	var d decoder
	d.text(machineKey, &n.MachineKey)
	d.text(nodeKey, &n.NodeKey)
	n.IPv4, n.IPv6 = d.addr(ipv4), d.addr(ipv6)
	d.json(hostinfo, &n.Hostinfo)
	n.Created, n.KeyExpiry, n.LastSeen = d.time(created), d.time(keyExpiry), d.time(lastSeen)
	d.json(tags, &n.Tags)
	d.json(routes, &n.ApprovedRoutes)
	n.AuthKeyID = authKeyID.Int64
	if disco != "" {
		d.text(disco, &n.DiscoKey)
	}
	d.json(endpoints, &n.Endpoints)
	if d.err != nil {
		return n, fmt.Errorf("decode node %d: %w", n.ID, d.err)
	}
	return n, nil
}
