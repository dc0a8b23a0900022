package ddns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

// fakeProvider records calls as "set home AAAA 2001:db8::1" or
// "delete home A", and fails while fail is set.
type fakeProvider struct {
	mu    sync.Mutex
	calls []string
	fail  error
}

func (f *fakeProvider) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		f.calls = append(f.calls, "failed "+call)
		return f.fail
	}
	f.calls = append(f.calls, call)
	return nil
}

func (f *fakeProvider) GetRecords(context.Context, string) ([]libdns.Record, error) { return nil, nil }
func (f *fakeProvider) AppendRecords(_ context.Context, zone string, rs []libdns.Record) ([]libdns.Record, error) {
	return rs, errors.New("unexpected AppendRecords")
}
func (f *fakeProvider) SetRecords(_ context.Context, zone string, rs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range rs {
		rr := r.RR()
		if err := f.record(fmt.Sprintf("set %s %s %s %s ttl=%v", zone, rr.Name, rr.Type, rr.Data, rr.TTL)); err != nil {
			return nil, err
		}
	}
	return rs, nil
}
func (f *fakeProvider) DeleteRecords(_ context.Context, zone string, rs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range rs {
		rr := r.RR()
		if err := f.record(fmt.Sprintf("delete %s %s %s %s", zone, rr.Name, rr.Type, rr.Data)); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (f *fakeProvider) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeProvider) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// waitCalls waits until the provider saw n calls and returns them.
func waitCalls(t *testing.T, f *fakeProvider, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		got = append(got, f.take()...)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let stray extra calls show
	got = append(got, f.take()...)
	return got
}

var (
	v4a = netip.MustParseAddr("203.0.113.7")
	v6a = netip.MustParseAddr("2001:db8:100::2")
	v6b = netip.MustParseAddr("2001:db8:101::2")
)

func TestUpdaterSequence(t *testing.T) {
	type step struct {
		set  Addrs
		want []string
	}
	tests := []struct {
		name       string
		ipv4, ipv6 bool
		zone, host string
		steps      []step
	}{
		{
			name: "IPv6 only home: AAAA set, stale A removed, renumbered", ipv4: true, ipv6: true,
			zone: "example.net", host: "home.example.net",
			steps: []step{
				{Addrs{IPv6: v6a}, []string{"delete example.net. home A ", "set example.net. home AAAA 2001:db8:100::2 ttl=1m0s"}},
				{Addrs{IPv6: v6a}, nil}, // no change, no write
				{Addrs{IPv6: v6b}, []string{"set example.net. home AAAA 2001:db8:101::2 ttl=1m0s"}},
				{Addrs{IPv4: v4a, IPv6: v6b}, []string{"set example.net. home A 203.0.113.7 ttl=1m0s"}},
				{Addrs{IPv4: v4a}, []string{"delete example.net. home AAAA "}},
			},
		},
		{
			name: "only A managed, at the apex", ipv4: true,
			zone: "example.net", host: "example.net",
			steps: []step{
				{Addrs{IPv4: v4a, IPv6: v6a}, []string{"set example.net. @ A 203.0.113.7 ttl=1m0s"}},
				{Addrs{IPv6: v6b}, []string{"delete example.net. @ A "}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := new(fakeProvider)
			u := New(Config{Provider: f, ProviderName: "fake", Zone: tt.zone, Name: tt.host, IPv4: tt.ipv4, IPv6: tt.ipv6, TTL: time.Minute})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go u.Run(ctx)
			for i, s := range tt.steps {
				u.Set(s.set)
				got := waitCalls(t, f, len(s.want))
				if !slices.Equal(got, s.want) {
					t.Fatalf("step %d (%+v): provider calls\n%q\nwant\n%q", i, s.set, got, s.want)
				}
			}
		})
	}
}

func TestUpdaterRetriesAndReports(t *testing.T) {
	f := new(fakeProvider)
	f.setFail(errors.New("HTTP 503 ServiceUnavailable"))
	u := New(Config{Provider: f, ProviderName: "fake", Zone: "example.net", Name: "home.example.net", IPv6: true, TTL: time.Minute})
	u.firstRetry = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	u.Set(Addrs{IPv6: v6a})

	var st Status
	deadline := time.Now().Add(5 * time.Second)
	for st = u.Status(); st.Failures < 2 && time.Now().Before(deadline); st = u.Status() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.Failures < 2 || !strings.Contains(st.LastError, "503") || !strings.Contains(st.LastError, "home.example.net") || st.NextRetry.IsZero() {
		t.Fatalf("status after failures = %+v; want ≥2 failures, the error naming the name and the 503, a next retry", st)
	}
	if len(st.Published) != 0 {
		t.Errorf("published %v after only failures", st.Published)
	}

	f.setFail(nil)
	for st = u.Status(); st.Updates == 0 && time.Now().Before(deadline); st = u.Status() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.LastError != "" || !st.NextRetry.IsZero() || !slices.Equal(st.Published, []string{"AAAA 2001:db8:100::2"}) {
		t.Fatalf("status after recovery = %+v; want no error, no retry, AAAA published", st)
	}
	if st.Provider != "fake" || st.Name != "home.example.net" {
		t.Errorf("status names %q %q", st.Provider, st.Name)
	}
}

// slowProvider blocks SetRecords until release is closed.
type slowProvider struct {
	fakeProvider
	release chan struct{}
}

func (s *slowProvider) SetRecords(ctx context.Context, zone string, rs []libdns.Record) ([]libdns.Record, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.fakeProvider.SetRecords(ctx, zone, rs)
}

func TestUpdaterShowsWriteInFlight(t *testing.T) {
	p := &slowProvider{release: make(chan struct{})}
	u := New(Config{Provider: p, ProviderName: "fake", Zone: "example.net", Name: "home.example.net", IPv6: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	u.Set(Addrs{IPv6: v6a})
	deadline := time.Now().Add(5 * time.Second)
	for !u.Status().Updating {
		if time.Now().After(deadline) {
			t.Fatal("status never said a write is in flight while the provider hung")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(p.release)
	for st := u.Status(); st.Updating || st.Updates == 0; st = u.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("after the provider answered: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
