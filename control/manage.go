package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"homenet/control/store"

	"tailscale.com/net/tsaddr"
	"tailscale.com/tailcfg"
)

var _ Admin = (*Server)(nil)

// CreateAuthKey makes a pre-auth key and returns it with its secret, which
// is shown once and never stored.
func (s *Server) CreateAuthKey(ctx context.Context, opts AuthKeyOptions) (AuthKeyInfo, string, error) {
	if opts.Expiry < 0 {
		return AuthKeyInfo{}, "", fmt.Errorf("auth key expiry %v is negative: %w", opts.Expiry, ErrInvalid)
	}
	for _, t := range opts.Tags {
		if err := tailcfg.CheckTag(t); err != nil {
			return AuthKeyInfo{}, "", fmt.Errorf("tag %q: %v: %w", t, err, ErrInvalid)
		}
	}
	if opts.Expiry == 0 {
		opts.Expiry = DefaultAuthKeyExpiry
	}
	prefix, secret := newAuthKeySecret()
	now := time.Now()
	k := store.AuthKey{
		Prefix:    prefix,
		Hash:      hashSecret(secret),
		Reusable:  opts.Reusable,
		Ephemeral: opts.Ephemeral,
		Tags:      slices.Clone(opts.Tags),
		Created:   now,
		Expiry:    now.Add(opts.Expiry),
	}
	if err := s.cfg.Store.PutAuthKey(ctx, &k); err != nil {
		return AuthKeyInfo{}, "", fmt.Errorf("saving auth key: %w", err)
	}
	s.log.Info("control: auth key created", "id", k.ID, "prefix", authKeyTag+prefix, "reusable", k.Reusable,
		"ephemeral", k.Ephemeral, "tags", k.Tags, "expiry", k.Expiry)
	return authKeyInfo(k, now), formatAuthKey(prefix, secret), nil
}

func authKeyInfo(k store.AuthKey, now time.Time) AuthKeyInfo {
	return AuthKeyInfo{
		ID: k.ID, Prefix: authKeyTag + k.Prefix, Reusable: k.Reusable, Ephemeral: k.Ephemeral,
		Tags: k.Tags, Created: k.Created, Expiry: k.Expiry, Used: k.Used, Valid: authKeyValid(k, now),
		State: authKeyState(k, now),
	}
}

// authKeyState says why a key is or is not valid.
func authKeyState(k store.AuthKey, now time.Time) string {
	switch {
	case k.Revoked:
		return "revoked"
	case !now.Before(k.Expiry):
		return "expired"
	case !k.Reusable && k.Used > 0:
		return "used"
	}
	return "valid"
}

// AuthKeys lists every pre-auth key.
func (s *Server) AuthKeys(ctx context.Context) ([]AuthKeyInfo, error) {
	keys, err := s.cfg.Store.AuthKeys(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]AuthKeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, authKeyInfo(k, now))
	}
	return out, nil
}

// ExpireAuthKey revokes a pre-auth key now: it expires at once. Nodes it
// registered stay.
func (s *Server) ExpireAuthKey(ctx context.Context, id int64) error {
	keys, err := s.cfg.Store.AuthKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.ID == id {
			k.Revoked = true
			if now := time.Now(); k.Expiry.After(now) {
				k.Expiry = now
			}
			if err := s.cfg.Store.PutAuthKey(ctx, &k); err != nil {
				return err
			}
			s.log.Info("control: auth key expired", "id", id, "prefix", authKeyTag+k.Prefix)
			return nil
		}
	}
	return fmt.Errorf("auth key %d: %w", id, store.ErrNotFound)
}

// DeleteAuthKey deletes a pre-auth key. Nodes it registered stay.
func (s *Server) DeleteAuthKey(ctx context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.DeleteAuthKey(ctx, id); err != nil {
		return fmt.Errorf("auth key %d: %w", id, err)
	}
	// The store forgot the key in its nodes (ON DELETE SET NULL); so do
	// ours, or their next save would name a key that is gone.
	for _, n := range s.nodes {
		if n.AuthKeyID == id {
			n.AuthKeyID = 0
		}
	}
	s.log.Info("control: auth key deleted", "id", id)
	return nil
}

// Nodes lists every node, by ID.
func (s *Server) Nodes(ctx context.Context) ([]NodeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]NodeInfo, 0, len(s.nodes))
	for _, id := range s.sortedIDsLocked() {
		out = append(out, s.nodeInfoLocked(s.nodes[id], now))
	}
	return out, nil
}

func (s *Server) nodeInfoLocked(n *node, now time.Time) NodeInfo {
	ni := NodeInfo{
		ID: n.ID, Name: n.Name, Hostname: hostnameOf(n.Hostinfo), NodeKey: n.NodeKey.String(),
		Addresses: []netip.Addr{n.IPv4, n.IPv6}, Online: n.streams > 0, LastSeen: n.LastSeen,
		Created: n.Created, KeyExpiry: n.KeyExpiry, Expired: n.expired(now), Ephemeral: n.Ephemeral,
		Tags: n.Tags, HomeDERP: n.HomeDERP, AdvertisedRoutes: n.advertised(),
		ApprovedRoutes: s.servedRoutesLocked(n),
	}
	if n.Hostinfo != nil {
		ni.OS = n.Hostinfo.OS
	}
	for _, ep := range n.Endpoints {
		ni.Endpoints = append(ni.Endpoints, ep.String())
	}
	return ni
}

// ApproveRegistration approves a waiting interactive login.
func (s *Server) ApproveRegistration(ctx context.Context, code string) (NodeInfo, error) {
	n, err := s.approve(ctx, code)
	if err != nil {
		return NodeInfo{}, err
	}
	s.log.Info("control: login approved", "code", code, "id", n.ID, "name", n.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeInfoLocked(n, time.Now()), nil
}

// updateNode applies change to a copy of node id's durable state, saves it,
// and only then makes it live.
func (s *Server) updateNode(ctx context.Context, id tailcfg.NodeID, change func(*store.Node) error) (*node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil {
		return nil, fmt.Errorf("node %d: %w", id, store.ErrNotFound)
	}
	sn := n.Node
	if err := change(&sn); err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutNode(ctx, &sn); err != nil {
		return nil, fmt.Errorf("saving node %d: %w", id, err)
	}
	n.Node = sn
	s.touchLocked(n)
	return n, nil
}

// RenameNode changes a node's name. The name must be a free DNS label.
func (s *Server) RenameNode(ctx context.Context, id tailcfg.NodeID, name string) error {
	if dnsLabel(name) != name {
		return fmt.Errorf("name %q is not a valid DNS label (use lowercase letters, digits and hyphens; try %q): %w", name, dnsLabel(name), ErrInvalid)
	}
	_, err := s.updateNode(ctx, id, func(sn *store.Node) error {
		if s.uniqueNameLocked(name, id) != name {
			return fmt.Errorf("name %q is taken by another node: %w", name, ErrInvalid)
		}
		sn.Name = name
		return nil
	})
	if err == nil {
		s.log.Info("control: node renamed", "id", id, "name", name)
	}
	return err
}

// ExpireNode expires a node's key now. The node must log in again.
func (s *Server) ExpireNode(ctx context.Context, id tailcfg.NodeID) error {
	n, err := s.updateNode(ctx, id, func(sn *store.Node) error {
		sn.KeyExpiry = time.Now()
		return nil
	})
	if err == nil {
		s.log.Info("control: node expired", "id", id, "name", n.Name)
		s.revoke(n.NodeKey)
	}
	return err
}

// DeleteNode removes a node. Peers drop it from their netmaps at once and
// the relay disconnects it.
func (s *Server) DeleteNode(ctx context.Context, id tailcfg.NodeID) error {
	s.mu.Lock()
	n := s.nodes[id]
	if n == nil {
		s.mu.Unlock()
		return fmt.Errorf("node %d: %w", id, store.ErrNotFound)
	}
	if err := s.cfg.Store.DeleteNode(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.mu.Unlock()
		return fmt.Errorf("deleting node %d: %w", id, err)
	}
	s.removeNodeLocked(n)
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("control: node deleted", "id", id, "name", n.Name)
	s.revoke(n.NodeKey)
	return nil
}

// Routes lists every advertised route and whether it is served.
func (s *Server) Routes(ctx context.Context) ([]RouteInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RouteInfo
	for _, id := range s.sortedIDsLocked() {
		n := s.nodes[id]
		served := s.servedRoutesLocked(n)
		for _, p := range n.advertised() {
			out = append(out, RouteInfo{
				NodeID: id, NodeName: n.Name, Prefix: p,
				Approved: slices.Contains(served, p), ExitNode: tsaddr.IsExitRoute(p),
			})
		}
	}
	return out, nil
}

// SetRouteApproved approves or unapproves a route of a node. Exit routes
// go together: approving 0.0.0.0/0 approves ::/0 too, and the reverse.
func (s *Server) SetRouteApproved(ctx context.Context, id tailcfg.NodeID, route netip.Prefix, approved bool) error {
	if !route.IsValid() || route != route.Masked() {
		return fmt.Errorf("route %v is not a valid network prefix: %w", route, ErrInvalid)
	}
	routes := []netip.Prefix{route}
	if tsaddr.IsExitRoute(route) {
		routes = []netip.Prefix{tsaddr.AllIPv4(), tsaddr.AllIPv6()}
	}
	_, err := s.updateNode(ctx, id, func(sn *store.Node) error {
		// Approving a route the node does not offer would do nothing
		// until it did; that is a typo more often than a plan.
		var adv []netip.Prefix
		if sn.Hostinfo != nil {
			adv = sn.Hostinfo.RoutableIPs
		}
		if approved && !slices.Contains(adv, route) {
			return fmt.Errorf("node %d does not advertise %v (it advertises %v): %w", id, route, adv, ErrInvalid)
		}
		sn.ApprovedRoutes = slices.Clone(sn.ApprovedRoutes)
		for _, r := range routes {
			i := slices.Index(sn.ApprovedRoutes, r)
			switch {
			case approved && i < 0:
				sn.ApprovedRoutes = append(sn.ApprovedRoutes, r)
			case !approved && i >= 0:
				sn.ApprovedRoutes = slices.Delete(sn.ApprovedRoutes, i, i+1)
			}
		}
		slices.SortFunc(sn.ApprovedRoutes, netip.Prefix.Compare)
		return nil
	})
	if err == nil {
		s.log.Info("control: route approval set", "id", id, "route", route, "approved", approved)
	}
	return err
}

// Status summarises the server.
func (s *Server) Status(ctx context.Context) (Status, error) {
	var extra map[string]any
	if f := s.cfg.StatusExtra; f != nil {
		extra = f() // before locking: the other parts may be slow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Extra:   extra,
		Version: s.cfg.Version, ServerURL: s.cfg.ServerURL, Prefix4: s.cfg.Prefix4, Prefix6: Prefix6,
		Started: s.started, Nodes: len(s.nodes), Pending: len(s.pending),
	}
	for _, n := range s.nodes {
		if n.streams > 0 {
			st.Online++
		}
	}
	for _, r := range s.derpMap.Regions {
		for _, dn := range r.Nodes {
			st.DERPRegions = append(st.DERPRegions, DERPRegion{
				ID: r.RegionID, Code: r.RegionCode, HostName: dn.HostName, DERPPort: dn.DERPPort, STUNPort: dn.STUNPort,
			})
		}
	}
	return st, nil
}
