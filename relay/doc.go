// Package relay runs the embedded DERP relay and STUN server. It admits only
// the nodes the caller says are registered, serves a self-signed certificate
// pinned by hash when there is no domain (or an ACME one, through certmagic,
// when there is), and describes itself as a DERP region for the control
// server's DERP map.
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
// server.go (listeners), admit.go (admission endpoint),
// mesh.go (Disconnect), tls.go (listener TLS config), cert.go (self-signed
// certificate), acme.go (ACME certificate: certmagic, TLS-ALPN-01 or DNS-01),
// certstatus.go (CertStatus), zaplog.go (certmagic's zap logs to slog).
package relay
