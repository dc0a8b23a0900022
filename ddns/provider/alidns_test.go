package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

const (
	aliTestKeyID  = "testid"
	aliTestSecret = "testsecret"
	aliTestToken  = "sts-token-value"
)

// aliCommon are the parameters every Alidns request has; the fake leaves
// them out of its log.
var aliCommon = []string{"AccessKeyId", "Action", "Format", "SecurityToken", "Signature", "SignatureMethod", "SignatureNonce", "SignatureVersion", "Timestamp", "Version"}

// aliFake is an Alidns endpoint over a fakeZone for "example.net". It
// checks every request's signature as the service would, and answers like
// the service does, refusals included.
type aliFake struct {
	*fakeZone
	t        *testing.T
	pageSize int                                   // of DescribeDomainRecords replies
	fail     func(n int) (status int, body string) // when set and status != 0, the reply to the nth request
	n        int
	nonces   map[string]bool
	rawQuery []string
}

func (f *aliFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	refuse := func(status int, code, msg string) {
		reply(status, map[string]string{"RequestId": "req-1", "HostId": "alidns.aliyuncs.com", "Code": code, "Message": msg})
	}

	q := r.URL.Query()
	params := map[string]string{}
	for k, v := range q {
		if len(v) != 1 {
			f.t.Errorf("parameter %s given %d times", k, len(v))
		}
		if k != "Signature" {
			params[k] = v[0]
		}
	}
	f.rawQuery = append(f.rawQuery, r.URL.RawQuery)
	if r.Method != http.MethodGet || r.URL.Path != "/" {
		f.t.Errorf("request %s %s, want GET /", r.Method, r.URL.Path)
	}
	if want := aliSignature(http.MethodGet, aliCanonicalQuery(params), aliTestSecret); q.Get("Signature") != want {
		f.t.Errorf("%s: Signature = %q, want %q", params["Action"], q.Get("Signature"), want)
		refuse(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
		return
	}
	if want := aliCanonicalQuery(params) + "&Signature=" + aliEscape(q.Get("Signature")); r.URL.RawQuery != want {
		f.t.Errorf("query string\n%s\nis not the canonical one\n%s", r.URL.RawQuery, want)
	}
	for k, v := range map[string]string{"Format": "JSON", "Version": "2015-01-09", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "AccessKeyId": aliTestKeyID} {
		if params[k] != v {
			f.t.Errorf("%s = %q, want %q", k, params[k], v)
		}
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", params["Timestamp"]); err != nil {
		f.t.Errorf("Timestamp %q: %v", params["Timestamp"], err)
	}
	if n := params["SignatureNonce"]; n == "" || f.nonces[n] {
		f.t.Errorf("SignatureNonce %q is empty or used before", n)
	}
	f.nonces[params["SignatureNonce"]] = true

	f.n++
	if f.fail != nil {
		if status, body := f.fail(f.n); status != 0 {
			w.WriteHeader(status)
			w.Write([]byte(body))
			return
		}
	}
	var line []string
	for k, v := range params {
		if !slices.Contains(aliCommon, k) {
			line = append(line, k+"="+v)
		}
	}
	slices.Sort(line)
	f.log = append(f.log, params["Action"]+" "+strings.Join(line, " "))

	if a := params["Action"]; a != "DeleteDomainRecord" && a != "UpdateDomainRecord" && params["DomainName"] != "example.net" {
		refuse(400, "IncorrectDomainUser", "The domain name does not belong to you.")
		return
	}
	id, _ := strconv.Atoi(params["RecordId"])
	ttl, _ := strconv.Atoi(params["TTL"])
	prio, _ := strconv.Atoi(params["Priority"])
	rec := fakeRecord{name: params["RR"], typ: params["Type"], value: params["Value"], ttl: ttl, prio: prio}
	switch params["Action"] {
	case "DescribeDomainRecords":
		var match []fakeRecord
		for _, r := range f.recs {
			if strings.Contains(strings.ToLower(r.name), strings.ToLower(params["RRKeyWord"])) &&
				(params["TypeKeyWord"] == "" || strings.EqualFold(r.typ, params["TypeKeyWord"])) {
				match = append(match, r)
			}
		}
		page, _ := strconv.Atoi(params["PageNumber"])
		size := f.pageSize
		if size == 0 {
			size, _ = strconv.Atoi(params["PageSize"])
		}
		from, to := min((page-1)*size, len(match)), min(page*size, len(match))
		var out []map[string]any
		for _, r := range match[from:to] {
			m := map[string]any{"DomainName": "example.net", "RecordId": strconv.Itoa(r.id), "RR": r.name, "Type": r.typ,
				"Value": r.value, "TTL": r.ttl, "Line": "default", "Status": "ENABLE", "Locked": false, "Weight": 1}
			if r.typ == "MX" {
				m["Priority"] = r.prio
			}
			out = append(out, m)
		}
		reply(200, map[string]any{"RequestId": "req-1", "TotalCount": len(match), "PageNumber": page, "PageSize": size,
			"DomainRecords": map[string]any{"Record": out}})
	case "AddDomainRecord":
		if slices.ContainsFunc(f.recs, func(r fakeRecord) bool { return r.name == rec.name && r.typ == rec.typ && r.value == rec.value }) {
			refuse(400, "DomainRecordDuplicate", "The DNS record already exists.")
			return
		}
		reply(200, map[string]string{"RequestId": "req-1", "RecordId": strconv.Itoa(f.add(rec))})
	case "UpdateDomainRecord":
		i := f.find(id)
		if i < 0 {
			refuse(400, "DomainRecordNotBelongToUser", "The DNS record does not belong to you.")
			return
		}
		rec.id = id
		if f.recs[i] == rec {
			refuse(400, "DomainRecordDuplicate", "The DNS record already exists.")
			return
		}
		f.recs[i] = rec
		reply(200, map[string]string{"RequestId": "req-1", "RecordId": strconv.Itoa(id)})
	case "DeleteDomainRecord":
		i := f.find(id)
		if i < 0 {
			refuse(400, "DomainRecordNotBelongToUser", "The DNS record does not belong to you.")
			return
		}
		f.recs = slices.Delete(f.recs, i, i+1)
		reply(200, map[string]string{"RequestId": "req-1", "RecordId": strconv.Itoa(id)})
	default:
		refuse(400, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
	}
}

// newAliTest returns an alidns provider talking to a fake endpoint over
// zone, with a millisecond back-off.
func newAliTest(t *testing.T, zone *fakeZone) (*recordProvider, *aliDNS, *aliFake) {
	t.Helper()
	f := &aliFake{fakeZone: zone, t: t, nonces: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a := newAliDNSAPI(Credentials{"ALICLOUD_ACCESS_KEY": aliTestKeyID, "ALICLOUD_SECRET_KEY": aliTestSecret})
	a.endpoint = srv.URL + "/"
	a.api.backoff = time.Millisecond
	var n atomic.Int64
	a.nonce = func() string { return fmt.Sprintf("nonce-%d", n.Add(1)) }
	return &recordProvider{name: "alidns", api: a}, a, f
}

// TestAliSignatureDocExample reproduces the signature example of Alibaba
// Cloud's RPC signature documentation ("API 签名机制 (示例)",
// https://developer.aliyun.com/ask/210168, the same example as the ECS
// "Request signatures" page https://www.alibabacloud.com/help/doc-detail/28139.htm):
// DescribeRegions with AccessKeyId testid and secret testsecret signs to
// CT9X0VtwR86fNWSnsc6v8YGOjuE=. The example spells the parameter
// "TimeStamp"; the pages print the string to sign with the "&" between
// parameters unencoded, but the signature given is that of the string
// with them encoded as %26, as the algorithm says.
func TestAliSignatureDocExample(t *testing.T) {
	params := map[string]string{
		"TimeStamp":        "2016-02-23T12:46:24Z",
		"Format":           "XML",
		"AccessKeyId":      "testid",
		"Action":           "DescribeRegions",
		"SignatureMethod":  "HMAC-SHA1",
		"SignatureNonce":   "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
		"Version":          "2014-05-26",
		"SignatureVersion": "1.0",
	}
	query := aliCanonicalQuery(params)
	if want := "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&TimeStamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26"; query != want {
		t.Errorf("canonicalized query string\n%s\nwant\n%s", query, want)
	}
	if got, want := aliStringToSign("GET", query), "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"; got != want {
		t.Errorf("StringToSign\n%s\nwant\n%s", got, want)
	}
	if got, want := aliSignature("GET", query, "testsecret"), "CT9X0VtwR86fNWSnsc6v8YGOjuE="; got != want {
		t.Errorf("Signature = %s, want %s", got, want)
	}
}

func TestAliEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abcXYZ019-_.~", "abcXYZ019-_.~"},
		{"a b", "a%20b"},
		{"*", "%2A"},
		{"+/=:", "%2B%2F%3D%3A"},
		{"默认", "%E9%BB%98%E8%AE%A4"},
		{"é", "%C3%A9"},
		{"\"&%", "%22%26%25"},
	}
	for _, tt := range tests {
		if got := aliEscape(tt.in); got != tt.want {
			t.Errorf("aliEscape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestAliDNSSignedRequest checks one whole request byte for byte, with a
// fixed clock and nonce and an STS token, sent to the real host name (the
// connection goes to the fake). The expected signature was computed
// independently of this package (Python hmac/hashlib over the documented
// string to sign).
func TestAliDNSSignedRequest(t *testing.T) {
	p, a, f := newAliTest(t, newFakeZone())
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a.endpoint = "http://alidns.aliyuncs.com/"
	a.api.client = clientDialing(srv)
	a.token = aliTestToken
	a.now = func() time.Time { return time.Date(2026, 1, 2, 11, 4, 5, 0, time.FixedZone("CST", 8*3600)) }
	a.nonce = func() string { return "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf" }

	_, err := p.AppendRecords(context.Background(), "example.net.", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge.home", Text: "token value"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "AccessKeyId=testid&Action=AddDomainRecord&DomainName=example.net&Format=JSON&RR=_acme-challenge.home" +
		"&SecurityToken=sts-token-value&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf" +
		"&SignatureVersion=1.0&TTL=600&Timestamp=2026-01-02T03%3A04%3A05Z&Type=TXT&Value=token%20value&Version=2015-01-09" +
		"&Signature=" + aliEscape(aliGoldenSignature)
	if len(f.rawQuery) != 1 || f.rawQuery[0] != want {
		t.Errorf("query strings sent:\n%s\nwant\n%s", strings.Join(f.rawQuery, "\n"), want)
	}
}

// aliGoldenSignature is the signature of the request in
// TestAliDNSSignedRequest, from Python:
//
//	base64(hmac.new(b"testsecret&", b"GET&%2F&" + quote(query, safe="-_.~"), sha1))
const aliGoldenSignature = "n1dHGBKmVqoFFOtOORcRCpSJDm4="

// clientDialing returns a client that connects to srv whatever host a
// request names, so a request can carry the real endpoint's host name.
func clientDialing(srv *httptest.Server) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}}
}

func TestAliDNSOperations(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		pageSize  int // of the fake's replies, when not what is asked for
		run       func(p *recordProvider) ([]libdns.Record, error)
		wantOut   []string
		wantLog   []string
		wantState []string // nil: baseZone unchanged
	}{
		{
			name:     "get all, three pages",
			pageSize: 2,
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.GetRecords(ctx, "example.net.")
			},
			wantOut: []string{
				"libdns.Address @ A 600 192.0.2.10",
				"libdns.Address home A 600 192.0.2.1",
				"libdns.Address home A 600 192.0.2.2",
				"libdns.TXT home TXT 600 old",
				"libdns.Address home A 600 192.0.2.4",
				"libdns.CNAME www CNAME 3600 example.net",
			},
			wantLog: []string{
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500",
				"DescribeDomainRecords DomainName=example.net PageNumber=2 PageSize=500",
				"DescribeDomainRecords DomainName=example.net PageNumber=3 PageSize=500",
			},
		},
		{
			name: "append A and MX, zone without trailing dot",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.AppendRecords(ctx, "example.net", []libdns.Record{
					libdns.Address{Name: "nas", IP: mustAddr("192.0.2.7")},
					libdns.MX{Name: "@", TTL: time.Hour, Preference: 10, Target: "mail.example.net"},
				})
			},
			wantOut: []string{"libdns.Address nas A 600 192.0.2.7", "libdns.MX @ MX 3600 10 mail.example.net"},
			wantLog: []string{
				"AddDomainRecord DomainName=example.net RR=nas TTL=600 Type=A Value=192.0.2.7",
				"AddDomainRecord DomainName=example.net Priority=10 RR=@ TTL=3600 Type=MX Value=mail.example.net",
			},
			wantState: []string{"@ A 600 192.0.2.10", "@ MX 3600 10 mail.example.net", "home A 600 192.0.2.1", "home A 600 192.0.2.2",
				"home A 600 192.0.2.4", "home TXT 600 old", "nas A 600 192.0.2.7", "www CNAME 3600 example.net"},
		},
		{
			name: "set: delete extras, create missing, update existing",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.SetRecords(ctx, "example.net.", []libdns.Record{
					libdns.Address{Name: "home", IP: mustAddr("192.0.2.2"), TTL: 10 * time.Minute},
					libdns.Address{Name: "home", IP: mustAddr("2001:db8::1")},
					libdns.TXT{Name: "home", Text: "new", TTL: time.Minute},
				})
			},
			wantOut: []string{"libdns.Address home A 600 192.0.2.2", "libdns.Address home AAAA 600 2001:db8::1", "libdns.TXT home TXT 60 new"},
			wantLog: []string{
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home TypeKeyWord=A",
				"DeleteDomainRecord RecordId=2",
				"DeleteDomainRecord RecordId=5",
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home TypeKeyWord=AAAA",
				"AddDomainRecord DomainName=example.net RR=home TTL=600 Type=AAAA Value=2001:db8::1",
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home TypeKeyWord=TXT",
				"UpdateDomainRecord Line=default RR=home RecordId=4 TTL=60 Type=TXT Value=new",
			},
			wantState: []string{"@ A 600 192.0.2.10", "home A 600 192.0.2.2", "home AAAA 600 2001:db8::1", "home TXT 60 new", "www CNAME 3600 example.net"},
		},
		{
			name: "set what is there changes nothing",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.SetRecords(ctx, "example.net.", []libdns.Record{libdns.Address{Name: "@", IP: mustAddr("192.0.2.10")}})
			},
			wantOut: []string{"libdns.Address @ A 600 192.0.2.10"},
			wantLog: []string{"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=@ TypeKeyWord=A"},
		},
		{
			name: "delete by name only",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, "example.net.", []libdns.Record{libdns.RR{Name: "home"}})
			},
			wantOut: []string{"libdns.Address home A 600 192.0.2.1", "libdns.Address home A 600 192.0.2.2", "libdns.TXT home TXT 600 old", "libdns.Address home A 600 192.0.2.4"},
			wantLog: []string{
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home",
				"DeleteDomainRecord RecordId=2",
				"DeleteDomainRecord RecordId=3",
				"DeleteDomainRecord RecordId=4",
				"DeleteDomainRecord RecordId=5",
			},
			wantState: []string{"@ A 600 192.0.2.10", "www CNAME 3600 example.net"},
		},
		{
			name: "delete exact, and absent records are ignored",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, "example.net.", []libdns.Record{
					libdns.Address{Name: "home", IP: mustAddr("192.0.2.4"), TTL: 10 * time.Minute},
					libdns.TXT{Name: "home", Text: "other"},
					libdns.Address{Name: "home", IP: mustAddr("192.0.2.1"), TTL: time.Minute}, // TTL differs
				})
			},
			wantOut: []string{"libdns.Address home A 600 192.0.2.4"},
			wantLog: []string{
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home TypeKeyWord=A",
				"DeleteDomainRecord RecordId=5",
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home TypeKeyWord=TXT",
				"DescribeDomainRecords DomainName=example.net PageNumber=1 PageSize=500 RRKeyWord=home TypeKeyWord=A",
			},
			wantState: []string{"@ A 600 192.0.2.10", "home A 600 192.0.2.1", "home A 600 192.0.2.2", "home TXT 600 old", "www CNAME 3600 example.net"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := baseZone()
			want := tt.wantState
			if want == nil {
				want = zone.state()
			}
			p, _, f := newAliTest(t, zone)
			f.pageSize = tt.pageSize
			out, err := tt.run(p)
			checkZoneRun(t, zone, out, err, tt.wantOut, tt.wantLog, want)
		})
	}
}

func TestAliDNSErrors(t *testing.T) {
	const badKey = `{"RequestId":"8E5A4D6C-0000","HostId":"alidns.aliyuncs.com","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found.","Recommend":"https://api.aliyun.com/troubleshoot"}`
	tests := []struct {
		name      string
		fail      func(n int) (int, string)
		wantErr   string // "" for success
		wantCode  string
		wantTries int
	}{
		{"bad access key", func(int) (int, string) { return 404, badKey },
			"alidns DescribeDomainRecords: HTTP 404 InvalidAccessKeyId.NotFound: Specified access key is not found.", "InvalidAccessKeyId.NotFound", 1},
		{"503 then success", func(n int) (int, string) {
			if n == 1 {
				return 503, `{"Code":"ServiceUnavailable","Message":"The request has failed due to a temporary failure of the server."}`
			}
			return 0, ""
		}, "", "", 2},
		{"throttled with 400 then success", func(n int) (int, string) {
			if n < 3 {
				return 400, `{"Code":"Throttling.User","Message":"Request was denied due to user flow control."}`
			}
			return 0, ""
		}, "", "", 3},
		{"500 every time", func(int) (int, string) { return 500, `<html>oops</html>` },
			"alidns DescribeDomainRecords: HTTP 500", "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, f := newAliTest(t, baseZone())
			f.fail = tt.fail
			_, err := p.GetRecords(context.Background(), "example.net.")
			if f.n != tt.wantTries {
				t.Errorf("%d requests, want %d", f.n, tt.wantTries)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("GetRecords: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "zone example.net") {
				t.Errorf("error %q does not name the zone", err)
			}
			var serr *StatusError
			if !errors.As(err, &serr) || serr.Provider != "alidns" || serr.Op != "DescribeDomainRecords" || serr.Code != tt.wantCode {
				t.Errorf("error %#v: want a *StatusError of alidns DescribeDomainRecords with code %q", serr, tt.wantCode)
			}
			if strings.Contains(err.Error(), aliTestSecret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestAliDNSNetworkErrorHidesQuery checks that the query string, with the
// AccessKeyId and the STS token, stays out of network errors.
func TestAliDNSNetworkErrorHidesQuery(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	a := newAliDNSAPI(Credentials{"ALICLOUD_ACCESS_KEY": "LTAIkeyid", "ALICLOUD_SECRET_KEY": "secret", "ALICLOUD_SECURITY_TOKEN": "tokentoken"})
	a.endpoint = srv.URL + "/"
	a.api.attempts = 1
	p := &recordProvider{name: "alidns", api: a}
	_, err := p.GetRecords(context.Background(), "example.net.")
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	for _, s := range []string{"LTAIkeyid", "tokentoken", "Signature"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows %s", err, s)
		}
	}
	if !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("error %q does not name the endpoint", err)
	}
}

func FuzzAliDNSResponse(f *testing.F) {
	f.Add([]byte(`{"RequestId":"536E9CAD","TotalCount":2,"PageNumber":1,"PageSize":20,"DomainRecords":{"Record":[` +
		`{"DomainName":"example.com","RecordId":"9999985","RR":"www","Type":"MX","Value":"mail1.hichina.com","Line":"default","Priority":5,"TTL":600,"Status":"Enable","Locked":false},` +
		`{"DomainName":"example.com","RecordId":"9999986","RR":"@","Type":"A","Value":"192.0.2.1","TTL":"600"}]}}`))
	f.Add([]byte(`{"TotalCount":"2","DomainRecords":{"Record":[{"RecordId":9999985,"RR":"_acme-challenge","Type":"TXT","Value":"x y","TTL":1e3}]}}`))
	f.Add([]byte(`{"RequestId":"X","HostId":"alidns.aliyuncs.com","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}`))
	f.Add([]byte(`{"DomainRecords":null}`))
	f.Add([]byte(`{"DomainRecords":{"Record":[null,{"TTL":null,"Priority":"x"}]}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		aliParseError(body)
		recs, _, err := aliParseList(body)
		if err != nil {
			return
		}
		for _, r := range recs {
			apiLibdnsRecord(r.RR)
			apiMatches(libdns.RR{Name: "www", Type: "A"}, r.RR)
		}
		apiPlanSet(recs, []libdns.RR{{Name: "www", Type: "A", Data: "192.0.2.1"}})
	})
}
