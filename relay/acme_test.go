package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"tailscale.com/derp/derpconst"
	"tailscale.com/types/key"
)

// acmeHost is the relay's DNS name in the ACME test. The .test TLD is
// reserved (RFC 2606); pebble resolves it through serveDNS.
const acmeHost = "relay.test"

// TestACMEWithPebble obtains a certificate from a local pebble ACME server
// over TLS-ALPN-01 on the DERP port, verifies the served chain against
// pebble's root, relays a packet with a client that trusts that root, and
// checks that a restart serves the cached certificate without the CA.
// Everything listens on 127.0.0.1.
func TestACMEWithPebble(t *testing.T) {
	if pebbleTLS.binary == "" {
		t.Skip("pebble not found in PATH; install it (Debian: apt-get install pebble) to run the ACME test")
	}
	logger := newTestLogger(t)

	// Pebble validates for real (PEBBLE_VA_ALWAYS_VALID=0): it resolves
	// relay.test through our DNS responder and dials the relay's TLS port.
	dnsAddr := serveDNS(t, acmeHost, netip.MustParseAddr("127.0.0.1"))
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

	// The first handshake waits for issuance if the warm-up has not finished.
	leaf := dialACME(t, relayPort, roots)
	if !slices.Equal(leaf.DNSNames, []string{acmeHost}) {
		t.Fatalf("certificate names %v, want [%s]", leaf.DNSNames, acmeHost)
	}
	if entries, err := os.ReadDir(filepath.Join(stateDir, "acme")); err != nil || len(entries) == 0 {
		t.Errorf("ACME cache %s/acme is empty (%v)", stateDir, err)
	}

	// Real DERP clients, trusting pebble's root, through the DNS name.
	// IPv4 is set only because relay.test is not in the system resolver.
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

	// A restart serves the cached certificate, without asking the CA.
	r.Close()
	pb.stop()
	cfg.Listen = "127.0.0.1:0"
	r2 := startRelay(t, logger, cfg, reg.admit)
	again := dialACME(t, r2.Region().Nodes[0].DERPPort, roots)
	if !again.Equal(leaf) {
		t.Errorf("after restart the relay serves serial %v, want the cached %v", again.SerialNumber, leaf.SerialNumber)
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // includes issuance
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
	stopOnce  sync.Once
}

// startPebble runs pebble on free loopback ports, validating TLS-ALPN-01 on
// tlsPort and resolving names through dnsAddr. Its output is logged if the
// test fails.
func startPebble(t *testing.T, dnsAddr string, tlsPort int) *pebble {
	t.Helper()
	dir := t.TempDir()
	acmePort, mgmtPort, unusedHTTPPort := freePort(t), freePort(t), freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
		"certificate":                    pebbleTLS.certFile,
		"privateKey":                     pebbleTLS.keyFile,
		"httpPort":                       unusedHTTPPort, // HTTP-01 is never offered: autocert only does TLS-ALPN-01 here
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

// serveDNS answers DNS queries over UDP on loopback until the test ends:
// name has the A record ip; every other question gets an empty answer.
func serveDNS(t *testing.T, name string, ip netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if res, err := dnsAnswer(buf[:n], name, ip); err == nil {
				pc.WriteTo(res, addr)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// dnsAnswer builds the response to query.
func dnsAnswer(query []byte, name string, ip netip.Addr) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
	})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET && strings.EqualFold(q.Name.String(), name+".") {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}
		if err := b.AResource(rh, dnsmessage.AResource{A: ip.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
