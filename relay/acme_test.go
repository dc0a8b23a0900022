package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
	"tailscale.com/derp/derpconst"
	"tailscale.com/types/key"
)

// The relay's DNS name in the ACME tests and its zone. The .test TLD is
// reserved (RFC 2606); pebble and certmagic resolve it through serveDNS.
const (
	acmeZone = "home.test."
	acmeHost = "relay.home.test"
)

// TestACMEWithPebble obtains a certificate from a local pebble ACME server
// over TLS-ALPN-01 on the DERP port, verifies the served chain against
// pebble's root, relays a packet with a client that trusts that root, and
// checks that restarts serve the stored certificate without ordering again,
// with the CA up and with it gone. Everything listens on 127.0.0.1.
func TestACMEWithPebble(t *testing.T) {
	if pebbleTLS.binary == "" {
		t.Skip("pebble not found in PATH; install it (Debian: apt-get install pebble) to run the ACME test")
	}
	logger := newTestLogger(t)

	// Pebble validates for real (PEBBLE_VA_ALWAYS_VALID=0): it resolves
	// the relay's name through our DNS server and dials the relay's TLS port.
	dnsAddr := serveDNS(t, map[string]netip.Addr{acmeHost + ".": netip.MustParseAddr("127.0.0.1")}, nil)
	relayPort := freePort(t)
	pb := startPebble(t, dnsAddr, relayPort)
	roots := pb.roots(t)

	stateDir := t.TempDir()
	a, b := key.NewNode(), key.NewNode()
	reg := newRegistry(a.Public(), b.Public())
	cfg := Config{
		Listen:        "127.0.0.1:" + strconv.Itoa(relayPort),
		Hostname:      acmeHost,
		StateDir:      stateDir,
		ACMEDirectory: pb.directory,
		ACMEEmail:     "hostmaster@example.org",
	}
	r := startRelay(t, logger, cfg, reg.admit)
	region := r.Region()
	node := region.Nodes[0]
	if node.CertName != "" || node.HostName != acmeHost || node.IPv4 != "" || node.IPv6 != "" {
		t.Fatalf("ACME region node = %+v, want HostName %q and no CertName/IPv4/IPv6", *node, acmeHost)
	}

	st := waitCert(t, r)
	if st.Mode != CertModeTLSALPN01 || !slices.Equal(st.Names, []string{acmeHost}) || st.Directory != pb.directory ||
		st.LastObtained.IsZero() || st.LastError != "" || st.Obtaining || st.Issuer == "" {
		t.Errorf("CertStatus = %+v, want mode %s for %s from %s, obtained, no error", st, CertModeTLSALPN01, acmeHost, pb.directory)
	}
	leaf := dialACME(t, relayPort, roots)
	if !slices.Equal(leaf.DNSNames, []string{acmeHost}) {
		t.Fatalf("certificate names %v, want [%s]", leaf.DNSNames, acmeHost)
	}
	if !leaf.NotAfter.Equal(st.NotAfter) {
		t.Errorf("CertStatus.NotAfter = %v, served certificate's = %v", st.NotAfter, leaf.NotAfter)
	}
	if entries, err := os.ReadDir(filepath.Join(stateDir, "certmagic")); err != nil || len(entries) == 0 {
		t.Errorf("certmagic storage %s/certmagic is empty (%v)", stateDir, err)
	}

	// Real DERP clients, trusting pebble's root, through the DNS name.
	// IPv4 is set only because the name is not in the system resolver.
	region.Nodes[0].IPv4, region.Nodes[0].IPv6 = "127.0.0.1", "none"
	tlsConf := &tls.Config{RootCAs: roots}
	ca, cb := newClient(t, logger, a, region), newClient(t, logger, b, region)
	ca.TLSConfig, cb.TLSConfig = tlsConf, tlsConf
	connectAdmitted(t, ca)
	connectAdmitted(t, cb)
	if err := ca.Send(b.Public(), []byte("over ACME")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if p := recvPacket(t, cb); string(p.Data) != "over ACME" {
		t.Fatalf("received %q, want %q", p.Data, "over ACME")
	}
	if n := pb.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}

	// Restarts serve the stored certificate and order nothing, whether the
	// CA is there (pebble counts what it issues) or gone (an order would
	// fail and show up as LastError).
	r.Close()
	cfg.Listen = "127.0.0.1:0"
	for _, caUp := range []bool{true, false} {
		if !caUp {
			pb.stop()
		}
		r := startRelay(t, logger, cfg, reg.admit)
		waitCert(t, r)
		again := dialACME(t, r.Region().Nodes[0].DERPPort, roots)
		if !again.Equal(leaf) {
			t.Errorf("CA up %v: after restart the relay serves serial %v, want the stored %v", caUp, again.SerialNumber, leaf.SerialNumber)
		}
		// certmagic decides whether to renew right after loading the
		// certificate; give a wrong decision time to show.
		time.Sleep(time.Second)
		if st := r.CertStatus(); st.Obtaining || st.LastError != "" || !st.LastObtained.IsZero() {
			t.Errorf("CA up %v: after restart CertStatus = %+v, want no order and no error", caUp, st)
		}
		if n := pb.issued(); n != 1 {
			t.Errorf("CA up %v: pebble issued %d certificates in all, want 1", caUp, n)
		}
		r.Close()
	}
}

// TestACMEDNS01WithPebble obtains a certificate over DNS-01: pebble reads the
// challenge TXT record from our DNS server, where a fake DNS provider put it,
// and validates neither TLS-ALPN-01 nor HTTP-01 on any port the relay uses.
func TestACMEDNS01WithPebble(t *testing.T) {
	if pebbleTLS.binary == "" {
		t.Skip("pebble not found in PATH; install it (Debian: apt-get install pebble) to run the ACME test")
	}
	logger := newTestLogger(t)
	provider := newMemDNS(nil)
	dnsAddr := serveDNS(t, nil, provider)
	pb := startPebble(t, dnsAddr, freePort(t)) // nothing listens on the TLS-ALPN-01 port
	roots := pb.roots(t)

	r := startRelay(t, logger, Config{
		Hostname:      acmeHost,
		ACMEDirectory: pb.directory,
		DNSProvider:   provider,
		DNSResolvers:  []string{dnsAddr},
	}, newRegistry().admit)
	st := waitCert(t, r)
	if st.Mode != CertModeDNS01 || !slices.Equal(st.Names, []string{acmeHost}) || st.NotAfter.IsZero() ||
		st.LastObtained.IsZero() || st.LastError != "" || !st.NextRetry.IsZero() || st.Obtaining {
		t.Errorf("CertStatus = %+v, want mode %s, a certificate, no error", st, CertModeDNS01)
	}
	leaf := dialACME(t, r.Region().Nodes[0].DERPPort, roots)
	if !slices.Equal(leaf.DNSNames, []string{acmeHost}) {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, acmeHost)
	}
	if n := pb.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
	// The challenge record was published once and is gone again.
	deadline := time.Now().Add(testTimeout)
	for {
		appended, deleted, left := provider.counts()
		if appended == 1 && deleted == 1 && left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DNS provider: %d TXT records appended, %d deleted, %d left; want 1, 1, 0", appended, deleted, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestACMEIPCertWithPebble obtains an IP-address certificate (RFC 8738)
// for 127.0.0.1 by HTTP-01, served by HTTPChallengeHandler on a listener of
// the caller's, as homenet's plain control listener does: the region then
// pins nothing, the served chain verifies for the address against pebble's
// root, and a restart with the CA gone serves the stored certificate.
func TestACMEIPCertWithPebble(t *testing.T) {
	if pebbleTLS.binary == "" {
		t.Skip("pebble not found in PATH; install it (Debian: apt-get install pebble) to run the ACME test")
	}
	logger := newTestLogger(t)
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer httpLn.Close()
	pb := startPebblePorts(t, serveDNS(t, nil, nil), freePort(t), httpLn.Addr().(*net.TCPAddr).Port)
	roots := pb.roots(t)

	stateDir := t.TempDir()
	cfg := Config{
		Hostname:          "127.0.0.1",
		StateDir:          stateDir,
		ACMEDirectory:     pb.directory,
		HTTPChallengeAddr: httpLn.Addr().String(),
	}
	r := startRelay(t, logger, cfg, newRegistry().admit)
	var served atomic.Int32
	go http.Serve(httpLn, r.HTTPChallengeHandler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		served.Add(1) // not a challenge: the caller's own handler
		http.NotFound(w, req)
	})))

	st := waitCert(t, r)
	if st.Mode != CertModeHTTP01 || !slices.Equal(st.Names, []string{"127.0.0.1"}) || st.LastError != "" {
		t.Errorf("CertStatus = %+v, want mode %s for 127.0.0.1 without error", st, CertModeHTTP01)
	}
	node := r.Region().Nodes[0]
	if node.CertName != "" || node.HostName != "127.0.0.1" || node.IPv4 != "127.0.0.1" {
		t.Errorf("region node %+v: want HostName and IPv4 127.0.0.1 and no CertName pin", *node)
	}
	leaf := dialIP(t, node.DERPPort, roots)
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || len(leaf.DNSNames) != 0 {
		t.Errorf("certificate for IPs %v and names %v, want IP 127.0.0.1 only", leaf.IPAddresses, leaf.DNSNames)
	}
	resp, err := http.Get("http://" + httpLn.Addr().String() + "/other")
	if err != nil || resp.StatusCode != http.StatusNotFound || served.Load() != 1 {
		t.Errorf("non-challenge request: %v %v, the caller's handler ran %d times; want its 404, once", resp, err, served.Load())
	}
	if n := pb.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}

	r.Close()
	pb.stop()
	r2 := startRelay(t, logger, cfg, newRegistry().admit)
	if st := waitCert(t, r2); !st.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("after a restart without the CA: NotAfter %v, want the stored certificate's %v", st.NotAfter, leaf.NotAfter)
	}
	dialIP(t, r2.Region().Nodes[0].DERPPort, roots)
}

// dialIP handshakes with the relay on port as a client of 127.0.0.1 that
// trusts roots, and returns the verified leaf.
func dialIP(t *testing.T, port int, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", addr, &tls.Config{ServerName: "127.0.0.1", RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS dial of %s verifying the address: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// TestACMEDNS01Failure checks a DNS provider that cannot publish: the relay
// starts anyway, reports the error and when certmagic retries, and refuses
// handshakes cleanly while it has no certificate.
func TestACMEDNS01Failure(t *testing.T) {
	if pebbleTLS.binary == "" {
		t.Skip("pebble not found in PATH; install it (Debian: apt-get install pebble) to run the ACME test")
	}
	logger := newTestLogger(t)
	provider := newMemDNS(errors.New("fake DNS API: zone is read-only"))
	dnsAddr := serveDNS(t, nil, provider)
	pb := startPebble(t, dnsAddr, freePort(t))
	pb.roots(t) // waits for pebble

	r := startRelay(t, logger, Config{
		Hostname:      acmeHost,
		ACMEDirectory: pb.directory,
		DNSProvider:   provider,
		DNSResolvers:  []string{dnsAddr},
	}, newRegistry().admit)
	var st CertStatus
	deadline := time.Now().Add(time.Minute)
	for st = r.CertStatus(); st.LastError == "" || st.Obtaining; st = r.CertStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("no ACME failure reported: CertStatus = %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(st.LastError, "zone is read-only") {
		t.Errorf("LastError = %q, want the provider's error", st.LastError)
	}
	if st.Mode != CertModeDNS01 || !st.NotAfter.IsZero() || st.LastErrorAt.IsZero() ||
		st.NextRetry.Sub(st.LastErrorAt) != time.Minute {
		t.Errorf("CertStatus = %+v, want mode %s, no certificate, a retry one minute after the failure", st, CertModeDNS01)
	}
	var vars struct {
		Cert CertStatus `json:"cert"`
	}
	if err := json.Unmarshal([]byte(r.ExpVar().String()), &vars); err != nil || vars.Cert.LastError != st.LastError {
		t.Errorf("ExpVar cert = %+v (%v), want the CertStatus %+v", vars.Cert, err, st)
	}

	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: testTimeout}, Config: &tls.Config{ServerName: acmeHost, InsecureSkipVerify: true}}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Region().Nodes[0].DERPPort))); err == nil {
		c.Close()
		t.Errorf("TLS handshake succeeded without a certificate")
	} else if ctx.Err() != nil {
		t.Errorf("TLS handshake hung: %v", err)
	}
	if appended, _, left := provider.counts(); appended != 0 || left != 0 {
		t.Errorf("DNS provider holds %d records after %d appends, want none", left, appended)
	}
	if n := pb.issued(); n != 0 {
		t.Errorf("pebble issued %d certificates, want 0", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close hangs while an ACME retry is pending")
	}
}

// waitCert waits until r has a certificate loaded and returns its status.
func waitCert(t *testing.T, r *Relay) CertStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := r.CertStatus()
		if !st.NotAfter.IsZero() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate after a minute: CertStatus = %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialACME handshakes with the relay on port as a client of acmeHost that
// trusts roots, checks the served chain, and returns the leaf.
func dialACME(t *testing.T, port int, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: testTimeout},
		Config:    &tls.Config{ServerName: acmeHost, RootCAs: roots},
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("TLS dial of %s as %s: %v", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), acmeHost, err)
	}
	defer c.Close()
	state := c.(*tls.Conn).ConnectionState()
	if len(state.VerifiedChains) == 0 {
		t.Fatal("no verified chain")
	}
	last := state.PeerCertificates[len(state.PeerCertificates)-1]
	if !strings.HasPrefix(last.Subject.CommonName, derpconst.MetaCertCommonNamePrefix) {
		t.Errorf("served chain does not end with the DERP meta cert (last CN %q)", last.Subject.CommonName)
	}
	return state.PeerCertificates[0]
}

// pebble is a running pebble ACME server.
type pebble struct {
	directory string // ACME directory URL
	mgmt      string // management API base URL
	cmd       *exec.Cmd
	out       *lockedBuffer
	stopOnce  sync.Once
}

// startPebble runs pebble on free loopback ports, validating TLS-ALPN-01 on
// tlsPort and resolving names (A records, DNS-01 TXT records) through dnsAddr. Its output is logged if the
// test fails.
func startPebble(t *testing.T, dnsAddr string, tlsPort int) *pebble {
	t.Helper()
	return startPebblePorts(t, dnsAddr, tlsPort, freePort(t)) // nothing answers HTTP-01
}

// startPebblePorts is startPebble validating HTTP-01 on httpPort too.
func startPebblePorts(t *testing.T, dnsAddr string, tlsPort, httpPort int) *pebble {
	t.Helper()
	dir := t.TempDir()
	acmePort, mgmtPort := freePort(t), freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
		"certificate":                    pebbleTLS.certFile,
		"privateKey":                     pebbleTLS.keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	confJSON, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confPath, confJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	out := new(lockedBuffer)
	cmd := exec.Command(pebbleTLS.binary, "-config", confPath, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_VA_ALWAYS_VALID=0",
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce retries
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	pb := &pebble{
		directory: fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort),
		mgmt:      fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
		cmd:       cmd,
		out:       out,
	}
	t.Cleanup(func() {
		pb.stop()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	return pb
}

// stop kills pebble and waits for it.
func (pb *pebble) stop() {
	pb.stopOnce.Do(func() {
		pb.cmd.Process.Kill()
		pb.cmd.Wait()
	})
}

// issued returns how many certificates pebble has issued.
func (pb *pebble) issued() int {
	return strings.Count(pb.out.String(), "Issued certificate serial")
}

// roots fetches pebble's issuing root from its management API, waiting for
// pebble to come up.
func (pb *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second} // trusts the test CA via SSL_CERT_FILE
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(pb.mgmt + "/roots/0")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s/roots/0: %s", pb.mgmt, res.Status)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(body) {
				t.Fatalf("pebble root is not PEM: %q", body)
			}
			return pool
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble management API never came up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedBuffer collects a subprocess's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveDNS runs an authoritative DNS server for acmeZone on loopback UDP
// until the test ends and returns its address. It serves the zone's SOA and
// NS, the A records in a (keyed by FQDN) and the TXT records in txt (if
// not nil); every other name in the zone exists with no records.
func serveDNS(t *testing.T, a map[string]netip.Addr, txt *memDNS) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }}
	srv.Handler = dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		soa := &dns.SOA{
			Hdr: dns.RR_Header{Name: acmeZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
			Ns:  "ns1." + acmeZone, Mbox: "hostmaster." + acmeZone,
			Serial: 1, Refresh: 60, Retry: 60, Expire: 600,
		}
		for _, q := range req.Question {
			name := strings.ToLower(q.Name)
			hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET} // TTL 0: never cached
			switch {
			case !dns.IsSubDomain(acmeZone, name):
				m.Rcode = dns.RcodeRefused
			case q.Qtype == dns.TypeSOA && name == acmeZone:
				m.Answer = append(m.Answer, soa)
			case q.Qtype == dns.TypeNS && name == acmeZone:
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr, Ns: "ns1." + acmeZone})
			case q.Qtype == dns.TypeA && a[name].Is4():
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a[name].AsSlice()})
			case q.Qtype == dns.TypeTXT && txt != nil:
				for _, v := range txt.lookup(name) {
					m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
				}
			}
		}
		if m.Rcode == dns.RcodeSuccess && len(m.Answer) == 0 {
			m.Ns = append(m.Ns, soa) // no data
		}
		w.WriteMsg(m)
	})
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// memDNS is a DNS provider keeping TXT records in memory, for serveDNS.
type memDNS struct {
	failAppend error // if set, AppendRecords fails with it

	mu                sync.Mutex
	txt               map[string][]string // FQDN → values
	appended, deleted int
}

func newMemDNS(failAppend error) *memDNS {
	return &memDNS{failAppend: failAppend, txt: map[string][]string{}}
}

func (m *memDNS) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if m.failAppend != nil {
		return nil, m.failAppend
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var added []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		if rr.Type != "TXT" {
			return added, fmt.Errorf("memDNS: record type %s not supported", rr.Type)
		}
		name := strings.ToLower(libdns.AbsoluteName(rr.Name, zone))
		m.txt[name] = append(m.txt[name], rr.Data)
		m.appended++
		parsed, err := rr.Parse()
		if err != nil {
			return added, err
		}
		added = append(added, parsed)
	}
	return added, nil
}

func (m *memDNS) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var deleted []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		name := strings.ToLower(libdns.AbsoluteName(rr.Name, zone))
		if i := slices.Index(m.txt[name], rr.Data); rr.Type == "TXT" && i >= 0 {
			m.txt[name] = slices.Delete(m.txt[name], i, i+1)
			m.deleted++
			deleted = append(deleted, rec)
		}
	}
	return deleted, nil
}

func (m *memDNS) lookup(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.txt[name])
}

// counts returns how many records were appended and deleted, and how many are left.
func (m *memDNS) counts() (appended, deleted, left int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, vs := range m.txt {
		left += len(vs)
	}
	return m.appended, m.deleted, left
}
