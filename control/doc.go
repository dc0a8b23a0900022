// Package control is a small Tailscale-compatible coordination server. It
// speaks TS2021 (Noise over HTTP/2) using tailscale.com's own protocol pieces,
// registers nodes with pre-auth keys or an interactive approval flow, streams
// network maps with deltas, and serves the admin API on a unix socket.
package control
