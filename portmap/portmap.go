package portmap

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Port is one port of this host to forward from the router.
type Port struct {
	Proto    string // "tcp" or "udp"
	Internal uint16 // the port on this host
	// External is the port to ask for on the router; 0 means Internal.
	// The router may give another (see MappingStatus.External).
	External uint16
	// Description is shown in the router's port-forwarding table (UPnP
	// only); empty means "homenet".
	Description string
}

// Config says which ports to map, and where.
type Config struct {
	Ports []Port
	// Gateway is the router to ask; the zero Addr means the gateway of
	// the IPv4 default route, looked up again on every renewal.
	Gateway netip.Addr
	// Lifetime is the lease asked for; 0 means an hour. Mappings are
	// renewed at half what the router grants.
	Lifetime time.Duration
	// OnExternalIP, if set, is called when the router's external IPv4
	// address is first learned and whenever it changes, from the
	// Mapper's goroutine.
	OnExternalIP func(netip.Addr)
	Logger       *slog.Logger
}

// Status is what `homenet status` shows about port mapping.
type Status struct {
	// Protocol is the one the router answered: "upnp-igd", "pcp",
	// "nat-pmp", or "" while none has.
	Protocol     string          `json:"protocol"`
	Router       string          `json:"router,omitempty"`
	ExternalIPv4 netip.Addr      `json:"external_ipv4,omitzero"`
	Mappings     []MappingStatus `json:"mappings,omitempty"`
	LastError    string          `json:"last_error,omitempty"`
	// NextTry is when the Mapper next talks to the router: a renewal or
	// a retry.
	NextTry time.Time `json:"next_try,omitzero"`
}

// MappingStatus is one Port as the router has it.
type MappingStatus struct {
	Proto    string `json:"proto"`
	Internal uint16 `json:"internal"`
	// External is the port the router gave, which may differ from the
	// one asked for; 0 while the port is not mapped.
	External uint16 `json:"external,omitempty"`
	// Expires is when the router drops the mapping unless renewed; zero
	// for a permanent lease (routers that allow no other).
	Expires time.Time `json:"expires,omitzero"`
	Err     string    `json:"error,omitempty"`
}

// Timing.
const (
	defaultLifetime = time.Hour
	firstRetry      = 5 * time.Second
	maxRetry        = 5 * time.Minute
	// idleRetry is how often a router that speaks no mapping protocol is
	// asked again.
	idleRetry = 5 * time.Minute
	// minRenew keeps a router granting tiny leases from making us spin.
	minRenew = 10 * time.Second
	// closeTimeout bounds deleting the mappings at Close.
	closeTimeout = 5 * time.Second
)

// errNoService is the error of a router that answered no protocol.
var errNoService = errors.New("no UPnP IGD, PCP or NAT-PMP answer")

// knobs are the Mapper's constants; tests change them.
type knobs struct {
	pxpPort      uint16
	upnpLocation string // skip SSDP: the IGD's description URL
	noUPnP       bool
	firstRetry   time.Duration
	maxRetry     time.Duration
	idleRetry    time.Duration
	minRenew     time.Duration
}

func defaultKnobs() knobs {
	return knobs{pxpPort: pxpPort, firstRetry: firstRetry, maxRetry: maxRetry, idleRetry: idleRetry, minRenew: minRenew}
}

// client is one mapping protocol spoken to one router.
type client interface {
	protocol() string
	// add maps (or renews) mp for lifetime and returns the external
	// port and the lease the router granted, 0 for a permanent one.
	add(ctx context.Context, mp *mapping, lifetime time.Duration) (uint16, time.Duration, error)
	// del deletes the mapping of mp.
	del(ctx context.Context, mp *mapping) error
	externalIPv4(ctx context.Context) (netip.Addr, error)
}

// mapping is one Port and what the router made of it.
type mapping struct {
	Port
	ext     uint16    // the external port granted; 0 while not mapped
	expires time.Time // zero for a permanent lease
	err     error
	// inFlight is the port of an add whose answer never came (Close
	// interrupted it): the router may have made the mapping.
	inFlight uint16
	nonce    [12]byte // PCP's mapping nonce, the same for its whole life
}

// want is the external port to ask for: the one we have, else the
// configured one.
func (mp *mapping) want() uint16 {
	switch {
	case mp.ext != 0:
		return mp.ext
	case mp.External != 0:
		return mp.External
	}
	return mp.Internal
}

func (mp *mapping) description() string {
	if mp.Description == "" {
		return "homenet"
	}
	return mp.Description
}

// Mapper keeps Config.Ports mapped on the router until Close.
type Mapper struct {
	cfg    Config
	k      knobs
	cancel context.CancelFunc
	done   chan struct{}
	// closeErr is set by run before done is closed.
	closeErr error

	// Owned by run.
	cl        client // the protocol the router answered last, or nil
	reprobe   bool   // cl stopped answering: look again before using it
	gw, local netip.Addr
	maps      []mapping
	extIP     netip.Addr
	retry     time.Duration
	lastErr   string
	logged    string    // the last error logged at Warn, to log it once
	nextTry   time.Time // zero once closed

	mu     sync.Mutex
	status Status
}

// Start checks cfg and starts keeping its ports mapped in the background,
// until ctx is done or Close is called; either deletes the mappings.
// Problems with the router show in Status, not as an error here.
func Start(ctx context.Context, cfg Config) (*Mapper, error) {
	return start(ctx, cfg, defaultKnobs())
}

func start(ctx context.Context, cfg Config, k knobs) (*Mapper, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = defaultLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Mapper{cfg: cfg, k: k, done: make(chan struct{}), retry: k.firstRetry}
	for _, p := range cfg.Ports {
		mp := mapping{Port: p}
		rand.Read(mp.nonce[:])
		m.maps = append(m.maps, mp)
	}
	m.publish()
	ctx, m.cancel = context.WithCancel(ctx)
	go m.run(ctx)
	return m, nil
}

// check reports what is wrong with cfg, naming the port.
func (cfg *Config) check() error {
	if len(cfg.Ports) == 0 {
		return errors.New("portmap: no ports to map")
	}
	if cfg.Gateway.IsValid() && !cfg.Gateway.Is4() {
		return fmt.Errorf("portmap: gateway %v is not an IPv4 address", cfg.Gateway)
	}
	if cfg.Lifetime < 0 {
		return fmt.Errorf("portmap: negative lifetime %v", cfg.Lifetime)
	}
	seen := map[string]bool{}
	for _, p := range cfg.Ports {
		if p.Proto != "tcp" && p.Proto != "udp" {
			return fmt.Errorf("portmap: port %d: protocol %q, want tcp or udp", p.Internal, p.Proto)
		}
		if p.Internal == 0 {
			return fmt.Errorf("portmap: %s port 0", p.Proto)
		}
		ext := cmp.Or(p.External, p.Internal)
		for _, key := range []string{fmt.Sprint(p.Proto, " internal ", p.Internal), fmt.Sprint(p.Proto, " external ", ext)} {
			if seen[key] {
				return fmt.Errorf("portmap: %s port listed twice", key)
			}
			seen[key] = true
		}
	}
	return nil
}

// Status returns the mappings as the router last granted them, and the
// last error.
func (m *Mapper) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.status
	st.Mappings = append([]MappingStatus(nil), st.Mappings...)
	return st
}

// Close deletes every mapping the Mapper made (giving up after a few
// seconds) and stops it. It returns what failed to be deleted.
func (m *Mapper) Close() error {
	m.cancel()
	<-m.done
	return m.closeErr
}

func (m *Mapper) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.closeErr = m.unmapAll(context.WithoutCancel(ctx))
			return
		case <-t.C:
		}
		wait := m.refresh(ctx)
		if ctx.Err() != nil {
			continue
		}
		m.nextTry = time.Now().Add(wait)
		m.publish()
		t.Reset(wait)
	}
}

// refresh finds the router and its protocol if need be, then adds or
// renews every mapping. It returns how long to wait before the next
// refresh.
func (m *Mapper) refresh(ctx context.Context) time.Duration {
	gw, local, err := m.route()
	if err != nil {
		return m.failed(err, m.backoff())
	}
	if m.gw.IsValid() && (gw != m.gw || local != m.local) {
		m.cfg.Logger.Info("portmap: the route to the router changed; mapping again", "router", gw, "was", m.gw, "local", local)
		m.forget()
	}
	m.gw, m.local = gw, local
	if m.cl == nil || m.reprobe {
		cl, err := m.probe(ctx)
		if err != nil {
			if errors.Is(err, errNoService) {
				return m.failed(err, m.k.idleRetry)
			}
			return m.failed(err, m.backoff())
		}
		if m.cl == nil || cl.protocol() != m.cl.protocol() {
			m.cfg.Logger.Info("portmap: the router answers "+cl.protocol(), "router", gw, "local", local)
		}
		m.cl, m.reprobe = cl, false
	}
	return m.renew(ctx)
}

// route returns the router and our address toward it.
func (m *Mapper) route() (gw, local netip.Addr, err error) {
	gw = m.cfg.Gateway
	if !gw.IsValid() {
		if gw, err = defaultGateway(); err != nil {
			return gw, local, err
		}
	}
	local, err = localAddrTo(gw)
	return gw, local, err
}

// forget drops the protocol and the mappings: they belong to a router we
// no longer reach (or reach from another address).
func (m *Mapper) forget() {
	m.cl, m.reprobe = nil, false
	for i := range m.maps {
		mp := &m.maps[i]
		mp.ext, mp.expires, mp.err, mp.inFlight = 0, time.Time{}, nil, 0
	}
}

// probe asks the router for UPnP IGD, then PCP, then NAT-PMP, and returns
// a client for the first that answers.
func (m *Mapper) probe(ctx context.Context) (client, error) {
	var errs []error
	if !m.k.noUPnP {
		c, err := findIGD(ctx, m.local, m.gw, m.k.upnpLocation)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	server := netip.AddrPortFrom(m.gw, m.k.pxpPort)
	pcp := &pcpClient{server: server, local: m.local}
	err := pcp.probe(ctx)
	if err == nil {
		return pcp, nil
	}
	errs = append(errs, err)
	pmp := &pmpClient{server: server, local: m.local}
	if err = pmp.probe(ctx); err == nil {
		return pmp, nil
	}
	errs = append(errs, err)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var msgs []string
	for _, err := range errs {
		if !errors.Is(err, errNoAnswer) && !errors.Is(err, errPCPVersion0) {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		m.cfg.Logger.Debug("portmap: probe", "router", m.gw, "errs", errors.Join(errs...))
		return nil, fmt.Errorf("%w from %v", errNoService, m.gw)
	}
	return nil, fmt.Errorf("no usable UPnP IGD, PCP or NAT-PMP on %v: %s", m.gw, strings.Join(msgs, "; "))
}

// renew adds or renews every mapping and learns the external address.
func (m *Mapper) renew(ctx context.Context) time.Duration {
	next := m.cfg.Lifetime / 2
	var errs []error
	answered := false
	for i := range m.maps {
		mp := &m.maps[i]
		asked := mp.want()
		mp.inFlight = asked
		ext, lease, err := m.cl.add(ctx, mp, m.cfg.Lifetime)
		if ctx.Err() != nil {
			return 0
		}
		mp.inFlight = 0
		now := time.Now()
		if err != nil {
			if !mp.expires.IsZero() && now.After(mp.expires) {
				mp.ext, mp.expires = 0, time.Time{}
			}
			mp.err = err
			errs = append(errs, err)
			answered = answered || !errors.Is(err, errNoAnswer)
			continue
		}
		answered = true
		m.logMapped(mp, asked, ext, lease)
		mp.ext, mp.err, mp.expires = ext, nil, time.Time{}
		if lease > 0 {
			mp.expires = now.Add(lease)
			next = min(next, lease/2)
		}
	}
	if answered {
		if ip, err := m.cl.externalIPv4(ctx); err != nil {
			errs = append(errs, err)
		} else {
			m.setExternalIP(ip)
		}
	}
	if ctx.Err() != nil {
		return 0
	}
	if !answered {
		m.reprobe = true // the router restarted, or switched protocols
	}
	if len(errs) > 0 {
		return min(m.failed(errs[0], m.backoff()), max(next, m.k.minRenew))
	}
	if m.logged != "" {
		m.cfg.Logger.Info("portmap: every port is mapped again", "router", m.gw)
	}
	m.lastErr, m.logged, m.retry = "", "", m.k.firstRetry
	return max(next, m.k.minRenew)
}

// logMapped logs a new mapping, or one whose port changed; a plain
// renewal only at debug level.
func (m *Mapper) logMapped(mp *mapping, asked, ext uint16, lease time.Duration) {
	args := []any{"proto", mp.Proto, "internal", mp.Internal, "external", ext, "lease", lease, "via", m.cl.protocol()}
	switch {
	case mp.ext == ext:
		m.cfg.Logger.Debug("portmap: mapping renewed", args...)
	case ext != asked:
		m.cfg.Logger.Info("portmap: port mapped; the router gave another external port than asked", append(args, "asked", asked)...)
	default:
		m.cfg.Logger.Info("portmap: port mapped", args...)
	}
}

// backoff returns the wait before the next retry and doubles it.
func (m *Mapper) backoff() time.Duration {
	d := m.retry
	m.retry = min(m.retry*2, m.k.maxRetry)
	return d
}

// failed records err for Status and logs it, at Warn the first time only:
// retries of the same failure log at Debug.
func (m *Mapper) failed(err error, wait time.Duration) time.Duration {
	msg := err.Error()
	m.lastErr = msg
	if msg == m.logged {
		m.cfg.Logger.Debug("portmap: still failing", "err", msg, "retry_in", wait)
		return wait
	}
	m.logged = msg
	if errors.Is(err, errNoService) {
		m.cfg.Logger.Warn(fmt.Sprintf("portmap: %s; ports stay unmapped; asking again every %v", msg, wait))
		return wait
	}
	m.cfg.Logger.Warn("portmap: mapping failed; will retry", "err", msg, "retry_in", wait)
	return wait
}

// setExternalIP records ip and tells Config.OnExternalIP when it changed.
func (m *Mapper) setExternalIP(ip netip.Addr) {
	if ip == m.extIP {
		return
	}
	m.cfg.Logger.Info("portmap: router's external address", "address", ip, "was", m.extIP, "router", m.gw)
	m.extIP = ip
	m.publish()
	if m.cfg.OnExternalIP != nil {
		m.cfg.OnExternalIP(ip)
	}
}

// unmapAll deletes every mapping made, within closeTimeout.
func (m *Mapper) unmapAll(ctx context.Context) error {
	m.nextTry = time.Time{}
	defer m.publish()
	if m.cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	var errs []error
	for i := range m.maps {
		mp := &m.maps[i]
		made := mp.ext != 0
		if !made && mp.inFlight == 0 {
			continue
		}
		if !made {
			mp.ext = mp.inFlight // best effort: it may not exist
		}
		err := m.cl.del(ctx, mp)
		switch {
		case err != nil && made:
			errs = append(errs, err)
			m.cfg.Logger.Warn("portmap: deleting mapping failed", "proto", mp.Proto, "external", mp.ext, "err", err)
		case made:
			m.cfg.Logger.Info("portmap: mapping deleted", "proto", mp.Proto, "internal", mp.Internal, "external", mp.ext)
		}
		mp.ext, mp.expires, mp.inFlight, mp.err = 0, time.Time{}, 0, nil
	}
	return errors.Join(errs...)
}

// publish copies the loop's state into Status.
func (m *Mapper) publish() {
	st := Status{ExternalIPv4: m.extIP, LastError: m.lastErr, NextTry: m.nextTry}
	if m.gw.IsValid() {
		st.Router = m.gw.String()
	}
	if m.cl != nil && !m.reprobe {
		st.Protocol = m.cl.protocol()
	}
	for _, mp := range m.maps {
		ms := MappingStatus{Proto: mp.Proto, Internal: mp.Internal, External: mp.ext, Expires: mp.expires}
		if mp.err != nil {
			ms.Err = mp.err.Error()
		}
		st.Mappings = append(st.Mappings, ms)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status = st
}
