package lab

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Helpers for the gateway-agent scenarios (e2e/gateway_*_test.go).

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
