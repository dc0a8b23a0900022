package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"homenet/appliance"
	"homenet/control"
	"homenet/subnet"
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
	printGateway(tw, st.Extra)
	return tw.Flush()
}

// printGateway shows the gateway agent's state and what LAN detection found
// and why. Extra arrives as decoded JSON; it is re-read into its types.
func printGateway(w io.Writer, extra map[string]any) {
	var gw subnet.Status
	var lan appliance.LAN
	if !reJSON(extra["gateway"], &gw) {
		fmt.Fprintf(w, "Gateway:\tnot running (gateway.enabled = false)\n")
		return
	}
	fmt.Fprintf(w, "Gateway:\t%s on %s, firewall %s\n", gw.State, gw.Tun, gw.Firewall)
	fmt.Fprintf(w, "  Addresses:\t%s\n", joinOrDash(gw.Addresses))
	fmt.Fprintf(w, "  Advertised:\t%s\n", joinOrDash(gw.Advertised))
	fmt.Fprintf(w, "  WAN:\t%s\n", cmp.Or(gw.WAN, "-"))
	if gw.Repairs > 0 {
		fmt.Fprintf(w, "  Repairs:\t%d (rules put back after something removed them)\n", gw.Repairs)
	}
	if gw.LastError != "" {
		fmt.Fprintf(w, "  Last error:\t%s\n", gw.LastError)
	}
	if reJSON(extra["gateway_lan"], &lan) {
		for _, why := range lan.Why {
			fmt.Fprintf(w, "  Detected:\t%s\n", why)
		}
	}
}

func reJSON(v any, into any) bool {
	if v == nil {
		return false
	}
	b, err := json.Marshal(v)
	return err == nil && json.Unmarshal(b, into) == nil
}

func joinOrDash[T fmt.Stringer](xs []T) string {
	if len(xs) == 0 {
		return "-"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}
