package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"

	"homenet/control"
)

// status prints the running server's status.
func status(ctx context.Context, inv *invocation, a control.Admin) error {
	st, err := a.Status(ctx)
	if err != nil {
		return fmt.Errorf("getting status: %w", err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, st)
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Version:\t%s\n", st.Version)
	fmt.Fprintf(tw, "Server URL:\t%s\n", st.ServerURL)
	tailnet := st.Prefix4.String()
	if st.Prefix6.IsValid() {
		tailnet += ", " + st.Prefix6.String()
	}
	fmt.Fprintf(tw, "Tailnet:\t%s\n", tailnet)
	fmt.Fprintf(tw, "Started:\t%s\n", relTime(inv.now, st.Started, "-"))
	fmt.Fprintf(tw, "Nodes:\t%d (%d online)\n", st.Nodes, st.Online)
	pending := fmt.Sprint(st.Pending)
	if st.Pending > 0 {
		pending += ` (approve with "homenet nodes approve CODE")`
	}
	fmt.Fprintf(tw, "Pending logins:\t%s\n", pending)
	for _, r := range st.DERPRegions {
		fmt.Fprintf(tw, "DERP region %d:\t%s %s, DERP port %d, STUN port %d\n", r.ID, r.Code, r.HostName, r.DERPPort, r.STUNPort)
	}
	for _, k := range slices.Sorted(maps.Keys(st.Extra)) {
		fmt.Fprintf(tw, "%s:\t%v\n", k, st.Extra[k])
	}
	return tw.Flush()
}
