package relay

import (
	"time"
)

// Certificate modes reported in CertStatus.Mode.
const (
	CertModeSelfSigned = "self-signed"      // pinned by hash; for IP addresses and an empty Hostname
	CertModeTLSALPN01  = "acme-tls-alpn-01" // ACME, validated on the DERP listener
	CertModeDNS01      = "acme-dns-01"      // ACME, validated through Config.DNSProvider
	CertModeHTTP01     = "acme-http-01"     // ACME for an IP address, validated on Config.HTTPChallengeAddr
)

// CertStatus describes the DERP listener's certificate, for status pages and
// health checks. It holds no key material and no credentials; LastError is
// the error text as certmagic, the CA or the DNS provider reported it.
type CertStatus struct {
	Mode  string   `json:"mode"`            // one of the CertMode constants
	Pin   string   `json:"pin,omitempty"`   // self-signed: the DERPNode.CertName, "sha256-raw:<hex>"
	Names []string `json:"names,omitempty"` // the DNS name or IP address the certificate is for

	Directory string `json:"directory,omitempty"` // ACME: the CA's directory URL
	Issuer    string `json:"issuer,omitempty"`    // common name of the served certificate's issuer

	// NotBefore and NotAfter bound the served certificate; both are zero
	// while no certificate is loaded (ACME, before the first issuance).
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`

	// The rest is ACME only, and only what this process saw: a
	// certificate loaded from StateDir at start has no LastObtained.
	LastObtained time.Time `json:"last_obtained,omitzero"` // last successful order or renewal
	LastError    string    `json:"last_error,omitempty"`   // last failed attempt since the last success
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	// NextRetry estimates when certmagic tries again after LastError: the
	// failure time plus certmagic's back-off for that many consecutive
	// failures (1m, 2m, 2m, 5m, 10m, ... up to 6h). A renewal retried by
	// certmagic's maintenance loop starts at the first check (every 10
	// minutes) after that time. Zero when nothing is pending.
	NextRetry time.Time `json:"next_retry,omitzero"`
	Obtaining bool      `json:"obtaining,omitempty"` // an order is in flight
}

// CertStatus reports the state of the DERP listener's certificate.
func (r *Relay) CertStatus() CertStatus {
	return r.certs.status()
}
