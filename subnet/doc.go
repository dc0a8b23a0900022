// Package subnet is the gateway agent: an in-process tailscale engine on a
// kernel TUN that advertises the home LAN and acts as an exit node, with our
// own router that programs addresses, routes and policy rules.
//
//   - agent.go: Start/Close/Run. The engine assembled as tailscaled does it
//     (tsd.System, net/tstun, wgengine, ipnlocal.LocalBackend) with our
//     Router, no DNS changes, no netstack; registration with a one-off key
//     from Config.AuthKey, again when control forgot the node; a LocalAPI
//     socket in the state dir for the stock CLI.
//   - router.go, policy.go: the router.Router. Table 153 behind rule prefs
//     5310–5370 (tailscaled uses 52 and 5210–5270), netfilter through
//     package firewall, a watchdog that puts back what others remove.
//   - sysctl.go: forwarding on, old values saved to the state dir first.
//   - cleanup.go: what a dead run left behind goes at the next start.
package subnet
