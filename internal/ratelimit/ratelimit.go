// Package ratelimit bounds what one address on the internet may cost
// homenet: a token bucket per source, kept for a bounded number of
// sources, so that strangers choosing their addresses cannot grow it.
//
// It is its own small bucket rather than golang.org/x/time/rate's Limiter:
// the table already holds a lock, so a bucket needs no mutex of its own and
// is 32 bytes, and tests pass the time in.
package ratelimit

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"tailscale.com/util/lru"
)

// Source is the unit a per-source limit applies to: an IPv4 address
// (an IPv4-mapped IPv6 address counts as IPv4), or the /64 of an IPv6
// address, because one host, home or phone on a mobile network has a whole
// /64 to pick addresses from. An invalid address gives the zero Prefix.
func Source(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return netip.Prefix{}
	}
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// Buckets is a token bucket per source: each holds up to Burst tokens and
// gains one every Every. A source not seen before (or forgotten) has a full
// bucket. At most MaxSources buckets are kept; when a new source comes
// beyond that, the one used least recently is forgotten, which forgives it:
// an attacker with more addresses than MaxSources gets more than the limit,
// but the memory stays bounded, and that attacker could as well have used
// each address under the limit.
//
// A Buckets is safe for concurrent use. Create one with New.
type Buckets struct {
	every time.Duration
	burst float64

	mu sync.Mutex
	m  lru.Cache[netip.Prefix, *bucket]
}

// bucket is one source's tokens as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

// New returns token buckets of burst tokens that gain one every every,
// for at most maxSources sources.
func New(every time.Duration, burst, maxSources int) *Buckets {
	b := &Buckets{every: every, burst: float64(burst)}
	b.m.MaxEntries = maxSources
	return b
}

// Allow takes a token from src's bucket at now and reports whether there
// was one. If not, retry is how long until there is.
func (b *Buckets) Allow(src netip.Prefix, now time.Time) (ok bool, retry time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, found := b.m.GetOk(src)
	if !found {
		bk = &bucket{tokens: b.burst, at: now}
		b.m.Set(src, bk)
	}
	b.refill(bk, now)
	if bk.tokens < 1 {
		return false, b.until(bk)
	}
	bk.tokens--
	return true, 0
}

// Has reports whether src's bucket holds a token at now, without taking
// it, and if not, how long until it does. It remembers no new source.
func (b *Buckets) Has(src netip.Prefix, now time.Time) (ok bool, retry time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, found := b.m.PeekOk(src)
	if !found {
		return true, 0
	}
	b.refill(bk, now)
	if bk.tokens < 1 {
		return false, b.until(bk)
	}
	return true, 0
}

// Len is the number of sources remembered.
func (b *Buckets) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m.Len()
}

func (b *Buckets) refill(bk *bucket, now time.Time) {
	if d := now.Sub(bk.at); d > 0 {
		bk.tokens = math.Min(b.burst, bk.tokens+float64(d)/float64(b.every))
		bk.at = now
	}
}

// until is how long bk takes to reach one token.
func (b *Buckets) until(bk *bucket) time.Duration {
	return time.Duration(math.Ceil((1 - bk.tokens) * float64(b.every)))
}

// RetryAfter is d as the whole seconds of an HTTP Retry-After header,
// rounded up, at least 1.
func RetryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
