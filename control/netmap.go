package control

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"tailscale.com/net/tsaddr"
	"tailscale.com/tailcfg"
	"tailscale.com/types/opt"
	"tailscale.com/types/views"
)

// selfAttrs are the node attributes every node gets about itself.
var selfAttrs = tailcfg.NodeCapMap{
	// Linux clients otherwise drop packets from 100.64.0.0/10 that don't
	// come through the tunnel, breaking cloud DNS such as Aliyun's
	// 100.100.2.136 and ISP CGNAT WANs.
	tailcfg.NodeAttrDisableLinuxCGNATDropRule: nil,
	// Lets phone and desktop GUIs list suggested exit nodes.
	tailcfg.NodeAttrSuggestExitNodeUI: nil,
}

// untaggedAttrs are the node attributes of a person's devices, not of
// tagged ones such as the gateway: Taildrop between them. Clients send
// files to peers of their own user, and take files only from untagged
// ones of it.
var untaggedAttrs = tailcfg.NodeCapMap{
	tailcfg.CapabilityFileSharing: nil,
}

// advertised returns the routes n asks to serve.
func (n *node) advertised() []netip.Prefix {
	if n.Hostinfo == nil {
		return nil
	}
	return n.Hostinfo.RoutableIPs
}

func (s *Server) autoApproved(n *node) bool {
	for _, t := range n.Tags {
		if slices.Contains(s.cfg.AutoApproveTags, t) {
			return true
		}
	}
	return false
}

// servedRoutesLocked returns the routes n advertises that are approved.
func (s *Server) servedRoutesLocked(n *node) []netip.Prefix {
	auto := s.autoApproved(n)
	var out []netip.Prefix
	for _, p := range n.advertised() {
		if auto || slices.Contains(n.ApprovedRoutes, p) {
			out = append(out, p)
		}
	}
	return out
}

// tailNodeLocked renders n as clients see it: as a peer, or with self set,
// as itself.
func (s *Server) tailNodeLocked(n *node, now time.Time, self bool) *tailcfg.Node {
	addrs := []netip.Prefix{netip.PrefixFrom(n.IPv4, 32), netip.PrefixFrom(n.IPv6, 128)}
	routes := s.servedRoutesLocked(n)
	tn := &tailcfg.Node{
		ID:                n.ID,
		StableID:          tailcfg.StableNodeID(fmt.Sprintf("hn%d", n.ID)),
		Name:              n.Name + "." + s.domain + ".",
		User:              userOf(n).ID,
		Key:               n.NodeKey,
		KeyExpiry:         n.KeyExpiry,
		Expired:           n.expired(now),
		Machine:           n.MachineKey,
		DiscoKey:          n.DiscoKey,
		Addresses:         addrs,
		AllowedIPs:        append(slices.Clone(addrs), routes...),
		Endpoints:         slices.Clone(n.Endpoints),
		HomeDERP:          n.HomeDERP,
		Created:           n.Created,
		Cap:               n.capVer,
		Tags:              slices.Clone(n.Tags),
		MachineAuthorized: true,
	}
	if n.Hostinfo != nil {
		tn.Hostinfo = n.Hostinfo.View()
	}
	for _, r := range routes {
		if !tsaddr.IsExitRoute(r) {
			tn.PrimaryRoutes = append(tn.PrimaryRoutes, r)
		}
	}
	online := n.streams > 0
	tn.Online = &online
	if !online && !n.LastSeen.IsZero() {
		ls := n.LastSeen
		tn.LastSeen = &ls
	}
	tn.CapMap = tailcfg.NodeCapMap{}
	if self {
		maps.Copy(tn.CapMap, selfAttrs)
		if len(n.Tags) == 0 {
			maps.Copy(tn.CapMap, untaggedAttrs)
		}
	}
	if tsaddr.ContainsExitRoutes(views.SliceOf(tn.AllowedIPs)) {
		tn.CapMap[tailcfg.NodeAttrSuggestExitNode] = nil
	}
	return tn
}

// fullMapLocked is the first message of every map stream: the whole
// network as viewer sees it. The peers are the shared JSON of each
// (peerJSONLocked); encode it with encodeFullMap.
func (s *Server) fullMapLocked(viewer *node, now time.Time, local bool) *fullMap {
	res := &tailcfg.MapResponse{
		Node:            s.tailNodeLocked(viewer, now, true),
		DERPMap:         s.derpMapLocked(local),
		PacketFilter:    tailcfg.FilterAllowAll,
		UserProfiles:    []tailcfg.UserProfile{homeProfile, taggedProfile},
		Domain:          s.domain,
		DNSConfig:       s.dns,
		CollectServices: opt.False,
		ControlTime:     &now,
		Debug:           &tailcfg.Debug{DisableLogTail: true},
	}
	fm := &fullMap{head: res, peers: make([][]byte, 0, len(s.ids))}
	for _, id := range s.sortedIDsLocked() {
		if id == viewer.ID {
			continue
		}
		j, err := s.peerJSONLocked(s.nodes[id], now)
		if err != nil {
			// A tailcfg.Node always encodes; if one didn't, the
			// others are still worth having.
			s.log.Error("control: full map", "err", err)
			continue
		}
		fm.peers = append(fm.peers, j)
	}
	return fm
}

// sortedIDsLocked returns the node IDs in order. The slice is the server's
// own: don't change it.
func (s *Server) sortedIDsLocked() []tailcfg.NodeID { return s.ids }
