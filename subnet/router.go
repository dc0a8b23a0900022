//go:build linux

package subnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
	"tailscale.com/net/netmon"
	"tailscale.com/types/logger"
	"tailscale.com/util/eventbus"
	"tailscale.com/wgengine/router"

	"homenet/firewall"
)

// Router is our tailscale.com/wgengine/router.Router for a kernel TUN: it
// puts the node's addresses on the tun, the engine's routes into our own
// table behind our own policy rules (see Table, RulePrefs), and the
// netfilter rules in place through package firewall. A watchdog puts back
// whatever someone else removes (a firewall reload flushing our chains,
// systemd-networkd deleting rules).
//
// Set is idempotent; Close removes everything the router added, and only
// that.
type Router struct {
	tun      string
	fw       firewall.Firewall // nil: no netfilter
	fwBase   firewall.Rules    // everything but WireGuardPort
	logf     logger.Logf
	every    time.Duration
	ec       *eventbus.Client // nil without a bus
	checkNow chan struct{}
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	up      bool
	closed  bool
	v6      bool
	cfg     *router.Config // last Set; nil before
	addrs   map[netip.Prefix]bool
	routes  map[netip.Prefix]bool
	throws  map[netip.Prefix]bool
	port    uint16 // magicsock's UDP port, from router.PortUpdate
	fwRules firewall.Rules
	fwOK    bool // the last Apply succeeded
	repairs int
}

// RouterConfig configures NewRouter.
type RouterConfig struct {
	// Tun is the name of the kernel TUN, normally "tailscale0".
	Tun string
	// Firewall installs the netfilter rules; nil installs none.
	Firewall firewall.Firewall
	// Rules are what Firewall installs. Tun and WireGuardPort are filled
	// in by the router (the port follows magicsock's router.PortUpdate).
	Rules firewall.Rules
	// Bus, when set, delivers router.PortUpdate and netmon.RuleDeleted.
	Bus *eventbus.Bus
	// CheckInterval is how often the watchdog checks that rules, routes
	// and netfilter are still in place. Zero means 3 s.
	CheckInterval time.Duration
	Logf          logger.Logf
}

// NewRouter returns a router for cfg.Tun. It changes nothing until Up.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Tun == "" {
		return nil, errors.New("subnet: router needs a tun name")
	}
	r := &Router{
		tun:      cfg.Tun,
		fw:       cfg.Firewall,
		fwBase:   cfg.Rules,
		logf:     cfg.Logf,
		every:    cfg.CheckInterval,
		checkNow: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		addrs:    map[netip.Prefix]bool{},
		routes:   map[netip.Prefix]bool{},
		throws:   map[netip.Prefix]bool{},
	}
	r.fwBase.Tun = cfg.Tun
	if r.logf == nil {
		r.logf = logger.Discard
	}
	if r.every == 0 {
		r.every = 3 * time.Second
	}
	if cfg.Bus != nil {
		r.ec = cfg.Bus.Client("homenet-router")
		eventbus.SubscribeFunc(r.ec, func(pu router.PortUpdate) {
			r.setPort(pu)
		})
		eventbus.SubscribeFunc(r.ec, func(rd netmon.RuleDeleted) {
			if slices.Contains(RulePrefs, int(rd.Priority)) {
				r.poke()
			}
		})
	}
	return r, nil
}

// Up brings the tun up and installs the policy rules and the netfilter
// rules, first removing any a dead run left behind.
func (r *Router) Up() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("subnet: router is closed")
	}
	if r.up {
		return nil
	}
	link, err := netlink.LinkByName(r.tun)
	if err != nil {
		return fmt.Errorf("finding %s: %w", r.tun, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", r.tun, err)
	}
	r.v6 = ipv6Usable(r.tun)
	for _, fam := range r.families() {
		// Leftovers of a dead run; Cleanup normally got them already.
		if err := errors.Join(delRules(fam), flushTable(fam)); err != nil {
			r.logf("router: removing stale rules and routes: %v", err)
		}
	}
	var errs []error
	if err := addRules(unix.AF_INET); err != nil {
		return err
	}
	if r.v6 {
		if err := addRules(unix.AF_INET6); err != nil {
			// A kernel without IPV6_MULTIPLE_TABLES: serve IPv4 only.
			r.logf("router: IPv6 policy routing unavailable, routing IPv4 only: %v", err)
			delRules(unix.AF_INET6)
			r.v6 = false
		}
	}
	if err := r.applyFirewallLocked(); err != nil {
		errs = append(errs, err)
	}
	r.up = true
	go r.watchdog()
	r.logf("router: %s up; policy rules %v → table %d (IPv6 %v); netfilter %s", r.tun, RulePrefs, Table, r.v6, r.fwName())
	return errors.Join(errs...)
}

// Set programs addresses, routes and throw routes to match cfg. With the
// same cfg again it does nothing. A nil cfg removes them all.
func (r *Router) Set(cfg *router.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("subnet: router is closed")
	}
	if cfg == nil {
		cfg = &router.Config{}
	}
	if r.cfg != nil && r.cfg.Equal(cfg) {
		return nil
	}
	link, err := netlink.LinkByName(r.tun)
	if err != nil {
		return fmt.Errorf("finding %s: %w", r.tun, err)
	}
	var errs []error
	// Addresses first: routes through the tun need it configured.
	errs = append(errs, r.sync("address", r.addrs, r.want(cfg.LocalAddrs),
		func(p netip.Prefix) error { return netlink.AddrReplace(link, nlAddr(p)) },
		func(p netip.Prefix) error { return ignore(netlink.AddrDel(link, nlAddr(p)), unix.EADDRNOTAVAIL) }))
	errs = append(errs, r.sync("route", r.routes, r.want(cfg.Routes),
		func(p netip.Prefix) error { return netlink.RouteReplace(tunRoute(link, p)) },
		func(p netip.Prefix) error { return ignore(netlink.RouteDel(tunRoute(link, p)), unix.ESRCH) }))
	errs = append(errs, r.sync("throw route", r.throws, r.want(cfg.LocalRoutes),
		func(p netip.Prefix) error { return netlink.RouteReplace(throwRoute(p)) },
		func(p netip.Prefix) error { return ignore(netlink.RouteDel(throwRoute(p)), unix.ESRCH) }))
	err = errors.Join(errs...)
	if err == nil {
		r.cfg = cfg.Clone()
	} else {
		r.cfg = nil // try everything again next time
	}
	r.logf("router: set %d addresses, %d routes, %d throw routes in table %d", len(r.addrs), len(r.routes), len(r.throws), Table)
	return err
}

// Close removes everything the router added: routes, addresses, policy
// rules and netfilter rules. The tun itself belongs to the engine.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	wasUp := r.up
	r.mu.Unlock()

	if r.ec != nil {
		r.ec.Close()
	}
	close(r.stop)
	if wasUp {
		<-r.done
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	if link, err := netlink.LinkByName(r.tun); err == nil {
		for p := range r.addrs {
			errs = append(errs, ignore(netlink.AddrDel(link, nlAddr(p)), unix.EADDRNOTAVAIL))
		}
		netlink.LinkSetDown(link)
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		errs = append(errs, delRules(fam), flushTable(fam))
	}
	if r.fw != nil {
		errs = append(errs, r.fw.Remove())
	}
	r.addrs, r.routes, r.throws = nil, nil, nil
	r.logf("router: closed; rules, table %d and netfilter rules removed", Table)
	return errors.Join(errs...)
}

// Repairs counts how often the watchdog found something missing and put it
// back.
func (r *Router) Repairs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.repairs
}

func (r *Router) families() []int {
	if r.v6 {
		return []int{unix.AF_INET, unix.AF_INET6}
	}
	return []int{unix.AF_INET}
}

// want returns ps without the IPv6 prefixes when IPv6 is unusable.
func (r *Router) want(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() && !r.v6 {
			continue
		}
		out = append(out, p)
	}
	return out
}

// sync adds what want has and have lacks, then deletes what have has and
// want lacks (adding first, so an interface never goes without an
// address). have is updated to what is installed.
func (r *Router) sync(kind string, have map[netip.Prefix]bool, want []netip.Prefix, add, del func(netip.Prefix) error) error {
	var errs []error
	wantSet := map[netip.Prefix]bool{}
	for _, p := range want {
		wantSet[p] = true
		if have[p] {
			continue
		}
		if err := add(p); err != nil {
			errs = append(errs, fmt.Errorf("adding %s %v: %w", kind, p, err))
			continue
		}
		have[p] = true
	}
	for p := range have {
		if wantSet[p] {
			continue
		}
		if err := del(p); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s %v: %w", kind, p, err))
			continue
		}
		delete(have, p)
	}
	return errors.Join(errs...)
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: netipx.PrefixIPNet(p)}
}

func tunRoute(link netlink.Link, p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       netipx.PrefixIPNet(p.Masked()),
		Table:     Table,
	}
}

// throwRoute ends the lookup in our table, so the prefix falls through to
// the main table (the engine's LocalRoutes: the LAN while using an exit
// node).
func throwRoute(p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:   netipx.PrefixIPNet(p.Masked()),
		Table: Table,
		Type:  unix.RTN_THROW,
	}
}

func ignore(err error, errno unix.Errno) error {
	if errors.Is(err, errno) {
		return nil
	}
	return err
}

// setPort opens magicsock's UDP port in the firewall.
func (r *Router) setPort(pu router.PortUpdate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pu.EndpointNetwork == "udp6" && r.port != 0 {
		return // the IPv4 port is the one we open; normally both are equal
	}
	if r.port == pu.UDPPort {
		return
	}
	r.port = pu.UDPPort
	r.logf("router: magicsock listens on UDP %d (%s)", pu.UDPPort, pu.EndpointNetwork)
	if r.up && !r.closed {
		if err := r.applyFirewallLocked(); err != nil {
			r.logf("router: %v", err)
		}
	}
}

func (r *Router) rulesLocked() firewall.Rules {
	fr := r.fwBase
	fr.TailnetPrefixes = slices.Clone(fr.TailnetPrefixes)
	fr.WireGuardPort = r.port
	return fr
}

func (r *Router) applyFirewallLocked() error {
	if r.fw == nil {
		return nil
	}
	want := r.rulesLocked()
	if err := r.fw.Apply(want); err != nil {
		r.fwOK = false
		return fmt.Errorf("netfilter (%s): %w", r.fw.Name(), err)
	}
	r.fwRules, r.fwOK = want, true
	return nil
}

func (r *Router) fwName() string {
	if r.fw == nil {
		return "off"
	}
	return r.fw.Name()
}

// poke asks the watchdog to check now.
func (r *Router) poke() {
	select {
	case r.checkNow <- struct{}{}:
	default:
	}
}

// watchdog re-installs what someone else removed, every r.every or when
// poked. It logs each repair.
func (r *Router) watchdog() {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.checkNow:
		}
		r.mu.Lock()
		if !r.closed {
			r.repairLocked()
		}
		r.mu.Unlock()
	}
}

// repairLocked puts back missing policy rules, routes, addresses and
// netfilter rules.
func (r *Router) repairLocked() {
	start := time.Now()
	var fixed []string
	for _, fam := range r.families() {
		missing, err := missingRules(fam)
		if err != nil {
			r.logf("router: watchdog: %v", err)
			continue
		}
		if len(missing) > 0 {
			if err := addRules(fam); err != nil {
				r.logf("router: watchdog: %v", err)
			}
			fixed = append(fixed, fmt.Sprintf("%d ip %s rules", len(missing), familyName(fam)))
		}
	}
	if n, err := r.repairRoutesLocked(); err != nil {
		r.logf("router: watchdog: %v", err)
	} else if n > 0 {
		fixed = append(fixed, fmt.Sprintf("%d routes/addresses", n))
	}
	if r.fw != nil {
		want := r.rulesLocked()
		ok, err := r.fw.Intact(want)
		if err != nil {
			r.logf("router: watchdog: checking netfilter: %v", err)
		}
		if !ok || !r.fwOK {
			if err := r.applyFirewallLocked(); err != nil {
				r.logf("router: watchdog: %v", err)
			} else {
				fixed = append(fixed, "netfilter rules ("+r.fw.Name()+")")
			}
		}
	}
	if len(fixed) > 0 {
		r.repairs++
		r.logf("router: watchdog: put back %v, removed from outside, in %v", fixed, time.Since(start).Round(time.Millisecond))
	}
}

// repairRoutesLocked re-adds addresses and routes that vanished from the
// kernel while we believe they are installed.
func (r *Router) repairRoutesLocked() (int, error) {
	if len(r.addrs)+len(r.routes)+len(r.throws) == 0 {
		return 0, nil
	}
	link, err := netlink.LinkByName(r.tun)
	if err != nil {
		return 0, err
	}
	have := map[netip.Prefix]bool{}
	for _, fam := range r.families() {
		rs, err := tableRoutes(fam)
		if err != nil {
			return 0, err
		}
		for _, rt := range rs {
			if p, ok := netipx.FromStdIPNet(rt.Dst); ok {
				have[p] = true
			}
		}
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return 0, err
	}
	haveAddr := map[netip.Prefix]bool{}
	for _, a := range addrs {
		if p, ok := netipx.FromStdIPNet(a.IPNet); ok {
			haveAddr[p] = true
		}
	}
	n := 0
	var errs []error
	for p := range r.addrs {
		if !haveAddr[p] {
			n++
			errs = append(errs, netlink.AddrReplace(link, nlAddr(p)))
		}
	}
	for p := range r.routes {
		if !have[p.Masked()] {
			n++
			errs = append(errs, netlink.RouteReplace(tunRoute(link, p)))
		}
	}
	for p := range r.throws {
		if !have[p.Masked()] {
			n++
			errs = append(errs, netlink.RouteReplace(throwRoute(p)))
		}
	}
	return n, errors.Join(errs...)
}
