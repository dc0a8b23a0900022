package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"homenet/control/store"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// The home tailnet has a single user that owns every device. Tagged nodes,
// such as the gateway, belong to no person: as in Tailscale, clients see
// them owned by "tagged-devices", so they are no Taildrop target.
var (
	homeUser      = tailcfg.User{ID: 1, DisplayName: "Home"}
	homeLogin     = tailcfg.Login{ID: 1, LoginName: "home", DisplayName: "Home"}
	homeProfile   = tailcfg.UserProfile{ID: 1, LoginName: "home", DisplayName: "Home"}
	taggedUser    = tailcfg.User{ID: 2, DisplayName: "Tagged devices"}
	taggedProfile = tailcfg.UserProfile{ID: 2, LoginName: "tagged-devices", DisplayName: "Tagged devices"}
)

// userOf is the user that owns n.
func userOf(n *node) tailcfg.User {
	if len(n.Tags) > 0 {
		return taggedUser
	}
	return homeUser
}

const (
	pendingTTL = 15 * time.Minute
	maxPending = 256
)

// pendingReg is an interactive login waiting for the owner's approval.
type pendingReg struct {
	code       string
	machineKey key.MachinePublic
	nodeKey    key.NodePublic
	hostinfo   *tailcfg.Hostinfo
	ephemeral  bool
	created    time.Time
	done       chan struct{} // closed once approved or denied
	denied     bool          // set under Server.mu before done is closed
	source     netip.Prefix  // where it came from (see limits.go); zero: this host
}

// registerError is a refusal the client should show to its user; it is
// sent in RegisterResponse.Error with status 200, as clients expect.
type registerError string

func (e registerError) Error() string { return string(e) }

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	var req tailcfg.RegisterRequest
	if err := readJSON(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.NodeKey.IsZero() {
		http.Error(w, "register request without node key", http.StatusBadRequest)
		return
	}
	var res *tailcfg.RegisterResponse
	err := tooOld(noiseCapVer(r), &req)
	if err == nil {
		res, err = s.register(r.Context(), peerMachineKey(r), &req)
	}
	var rerr registerError
	switch {
	case errors.As(err, &rerr):
		s.metrics.regRefused.Add(1)
		s.log.Info("control: registration refused", "node_key", req.NodeKey.ShortString(), "remote", r.RemoteAddr, "reason", rerr.Error())
		res = &tailcfg.RegisterResponse{Error: rerr.Error()}
	case r.Context().Err() != nil:
		return
	case err != nil:
		s.metrics.regFailed.Add(1)
		s.log.Error("control: register failed", "node_key", req.NodeKey.ShortString(), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSONResponse(w, res)
}

// releaseRe finds the release in Hostinfo.IPNVersion, such as "1.80.3" in
// "1.80.3-t1234abcde-g5678abcde".
var releaseRe = regexp.MustCompile(`^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}`)

// tooOld refuses a client older than MinCapVer, unless it is logging out,
// with a message its user can act on. Clients show RegisterResponse.Error
// as it is ("backend error: …" from tailscale up, an error in the apps)
// and tailscale up exits; an HTTP error here or on /machine/map, or a
// refused Noise upgrade, leaves them retrying with nothing on the screen.
func tooOld(capVer tailcfg.CapabilityVersion, req *tailcfg.RegisterRequest) error {
	if capVer >= MinCapVer || isLogout(req, time.Now()) {
		return nil
	}
	return registerError(needVersion(capVer, req.Hostinfo))
}

// needVersion tells the user of a client older than MinCapVer what to run
// instead, naming the client's release when its Hostinfo has one.
func needVersion(capVer tailcfg.CapabilityVersion, hi *tailcfg.Hostinfo) string {
	this := fmt.Sprintf("speaks capability version %d", capVer)
	if hi != nil {
		if v := releaseRe.FindString(hi.IPNVersion); v != "" {
			this = "is " + v
		}
	}
	return fmt.Sprintf("homenet needs Tailscale %s or newer (this client %s)", minVersion, this)
}

// isLogout reports whether req asks to expire its node key: how clients log out.
func isLogout(req *tailcfg.RegisterRequest, now time.Time) bool {
	return !req.Expiry.IsZero() && req.Expiry.Before(now)
}

func (s *Server) register(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest) (*tailcfg.RegisterResponse, error) {
	now := time.Now()
	switch {
	case isLogout(req, now):
		return s.logout(ctx, mkey, req.NodeKey)
	case req.Followup != "":
		return s.awaitApproval(ctx, mkey, req.Followup)
	case req.Auth != nil && req.Auth.AuthKey != "":
		return s.registerWithAuthKey(ctx, mkey, req)
	}

	s.mu.Lock()
	n := s.byNodeKey[req.NodeKey]
	if n != nil && n.MachineKey != mkey {
		s.mu.Unlock()
		return nil, registerError("node key is registered to another machine")
	}
	if n != nil && !n.expired(now) {
		s.mu.Unlock()
		return authorized(n, now), nil
	}
	if o := s.byNodeKey[req.OldNodeKey]; o != nil && !req.OldNodeKey.IsZero() && o.MachineKey == mkey && !o.expired(now) {
		// A key rotation by a node in good standing needs no new login.
		s.mu.Unlock()
		n, err := s.enroll(ctx, mkey, req.NodeKey, req.Hostinfo, nil, o.Ephemeral)
		if err != nil {
			return nil, err
		}
		s.metrics.regRekey.Add(1)
		return authorized(n, now), nil
	}
	s.mu.Unlock()
	return s.startInteractive(sourceOf(ctx), mkey, req)
}

func authorized(n *node, now time.Time) *tailcfg.RegisterResponse {
	return &tailcfg.RegisterResponse{
		User:              homeUser,
		Login:             homeLogin,
		MachineAuthorized: true,
		NodeKeyExpired:    n.expired(now),
	}
}

func (s *Server) registerWithAuthKey(ctx context.Context, mkey key.MachinePublic, req *tailcfg.RegisterRequest) (*tailcfg.RegisterResponse, error) {
	prefix, secret, err := parseAuthKey(req.Auth.AuthKey)
	if err != nil {
		return nil, registerError("invalid auth key: " + err.Error())
	}
	ak, err := s.cfg.Store.AuthKeyByPrefix(ctx, prefix)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !secretMatches(ak, secret)) {
		return nil, registerError("invalid auth key")
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	existing := s.byMachine[mkey]
	s.mu.Unlock()
	// A node in good standing re-registering with the key that enrolled it
	// (tailscale up run again) doesn't need the key to be still usable.
	reuse := existing != nil && existing.AuthKeyID == ak.ID && !existing.expired(now)
	if !reuse && !authKeyValid(ak, now) {
		return nil, registerError("auth key expired or already used")
	}
	n, err := s.enroll(ctx, mkey, req.NodeKey, req.Hostinfo, &ak, ak.Ephemeral)
	if err != nil {
		return nil, err
	}
	s.metrics.regAuthKey.Add(1)
	return authorized(n, now), nil
}

// enroll creates the node for mkey or, if the machine is known, gives it a
// new node key and expiry while keeping its ID, name and addresses. A
// non-nil ak is the pre-auth key used.
func (s *Server) enroll(ctx context.Context, mkey key.MachinePublic, nk key.NodePublic, hi *tailcfg.Hostinfo, ak *store.AuthKey, ephemeral bool) (*node, error) {
	s.mu.Lock()
	if other := s.byNodeKey[nk]; other != nil && other.MachineKey != mkey {
		s.mu.Unlock()
		return nil, registerError("node key is registered to another machine")
	}
	now := time.Now()
	old, isNew := s.byMachine[mkey], false
	var sn store.Node
	if old != nil {
		sn = old.Node
	} else {
		isNew = true
		ip, err := nextFreeIPv4(s.cfg.Prefix4, s.usedIPv4Locked())
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		sn = store.Node{
			MachineKey: mkey,
			Name:       s.uniqueNameLocked(hostnameOf(hi), 0),
			IPv4:       ip,
			IPv6:       v6For(ip),
			Created:    now,
		}
	}
	revoked := sn.NodeKey
	sn.NodeKey = nk
	if hi != nil {
		sn.Hostinfo = hi.Clone()
	}
	sn.Ephemeral = ephemeral
	// Re-registering with the key that enrolled the node doesn't use it up.
	useKey := ak != nil && (isNew || sn.AuthKeyID != ak.ID || old.expired(now))
	if ak != nil {
		sn.AuthKeyID, sn.Tags = ak.ID, slices.Clone(ak.Tags)
	}
	// Tagged nodes are infrastructure (the gateway's own agent): their keys
	// don't expire, like tagged devices on Tailscale.
	sn.KeyExpiry = time.Time{}
	if s.cfg.NodeKeyExpiry > 0 && len(sn.Tags) == 0 {
		sn.KeyExpiry = now.Add(s.cfg.NodeKeyExpiry)
	}
	var err error
	if useKey {
		err = s.cfg.Store.RegisterWithAuthKey(ctx, &sn, ak.ID)
	} else {
		err = s.cfg.Store.PutNode(ctx, &sn)
	}
	if errors.Is(err, store.ErrKeyUnusable) {
		s.mu.Unlock()
		return nil, registerError("auth key expired or already used")
	}
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("saving node %q: %w", sn.Name, err)
	}
	n := old
	if isNew {
		n = &node{Node: sn}
		s.addNodeLocked(n)
	} else {
		delete(s.byNodeKey, n.NodeKey)
		n.Node = sn
		s.byNodeKey[nk] = n
	}
	s.touchLocked(n)
	s.mu.Unlock()

	s.log.Info("control: node registered", "id", sn.ID, "name", sn.Name, "ip", sn.IPv4, "new", isNew, "auth_key", ak != nil)
	if revoked != nk {
		s.revoke(revoked)
	}
	return n, nil
}

func (s *Server) logout(ctx context.Context, mkey key.MachinePublic, nk key.NodePublic) (*tailcfg.RegisterResponse, error) {
	s.mu.Lock()
	n := s.byNodeKey[nk]
	s.mu.Unlock()
	if n == nil || n.MachineKey != mkey {
		return &tailcfg.RegisterResponse{NodeKeyExpired: true}, nil
	}
	var err error
	if n.Ephemeral {
		err = s.DeleteNode(ctx, n.ID)
	} else {
		err = s.ExpireNode(ctx, n.ID)
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("control: node logged out", "id", n.ID, "name", n.Name)
	return &tailcfg.RegisterResponse{NodeKeyExpired: true, MachineAuthorized: true}, nil
}

// startInteractive registers a pending login from src and answers with the
// URL where the owner approves it.
func (s *Server) startInteractive(src netip.Prefix, mkey key.MachinePublic, req *tailcfg.RegisterRequest) (*tailcfg.RegisterResponse, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var pr *pendingReg
	for code, p := range s.pending {
		switch {
		case now.Sub(p.created) > pendingTTL:
			delete(s.pending, code)
		case p.machineKey == mkey && p.nodeKey == req.NodeKey:
			pr = p
		}
	}
	if pr == nil {
		if len(s.pending) >= maxPending {
			return nil, registerError("too many logins are waiting for approval; try again later")
		}
		if err := s.pendingShareLocked(src); err != nil {
			return nil, err
		}
		pr = &pendingReg{
			code:       randHex(6),
			machineKey: mkey,
			nodeKey:    req.NodeKey,
			hostinfo:   req.Hostinfo.Clone(),
			ephemeral:  req.Ephemeral,
			created:    now,
			done:       make(chan struct{}),
			source:     src,
		}
		s.pending[pr.code] = pr
		s.log.Info("control: login waiting for approval", "code", pr.code, "hostname", hostnameOf(req.Hostinfo))
	}
	return &tailcfg.RegisterResponse{AuthURL: s.authURL(pr.code)}, nil
}

func (s *Server) authURL(code string) string {
	return strings.TrimSuffix(s.cfg.ServerURL, "/") + "/register/" + code
}

// awaitApproval long-polls until the login behind followup is approved.
func (s *Server) awaitApproval(ctx context.Context, mkey key.MachinePublic, followup string) (*tailcfg.RegisterResponse, error) {
	u, err := url.Parse(followup)
	if err != nil {
		return nil, registerError("bad followup URL")
	}
	s.mu.Lock()
	pr := s.pending[path.Base(u.Path)]
	s.mu.Unlock()
	if pr == nil || pr.machineKey != mkey {
		return nil, registerError("this login has expired; run tailscale up again")
	}
	select {
	case <-pr.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	n, denied := s.byMachine[mkey], pr.denied
	s.mu.Unlock()
	if denied {
		return nil, registerError("the owner denied this login")
	}
	if n == nil {
		return nil, registerError("the node was deleted")
	}
	return authorized(n, time.Now()), nil
}

// approve enrolls the node behind a pending login.
// The login is taken out of the pending set first, so that of two
// approvals (or an approval and a denial) at once only one acts.
func (s *Server) approve(ctx context.Context, code string) (*node, error) {
	s.mu.Lock()
	pr := s.pending[code]
	delete(s.pending, code)
	s.mu.Unlock()
	if pr == nil {
		return nil, fmt.Errorf("no login is waiting with code %q: %w", code, store.ErrNotFound)
	}
	n, err := s.enroll(ctx, pr.machineKey, pr.nodeKey, pr.hostinfo, nil, pr.ephemeral)
	if err != nil {
		s.mu.Lock()
		s.pending[code] = pr // still waiting: the owner may try again
		s.mu.Unlock()
		return nil, err
	}
	s.metrics.regApproved.Add(1)
	close(pr.done)
	return n, nil
}

func hostnameOf(hi *tailcfg.Hostinfo) string {
	if hi == nil {
		return ""
	}
	return hi.Hostname
}

// uniqueNameLocked turns a hostname into a DNS label no other node (but
// except) has.
func (s *Server) uniqueNameLocked(hostname string, except tailcfg.NodeID) string {
	base := dnsLabel(hostname)
	taken := func(name string) bool {
		for _, n := range s.nodes {
			if n.Name == name && n.ID != except {
				return true
			}
		}
		return false
	}
	name := base
	for i := 2; taken(name); i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	return name
}

// dnsLabel lowercases s and keeps only letters, digits and inner hyphens.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '.' || r == '_' || r == ' ':
			b.WriteByte('-')
		}
	}
	l := strings.Trim(b.String(), "-")
	if len(l) > 50 {
		l = strings.Trim(l[:50], "-")
	}
	if l == "" {
		return "node"
	}
	return l
}
