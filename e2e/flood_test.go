package e2e

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/appliance"
	"homenet/e2e/lab"
	"homenet/internal/promtext"
)

// floodRSSBound is what homenet serve may hold during the flood. Idle in
// the gateway lab it holds 50 to 70 MiB (the agent's wireguard-go buffers,
// mostly); the per-source tables and unauthenticated connections a flood
// from one address may take are worth a few MiB.
const floodRSSBound = 150 << 20

// TestFlood: a stranger on the internet floods homenet for 20 s with Noise
// connections, registrations (interactive, and with made-up keys) and DERP
// connections with unknown node keys. Meanwhile a joined phone keeps
// pinging the LAN host through the gateway, a second phone behind another
// address still gets its login link and joins once approved, the stranger
// gets no more than its share of waiting logins, and homenet's memory
// stays bounded.
func TestFlood(t *testing.T) {
	t.Parallel()
	n := newGwNet(t, gwOpts{})
	n.start(t)
	n.join(t)
	lanHost := netip.MustParseAddr(gwLANHostIP)
	lab.WaitFor(t, pathTimeout, "a ping from the phone to the LAN host", func() error {
		return n.phone.ICMPPing(lanHost)
	})

	inet := n.lab.Internet()
	wan := func(host int) string { return fmt.Sprintf("%s.%d", n.opts.WAN, host) }
	stranger := n.lab.Host("stranger", inet.Link(wan(66)+"/24").Via(wan(254)))
	nat2 := n.lab.NATRouter("nat2", inet.Link(wan(12)+"/24").Via(wan(254)), "10.2.0.1/24", lab.NATOpts{})
	p2 := n.lab.Phone(n.lab.Host("p2", nat2.LAN.Link("10.2.0.2/24")))

	dm, err := n.phone.DERPMap()
	if err != nil {
		t.Fatalf("tailscale debug derp-map: %v", err)
	}
	dmFile := n.lab.Dir() + "/derpmap.json"
	if err := os.WriteFile(dmFile, dm, 0o644); err != nil {
		t.Fatal(err)
	}
	rssBefore, err := n.hn.RSS()
	if err != nil {
		t.Fatal(err)
	}
	before := n.scrapeMetrics(t)

	const floodFor = 20 * time.Second
	start := time.Now()
	var (
		wg       sync.WaitGroup
		floodOut string
		floodErr error
	)
	wg.Go(func() {
		floodOut, floodErr = stranger.Labtool(floodFor+30*time.Second, "flood", "-url", n.hn.URL,
			"-duration", floodFor.String(), "-workers", "8", "-reuse", "4", "-rate", "200", "-derpmap", dmFile)
	})

	// The joined phone pings the LAN host through the gateway, and
	// homenet's RSS is sampled, until the flood ends.
	var (
		pings, lost int
		rssMax      int64
	)
	wg.Go(func() {
		for time.Since(start) < floodFor {
			if err := n.phone.ICMPPing(lanHost); err != nil {
				lost++
				t.Logf("%v into the flood: ping %v: %v", time.Since(start).Round(time.Millisecond), lanHost, err)
			}
			pings++
			if rss, err := n.hn.RSS(); err == nil {
				rssMax = max(rssMax, rss)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	// A few seconds in, when the stranger has used its bursts, a phone
	// from another address logs in interactively.
	time.Sleep(5 * time.Second)
	loginStart := time.Now()
	authURL, up, err := p2.UpInteractive(n.hn.URL)
	if err != nil {
		t.Fatalf("interactive login from another address during the flood: %v", err)
	}
	t.Logf("during the flood, p2's tailscale up printed its auth URL after %v", time.Since(loginStart).Round(time.Millisecond))
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("auth URL %q: %v", authURL, err)
	}
	if out, err := n.hn.CLI("nodes", "approve", path.Base(u.Path)); err != nil {
		t.Fatalf("homenet nodes approve: %v\n%s", err, out)
	}
	if err := up.Wait(60 * time.Second); err != nil {
		t.Fatalf("p2's tailscale up after approval during the flood: %v\n%s", err, up.Log())
	}
	if err := p2.WaitRunning(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("p2 Running %v after it started its login, %v into the flood", time.Since(loginStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	wg.Wait()
	if floodErr != nil {
		t.Fatalf("labtool flood: %v\n%s", floodErr, floodOut)
	}
	t.Logf("the stranger's flood (%v from %s), by outcome:\n%s", floodFor, stranger.Addr(), floodOut)
	t.Logf("the phone's pings to the LAN host during the flood: %d, %d lost", pings, lost)
	t.Logf("homenet RSS: %.1f MiB before, at most %.1f MiB during the flood (bound %d MiB)",
		float64(rssBefore)/(1<<20), float64(rssMax)/(1<<20), floodRSSBound>>20)

	outcomes, err := lab.FloodOutcomes(floodOut)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes["register: auth URL"]; got > 8 {
		t.Errorf("the stranger got %d waiting logins, want at most its share of 8", got)
	}
	for _, o := range []string{"upgrade: 429", "derp: 429"} {
		if outcomes[o] == 0 {
			t.Errorf("no %q among the flood's outcomes: the limit did not bite", o)
		}
	}
	if outcomes["derp: admitted"] > 0 || outcomes["register: authorized"] > 0 {
		t.Errorf("the stranger got in: %v", outcomes)
	}
	if lost > 1 {
		t.Errorf("the joined phone lost %d of %d pings to the LAN host during the flood, want at most 1", lost, pings)
	}
	if rssMax > floodRSSBound {
		t.Errorf("homenet RSS reached %.1f MiB during the flood, want under %d MiB", float64(rssMax)/(1<<20), floodRSSBound>>20)
	}

	after := n.scrapeMetrics(t)
	for _, s := range after.Samples {
		if strings.HasPrefix(s.Name, "homenet_control_rate_limited_total") || strings.HasPrefix(s.Name, "homenet_control_unauthenticated") ||
			s.Name == "homenet_relay_admit_rate_limited" || s.Name == "homenet_relay_admit_denied" {
			t.Logf("metrics after the flood: %s%v = %v", s.Name, s.Labels, s.Value)
		}
	}
	if v, _ := after.Value("homenet_control_rate_limited_total", "what", "noise_upgrade"); v == 0 {
		t.Errorf("homenet_control_rate_limited_total{what=noise_upgrade} = 0 after the flood")
	}
	if v0, _ := before.Value("homenet_relay_admit_rate_limited"); v0 != 0 {
		t.Errorf("homenet_relay_admit_rate_limited = %v before the flood, want 0", v0)
	}
	if v, _ := after.Value("homenet_relay_admit_rate_limited"); v == 0 {
		t.Errorf("homenet_relay_admit_rate_limited = 0 after the flood")
	}
}

// scrapeMetrics reads /metrics from the LAN host.
func (n *gwNet) scrapeMetrics(t *testing.T) *promtext.Exposition {
	t.Helper()
	u := fmt.Sprintf("http://192.168.1.1:%d/metrics", appliance.DefaultWebPort)
	out, err := n.lanHost.Labtool(15*time.Second, "http-get", "-timeout=5s", u)
	if err != nil {
		t.Fatalf("GET %s from the LAN host: %v\n%s", u, err, out)
	}
	status, body, _ := strings.Cut(out, "\n")
	if status != "200 OK" {
		t.Fatalf("GET %s = %q, want 200 OK", u, status)
	}
	e, err := promtext.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return e
}
