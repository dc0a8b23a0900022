package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"homenet/control/store"
	"tailscale.com/tailcfg"
)

// AdminClient implements Admin by calling the admin API of a running server
// over its unix socket. The CLI works against Admin through it.
type AdminClient struct {
	socket string
	hc     *http.Client
}

var _ Admin = (*AdminClient)(nil)

// DialAdmin returns a client for the admin API at socketPath. It does not
// connect yet: each call dials the socket, and a missing socket or a server
// that is not running is reported by the call.
func DialAdmin(socketPath string) *AdminClient {
	c := &AdminClient{socket: socketPath}
	var d net.Dialer
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, &UnreachableError{Socket: socketPath, Err: err}
			}
			return conn, nil
		},
		DisableCompression: true,
		MaxIdleConns:       1,
	}}
	return c
}

// Close releases idle connections to the server.
func (c *AdminClient) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// AdminError is an error answered by the admin API. It matches
// store.ErrNotFound (status 404) and ErrInvalid (status 400) with errors.Is.
type AdminError struct {
	Status  int    // HTTP status
	Message string // the server's message
}

func (e *AdminError) Error() string { return e.Message }

// Is makes errors.Is see the sentinel the server mapped to e.Status.
func (e *AdminError) Is(target error) bool {
	switch e.Status {
	case http.StatusNotFound:
		return target == store.ErrNotFound
	case http.StatusBadRequest:
		return target == ErrInvalid
	}
	return false
}

// UnreachableError reports that the admin socket could not be dialed,
// usually because the server is not running.
type UnreachableError struct {
	Socket string // path of the admin socket
	Err    error  // from dialing it
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM) {
		return fmt.Sprintf("cannot reach homenet at %s: permission denied; run as root or as the user running \"homenet serve\"", e.Socket)
	}
	cause := e.Err
	if se, ok := errors.AsType[*os.SyscallError](cause); ok {
		cause = se.Err // the path is in the message already
	}
	return fmt.Sprintf("cannot reach homenet at %s: is \"homenet serve\" running? (%v)", e.Socket, cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// CreateAuthKey creates a pre-auth key with POST /v1/keys.
func (c *AdminClient) CreateAuthKey(ctx context.Context, opts AuthKeyOptions) (AuthKeyInfo, string, error) {
	var res CreatedAuthKey
	err := c.do(ctx, "POST", "/v1/keys", opts, &res)
	return res.AuthKeyInfo, res.Key, err
}

// AuthKeys lists pre-auth keys with GET /v1/keys.
func (c *AdminClient) AuthKeys(ctx context.Context) ([]AuthKeyInfo, error) {
	var res []AuthKeyInfo
	err := c.do(ctx, "GET", "/v1/keys", nil, &res)
	return res, err
}

// ExpireAuthKey expires pre-auth key id with POST /v1/keys/{id}/expire.
func (c *AdminClient) ExpireAuthKey(ctx context.Context, id int64) error {
	return c.do(ctx, "POST", "/v1/keys/"+strconv.FormatInt(id, 10)+"/expire", nil, nil)
}

// Nodes lists nodes with GET /v1/nodes.
func (c *AdminClient) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var res []NodeInfo
	err := c.do(ctx, "GET", "/v1/nodes", nil, &res)
	return res, err
}

// ApproveRegistration approves a pending login with POST /v1/nodes/approve.
func (c *AdminClient) ApproveRegistration(ctx context.Context, code string) (NodeInfo, error) {
	var res NodeInfo
	err := c.do(ctx, "POST", "/v1/nodes/approve", approveRequest{Code: code}, &res)
	return res, err
}

// DeleteAuthKey deletes a pre-auth key with DELETE /v1/keys/{id}.
func (c *AdminClient) DeleteAuthKey(ctx context.Context, id int64) error {
	return c.do(ctx, "DELETE", "/v1/keys/"+strconv.FormatInt(id, 10), nil, nil)
}

// PendingLogins lists pending logins with GET /v1/nodes/pending.
func (c *AdminClient) PendingLogins(ctx context.Context) ([]PendingLogin, error) {
	var res []PendingLogin
	err := c.do(ctx, "GET", "/v1/nodes/pending", nil, &res)
	return res, err
}

// DenyRegistration refuses a pending login with POST /v1/nodes/deny.
func (c *AdminClient) DenyRegistration(ctx context.Context, code string) error {
	return c.do(ctx, "POST", "/v1/nodes/deny", approveRequest{Code: code}, nil)
}

// RenameNode renames node id with POST /v1/nodes/{id}/rename.
func (c *AdminClient) RenameNode(ctx context.Context, id tailcfg.NodeID, name string) error {
	return c.do(ctx, "POST", nodePath(id, "/rename"), renameRequest{Name: name}, nil)
}

// ExpireNode expires the key of node id with POST /v1/nodes/{id}/expire.
func (c *AdminClient) ExpireNode(ctx context.Context, id tailcfg.NodeID) error {
	return c.do(ctx, "POST", nodePath(id, "/expire"), nil, nil)
}

// DeleteNode deletes node id with DELETE /v1/nodes/{id}.
func (c *AdminClient) DeleteNode(ctx context.Context, id tailcfg.NodeID) error {
	return c.do(ctx, "DELETE", nodePath(id, ""), nil, nil)
}

// Routes lists advertised routes with GET /v1/routes.
func (c *AdminClient) Routes(ctx context.Context) ([]RouteInfo, error) {
	var res []RouteInfo
	err := c.do(ctx, "GET", "/v1/routes", nil, &res)
	return res, err
}

// SetRouteApproved approves or unapproves a route with POST /v1/routes/approve or /unapprove.
func (c *AdminClient) SetRouteApproved(ctx context.Context, id tailcfg.NodeID, route netip.Prefix, approved bool) error {
	path := "/v1/routes/unapprove"
	if approved {
		path = "/v1/routes/approve"
	}
	return c.do(ctx, "POST", path, routeRequest{NodeID: id, Prefix: route}, nil)
}

// Status summarises the server with GET /v1/status.
func (c *AdminClient) Status(ctx context.Context) (Status, error) {
	var res Status
	err := c.do(ctx, "GET", "/v1/status", nil, &res)
	return res, err
}

// nodePath is the admin API path of node id, followed by suffix.
func nodePath(id tailcfg.NodeID, suffix string) string {
	return "/v1/nodes/" + strconv.FormatInt(int64(id), 10) + suffix
}

// do sends in (if non-nil) as JSON to method path and decodes the answer into
// out (if non-nil). Error answers become *AdminError.
func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://homenet"+path, body)
	if err != nil {
		return fmt.Errorf("admin request %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*UnreachableError](err); ok {
			return ue
		}
		return fmt.Errorf("admin request %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading answer to %s %s: %w", method, path, err)
	}
	if res.StatusCode >= 300 {
		return &AdminError{Status: res.StatusCode, Message: errorMessage(res.StatusCode, b)}
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding answer to %s %s: %w", method, path, err)
	}
	return nil
}

// errorMessage extracts the message of an admin API error answer, falling
// back to its text or its status.
func errorMessage(status int, body []byte) string {
	var e errorResponse
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(body)); s != "" && len(s) < 200 {
		return s
	}
	return fmt.Sprintf("admin API: %d %s", status, http.StatusText(status))
}
