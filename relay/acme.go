package relay

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3"
)

// DNSProvider publishes and removes the TXT records of ACME DNS-01
// challenges, the libdns way: zone is the zone's FQDN with a trailing dot and
// record names are relative to it. Every libdns provider qualifies.
type DNSProvider interface {
	libdns.RecordAppender
	libdns.RecordDeleter
}

// dnsPropagationTimeout bounds the wait for a challenge TXT record to show up
// on Config.DNSResolvers; certmagic checks every 2 seconds.
const dnsPropagationTimeout = 2 * time.Minute

// acmeCerts serves a publicly trusted certificate, obtained and renewed by
// certmagic. For a DNS hostname, validation is DNS-01 through
// Config.DNSProvider when one is set (no inbound connection needed),
// TLS-ALPN-01 on the DERP listener otherwise (no port 80 needed). For an IP
// address it is HTTP-01 on Config.HTTPChallengeAddr, as derper's
// --acme-ip-certs does: TLS-ALPN-01 for an address would need the reverse-DNS
// SNI of RFC 8738, which certmagic does not map.
//
// The ACME account and the certificate live in StateDir/certmagic and are
// loaded at start, so a restart does not order again; certmagic's maintenance
// renews in the background and the relay keeps serving the certificate it has
// while ACME fails. StateDir/acme, autocert's cache before certmagic, is not
// read: the first start after that upgrade orders one new certificate.
type acmeCerts struct {
	host      string
	mode      string // CertModeTLSALPN01 or CertModeDNS01
	directory string
	logger    *slog.Logger
	cache     *certmagic.Cache
	magic     *certmagic.Config // set by newACMECerts, under mu for the cache's goroutine
	issuer    *certmagic.ACMEIssuer

	mu    sync.Mutex
	state acmeState
}

// acmeState is what certmagic's events told us, for CertStatus.
type acmeState struct {
	obtaining    bool
	lastObtained time.Time
	lastErr      string
	lastErrAt    time.Time
	nextRetry    time.Time
	failures     int // consecutive failed attempts since the last success
}

// newACMECerts sets up certmagic for host. ln is the DERP listener's address,
// where TLS-ALPN-01 validations arrive; ctx is the relay's lifetime.
func newACMECerts(ctx context.Context, cfg Config, host string, ln net.Addr, logger *slog.Logger) (*acmeCerts, error) {
	a := &acmeCerts{
		host:      host,
		mode:      CertModeTLSALPN01,
		directory: cmp.Or(cfg.ACMEDirectory, certmagic.LetsEncryptProductionCA),
		logger:    logger,
	}
	zl := newZapLogger(ctx, logger.With("component", "certmagic"))
	iss := certmagic.ACMEIssuer{
		CA:                        a.directory,
		Email:                     cfg.ACMEEmail,
		Agreed:                    true,
		DisableHTTPChallenge:      true,
		DisableDistributedSolvers: true, // one relay per StateDir
		Logger:                    zl,
	}
	switch {
	case net.ParseIP(host) != nil:
		// An IP certificate: HTTP-01 on the caller's listener. certmagic
		// binds that address itself only if it is free; the caller
		// listens there before Start, so it leaves the challenge to
		// HTTPChallengeHandler.
		a.mode = CertModeHTTP01
		iss.DisableHTTPChallenge, iss.DisableTLSALPNChallenge = false, true
		var err error
		if iss.ListenHost, iss.AltHTTPPort, err = splitHostPort(cfg.HTTPChallengeAddr); err != nil {
			return nil, fmt.Errorf("relay: HTTP-01 address: %w", err)
		}
		if isLetsEncrypt(a.directory) {
			iss.Profile = "shortlived" // the only profile Let's Encrypt issues IP certificates under
		}
	case cfg.DNSProvider != nil:
		a.mode = CertModeDNS01
		iss.DisableTLSALPNChallenge = true
		iss.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        cfg.DNSProvider,
			Resolvers:          slices.Clone(cfg.DNSResolvers),
			PropagationTimeout: dnsPropagationTimeout,
			Logger:             zl,
		}}
	default:
		// certmagic listens for TLS-ALPN-01 itself unless the address is
		// taken; naming the DERP listener makes it leave the challenge
		// to that listener, whose GetCertificate answers it.
		var err error
		if iss.ListenHost, iss.AltTLSALPNPort, err = splitHostPort(ln.String()); err != nil {
			return nil, fmt.Errorf("relay: DERP listener address: %w", err)
		}
	}

	// The cache runs the maintenance goroutine (renewals); every certificate
	// in it is ours, so it always answers with our one config.
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.config(), nil },
		Logger:           zl,
	})
	magic := certmagic.New(a.cache, certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: filepath.Join(cfg.StateDir, "certmagic")},
		DefaultServerName: host, // for clients that send no SNI
		OnEvent:           a.onEvent,
		ShouldEmitFunc:    func(event string) bool { return event != "tls_get_certificate" },
		Logger:            zl,
	})
	a.issuer = certmagic.NewACMEIssuer(magic, iss)
	magic.Issuers = []certmagic.Issuer{a.issuer}
	a.mu.Lock()
	a.magic = magic // published under mu for the maintenance goroutine
	a.mu.Unlock()
	return a, nil
}

func (a *acmeCerts) config() *certmagic.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.magic
}

// warmUp loads the stored certificate or starts obtaining one, in the
// background; failures are retried with certmagic's back-off until ctx ends.
// Until a certificate exists, handshakes fail.
func (a *acmeCerts) warmUp(ctx context.Context) {
	if err := a.magic.ManageAsync(ctx, []string{a.host}); err != nil {
		a.logger.Error("relay: starting ACME certificate management failed", "host", a.host, "err", err)
	}
}

func (a *acmeCerts) close() { a.cache.Stop() }

// onEvent records certmagic's progress for CertStatus. It is called
// synchronously from certmagic's goroutines.
func (a *acmeCerts) onEvent(ctx context.Context, event string, data map[string]any) error {
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		a.mu.Lock()
		a.state.obtaining, a.state.nextRetry = true, time.Time{}
		a.mu.Unlock()
		a.logger.Info("relay: obtaining ACME certificate", "host", a.host, "challenge", a.mode, "renewal", renewal)
	case "cert_obtained":
		a.mu.Lock()
		a.state = acmeState{lastObtained: time.Now()}
		a.mu.Unlock()
		a.logger.Info("relay: ACME certificate obtained", "host", a.host, "renewal", renewal)
	case "cert_failed":
		err, _ := data["error"].(error)
		if err == nil {
			err = errors.New("unknown error")
		}
		now := time.Now()
		a.mu.Lock()
		a.state.obtaining = false
		if ctx.Err() != nil { // the relay is closing: not a failure worth reporting
			a.mu.Unlock()
			return nil
		}
		a.state.failures++
		a.state.lastErr, a.state.lastErrAt = err.Error(), now
		a.state.nextRetry = now.Add(acmeRetryDelay(a.state.failures))
		next := a.state.nextRetry
		a.mu.Unlock()
		a.logger.Warn("relay: obtaining ACME certificate failed; the current certificate, if any, stays in use",
			"host", a.host, "renewal", renewal, "next_retry", next.Format(time.RFC3339), "err", err)
	}
	return nil
}

// splitHostPort splits a host:port address, as certmagic wants it for the
// challenge listener it must leave alone.
func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port: %w", addr, err)
	}
	return h, port, nil
}

// isLetsEncrypt reports whether dir is a Let's Encrypt ACME directory
// (production or staging).
func isLetsEncrypt(dir string) bool {
	return strings.Contains(dir, ".api.letsencrypt.org/")
}

// acmeRetryDelay is how long certmagic waits after the failures-th
// consecutive failure before trying again: its retryIntervals (async.go in
// v0.25.6, unexported), used both by the first order and by renewals.
func acmeRetryDelay(failures int) time.Duration {
	const m, h = time.Minute, time.Hour
	schedule := [...]time.Duration{
		1 * m, 2 * m, 2 * m, 5 * m, 10 * m, 10 * m, 10 * m, 20 * m, 20 * m, 20 * m, 20 * m,
		30 * m, 30 * m, 30 * m, 30 * m, 30 * m, 30 * m, 1 * h, 1 * h, 1 * h, 2 * h, 2 * h, 3 * h, 3 * h, 6 * h,
	}
	return schedule[min(max(failures, 1), len(schedule))-1]
}

func (a *acmeCerts) status() CertStatus {
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	s := CertStatus{
		Mode:         a.mode,
		Names:        []string{a.host},
		Directory:    a.directory,
		LastObtained: st.lastObtained,
		LastError:    st.lastErr,
		LastErrorAt:  st.lastErrAt,
		NextRetry:    st.nextRetry,
		Obtaining:    st.obtaining,
	}
	if leaf := a.servedLeaf(); leaf != nil {
		s.Issuer, s.NotBefore, s.NotAfter = leaf.Issuer.CommonName, leaf.NotBefore, leaf.NotAfter
	}
	return s
}

// servedLeaf returns the leaf of the cached certificate for the host that
// expires last, or nil if none is loaded.
func (a *acmeCerts) servedLeaf() *x509.Certificate {
	var leaf *x509.Certificate
	for _, c := range a.cache.AllMatchingCertificates(a.host) {
		if c.Leaf != nil && (leaf == nil || c.Leaf.NotAfter.After(leaf.NotAfter)) {
			leaf = c.Leaf
		}
	}
	return leaf
}

func (a *acmeCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.magic.GetCertificate(hello)
}

func (a *acmeCerts) alpn() []string {
	if a.mode == CertModeTLSALPN01 {
		return []string{acmez.ACMETLS1Protocol}
	}
	return nil
}

func (a *acmeCerts) certName() string { return "" }

func (a *acmeCerts) describe() string {
	return fmt.Sprintf("%s for %s from %s", a.mode, a.host, a.directory)
}
