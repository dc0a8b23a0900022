package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pebbleTLS is the TLS material for pebble's own HTTPS API, made by
// TestMain when the pebble binary is installed. It is written once, before
// any test runs, and only read afterwards.
var pebbleTLS struct {
	binary   string // path of the pebble binary; empty: ACME tests skip
	certFile string // pebble's server certificate for 127.0.0.1
	keyFile  string
}

// TestMain prepares the ACME test. The relay's ACME client trusts the system
// roots, and Go reads SSL_CERT_FILE only once per process, before the first
// verification against system roots; so the CA that signs pebble's API
// certificate must be installed as SSL_CERT_FILE before any test runs.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if bin, err := exec.LookPath("pebble"); err == nil {
		dir, err := os.MkdirTemp("", "relay-pebble-tls-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay tests:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		caFile := filepath.Join(dir, "ca.pem")
		pebbleTLS.binary = bin
		pebbleTLS.certFile = filepath.Join(dir, "cert.pem")
		pebbleTLS.keyFile = filepath.Join(dir, "key.pem")
		if err := writeTestCA(caFile, pebbleTLS.certFile, pebbleTLS.keyFile); err != nil {
			fmt.Fprintln(os.Stderr, "relay tests: making pebble's TLS certificate:", err)
			return 1
		}
		os.Setenv("SSL_CERT_FILE", caFile)
	}
	return m.Run()
}

// writeTestCA writes a throwaway CA to caFile and a certificate it signed for
// 127.0.0.1 (with its key) to certFile and keyFile.
func writeTestCA(caFile, certFile, keyFile string) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test CA for pebble"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "pebble"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	files := []struct {
		path, typ string
		der       []byte
	}{
		{caFile, "CERTIFICATE", caDER},
		{certFile, "CERTIFICATE", der},
		{keyFile, "PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return err
		}
	}
	return nil
}
