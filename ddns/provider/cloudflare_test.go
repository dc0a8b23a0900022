package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

const cfTestToken = "cf-test-token-Sn3lZJTBX6kkg7Od"

// cfFake is an in-memory Cloudflare API v4 for one zone, example.net with
// ID 023e105f4ecef8ad9ca31a8372d0c353. It records every request.
type cfFake struct {
	t *testing.T

	mu     sync.Mutex
	recs   []cloudflareRecord
	nextID int
	reqs   []cfRequest
	// fail, when set, may answer a request instead of the fake.
	fail func(n int, r *http.Request) (status int, body string, ok bool)
}

const cfZoneID = "023e105f4ecef8ad9ca31a8372d0c353"

type cfRequest struct {
	method, path, query, auth, ctype string
	body                             map[string]any
}

// String is "METHOD path?query", the query sorted by key.
func (r cfRequest) String() string {
	s := r.method + " " + r.path
	if r.query != "" {
		s += "?" + r.query
	}
	return s
}

func newCFFake(t *testing.T, recs ...cloudflareRecord) (*cfFake, *httptest.Server) {
	f := &cfFake{t: t}
	for _, r := range recs {
		f.add(r)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /zones", f.listZones)
	mux.HandleFunc("GET /zones/{zone}/dns_records", f.listRecords)
	mux.HandleFunc("POST /zones/{zone}/dns_records", f.createRecord)
	mux.HandleFunc("PUT /zones/{zone}/dns_records/{id}", f.putRecord)
	mux.HandleFunc("DELETE /zones/{zone}/dns_records/{id}", f.deleteRecord)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := cfRequest{method: r.Method, path: r.URL.Path, query: r.URL.Query().Encode(), auth: r.Header.Get("Authorization"), ctype: r.Header.Get("Content-Type")}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req.body); err != nil {
				t.Errorf("%s: body %q is not JSON: %v", req, body, err)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		n := len(f.reqs)
		fail := f.fail
		f.mu.Unlock()
		if fail != nil {
			if status, body, ok := fail(n, r); ok {
				w.WriteHeader(status)
				io.WriteString(w, body)
				return
			}
		}
		if req.auth != "Bearer "+cfTestToken {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"success":false,"errors":[{"code":6003,"message":"Invalid request headers"}],"messages":[],"result":null}`)
			return
		}
		if z := r.PathValue("zone"); z != "" && z != cfZoneID {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"success":false,"errors":[{"code":7003,"message":"Could not route to /zones/`+z+`, perhaps your object identifier is invalid?"}],"messages":[],"result":null}`)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *cfFake) add(r cloudflareRecord) cloudflareRecord {
	f.nextID++
	r.ID = fmt.Sprintf("rec%029d", f.nextID)
	f.recs = append(f.recs, r)
	return r
}

func (f *cfFake) reply(w http.ResponseWriter, result any, info *cloudflareResultInfo) {
	env := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		env["result_info"] = info
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(env)
}

func (f *cfFake) listZones(w http.ResponseWriter, r *http.Request) {
	var zones []map[string]any
	if r.URL.Query().Get("name") == "example.net" {
		zones = append(zones, map[string]any{"id": cfZoneID, "name": "example.net", "status": "active"})
	}
	f.reply(w, zones, &cloudflareResultInfo{Page: 1, PerPage: 20, Count: len(zones), TotalCount: len(zones), TotalPages: 1})
}

func (f *cfFake) listRecords(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if page < 1 || perPage < 5 {
		f.t.Errorf("list: page=%q per_page=%q", q.Get("page"), q.Get("per_page"))
		page, perPage = 1, 100
	}
	f.mu.Lock()
	var match []cloudflareRecord
	for _, rec := range f.recs {
		if (q.Get("name.exact") == "" || strings.EqualFold(q.Get("name.exact"), rec.Name)) && (q.Get("type") == "" || q.Get("type") == rec.Type) {
			match = append(match, rec)
		}
	}
	f.mu.Unlock()
	total := len(match)
	from, to := min((page-1)*perPage, total), min(page*perPage, total)
	f.reply(w, match[from:to], &cloudflareResultInfo{Page: page, PerPage: perPage, Count: to - from, TotalCount: total, TotalPages: (total + perPage - 1) / perPage})
}

func (f *cfFake) decode(r *http.Request) (cloudflareRecord, bool) {
	var rec cloudflareRecord
	if err := json.NewDecoder(r.Body).Decode(&rec); err != nil || rec.Type == "" || rec.Name == "" || rec.Content == "" || rec.TTL == 0 {
		f.t.Errorf("%s %s: bad record body: %v %+v", r.Method, r.URL.Path, err, rec)
		return rec, false
	}
	return rec, true
}

func (f *cfFake) createRecord(w http.ResponseWriter, r *http.Request) {
	rec, ok := f.decode(r)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	for _, h := range f.recs {
		if h.Name == rec.Name && h.Type == rec.Type && h.Content == rec.Content {
			f.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"success":false,"errors":[{"code":81058,"message":"An identical record already exists."}],"messages":[],"result":null}`)
			return
		}
	}
	rec = f.add(rec)
	f.mu.Unlock()
	f.reply(w, rec, nil)
}

func (f *cfFake) putRecord(w http.ResponseWriter, r *http.Request) {
	rec, ok := f.decode(r)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, h := range f.recs {
		if h.ID == r.PathValue("id") {
			rec.ID = h.ID
			f.recs[i] = rec
			f.reply(w, rec, nil)
			return
		}
	}
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, `{"success":false,"errors":[{"code":81044,"message":"Record does not exist."}],"messages":[],"result":null}`)
}

func (f *cfFake) deleteRecord(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, h := range f.recs {
		if h.ID == r.PathValue("id") {
			f.recs = slices.Delete(f.recs, i, i+1)
			f.reply(w, map[string]string{"id": h.ID}, nil)
			return
		}
	}
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, `{"success":false,"errors":[{"code":81044,"message":"Record does not exist."}],"messages":[],"result":null}`)
}

// requests returns the requests so far as "METHOD path?query" and forgets them.
func (f *cfFake) requests() []cfRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

// state returns the zone's records as sorted "name type content ttl" lines.
func (f *cfFake) state() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, r := range f.recs {
		s = append(s, fmt.Sprintf("%s %s %s %d", r.Name, r.Type, r.Content, r.TTL))
	}
	slices.Sort(s)
	return s
}

func newTestCloudflare(t *testing.T, srv *httptest.Server, zoneID string) *cloudflare {
	t.Helper()
	p, err := New("cloudflare", Credentials{"CLOUDFLARE_DNS_API_TOKEN": cfTestToken, "CLOUDFLARE_ZONE_ID": zoneID})
	if err != nil {
		t.Fatal(err)
	}
	c := p.(*cloudflare)
	if c.endpoint != cloudflareEndpoint {
		t.Errorf("endpoint = %q, want %q", c.endpoint, cloudflareEndpoint)
	}
	c.endpoint = srv.URL
	c.api.backoff = time.Millisecond
	return c
}

func cfRec(name, typ, content string, ttl int) cloudflareRecord {
	return cloudflareRecord{Name: name, Type: typ, Content: content, TTL: ttl}
}

func addr(name, ip string, ttl time.Duration) libdns.Address {
	return libdns.Address{Name: name, IP: netip.MustParseAddr(ip), TTL: ttl}
}

// TestCloudflareRequests checks each operation's requests, as the API
// reference describes them, and the zone they leave behind.
func TestCloudflareRequests(t *testing.T) {
	const list = "GET /zones/" + cfZoneID + "/dns_records?"
	const records = "/zones/" + cfZoneID + "/dns_records"
	tests := []struct {
		name   string
		zoneID string // CLOUDFLARE_ZONE_ID
		zone   string
		have   []cloudflareRecord
		op     func(context.Context, *cloudflare, string) ([]libdns.Record, error)
		want   []libdns.Record // returned
		reqs   []string
		bodies map[int]string // request index → JSON body
		after  []string       // the zone's records afterwards
	}{{
		name: "append A looks the zone up",
		zone: "example.net.",
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.AppendRecords(ctx, zone, []libdns.Record{addr("home", "192.0.2.1", 300*time.Second)})
		},
		want:   []libdns.Record{addr("home", "192.0.2.1", 300*time.Second)},
		reqs:   []string{"GET /zones?name=example.net", "POST " + records},
		bodies: map[int]string{1: `{"type":"A","name":"home.example.net","content":"192.0.2.1","ttl":300,"proxied":false}`},
		after:  []string{"home.example.net A 192.0.2.1 300"},
	}, {
		name:   "append TXT at the apex with the zone ID set; TTL 0 is automatic",
		zoneID: cfZoneID,
		zone:   "example.net",
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.AppendRecords(ctx, zone, []libdns.Record{libdns.TXT{Name: "@", Text: `v=x "q" \b`}})
		},
		want:   []libdns.Record{libdns.TXT{Name: "@", Text: `v=x "q" \b`}},
		reqs:   []string{"POST " + records},
		bodies: map[int]string{0: `{"type":"TXT","name":"example.net","content":"\"v=x \\\"q\\\" \\\\b\"","ttl":1,"proxied":false}`},
		after:  []string{`example.net TXT "v=x \"q\" \\b" 1`},
	}, {
		name:   "append AAAA with a short TTL raised to 60",
		zoneID: cfZoneID,
		zone:   "example.net.",
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.AppendRecords(ctx, zone, []libdns.Record{addr("home", "2001:db8::1", 5*time.Second)})
		},
		want:   []libdns.Record{addr("home", "2001:db8::1", 60*time.Second)},
		reqs:   []string{"POST " + records},
		bodies: map[int]string{0: `{"type":"AAAA","name":"home.example.net","content":"2001:db8::1","ttl":60,"proxied":false}`},
		after:  []string{"home.example.net AAAA 2001:db8::1 60"},
	}, {
		name:   "get pages through the records",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: func() []cloudflareRecord {
			var rs []cloudflareRecord
			for i := range 150 {
				rs = append(rs, cfRec(fmt.Sprintf("h%d.example.net", i), "A", fmt.Sprintf("192.0.2.%d", i), 300))
			}
			return rs
		}(),
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			recs, err := c.GetRecords(ctx, zone)
			if len(recs) != 150 {
				return nil, fmt.Errorf("got %d records, want 150", len(recs))
			}
			return recs[149:], err
		},
		want: []libdns.Record{addr("h149", "192.0.2.149", 300*time.Second)},
		reqs: []string{list + "page=1&per_page=100", list + "page=2&per_page=100"},
	}, {
		name:   "get converts types and names",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: []cloudflareRecord{
			cfRec("example.net", "TXT", `"part one" "part two"`, 1),
			cfRec("www.example.net", "CNAME", "home.example.net", 300),
			{Name: "example.net", Type: "MX", Content: "mail.example.net", TTL: 300, Priority: new(uint16(10))},
			cfRec("example.net", "CAA", `0 issue "letsencrypt.org"`, 300),
		},
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.GetRecords(ctx, zone)
		},
		want: []libdns.Record{
			libdns.TXT{Name: "@", Text: "part onepart two"},
			libdns.CNAME{Name: "www", TTL: 300 * time.Second, Target: "home.example.net"},
			libdns.MX{Name: "@", TTL: 300 * time.Second, Preference: 10, Target: "mail.example.net"},
			libdns.RR{Name: "@", TTL: 300 * time.Second, Type: "CAA", Data: `0 issue "letsencrypt.org"`},
		},
		reqs: []string{list + "page=1&per_page=100"},
	}, {
		name:   "set keeps a matching record, updates another in place, leaves other types alone",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: []cloudflareRecord{
			cfRec("home.example.net", "A", "192.0.2.1", 300),
			cfRec("home.example.net", "A", "192.0.2.2", 300),
			cfRec("home.example.net", "AAAA", "2001:db8::1", 300),
			cfRec("home.example.net", "TXT", `"keep"`, 300),
		},
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.SetRecords(ctx, zone, []libdns.Record{addr("home", "192.0.2.2", 300*time.Second), addr("home", "192.0.2.3", 300*time.Second)})
		},
		want: []libdns.Record{addr("home", "192.0.2.2", 300*time.Second), addr("home", "192.0.2.3", 300*time.Second)},
		reqs: []string{
			list + "name.exact=home.example.net&page=1&per_page=100&type=A",
			"PUT " + records + "/rec00000000000000000000000000001",
		},
		bodies: map[int]string{1: `{"type":"A","name":"home.example.net","content":"192.0.2.3","ttl":300,"proxied":false}`},
		after: []string{
			"home.example.net A 192.0.2.2 300",
			"home.example.net A 192.0.2.3 300",
			"home.example.net AAAA 2001:db8::1 300",
			`home.example.net TXT "keep" 300`,
		},
	}, {
		name:   "set creates missing records and deletes extras",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: []cloudflareRecord{
			cfRec("home.example.net", "A", "192.0.2.1", 300),
			cfRec("home.example.net", "A", "192.0.2.2", 300),
			cfRec("home.example.net", "A", "192.0.2.3", 120),
		},
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.SetRecords(ctx, zone, []libdns.Record{
				addr("home", "192.0.2.3", 300*time.Second),
				addr("new", "2001:db8::2", 0),
			})
		},
		want: []libdns.Record{addr("home", "192.0.2.3", 300*time.Second), addr("new", "2001:db8::2", 0)},
		reqs: []string{
			list + "name.exact=home.example.net&page=1&per_page=100&type=A",
			"PUT " + records + "/rec00000000000000000000000000003", // TTL 120 → 300
			"DELETE " + records + "/rec00000000000000000000000000001",
			"DELETE " + records + "/rec00000000000000000000000000002",
			list + "name.exact=new.example.net&page=1&per_page=100&type=AAAA",
			"POST " + records,
		},
		bodies: map[int]string{
			1: `{"type":"A","name":"home.example.net","content":"192.0.2.3","ttl":300,"proxied":false}`,
			5: `{"type":"AAAA","name":"new.example.net","content":"2001:db8::2","ttl":1,"proxied":false}`,
		},
		after: []string{"home.example.net A 192.0.2.3 300", "new.example.net AAAA 2001:db8::2 1"},
	}, {
		name:   "delete by name and type",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: []cloudflareRecord{
			cfRec("_acme-challenge.home.example.net", "TXT", `"a"`, 60),
			cfRec("_acme-challenge.home.example.net", "TXT", `"b"`, 60),
			cfRec("_acme-challenge.home.example.net", "A", "192.0.2.1", 60),
		},
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.DeleteRecords(ctx, zone, []libdns.Record{libdns.RR{Name: "_acme-challenge.home", Type: "TXT"}})
		},
		want: []libdns.Record{libdns.TXT{Name: "_acme-challenge.home", TTL: time.Minute, Text: "a"}, libdns.TXT{Name: "_acme-challenge.home", TTL: time.Minute, Text: "b"}},
		reqs: []string{
			list + "name.exact=_acme-challenge.home.example.net&page=1&per_page=100&type=TXT",
			"DELETE " + records + "/rec00000000000000000000000000001",
			"DELETE " + records + "/rec00000000000000000000000000002",
		},
		after: []string{"_acme-challenge.home.example.net A 192.0.2.1 60"},
	}, {
		name:   "delete an exact value; a wrong TTL or value matches nothing",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: []cloudflareRecord{
			cfRec("_acme-challenge.example.net", "TXT", `"token-1"`, 60),
			cfRec("_acme-challenge.example.net", "TXT", `"token-2"`, 60),
		},
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.DeleteRecords(ctx, zone, []libdns.Record{
				libdns.TXT{Name: "_acme-challenge", Text: "token-2"},
				libdns.TXT{Name: "_acme-challenge", Text: "token-1", TTL: time.Hour},
				libdns.TXT{Name: "_acme-challenge", Text: "token-3"},
			})
		},
		want: []libdns.Record{libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "token-2"}},
		reqs: []string{
			list + "name.exact=_acme-challenge.example.net&page=1&per_page=100&type=TXT",
			"DELETE " + records + "/rec00000000000000000000000000002",
			list + "name.exact=_acme-challenge.example.net&page=1&per_page=100&type=TXT",
			list + "name.exact=_acme-challenge.example.net&page=1&per_page=100&type=TXT",
		},
		after: []string{`_acme-challenge.example.net TXT "token-1" 60`},
	}, {
		name:   "delete every type of a name",
		zoneID: cfZoneID,
		zone:   "example.net.",
		have: []cloudflareRecord{
			cfRec("home.example.net", "A", "192.0.2.1", 300),
			cfRec("home.example.net", "AAAA", "2001:db8::1", 300),
			cfRec("other.example.net", "A", "192.0.2.9", 300),
		},
		op: func(ctx context.Context, c *cloudflare, zone string) ([]libdns.Record, error) {
			return c.DeleteRecords(ctx, zone, []libdns.Record{libdns.RR{Name: "home"}})
		},
		want: []libdns.Record{addr("home", "192.0.2.1", 300*time.Second), addr("home", "2001:db8::1", 300*time.Second)},
		reqs: []string{
			list + "name.exact=home.example.net&page=1&per_page=100",
			"DELETE " + records + "/rec00000000000000000000000000001",
			"DELETE " + records + "/rec00000000000000000000000000002",
		},
		after: []string{"other.example.net A 192.0.2.9 300"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newCFFake(t, tt.have...)
			c := newTestCloudflare(t, srv, tt.zoneID)
			got, err := tt.op(t.Context(), c, tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			if !equalRecords(got, tt.want) {
				t.Errorf("returned\n  %v\nwant\n  %v", got, tt.want)
			}
			reqs := f.requests()
			var gotReqs []string
			for i, r := range reqs {
				gotReqs = append(gotReqs, r.String())
				if r.auth != "Bearer "+cfTestToken {
					t.Errorf("request %d %s: Authorization = %q", i, r, r.auth)
				}
				want, ok := tt.bodies[i]
				switch {
				case ok:
					var w map[string]any
					if err := json.Unmarshal([]byte(want), &w); err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(r.body) != fmt.Sprint(w) {
						t.Errorf("request %d %s: body\n  %v\nwant\n  %v", i, r, r.body, w)
					}
					if r.ctype != "application/json" {
						t.Errorf("request %d %s: Content-Type = %q", i, r, r.ctype)
					}
				case r.body != nil && r.method != http.MethodPut && r.method != http.MethodPost:
					t.Errorf("request %d %s has a body: %v", i, r, r.body)
				}
			}
			if !slices.Equal(gotReqs, tt.reqs) {
				t.Errorf("requests\n  %s\nwant\n  %s", strings.Join(gotReqs, "\n  "), strings.Join(tt.reqs, "\n  "))
			}
			if tt.after != nil {
				if got := f.state(); !slices.Equal(got, tt.after) {
					t.Errorf("zone afterwards\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.after, "\n  "))
				}
			}
		})
	}
}

// equalRecords compares records by their RR form and Go type.
func equalRecords(a, b []libdns.Record) bool {
	return slices.EqualFunc(a, b, func(x, y libdns.Record) bool {
		return x.RR() == y.RR() && fmt.Sprintf("%T", x) == fmt.Sprintf("%T", y)
	})
}

func TestCloudflareZoneLookupIsCached(t *testing.T) {
	f, srv := newCFFake(t)
	c := newTestCloudflare(t, srv, "")
	for range 2 {
		if _, err := c.GetRecords(t.Context(), "Example.NET."); err != nil {
			t.Fatal(err)
		}
	}
	var lookups int
	for _, r := range f.requests() {
		if r.path == "/zones" {
			lookups++
		}
	}
	if lookups != 1 {
		t.Errorf("%d zone lookups, want 1", lookups)
	}
	_, err := c.GetRecords(t.Context(), "example.org.")
	if err == nil || !strings.Contains(err.Error(), "example.org") || !strings.Contains(err.Error(), "CLOUDFLARE_ZONE_ID") {
		t.Errorf("unknown zone: err = %v, want one naming the zone and CLOUDFLARE_ZONE_ID", err)
	}
}

func TestCloudflareErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode string
		wantMsg  string
		wantReqs int
	}{
		{"authentication error", http.StatusForbidden, `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`, "10000", "Authentication error", 1},
		{"error echoing the token", http.StatusBadRequest, `{"success":false,"errors":[{"code":6111,"message":"Invalid format for Authorization header: Bearer ` + cfTestToken + `"}]}`, "6111", "Invalid format for Authorization header: Bearer [token]", 1},
		{"not JSON", http.StatusForbidden, `<html>forbidden</html>`, "", "", 1},
		{"server error, retried", http.StatusServiceUnavailable, `{"success":false,"errors":[{"code":10013,"message":"Service unavailable"}]}`, "10013", "Service unavailable", 3},
		{"success false on 200", http.StatusOK, `{"success":false,"errors":[{"code":1004,"message":"DNS Validation Error"}],"result":null}`, "1004", "DNS Validation Error", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newCFFake(t)
			f.fail = func(int, *http.Request) (int, string, bool) { return tt.status, tt.body, true }
			c := newTestCloudflare(t, srv, cfZoneID)
			_, err := c.AppendRecords(t.Context(), "example.net.", []libdns.Record{addr("home", "192.0.2.1", 0)})
			if err == nil {
				t.Fatal("no error")
			}
			serr, ok := errors.AsType[*StatusError](err)
			if !ok {
				t.Fatalf("err = %v (%T), want a *StatusError", err, err)
			}
			if serr.Provider != "cloudflare" || serr.Op != "CreateDNSRecord" || serr.Status != tt.status || serr.Code != tt.wantCode || serr.Message != tt.wantMsg {
				t.Errorf("StatusError = %+v, want cloudflare CreateDNSRecord %d %q %q", *serr, tt.status, tt.wantCode, tt.wantMsg)
			}
			for _, want := range []string{"cloudflare", "CreateDNSRecord", tt.wantCode, tt.wantMsg, "home.example.net"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), cfTestToken) {
				t.Errorf("error %q shows the token", err)
			}
			if n := len(f.requests()); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
		})
	}
}

func TestCloudflareRetries(t *testing.T) {
	tests := []struct {
		name   string
		status int
	}{
		{"rate limited", http.StatusTooManyRequests},
		{"server error", http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newCFFake(t)
			f.fail = func(n int, r *http.Request) (int, string, bool) {
				if n == 1 {
					return tt.status, `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}]}`, true
				}
				return 0, "", false
			}
			c := newTestCloudflare(t, srv, "")
			got, err := c.SetRecords(t.Context(), "example.net", []libdns.Record{addr("home", "192.0.2.7", 0)})
			if err != nil {
				t.Fatal(err)
			}
			if !equalRecords(got, []libdns.Record{addr("home", "192.0.2.7", 0)}) {
				t.Errorf("SetRecords = %v", got)
			}
			var reqs []string
			for _, r := range f.requests() {
				reqs = append(reqs, r.String())
			}
			if len(reqs) != 4 || reqs[0] != reqs[1] || reqs[0] != "GET /zones?name=example.net" {
				t.Errorf("requests %q, want the zone lookup twice, then list and create", reqs)
			}
		})
	}
}

// TestCloudflareConcurrentSet runs SetRecords for the same name at once:
// afterwards the name has exactly one of the addresses.
func TestCloudflareConcurrentSet(t *testing.T) {
	f, srv := newCFFake(t)
	c := newTestCloudflare(t, srv, cfZoneID)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := c.SetRecords(t.Context(), "example.net.", []libdns.Record{addr("home", fmt.Sprintf("192.0.2.%d", i+1), 0)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if s := f.state(); len(s) != 1 {
		t.Errorf("zone afterwards: %q, want one A record", s)
	}
}

func TestCloudflareCredentials(t *testing.T) {
	tests := []struct {
		creds   Credentials
		wantErr string
	}{
		{Credentials{"CLOUDFLARE_DNS_API_TOKEN": "abc"}, ""},
		{Credentials{"CLOUDFLARE_DNS_API_TOKEN": " abc\n", "CLOUDFLARE_ZONE_ID": cfZoneID}, ""},
		{Credentials{"CLOUDFLARE_DNS_API_TOKEN": "a b"}, "CLOUDFLARE_DNS_API_TOKEN"},
		{Credentials{"CLOUDFLARE_DNS_API_TOKEN": "abc", "CLOUDFLARE_ZONE_ID": "../zones"}, "CLOUDFLARE_ZONE_ID"},
	}
	for _, tt := range tests {
		_, err := New("cloudflare", tt.creds)
		if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("New(%v) = %v, want error %q", tt.creds, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "a b") {
			t.Errorf("error %q shows the token", err)
		}
	}
}

func TestCloudflareConversions(t *testing.T) {
	ttls := []struct {
		in   time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 60}, {30 * time.Second, 60}, {60 * time.Second, 60}, {90*time.Second + time.Millisecond, 90}, {48 * time.Hour, 86400}}
	for _, tt := range ttls {
		if got := cloudflareTTL(tt.in); got != tt.want {
			t.Errorf("cloudflareTTL(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
	names := []struct{ fqdn, zone, rel string }{
		{"example.net", "example.net.", "@"},
		{"Home.Example.net", "example.net", "Home"},
		{"a.b.example.net.", "example.net.", "a.b"},
		{"notexample.net", "example.net.", "notexample.net."},
		{"example.org", "example.net.", "example.org."},
	}
	for _, tt := range names {
		if got := zoneRelName(tt.fqdn, tt.zone); got != tt.rel {
			t.Errorf("zoneRelName(%q, %q) = %q, want %q", tt.fqdn, tt.zone, got, tt.rel)
		}
	}
	long := strings.Repeat("x", 300)
	txts := []struct{ text, content string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{long, `"` + long[:255] + `" "` + long[255:] + `"`},
	}
	for _, tt := range txts {
		if got := cloudflareQuoteTXT(tt.text); got != tt.content {
			t.Errorf("cloudflareQuoteTXT(%q) = %q, want %q", tt.text, got, tt.content)
		}
		if got := cloudflareUnquoteTXT(tt.content); got != tt.text {
			t.Errorf("cloudflareUnquoteTXT(%q) = %q, want %q", tt.content, got, tt.text)
		}
	}
	for _, raw := range []string{`unquoted text`, `"unterminated`, `"a" b`, `"\`} {
		if got := cloudflareUnquoteTXT(raw); got != raw {
			t.Errorf("cloudflareUnquoteTXT(%q) = %q, want it unchanged", raw, got)
		}
	}
	if got := cloudflareUnquoteTXT(`"caf\195\169"`); got != "café" {
		t.Errorf(`cloudflareUnquoteTXT("caf\195\169") = %q, want "café"`, got)
	}
	bad := []libdns.RR{
		{Name: "home", Type: "A", Data: "2001:db8::1"},
		{Name: "home", Type: "AAAA", Data: "192.0.2.1"},
		{Name: "home", Type: "A", Data: "nonsense"},
		{Name: "", Type: "A", Data: "192.0.2.1"},
		{Name: "home", Type: "TXT"},
		{Name: "home", Data: "x"},
	}
	for _, rr := range bad {
		if _, err := cloudflareRecordFor(rr, "example.net."); err == nil || !strings.Contains(err.Error(), "example.net") {
			t.Errorf("cloudflareRecordFor(%+v) = %v, want an error naming the zone", rr, err)
		}
	}
}

// FuzzCloudflareResponse feeds arbitrary reply bodies through the reply
// parsing and record conversion: they must never panic.
func FuzzCloudflareResponse(f *testing.F) {
	seeds := []string{
		`{"success":true,"errors":[],"messages":[],"result":[{"id":"372e67954025e0ba6aaa6d586b9e0b59","type":"A","name":"home.example.net","content":"192.0.2.1","proxied":false,"ttl":1}],"result_info":{"page":1,"per_page":100,"count":1,"total_count":1,"total_pages":1}}`,
		`{"success":true,"result":[{"type":"TXT","name":"example.net","content":"\"a\\\"b\" \"c\\065\"","ttl":120},{"type":"MX","name":"example.net","content":"mx.example.net","priority":10,"ttl":300}]}`,
		`{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`,
		`{"success":false,"errors":[{"code":"x","message":"` + strings.Repeat("m", 400) + `"}]}`,
		`{"success":true,"result":{"id":"abc","type":"AAAA","name":"h.example.net","content":"2001:db8::1","ttl":60}}`,
		`{"success":true,"result":[{"id":"023e105f4ecef8ad9ca31a8372d0c353","name":"example.net"}]}`,
		`{"result":[{"type":"SRV","name":"_x._tcp.example.net","content":"1 2 3 t","ttl":-5}]}`,
		`{"result":{"type":"A","content":"::0"}}`, // found by fuzzing: was converted to AAAA
		`null`, `[]`, `{"errors":[{}]}`, `"`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := parseCloudflareReply(body)
		if err != nil {
			return
		}
		code, msg := env.firstError(cfTestToken)
		if len(code) > 16 || strings.Contains(msg, cfTestToken) {
			t.Errorf("firstError = %q, %q", code, msg)
		}
		var recs []cloudflareRecord
		if json.Unmarshal(env.Result, &recs) != nil {
			var one cloudflareRecord
			if json.Unmarshal(env.Result, &one) != nil {
				return
			}
			recs = []cloudflareRecord{one}
		}
		for _, r := range recs {
			rec := r.libdns("example.net.")
			rr := rec.RR()
			if rr.Type != r.Type {
				t.Errorf("record %+v converted to type %q", r, rr.Type)
			}
			// What we read must be writable back or refused with an error.
			if w, err := cloudflareRecordFor(rr, "example.net."); err == nil && w.Type == "TXT" {
				if got := cloudflareUnquoteTXT(w.Content); got != rr.Data {
					t.Errorf("TXT %q: quoted %q, unquoted back %q", rr.Data, w.Content, got)
				}
			}
		}
	})
}
