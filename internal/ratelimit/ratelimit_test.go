package ratelimit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestSource(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"127.0.0.1", "127.0.0.1/32"},
	}
	for _, tt := range tests {
		if got := Source(netip.MustParseAddr(tt.addr)); got.String() != tt.want {
			t.Errorf("Source(%s) = %v, want %s", tt.addr, got, tt.want)
		}
	}
	if got := Source(netip.Addr{}); got.IsValid() {
		t.Errorf("Source(invalid) = %v, want the zero Prefix", got)
	}
}

func TestBuckets(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParsePrefix("192.0.2.1/32")
	b := netip.MustParsePrefix("2001:db8::/64")
	type step struct {
		src       netip.Prefix
		at        time.Duration // after t0
		want      bool
		wantRetry time.Duration // when refused
	}
	tests := []struct {
		name  string
		every time.Duration
		burst int
		steps []step
	}{
		{
			name: "burst then refused", every: 6 * time.Second, burst: 3,
			steps: []step{{a, 0, true, 0}, {a, 0, true, 0}, {a, 0, true, 0}, {a, 0, false, 6 * time.Second}},
		},
		{
			name: "refill at the rate", every: 6 * time.Second, burst: 2,
			steps: []step{
				{a, 0, true, 0}, {a, 0, true, 0}, {a, time.Second, false, 5 * time.Second},
				{a, 6 * time.Second, true, 0}, {a, 6 * time.Second, false, 6 * time.Second},
			},
		},
		{
			name: "refill stops at burst", every: time.Second, burst: 2,
			steps: []step{
				{a, 0, true, 0}, {a, 0, true, 0},
				{a, time.Hour, true, 0}, {a, time.Hour, true, 0}, {a, time.Hour, false, time.Second},
			},
		},
		{
			name: "sources are apart", every: time.Minute, burst: 1,
			steps: []step{{a, 0, true, 0}, {a, 0, false, time.Minute}, {b, 0, true, 0}, {b, 0, false, time.Minute}},
		},
		{
			name: "time going back takes nothing", every: time.Second, burst: 1,
			steps: []step{{a, 10 * time.Second, true, 0}, {a, 5 * time.Second, false, time.Second}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bk := New(tt.every, tt.burst, 100)
			for i, s := range tt.steps {
				ok, retry := bk.Allow(s.src, t0.Add(s.at))
				if ok != s.want || (!ok && retry != s.wantRetry) {
					t.Errorf("step %d: Allow(%v, +%v) = %v, %v; want %v, %v", i, s.src, s.at, ok, retry, s.want, s.wantRetry)
				}
			}
		})
	}
}

func TestBucketsHas(t *testing.T) {
	t0 := time.Now()
	a := netip.MustParsePrefix("192.0.2.1/32")
	bk := New(10*time.Second, 2, 100)
	if ok, _ := bk.Has(a, t0); !ok || bk.Len() != 0 {
		t.Fatalf("Has of an unknown source = %v with %d sources kept, want true and none kept", ok, bk.Len())
	}
	bk.Allow(a, t0)
	if ok, _ := bk.Has(a, t0); !ok {
		t.Errorf("Has with one token left = false, want true")
	}
	bk.Allow(a, t0)
	if ok, retry := bk.Has(a, t0.Add(time.Second)); ok || retry != 9*time.Second {
		t.Errorf("Has with none left = %v, %v; want false, 9s", ok, retry)
	}
	if ok, _ := bk.Has(a, t0.Add(10*time.Second)); !ok {
		t.Errorf("Has after a refill = false, want true")
	}
}

// Memory stays bounded whatever addresses come, and forgetting a source
// forgives it.
func TestBucketsBounded(t *testing.T) {
	t0 := time.Now()
	bk := New(time.Hour, 1, 64)
	first := netip.MustParsePrefix("10.0.0.0/32")
	bk.Allow(first, t0)
	if ok, _ := bk.Allow(first, t0); ok {
		t.Fatal("second Allow of a 1-token bucket = true")
	}
	for i := range 10000 {
		src := Source(netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)))
		bk.Allow(src, t0)
		if bk.Len() > 64 {
			t.Fatalf("after %d sources, %d buckets kept, want at most 64", i+1, bk.Len())
		}
	}
	if ok, _ := bk.Allow(first, t0); !ok {
		t.Errorf("a source pushed out by newer ones is still limited, want forgotten")
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {6 * time.Second, 6},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.d); got != tt.want {
			t.Errorf("RetryAfter(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}
