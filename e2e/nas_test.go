package e2e

import (
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"homenet/e2e/lab"
	"homenet/portmap"
)

// The NAS topology: homenet on a NAS behind the home router, which has the
// public address and speaks UPnP IGD (miniupnpd). The internet is
// 11.22.33.0/24, as in the port-mapping scenarios (see portmap_test.go).
//
//	11.22.33.0/24 ─┬─ home .2   NAT router with miniupnpd; drops unsolicited inbound
//	               │   └─ lan0 192.168.1.1/24 ─┬─ nas     192.168.1.20  homenet serve: control, relay, subnet router
//	               │                           └─ lanhost 192.168.1.10  HTTP :80
//	               └─ nat1 .11  the phone's NAT ── p1 10.1.0.2
const nasIP = "192.168.1.20"

// TestNASBehindRouter: homenet on a NAS maps its control, relay, STUN and
// WireGuard ports on the home router by UPnP; a phone on the internet logs
// in through the router's public address, reaches a second LAN host through
// the NAS as subnet router, and stopping homenet removes the mappings.
func TestNASBehindRouter(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	inet := l.Internet()
	home := l.NATRouter("home", inet.Link(pmWAN+"/24"), pmRouter+"/24", lab.NATOpts{})
	upnp := home.UPnP(lab.UPnPOpts{})
	nas := l.Host("nas", home.LAN.Link(nasIP+"/24"))
	lanHost := l.Host("lanhost", home.LAN.Link(gwLANHostIP+"/24"))
	startLANWeb(t, lanHost)
	nat := l.NATRouter("nat1", inet.Link("11.22.33.11/24"), "10.1.0.1/24", lab.NATOpts{})
	phone := l.Phone(l.Host("p1", nat.LAN.Link("10.1.0.2/24")))

	publicURL := fmt.Sprintf("http://%s:%d", pmWAN, lab.HomenetPort)
	cfgPath, stateDir := nas.Dir+"/homenet.toml", nas.Dir+"/state"
	conf := fmt.Sprintf(`state_dir = %q
[server]
url = %q
listen = ":%d"
[relay]
enabled = true
listen = ":%d"
stun_listen = ":%d"
[gateway]
enabled = true
routes = [%q]
exit_node = false
`, stateDir, publicURL, lab.HomenetPort, lab.RelayPort, lab.STUNPort, gwLANPrefix)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The NAS itself cannot reach the router's public address (no hairpin
	// NAT): wait for the server on its LAN address.
	hn := l.HomenetAt(nas, cfgPath, stateDir, fmt.Sprintf("http://%s:%d", nasIP, lab.HomenetPort))
	start := time.Now()
	hn.StartArgs("--log-level", "debug")

	var pm portmap.Status
	lab.WaitFor(t, 30*time.Second, "homenet to map its four ports on the router", func() error {
		pm = portmap.Status{}
		if _, err := statusPart(hn, "upnp", &pm); err != nil {
			return err
		}
		mapped := 0
		for _, m := range pm.Mappings {
			if m.External == m.Internal {
				mapped++
			}
		}
		if pm.Protocol != "upnp-igd" || mapped != 4 || pm.ExternalIPv4.String() != pmWAN {
			return fmt.Errorf("status: %+v", pm)
		}
		return nil
	})
	t.Logf("homenet serve → control, relay, STUN and WireGuard mapped by %s: %v", pm.Protocol, time.Since(start).Round(time.Millisecond))
	if leases, err := upnp.Leases(); err != nil || len(leases) != 4 {
		t.Errorf("miniupnpd leases: %v, %v; want 4", leases, err)
	}
	st := homenetStatus(t, hn)
	for _, want := range []string{`Reachability:\s+public-ipv4`, `Port mappings:\s+upnp-igd at ` + pmRouter + `, external address ` + pmWAN, `Mapped:\s+TCP 8080 → this host's 8080`} {
		if !regexp.MustCompile(want).MatchString(st) {
			t.Errorf("homenet status does not match %q:\n%s", want, st)
		}
	}

	key, err := hn.CreateKey()
	if err != nil {
		t.Fatal(err)
	}
	upStart := time.Now()
	if err := phone.Up(publicURL, key, "--accept-routes"); err != nil {
		t.Fatalf("tailscale up --login-server %s: %v", publicURL, err)
	}
	lab.WaitFor(t, pathTimeout, "HTTP from the phone to the LAN host through the NAS", func() error {
		_, err := lanPage(phone, 3*time.Second)
		return err
	})
	t.Logf("phone: tailscale up through the router's mapped ports → first page from the LAN host: %v", time.Since(upStart).Round(time.Millisecond))
	logPaths(t, phone)

	if err := hn.Stop(); err != nil {
		t.Errorf("homenet exited uncleanly on SIGTERM: %v", err)
	}
	if leases, err := upnp.Leases(); err != nil || len(leases) != 0 {
		t.Errorf("after stop, miniupnpd leases: %v, %v; want none", leases, err)
	}
	if rules, err := upnp.DNATRules(); err != nil || len(rules) != 0 {
		t.Errorf("after stop, the router's DNAT rules: %q, %v; want none", rules, err)
	}
}
