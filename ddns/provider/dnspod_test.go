package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

const (
	dnspodTestID  = "AKIDtestid"
	dnspodTestKey = "testkey"
)

// dnspodFake is a DNSPod API 3.0 endpoint over a fakeZone for
// "example.net". It checks every request's signature as the service
// would and answers like the service: HTTP 200, errors in the body.
type dnspodFake struct {
	*fakeZone
	t        *testing.T
	pageSize int                                   // of DescribeRecordList replies, when not the Limit asked for
	fail     func(n int) (status int, body string) // when set and status != 0, the reply to the nth request
	n        int
	sent     []*http.Request
	bodies   []string
}

func (f *dnspodFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(v map[string]any) {
		v["RequestId"] = "6ef60bec-0242-43af-bb20-270359fb54a7"
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"Response": v})
	}
	refuse := func(code, msg string) {
		reply(map[string]any{"Error": map[string]string{"Code": code, "Message": msg}})
	}

	body, _ := io.ReadAll(r.Body)
	f.sent = append(f.sent, r)
	f.bodies = append(f.bodies, string(body))
	action := r.Header.Get("X-TC-Action")
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.URL.RawQuery != "" {
		f.t.Errorf("request %s %s, want POST /", r.Method, r.URL)
	}
	for k, v := range map[string]string{"Content-Type": "application/json; charset=utf-8", "X-TC-Version": "2021-03-23"} {
		if r.Header.Get(k) != v {
			f.t.Errorf("%s: %s = %q, want %q", action, k, r.Header.Get(k), v)
		}
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		f.t.Errorf("%s: X-TC-Timestamp %q: %v", action, r.Header.Get("X-TC-Timestamp"), err)
	}
	if want := tc3Authorization(dnspodTestID, dnspodTestKey, "dnspod", r.Host, body, ts); r.Header.Get("Authorization") != want {
		f.t.Errorf("%s: Authorization = %q, want %q", action, r.Header.Get("Authorization"), want)
		refuse("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
		return
	}

	f.n++
	if f.fail != nil {
		if status, b := f.fail(f.n); status != 0 {
			w.WriteHeader(status)
			w.Write([]byte(b))
			return
		}
	}
	f.log = append(f.log, action+" "+string(body))

	var in struct {
		Domain, Subdomain, SubDomain, RecordType, RecordLine, Value string
		RecordId                                                    int
		Offset, Limit, TTL, MX                                      int
	}
	if err := json.Unmarshal(body, &in); err != nil {
		refuse("InvalidParameter", err.Error())
		return
	}
	if in.Domain != "example.net" {
		refuse("ResourceNotFound.NoDataOfDomain", "The domain does not exist.")
		return
	}
	rec := fakeRecord{name: in.SubDomain, typ: in.RecordType, value: in.Value, ttl: in.TTL, prio: in.MX}
	switch action {
	case "DescribeRecordList":
		var match []fakeRecord
		for _, r := range f.recs {
			if (in.Subdomain == "" || strings.EqualFold(r.name, in.Subdomain)) && (in.RecordType == "" || r.typ == in.RecordType) {
				match = append(match, r)
			}
		}
		if len(match) == 0 {
			refuse(dnspodNoRecords, "记录列表为空。")
			return
		}
		size := f.pageSize
		if size == 0 {
			size = in.Limit
		}
		var out []map[string]any
		for _, r := range match[min(in.Offset, len(match)):min(in.Offset+size, len(match))] {
			out = append(out, map[string]any{"RecordId": r.id, "Value": r.value, "Status": "ENABLE", "UpdatedOn": "2026-01-01 00:00:00",
				"Name": r.name, "Line": "默认", "LineId": "0", "Type": r.typ, "Weight": nil, "MonitorStatus": "", "Remark": "",
				"TTL": r.ttl, "MX": r.prio, "DefaultNS": false})
		}
		reply(map[string]any{"RecordCountInfo": map[string]int{"SubdomainCount": len(match), "ListCount": len(out), "TotalCount": len(match)}, "RecordList": out})
	case "CreateRecord":
		if in.RecordLine != "默认" {
			refuse("InvalidParameter.RecordLineInvalid", "记录线路错误。")
			return
		}
		if slices.ContainsFunc(f.recs, func(r fakeRecord) bool { return r.name == rec.name && r.typ == rec.typ && r.value == rec.value }) {
			refuse("InvalidParameter.DomainRecordExist", "记录已经存在，无需再次添加。")
			return
		}
		reply(map[string]any{"RecordId": f.add(rec)})
	case "ModifyRecord":
		i := f.find(in.RecordId)
		if i < 0 {
			refuse("InvalidParameter.RecordIdInvalid", "记录编号错误。")
			return
		}
		rec.id = in.RecordId
		f.recs[i] = rec
		reply(map[string]any{"RecordId": in.RecordId})
	case "DeleteRecord":
		i := f.find(in.RecordId)
		if i < 0 {
			refuse("InvalidParameter.RecordIdInvalid", "记录编号错误。")
			return
		}
		f.recs = slices.Delete(f.recs, i, i+1)
		reply(map[string]any{})
	default:
		refuse("InvalidAction", "The action does not exist.")
	}
}

// newDNSPodTest returns a dnspod provider talking to a fake endpoint over
// zone, with a millisecond back-off.
func newDNSPodTest(t *testing.T, zone *fakeZone) (*recordProvider, *dnsPod, *dnspodFake) {
	t.Helper()
	f := &dnspodFake{fakeZone: zone, t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	d := newDNSPodAPI(Credentials{"TENCENTCLOUD_SECRET_ID": dnspodTestID, "TENCENTCLOUD_SECRET_KEY": dnspodTestKey})
	d.endpoint = srv.URL + "/"
	d.api.backoff = time.Millisecond
	return &recordProvider{name: "dnspod", api: d}, d, f
}

// TestTC3DocExample reproduces the worked example of Tencent Cloud's
// "Signature v3" documentation (https://www.tencentcloud.com/document/api/1021/34193,
// in Chinese https://cloud.tencent.com/document/api/1427/56189 for
// DNSPod): a DescribeInstances POST to cvm.tencentcloudapi.com at
// 1551113065 (2019-02-25 UTC) with the example's masked SecretId and
// SecretKey, taken literally, asterisks and all.
func TestTC3DocExample(t *testing.T) {
	const (
		secretID  = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
		secretKey = "Gu5t9xGARNpq86cd98joQYCN3*******"
		host      = "cvm.tencentcloudapi.com"
		ts        = 1551113065
	)
	payload := []byte(`{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`)

	if got, want := tc3Hash(payload), "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"; got != want {
		t.Errorf("HashedRequestPayload = %s, want %s", got, want)
	}
	canonical := tc3CanonicalRequest(host, payload)
	wantCanonical := "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n" +
		"35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
	if canonical != wantCanonical {
		t.Errorf("CanonicalRequest\n%s\nwant\n%s", canonical, wantCanonical)
	}
	wantToSign := "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
	if got := tc3StringToSign(ts, "cvm", canonical); got != wantToSign {
		t.Errorf("StringToSign\n%s\nwant\n%s", got, wantToSign)
	}
	wantAuth := "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, " +
		"SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
	if got := tc3Authorization(secretID, secretKey, "cvm", host, payload, ts); got != wantAuth {
		t.Errorf("Authorization\n%s\nwant\n%s", got, wantAuth)
	}
}

// TestDNSPodSignedRequest checks one whole request, headers and body, with
// a fixed clock, sent to the real host name (the connection goes to the
// fake). The expected signature was computed independently of this
// package (Python hmac/hashlib following the documented steps).
func TestDNSPodSignedRequest(t *testing.T) {
	p, d, f := newDNSPodTest(t, newFakeZone())
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	d.endpoint = "http://dnspod.tencentcloudapi.com/"
	d.api.client = clientDialing(srv)
	d.now = func() time.Time { return time.Unix(1767323045, 0) } // 2026-01-02T03:04:05Z

	_, err := p.AppendRecords(context.Background(), "example.net.", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge.home", Text: "token value"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.sent) != 1 {
		t.Fatalf("%d requests, want 1", len(f.sent))
	}
	r := f.sent[0]
	want := map[string]string{
		"Host":           "dnspod.tencentcloudapi.com",
		"Content-Type":   "application/json; charset=utf-8",
		"X-TC-Action":    "CreateRecord",
		"X-TC-Timestamp": "1767323045",
		"X-TC-Version":   "2021-03-23",
		"Authorization": "TC3-HMAC-SHA256 Credential=AKIDtestid/2026-01-02/dnspod/tc3_request, SignedHeaders=content-type;host, " +
			"Signature=9e9eef9ccd28105b702785a886cc893413a1e31954a11afc7bcd6a2a8357cbc1",
	}
	for k, v := range want {
		got := r.Header.Get(k)
		if k == "Host" {
			got = r.Host
		}
		if got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	wantBody := `{"Domain":"example.net","SubDomain":"_acme-challenge.home","RecordType":"TXT","RecordLine":"默认","Value":"token value","TTL":600}`
	if f.bodies[0] != wantBody {
		t.Errorf("body\n%s\nwant\n%s", f.bodies[0], wantBody)
	}
}

func TestDNSPodOperations(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		zone      *fakeZone // nil: baseZone
		pageSize  int
		run       func(p *recordProvider) ([]libdns.Record, error)
		wantOut   []string
		wantLog   []string
		wantState []string // nil: unchanged
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
				`DescribeRecordList {"Domain":"example.net","Offset":0,"Limit":3000}`,
				`DescribeRecordList {"Domain":"example.net","Offset":2,"Limit":3000}`,
				`DescribeRecordList {"Domain":"example.net","Offset":4,"Limit":3000}`,
			},
		},
		{
			name: "get from an empty zone",
			zone: newFakeZone(),
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.GetRecords(ctx, "example.net")
			},
			wantLog: []string{`DescribeRecordList {"Domain":"example.net","Offset":0,"Limit":3000}`},
		},
		{
			name: "append AAAA and MX",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.AppendRecords(ctx, "example.net", []libdns.Record{
					libdns.Address{Name: "nas", IP: mustAddr("2001:db8::7"), TTL: 2 * time.Minute},
					libdns.MX{Name: "@", Preference: 10, Target: "mail.example.net."},
				})
			},
			wantOut: []string{"libdns.Address nas AAAA 120 2001:db8::7", "libdns.MX @ MX 600 10 mail.example.net."},
			wantLog: []string{
				`CreateRecord {"Domain":"example.net","SubDomain":"nas","RecordType":"AAAA","RecordLine":"默认","Value":"2001:db8::7","TTL":120}`,
				`CreateRecord {"Domain":"example.net","SubDomain":"@","RecordType":"MX","RecordLine":"默认","Value":"mail.example.net.","TTL":600,"MX":10}`,
			},
			wantState: []string{"@ A 600 192.0.2.10", "@ MX 600 10 mail.example.net.", "home A 600 192.0.2.1", "home A 600 192.0.2.2",
				"home A 600 192.0.2.4", "home TXT 600 old", "nas AAAA 120 2001:db8::7", "www CNAME 3600 example.net"},
		},
		{
			name: "set: delete extras, create missing, update existing",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.SetRecords(ctx, "example.net.", []libdns.Record{
					libdns.Address{Name: "home", IP: mustAddr("192.0.2.2")},
					libdns.Address{Name: "home", IP: mustAddr("2001:db8::1")},
					libdns.TXT{Name: "home", Text: "new", TTL: time.Minute},
				})
			},
			wantOut: []string{"libdns.Address home A 600 192.0.2.2", "libdns.Address home AAAA 600 2001:db8::1", "libdns.TXT home TXT 60 new"},
			wantLog: []string{
				`DescribeRecordList {"Domain":"example.net","Subdomain":"home","RecordType":"A","Offset":0,"Limit":3000}`,
				`DeleteRecord {"Domain":"example.net","RecordId":2}`,
				`DeleteRecord {"Domain":"example.net","RecordId":5}`,
				`DescribeRecordList {"Domain":"example.net","Subdomain":"home","RecordType":"AAAA","Offset":0,"Limit":3000}`,
				`CreateRecord {"Domain":"example.net","SubDomain":"home","RecordType":"AAAA","RecordLine":"默认","Value":"2001:db8::1","TTL":600}`,
				`DescribeRecordList {"Domain":"example.net","Subdomain":"home","RecordType":"TXT","Offset":0,"Limit":3000}`,
				`ModifyRecord {"Domain":"example.net","RecordId":4,"SubDomain":"home","RecordType":"TXT","RecordLine":"默认","Value":"new","TTL":60}`,
			},
			wantState: []string{"@ A 600 192.0.2.10", "home A 600 192.0.2.2", "home AAAA 600 2001:db8::1", "home TXT 60 new", "www CNAME 3600 example.net"},
		},
		{
			name: "delete any TXT of a name",
			run: func(p *recordProvider) ([]libdns.Record, error) {
				return p.DeleteRecords(ctx, "example.net.", []libdns.Record{libdns.RR{Name: "home", Type: "TXT"}, libdns.TXT{Name: "nothere", Text: "x"}})
			},
			wantOut: []string{"libdns.TXT home TXT 600 old"},
			wantLog: []string{
				`DescribeRecordList {"Domain":"example.net","Subdomain":"home","RecordType":"TXT","Offset":0,"Limit":3000}`,
				`DeleteRecord {"Domain":"example.net","RecordId":4}`,
				`DescribeRecordList {"Domain":"example.net","Subdomain":"nothere","RecordType":"TXT","Offset":0,"Limit":3000}`,
			},
			wantState: []string{"@ A 600 192.0.2.10", "home A 600 192.0.2.1", "home A 600 192.0.2.2", "home A 600 192.0.2.4", "www CNAME 3600 example.net"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := tt.zone
			if zone == nil {
				zone = baseZone()
			}
			want := tt.wantState
			if want == nil {
				want = zone.state()
			}
			p, _, f := newDNSPodTest(t, zone)
			f.pageSize = tt.pageSize
			out, err := tt.run(p)
			checkZoneRun(t, zone, out, err, tt.wantOut, tt.wantLog, want)
		})
	}
}

func TestDNSPodErrors(t *testing.T) {
	tcError := func(code, msg string) string {
		return `{"Response":{"Error":{"Code":"` + code + `","Message":"` + msg + `"},"RequestId":"ab4f1426-ea15-42ea-8183-dc1b44151166"}}`
	}
	tests := []struct {
		name      string
		fail      func(n int) (int, string)
		wantErr   string // "" for success
		wantCode  string
		wantTries int
	}{
		{"signature refused", func(int) (int, string) {
			return 200, tcError("AuthFailure.SignatureFailure", "The provided credentials could not be validated. Please check your signature is correct.")
		}, "dnspod DescribeRecordList: HTTP 200 AuthFailure.SignatureFailure: The provided credentials could not be validated.", "AuthFailure.SignatureFailure", 1},
		{"rate limited then success", func(n int) (int, string) {
			if n == 1 {
				return 200, tcError("RequestLimitExceeded", "Your current request times equals to `21` in a second, which exceeds the frequency limit `20` for a second. Please reduce the frequency of calls.")
			}
			return 0, ""
		}, "", "", 2},
		{"502 then success", func(n int) (int, string) {
			if n == 1 {
				return 502, "<html>Bad Gateway</html>"
			}
			return 0, ""
		}, "", "", 2},
		{"internal error every time", func(int) (int, string) { return 200, tcError("InternalError", "内部错误。") },
			"dnspod DescribeRecordList: HTTP 200 InternalError: 内部错误。", "InternalError", 3},
		{"429 every time", func(int) (int, string) { return 429, "" },
			"dnspod DescribeRecordList: HTTP 429", "", 3},
		{"reply is not JSON", func(int) (int, string) { return 200, "<html>captive portal</html>" },
			"dnspod DescribeRecordList: reading reply", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, f := newDNSPodTest(t, baseZone())
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
			if strings.Contains(err.Error(), dnspodTestKey) {
				t.Errorf("error %q shows the secret key", err)
			}
			var serr *StatusError
			if tt.wantCode != "" && (!errors.As(err, &serr) || serr.Provider != "dnspod" || serr.Op != "DescribeRecordList" || serr.Code != tt.wantCode) {
				t.Errorf("error %#v: want a *StatusError of dnspod DescribeRecordList with code %q", serr, tt.wantCode)
			}
		})
	}
}

func FuzzDNSPodResponse(f *testing.F) {
	f.Add([]byte(`{"Response":{"RecordCountInfo":{"SubdomainCount":2,"ListCount":2,"TotalCount":2},"RecordList":[` +
		`{"RecordId":556507778,"Value":"f1g1ns1.dnspod.net.","Status":"ENABLE","UpdatedOn":"2021-03-28 11:27:09","Name":"@","Line":"默认","LineId":"0","Type":"NS","Weight":null,"MonitorStatus":"","Remark":"","TTL":86400,"MX":0,"DefaultNS":true},` +
		`{"RecordId":556507779,"Value":"mail.example.net.","Name":"@","Line":"默认","Type":"MX","TTL":600,"MX":10}]` +
		`,"RequestId":"x"}}`))
	f.Add([]byte(`{"Response":{"Error":{"Code":"ResourceNotFound.NoDataOfRecord","Message":"记录列表为空。"},"RequestId":"x"}}`))
	f.Add([]byte(`{"Response":{"RecordId":162,"RequestId":"x"}}`))
	f.Add([]byte(`{"Response":{"RecordList":[{"RecordId":-1,"TTL":1e30}]}}`))
	f.Add([]byte(`{"Response":{"RecordList":[{"TTL":18446744073709551615,"Type":"A","Value":"::1"}]}}`))
	f.Add([]byte(`{"Response":null}`))
	f.Add([]byte(`{"Response":{"Error":null}}`))
	f.Add([]byte(`<html>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var reply dnspodListReply
		code, _, err := dnspodParse(body, &reply)
		if err != nil || code != "" {
			return
		}
		recs := dnspodRecords(reply)
		for _, r := range recs {
			apiLibdnsRecord(r.RR)
			apiMatches(libdns.RR{Name: "www", TTL: time.Minute}, r.RR)
		}
		apiPlanSet(recs, []libdns.RR{{Name: "www", Type: "AAAA", Data: "2001:db8::1"}})
		var created struct{ RecordId uint64 }
		dnspodParse(body, &created)
	})
}
