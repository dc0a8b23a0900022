package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derpconst"
	"tailscale.com/net/stun"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func TestAdmittedNodesExchangePackets(t *testing.T) {
	logger := newTestLogger(t)
	a, b := key.NewNode(), key.NewNode()
	r := startRelay(t, logger, Config{}, newRegistry(a.Public(), b.Public()).admit)
	region := r.Region()
	if !strings.HasPrefix(region.Nodes[0].CertName, "sha256-raw:") {
		t.Fatalf("CertName = %q, want a sha256-raw pin", region.Nodes[0].CertName)
	}
	ca, cb := newClient(t, logger, a, region), newClient(t, logger, b, region)
	connectAdmitted(t, ca)
	connectAdmitted(t, cb)

	tests := []struct {
		name     string
		from     key.NodePrivate
		to       key.NodePrivate
		send     func([]byte) error
		recvSide func() derp.ReceivedPacket
	}{
		{"a to b", a, b, func(p []byte) error { return ca.Send(b.Public(), p) }, func() derp.ReceivedPacket { return recvPacket(t, cb) }},
		{"b to a", b, a, func(p []byte) error { return cb.Send(a.Public(), p) }, func() derp.ReceivedPacket { return recvPacket(t, ca) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := []byte("hello over the home relay: " + tt.name)
			if err := tt.send(payload); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := tt.recvSide()
			if got.Source != tt.from.Public() {
				t.Errorf("packet source = %v, want %v", got.Source, tt.from.Public())
			}
			if !bytes.Equal(got.Data, payload) {
				t.Errorf("packet data = %q, want %q", got.Data, payload)
			}
		})
	}
	var vars struct {
		AdmitAllowed int64 `json:"admit_allowed"`
		AdmitDenied  int64 `json:"admit_denied"`
		DERP         struct {
			PacketsSent int64 `json:"packets_sent"`
		} `json:"derp"`
	}
	if err := json.Unmarshal([]byte(r.ExpVar().String()), &vars); err != nil {
		t.Fatalf("ExpVar is not JSON: %v", err)
	}
	if vars.AdmitAllowed != 2 || vars.AdmitDenied != 0 || vars.DERP.PacketsSent < 2 {
		t.Errorf("ExpVar = %+v, want 2 admitted, 0 denied, >= 2 packets sent", vars)
	}
}

func TestAdmission(t *testing.T) {
	logger := newTestLogger(t)
	observer, member, stranger := key.NewNode(), key.NewNode(), key.NewNode()
	reg := newRegistry(observer.Public(), member.Public())
	r := startRelay(t, logger, Config{}, reg.admit)
	region := r.Region()
	obs := newClient(t, logger, observer, region)
	connectAdmitted(t, obs)

	tests := []struct {
		name      string
		priv      key.NodePrivate
		wantAdmit bool
	}{
		{"registered node", member, true},
		{"unregistered node", stranger, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deniedBefore := r.stats.admitDenied.Value()
			c := newClient(t, logger, tt.priv, region)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			connErr := c.Connect(ctx) // may succeed: admission follows the DERP handshake
			m, recvErr := recvTimeout(c, testTimeout)
			_, gotInfo := m.(derp.ServerInfoMessage)
			admitted := connErr == nil && recvErr == nil && gotInfo
			if admitted != tt.wantAdmit {
				t.Fatalf("admitted = %v (Connect: %v, Recv: %T %v), want %v", admitted, connErr, m, recvErr, tt.wantAdmit)
			}
			if tt.wantAdmit {
				return
			}
			if recvErr == errRecvTimeout {
				t.Fatalf("refused connection was left open instead of closed")
			}
			if got := r.stats.admitDenied.Value() - deniedBefore; got < 1 {
				t.Errorf("admitDenied grew by %d, want >= 1", got)
			}
			// Whatever the refused node sends must not reach anyone.
			c.Send(observer.Public(), []byte("let me in")) // reconnects, is refused again
			m, err := recvTimeout(obs, 500*time.Millisecond)
			if p, ok := m.(derp.ReceivedPacket); ok {
				t.Fatalf("observer received %q from %v; refused nodes must not relay", p.Data, p.Source)
			}
			if err != nil && err != errRecvTimeout {
				t.Fatalf("observer connection broke: %v", err)
			}
			obs = newClient(t, logger, observer, region) // recvTimeout closed the old one
			connectAdmitted(t, obs)
		})
	}
}

func TestCertPin(t *testing.T) {
	logger := newTestLogger(t)
	a := key.NewNode()
	r := startRelay(t, logger, Config{}, newRegistry(a.Public()).admit)
	pin := r.Region().Nodes[0].CertName
	st := r.CertStatus()
	if st.Mode != CertModeSelfSigned || st.Pin != pin || !slices.Equal(st.Names, []string{"127.0.0.1"}) ||
		st.Issuer != "127.0.0.1" || !st.NotAfter.After(time.Now().Add(selfSignedLifetime/2)) || st.LastError != "" {
		t.Errorf("CertStatus = %+v, want self-signed for 127.0.0.1 with pin %s", st, pin)
	}

	tests := []struct {
		name     string
		certName string
		wantErr  string // substring; empty means the connection must work
	}{
		{"exact pin", pin, ""},
		{"one hex digit changed", pin[:len(pin)-1] + flipHex(pin[len(pin)-1]), "cert hash does not match"},
		{"no pin: self-signed cert must not verify", "", "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			region := r.Region()
			region.Nodes[0].CertName = tt.certName
			c := newClient(t, logger, a, region)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := c.Connect(ctx)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Connect with the relay's own pin: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Connect error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// flipHex returns a different lowercase hex digit than c.
func flipHex(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestDisconnect(t *testing.T) {
	logger := newTestLogger(t)
	a, b, victim := key.NewNode(), key.NewNode(), key.NewNode()
	reg := newRegistry(a.Public(), b.Public(), victim.Public())
	r := startRelay(t, logger, Config{}, reg.admit)
	region := r.Region()
	ca, cb, cv := newClient(t, logger, a, region), newClient(t, logger, b, region), newClient(t, logger, victim, region)
	connectAdmitted(t, ca)
	connectAdmitted(t, cb)
	connectAdmitted(t, cv)

	// The victim's connection must end, though it sends and receives nothing.
	victimErr := make(chan error, 1)
	go func() {
		for {
			if _, err := cv.Recv(); err != nil {
				victimErr <- err
				return
			}
		}
	}()
	reg.set(victim.Public(), false) // deleted from the store first, then disconnected
	start := time.Now()
	r.Disconnect(victim.Public())
	select {
	case err := <-victimErr:
		t.Logf("victim connection dropped after %v: %v", time.Since(start), err)
	case <-time.After(testTimeout):
		t.Fatal("victim still connected after Disconnect")
	}
	if got := r.stats.disconnectErrors.Value(); got != 0 {
		t.Errorf("disconnectErrors = %d, want 0", got)
	}

	// It cannot come back.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := cv.Connect(ctx); err == nil {
		if m, err := recvTimeout(cv, testTimeout); err == nil {
			t.Fatalf("disconnected node reconnected and got %T", m)
		}
	}

	// The other nodes are untouched.
	if err := ca.Send(b.Public(), []byte("still here")); err != nil {
		t.Fatalf("Send a->b after disconnecting another node: %v", err)
	}
	if p := recvPacket(t, cb); string(p.Data) != "still here" {
		t.Fatalf("b received %q, want %q", p.Data, "still here")
	}

	// Disconnecting a node that is not connected is harmless.
	r.Disconnect(key.NewNode().Public())
	if got := r.stats.disconnectErrors.Value(); got != 0 {
		t.Errorf("disconnectErrors after disconnecting an absent node = %d, want 0", got)
	}
}

func TestSTUN(t *testing.T) {
	tests := []struct {
		name       string
		listen     string
		wantServed bool
	}{
		{"enabled", "127.0.0.1:0", true},
		{"disabled", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startRelay(t, newTestLogger(t), Config{STUNListen: tt.listen}, newRegistry().admit)
			port := r.Region().Nodes[0].STUNPort
			if !tt.wantServed {
				if port != -1 {
					t.Fatalf("STUNPort = %d, want -1 when STUN is off", port)
				}
				return
			}
			if port <= 0 {
				t.Fatalf("STUNPort = %d, want the bound port", port)
			}
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tx := stun.NewTxID()
			if _, err := conn.Write(stun.Request(tx)); err != nil {
				t.Fatalf("sending binding request: %v", err)
			}
			conn.SetReadDeadline(time.Now().Add(testTimeout))
			buf := make([]byte, 1500)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("reading binding response: %v", err)
			}
			gotTx, mapped, err := stun.ParseResponse(buf[:n])
			if err != nil {
				t.Fatalf("parsing binding response: %v", err)
			}
			if gotTx != tx {
				t.Errorf("response transaction ID = %x, want %x", gotTx, tx)
			}
			if want := conn.LocalAddr().(*net.UDPAddr).AddrPort(); mapped != want {
				t.Errorf("mapped address = %v, want %v", mapped, want)
			}
		})
	}
}

func TestSelfSignedCertPersists(t *testing.T) {
	tests := []struct {
		name     string
		first    string
		between  func(t *testing.T, dir string)
		second   string
		wantSame bool
	}{
		{"same IPv4 hostname", "127.0.0.1", nil, "127.0.0.1", true},
		{"same IPv6 hostname", "::1", nil, "[::1]", true},
		{"hostname changed", "127.0.0.1", nil, "192.0.2.7", false},
		{"no hostname", "", nil, "", true},
		{"corrupted certificate", "127.0.0.1", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, certFile), []byte("not PEM"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "127.0.0.1", false},
		{"key of another certificate", "127.0.0.1", func(t *testing.T, dir string) {
			_, keyPEM, err := createSelfSigned(netip.MustParseAddr("127.0.0.1"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, keyFile), keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger := newTestLogger(t)
			dir := filepath.Join(t.TempDir(), "state") // Start creates it
			start := func(host string) string {
				r, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", Hostname: host, StateDir: dir}, newRegistry().admit, logger)
				if err != nil {
					t.Fatalf("Start(Hostname %q): %v", host, err)
				}
				defer r.Close()
				node := r.Region().Nodes[0]
				if !strings.HasPrefix(node.CertName, "sha256-raw:") || len(node.CertName) != len("sha256-raw:")+64 {
					t.Fatalf("CertName = %q, want sha256-raw:<64 hex>", node.CertName)
				}
				return node.CertName
			}
			first := start(tt.first)
			for _, f := range []string{certFile, keyFile} {
				fi, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if mode := fi.Mode().Perm(); mode != 0o600 {
					t.Errorf("%s mode = %v, want 0600", f, mode)
				}
			}
			if tt.between != nil {
				tt.between(t, dir)
			}
			second := start(tt.second)
			if same := first == second; same != tt.wantSame {
				t.Errorf("CertName first %s, second %s: same = %v, want %v", first, second, same, tt.wantSame)
			}
		})
	}
}

func TestRegion(t *testing.T) {
	tests := []struct {
		host       string
		certName   string
		wantHost   string
		wantV4     string
		wantV6     string
		wantErrSub string
	}{
		{host: "192.0.2.1", certName: "sha256-raw:ab", wantHost: "192.0.2.1", wantV4: "192.0.2.1", wantV6: "none"},
		{host: "::ffff:192.0.2.1", certName: "sha256-raw:ab", wantHost: "192.0.2.1", wantV4: "192.0.2.1", wantV6: "none"},
		{host: "2001:db8::1", certName: "sha256-raw:ab", wantHost: "2001:db8::1", wantV4: "none", wantV6: "2001:db8::1"},
		{host: "[2001:db8::1]", certName: "sha256-raw:ab", wantHost: "2001:db8::1", wantV4: "none", wantV6: "2001:db8::1"},
		{host: "Relay.Example.COM.", wantHost: "relay.example.com"},
		{host: "fe80::1%eth0", wantErrSub: "zone"},
		{host: "localhost", wantErrSub: "neither"},
		{host: "relay.example.com/derp", wantErrSub: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			h, err := parseHostname(tt.host)
			if tt.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSub) {
					t.Fatalf("parseHostname(%q) error = %v, want one containing %q", tt.host, err, tt.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseHostname(%q): %v", tt.host, err)
			}
			reg := regionFor(h, 8443, 3478, tt.certName)
			want := &tailcfg.DERPRegion{
				RegionID: 900, RegionCode: "home", RegionName: "homenet",
				Nodes: []*tailcfg.DERPNode{{
					Name: "900a", RegionID: 900, HostName: tt.wantHost, CertName: tt.certName,
					IPv4: tt.wantV4, IPv6: tt.wantV6, DERPPort: 8443, STUNPort: 3478,
				}},
			}
			if !reflect.DeepEqual(reg, want) {
				t.Errorf("regionFor(%q) = %+v, want %+v", tt.host, *reg.Nodes[0], *want.Nodes[0])
			}
		})
	}
}

func TestRegionIsACopy(t *testing.T) {
	r := startRelay(t, newTestLogger(t), Config{}, newRegistry().admit)
	r.Region().Nodes[0].HostName = "mutated"
	if got := r.Region().Nodes[0].HostName; got != "127.0.0.1" {
		t.Fatalf("Region() shares state with its callers: HostName = %q", got)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	admit := newRegistry().admit
	tests := []struct {
		name    string
		cfg     Config
		admit   func(key.NodePublic) bool
		wantErr string
	}{
		{"no admit func", Config{Listen: "127.0.0.1:0", StateDir: t.TempDir()}, nil, "nil admit"},
		{"no listen address", Config{StateDir: t.TempDir()}, admit, "empty Listen"},
		{"no state dir", Config{Listen: "127.0.0.1:0"}, admit, "empty StateDir"},
		{"bad hostname", Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Hostname: "not a host"}, admit, "not a host"},
		{"port in use", Config{Listen: busy.Addr().String(), StateDir: t.TempDir()}, admit, busy.Addr().String()},
		{"bad STUN address", Config{Listen: "127.0.0.1:0", STUNListen: "127.0.0.1:notaport", StateDir: t.TempDir()}, admit, "127.0.0.1:notaport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Start(context.Background(), tt.cfg, tt.admit, newTestLogger(t))
			if err == nil {
				r.Close()
				t.Fatalf("Start(%+v) succeeded, want error containing %q", tt.cfg, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// httpsClient trusts exactly the relay's stored self-signed certificate.
func httpsClient(t *testing.T, stateDir string) *http.Client {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(stateDir, certFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("stored certificate is not PEM")
	}
	return &http.Client{
		Timeout: testTimeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true, // the relay must still answer HTTP/1.1
		},
	}
}

func TestHTTPSEndpoints(t *testing.T) {
	dir := t.TempDir()
	r := startRelay(t, newTestLogger(t), Config{StateDir: dir}, newRegistry().admit)
	base := "https://127.0.0.1:" + strconv.Itoa(r.Region().Nodes[0].DERPPort)
	client := httpsClient(t, dir)

	tests := []struct {
		method, path string
		header       map[string]string
		wantStatus   int
		wantHeader   map[string]string
	}{
		{"GET", "/generate_204", nil, http.StatusNoContent, nil},
		{"GET", "/generate_204", map[string]string{"X-Tailscale-Challenge": "abc"}, http.StatusNoContent, map[string]string{"X-Tailscale-Response": "response abc"}},
		{"HEAD", "/derp/probe", nil, http.StatusOK, map[string]string{"Access-Control-Allow-Origin": "*"}},
		{"GET", "/derp/latency-check", nil, http.StatusOK, nil},
		{"GET", "/derp", nil, http.StatusUpgradeRequired, nil},
		{"GET", "/", nil, http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if res.ProtoMajor != 1 {
				t.Errorf("protocol = %s, want HTTP/1.x (DERP needs hijackable connections)", res.Proto)
			}
			for k, v := range tt.wantHeader {
				if got := res.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			state := res.TLS
			if state.Version != tls.VersionTLS13 {
				t.Errorf("TLS version = %x, want TLS 1.3 (clients only read the meta cert over 1.3)", state.Version)
			}
			if n := len(state.PeerCertificates); n != 2 || !strings.HasPrefix(state.PeerCertificates[1].Subject.CommonName, derpconst.MetaCertCommonNamePrefix) {
				t.Errorf("served chain has %d certs, want the relay cert plus the DERP meta cert", n)
			}
		})
	}
}

func TestCloseOnContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, Config{Listen: "127.0.0.1:0", STUNListen: "127.0.0.1:0", Hostname: "127.0.0.1", StateDir: t.TempDir()}, newRegistry().admit, newTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Region().Nodes[0].DERPPort))
	cancel()
	deadline := time.Now().Add(testTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("DERP listener still accepting after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after the context ended: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
