// Package webadmin is the gateway's web admin: server-rendered pages behind
// the admin password for what `homenet status|nodes|keys|routes` do, plus
// approving interactive logins and adding a phone. It only builds an
// http.Handler; the caller chooses the listener (loopback, LAN and tailnet
// addresses, never the internet-facing control port).
package webadmin
