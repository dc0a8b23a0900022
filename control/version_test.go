package control

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tailscale.com/control/ts2021"
	"tailscale.com/net/tsdial"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func TestNeedVersion(t *testing.T) {
	tests := []struct {
		name string
		hi   *tailcfg.Hostinfo
		want string
	}{
		{"release build", &tailcfg.Hostinfo{IPNVersion: "1.80.3-t1234abcde-g5678abcde"}, "homenet needs Tailscale 1.84 or newer (this client is 1.80.3)"},
		{"plain go build", &tailcfg.Hostinfo{IPNVersion: "1.82.0-ERR-BuildInfo"}, "homenet needs Tailscale 1.84 or newer (this client is 1.82.0)"},
		{"no version", &tailcfg.Hostinfo{}, "homenet needs Tailscale 1.84 or newer (this client speaks capability version 113)"},
		{"no hostinfo", nil, "homenet needs Tailscale 1.84 or newer (this client speaks capability version 113)"},
		// Hostinfo is the client's word: only a release number goes back.
		{"garbage", &tailcfg.Hostinfo{IPNVersion: "<b>1.80.3</b>"}, "homenet needs Tailscale 1.84 or newer (this client speaks capability version 113)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := needVersion(113, tt.hi); got != tt.want {
				t.Errorf("needVersion(113, %+v) = %q, want %q", tt.hi, got, tt.want)
			}
		})
	}
}

// oldClient speaks to the server over Noise announcing capability version
// capVer in the handshake, as a client of that version does.
type oldClient struct {
	nc *ts2021.Client
	mk key.MachinePrivate
}

func newOldClient(t *testing.T, s *testServer, mk key.MachinePrivate, capVer tailcfg.CapabilityVersion) *oldClient {
	t.Helper()
	nc, err := ts2021.NewClient(ts2021.ClientOpts{
		ServerURL:       s.url,
		PrivKey:         mk,
		ServerPubKey:    s.noiseKey.Public(),
		Dialer:          tsdial.NewFromFuncForDebug(t.Logf, (&net.Dialer{}).DialContext),
		Logf:            t.Logf,
		ProtocolVersion: uint16(capVer),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &oldClient{nc: nc, mk: mk}
}

// post sends body to path and returns the status and the response body.
func (c *oldClient) post(t *testing.T, path string, nk key.NodePublic, body any) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.nc.Post(ctx, path, nk, body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return res.StatusCode, b
}

func (c *oldClient) register(t *testing.T, req *tailcfg.RegisterRequest) *tailcfg.RegisterResponse {
	t.Helper()
	code, b := c.post(t, "/machine/register", req.NodeKey, req)
	if code != http.StatusOK {
		t.Fatalf("register: status %d: %s", code, b)
	}
	res := new(tailcfg.RegisterResponse)
	if err := json.Unmarshal(b, res); err != nil {
		t.Fatalf("register response %s: %v", b, err)
	}
	return res
}

// TestOldClients: a client older than MinCapVer is refused at registration
// with RegisterResponse.Error naming the version it needs, before its auth
// key is spent or a login waits for approval; it may still log out.
func TestOldClients(t *testing.T) {
	tests := []struct {
		name    string
		capVer  tailcfg.CapabilityVersion
		version string // Hostinfo.IPNVersion
		wantErr string // "" for admitted
	}{
		{"1.80.3", 113, "1.80.3-t1234abcde-g5678abcde", "homenet needs Tailscale 1.84 or newer (this client is 1.80.3)"},
		{"1.82.0", 115, "1.82.0-t1234abcde-g5678abcde", "homenet needs Tailscale 1.84 or newer (this client is 1.82.0)"},
		{"1.84.0", MinCapVer, "1.84.0-t1234abcde-g5678abcde", ""},
		{"current", tailcfg.CurrentCapabilityVersion, "1.102.5-t1234abcde-g5678abcde", ""},
	}
	s := newTestServer(t, "100.86.0.0/16")
	pending := func() int {
		p, err := s.PendingLogins(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(p)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A one-off key: a refusal must leave it usable.
			ak := mustAuthKey(t, s.Server, AuthKeyOptions{})
			c := newOldClient(t, s, key.NewMachine(), tt.capVer)
			nk := key.NewNode().Public()
			hi := &tailcfg.Hostinfo{Hostname: "phone-" + tt.name, IPNVersion: tt.version}
			res := c.register(t, &tailcfg.RegisterRequest{Version: 1, NodeKey: nk, Hostinfo: hi, Auth: &tailcfg.RegisterResponseAuth{AuthKey: ak}})
			if res.Error != tt.wantErr || res.MachineAuthorized != (tt.wantErr == "") {
				t.Fatalf("register with a key: Error %q, authorized %v; want Error %q", res.Error, res.MachineAuthorized, tt.wantErr)
			}
			// Without a key: no login is left waiting for the owner.
			before := pending()
			res = c.register(t, &tailcfg.RegisterRequest{Version: 1, NodeKey: key.NewNode().Public(), Hostinfo: hi})
			if n := pending(); tt.wantErr != "" && (res.Error != tt.wantErr || res.AuthURL != "" || n != before) {
				t.Errorf("interactive register: Error %q, AuthURL %q, %d pending (was %d); want Error %q and none more",
					res.Error, res.AuthURL, n, before, tt.wantErr)
			}
			if tt.wantErr == "" {
				return
			}
			if res := newTestNode(t, s.url, "other").register(t, ak); !res.MachineAuthorized {
				t.Errorf("the key an old client tried was used up: %+v", res)
			}
			code, b := c.post(t, "/machine/map", nk, &tailcfg.MapRequest{Version: tt.capVer, NodeKey: nk, Hostinfo: hi, Stream: true})
			if code != http.StatusBadRequest || strings.TrimSpace(string(b)) != tt.wantErr {
				t.Errorf("map: status %d %q; want %d %q", code, b, http.StatusBadRequest, tt.wantErr)
			}
		})
	}
}

// TestOldClientLogsOut: a node whose client is now too old (registered
// before MinCapVer was raised, here by a newer client on the same machine
// key) can still log out.
func TestOldClientLogsOut(t *testing.T) {
	s := newTestServer(t, "100.86.0.0/16")
	mk := key.NewMachine()
	nk := key.NewNode().Public()
	req := &tailcfg.RegisterRequest{Version: 1, NodeKey: nk, Auth: &tailcfg.RegisterResponseAuth{AuthKey: mustAuthKey(t, s.Server, AuthKeyOptions{})}}
	if res := newOldClient(t, s, mk, tailcfg.CurrentCapabilityVersion).register(t, req); !res.MachineAuthorized {
		t.Fatalf("register: %+v", res)
	}
	old := newOldClient(t, s, mk, 113)
	res := old.register(t, &tailcfg.RegisterRequest{Version: 1, NodeKey: nk, Expiry: time.Now().Add(-time.Minute)})
	if res.Error != "" || !res.NodeKeyExpired {
		t.Errorf("logout by an old client: %+v; want NodeKeyExpired", res)
	}
	if nodes, err := s.Nodes(context.Background()); err != nil || len(nodes) != 1 || !nodes[0].Expired {
		t.Errorf("nodes after logout: %+v; want one, expired", nodes)
	}
}
