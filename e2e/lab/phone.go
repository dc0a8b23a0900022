package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"tailscale.com/ipn/ipnstate"
)

// Phone is a Tailscale node in the lab: the real tailscaled and tailscale
// CLI, built from the pinned tailscale.com module (or another release, see
// PhoneVersion), running in a host.
type Phone struct {
	*Host
	// Hostname is what the node registers as (--hostname); the host's name.
	Hostname string
	// Version is the tailscale.com release it runs; "" for the pinned one.
	Version  string
	StateDir string
	Socket   string
	Daemon   *Proc

	tailscale string
}

// TailscaledPort is the WireGuard/disco UDP port every phone uses.
const TailscaledPort = 41641

// Phone starts tailscaled in h (kernel TUN tailscale0, state in h's
// directory) and waits until its local API answers.
func (l *Lab) Phone(h *Host) *Phone {
	l.t.Helper()
	tailscaled, tailscale := TailscaleBinaries(l.t)
	return l.phone(h, "", tailscaled, tailscale)
}

// PhoneVersion is Phone running tailscale.com at version (such as
// "v1.84.0") instead of the pinned one, as an app not updated for a while
// does. The first use of a version builds it (see TailscaleBinariesVersion).
func (l *Lab) PhoneVersion(h *Host, version string) *Phone {
	l.t.Helper()
	tailscaled, tailscale := TailscaleBinariesVersion(l.t, version)
	return l.phone(h, version, tailscaled, tailscale)
}

func (l *Lab) phone(h *Host, version, tailscaled, tailscale string) *Phone {
	l.t.Helper()
	p := &Phone{
		Host:      h,
		Hostname:  h.Name,
		Version:   version,
		StateDir:  h.Dir + "/ts",
		Socket:    h.Dir + "/ts/tailscaled.sock",
		tailscale: tailscale,
	}
	if err := os.MkdirAll(p.StateDir, 0o700); err != nil {
		l.t.Fatal(err)
	}
	// The lab has no way to the real internet; don't even try to upload logs.
	env := []string{"TS_NO_LOGS_NO_SUPPORT=true", "TS_LOGS_DIR=" + p.StateDir}
	p.Daemon = h.Start("tailscaled", env, tailscaled,
		"--tun=tailscale0",
		"--statedir="+p.StateDir,
		"--socket="+p.Socket,
		fmt.Sprintf("--port=%d", TailscaledPort),
		"--no-logs-no-support",
	)
	p.Daemon.DumpLines = 60
	l.OnFailure(func() {
		out, err := p.CLI(10*time.Second, "status")
		l.t.Logf("---- tailscale status on %s ----\n%s%v", p.Name, out, errOrEmpty(err))
	})
	WaitFor(l.t, 30*time.Second, "tailscaled on "+h.Name+" to answer", func() error {
		if exited, err := p.Daemon.Exited(); exited {
			return fmt.Errorf("tailscaled exited: %v\n%s", err, p.Daemon.Tail(30))
		}
		_, err := p.Status()
		return err
	})
	return p
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// CLI runs `tailscale --socket=… ARGS` in the phone's host.
func (p *Phone) CLI(timeout time.Duration, args ...string) (string, error) {
	return p.RunTimeout(timeout, append([]string{p.tailscale, "--socket=" + p.Socket}, args...)...)
}

// Up runs `tailscale up` with a pre-auth key and waits (up to 90 s) for the
// node to be Running. extra flags are appended.
func (p *Phone) Up(loginServer, authKey string, extra ...string) error {
	args := []string{"up", "--login-server=" + loginServer, "--authkey=" + authKey,
		"--hostname=" + p.Hostname, "--timeout=80s"}
	_, err := p.CLI(90*time.Second, append(args, extra...)...)
	return err
}

// authURLRe finds the URL `tailscale up` prints:
// "To authenticate, visit:\n\n\thttp://…/register/CODE".
var authURLRe = regexp.MustCompile(`To authenticate, visit:\s+(https?://\S+)`)

// UpInteractive starts `tailscale up` without a key in the background and
// returns the auth URL it prints, and the running command: it exits once the
// login is approved (or after 120 s).
func (p *Phone) UpInteractive(loginServer string) (authURL string, up *Proc, err error) {
	up, err = p.start("tailscale-up", nil, p.tailscale, "--socket="+p.Socket, "up",
		"--login-server="+loginServer, "--hostname="+p.Hostname, "--timeout=120s")
	if err != nil {
		return "", nil, err
	}
	err = Poll(30*time.Second, func() error {
		if m := authURLRe.FindStringSubmatch(up.Log()); m != nil {
			authURL = m[1]
			return nil
		}
		if exited, err := up.Exited(); exited {
			return fmt.Errorf("tailscale up exited without printing an auth URL: %v", err)
		}
		return errors.New("no auth URL printed yet")
	})
	if err != nil {
		return "", up, fmt.Errorf("tailscale up on %s: %w\n%s", p.Name, err, up.Log())
	}
	return authURL, up, nil
}

// Status returns `tailscale status --json`.
func (p *Phone) Status() (*ipnstate.Status, error) {
	out, err := p.Output(15*time.Second, p.tailscale, "--socket="+p.Socket, "status", "--json")
	if err != nil {
		return nil, err
	}
	st := new(ipnstate.Status)
	if err := json.Unmarshal([]byte(out), st); err != nil {
		return nil, fmt.Errorf("[%s] tailscale status --json: %v\n%s", p.Name, err, out)
	}
	return st, nil
}

// IP4 returns the phone's tailnet IPv4 address, or an error if it has none.
func (p *Phone) IP4() (netip.Addr, error) {
	st, err := p.Status()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range st.TailscaleIPs {
		if ip.Is4() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no tailnet IPv4 address (state %s, IPs %v)", p.Name, st.BackendState, st.TailscaleIPs)
}

// Peer returns the peer whose hostname is name, or nil.
func Peer(st *ipnstate.Status, name string) *ipnstate.PeerStatus {
	for _, ps := range st.Peer {
		if ps.HostName == name {
			return ps
		}
	}
	return nil
}

// WaitRunning waits until the phone's BackendState is Running with tailnet
// addresses.
func (p *Phone) WaitRunning(timeout time.Duration) error {
	return Poll(timeout, func() error {
		st, err := p.Status()
		if err != nil {
			return err
		}
		if st.BackendState != "Running" || len(st.TailscaleIPs) == 0 {
			return fmt.Errorf("%s: BackendState %q, IPs %v", p.Name, st.BackendState, st.TailscaleIPs)
		}
		return nil
	})
}

// WaitPeers waits until the phone's netmap holds a peer for each of others,
// with the addresses those phones have themselves.
func (p *Phone) WaitPeers(timeout time.Duration, others ...*Phone) error {
	want := map[string][]netip.Addr{}
	for _, o := range others {
		st, err := o.Status()
		if err != nil {
			return err
		}
		want[o.Hostname] = st.TailscaleIPs
	}
	return Poll(timeout, func() error {
		st, err := p.Status()
		if err != nil {
			return err
		}
		for name, ips := range want {
			ps := Peer(st, name)
			if ps == nil {
				return fmt.Errorf("%s does not see peer %s (sees %s)", p.Name, name, peerNames(st))
			}
			for _, ip := range ips {
				if !peerHas(ps, ip) {
					return fmt.Errorf("%s sees peer %s with IPs %v (allowed IPs %v), want %v", p.Name, name, ps.TailscaleIPs, ps.AllowedIPs, ips)
				}
			}
		}
		return nil
	})
}

// peerHas reports whether the peer has address ip. tailscale status lists
// only a peer's addresses in 100.64.0.0/10 and fd7a:115c:a1e0::/48 as its
// TailscaleIPs; others (tailnet.prefix4 = "10.77.0.0/16") show only in
// AllowedIPs.
func peerHas(ps *ipnstate.PeerStatus, ip netip.Addr) bool {
	if slices.Contains(ps.TailscaleIPs, ip) {
		return true
	}
	return ps.AllowedIPs != nil && slices.Contains(ps.AllowedIPs.AsSlice(), netip.PrefixFrom(ip, ip.BitLen()))
}

func peerNames(st *ipnstate.Status) string {
	var names []string
	for _, ps := range st.Peer {
		names = append(names, ps.HostName)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "no peers"
	}
	return strings.Join(names, ", ")
}

// TailscalePing runs `tailscale ping` with args (flags, then the target)
// and returns its output, which has one "pong from … via …" line a pong.
func (p *Phone) TailscalePing(args ...string) (string, error) {
	return p.CLI(2*time.Minute, append([]string{"ping"}, args...)...)
}

// ICMPPing sends one kernel ICMP echo to ip from inside the phone's host,
// through the tailnet when ip is a tailnet address.
func (p *Phone) ICMPPing(ip netip.Addr) error {
	_, err := p.RunTimeout(5*time.Second, "ping", "-n", "-c", "1", "-W", "2", ip.String())
	return err
}

// DERPMap returns `tailscale debug derp-map`: the DERP map as the node got it
// from control, as JSON.
func (p *Phone) DERPMap() ([]byte, error) {
	out, err := p.Output(15*time.Second, p.tailscale, "--socket="+p.Socket, "debug", "derp-map")
	return []byte(out), err
}

// StateFile is tailscaled's state file; it holds the node's private keys.
func (p *Phone) StateFile() string { return p.StateDir + "/tailscaled.state" }

// Logout runs `tailscale logout`.
func (p *Phone) Logout() error {
	_, err := p.CLI(30*time.Second, "logout")
	return err
}

// Down runs `tailscale down`.
func (p *Phone) Down() error {
	_, err := p.CLI(30*time.Second, "down")
	return err
}
