package lab

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// headscale (github.com/juanfont/headscale), a control server that is not
// homenet, in a lab host: for checking that homenet's Tailscale clients
// (the gateway agent) work against a stock control server, and that
// phones of a headscale tailnet reach what homenet serves.
//
// The binary is $HOMENET_HEADSCALE when set, else HeadscaleVersion built
// from the Go module proxy (go mod download, then go build inside the
// module, as TailscaleBinaries does for tailscaled; `go install …@version`
// does not work because the proxy refuses headscale's version list, which
// go install reads for deprecation notices) and cached per machine. The
// harness speaks the CLI of headscale 0.28 and later: pre-auth keys take a
// user ID, routes are approved per node.

// HeadscaleVersion is the headscale release the lab builds when
// HOMENET_HEADSCALE is not set. 0.29.0 accepts Tailscale clients from
// v1.80 on (capability version 113) and is built with tailscale.com
// v1.101; it needs Go 1.26.4 or later.
const (
	HeadscaleModule  = "github.com/juanfont/headscale"
	HeadscaleVersion = "v0.29.0"
)

// Ports headscale listens on in the lab: control and the embedded DERP
// server share HeadscalePort (HeadscaleTLSPort with HeadscaleOpts.TLS);
// STUN is on HeadscaleSTUNPort.
const (
	HeadscalePort     = 8080
	HeadscaleTLSPort  = 443
	HeadscaleSTUNPort = 3478
)

// HeadscaleDERPRegion is the region ID of headscale's embedded DERP
// server in the DERP map it gives clients (its region code is
// "headscale").
const HeadscaleDERPRegion = 999

// NeedsHeadscaleMessage is how to give the lab a headscale binary; the
// reason headscale scenarios skip without one.
const NeedsHeadscaleMessage = "set HOMENET_HEADSCALE=/path/to/headscale (0.28 or later), or let the Go module proxy serve " +
	HeadscaleModule + "@" + HeadscaleVersion + " for the lab to build (HOMENET_HEADSCALE=off skips these tests)"

var headscaleBin struct {
	once       sync.Once
	path, skip string
	err        error
}

// HeadscaleBinary returns the path of a headscale binary: $HOMENET_HEADSCALE
// when set, else HeadscaleVersion built once per machine and cached in
// $XDG_CACHE_HOME/homenet-e2e/headscale-VERSION-GOOS-GOARCH (a cold build
// takes about five minutes). It skips the test when there is no binary to
// be had (the module proxy does not serve it, the Go toolchain is too old,
// or HOMENET_HEADSCALE=off) and fails it when a build breaks.
func HeadscaleBinary(t testing.TB) string {
	t.Helper()
	b := &headscaleBin
	b.once.Do(func() { b.path, b.skip, b.err = findHeadscale(t) })
	if b.skip != "" {
		t.Skip(b.skip)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func findHeadscale(t testing.TB) (path, skip string, err error) {
	switch env := os.Getenv("HOMENET_HEADSCALE"); env {
	case "":
		return buildHeadscale(t)
	case "off", "0", "no", "false":
		return "", "e2e: HOMENET_HEADSCALE=" + env + ": headscale scenarios skipped", nil
	default:
		p, err := filepath.Abs(env)
		if err != nil {
			return "", "", err
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", "", fmt.Errorf("HOMENET_HEADSCALE=%s is not an executable file (%v)", env, err)
		}
		return p, "", nil
	}
}

func buildHeadscale(t testing.TB) (path, skip string, err error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(cache, "homenet-e2e", fmt.Sprintf("headscale-%s-%s-%s", HeadscaleVersion, runtime.GOOS, runtime.GOARCH))
	bin := filepath.Join(dir, "headscale")
	have := func() bool {
		fi, err := os.Stat(bin)
		return err == nil && fi.Mode()&0o111 != 0
	}
	if have() {
		return bin, "", nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", fmt.Errorf("locking %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if have() { // another process built it while we waited
		return bin, "", nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-headscale-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)

	// Download outside any module (the scratch directory), so that no
	// go.mod or go.sum is read or written: the proxy serves the version's
	// zip and go.mod, checked against the checksum database.
	start := time.Now()
	modPath := HeadscaleModule + "@" + HeadscaleVersion
	dl := exec.Command("go", "mod", "download", "-json", modPath)
	dl.Dir = tmp
	dl.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, dlErr := dl.Output()
	var mod struct{ Version, Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); dlErr != nil || jerr != nil || mod.Error != "" || mod.Dir == "" {
		why := strings.TrimSpace(mod.Error)
		if why == "" {
			why = fmt.Sprint(errors.Join(dlErr, jerr))
		}
		return "", fmt.Sprintf("e2e: no headscale binary: go mod download %s: %s; %s", modPath, why, NeedsHeadscaleMessage), nil
	}

	t.Logf("lab: building headscale %s into %s (takes about five minutes on a cold cache)", mod.Version, dir)
	// Build inside headscale's own module (read-only in the module cache):
	// its go.mod pins its dependencies, its go.sum covers them.
	build := exec.Command("go", "build", "-trimpath", "-o", tmp+"/headscale", "./cmd/headscale")
	build.Dir = mod.Dir
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		if strings.Contains(string(b), "requires go >=") {
			return "", fmt.Sprintf("e2e: headscale %s needs a newer Go than %s (%s); run with GOTOOLCHAIN=auto or %s",
				mod.Version, runtime.Version(), strings.TrimSpace(string(b)), NeedsHeadscaleMessage), nil
		}
		return "", "", fmt.Errorf("building headscale %s in %s: %v\n%s", mod.Version, mod.Dir, err, b)
	}
	took := time.Since(start).Round(time.Second)
	os.WriteFile(filepath.Join(tmp, "BUILD"), fmt.Appendf(nil, "%s %s built with %s in %v\n", HeadscaleModule, mod.Version, runtime.Version(), took), 0o644)
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", err
	}
	t.Logf("lab: built headscale %s in %v", mod.Version, took)
	return bin, "", nil
}

// HeadscaleOpts are the choices a test makes about headscale; the rest of
// its config is fixed by the lab (sqlite in the host's directory, the
// embedded DERP and STUN server on the host's address, no OIDC, nothing
// fetched from the internet).
type HeadscaleOpts struct {
	// TLS serves https://ADDR (port HeadscaleTLSPort) with a certificate
	// for the host's address from a throwaway lab CA, which clients trust
	// through PrepareClient. Without it, headscale serves plain HTTP on
	// HeadscalePort, and its DERP server too: Tailscale clients then talk
	// DERP over HTTP only with TS_DEBUG_USE_DERP_HTTP=1 (PrepareClient
	// sets it).
	TLS bool
	// Policy is an ACL policy in HuJSON (tagOwners, autoApprovers, acls or
	// grants, …) that headscale loads from a file; empty allows all
	// traffic between all nodes.
	Policy string
	// BaseDomain, when set, turns MagicDNS on with this base domain
	// (nodes are NAME.BaseDomain); otherwise headscale sends no DNS
	// settings.
	BaseDomain string
	// Prefix4 is headscale's IPv4 prefix; empty means its default,
	// 100.64.0.0/10.
	Prefix4 string
}

// Headscale is `headscale serve` running in a lab host.
type Headscale struct {
	Host *Host
	// URL is server_url, what clients log in to (--login-server):
	// http://ADDR:8080, or https://ADDR with TLS.
	URL        string
	ConfigPath string
	// Dir holds the config, database, keys, unix socket and policy.
	Dir  string
	Proc *Proc
	// Bundle is, with TLS, a PEM file with the lab CA that signed
	// headscale's certificate and the system's roots (SSL_CERT_FILE for
	// clients).
	Bundle string

	opts HeadscaleOpts
	bin  string
}

// Headscale writes a config for h, starts `headscale serve` there and
// waits until it answers /health on its URL and its CLI reaches it. It
// skips the test when there is no headscale binary (see HeadscaleBinary).
// Clients must be prepared with PrepareClient before they start.
func (l *Lab) Headscale(h *Host, opts HeadscaleOpts) *Headscale {
	l.t.Helper()
	bin := HeadscaleBinary(l.t)
	addr := h.Addr()
	hs := &Headscale{
		Host:       h,
		URL:        fmt.Sprintf("http://%s", netip.AddrPortFrom(addr, HeadscalePort)),
		ConfigPath: h.Dir + "/headscale/config.yaml",
		Dir:        h.Dir + "/headscale",
		opts:       opts,
		bin:        bin,
	}
	if err := os.MkdirAll(hs.Dir, 0o700); err != nil {
		l.t.Fatal(err)
	}
	listen := netip.AddrPortFrom(addr, HeadscalePort)
	var certPath, keyPath string
	if opts.TLS {
		listen = netip.AddrPortFrom(addr, HeadscaleTLSPort)
		hs.URL = "https://" + addr.String()
		caPEM, certPEM, keyPEM, err := newAPICerts(addr)
		if err != nil {
			l.t.Fatalf("making headscale's TLS certificate: %v", err)
		}
		certPath, keyPath = hs.Dir+"/tls-cert.pem", hs.Dir+"/tls-key.pem"
		hs.Bundle = hs.Dir + "/trust-bundle.pem"
		bundle := caPEM
		if sys, err := os.ReadFile(systemBundle); err == nil {
			bundle = append(append([]byte{}, caPEM...), sys...)
		}
		files := map[string][]byte{certPath: certPEM, keyPath: keyPEM, hs.Bundle: bundle}
		for name, b := range files {
			if err := os.WriteFile(name, b, 0o600); err != nil {
				l.t.Fatal(err)
			}
		}
		os.Chmod(hs.Bundle, 0o644)
		h.SetEnv("SSL_CERT_FILE=" + hs.Bundle) // for the health check below
	}
	var policyPath string
	if opts.Policy != "" {
		policyPath = hs.Dir + "/policy.hujson"
		if err := os.WriteFile(policyPath, []byte(opts.Policy), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`# written by the e2e lab
server_url: %[1]q
listen_addr: %[2]q
metrics_listen_addr: "127.0.0.1:9090"
grpc_listen_addr: "127.0.0.1:50443"
grpc_allow_insecure: false
noise:
  private_key_path: %[3]q
prefixes:
  v4: %[15]s
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: %[4]d
    region_code: headscale
    region_name: "headscale embedded DERP"
    verify_clients: true
    stun_listen_addr: %[5]q
    private_key_path: %[6]q
    automatically_add_embedded_derp_region: true
    ipv4: %[7]q
  urls: []
  paths: []
  auto_update_enabled: false
disable_check_updates: true
database:
  type: sqlite
  sqlite:
    path: %[8]q
    write_ahead_log: true
tls_cert_path: %[9]q
tls_key_path: %[10]q
log:
  level: info
  format: text
policy:
  mode: file
  path: %[11]q
dns:
  magic_dns: %[12]v
  base_domain: %[13]q
  override_local_dns: false
  nameservers:
    global: []
unix_socket: %[14]q
unix_socket_permission: "0770"
logtail:
  enabled: false
`, hs.URL, listen.String(), hs.Dir+"/noise_private.key",
		HeadscaleDERPRegion, netip.AddrPortFrom(addr, HeadscaleSTUNPort).String(), hs.Dir+"/derp_server_private.key", addr.String(),
		hs.Dir+"/db.sqlite", certPath, keyPath, policyPath,
		opts.BaseDomain != "", opts.BaseDomain, hs.Dir+"/headscale.sock", cmp.Or(opts.Prefix4, "100.64.0.0/10"))
	if err := os.WriteFile(hs.ConfigPath, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.OnFailure(func() {
		l.t.Logf("---- %s ----\n%s", hs.ConfigPath, conf)
		if opts.Policy != "" {
			l.t.Logf("---- %s ----\n%s", policyPath, opts.Policy)
		}
		out, err := hs.CLI("nodes", "list", "-o", "json")
		l.t.Logf("---- headscale nodes list -o json ----\n%s%s", out, errOrEmpty(err))
	})

	hs.Proc = h.Start("headscale", nil, bin, "serve", "-c", hs.ConfigPath)
	hs.Proc.DumpLines = 200
	labtool := LabtoolBinary(l.t)
	took := WaitFor(l.t, 30*time.Second, "headscale to answer "+hs.URL+"/health and its CLI", func() error {
		if exited, err := hs.Proc.Exited(); exited {
			return fmt.Errorf("headscale serve exited: %v\n%s", err, hs.Proc.Tail(40))
		}
		if _, err := h.RunTimeout(5*time.Second, labtool, "http-get", "-timeout=2s", hs.URL+"/health"); err != nil {
			return err
		}
		_, err := hs.CLI("health")
		return err
	})
	l.t.Logf("lab: headscale at %s (DERP region %d, STUN :%d) up in %v", hs.URL, HeadscaleDERPRegion, HeadscaleSTUNPort, took.Round(time.Millisecond))
	return hs
}

// PrepareClient makes the Tailscale clients later started in each host
// able to use this headscale's embedded DERP server: with TLS, they trust
// the lab CA (SSL_CERT_FILE); without, they speak DERP over plain HTTP
// (TS_DEBUG_USE_DERP_HTTP=1). Call it before Lab.Phone or before starting
// homenet.
func (hs *Headscale) PrepareClient(hosts ...*Host) {
	for _, h := range hosts {
		if hs.opts.TLS {
			h.SetEnv("SSL_CERT_FILE=" + hs.Bundle)
		} else {
			h.SetEnv("TS_DEBUG_USE_DERP_HTTP=1")
		}
	}
}

// Join runs `tailscale up --login-server=URL --authkey=KEY EXTRA…` on the
// phone and waits for it to be Running (see Phone.Up).
func (hs *Headscale) Join(p *Phone, authKey string, extra ...string) error {
	return p.Up(hs.URL, authKey, extra...)
}

// CLI runs `headscale ARGS -c CONFIG` in headscale's host (it talks to the
// server over its unix socket) and returns stdout; the error carries
// stderr. Use "-o", "json" for output a test parses.
func (hs *Headscale) CLI(args ...string) (string, error) {
	return hs.Host.Output(30*time.Second, append(append([]string{hs.bin}, args...), "-c", hs.ConfigPath)...)
}

// HeadscaleUser is a user as `headscale users … -o json` prints it.
type HeadscaleUser struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// CreateUser runs `headscale users create NAME` and returns the user's ID,
// which pre-auth keys take.
func (hs *Headscale) CreateUser(name string) (uint64, error) {
	out, err := hs.CLI("users", "create", name, "-o", "json")
	if err != nil {
		return 0, err
	}
	var u HeadscaleUser
	if err := json.Unmarshal([]byte(out), &u); err != nil || u.ID == 0 {
		return 0, fmt.Errorf("headscale users create %s: no user ID in %q (%v)", name, out, err)
	}
	return u.ID, nil
}

// CreateKey runs `headscale preauthkeys create [--user ID] FLAGS` and
// returns the key. user 0 leaves --user out, which 0.28 and later allow
// for tagged keys. Flags of 0.29: --reusable, --ephemeral, --expiration 1h
// (the default), --tags tag:a,tag:b (the node is then owned by the tags,
// not the user, and may not send tags of its own: see TestHeadscaleRoutes).
func (hs *Headscale) CreateKey(user uint64, flags ...string) (string, error) {
	args := []string{"preauthkeys", "create", "-o", "json"}
	if user != 0 {
		args = append(args, "--user", strconv.FormatUint(user, 10))
	}
	out, err := hs.CLI(append(args, flags...)...)
	if err != nil {
		return "", err
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Key == "" {
		return "", fmt.Errorf("headscale preauthkeys create: no key in %q (%v)", out, err)
	}
	return k.Key, nil
}

// HeadscaleNode is a node as `headscale nodes list -o json` prints it.
type HeadscaleNode struct {
	ID uint64 `json:"id"`
	// Name is the hostname the node registered with; GivenName is its
	// name in the tailnet (MagicDNS).
	Name        string        `json:"name"`
	GivenName   string        `json:"given_name"`
	IPAddresses []netip.Addr  `json:"ip_addresses"`
	User        HeadscaleUser `json:"user"`
	Online      bool          `json:"online"`
	// Tags are the node's tags; a tagged node has no user (0.28 and
	// later). From 0.27 and earlier, Nodes fills it with valid_tags.
	Tags      []string `json:"tags"`
	ValidTags []string `json:"valid_tags"`
	// AvailableRoutes are the routes the node advertises, ApprovedRoutes
	// those an admin or autoApprovers approved, SubnetRoutes those in
	// both (what peers get).
	AvailableRoutes []netip.Prefix `json:"available_routes"`
	ApprovedRoutes  []netip.Prefix `json:"approved_routes"`
	SubnetRoutes    []netip.Prefix `json:"subnet_routes"`
}

// Nodes runs `headscale nodes list -o json`.
func (hs *Headscale) Nodes() ([]HeadscaleNode, error) {
	out, err := hs.CLI("nodes", "list", "-o", "json")
	if err != nil {
		return nil, err
	}
	var nodes []HeadscaleNode
	if strings.TrimSpace(out) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		return nil, fmt.Errorf("headscale nodes list -o json: %v\n%s", err, out)
	}
	for i := range nodes {
		if len(nodes[i].Tags) == 0 {
			nodes[i].Tags = nodes[i].ValidTags
		}
	}
	return nodes, nil
}

// Node returns the node registered with hostname (its name or given name).
func (hs *Headscale) Node(hostname string) (HeadscaleNode, error) {
	nodes, err := hs.Nodes()
	if err != nil {
		return HeadscaleNode{}, err
	}
	var names []string
	for _, n := range nodes {
		if n.Name == hostname || n.GivenName == hostname {
			return n, nil
		}
		names = append(names, n.Name)
	}
	return HeadscaleNode{}, fmt.Errorf("no node %q in headscale nodes list (have %v)", hostname, names)
}

// ApproveRoutes runs `headscale nodes approve-routes -i ID -r R1,R2`: the
// node's approved routes become exactly routes (none removes all).
func (hs *Headscale) ApproveRoutes(nodeID uint64, routes ...netip.Prefix) error {
	rs := make([]string, len(routes))
	for i, r := range routes {
		rs[i] = r.String()
	}
	_, err := hs.CLI("nodes", "approve-routes", "-i", strconv.FormatUint(nodeID, 10), "-r", strings.Join(rs, ","))
	return err
}

// SetTags runs `headscale nodes tag -i ID -t TAGS`: the node becomes owned
// by the tags (headscale checks them against the policy's tagOwners).
func (hs *Headscale) SetTags(nodeID uint64, tags ...string) error {
	_, err := hs.CLI("nodes", "tag", "-i", strconv.FormatUint(nodeID, 10), "-t", strings.Join(tags, ","))
	return err
}
