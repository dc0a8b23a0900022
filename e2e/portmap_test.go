package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
	"homenet/portmap"
)

// The port-mapping scenarios' network: homenet on a NAS behind a home
// router that has the public address, as on a Synology or a Raspberry Pi.
//
//	11.22.33.0/24 ─┬─ www  .200  asks for the NAS's ports from outside
//	               └─ home .2    NAT router (miniupnpd, unless a test says not)
//	                   └─ lan0 192.168.1.1/24 ── nas 192.168.1.10  whoami :9999 (TCP and UDP),
//	                                                               labtool portmap
//
// The internet is not the lab's usual 198.51.100.0/24: miniupnpd forwards
// nothing on a reserved WAN address (see lab/upnp.go). 11.22.33.0/24 exists
// only inside the lab's namespaces.
const (
	pmWWW    = "11.22.33.200"
	pmWAN    = "11.22.33.2"
	pmRouter = "192.168.1.1"
	pmNAS    = "192.168.1.10"
	pmPort   = 9999  // whoami on the NAS, TCP and UDP
	pmExtTCP = 19999 // the TCP port asked for on the router; UDP asks for pmPort
)

type pmNet struct {
	home *lab.NATRouter
	nas  *lab.Host
	www  *lab.Host
}

func newPMNet(t *testing.T) pmNet {
	l := lab.New(t)
	inet := l.Internet()
	n := pmNet{
		www:  l.Host("www", inet.Link(pmWWW+"/24")),
		home: l.NATRouter("home", inet.Link(pmWAN+"/24"), pmRouter+"/24", lab.NATOpts{}),
	}
	n.nas = l.Host("nas", n.home.LAN.Link(pmNAS+"/24"))
	n.nas.LabtoolServer("whoami", "-listen", fmt.Sprintf(":%d", pmPort))
	return n
}

// startMapper runs `labtool portmap` on the NAS for TCP pmPort (asking for
// pmExtTCP outside) and UDP pmPort, and returns it and its status file.
func (n pmNet) startMapper(t *testing.T) (*lab.Proc, string) {
	t.Helper()
	status := n.nas.Dir + "/portmap-status.json"
	p := n.nas.Start("portmap", nil, lab.LabtoolBinary(t), "portmap", "-status", status,
		"-port", fmt.Sprintf("tcp:%d:%d", pmPort, pmExtTCP), "-port", fmt.Sprintf("udp:%d", pmPort))
	return p, status
}

// waitStatus polls the mapper's status file until cond accepts it.
func waitPMStatus(t *testing.T, p *lab.Proc, path, what string, timeout time.Duration, cond func(portmap.Status) error) portmap.Status {
	t.Helper()
	var st portmap.Status
	lab.WaitFor(t, timeout, what, func() error {
		if exited, err := p.Exited(); exited {
			t.Fatalf("labtool portmap exited: %v\n%s", err, p.Tail(30))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		st = portmap.Status{}
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		return cond(st)
	})
	return st
}

// query asks the NAS's whoami through the router's WAN address from www
// and returns the address whoami saw.
func (n pmNet) query(proto string, port int) (string, error) {
	out, err := n.www.Labtool(10*time.Second, "whoami-query", "-proto", proto, "-timeout", "2s", "-addr", fmt.Sprintf("%s:%d", pmWAN, port))
	return strings.TrimSpace(out), err
}

// TestPortmapMiniUPnPd maps a TCP and a UDP port of a NAS on a real home
// router (miniupnpd) with package portmap, reaches them from the internet,
// then stops the mapper and checks the router has forgotten them: by UPnP
// IGD, and with UPnP off by PCP or NAT-PMP.
func TestPortmapMiniUPnPd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      lab.UPnPOpts
		protocols []string // acceptable Status.Protocol values
	}{
		{name: "upnp", protocols: []string{"upnp-igd"}},
		{name: "pcp-or-natpmp", opts: lab.UPnPOpts{NoUPnP: true}, protocols: []string{"pcp", "nat-pmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lab.MiniUPnPdBinary(t)
			n := newPMNet(t)
			upnpd := n.home.UPnP(tt.opts)
			if got, err := n.query("tcp", pmExtTCP); err == nil {
				t.Fatalf("www reached the NAS at %s:%d before any mapping (whoami saw %s): the router lets everything in", pmWAN, pmExtTCP, got)
			}

			p, statusPath := n.startMapper(t)
			st := waitPMStatus(t, p, statusPath, "both ports mapped", 30*time.Second, func(st portmap.Status) error {
				if st.LastError != "" || len(st.Mappings) != 2 || st.Mappings[0].External == 0 || st.Mappings[1].External == 0 || !st.ExternalIPv4.IsValid() {
					return fmt.Errorf("status %+v", st)
				}
				return nil
			})
			t.Logf("portmap status: %+v", st)
			if !slices.Contains(tt.protocols, st.Protocol) {
				t.Errorf("protocol %q, want one of %v", st.Protocol, tt.protocols)
			}
			if st.Router != pmRouter {
				t.Errorf("router %q, want %s", st.Router, pmRouter)
			}
			if st.ExternalIPv4 != netip.MustParseAddr(pmWAN) {
				t.Errorf("external IPv4 %v, want the router's WAN address %s", st.ExternalIPv4, pmWAN)
			}
			if !strings.Contains(p.Log(), "external address: "+pmWAN) {
				t.Errorf("OnExternalIP was not called with %s:\n%s", pmWAN, p.Tail(30))
			}
			wantExt := map[string]uint16{"tcp": pmExtTCP, "udp": pmPort}
			for _, m := range st.Mappings {
				if m.External != wantExt[m.Proto] || m.Internal != pmPort || m.Expires.IsZero() {
					t.Errorf("mapping %+v, want %s %d->%d with an expiry", m, m.Proto, wantExt[m.Proto], pmPort)
				}
			}

			leases, err := upnpd.Leases()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, le := range leases {
				got = append(got, fmt.Sprintf("%s %d->%v", le.Proto, le.External, le.Internal))
			}
			slices.Sort(got)
			want := []string{fmt.Sprintf("TCP %d->%s:%d", pmExtTCP, pmNAS, pmPort), fmt.Sprintf("UDP %d->%s:%d", pmPort, pmNAS, pmPort)}
			if !slices.Equal(got, want) {
				t.Errorf("miniupnpd's leases = %v, want %v", got, want)
			}

			// The mappings really open the router: whoami on the NAS
			// answers www, and sees www's own address (DNAT, no SNAT).
			for _, c := range []struct {
				proto string
				port  int
			}{{"tcp", pmExtTCP}, {"udp", pmPort}} {
				saw, err := n.query(c.proto, c.port)
				if err != nil {
					t.Errorf("www → %s %s:%d: %v", c.proto, pmWAN, c.port, err)
				} else if !strings.HasPrefix(saw, pmWWW+":") {
					t.Errorf("www → %s %s:%d: whoami saw %q, want %s", c.proto, pmWAN, c.port, saw, pmWWW)
				}
			}

			// Stopping the mapper deletes the mappings.
			if err := p.Stop(); err != nil {
				t.Errorf("labtool portmap: %v\n%s", err, p.Tail(30))
			}
			if !strings.Contains(p.Log(), "mapper closed, err: <nil>") || strings.Count(p.Log(), "portmap: mapping deleted") != 2 {
				t.Errorf("the mapper did not say it deleted both mappings:\n%s", p.Tail(30))
			}
			if leases, err := upnpd.Leases(); err != nil || len(leases) != 0 {
				t.Errorf("miniupnpd's leases after stop = %+v (err %v), want none", leases, err)
			}
			if rules, err := upnpd.DNATRules(); err != nil || len(rules) != 0 {
				t.Errorf("miniupnpd's DNAT rules after stop = %q (err %v), want none", rules, err)
			}
			if saw, err := n.query("tcp", pmExtTCP); err == nil {
				t.Errorf("www still reaches the NAS at %s:%d after the mapping was deleted (whoami saw %s)", pmWAN, pmExtTCP, saw)
			}
		})
	}
}

// TestPortmapNoRouterSupport: a router that speaks no mapping protocol
// gives one clear error, once, and the mapper keeps running and stops
// cleanly.
func TestPortmapNoRouterSupport(t *testing.T) {
	t.Parallel()
	n := newPMNet(t)
	p, statusPath := n.startMapper(t)
	want := "no UPnP IGD, PCP or NAT-PMP answer from " + pmRouter
	st := waitPMStatus(t, p, statusPath, "the mapper to give up on the router", 30*time.Second, func(st portmap.Status) error {
		if st.LastError == "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if st.LastError != want || st.Protocol != "" || st.NextTry.IsZero() {
		t.Errorf("status %+v; want last error %q, no protocol and a next try", st, want)
	}
	for _, m := range st.Mappings {
		if m.External != 0 {
			t.Errorf("mapping %+v, want none made", m)
		}
	}
	if d := time.Until(st.NextTry); d < 4*time.Minute {
		t.Errorf("next try in %v, want about 5 minutes: such a router is asked again rarely", d)
	}
	time.Sleep(time.Second)
	if exited, err := p.Exited(); exited {
		t.Fatalf("labtool portmap exited: %v\n%s", err, p.Tail(30))
	}
	if err := p.Stop(); err != nil {
		t.Errorf("labtool portmap: %v\n%s", err, p.Tail(30))
	}
	log := p.Log()
	if n := strings.Count(log, "level=WARN"); n != 1 || !strings.Contains(log, want) {
		t.Errorf("%d warnings, want exactly one saying %q:\n%s", n, want, log)
	}
	if !strings.Contains(log, "mapper closed, err: <nil>") {
		t.Errorf("the mapper did not close cleanly:\n%s", p.Tail(30))
	}
}
