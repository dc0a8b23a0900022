package lab

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"homenet/control"
)

// Ports homenet listens on in the lab.
const (
	HomenetPort = 8080
	RelayPort   = 8443
	STUNPort    = 3478
)

// HomenetConfig is what a test chooses about the server; the rest of the
// config file is fixed by the lab.
type HomenetConfig struct {
	// Prefix4 is tailnet.prefix4; empty means homenet's default.
	Prefix4 string
	// Extra is raw TOML appended to the generated file.
	Extra string
	// Name, when set, runs homenet as on the internet under this DNS
	// name, with a certificate from CA (which must resolve Name to the
	// host's address): server.url https://NAME, control in plain HTTP on
	// :80 and, beside DERP, on the relay's TLS listener :443, whose
	// certificate comes by ACME (TLS-ALPN-01). The host resolves Name
	// through its /etc/hosts and trusts CA.
	Name string
	CA   *CA
	// IPCert, with CA, runs homenet as on the internet under its address:
	// server.url https://ADDR, control on :80 (which answers the CA's
	// HTTP-01 challenge) and on the relay's :443, whose certificate is for
	// the address. The host trusts CA.
	IPCert bool
}

// Homenet is `homenet serve` running in a lab host, configured with a TOML
// file in the host's directory.
type Homenet struct {
	Host       *Host
	ConfigPath string
	StateDir   string
	// URL is server.url, what phones log in to: http://HOST-ADDR:8080, or
	// https://NAME with HomenetConfig.Name.
	URL  string
	Proc *Proc
	// StartTimeout bounds Start's wait for /key at URL; 0 means 30 s.
	StartTimeout time.Duration

	bin string
}

// HomenetAt is Homenet for a config written elsewhere, such as by `homenet
// init`: it records where the config and state are and the URL phones use,
// and starts nothing.
func (l *Lab) HomenetAt(h *Host, configPath, stateDir, url string) *Homenet {
	return &Homenet{Host: h, ConfigPath: configPath, StateDir: stateDir, URL: url, bin: HomenetBinary(l.t)}
}

// Homenet writes a config for h and starts `homenet serve`, waiting until
// the control server answers /key.
func (l *Lab) Homenet(h *Host, cfg HomenetConfig) *Homenet {
	l.t.Helper()
	hn := l.NewHomenet(h, cfg)
	hn.Start()
	return hn
}

// NewHomenet is Homenet without starting it: it writes the config file and
// returns; start it with Start or StartArgs. Use it when a test must look at
// the host before homenet ever ran.
func (l *Lab) NewHomenet(h *Host, cfg HomenetConfig) *Homenet {
	l.t.Helper()
	hn := &Homenet{
		Host:       h,
		ConfigPath: h.Dir + "/homenet.toml",
		StateDir:   h.Dir + "/homenet",
		URL:        fmt.Sprintf("http://%s:%d", h.Addr(), HomenetPort),
		bin:        HomenetBinary(l.t),
	}
	listen, relayListen, relayName := HomenetPort, RelayPort, ""
	if cfg.Name != "" {
		if cfg.CA == nil {
			l.t.Fatal("lab: HomenetConfig.Name needs a CA")
		}
		hn.URL = "https://" + cfg.Name
		listen, relayListen = 80, 443
		relayName = fmt.Sprintf("hostname = %q\nacme_directory = %q\n", cfg.Name, cfg.CA.Directory)
		cfg.CA.Trust(h)
		h.AddHosts(h.Addr(), cfg.Name)
	}
	if cfg.IPCert {
		if cfg.CA == nil {
			l.t.Fatal("lab: HomenetConfig.IPCert needs a CA")
		}
		hn.URL = "https://" + h.Addr().String()
		listen, relayListen = 80, 443
		relayName = fmt.Sprintf("acme_directory = %q\n", cfg.CA.Directory)
		cfg.CA.Trust(h)
	}
	conf := fmt.Sprintf(`# written by the e2e lab
state_dir = %q

[server]
url = %q
listen = ":%d"

[relay]
enabled = true
listen = ":%d"
stun_listen = ":%d"
%s
[tailnet]
prefix4 = %q
`, hn.StateDir, hn.URL, listen, relayListen, STUNPort, relayName, cfg.Prefix4)
	if cfg.Extra != "" {
		conf += "\n" + cfg.Extra + "\n"
	}
	if err := os.WriteFile(hn.ConfigPath, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.OnFailure(func() {
		l.t.Logf("---- %s ----\n%s", hn.ConfigPath, conf)
		if hn.Proc == nil {
			return
		}
		out, err := hn.CLI("nodes", "list")
		l.t.Logf("---- homenet nodes list ----\n%s%s", out, errOrEmpty(err))
	})
	return hn
}

// Start starts `homenet serve` and waits up to 30 s for it to answer
// /key at its URL (over https, that includes getting the certificate).
func (hn *Homenet) Start() {
	hn.Host.lab.t.Helper()
	hn.StartArgs()
}

// StartArgs is Start with extra arguments for `homenet serve`, such as
// "--log-level", "debug".
func (hn *Homenet) StartArgs(extra ...string) {
	t := hn.Host.lab.t
	t.Helper()
	if hn.Proc != nil {
		if exited, _ := hn.Proc.Exited(); !exited {
			t.Fatal("homenet serve is already running")
		}
		hn.Proc.DumpLines = 0 // the log file is shared; the new Proc dumps it
	}
	args := append([]string{hn.bin, "serve", "--config", hn.ConfigPath}, extra...)
	hn.Proc = hn.Host.Start("homenet", nil, args...)
	hn.Proc.DumpLines = 400
	labtool := LabtoolBinary(t)
	WaitFor(t, cmp.Or(hn.StartTimeout, 30*time.Second), "homenet serve to answer "+hn.URL+"/key", func() error {
		if exited, err := hn.Proc.Exited(); exited {
			return fmt.Errorf("homenet serve exited: %v\n%s", err, hn.Proc.Tail(40))
		}
		_, err := hn.Host.RunTimeout(5*time.Second, labtool, "http-get", "-timeout=2s", hn.URL+"/key?v=113")
		return err
	})
}

// Stop stops homenet serve (SIGTERM, then SIGKILL after 10 s) and reports
// an unclean exit.
func (hn *Homenet) Stop() error {
	return hn.Proc.Stop()
}

// Restart stops and starts homenet serve with the same config and state.
func (hn *Homenet) Restart() {
	t := hn.Host.lab.t
	t.Helper()
	if err := hn.Stop(); err != nil {
		t.Errorf("homenet serve exited uncleanly on SIGTERM: %v", err)
	}
	hn.Start()
}

// CLI runs `homenet ARGS --config FILE` in the server's host and returns its
// stdout; the error carries stderr. --config goes last: the command words
// come first and homenet parses flags anywhere after them.
func (hn *Homenet) CLI(args ...string) (string, error) {
	return hn.Host.Output(30*time.Second, append(append([]string{hn.bin}, args...), "--config", hn.ConfigPath)...)
}

// CreateKey runs `homenet keys create FLAGS` and returns the key, which the
// command prints as the last line of stdout.
func (hn *Homenet) CreateKey(flags ...string) (string, error) {
	out, err := hn.CLI(append([]string{"keys", "create"}, flags...)...)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	if key == "" || strings.ContainsAny(key, " \t") {
		return "", fmt.Errorf("homenet keys create: last stdout line is not a key:\n%s", out)
	}
	return key, nil
}

// Nodes runs `homenet nodes list --json`.
func (hn *Homenet) Nodes() ([]control.NodeInfo, error) {
	out, err := hn.CLI("nodes", "list", "--json")
	if err != nil {
		return nil, err
	}
	var nodes []control.NodeInfo
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		// Also accept {"nodes": [...]}.
		var wrapped struct{ Nodes []control.NodeInfo }
		if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil || wrapped.Nodes == nil {
			return nil, fmt.Errorf("homenet nodes list --json: %v\n%s", err, out)
		}
		nodes = wrapped.Nodes
	}
	return nodes, nil
}

// Node returns the node registered with the given hostname.
func (hn *Homenet) Node(hostname string) (control.NodeInfo, error) {
	nodes, err := hn.Nodes()
	if err != nil {
		return control.NodeInfo{}, err
	}
	var names []string
	for _, n := range nodes {
		if n.Hostname == hostname || n.Name == hostname {
			return n, nil
		}
		names = append(names, n.Hostname)
	}
	return control.NodeInfo{}, fmt.Errorf("no node %q in homenet nodes list (have %v)", hostname, names)
}

// RSS returns the resident set size of homenet serve, in bytes.
func (hn *Homenet) RSS() (int64, error) {
	return RSS(hn.Proc.Pid())
}

// RSS returns VmRSS of a process, in bytes.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS line")
}
