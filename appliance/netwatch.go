package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"homenet/ddns"
)

// netWatch follows this host's addresses while homenet serves: it keeps
// the Reachability current, hands the addresses to dynamic DNS and tells
// onChange (which rebuilds the DERP map) whenever they change.
type netWatch struct {
	logger   *slog.Logger
	ddns     *ddns.Updater // nil without [ddns]
	onChange func(Reachability)

	mu  sync.Mutex
	cur Reachability
	// routerIPv4 is the home router's public address, learned from its
	// port mappings (startPortmap): phones reach this host there.
	routerIPv4 netip.Addr
}

// How quickly an address change reaches DNS: netlink events are gathered
// for addrSettle (a renumbering is a delete and an add), and the addresses
// are read again every addrBackstop in case an event was lost.
const (
	addrSettle   = 500 * time.Millisecond
	addrBackstop = 5 * time.Minute
)

// startNetWatch detects reachability now, logs it, and follows changes
// until ctx is done.
func startNetWatch(ctx context.Context, u *ddns.Updater, logger *slog.Logger) *netWatch {
	w := &netWatch{logger: logger, ddns: u}
	w.check(true)
	if u != nil {
		go u.Run(ctx)
	}
	go watchAddrs(ctx, addrSettle, addrBackstop, func() { w.check(false) }, logger)
	return w
}

// Reachability returns the current Reachability.
func (w *netWatch) Reachability() Reachability {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// check reads the addresses again and passes on what changed.
func (w *netWatch) check(first bool) {
	w.mu.Lock()
	prev := w.cur
	w.mu.Unlock()
	r, err := DetectReachability(prev.IPv6)
	if err != nil {
		w.logger.Warn("reachability: reading addresses", "err", err)
		return
	}
	w.mu.Lock()
	r = viaRouter(r, w.routerIPv4)
	w.mu.Unlock()
	if !first && r.IPv4 == prev.IPv4 && r.IPv6 == prev.IPv6 && r.Case == prev.Case {
		return
	}
	w.mu.Lock()
	w.cur = r
	onChange := w.onChange
	w.mu.Unlock()
	level, msg := slog.LevelInfo, "reachability: addresses changed"
	if first {
		msg = "reachability"
		if r.Case == ReachNone {
			level = slog.LevelWarn
		}
	}
	w.logger.Log(context.Background(), level, msg, "case", r.Case, "public_ipv4", r.IPv4, "global_ipv6", r.IPv6, "advice", r.Advice)
	if w.ddns != nil {
		w.ddns.Set(ddns.Addrs{IPv4: r.IPv4, IPv6: r.IPv6})
	}
	if onChange != nil && !first {
		onChange(r)
	}
}

// setRouterIPv4 records the home router's external address, as its port
// mappings report it, and passes on what changes.
func (w *netWatch) setRouterIPv4(ip netip.Addr) {
	w.mu.Lock()
	w.routerIPv4 = ip
	w.mu.Unlock()
	w.check(false)
}

// viaRouter is r for a host whose home router forwards its ports from
// the public address ip: reachable over IPv4 there.
func viaRouter(r Reachability, ip netip.Addr) Reachability {
	if r.IPv4.IsValid() || addrClass(ip) != addrPublic {
		return r
	}
	r.Case, r.IPv4 = ReachPublicIPv4, ip
	r.Advice = fmt.Sprintf("The home router forwards homenet's ports from its public address %s (UPnP, PCP or NAT-PMP): phones reach this host there.", ip)
	return r
}

// setOnChange sets the function told of later changes.
func (w *netWatch) setOnChange(f func(Reachability)) {
	w.mu.Lock()
	w.onChange = f
	w.mu.Unlock()
}
