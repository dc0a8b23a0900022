package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"homenet/control"
)

const nodesApproveLong = `Approve a pending interactive login. A device that runs "tailscale up
--login-server URL" without a key shows a URL ending in a code; give that
code (or the whole URL).`

// nodesList prints the nodes.
func nodesList(ctx context.Context, inv *invocation, a control.Admin) error {
	nodes, err := a.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, nonNil(nodes))
	}
	if len(nodes) == 0 {
		url := "URL"
		if st, err := a.Status(ctx); err == nil && st.ServerURL != "" {
			url = st.ServerURL
		}
		_, err := fmt.Fprintf(inv.stdout, "No nodes yet: on a phone or computer, tailscale up --login-server %s --auth-key KEY, with a KEY from homenet keys create\n", url)
		return err
	}
	t := newTable(inv.stdout, "ID", "NAME", "ADDRESSES", "OS", "STATUS", "LAST SEEN", "KEY EXPIRES", "TAGS")
	for _, n := range nodes {
		lastSeen := relTime(inv.now, n.LastSeen, "never")
		if n.Online {
			lastSeen = "now"
		}
		t.row(strconv.FormatInt(int64(n.ID), 10), n.Name, joinStrings(n.Addresses), n.OS,
			nodeStatus(n), lastSeen, relTime(inv.now, n.KeyExpiry, "never"), strings.Join(n.Tags, ","))
	}
	return t.flush()
}

// nodeStatus sums up a node's state in a word or two.
func nodeStatus(n control.NodeInfo) string {
	s := "offline"
	switch {
	case n.Expired:
		s = "expired"
	case n.Online:
		s = "online"
	}
	if n.Ephemeral {
		s += ",ephemeral"
	}
	return s
}

// loginCode is the code of a pending login: arg itself, or the last path
// element of the whole URL the device printed.
func loginCode(arg string) (string, error) {
	code := arg
	if i := strings.LastIndex(code, "/"); i >= 0 && strings.Contains(code, "://") {
		code = code[i+1:]
	}
	if code == "" {
		return "", usageErrorf("empty CODE")
	}
	return code, nil
}

// nodesApprove approves a pending login.
func nodesApprove(ctx context.Context, inv *invocation, a control.Admin) error {
	code, err := loginCode(inv.args[0])
	if err != nil {
		return err
	}
	n, err := a.ApproveRegistration(ctx, code)
	if err != nil {
		return fmt.Errorf("approving %q: %w", code, err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, n)
	}
	_, err = fmt.Fprintf(inv.stdout, "Approved node %s (ID %d, %s).\n", n.Name, n.ID, joinStrings(n.Addresses))
	return err
}

// nodesPending lists the logins waiting for approval.
func nodesPending(ctx context.Context, inv *invocation, a control.Admin) error {
	pending, err := a.PendingLogins(ctx)
	if err != nil {
		return fmt.Errorf("listing pending logins: %w", err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, nonNil(pending))
	}
	if len(pending) == 0 {
		_, err := fmt.Fprintln(inv.stdout, "No logins waiting. A device that runs tailscale up --login-server URL without a key appears here.")
		return err
	}
	t := newTable(inv.stdout, "CODE", "HOSTNAME", "OS", "MACHINE KEY", "WAITING SINCE")
	for _, p := range pending {
		t.row(p.Code, p.Hostname, p.OS, shortKey(p.MachineKey), relTime(inv.now, p.Created, "-"))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(inv.stdout, "Approve with: homenet nodes approve CODE; refuse with: homenet nodes deny CODE")
	return err
}

// shortKey shortens a key for a table, as tailscale does.
func shortKey(k string) string {
	if prefix, hex, ok := strings.Cut(k, ":"); ok && len(hex) > 8 {
		return prefix + ":" + hex[:8] + "…"
	}
	return k
}

// nodesDeny refuses a pending login.
func nodesDeny(ctx context.Context, inv *invocation, a control.Admin) error {
	code, err := loginCode(inv.args[0])
	if err != nil {
		return err
	}
	if err := a.DenyRegistration(ctx, code); err != nil {
		return fmt.Errorf("denying %q: %w", code, err)
	}
	return done(inv, "Denied the login %s: the device is told so.", code)
}

// nodesRename renames a node.
func nodesRename(ctx context.Context, inv *invocation, a control.Admin) error {
	id, err := parseNodeID(inv.args[0])
	if err != nil {
		return err
	}
	name := inv.args[1]
	if name == "" {
		return usageErrorf("empty NAME")
	}
	if err := a.RenameNode(ctx, id, name); err != nil {
		return fmt.Errorf("renaming node %d: %w", id, err)
	}
	return done(inv, "Renamed node %d to %s.", id, name)
}

// nodesExpire expires a node's key.
func nodesExpire(ctx context.Context, inv *invocation, a control.Admin) error {
	id, err := parseNodeID(inv.args[0])
	if err != nil {
		return err
	}
	if err := a.ExpireNode(ctx, id); err != nil {
		return fmt.Errorf("expiring node %d: %w", id, err)
	}
	return done(inv, "Expired node %d; it must log in again.", id)
}

// nodesDelete deletes a node.
func nodesDelete(ctx context.Context, inv *invocation, a control.Admin) error {
	id, err := parseNodeID(inv.args[0])
	if err != nil {
		return err
	}
	if err := a.DeleteNode(ctx, id); err != nil {
		return fmt.Errorf("deleting node %d: %w", id, err)
	}
	return done(inv, "Deleted node %d.", id)
}
