// Package subnet is the gateway agent: an in-process tailscale engine on a
// kernel TUN that advertises the home LAN and acts as an exit node, with our
// own router that programs addresses, routes and policy rules.
package subnet
