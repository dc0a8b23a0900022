package main

import (
	"context"
	"fmt"
	"strconv"

	"homenet/control"
)

// routesList prints the advertised routes.
func routesList(ctx context.Context, inv *invocation, a control.Admin) error {
	routes, err := a.Routes(ctx)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, nonNil(routes))
	}
	if len(routes) == 0 {
		_, err := fmt.Fprintln(inv.stdout, "No routes yet: set gateway.enabled = true for this host's LAN and exit node, or on another node: tailscale set --advertise-routes PREFIX")
		return err
	}
	t := newTable(inv.stdout, "NODE ID", "NODE", "PREFIX", "TYPE", "APPROVED")
	for _, r := range routes {
		kind := "subnet"
		if r.ExitNode {
			kind = "exit node"
		}
		t.row(strconv.FormatInt(int64(r.NodeID), 10), r.NodeName, r.Prefix.String(), kind, yesNo(r.Approved))
	}
	return t.flush()
}

// routesApprove approves a route.
func routesApprove(ctx context.Context, inv *invocation, a control.Admin) error {
	return setRoute(ctx, inv, a, true)
}

// routesUnapprove withdraws a route's approval.
func routesUnapprove(ctx context.Context, inv *invocation, a control.Admin) error {
	return setRoute(ctx, inv, a, false)
}

// setRoute approves or unapproves the route given as arguments ID PREFIX.
func setRoute(ctx context.Context, inv *invocation, a control.Admin, approved bool) error {
	id, err := parseNodeID(inv.args[0])
	if err != nil {
		return err
	}
	p, err := parsePrefix(inv.args[1])
	if err != nil {
		return err
	}
	verb := "approve"
	if !approved {
		verb = "unapprove"
	}
	if err := a.SetRouteApproved(ctx, id, p, approved); err != nil {
		return fmt.Errorf("cannot %s route %s of node %d: %w", verb, p, id, err)
	}
	return done(inv, "Route %s of node %d %sd.", p, id, verb)
}
