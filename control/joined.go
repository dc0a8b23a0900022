package control

import (
	"context"
	"net/netip"

	"tailscale.com/tailcfg"
)

// JoinedAdmin is the Admin of a host that runs no control server: its
// gateway agent joins the one at URL. It answers Status with StatusFunc's
// and every other call with an error, wrapping ErrInvalid, that names the
// server where the call belongs.
type JoinedAdmin struct {
	URL        string
	StatusFunc func(context.Context) (Status, error)
}

var _ Admin = JoinedAdmin{}

func (j JoinedAdmin) elsewhere(what string) error {
	return invalidf("this host runs no control server: its gateway joins %s, so %s there, with homenet on that server (or its own tools)", j.URL, what)
}

func (j JoinedAdmin) Status(ctx context.Context) (Status, error) { return j.StatusFunc(ctx) }

func (j JoinedAdmin) CreateAuthKey(context.Context, AuthKeyOptions) (AuthKeyInfo, string, error) {
	return AuthKeyInfo{}, "", j.elsewhere("create keys")
}
func (j JoinedAdmin) AuthKeys(context.Context) ([]AuthKeyInfo, error) {
	return nil, j.elsewhere("list keys")
}
func (j JoinedAdmin) ExpireAuthKey(context.Context, int64) error { return j.elsewhere("expire keys") }
func (j JoinedAdmin) DeleteAuthKey(context.Context, int64) error { return j.elsewhere("delete keys") }
func (j JoinedAdmin) Nodes(context.Context) ([]NodeInfo, error) {
	return nil, j.elsewhere("list nodes")
}
func (j JoinedAdmin) ApproveRegistration(context.Context, string) (NodeInfo, error) {
	return NodeInfo{}, j.elsewhere("approve logins")
}
func (j JoinedAdmin) PendingLogins(context.Context) ([]PendingLogin, error) {
	return nil, j.elsewhere("list pending logins")
}
func (j JoinedAdmin) DenyRegistration(context.Context, string) error {
	return j.elsewhere("deny logins")
}
func (j JoinedAdmin) RenameNode(context.Context, tailcfg.NodeID, string) error {
	return j.elsewhere("rename nodes")
}
func (j JoinedAdmin) ExpireNode(context.Context, tailcfg.NodeID) error {
	return j.elsewhere("expire nodes")
}
func (j JoinedAdmin) DeleteNode(context.Context, tailcfg.NodeID) error {
	return j.elsewhere("delete nodes")
}
func (j JoinedAdmin) Routes(context.Context) ([]RouteInfo, error) {
	return nil, j.elsewhere("list routes")
}
func (j JoinedAdmin) SetRouteApproved(context.Context, tailcfg.NodeID, netip.Prefix, bool) error {
	return j.elsewhere("approve routes")
}
