// Package relay runs the embedded DERP relay and STUN server. It admits only
// the nodes the caller says are registered, serves a certificate (an ACME
// one through certmagic for a DNS name, or for a public IP address when the
// caller answers HTTP-01 on port 80; else a self-signed one pinned by hash),
// and describes itself as a DERP region for the control server's DERP map.
//
// The pieces are tailscale.com's own: derpserver for DERP over TLS,
// stunserver for STUN, derphttp for the one in-process client. Two things
// derpserver offers only over the network are kept inside the process, on a
// loopback-only listener:
//
//   - Admission: derpserver POSTs each connecting node key to an admission URL
//     (SetVerifyClientURL, fail-closed). The URL is an unguessable path on the
//     loopback listener, answered by the caller's admit function.
//   - Disconnect: derpserver drops a node's connections when a trusted mesh
//     peer sends ClosePeer. The relay gives the server a random mesh key that
//     never leaves the process and keeps one mesh client connected over
//     loopback to send that frame.
//
// Files: relay.go (Start, Region, Close), region.go (the DERP region),
// server.go (listeners), admit.go (admission endpoint), limits.go (429 for
// addresses whose node keys were refused too often),
// mesh.go (Disconnect), tls.go (listener TLS config), cert.go (self-signed
// certificate), acme.go (ACME certificate: certmagic, TLS-ALPN-01 or DNS-01),
// certstatus.go (CertStatus), zaplog.go (certmagic's zap logs to slog).
package relay
