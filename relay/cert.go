package relay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Files of the self-signed certificate in Config.StateDir.
const (
	certFile = "relay-cert.pem"
	keyFile  = "relay-key.pem"
)

const (
	selfSignedLifetime = 10 * 365 * 24 * time.Hour
	selfSignedBackdate = time.Hour           // tolerate clients whose clock is a little behind
	selfSignedMargin   = 30 * 24 * time.Hour // replace a stored cert this close to expiry
)

// selfSigned serves one self-signed certificate, which clients accept by its
// SHA-256 pin (DERPNode.CertName "sha256-raw:<hex>") rather than by a CA.
type selfSigned struct {
	cert *tls.Certificate
	pin  string
	path string
}

// loadOrCreateSelfSigned returns the certificate stored in dir if it is
// intact, matches ip (no IP SAN at all when ip is invalid) and is far from
// expiry; otherwise it creates and stores a new one. Reusing the stored cert
// keeps the pin, and so every client's DERP map, stable across restarts.
func loadOrCreateSelfSigned(dir string, ip netip.Addr, logger *slog.Logger) (*selfSigned, error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	now := time.Now()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case err == nil:
		if why := unsuitable(cert.Leaf, ip, now); why != "" {
			logger.Info("relay: replacing stored self-signed certificate", "path", certPath, "reason", why)
		} else {
			return newSelfSigned(&cert, certPath), nil
		}
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("relay: loading self-signed certificate from %s: %w", dir, err)
	default:
		logger.Warn("relay: stored self-signed certificate unusable; replacing it", "path", certPath, "err", err)
	}

	certPEM, keyPEM, err := createSelfSigned(ip, now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: creating state directory: %w", err)
	}
	// Key first: a crash between the two writes leaves a pair that fails to
	// load, which is then simply replaced.
	if err := writeFileAtomic(keyPath, keyPEM); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, certPEM); err != nil {
		return nil, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("relay: parsing new self-signed certificate: %w", err)
	}
	logger.Info("relay: created self-signed certificate", "path", certPath, "ip", ip)
	return newSelfSigned(&cert, certPath), nil
}

func newSelfSigned(cert *tls.Certificate, path string) *selfSigned {
	sum := sha256.Sum256(cert.Certificate[0])
	return &selfSigned{cert: cert, pin: "sha256-raw:" + hex.EncodeToString(sum[:]), path: path}
}

// unsuitable says why leaf cannot be reused for ip at time now, or "".
func unsuitable(leaf *x509.Certificate, ip netip.Addr, now time.Time) string {
	switch {
	case len(leaf.DNSNames) != 0:
		return "certificate names DNS hosts"
	case !ip.IsValid() && len(leaf.IPAddresses) != 0:
		return "certificate names an IP address but the relay has no hostname"
	case ip.IsValid() && (len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IP(ip.AsSlice()))):
		return fmt.Sprintf("certificate is not for %v", ip)
	case now.Before(leaf.NotBefore):
		return "certificate is not valid yet"
	case now.Add(selfSignedMargin).After(leaf.NotAfter):
		return "certificate expires soon"
	}
	return ""
}

// createSelfSigned returns the PEM of a new ECDSA P-256 certificate for ip
// (with no subject alternative name when ip is invalid) and of its key.
func createSelfSigned(ip netip.Addr, now time.Time) (certPEM, keyPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: generating certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("relay: generating certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "homenet relay", Organization: []string{"homenet"}},
		NotBefore:             now.Add(-selfSignedBackdate),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // macOS wants it on self-signed certs
	}
	if ip.IsValid() {
		tmpl.Subject.CommonName = ip.String()
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: creating self-signed certificate for %v: %w", ip, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: encoding certificate key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// writeFileAtomic replaces path with data, readable by the owner only.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("relay: writing %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("relay: writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("relay: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("relay: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("relay: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("relay: writing %s: %w", path, err)
	}
	return nil
}

func (s *selfSigned) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

func (s *selfSigned) alpn() []string { return nil }

func (s *selfSigned) warmUp(context.Context) {}

func (s *selfSigned) close() {}

func (s *selfSigned) status() CertStatus {
	st := CertStatus{Mode: CertModeSelfSigned, Pin: s.pin}
	if leaf := s.cert.Leaf; leaf != nil {
		for _, ip := range leaf.IPAddresses {
			st.Names = append(st.Names, ip.String())
		}
		st.Issuer, st.NotBefore, st.NotAfter = leaf.Issuer.CommonName, leaf.NotBefore, leaf.NotAfter
	}
	return st
}

func (s *selfSigned) certName() string { return s.pin }

func (s *selfSigned) describe() string { return "self-signed " + s.path + " " + s.pin }
