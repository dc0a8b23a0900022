package ddns

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"homenet/ddns/provider"

	"github.com/libdns/libdns"
)

// Config says which name to keep current, and where.
type Config struct {
	Provider     provider.Provider
	ProviderName string // for status and logs, such as "alidns"
	// Zone is the zone at the provider, such as "example.net".
	Zone string
	// Name is the full DNS name inside Zone, such as "home.example.net".
	Name string
	// IPv4 and IPv6 say which record types the Updater manages. An
	// unmanaged type is never touched.
	IPv4, IPv6 bool
	TTL        time.Duration
	Logger     *slog.Logger
}

// Addrs are the addresses the name should have; an invalid Addr means
// "none of this family".
type Addrs struct {
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	IPv6 netip.Addr `json:"ipv6,omitzero"`
}

// Status is what `homenet status` shows about dynamic DNS. It holds no
// credentials.
type Status struct {
	Provider string `json:"provider"`
	Name     string `json:"name"`
	// Published are the records as last written: "A 203.0.113.7", or
	// "AAAA none" for a record removed.
	Published   []string  `json:"published,omitempty"`
	LastUpdate  time.Time `json:"last_update,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	NextRetry   time.Time `json:"next_retry,omitzero"`
	Updates     int       `json:"updates"` // successful provider writes
	Failures    int       `json:"failures"`
	// Updating says a write to the provider is in flight: a slow or
	// unreachable API shows here before its timeout turns into LastError.
	Updating bool `json:"updating,omitempty"`
}

// Retry and resync timing.
const (
	firstRetry = 5 * time.Second
	maxRetry   = 5 * time.Minute
	// resync rewrites the records now and then, in case someone changed
	// them at the provider.
	resync = 6 * time.Hour
)

// Updater keeps the records of Config.Name in step with the addresses
// given to Set. Create it with New and run it with Run.
type Updater struct {
	cfg        Config
	relName    string // Name relative to Zone, "@" for the apex
	wake       chan struct{}
	firstRetry time.Duration // tests shorten it

	mu        sync.Mutex
	want      Addrs
	wantSet   bool
	published map[string]netip.Addr // by record type; invalid = removed
	status    Status
}

// New returns an Updater for cfg. It does nothing until Run.
func New(cfg Config) *Updater {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Updater{
		cfg:        cfg,
		relName:    libdns.RelativeName(cfg.Name+".", cfg.Zone+"."),
		wake:       make(chan struct{}, 1),
		firstRetry: firstRetry,
		published:  map[string]netip.Addr{},
		status:     Status{Provider: cfg.ProviderName, Name: cfg.Name},
	}
}

// Set gives the addresses the name should have now. It never blocks; Run
// publishes them at once (a failed write is retried with back-off).
func (u *Updater) Set(a Addrs) {
	u.mu.Lock()
	u.want, u.wantSet = a, true
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Status returns what was published and the last error.
func (u *Updater) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.status
	st.Published = nil
	for _, typ := range u.types() {
		if ip, ok := u.published[typ]; ok {
			v := "none"
			if ip.IsValid() {
				v = ip.String()
			}
			st.Published = append(st.Published, typ+" "+v)
		}
	}
	return st
}

// types lists the managed record types.
func (u *Updater) types() []string {
	var ts []string
	if u.cfg.IPv4 {
		ts = append(ts, "A")
	}
	if u.cfg.IPv6 {
		ts = append(ts, "AAAA")
	}
	return ts
}

// Run publishes the addresses given to Set until ctx is done. It writes
// every managed record at the first Set, then whatever changes, and all of
// them again every resync interval.
func (u *Updater) Run(ctx context.Context) {
	retry := u.firstRetry
	var timer <-chan time.Time
	forceAll := true
	lastFull := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		case <-timer:
		}
		timer = nil
		u.mu.Lock()
		want, ok := u.want, u.wantSet
		u.mu.Unlock()
		if !ok {
			continue
		}
		if time.Since(lastFull) >= resync {
			forceAll = true
		}
		u.setUpdating(true)
		err := u.sync(ctx, want, forceAll)
		u.setUpdating(false)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			next := time.Now().Add(retry)
			u.mu.Lock()
			u.status.LastError, u.status.LastErrorAt, u.status.NextRetry = err.Error(), time.Now(), next
			u.status.Failures++
			u.mu.Unlock()
			u.cfg.Logger.Warn("ddns: updating records failed; will retry", "name", u.cfg.Name, "retry_in", retry, "err", err)
			timer = time.After(retry)
			retry = min(retry*2, maxRetry)
			continue
		}
		if forceAll {
			lastFull = time.Now()
		}
		forceAll = false
		retry = u.firstRetry
		u.mu.Lock()
		u.status.LastError, u.status.NextRetry = "", time.Time{}
		u.mu.Unlock()
		timer = time.After(time.Until(lastFull.Add(resync)))
	}
}

// sync writes each managed record whose wanted address differs from what
// was published (every one when all is set).
func (u *Updater) sync(ctx context.Context, want Addrs, all bool) error {
	for _, typ := range u.types() {
		ip := want.IPv4
		if typ == "AAAA" {
			ip = want.IPv6
		}
		u.mu.Lock()
		have, done := u.published[typ]
		u.mu.Unlock()
		if done && have == ip && !all {
			continue
		}
		if err := u.write(ctx, typ, ip); err != nil {
			return err
		}
		u.mu.Lock()
		u.published[typ] = ip
		u.status.LastUpdate = time.Now()
		u.status.Updates++
		u.mu.Unlock()
	}
	return nil
}

// write makes ip the only record of type typ at the name, or removes
// every such record when ip is invalid.
func (u *Updater) write(ctx context.Context, typ string, ip netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	zone := u.cfg.Zone + "."
	if !ip.IsValid() {
		_, err := u.cfg.Provider.DeleteRecords(ctx, zone, []libdns.Record{libdns.RR{Name: u.relName, Type: typ}})
		if err != nil {
			return fmt.Errorf("removing the %s record of %s: %w", typ, u.cfg.Name, err)
		}
		u.cfg.Logger.Info("ddns: record removed", "name", u.cfg.Name, "type", typ)
		return nil
	}
	rec := libdns.Address{Name: u.relName, TTL: u.cfg.TTL, IP: ip}
	if _, err := u.cfg.Provider.SetRecords(ctx, zone, []libdns.Record{rec}); err != nil {
		return fmt.Errorf("setting %s %s %s: %w", u.cfg.Name, typ, ip, err)
	}
	u.cfg.Logger.Info("ddns: record set", "name", u.cfg.Name, "type", typ, "address", ip)
	return nil
}

func (u *Updater) setUpdating(on bool) {
	u.mu.Lock()
	u.status.Updating = on
	u.mu.Unlock()
}
