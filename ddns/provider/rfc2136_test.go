package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

const (
	testKeyName = "homenet-key."
	testSecret  = "c2VjcmV0LWtleS1mb3ItaG9tZW5ldC10ZXN0cy0wMTIzNDU2Nzg5" // base64
	testZone    = "example.net."
)

// dnsFake is a primary nameserver for one zone, in memory: it answers
// queries and AXFR, and applies RFC 2136 updates (without prerequisites),
// all only when signed with a TSIG key it knows. Its replies are signed.
type dnsFake struct {
	allowTransfer bool

	mu  sync.Mutex
	soa dns.RR
	rrs []dns.RR
}

func newDNSFake(t *testing.T, secrets map[string]string, rrs ...string) (*dnsFake, string) {
	t.Helper()
	z := &dnsFake{allowTransfer: true, soa: mustRR(t, testZone+" 3600 IN SOA ns.example.net. admin.example.net. 1 3600 600 86400 60")}
	for _, s := range rrs {
		z.rrs = append(z.rrs, mustRR(t, s))
	}
	return z, startDNSServer(t, &dns.Server{TsigSecret: secrets, Handler: z})
}

// startDNSServer serves srv over TCP on 127.0.0.1 and returns its address.
func startDNSServer(t *testing.T, srv *dns.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	// The default accepts only queries and notifies.
	srv.MsgAcceptFunc = func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return rr
}

func (z *dnsFake) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	tsig := r.IsTsig()
	if tsig == nil {
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m)
		return
	}
	m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
	if err := w.TsigStatus(); err != nil {
		m.Rcode = dns.RcodeNotAuth
		m.IsTsig().Error = dns.RcodeBadSig
		if errors.Is(err, dns.ErrSecret) {
			m.IsTsig().Error = dns.RcodeBadKey
		}
		w.WriteMsg(m)
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	q := r.Question[0]
	switch {
	case r.Opcode == dns.OpcodeUpdate:
		m.Rcode = z.update(q.Name, r.Ns)
	case q.Qtype == dns.TypeAXFR:
		if !z.allowTransfer {
			m.Rcode = dns.RcodeRefused
			break
		}
		m.Answer = append([]dns.RR{z.soa}, z.rrs...)
		m.Answer = append(m.Answer, z.soa)
	default:
		found := false
		for _, rr := range append([]dns.RR{z.soa}, z.rrs...) {
			h := rr.Header()
			if strings.EqualFold(h.Name, q.Name) {
				found = true
				if q.Qtype == dns.TypeANY || q.Qtype == h.Rrtype {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		if !found {
			m.Rcode = dns.RcodeNameError
		}
	}
	w.WriteMsg(m)
}

// update applies an update section as RFC 2136 section 3.4.2 says.
func (z *dnsFake) update(zone string, ns []dns.RR) int {
	if !strings.EqualFold(zone, testZone) {
		return dns.RcodeNotAuth
	}
	for _, rr := range ns {
		if !dns.IsSubDomain(testZone, rr.Header().Name) {
			return dns.RcodeNotZone
		}
	}
	for _, rr := range ns {
		h := rr.Header()
		switch h.Class {
		case dns.ClassINET:
			i := slices.IndexFunc(z.rrs, func(r dns.RR) bool { return dns.IsDuplicate(r, rr) })
			if i >= 0 {
				z.rrs[i] = rr
			} else {
				z.rrs = append(z.rrs, rr)
			}
		case dns.ClassANY:
			z.rrs = slices.DeleteFunc(z.rrs, func(r dns.RR) bool {
				return strings.EqualFold(r.Header().Name, h.Name) && (h.Rrtype == dns.TypeANY || h.Rrtype == r.Header().Rrtype)
			})
		case dns.ClassNONE:
			del := dns.Copy(rr)
			del.Header().Class = dns.ClassINET
			z.rrs = slices.DeleteFunc(z.rrs, func(r dns.RR) bool { return dns.IsDuplicate(r, del) })
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

func newTestRFC2136(t *testing.T, server string, creds Credentials) *rfc2136 {
	t.Helper()
	c := Credentials{"RFC2136_NAMESERVER": server, "RFC2136_TSIG_KEY": "homenet-key", "RFC2136_TSIG_SECRET": testSecret}
	for k, v := range creds {
		c[k] = v
	}
	p, err := New("rfc2136", c)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*rfc2136)
}

// zoneLines returns GetRecords as sorted "name type data ttl" lines,
// without the SOA.
func zoneLines(t *testing.T, p libdns.RecordGetter, zone string) []string {
	t.Helper()
	recs, err := p.GetRecords(t.Context(), zone)
	if err != nil {
		t.Fatal(err)
	}
	return recordLines(recs, "SOA", "NS")
}

func recordLines(recs []libdns.Record, skip ...string) []string {
	var s []string
	for _, rec := range recs {
		rr := rec.RR()
		if !slices.Contains(skip, rr.Type) {
			s = append(s, fmt.Sprintf("%s %s %s %v %T", rr.Name, rr.Type, rr.Data, rr.TTL, rec))
		}
	}
	slices.Sort(s)
	return s
}

// rfc2136Steps is a sequence of operations on a zone with the wanted
// results; exerciseRFC2136 runs it against the fake and against bind.
var rfc2136Steps = []struct {
	name string
	op   string // set, append, delete
	recs []libdns.Record
	want []string // returned records, sorted
	zone []string // GetRecords afterwards, without SOA and NS
}{{
	name: "set addresses",
	op:   "set",
	recs: []libdns.Record{addr("home", "192.0.2.1", 120*time.Second), addr("home", "2001:db8::1", 120*time.Second)},
	want: []string{"home A 192.0.2.1 2m0s libdns.Address", "home AAAA 2001:db8::1 2m0s libdns.Address"},
	zone: []string{"home A 192.0.2.1 2m0s libdns.Address", "home AAAA 2001:db8::1 2m0s libdns.Address"},
}, {
	name: "set replaces the RRset, and only it",
	op:   "set",
	recs: []libdns.Record{addr("home", "192.0.2.2", 0), addr("home", "192.0.2.3", 0)},
	want: []string{"home A 192.0.2.2 5m0s libdns.Address", "home A 192.0.2.3 5m0s libdns.Address"},
	zone: []string{"home A 192.0.2.2 5m0s libdns.Address", "home A 192.0.2.3 5m0s libdns.Address", "home AAAA 2001:db8::1 2m0s libdns.Address"},
}, {
	name: "append challenge TXT records",
	op:   "append",
	recs: []libdns.Record{
		libdns.TXT{Name: "_acme-challenge.home", TTL: time.Minute, Text: "token-1"},
		libdns.TXT{Name: "_acme-challenge.home", TTL: time.Minute, Text: `token "2" \ ` + strings.Repeat("x", 300)},
	},
	want: []string{"_acme-challenge.home TXT token \"2\" \\ " + strings.Repeat("x", 300) + " 1m0s libdns.TXT", "_acme-challenge.home TXT token-1 1m0s libdns.TXT"},
	zone: []string{
		"_acme-challenge.home TXT token \"2\" \\ " + strings.Repeat("x", 300) + " 1m0s libdns.TXT", "_acme-challenge.home TXT token-1 1m0s libdns.TXT",
		"home A 192.0.2.2 5m0s libdns.Address", "home A 192.0.2.3 5m0s libdns.Address", "home AAAA 2001:db8::1 2m0s libdns.Address",
	},
}, {
	name: "delete one TXT by value; a wrong TTL or value deletes nothing",
	op:   "delete",
	recs: []libdns.Record{
		libdns.TXT{Name: "_acme-challenge.home", Text: "token-1"},
		libdns.TXT{Name: "_acme-challenge.home", Text: "token-3"},
		libdns.RR{Name: "_acme-challenge.home", Type: "TXT", TTL: time.Hour},
	},
	want: []string{"_acme-challenge.home TXT token-1 1m0s libdns.TXT"},
	zone: []string{
		"_acme-challenge.home TXT token \"2\" \\ " + strings.Repeat("x", 300) + " 1m0s libdns.TXT",
		"home A 192.0.2.2 5m0s libdns.Address", "home A 192.0.2.3 5m0s libdns.Address", "home AAAA 2001:db8::1 2m0s libdns.Address",
	},
}, {
	name: "delete by name and type",
	op:   "delete",
	recs: []libdns.Record{libdns.RR{Name: "home", Type: "A"}},
	want: []string{"home A 192.0.2.2 5m0s libdns.Address", "home A 192.0.2.3 5m0s libdns.Address"},
	zone: []string{
		"_acme-challenge.home TXT token \"2\" \\ " + strings.Repeat("x", 300) + " 1m0s libdns.TXT",
		"home AAAA 2001:db8::1 2m0s libdns.Address",
	},
}, {
	name: "delete by name only",
	op:   "delete",
	recs: []libdns.Record{libdns.RR{Name: "home"}, libdns.RR{Name: "_acme-challenge.home"}, libdns.RR{Name: "absent"}},
	want: []string{"_acme-challenge.home TXT token \"2\" \\ " + strings.Repeat("x", 300) + " 1m0s libdns.TXT", "home AAAA 2001:db8::1 2m0s libdns.Address"},
	zone: nil,
}, {
	name: "set at the apex, other types",
	op:   "set",
	recs: []libdns.Record{
		libdns.TXT{Name: "@", TTL: time.Hour, Text: "v=spf1 -all"},
		libdns.CNAME{Name: "www", TTL: time.Hour, Target: "home.example.net."},
		libdns.MX{Name: "@", TTL: time.Hour, Preference: 10, Target: "mx.example.org."},
	},
	want: []string{"@ MX 10 mx.example.org. 1h0m0s libdns.MX", "@ TXT v=spf1 -all 1h0m0s libdns.TXT", "www CNAME home.example.net. 1h0m0s libdns.CNAME"},
	zone: []string{"@ MX 10 mx.example.org. 1h0m0s libdns.MX", "@ TXT v=spf1 -all 1h0m0s libdns.TXT", "www CNAME home.example.net. 1h0m0s libdns.CNAME"},
}}

func exerciseRFC2136(t *testing.T, p *rfc2136, zone string) {
	for _, step := range rfc2136Steps {
		var got []libdns.Record
		var err error
		switch step.op {
		case "set":
			got, err = p.SetRecords(t.Context(), zone, step.recs)
		case "append":
			got, err = p.AppendRecords(t.Context(), zone, step.recs)
		case "delete":
			got, err = p.DeleteRecords(t.Context(), zone, step.recs)
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if g := recordLines(got); !slices.Equal(g, step.want) {
			t.Errorf("%s: returned\n  %s\nwant\n  %s", step.name, strings.Join(g, "\n  "), strings.Join(step.want, "\n  "))
		}
		if g := zoneLines(t, p, zone); !slices.Equal(g, step.zone) {
			t.Fatalf("%s: zone afterwards\n  %s\nwant\n  %s", step.name, strings.Join(g, "\n  "), strings.Join(step.zone, "\n  "))
		}
	}
}

func TestRFC2136(t *testing.T) {
	_, server := newDNSFake(t, map[string]string{testKeyName: testSecret})
	exerciseRFC2136(t, newTestRFC2136(t, server, nil), "example.net")
}

func TestRFC2136Refusals(t *testing.T) {
	z, server := newDNSFake(t, map[string]string{testKeyName: testSecret, "other-key.": testSecret}, "home.example.net. 60 IN A 192.0.2.1")
	z.allowTransfer = false
	wrongSecret := Credentials{"RFC2136_TSIG_SECRET": "d3Jvbmctc2VjcmV0"}
	tests := []struct {
		name  string
		creds Credentials
		op    func(*rfc2136) error
		want  []string
	}{{
		name:  "wrong secret on update",
		creds: wrongSecret,
		op: func(p *rfc2136) error {
			_, err := p.SetRecords(t.Context(), testZone, []libdns.Record{addr("home", "192.0.2.9", 0)})
			return err
		},
		want: []string{"rfc2136", "update", testZone, server, "NOTAUTH", "BADSIG", "RFC2136_TSIG_SECRET"},
	}, {
		name:  "wrong secret on delete's query",
		creds: wrongSecret,
		op: func(p *rfc2136) error {
			_, err := p.DeleteRecords(t.Context(), testZone, []libdns.Record{libdns.RR{Name: "home"}})
			return err
		},
		want: []string{"query", testZone, server, "NOTAUTH", "BADSIG"},
	}, {
		name:  "unknown key",
		creds: Credentials{"RFC2136_TSIG_KEY": "nobody"},
		op: func(p *rfc2136) error {
			_, err := p.AppendRecords(t.Context(), testZone, []libdns.Record{addr("home", "192.0.2.9", 0)})
			return err
		},
		want: []string{"update", server, "NOTAUTH", "BADKEY", "nobody", "RFC2136_TSIG_KEY"},
	}, {
		name:  "update outside the zone",
		creds: nil,
		op: func(p *rfc2136) error {
			_, err := p.AppendRecords(t.Context(), "example.org.", []libdns.Record{addr("home", "192.0.2.9", 0)})
			return err
		},
		want: []string{"update", "example.org.", server, "NOTAUTH"},
	}, {
		name:  "transfer refused",
		creds: nil,
		op: func(p *rfc2136) error {
			_, err := p.GetRecords(t.Context(), testZone)
			return err
		},
		want: []string{"transfer", testZone, server, "REFUSED", "allow-transfer { key homenet-key; }"},
	}, {
		name:  "name outside the zone",
		creds: nil,
		op: func(p *rfc2136) error {
			_, err := p.SetRecords(t.Context(), testZone, []libdns.Record{addr("home.example.org.", "192.0.2.9", 0)})
			return err
		},
		want: []string{"home.example.org.", "not inside zone", testZone},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(newTestRFC2136(t, server, tt.creds))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "d3Jvbmctc2VjcmV0") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.rrs) != 1 || z.rrs[0].String() != "home.example.net.\t60\tIN\tA\t192.0.2.1" {
		t.Errorf("zone changed: %v", z.rrs)
	}
}

// TestRFC2136UnsignedReply checks that a reply without TSIG, as a spoofer
// would send, is not believed.
func TestRFC2136UnsignedReply(t *testing.T) {
	server := startDNSServer(t, &dns.Server{Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})})
	p := newTestRFC2136(t, server, nil)
	_, err := p.AppendRecords(t.Context(), testZone, []libdns.Record{addr2("home", "192.0.2.9")})
	if err == nil || !strings.Contains(err.Error(), "not signed") || !strings.Contains(err.Error(), server) {
		t.Errorf("err = %v, want one saying the reply from %s is not signed", err, server)
	}
}

func addr2(name, ip string) libdns.Record { return addr(name, ip, 0) }

// TestRFC2136Silent checks that a nameserver that accepts the connection
// but never answers gives an error naming it, after the timeout or when
// the context is cancelled.
func TestRFC2136Silent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	server := ln.Addr().String()

	tests := []struct {
		name    string
		timeout time.Duration
		cancel  time.Duration
		op      func(context.Context, *rfc2136) error
		want    string
	}{
		{"update timeout", 200 * time.Millisecond, 0, func(ctx context.Context, p *rfc2136) error {
			_, err := p.SetRecords(ctx, testZone, []libdns.Record{addr2("home", "192.0.2.9")})
			return err
		}, "timeout"},
		{"transfer timeout", 200 * time.Millisecond, 0, func(ctx context.Context, p *rfc2136) error {
			_, err := p.GetRecords(ctx, testZone)
			return err
		}, "timeout"},
		{"update cancelled", time.Minute, 200 * time.Millisecond, func(ctx context.Context, p *rfc2136) error {
			_, err := p.AppendRecords(ctx, testZone, []libdns.Record{addr2("home", "192.0.2.9")})
			return err
		}, "context canceled"},
		{"transfer cancelled", time.Minute, 200 * time.Millisecond, func(ctx context.Context, p *rfc2136) error {
			_, err := p.GetRecords(ctx, testZone)
			return err
		}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestRFC2136(t, server, nil)
			p.timeout = tt.timeout
			ctx := t.Context()
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tt.cancel, cancel)
			}
			start := time.Now()
			err := tt.op(ctx, p)
			if err == nil || !strings.Contains(err.Error(), server) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s and saying %q", err, server, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestRFC2136Credentials(t *testing.T) {
	tests := []struct {
		key, value string
		wantServer string // when valid
		wantAlg    string
		wantErr    bool
	}{
		{"RFC2136_NAMESERVER", "192.0.2.53", "192.0.2.53:53", dns.HmacSHA256, false},
		{"RFC2136_NAMESERVER", "ns1.example.net:5353", "ns1.example.net:5353", dns.HmacSHA256, false},
		{"RFC2136_NAMESERVER", "[2001:db8::53]:5353", "[2001:db8::53]:5353", dns.HmacSHA256, false},
		{"RFC2136_NAMESERVER", "[2001:db8::53]", "[2001:db8::53]:53", dns.HmacSHA256, false},
		{"RFC2136_NAMESERVER", "2001:db8::53", "[2001:db8::53]:53", dns.HmacSHA256, false},
		{"RFC2136_NAMESERVER", "ns1.example.net:0", "", "", true},
		{"RFC2136_NAMESERVER", "ns1.example.net:dns", "", "", true},
		{"RFC2136_NAMESERVER", "[ns1]:53", "", "", true},
		{"RFC2136_NAMESERVER", "http://ns1/", "", "", true},
		{"RFC2136_TSIG_ALGORITHM", "hmac-sha256.", "127.0.0.1:53", dns.HmacSHA256, false},
		{"RFC2136_TSIG_ALGORITHM", "HMAC-SHA512", "127.0.0.1:53", dns.HmacSHA512, false},
		{"RFC2136_TSIG_ALGORITHM", "hmac-sha1", "127.0.0.1:53", dns.HmacSHA1, false},
		{"RFC2136_TSIG_ALGORITHM", "hmac-sha384", "127.0.0.1:53", dns.HmacSHA384, false},
		{"RFC2136_TSIG_ALGORITHM", "hmac-md5", "", "", true},
		{"RFC2136_TSIG_ALGORITHM", "sha256", "", "", true},
		{"RFC2136_TSIG_SECRET", "not base64!", "", "", true},
		{"RFC2136_TSIG_KEY", "bad key name with spaces..", "", "", true},
	}
	for _, tt := range tests {
		creds := Credentials{"RFC2136_NAMESERVER": "127.0.0.1", "RFC2136_TSIG_KEY": "homenet-key", "RFC2136_TSIG_SECRET": testSecret}
		creds[tt.key] = tt.value
		p, err := New("rfc2136", creds)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("%s=%q: err = %v, want one naming %s", tt.key, tt.value, err, tt.key)
			}
			if err != nil && tt.key == "RFC2136_TSIG_SECRET" && strings.Contains(err.Error(), tt.value) {
				t.Errorf("error %q shows the secret", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s=%q: %v", tt.key, tt.value, err)
			continue
		}
		r := p.(*rfc2136)
		if r.server != tt.wantServer || r.alg != tt.wantAlg || r.keyName != testKeyName {
			t.Errorf("%s=%q: server %q alg %q key %q, want %q %q %q", tt.key, tt.value, r.server, r.alg, r.keyName, tt.wantServer, tt.wantAlg, testKeyName)
		}
	}
}

func TestRFC2136TXTEscapes(t *testing.T) {
	for _, text := range []string{"", "plain", `q"uote \back`, "tab\tnul\x00del\x7f", "café", strings.Repeat("y", 600)} {
		txt := rfc2136SplitTXT(text)
		for _, s := range txt {
			if n := len(rfc2136JoinTXT([]string{s})); n > 255 {
				t.Errorf("%q: a string of %d bytes", text, n)
			}
		}
		// Through the wire format and back, as a server would see it.
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: txt}
		buf := make([]byte, 4096)
		off, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		back, _, err := dns.UnpackRR(buf[:off], 0)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if got := rfc2136JoinTXT(back.(*dns.TXT).Txt); got != text {
			t.Errorf("%q came back as %q", text, got)
		}
	}
}

// TestRFC2136Bind runs the steps against a real bind9 nameserver when
// named is installed, to prove interoperability.
func TestRFC2136Bind(t *testing.T) {
	named, err := exec.LookPath("named")
	if err != nil {
		if named, err = exec.LookPath("/usr/sbin/named"); err != nil {
			t.Skip("named is not installed")
		}
	}
	if testing.Short() {
		t.Skip("starts bind9; skipped in -short mode")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o777) // named may drop privileges
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	allow-transfer { none; };
};
controls { };
key "homenet-key" { algorithm hmac-sha256; secret "%[3]s"; };
zone "example.net" {
	type primary;
	file "%[1]s/example.net.zone";
	update-policy { grant homenet-key zonesub ANY; };
	allow-transfer { key homenet-key; };
};
`, dir, port, testSecret)
	zone := "$TTL 3600\n@ SOA ns.example.net. admin.example.net. 1 3600 600 86400 60\n@ NS ns.example.org.\n"
	for name, data := range map[string]string{"named.conf": conf, "example.net.zone": zone} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	cmd := exec.Command(named, "-g", "-c", filepath.Join(dir, "named.conf"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("named output:\n%s", out.String())
		}
	})
	server := fmt.Sprintf("127.0.0.1:%d", port)
	p := newTestRFC2136(t, server, nil)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := p.GetRecords(ctx, testZone)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	exerciseRFC2136(t, p, testZone)

	wrong := newTestRFC2136(t, server, Credentials{"RFC2136_TSIG_SECRET": "d3Jvbmctc2VjcmV0LWQzSnZibWN0YzJWamNtVjA="})
	_, err = wrong.AppendRecords(t.Context(), testZone, []libdns.Record{addr2("evil", "192.0.2.66")})
	if err == nil || !strings.Contains(err.Error(), "NOTAUTH") || !strings.Contains(err.Error(), "BADSIG") {
		t.Errorf("wrong secret: err = %v, want NOTAUTH (TSIG BADSIG)", err)
	}
	other := newTestRFC2136(t, server, Credentials{"RFC2136_TSIG_KEY": "other-key"})
	_, err = other.AppendRecords(t.Context(), testZone, []libdns.Record{addr2("evil", "192.0.2.66")})
	if err == nil || !strings.Contains(err.Error(), "BADKEY") {
		t.Errorf("unknown key: err = %v, want NOTAUTH (TSIG BADKEY)", err)
	}
	_, err = p.AppendRecords(t.Context(), "example.org.", []libdns.Record{addr2("home", "192.0.2.66")})
	if err == nil || !strings.Contains(err.Error(), "example.org.") {
		t.Errorf("zone bind does not serve: err = %v", err)
	} else {
		t.Logf("zone bind does not serve: %v", err)
	}
}
