package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"homenet/control"
	"homenet/ddns"
	"homenet/ddns/provider"
	"homenet/relay"

	"tailscale.com/tailcfg"
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

// setOnChange sets the function told of later changes.
func (w *netWatch) setOnChange(f func(Reachability)) {
	w.mu.Lock()
	w.onChange = f
	w.mu.Unlock()
}

// newDDNS returns the provider and the updater for cfg's [ddns] section,
// or nils when it has none. Errors name the key at fault.
func newDDNS(cfg Config, logger *slog.Logger) (provider.Provider, *ddns.Updater, error) {
	d := cfg.DDNS
	if d.Provider == "" {
		return nil, nil, nil
	}
	creds, err := provider.LoadCredentials(d.Provider, d.CredentialsFile, os.Getenv)
	if err != nil {
		if d.CredentialsFile == "" {
			return nil, nil, fmt.Errorf("ddns.credentials_file is empty, so the credentials come from the environment: %w", err)
		}
		return nil, nil, fmt.Errorf("ddns.credentials_file: %w", err)
	}
	p, err := provider.New(d.Provider, creds)
	if err != nil {
		where := "ddns.credentials_file " + d.CredentialsFile
		if d.CredentialsFile == "" {
			where = "the environment (ddns.credentials_file is empty)"
		}
		return nil, nil, fmt.Errorf("ddns.provider %s: %w (from %s)", d.Provider, err, where)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = defaultTTL(d.Provider)
	}
	u := ddns.New(ddns.Config{
		Provider:     p,
		ProviderName: d.Provider,
		Zone:         cfg.DDNSZone(),
		Name:         normName(d.Name),
		IPv4:         d.IPv4,
		IPv6:         d.IPv6,
		TTL:          time.Duration(ttl) * time.Second,
		Logger:       logger,
	})
	return p, u, nil
}

// defaultTTL is the least TTL the provider's free plans accept.
func defaultTTL(provider string) int {
	switch provider {
	case "alidns", "dnspod":
		return 600
	}
	return 60
}

// dns01Provider returns p when it can answer DNS-01 challenges for the
// relay's hostname, that is when the hostname lies in the [ddns] zone;
// else nil, and the relay validates by TLS-ALPN-01.
func dns01Provider(cfg Config, p provider.Provider) relay.DNSProvider {
	if p == nil || !inZone(cfg.RelayHostname(), cfg.DDNSZone()) {
		return nil
	}
	return p
}

// followDERPMap gives control the relay's region now and again whenever
// the host's addresses change what clients should dial.
func followDERPMap(srv *control.Server, region *tailcfg.DERPRegion, cfg Config, w *netWatch) {
	var mu sync.Mutex
	var last *tailcfg.DERPMap
	set := func(r Reachability) {
		m := derpMapFor(region.Clone(), cfg, r)
		mu.Lock()
		defer mu.Unlock()
		if last != nil && reflect.DeepEqual(last, m) {
			return
		}
		last = m
		srv.SetDERPMap(m)
	}
	set(w.Reachability())
	w.setOnChange(set)
}

// derpMapFor is the DERP map with the relay's region. When [ddns] keeps
// the relay's own name, a family the host has no address of is marked
// "none", so clients don't waste dials on a record that is not there.
func derpMapFor(region *tailcfg.DERPRegion, cfg Config, r Reachability) *tailcfg.DERPMap {
	if d := cfg.DDNS; d.Provider != "" && normName(cfg.RelayHostname()) == normName(d.Name) {
		for _, n := range region.Nodes {
			if d.IPv4 && !r.IPv4.IsValid() {
				n.IPv4 = "none"
			}
			if d.IPv6 && !r.IPv6.IsValid() {
				n.IPv6 = "none"
			}
		}
	}
	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{region.RegionID: region}}
}

// ipCertChallengeAddr returns server.listen when the relay should get an
// ACME certificate for its IP address, validated by HTTP-01 on that
// listener: when server.url is https and the relay's hostname a public IP
// address. Else "", and an IP keeps its self-signed certificate, pinned by
// hash (no CA issues certificates for private addresses).
func ipCertChallengeAddr(cfg Config) string {
	u, err := url.Parse(cfg.Server.URL)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	ip, err := netip.ParseAddr(strings.Trim(cfg.RelayHostname(), "[]"))
	if err != nil || addrClass(ip) != addrPublic {
		return ""
	}
	return cfg.Server.Listen
}
