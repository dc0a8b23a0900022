package provider

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

// fakeZone is the zone behind the fake Alidns and DNSPod servers.
type fakeZone struct {
	mu   sync.Mutex
	recs []fakeRecord
	next int
	log  []string // one line per request: action and parameters
}

type fakeRecord struct {
	id    int
	name  string
	typ   string
	value string
	ttl   int
	prio  int
}

func newFakeZone(recs ...fakeRecord) *fakeZone {
	z := &fakeZone{next: 100}
	for i, r := range recs {
		r.id = i + 1
		z.recs = append(z.recs, r)
	}
	return z
}

func (z *fakeZone) add(r fakeRecord) int {
	z.next++
	r.id = z.next
	z.recs = append(z.recs, r)
	return r.id
}

func (z *fakeZone) find(id int) int {
	return slices.IndexFunc(z.recs, func(r fakeRecord) bool { return r.id == id })
}

// state lists the zone as "name TYPE ttl value" lines, sorted.
func (z *fakeZone) state() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []string
	for _, r := range z.recs {
		v := r.value
		if r.typ == "MX" {
			v = fmt.Sprint(r.prio, " ", v)
		}
		out = append(out, fmt.Sprintf("%s %s %d %s", r.name, r.typ, r.ttl, v))
	}
	slices.Sort(out)
	return out
}

func (z *fakeZone) requests() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return slices.Clone(z.log)
}

// baseZone is the zone the provider tests start from.
func baseZone() *fakeZone {
	return newFakeZone(
		fakeRecord{name: "@", typ: "A", value: "192.0.2.10", ttl: 600},
		fakeRecord{name: "home", typ: "A", value: "192.0.2.1", ttl: 600},
		fakeRecord{name: "home", typ: "A", value: "192.0.2.2", ttl: 600},
		fakeRecord{name: "home", typ: "TXT", value: "old", ttl: 600},
		fakeRecord{name: "home", typ: "A", value: "192.0.2.4", ttl: 600},
		fakeRecord{name: "www", typ: "CNAME", value: "example.net", ttl: 3600},
	)
}

// describe renders records as "name TYPE ttl value" lines, for comparing
// what a libdns method returned.
func describe(recs []libdns.Record) []string {
	var out []string
	for _, r := range recs {
		rr := r.RR()
		out = append(out, fmt.Sprintf("%T %s %s %d %s", r, rr.Name, rr.Type, int(rr.TTL/time.Second), rr.Data))
	}
	return out
}

func TestAPIPlanSet(t *testing.T) {
	rec := func(id, data string, ttl int) apiRecord {
		return apiRecord{ID: id, RR: libdns.RR{Name: "home", Type: "A", Data: data, TTL: time.Duration(ttl) * time.Second}}
	}
	want := func(data string, ttl int) libdns.RR {
		return libdns.RR{Name: "home", Type: "A", Data: data, TTL: time.Duration(ttl) * time.Second}
	}
	tests := []struct {
		name string
		have []apiRecord
		want []libdns.RR
		plan string
	}{
		{"nothing there", nil, []libdns.RR{want("192.0.2.1", 600)}, "create 192.0.2.1"},
		{"already so", []apiRecord{rec("1", "192.0.2.1", 600)}, []libdns.RR{want("192.0.2.1", 600)}, ""},
		{"new TTL", []apiRecord{rec("1", "192.0.2.1", 600)}, []libdns.RR{want("192.0.2.1", 60)}, "update 1 192.0.2.1/60"},
		{"new address reuses the record", []apiRecord{rec("1", "192.0.2.1", 600)}, []libdns.RR{want("192.0.2.2", 600)}, "update 1 192.0.2.2/600"},
		{"extras deleted", []apiRecord{rec("1", "192.0.2.1", 600), rec("2", "192.0.2.2", 600), rec("3", "192.0.2.3", 600)},
			[]libdns.RR{want("192.0.2.2", 600)}, "remove 1; remove 3"},
		{"more wanted than there", []apiRecord{rec("1", "192.0.2.1", 600)},
			[]libdns.RR{want("192.0.2.2", 600), want("192.0.2.3", 600)}, "update 1 192.0.2.2/600; create 192.0.2.3"},
		{"IPv6 spelling", []apiRecord{{ID: "1", RR: libdns.RR{Name: "home", Type: "AAAA", Data: "2001:DB8:0::1", TTL: 600 * time.Second}}},
			[]libdns.RR{{Name: "home", Type: "AAAA", Data: "2001:db8::1", TTL: 600 * time.Second}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := apiPlanSet(tt.have, tt.want)
			var got []string
			for _, u := range p.update {
				got = append(got, fmt.Sprintf("update %s %s/%d", u.old.ID, u.rr.Data, apiTTL(u.rr)))
			}
			for _, c := range p.create {
				got = append(got, "create "+c.Data)
			}
			for _, r := range p.remove {
				got = append(got, "remove "+r.ID)
			}
			if s := strings.Join(got, "; "); s != tt.plan {
				t.Errorf("plan = %q, want %q", s, tt.plan)
			}
		})
	}
}

func TestAPIInput(t *testing.T) {
	tests := []struct {
		in      libdns.RR
		full    bool
		want    libdns.RR
		wantErr string
	}{
		{libdns.RR{Name: "home", Type: "a", Data: "192.0.2.1"}, true, libdns.RR{Name: "home", Type: "A", Data: "192.0.2.1", TTL: 600 * time.Second}, ""},
		{libdns.RR{Name: "", Type: "TXT", Data: "x", TTL: 1500 * time.Millisecond}, true, libdns.RR{Name: "@", Type: "TXT", Data: "x", TTL: time.Second}, ""},
		{libdns.RR{Name: "home.example.net.", Type: "A", Data: "192.0.2.1", TTL: time.Minute}, true, libdns.RR{Name: "home", Type: "A", Data: "192.0.2.1", TTL: time.Minute}, ""},
		{libdns.RR{Name: "example.net.", Type: "A", Data: "192.0.2.1", TTL: time.Minute}, true, libdns.RR{Name: "@", Type: "A", Data: "192.0.2.1", TTL: time.Minute}, ""},
		{libdns.RR{Name: "home.example.org.", Type: "A", Data: "192.0.2.1"}, true, libdns.RR{}, `not in zone example.net`},
		{libdns.RR{Name: "home", Data: "192.0.2.1"}, true, libdns.RR{}, "has no type"},
		{libdns.RR{Name: "home", Type: "A"}, true, libdns.RR{}, "has no value"},
		{libdns.RR{Name: "home"}, false, libdns.RR{Name: "home"}, ""},
		{libdns.RR{Type: "TXT"}, false, libdns.RR{}, "has no name"},
	}
	for _, tt := range tests {
		got, err := apiInput(tt.in, "example.net", tt.full)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("apiInput(%+v) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("apiInput(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestAPILibdnsRecord(t *testing.T) {
	tests := []struct {
		rr   libdns.RR
		want libdns.Record
	}{
		{libdns.RR{Name: "home", Type: "A", Data: "192.0.2.1"}, libdns.Address{Name: "home", IP: netip.MustParseAddr("192.0.2.1")}},
		{libdns.RR{Name: "home", Type: "AAAA", Data: "2001:db8::1"}, libdns.Address{Name: "home", IP: netip.MustParseAddr("2001:db8::1")}},
		{libdns.RR{Name: "_acme-challenge", Type: "TXT", Data: "tok"}, libdns.TXT{Name: "_acme-challenge", Text: "tok"}},
		{libdns.RR{Name: "@", Type: "MX", Data: "10 mail.example.net"}, libdns.MX{Name: "@", Preference: 10, Target: "mail.example.net"}},
		{libdns.RR{Name: "home", Type: "A", Data: "not an address"}, libdns.RR{Name: "home", Type: "A", Data: "not an address"}},
		{libdns.RR{Name: "x", Type: "REDIRECT_URL", Data: "https://example.org"}, libdns.RR{Name: "x", Type: "REDIRECT_URL", Data: "https://example.org"}},
	}
	for _, tt := range tests {
		got := apiLibdnsRecord(tt.rr)
		if fmt.Sprintf("%T %+v", got, got) != fmt.Sprintf("%T %+v", tt.want, tt.want) {
			t.Errorf("apiLibdnsRecord(%+v) = %T %+v, want %T %+v", tt.rr, got, got, tt.want, tt.want)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// checkZoneRun checks one provider call against the fake zone: no error,
// the records it returned, the API requests the zone logged and the zone's
// records afterwards.
func checkZoneRun(t *testing.T, zone *fakeZone, out []libdns.Record, err error, wantOut, wantLog, wantState []string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(out); !slices.Equal(got, wantOut) {
		t.Errorf("returned\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantOut, "\n"))
	}
	if got := zone.requests(); !slices.Equal(got, wantLog) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantLog, "\n"))
	}
	if got := zone.state(); !slices.Equal(got, wantState) {
		t.Errorf("zone after\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantState, "\n"))
	}
}
