package appliance

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"

	"homenet/portmap"
	"homenet/subnet"
)

// startPortmap asks the home router to forward the ports phones need
// (exposedPorts) when this host sits behind one: a NAS or Pi whose WAN
// address is a private one. It returns nil when upnp.enabled is off, or
// when there is no such router to ask: the host has a public address of
// its own, or its upstream is carrier NAT, whose router is the ISP's.
// onExternal, if set, learns the router's external IPv4 address.
func startPortmap(ctx context.Context, cfg Config, r Reachability, onExternal func(netip.Addr), logger *slog.Logger) *portmap.Mapper {
	ports := portmapPorts(cfg, r)
	if len(ports) == 0 {
		logger.Debug("upnp: no port mappings", "enabled", cfg.UPnP.Enabled, "public_ipv4", r.IPv4, "wan_ipv4", r.WANIPv4)
		return nil
	}
	m, err := portmap.Start(ctx, portmap.Config{Ports: ports, OnExternalIP: onExternal, Logger: logger})
	if err != nil {
		logger.Warn("upnp: no port mappings", "err", err)
		return nil
	}
	logger.Info("upnp: asking the home router to forward ports", "wan_ipv4", r.WANIPv4, "ports", len(ports))
	return m
}

// forwarded hands the gateway agent the endpoint the home router forwards
// to its WireGuard port, once both the mapping and the agent exist.
type forwarded struct {
	pm atomic.Pointer[portmap.Mapper]
	gw atomic.Pointer[subnet.Agent]
}

// update tells the agent the forwarded endpoint, if there is one yet.
func (f *forwarded) update() {
	pm, gw := f.pm.Load(), f.gw.Load()
	if pm == nil || gw == nil {
		return
	}
	st := pm.Status()
	for _, m := range st.Mappings {
		if m.Proto == "udp" && m.Internal == wireGuardPort && m.External != 0 && st.ExternalIPv4.IsValid() {
			gw.SetStaticEndpoints([]netip.AddrPort{netip.AddrPortFrom(st.ExternalIPv4, m.External)})
		}
	}
}

// portmapPorts are the ports to ask the home router for: none unless
// upnp.enabled and this host's WAN address is a private one.
func portmapPorts(cfg Config, r Reachability) []portmap.Port {
	if !cfg.UPnP.Enabled || r.IPv4.IsValid() || addrClass(r.WANIPv4) != addrPrivate {
		return nil
	}
	var ports []portmap.Port
	for _, p := range exposedPorts(&cfg) {
		n, err := strconv.ParseUint(p.port, 10, 16)
		if err != nil {
			continue // a named port; validateListen accepts them
		}
		ports = append(ports, portmap.Port{Proto: p.proto, Internal: uint16(n), Description: "homenet " + p.role})
	}
	return ports
}
