package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"homenet/appliance"
	"homenet/control"
)

const keysCreateLong = `Create a pre-auth key. The key is printed as the last line of stdout (a
description goes to stderr), so KEY=$(homenet keys create) works. Give it
to "tailscale up --login-server URL --auth-key KEY". It is shown only once.`

// keysCreateFlags binds the flags of keys create.
func keysCreateFlags(fs *flag.FlagSet, o *options) {
	adminFlags(fs, o)
	fs.BoolVar(&o.reusable, "reusable", false, "allow the key to register more than one node")
	fs.BoolVar(&o.ephemeral, "ephemeral", false, "register ephemeral nodes, deleted when they go offline")
	fs.Var(&o.expiry, "expiry", "expire the key after `DURATION`, such as 90m, 12h or 30d (default 24h)")
	fs.Var(&o.tags, "tags", "give nodes registered with the key these ACL `TAGS`, comma-separated (\"tag:\" is added if missing)")
	fs.BoolVar(&o.gatewayKey, "gateway", false, "a key for a home gateway that joins this server (homenet init --join): tagged "+appliance.GatewayTag+", so its routes and exit node are approved without asking")
}

// keysCreate creates a pre-auth key and prints it last.
func keysCreate(ctx context.Context, inv *invocation, a control.Admin) error {
	opts := control.AuthKeyOptions{
		Reusable:  inv.opts.reusable,
		Ephemeral: inv.opts.ephemeral,
		Expiry:    time.Duration(inv.opts.expiry),
		Tags:      inv.opts.tags,
	}
	serverURL := ""
	if inv.opts.gatewayKey {
		gw := appliance.GatewayKeyOptions()
		opts.Tags = append(opts.Tags, gw.Tags...)
		opts.Expiry = cmp.Or(opts.Expiry, gw.Expiry)
		if st, err := a.Status(ctx); err == nil {
			serverURL = st.ServerURL // for the join command
		}
	}
	info, key, err := a.CreateAuthKey(ctx, opts)
	if err != nil {
		return fmt.Errorf("creating key: %w", err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, control.CreatedAuthKey{AuthKeyInfo: info, Key: key})
	}
	fmt.Fprintf(inv.stderr, "Created %s key %s (ID %d) expiring %s.\n",
		keyKind(info), info.Prefix, info.ID, relTime(inv.now, info.Expiry, "never"))
	if serverURL != "" {
		fmt.Fprintf(inv.stderr, "On the home gateway, run:\n  homenet init --join %s --auth-key %s\n", serverURL, key)
	}
	_, err = fmt.Fprintln(inv.stdout, key)
	return err
}

// keyKind describes a key's kind, as in "reusable ephemeral".
func keyKind(k control.AuthKeyInfo) string {
	var kind []string
	if k.Reusable {
		kind = append(kind, "reusable")
	} else {
		kind = append(kind, "single-use")
	}
	if k.Ephemeral {
		kind = append(kind, "ephemeral")
	}
	if len(k.Tags) > 0 {
		kind = append(kind, "tagged")
	}
	return strings.Join(kind, " ")
}

// keysList prints the pre-auth keys.
func keysList(ctx context.Context, inv *invocation, a control.Admin) error {
	keys, err := a.AuthKeys(ctx)
	if err != nil {
		return fmt.Errorf("listing keys: %w", err)
	}
	if inv.opts.json {
		return printJSON(inv.stdout, nonNil(keys))
	}
	if len(keys) == 0 {
		_, err := fmt.Fprintln(inv.stdout, "No keys yet: homenet keys create")
		return err
	}
	t := newTable(inv.stdout, "ID", "PREFIX", "REUSABLE", "EPHEMERAL", "TAGS", "USED", "CREATED", "EXPIRES", "STATE")
	for _, k := range keys {
		t.row(strconv.FormatInt(k.ID, 10), k.Prefix, yesNo(k.Reusable), yesNo(k.Ephemeral),
			strings.Join(k.Tags, ","), strconv.Itoa(k.Used),
			relTime(inv.now, k.Created, ""), relTime(inv.now, k.Expiry, "never"), k.State)
	}
	return t.flush()
}

// keysExpire expires a pre-auth key.
func keysExpire(ctx context.Context, inv *invocation, a control.Admin) error {
	id, err := parseID("key", inv.args[0])
	if err != nil {
		return err
	}
	if err := a.ExpireAuthKey(ctx, id); err != nil {
		return fmt.Errorf("expiring key %d: %w", id, err)
	}
	return done(inv, "Expired key %d.", id)
}

// keysDelete deletes a pre-auth key.
func keysDelete(ctx context.Context, inv *invocation, a control.Admin) error {
	id, err := parseID("key", inv.args[0])
	if err != nil {
		return err
	}
	if err := a.DeleteAuthKey(ctx, id); err != nil {
		return fmt.Errorf("deleting key %d: %w", id, err)
	}
	return done(inv, "Deleted key %d. Nodes it registered stay.", id)
}

// nonNil returns s, or an empty slice for nil, so that JSON shows [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
