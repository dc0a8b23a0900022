package relay

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"

	"github.com/mholt/acmez/v3"
)

// certSource provides the certificate of the DERP listener.
type certSource interface {
	// getCertificate returns the certificate for hello. The result may be
	// shared; serverTLSConfig copies it before handing it to crypto/tls.
	getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
	// alpn lists ALPN protocols to offer besides HTTP/1.1.
	alpn() []string
	// certName is the DERPNode.CertName clients need: a "sha256-raw:" pin
	// for a self-signed certificate, empty for a publicly trusted one.
	certName() string
	// describe says which certificate is served, for logs.
	describe() string
	// status reports the certificate's state for Relay.CertStatus.
	status() CertStatus
	// warmUp prepares the certificate in the background once the listener
	// is serving (a TLS-ALPN-01 validation connects to it), until ctx ends.
	warmUp(ctx context.Context)
	// close stops background work.
	close()
}

// newCertSource picks the certificate source for host: ACME for DNS names,
// and for IP literals when the caller answers HTTP-01; else a self-signed
// certificate pinned by hash. ln is the address of the DERP listener, ctx
// the relay's lifetime.
func newCertSource(ctx context.Context, cfg Config, host hostname, ln net.Addr, logger *slog.Logger) (certSource, error) {
	switch {
	case host.name != "":
		return newACMECerts(ctx, cfg, host.name, ln, logger)
	case host.ip.IsValid() && cfg.HTTPChallengeAddr != "":
		return newACMECerts(ctx, cfg, host.ip.String(), ln, logger)
	}
	return loadOrCreateSelfSigned(cfg.StateDir, host.ip, logger)
}

// serverTLSConfig returns the TLS configuration of the DERP listener.
// addMetaCert is derpserver.Server.ModifyTLSConfigToAddMetaCert, which makes
// every handshake also carry the DERP server's key (saving clients a round
// trip); ACME TLS-ALPN-01 challenge handshakes are served without it, since
// the validator wants exactly the challenge certificate (which certmagic's
// GetCertificate returns for them).
func serverTLSConfig(src certSource, addMetaCert func(*tls.Config)) *tls.Config {
	plain := func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := src.getCertificate(hello)
		if err != nil || cert == nil {
			return cert, err
		}
		return cloneCert(cert), nil
	}
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     append([]string{"http/1.1"}, src.alpn()...),
		GetCertificate: plain,
	}
	addMetaCert(conf)
	withMeta := conf.GetCertificate
	conf.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if isACMEChallenge(hello) {
			return plain(hello)
		}
		return withMeta(hello)
	}
	return conf
}

// cloneCert returns a shallow copy of c whose chain can be appended to
// without touching c: a shared *tls.Certificate that gets the meta cert
// appended concurrently is a known data race (tailscale#4082).
func cloneCert(c *tls.Certificate) *tls.Certificate {
	cp := *c
	cp.Certificate = slices.Clip(slices.Clone(c.Certificate))
	return &cp
}

// isACMEChallenge reports whether hello is an ACME TLS-ALPN-01 validation.
func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
}
