package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"homenet/appliance"
	"homenet/control"
	"homenet/ddns"
	"homenet/portmap"
	"homenet/relay"
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
	if st.Joined {
		printJoined(tw, inv.now, st)
		return tw.Flush()
	}
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
	printReachability(tw, st.Extra["reachability"])
	printDDNS(tw, inv.now, st.Extra["ddns"])
	printCertificate(tw, inv.now, st.Extra["certificate"])
	printPortmap(tw, inv.now, st.Extra["upnp"])
	printGateway(tw, st.Extra)
	return tw.Flush()
}

// printJoined shows the status of a host whose gateway agent joins a
// control server elsewhere.
func printJoined(w io.Writer, now time.Time, st control.Status) {
	var gw subnet.Status
	reJSON(st.Extra["gateway"], &gw)
	conn := "no"
	if gw.Connected {
		conn = "yes"
	}
	fmt.Fprintf(w, "Control server:\t%s (joined: this host runs the gateway agent only)\n", st.ServerURL)
	fmt.Fprintf(w, "Connected:\t%s\n", conn)
	fmt.Fprintf(w, "Started:\t%s\n", relTime(now, st.Started, "-"))
	printPortmap(w, now, st.Extra["upnp"])
	printGateway(w, st.Extra)
}

// printPortmap shows the port mappings on the home router.
func printPortmap(w io.Writer, now time.Time, v any) {
	var pm portmap.Status
	if !reJSON(v, &pm) {
		return
	}
	line := "no answer from the router yet"
	if pm.Protocol != "" {
		line = pm.Protocol + " at " + pm.Router
		if pm.ExternalIPv4.IsValid() {
			line += ", external address " + pm.ExternalIPv4.String()
		}
	}
	fmt.Fprintf(w, "Port mappings:\t%s\n", line)
	for _, m := range pm.Mappings {
		s := fmt.Sprintf("%s %d → this host's %d", strings.ToUpper(m.Proto), m.External, m.Internal)
		switch {
		case m.Err != "":
			s = fmt.Sprintf("%s %d: %s", strings.ToUpper(m.Proto), m.Internal, m.Err)
		case m.External == 0:
			s = fmt.Sprintf("%s %d: not mapped", strings.ToUpper(m.Proto), m.Internal)
		case m.Expires.IsZero():
			s += ", permanent (deleted at stop)"
		default:
			s += ", lease ends " + relTime(now, m.Expires, "-")
		}
		fmt.Fprintf(w, "  Mapped:\t%s\n", s)
	}
	if pm.LastError != "" {
		fmt.Fprintf(w, "  Last error:\t%s (next try %s)\n", pm.LastError, relTime(now, pm.NextTry, "-"))
	}
}

// printReachability shows how phones away from home reach this host.
func printReachability(w io.Writer, v any) {
	var r appliance.Reachability
	if reJSON(v, &r) && r.Case != "" {
		fmt.Fprintf(w, "Reachability:\t%s\n", r.Case)
		if r.IPv4.IsValid() {
			fmt.Fprintf(w, "  Public IPv4:\t%s\n", r.IPv4)
		}
		if r.IPv6.IsValid() {
			fmt.Fprintf(w, "  Global IPv6:\t%s (%s)\n", r.IPv6, r.IPv6Iface)
		}
		fmt.Fprintf(w, "  Advice:\t%s\n", r.Advice)
	}
}

// printDDNS shows what dynamic DNS published, and its last error.
func printDDNS(w io.Writer, now time.Time, v any) {
	var d ddns.Status
	if reJSON(v, &d) && d.Name != "" {
		fmt.Fprintf(w, "Dynamic DNS:\t%s at %s, %d updates, %d failures\n", d.Name, d.Provider, d.Updates, d.Failures)
		fmt.Fprintf(w, "  Published:\t%s\n", cmp.Or(strings.Join(d.Published, ", "), "nothing yet"))
		if !d.LastUpdate.IsZero() {
			fmt.Fprintf(w, "  Last update:\t%s\n", relTime(now, d.LastUpdate, "-"))
		}
		if d.Updating {
			fmt.Fprintf(w, "  Updating:\twaiting for %s to answer\n", d.Provider)
		}
		if d.LastError != "" {
			fmt.Fprintf(w, "  Last error:\t%s (%s; next try %s)\n", d.LastError, relTime(now, d.LastErrorAt, "-"), relTime(now, d.NextRetry, "-"))
		}
	}
}

// printCertificate shows the relay's certificate and its last ACME error.
func printCertificate(w io.Writer, now time.Time, v any) {
	var c relay.CertStatus
	if reJSON(v, &c) && c.Mode != "" {
		line := c.Mode
		if len(c.Names) > 0 {
			line += " for " + strings.Join(c.Names, ", ")
		}
		if !c.NotAfter.IsZero() {
			line += fmt.Sprintf(", valid until %s (%s)", c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), relTime(now, c.NotAfter, "-"))
		} else if c.Mode != relay.CertModeSelfSigned {
			line += ", none yet"
		}
		fmt.Fprintf(w, "Certificate:\t%s\n", line)
		if c.Obtaining {
			fmt.Fprintf(w, "  Obtaining:\tan order is in flight at %s\n", c.Directory)
		}
		if c.LastError != "" {
			fmt.Fprintf(w, "  Last error:\t%s (%s; next try %s)\n", c.LastError, relTime(now, c.LastErrorAt, "-"), relTime(now, c.NextRetry, "-"))
		}
	}
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
	fmt.Fprintf(w, "  Approved:\t%s\n", approvedRoutes(gw))
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
	// Why says whether phones get split DNS, for what and why not.
	var ld appliance.LANDNS
	if reJSON(extra["lan_dns"], &ld) {
		fmt.Fprintf(w, "  LAN DNS:\t%s\n", ld.Why)
	}
	printFW4(w, extra["fw4"])
}

// printFW4 says whether OpenWrt's fw4 lets the tunnel's traffic through,
// and how to fix it when it does not. Without fw4 it prints nothing, and
// so when reading nftables failed (no nf_tables: no fw4 either); --json
// has the error.
func printFW4(w io.Writer, v any) {
	var fw appliance.FW4Status
	switch {
	case !reJSON(v, &fw):
	case fw.Warning != nil:
		fmt.Fprintf(w, "  fw4:\t%s\n", fw.Warning.Message)
		fmt.Fprintf(w, "  Fix:\t%s\n", fw.Warning.Fix)
	case fw.Present && fw.TunMatched:
		fmt.Fprintf(w, "  fw4:\ta zone takes the tunnel's traffic (forward policy %s)\n", fw.ForwardPolicy)
	case fw.Present:
		fmt.Fprintf(w, "  fw4:\tforward policy %s: the tunnel's traffic passes\n", fw.ForwardPolicy)
	}
}

// approvedRoutes says which advertised routes control approved, and
// what to do about the others.
func approvedRoutes(gw subnet.Status) string {
	var missing []string
	for _, p := range gw.Advertised {
		if !slices.Contains(gw.Approved, p) {
			missing = append(missing, p.String())
		}
	}
	s := joinOrDash(gw.Approved)
	if len(missing) > 0 && gw.State == "Running" {
		s += fmt.Sprintf(" (not approved: %s; approve them on the control server)", strings.Join(missing, ", "))
	}
	return s
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
