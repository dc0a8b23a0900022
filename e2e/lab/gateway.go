package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Helpers for the gateway-agent scenarios (e2e/gateway_*_test.go).

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
	conf := fmt.Sprintf(`# written by the e2e lab
state_dir = %q

[server]
url = %q
listen = ":%d"

[relay]
enabled = true
listen = ":%d"
stun_listen = ":%d"

[tailnet]
prefix4 = %q
`, hn.StateDir, hn.URL, HomenetPort, RelayPort, STUNPort, cfg.Prefix4)
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
	WaitFor(t, 30*time.Second, "homenet serve to answer "+hn.URL+"/key", func() error {
		if exited, err := hn.Proc.Exited(); exited {
			return fmt.Errorf("homenet serve exited: %v\n%s", err, hn.Proc.Tail(40))
		}
		_, err := hn.Host.RunTimeout(5*time.Second, labtool, "http-get", "-timeout=2s", hn.URL+"/key?v=113")
		return err
	})
}

// Kill kills homenet serve with SIGKILL, as a crash or the OOM killer
// would, and waits until it is gone.
func (hn *Homenet) Kill() {
	t := hn.Host.lab.t
	t.Helper()
	if err := syscall.Kill(hn.Proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 homenet: %v", err)
	}
	select {
	case <-hn.Proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("homenet serve still running 10 s after SIGKILL")
	}
}

// HideIPTables makes every iptables and ip6tables binary unusable inside h,
// as on an nftables-only system (OpenWrt with fw4): the xtables multi-call
// binaries the names link to are covered by /dev/null, which is not
// executable, in h's own mount namespace. The machine keeps its binaries.
func (h *Host) HideIPTables() {
	t := h.lab.t
	t.Helper()
	var hidden []string
	for _, name := range []string{"iptables", "ip6tables", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		// Resolve symlinks (iptables → /etc/alternatives/… →
		// xtables-nft-multi): bind mounts follow them anyway, and this
		// names what gets covered.
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(hidden, real) {
			continue
		}
		h.MustRun("mount", "--bind", "/dev/null", real)
		hidden = append(hidden, real)
	}
	if _, err := h.Run("iptables", "--version"); err == nil {
		t.Fatalf("host %s: iptables still runs after hiding %v", h.Name, hidden)
	}
	h.lab.t.Logf("host %s: iptables hidden (%s covered by /dev/null)", h.Name, strings.Join(hidden, ", "))
}

// RestartDaemon stops the phone's tailscaled (SIGTERM) and starts it again
// with the same state, as a phone reboot would, and waits until its local
// API answers.
func (p *Phone) RestartDaemon() {
	l := p.lab
	l.t.Helper()
	if err := p.Daemon.Stop(); err != nil {
		l.t.Logf("%s: tailscaled exited uncleanly: %v", p.Name, err)
	}
	p.Daemon.DumpLines = 0 // the log file is shared; the new Proc dumps it
	tailscaled, _ := TailscaleBinaries(l.t)
	env := []string{"TS_NO_LOGS_NO_SUPPORT=true", "TS_LOGS_DIR=" + p.StateDir}
	p.Daemon = p.Host.Start("tailscaled", env, tailscaled,
		"--tun=tailscale0",
		"--statedir="+p.StateDir,
		"--socket="+p.Socket,
		fmt.Sprintf("--port=%d", TailscaledPort),
		"--no-logs-no-support",
	)
	p.Daemon.DumpLines = 60
	WaitFor(l.t, 30*time.Second, "tailscaled on "+p.Name+" to answer after a restart", func() error {
		if exited, err := p.Daemon.Exited(); exited {
			return fmt.Errorf("tailscaled exited: %v\n%s", err, p.Daemon.Tail(30))
		}
		_, err := p.Status()
		return err
	})
}
