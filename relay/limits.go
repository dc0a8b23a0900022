package relay

import (
	"expvar"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"homenet/internal/ratelimit"
)

// Node keys the relay refuses, per source address (an IPv4 address or an
// IPv6 /64, see ratelimit.Source): 6 a minute, 10 at once. Past that the
// source's DERP connections get 429 before the upgrade, so a flood of
// unknown keys costs a TLS handshake and no DERP handshake, admission query
// or lock in control. A legitimate client is refused only when its key was
// deleted or expired, and then it is refused anyway; derphttp retries a
// failed connection every few seconds at most, so it meets the limit only
// after that, and the TLS listener's other paths (control's Noise over TLS,
// where it logs in again) are not limited here. Loopback (the gateway agent
// and the relay's own mesh client) is exempt.
const (
	refusalEvery      = 10 * time.Second
	refusalBurst      = 10
	maxRefusalSources = 2048
)

// refusals limits the DERP connections of sources whose node keys were
// refused.
type refusals struct {
	buckets *ratelimit.Buckets
	limited expvar.Int // DERP connections answered 429
}

func newRefusals() *refusals {
	return &refusals{buckets: ratelimit.New(refusalEvery, refusalBurst, maxRefusalSources)}
}

// refused records that admission refused a node key from addr.
func (rf *refusals) refused(addr netip.Addr, now time.Time) {
	if rf == nil || !addr.IsValid() || addr.Unmap().IsLoopback() {
		return
	}
	rf.buckets.Allow(ratelimit.Source(addr), now)
}

// gate wraps the DERP handler: a source with no refusals left gets 429
// with Retry-After instead of the upgrade. A Tailscale client that already
// knows the relay's key from the TLS handshake does not read the answer
// (derp.FastStartHeader) and sees only a connection that failed; either
// way it redials after its own back-off.
func (rf *refusals) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err == nil && !ap.Addr().Unmap().IsLoopback() {
			if ok, retry := rf.buckets.Has(ratelimit.Source(ap.Addr()), time.Now()); !ok {
				rf.limited.Add(1)
				w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfter(retry)))
				http.Error(w, "too many refused DERP connections from your address", http.StatusTooManyRequests)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
