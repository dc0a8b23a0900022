package relay

import (
	"cmp"
	"crypto/tls"
	"log/slog"
	"path/filepath"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeCerts serves a publicly trusted certificate for a DNS hostname, obtained
// and renewed by autocert. Validation is TLS-ALPN-01 on the DERP listener
// itself, so no port 80 is needed; the ACME account and certificates are
// cached in StateDir/acme.
type acmeCerts struct {
	m      *autocert.Manager
	host   string
	logger *slog.Logger
}

// newACMECerts returns the ACME certificate source for host.
func newACMECerts(cfg Config, host string, logger *slog.Logger) *acmeCerts {
	return &acmeCerts{
		host:   host,
		logger: logger,
		m: &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(host),
			Cache:      autocert.DirCache(filepath.Join(cfg.StateDir, "acme")),
			Email:      cfg.ACMEEmail,
			Client:     &acme.Client{DirectoryURL: cmp.Or(cfg.ACMEDirectory, acme.LetsEncryptURL)},
		},
	}
}

// warmUp starts obtaining the certificate in the background, so the first
// DERP client does not wait for issuance. The request cannot be cancelled
// (autocert gives it a 5-minute deadline of its own); if it fails, the next
// handshake retries after autocert's one-minute back-off.
func (a *acmeCerts) warmUp() {
	go func() {
		// A hello that accepts ECDSA, like every DERP client does.
		hello := &tls.ClientHelloInfo{
			ServerName:   a.host,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		}
		if _, err := a.m.GetCertificate(hello); err != nil {
			a.logger.Warn("relay: obtaining ACME certificate failed; retrying on the next handshake",
				"host", a.host, "directory", a.m.Client.DirectoryURL, "err", err)
			return
		}
		a.logger.Info("relay: ACME certificate ready", "host", a.host)
	}()
}

func (a *acmeCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.m.GetCertificate(hello)
}

func (a *acmeCerts) alpn() []string { return []string{acme.ALPNProto} }

func (a *acmeCerts) certName() string { return "" }

func (a *acmeCerts) describe() string { return "ACME for " + a.host }
