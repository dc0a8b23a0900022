// Package relay runs the embedded DERP relay and STUN server. It admits only
// the nodes the caller says are registered, serves a self-signed certificate
// pinned by hash when there is no domain (or an ACME one when there is), and
// describes itself as a DERP region for the control server's DERP map.
package relay
