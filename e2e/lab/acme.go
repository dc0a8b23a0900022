package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An ACME certificate authority inside the lab: Debian's pebble test server
// (apt-get install -y pebble), validating for real. It resolves names through
// a DNS responder of its own (CA) or through a lab bind9 (CAWithDNS), and
// checks TLS-ALPN-01 on port 443 of the address it finds, as Let's Encrypt
// would on the internet.

// Ports of the CA host.
const (
	PebblePort     = 14000 // ACME API: https://ADDR:14000/dir
	PebbleMgmtPort = 15000 // management API: /roots/0 is the issuing root
)

// NeedsPebbleMessage is the reason ACME scenarios skip without pebble.
const NeedsPebbleMessage = "e2e: pebble (ACME test server) not found; install it: apt-get install -y pebble"

// systemBundle is the machine's CA bundle (Debian's ca-certificates). It
// goes after the lab's roots in every bundle the lab writes, so setting
// SSL_CERT_FILE adds trust rather than replacing it.
const systemBundle = "/etc/ssl/certs/ca-certificates.crt"

// CA is pebble running in a lab host.
type CA struct {
	Host *Host
	// Directory is the ACME directory URL, https://ADDR:14000/dir.
	Directory string
	// Root is the PEM of the root pebble issues certificates under, from
	// its management API. It is made afresh every time pebble starts.
	Root []byte
	// BundleFile is a PEM file with Root, the CA of pebble's own HTTPS
	// certificate and the system bundle: SSL_CERT_FILE for a process that
	// must trust what pebble issues (a phone) or talk to pebble's API (an
	// ACME client).
	BundleFile string
	Proc       *Proc
}

// PebbleBinary returns the path of pebble, skipping the test if it is not
// installed.
func PebbleBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("pebble")
	if err != nil {
		t.Skip(NeedsPebbleMessage)
	}
	return p
}

// CA starts pebble in h, on h's address, with a DNS responder on h's
// loopback that answers A queries for records ("name=IPv4") and NXDOMAIN
// for anything else. It waits for pebble to answer and fetches its root.
// It skips the test if pebble is not installed.
func (l *Lab) CA(h *Host, records ...string) *CA {
	l.t.Helper()
	bin := PebbleBinary(l.t)
	dnsArgs := []string{"dns-serve", "-listen", "127.0.0.1:53"}
	for _, r := range records {
		dnsArgs = append(dnsArgs, "-record", r)
	}
	h.LabtoolServer(dnsArgs...)
	return l.startCA(h, bin, "127.0.0.1:53")
}

// CAWithDNS starts pebble in h like CA, but pebble resolves every name
// through dns, as Let's Encrypt resolves through the real DNS: DNS-01 TXT
// records, and A/AAAA records for TLS-ALPN-01 and HTTP-01. h's
// /etc/resolv.conf points at dns too. It skips the test if pebble is not
// installed.
func (l *Lab) CAWithDNS(h *Host, dns *BIND) *CA {
	l.t.Helper()
	bin := PebbleBinary(l.t)
	dns.UseAsResolver(h)
	return l.startCA(h, bin, dns.Addrs[0].String())
}

// startCA starts pebble in h with its DNS server at dnsServer (host:port).
func (l *Lab) startCA(h *Host, bin, dnsServer string) *CA {
	l.t.Helper()
	addr := h.Addr()

	// Pebble's own HTTPS certificate, for its address, from a throwaway
	// CA (Debian's package does not ship the upstream test/certs).
	apiCA, cert, key, err := newAPICerts(addr)
	if err != nil {
		l.t.Fatalf("making pebble's TLS certificate: %v", err)
	}
	files := map[string][]byte{"api-ca.pem": apiCA, "pebble-cert.pem": cert, "pebble-key.pem": key}
	for name, b := range files {
		if err := os.WriteFile(h.Dir+"/"+name, b, 0o600); err != nil {
			l.t.Fatal(err)
		}
	}
	h.SetEnv("SSL_CERT_FILE=" + h.Dir + "/api-ca.pem") // for fetching the root below

	conf, err := json.MarshalIndent(map[string]any{"pebble": map[string]any{
		"listenAddress":                  netip.AddrPortFrom(addr, PebblePort).String(),
		"managementListenAddress":        netip.AddrPortFrom(addr, PebbleMgmtPort).String(),
		"certificate":                    h.Dir + "/pebble-cert.pem",
		"privateKey":                     h.Dir + "/pebble-key.pem",
		"httpPort":                       80,  // HTTP-01; homenet uses TLS-ALPN-01 only
		"tlsPort":                        443, // TLS-ALPN-01: the relay's listener
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}, "", "  ")
	if err != nil {
		l.t.Fatal(err)
	}
	confPath := h.Dir + "/pebble.json"
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		l.t.Fatal(err)
	}
	ca := &CA{
		Host:       h,
		Directory:  fmt.Sprintf("https://%s/dir", netip.AddrPortFrom(addr, PebblePort)),
		BundleFile: h.Dir + "/trust-bundle.pem",
	}
	ca.Proc = h.Start("pebble", []string{
		"PEBBLE_VA_NOSLEEP=1",      // validate at once, not after a random pause
		"PEBBLE_VA_ALWAYS_VALID=0", // really connect to port 443
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce retries
	}, bin, "-config", confPath, "-dnsserver", dnsServer)
	ca.Proc.DumpLines = 60

	rootURL := fmt.Sprintf("https://%s/roots/0", netip.AddrPortFrom(addr, PebbleMgmtPort))
	took := WaitFor(l.t, 30*time.Second, "pebble to serve its root at "+rootURL, func() error {
		if exited, err := ca.Proc.Exited(); exited {
			return fmt.Errorf("pebble exited: %v\n%s", err, ca.Proc.Tail(30))
		}
		out, err := h.Output(5*time.Second, LabtoolBinary(l.t), "http-get", "-timeout=2s", rootURL)
		if err != nil {
			return err
		}
		// http-get prints the status line, then the body.
		_, body, _ := strings.Cut(out, "\n")
		if b, _ := pem.Decode([]byte(body)); b == nil || b.Type != "CERTIFICATE" {
			return fmt.Errorf("%s: not a PEM certificate: %q", rootURL, out)
		}
		ca.Root = []byte(strings.TrimSpace(body) + "\n")
		return nil
	})
	root, _ := pem.Decode(ca.Root)
	rc, err := x509.ParseCertificate(root.Bytes)
	if err != nil {
		l.t.Fatalf("pebble's root: %v", err)
	}
	l.t.Logf("lab: pebble ACME server at %s (DNS %s) up in %v, issuing under %q", ca.Directory, dnsServer, took.Round(time.Millisecond), rc.Subject.CommonName)

	bundle := append(append([]byte{}, ca.Root...), apiCA...)
	if sys, err := os.ReadFile(systemBundle); err == nil {
		bundle = append(bundle, sys...)
	} else if !errors.Is(err, os.ErrNotExist) {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(ca.BundleFile, bundle, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return ca
}

// Trust makes every process later run or started in h trust the CA: Go
// programs (homenet, tailscaled, labtool) read SSL_CERT_FILE, which the lab
// points at BundleFile.
func (ca *CA) Trust(h *Host) {
	h.SetEnv("SSL_CERT_FILE=" + ca.BundleFile)
}

// Issued returns how many certificates pebble has issued so far, from its
// log.
func (ca *CA) Issued() int {
	return strings.Count(ca.Proc.Log(), "Issued certificate serial")
}

// newAPICerts returns a new CA certificate and a server certificate (with
// its key) it signed for ip, all PEM, valid for a day.
func newAPICerts(ip netip.Addr) (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "homenet e2e lab CA for pebble's API"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "pebble " + ip.String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{ip.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
