package webadmin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"homenet/control"

	"tailscale.com/tailcfg"
)

// serverURL is the login server URL devices use.
func (s *Server) serverURL(ctx context.Context) (string, error) {
	if s.cfg.ServerURL != "" {
		return s.cfg.ServerURL, nil
	}
	st, err := s.cfg.Backend.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("getting the server URL: %w", err)
	}
	return st.ServerURL, nil
}

func (s *Server) overviewPage(r *http.Request) (any, error) {
	ctx := r.Context()
	st, err := s.cfg.Backend.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("getting the status: %w", err)
	}
	pending := st.Pending
	if p, err := s.cfg.Backend.PendingLogins(ctx); err == nil {
		pending = len(p) // Status counts logins too old to approve
	}
	return newOverview(st, cmp.Or(s.cfg.ServerURL, st.ServerURL), pending, s.now()), nil
}

func (s *Server) devicesPage(r *http.Request) (any, error) {
	nodes, err := s.cfg.Backend.Nodes(r.Context())
	if err != nil {
		return nil, fmt.Errorf("listing devices: %w", err)
	}
	return nodes, nil
}

// formNodeID reads the node ID in r's path.
func formNodeID(r *http.Request) (tailcfg.NodeID, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("device ID %q is not a positive integer", s)
	}
	return tailcfg.NodeID(id), nil
}

// nodeName is the name of node id, for messages; "device ID" if it cannot
// be found.
func (s *Server) nodeName(ctx context.Context, id tailcfg.NodeID) string {
	nodes, _ := s.cfg.Backend.Nodes(ctx)
	for _, n := range nodes {
		if n.ID == id {
			return n.Name
		}
	}
	return fmt.Sprintf("device %d", id)
}

func (s *Server) renameDevice(r *http.Request, _ *session) (string, error) {
	id, err := formNodeID(r)
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" {
		return "", fmt.Errorf("renaming device %d: the new name is empty", id)
	}
	old := s.nodeName(r.Context(), id)
	if err := s.cfg.Backend.RenameNode(r.Context(), id, name); err != nil {
		return "", fmt.Errorf("renaming %s to %q: %w", old, name, err)
	}
	return fmt.Sprintf("Renamed %s to %s.", old, name), nil
}

func (s *Server) expireDevice(r *http.Request, _ *session) (string, error) {
	id, err := formNodeID(r)
	if err != nil {
		return "", err
	}
	name := s.nodeName(r.Context(), id)
	if err := s.cfg.Backend.ExpireNode(r.Context(), id); err != nil {
		return "", fmt.Errorf("expiring the key of %s: %w", name, err)
	}
	return fmt.Sprintf("Expired the key of %s: it must log in again.", name), nil
}

func (s *Server) deleteDevice(r *http.Request, _ *session) (string, error) {
	id, err := formNodeID(r)
	if err != nil {
		return "", err
	}
	name := s.nodeName(r.Context(), id)
	if err := s.cfg.Backend.DeleteNode(r.Context(), id); err != nil {
		return "", fmt.Errorf("deleting %s: %w", name, err)
	}
	return fmt.Sprintf("Deleted %s.", name), nil
}

// pendingLogin is a control.PendingLogin as the pages and the JSON
// endpoint show it.
type pendingLogin struct {
	control.PendingLogin
	MachineKeyShort string `json:"machine_key_short"`
	Age             string `json:"age"` // "2 minutes ago", by the server's clock
}

// pendingItem is the data of the pending-login template: a login and its
// forms' CSRF token and return page.
type pendingItem struct {
	Login  pendingLogin
	CSRF   string
	Return string
}

func (s *Server) pendingLogins(ctx context.Context) ([]pendingLogin, error) {
	ps, err := s.cfg.Backend.PendingLogins(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing pending logins: %w", err)
	}
	now := s.now()
	out := make([]pendingLogin, len(ps))
	for i, p := range ps {
		out[i] = pendingLogin{PendingLogin: p, MachineKeyShort: shortKey(p.MachineKey), Age: relTime(now, p.Created)}
	}
	return out, nil
}

func (s *Server) pendingPage(r *http.Request) (any, error) {
	return s.pendingLogins(r.Context())
}

// servePendingJSON serves {"pending": [...]} for the phone page's poll.
func (s *Server) servePendingJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.session(r) == nil {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "your login has ended; log in again"})
		return
	}
	ps, err := s.pendingLogins(r.Context())
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"pending": ps})
}

// pendingHost is the hostname of the pending login with code, for
// messages.
func (s *Server) pendingHost(ctx context.Context, code string) string {
	ps, _ := s.cfg.Backend.PendingLogins(ctx)
	for _, p := range ps {
		if p.Code == code {
			return cmp.Or(p.Hostname, "the device")
		}
	}
	return "the device"
}

func (s *Server) approveLogin(r *http.Request, _ *session) (string, error) {
	code := r.PathValue("code")
	n, err := s.cfg.Backend.ApproveRegistration(r.Context(), code)
	if err != nil {
		return "", fmt.Errorf("approving login %s: %w", code, err)
	}
	msg := fmt.Sprintf("Approved %s: it joins as %s", cmp.Or(n.Hostname, n.Name), n.Name)
	if len(n.Addresses) > 0 {
		msg += " with " + n.Addresses[0].String()
	}
	return msg + ".", nil
}

func (s *Server) denyLogin(r *http.Request, _ *session) (string, error) {
	code := r.PathValue("code")
	host := s.pendingHost(r.Context(), code)
	if err := s.cfg.Backend.DenyRegistration(r.Context(), code); err != nil {
		return "", fmt.Errorf("denying login %s: %w", code, err)
	}
	return fmt.Sprintf("Denied the login of %s (code %s).", host, code), nil
}

// routesData is the data of the routes page.
type routesData struct {
	Routes []control.RouteInfo
}

func (s *Server) routesPage(r *http.Request) (any, error) {
	routes, err := s.cfg.Backend.Routes(r.Context())
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return routesData{Routes: routes}, nil
}

// setRoute returns the action that approves or unapproves the route in the
// form's node_id and prefix.
func (s *Server) setRoute(approved bool) func(*http.Request, *session) (string, error) {
	verb, doing := "Approved", "approving"
	if !approved {
		verb, doing = "Unapproved", "unapproving"
	}
	return func(r *http.Request, _ *session) (string, error) {
		idStr, prefixStr := r.PostForm.Get("node_id"), r.PostForm.Get("prefix")
		id, err := strconv.ParseInt(idStr, 10, 64)
		if err != nil || id <= 0 {
			return "", fmt.Errorf("device ID %q is not a positive integer", idStr)
		}
		p, err := netip.ParsePrefix(prefixStr)
		if err != nil {
			return "", fmt.Errorf("route %q is not a CIDR prefix", prefixStr)
		}
		if err := control.CheckRoute(p); err != nil {
			return "", err
		}
		name := s.nodeName(r.Context(), tailcfg.NodeID(id))
		if err := s.cfg.Backend.SetRouteApproved(r.Context(), tailcfg.NodeID(id), p, approved); err != nil {
			return "", fmt.Errorf("%s %s via %s: %w", doing, p, name, err)
		}
		what := p.String()
		if p.Bits() == 0 {
			what = "the exit node (0.0.0.0/0 and ::/0)"
		}
		return fmt.Sprintf("%s %s via %s.", verb, what, name), nil
	}
}

// keyState says plainly whether a key can still be used, and if not, why.
func keyState(k control.AuthKeyInfo, now time.Time) string {
	switch {
	case k.Valid:
		return "valid"
	case !k.Expiry.IsZero() && !now.Before(k.Expiry):
		return "expired"
	case !k.Reusable && k.Used > 0:
		return "used"
	}
	return "revoked"
}

// keyRow is a key as the keys page lists it.
type keyRow struct {
	control.AuthKeyInfo
	State string
}

// createdKey is a key just created, shown once.
type createdKey struct {
	Info    control.AuthKeyInfo
	Key     string
	QR      template.HTML
	Command string
}

// keysData is the data of the keys page.
type keysData struct {
	Keys    []keyRow
	Expiry  []expiryChoice
	Created *createdKey
}

// expiryChoice is one choice of a new key's lifetime.
type expiryChoice struct {
	Value, Label string
	d            time.Duration
}

// expiryChoices are the lifetimes offered for a new key; the form's value
// must be one of them.
var expiryChoices = []expiryChoice{
	{"1h", "1 hour", time.Hour},
	{"24h", "1 day", 24 * time.Hour},
	{"7d", "7 days", 7 * 24 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour},
	{"90d", "90 days", 90 * 24 * time.Hour},
}

func (s *Server) keysData(ctx context.Context) (keysData, error) {
	keys, err := s.cfg.Backend.AuthKeys(ctx)
	if err != nil {
		return keysData{}, fmt.Errorf("listing keys: %w", err)
	}
	now := s.now()
	d := keysData{Keys: make([]keyRow, len(keys)), Expiry: expiryChoices}
	for i, k := range keys {
		d.Keys[i] = keyRow{AuthKeyInfo: k, State: keyState(k, now)}
	}
	return d, nil
}

func (s *Server) keysPage(r *http.Request) (any, error) {
	return s.keysData(r.Context())
}

// keyOptions reads the key creation form.
func keyOptions(form interface{ Get(string) string }) (control.AuthKeyOptions, error) {
	opts := control.AuthKeyOptions{
		Reusable:  form.Get("reusable") == "on",
		Ephemeral: form.Get("ephemeral") == "on",
	}
	exp := cmp.Or(form.Get("expiry"), "24h")
	for _, c := range expiryChoices {
		if c.Value == exp {
			opts.Expiry = c.d
		}
	}
	if opts.Expiry == 0 {
		return opts, fmt.Errorf("key expiry %q is not one of the choices", exp)
	}
	opts.Tags = strings.FieldsFunc(form.Get("tags"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	return opts, nil
}

// createKey creates a key and shows it on the keys page, in this response
// only: it is never stored, so a reload cannot show it again.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	sess := s.checkPost(w, r)
	if sess == nil {
		return
	}
	ctx := r.Context()
	fail := func(err error) {
		s.log.Warn("webadmin: creating a key failed", "source", sourceAddr(r), "err", err)
		s.sessions.setFlash(sess.id, flash{Message: "Creating a key failed: " + err.Error(), Error: true})
		http.Redirect(w, r, "/keys", http.StatusSeeOther)
	}
	opts, err := keyOptions(r.PostForm)
	if err != nil {
		fail(err)
		return
	}
	info, key, err := s.cfg.Backend.CreateAuthKey(ctx, opts)
	if err != nil {
		fail(err)
		return
	}
	s.log.Info("webadmin: key created", "source", sourceAddr(r), "id", info.ID, "prefix", info.Prefix,
		"reusable", info.Reusable, "ephemeral", info.Ephemeral, "tags", info.Tags, "expiry", info.Expiry)
	d, err := s.keysData(ctx)
	if err != nil {
		fail(err)
		return
	}
	qr, err := qrSVG(key)
	if err != nil {
		fail(err)
		return
	}
	d.Created = &createdKey{Info: info, Key: key, QR: qr, Command: "tailscale up --login-server " + s.shellURL(ctx) + " --auth-key " + key}
	s.render(w, r, http.StatusOK, "keys", pageData{
		Title: "Keys", CSRF: sess.csrf, Flash: &flash{Message: "Created key " + info.Prefix + ". Copy it now: it is not shown again."},
		Data: d,
	})
}

// shellURL is the server URL for a command line, or a placeholder.
func (s *Server) shellURL(ctx context.Context) string {
	u, err := s.serverURL(ctx)
	if err != nil || u == "" {
		return "URL"
	}
	return u
}

func (s *Server) expireKey(r *http.Request, _ *session) (string, error) {
	idStr := r.PathValue("id")
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil || id <= 0 {
		return "", fmt.Errorf("key ID %q is not a positive integer", idStr)
	}
	name := fmt.Sprintf("key %d", id)
	if keys, err := s.cfg.Backend.AuthKeys(r.Context()); err == nil {
		for _, k := range keys {
			if k.ID == id {
				name = "key " + k.Prefix
			}
		}
	}
	if err := s.cfg.Backend.ExpireAuthKey(r.Context(), id); err != nil {
		return "", fmt.Errorf("expiring %s: %w", name, err)
	}
	return fmt.Sprintf("Expired %s: it can no longer be used. Devices it added stay.", name), nil
}

// phoneData is the data of the add-a-phone page.
type phoneData struct {
	ServerURL string
	QR        template.HTML
	Pending   []pendingLogin
}

func (s *Server) phonePage(r *http.Request) (any, error) {
	u, err := s.serverURL(r.Context())
	if err != nil {
		return nil, err
	}
	qr, err := qrSVG(u)
	if err != nil {
		return nil, err
	}
	pending, err := s.pendingLogins(r.Context())
	if err != nil {
		return nil, err
	}
	return phoneData{ServerURL: u, QR: qr, Pending: pending}, nil
}
