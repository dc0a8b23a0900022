package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/control/store"
	"tailscale.com/tailcfg"
)

// recordingAdmin is an Admin that records each call with its arguments and
// answers with canned results, or with err when set.
type recordingAdmin struct {
	err error

	mu    sync.Mutex
	calls []string
}

// adminT0 is the time the canned results of recordingAdmin are built around.
var adminT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The canned results of recordingAdmin.
func adminTestKey() AuthKeyInfo {
	return AuthKeyInfo{ID: 7, Prefix: "hn-abc", Reusable: true, Tags: []string{"tag:a"}, Created: adminT0, Expiry: adminT0.Add(24 * time.Hour), Used: 2, Valid: true}
}

func adminTestNode() NodeInfo {
	return NodeInfo{
		ID: 3, Name: "laptop", Hostname: "Laptop", OS: "linux", NodeKey: "nodekey:01",
		Addresses: []netip.Addr{netip.MustParseAddr("100.86.0.3")}, Online: true,
		Created: adminT0, LastSeen: adminT0.Add(time.Hour), Endpoints: []string{"192.0.2.1:41641"}, HomeDERP: 900,
		AdvertisedRoutes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
	}
}

func adminTestRoute() RouteInfo {
	return RouteInfo{NodeID: 3, NodeName: "laptop", Prefix: netip.MustParsePrefix("0.0.0.0/0"), ExitNode: true}
}

func adminTestStatus() Status {
	return Status{
		Version: "v1", ServerURL: "http://gw:8080", Prefix4: netip.MustParsePrefix("100.86.0.0/16"),
		Started: adminT0, Nodes: 4, Online: 2, Pending: 1,
		DERPRegions: []DERPRegion{{ID: 900, Code: "home", HostName: "gw", DERPPort: 8443, STUNPort: 3478}},
		Extra:       map[string]any{"relay_clients": 2.0, "gateway": "up"},
	}
}

func (f *recordingAdmin) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.err
}

// numCalls returns how many calls were recorded.
func (f *recordingAdmin) numCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// lastCall returns the last recorded call.
func (f *recordingAdmin) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *recordingAdmin) CreateAuthKey(ctx context.Context, opts AuthKeyOptions) (AuthKeyInfo, string, error) {
	if err := f.record("CreateAuthKey %+v", opts); err != nil {
		return AuthKeyInfo{}, "", err
	}
	return adminTestKey(), "hn-abc-secret", nil
}

func (f *recordingAdmin) AuthKeys(ctx context.Context) ([]AuthKeyInfo, error) {
	return []AuthKeyInfo{adminTestKey()}, f.record("AuthKeys")
}

func (f *recordingAdmin) ExpireAuthKey(ctx context.Context, id int64) error {
	return f.record("ExpireAuthKey %d", id)
}

func (f *recordingAdmin) Nodes(ctx context.Context) ([]NodeInfo, error) {
	return []NodeInfo{adminTestNode()}, f.record("Nodes")
}

func (f *recordingAdmin) ApproveRegistration(ctx context.Context, code string) (NodeInfo, error) {
	return adminTestNode(), f.record("ApproveRegistration %q", code)
}

func (f *recordingAdmin) DeleteAuthKey(ctx context.Context, id int64) error {
	return f.record("DeleteAuthKey %d", id)
}

func (f *recordingAdmin) PendingLogins(ctx context.Context) ([]PendingLogin, error) {
	return []PendingLogin{{Code: "abc", Hostname: "phone"}}, f.record("PendingLogins")
}

func (f *recordingAdmin) DenyRegistration(ctx context.Context, code string) error {
	return f.record("DenyRegistration %q", code)
}

func (f *recordingAdmin) RenameNode(ctx context.Context, id tailcfg.NodeID, name string) error {
	return f.record("RenameNode %d %q", id, name)
}

func (f *recordingAdmin) ExpireNode(ctx context.Context, id tailcfg.NodeID) error {
	return f.record("ExpireNode %d", id)
}

func (f *recordingAdmin) DeleteNode(ctx context.Context, id tailcfg.NodeID) error {
	return f.record("DeleteNode %d", id)
}

func (f *recordingAdmin) Routes(ctx context.Context) ([]RouteInfo, error) {
	return []RouteInfo{adminTestRoute()}, f.record("Routes")
}

func (f *recordingAdmin) SetRouteApproved(ctx context.Context, id tailcfg.NodeID, route netip.Prefix, approved bool) error {
	return f.record("SetRouteApproved %d %s %v", id, route, approved)
}

func (f *recordingAdmin) Status(ctx context.Context) (Status, error) {
	return adminTestStatus(), f.record("Status")
}

// startAdminSocket serves the admin API for a on a unix socket in a temporary
// directory until the test ends, and returns the socket's path.
func startAdminSocket(t *testing.T, a Admin) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "admin.sock")
	l, err := ListenAdmin(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeAdmin(ctx, l, a, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeAdmin: %v", err)
		}
	})
	return path
}

// adminRawRequest sends one request to the admin socket and returns the status
// and body of the answer.
func adminRawRequest(t *testing.T, socket, method, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://homenet"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestAdminClientRoundTrip(t *testing.T) {
	fake := &recordingAdmin{}
	c := DialAdmin(startAdminSocket(t, fake))
	defer c.Close()
	ctx := context.Background()

	tests := []struct {
		name     string
		call     func() (any, error)
		wantCall string
		want     any // nil: no result
	}{
		{
			name: "CreateAuthKey",
			call: func() (any, error) {
				info, key, err := c.CreateAuthKey(ctx, AuthKeyOptions{Reusable: true, Ephemeral: true, Expiry: time.Hour, Tags: []string{"tag:a", "tag:b"}})
				return CreatedAuthKey{info, key}, err
			},
			wantCall: "CreateAuthKey {Reusable:true Ephemeral:true Expiry:1h0m0s Tags:[tag:a tag:b]}",
			want:     CreatedAuthKey{adminTestKey(), "hn-abc-secret"},
		},
		{
			name:     "AuthKeys",
			call:     func() (any, error) { return c.AuthKeys(ctx) },
			wantCall: "AuthKeys",
			want:     []AuthKeyInfo{adminTestKey()},
		},
		{
			name:     "ExpireAuthKey",
			call:     func() (any, error) { return nil, c.ExpireAuthKey(ctx, 42) },
			wantCall: "ExpireAuthKey 42",
		},
		{
			name:     "Nodes",
			call:     func() (any, error) { return c.Nodes(ctx) },
			wantCall: "Nodes",
			want:     []NodeInfo{adminTestNode()},
		},
		{
			name:     "DeleteAuthKey",
			call:     func() (any, error) { return nil, c.DeleteAuthKey(ctx, 42) },
			wantCall: "DeleteAuthKey 42",
		},
		{
			name:     "PendingLogins",
			call:     func() (any, error) { return c.PendingLogins(ctx) },
			wantCall: "PendingLogins",
			want:     []PendingLogin{{Code: "abc", Hostname: "phone"}},
		},
		{
			name:     "DenyRegistration",
			call:     func() (any, error) { return nil, c.DenyRegistration(ctx, "abc") },
			wantCall: `DenyRegistration "abc"`,
		},
		{
			name:     "ApproveRegistration",
			call:     func() (any, error) { return c.ApproveRegistration(ctx, "a1b2/c3") },
			wantCall: `ApproveRegistration "a1b2/c3"`,
			want:     adminTestNode(),
		},
		{
			name:     "RenameNode",
			call:     func() (any, error) { return nil, c.RenameNode(ctx, 3, "new name") },
			wantCall: `RenameNode 3 "new name"`,
		},
		{
			name:     "ExpireNode",
			call:     func() (any, error) { return nil, c.ExpireNode(ctx, 4) },
			wantCall: "ExpireNode 4",
		},
		{
			name:     "DeleteNode",
			call:     func() (any, error) { return nil, c.DeleteNode(ctx, 5) },
			wantCall: "DeleteNode 5",
		},
		{
			name:     "Routes",
			call:     func() (any, error) { return c.Routes(ctx) },
			wantCall: "Routes",
			want:     []RouteInfo{adminTestRoute()},
		},
		{
			name: "SetRouteApproved",
			call: func() (any, error) {
				return nil, c.SetRouteApproved(ctx, 6, netip.MustParsePrefix("10.1.0.0/16"), true)
			},
			wantCall: "SetRouteApproved 6 10.1.0.0/16 true",
		},
		{
			name: "SetRouteUnapproved",
			call: func() (any, error) {
				return nil, c.SetRouteApproved(ctx, 6, netip.MustParsePrefix("fd00::/64"), false)
			},
			wantCall: "SetRouteApproved 6 fd00::/64 false",
		},
		{
			name:     "Status",
			call:     func() (any, error) { return c.Status(ctx) },
			wantCall: "Status",
			want:     adminTestStatus(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if call := fake.lastCall(); call != tt.wantCall {
				t.Errorf("server saw %s, want %s", call, tt.wantCall)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAdminErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantIs     error // nil: none
	}{
		{"not found", fmt.Errorf("node 9: %w", store.ErrNotFound), http.StatusNotFound, store.ErrNotFound},
		{"invalid", fmt.Errorf("name %q: %w", "-x", ErrInvalid), http.StatusBadRequest, ErrInvalid},
		{"internal", errors.New("database is locked"), http.StatusInternalServerError, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := startAdminSocket(t, &recordingAdmin{err: tt.err})

			status, body := adminRawRequest(t, socket, "POST", "/v1/nodes/9/expire", "")
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			var e errorResponse
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != tt.err.Error() {
				t.Errorf("body %q, want {\"error\": %q}", body, tt.err.Error())
			}

			c := DialAdmin(socket)
			defer c.Close()
			err := c.ExpireNode(context.Background(), 9)
			if err == nil || err.Error() != tt.err.Error() {
				t.Fatalf("client error %v, want %q", err, tt.err.Error())
			}
			for _, sentinel := range []error{store.ErrNotFound, ErrInvalid} {
				if got := errors.Is(err, sentinel); got != (sentinel == tt.wantIs) {
					t.Errorf("errors.Is(err, %v) = %v", sentinel, got)
				}
			}
		})
	}
}

func TestAdminBadRequests(t *testing.T) {
	fake := &recordingAdmin{}
	socket := startAdminSocket(t, fake)
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantMsg                  string // substring of the error
	}{
		{"malformed JSON", "POST", "/v1/keys", `{"reusable":`, 400, "request body"},
		{"unknown field", "POST", "/v1/keys", `{"reusable":true,"color":"red"}`, 400, `unknown field "color"`},
		{"trailing data", "POST", "/v1/keys", `{} {}`, 400, "after the JSON object"},
		{"empty body", "POST", "/v1/nodes/approve", ``, 400, "empty"},
		{"wrong type", "POST", "/v1/keys", `{"expiry":"1h"}`, 400, "request body"},
		{"not an object", "POST", "/v1/keys", `[1]`, 400, "request body"},
		{"negative expiry", "POST", "/v1/keys", `{"expiry":-1}`, 400, "negative"},
		{"bad tag", "POST", "/v1/keys", `{"tags":["web"]}`, 400, `tag "web"`},
		{"empty code", "POST", "/v1/nodes/approve", `{"code":""}`, 400, "code"},
		{"empty name", "POST", "/v1/nodes/3/rename", `{"name":""}`, 400, "name"},
		{"bad node ID", "POST", "/v1/nodes/abc/expire", ``, 400, `node ID "abc"`},
		{"zero node ID", "DELETE", "/v1/nodes/0", ``, 400, `node ID "0"`},
		{"negative key ID", "POST", "/v1/keys/-2/expire", ``, 400, `key ID "-2"`},
		{"huge node ID", "POST", "/v1/nodes/99999999999999999999/expire", ``, 400, "node ID"},
		{"missing prefix", "POST", "/v1/routes/approve", `{"node_id":3}`, 400, "prefix"},
		{"bad prefix", "POST", "/v1/routes/approve", `{"node_id":3,"prefix":"10.0.0.0/33"}`, 400, "request body"},
		{"host bits", "POST", "/v1/routes/unapprove", `{"node_id":3,"prefix":"10.0.0.1/24"}`, 400, "did you mean 10.0.0.0/24"},
		{"missing node", "POST", "/v1/routes/approve", `{"prefix":"10.0.0.0/24"}`, 400, "node_id"},
		{"too large", "POST", "/v1/nodes/approve", `{"code":"` + strings.Repeat("x", maxAdminBody) + `"}`, 413, "too large"},
		{"unknown path", "GET", "/v1/nope", ``, 404, "GET /v1/nope"},
		{"wrong method", "GET", "/v1/nodes/3", ``, 405, "Method Not Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fake.numCalls()
			status, body := adminRawRequest(t, socket, tt.method, tt.path, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", status, tt.wantStatus, body)
			}
			var e errorResponse
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body %q is not a JSON error: %v", body, err)
			}
			if !strings.Contains(e.Error, tt.wantMsg) {
				t.Errorf("error %q does not contain %q", e.Error, tt.wantMsg)
			}
			if fake.numCalls() != before {
				t.Errorf("Admin was called (%s) for a bad request", fake.lastCall())
			}
		})
	}
}

func TestListenAdmin(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		setup   func(path string) // prepares what lies at path
		wantErr string            // empty: success
	}{
		{"missing parent", func(string) {}, ""},
		{"stale socket", func(path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, ""},
		{"socket in use", func(path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "in use"},
		{"regular file", func(path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a socket"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := filepath.Join(dir, fmt.Sprint(i), "state")
			path := filepath.Join(parent, "admin.sock")
			if i > 0 {
				if err := os.MkdirAll(parent, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tt.setup(path)
			l, err := ListenAdmin(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
				t.Errorf("socket mode %v, want socket 0600", fi.Mode())
			}
			if i == 0 {
				if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("parent dir mode %v (%v), want 0700", fi.Mode(), err)
				}
			}
		})
	}
}

func TestAdminClientUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	c := DialAdmin(path)
	_, err := c.Status(context.Background())
	want := fmt.Sprintf(`cannot reach homenet at %s: is "homenet serve" running?`, path)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want it to start with %q", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not match os.ErrNotExist", err)
	}
}

func FuzzAdminHandler(f *testing.F) {
	seeds := []struct{ method, path, body string }{
		{"POST", "/v1/keys", `{"reusable":true,"expiry":3600000000000,"tags":["tag:a"]}`},
		{"GET", "/v1/keys", ""},
		{"POST", "/v1/keys/1/expire", ""},
		{"POST", "/v1/nodes/approve", `{"code":"abc"}`},
		{"POST", "/v1/nodes/1/rename", `{"name":"x"}`},
		{"DELETE", "/v1/nodes/1", ""},
		{"POST", "/v1/routes/approve", `{"node_id":1,"prefix":"10.0.0.0/8"}`},
		{"GET", "/v1/status", ""},
		{"PUT", "/v1/../v1/nodes//1", "{"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body)
	}
	h := AdminHandler(&recordingAdmin{}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, method, path, body string) {
		req, err := http.NewRequest(method, "http://homenet/", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.URL.Path = path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q %q: status %d: %s", method, path, body, w.Code, w.Body)
		}
	})
}
