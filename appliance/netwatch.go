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
	// held: dynamic DNS waits for the router's answer, so that a start
	// does not remove the A record only to add it back a second later.
	held bool
}

// routerWait bounds how long dynamic DNS waits for the home router to say
// its public address.
const routerWait = 15 * time.Second

// How quickly an address change reaches DNS: netlink events are gathered
// for addrSettle (a renumbering is a delete and an add), and the addresses
// are read again every addrBackstop in case an event was lost.
const (
	addrSettle   = 500 * time.Millisecond
	addrBackstop = 5 * time.Minute
)

// startNetWatch detects reachability now, logs it, and follows changes
// until ctx is done. behindRouter says whether the home router will be asked for port
// mappings, and so for its public address, given the first Reachability.
func startNetWatch(ctx context.Context, u *ddns.Updater, behindRouter func(Reachability) bool, logger *slog.Logger) *netWatch {
	w := &netWatch{logger: logger, ddns: u}
	w.check(true, behindRouter)
	if w.held {
		time.AfterFunc(routerWait, w.release)
	}
	if u != nil {
		go u.Run(ctx)
	}
	go watchAddrs(ctx, addrSettle, addrBackstop, func() { w.check(false, nil) }, logger)
	return w
}

// Reachability returns the current Reachability.
func (w *netWatch) Reachability() Reachability {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// check reads the addresses again and passes on what changed. The first
// time, behindRouter may hold dynamic DNS back until the router answers.
func (w *netWatch) check(first bool, behindRouter func(Reachability) bool) {
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
	held := first && behindRouter != nil && behindRouter(r)
	w.mu.Lock()
	w.cur = r
	w.held = w.held || held
	held = w.held
	onChange := w.onChange
	w.mu.Unlock()
	level, msg := slog.LevelInfo, "reachability: addresses changed"
	switch {
	case held && first:
		msg = "reachability: asking the home router for port mappings and its public address"
	case first:
		msg = "reachability"
		if r.Case == ReachNone {
			level = slog.LevelWarn
		}
	}
	w.logger.Log(context.Background(), level, msg, "case", r.Case, "public_ipv4", r.IPv4, "global_ipv6", r.IPv6, "advice", r.Advice)
	if w.ddns != nil && !held {
		w.ddns.Set(ddns.Addrs{IPv4: r.IPv4, IPv6: r.IPv6})
	}
	if onChange != nil && !first {
		onChange(r)
	}
}

// release lets dynamic DNS publish what check held back.
func (w *netWatch) release() {
	w.mu.Lock()
	held, r := w.held, w.cur
	w.held = false
	w.mu.Unlock()
	if held && w.ddns != nil {
		w.ddns.Set(ddns.Addrs{IPv4: r.IPv4, IPv6: r.IPv6})
	}
}

// setRouterIPv4 records the home router's external address, as its port
// mappings report it, and passes on what changes.
func (w *netWatch) setRouterIPv4(ip netip.Addr) {
	w.mu.Lock()
	w.routerIPv4 = ip
	w.mu.Unlock()
	w.check(false, nil)
	w.release()
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
