package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"homenet/appliance"
)

// TestWebAdminListener: the web admin answers on the gateway's LAN address,
// on loopback and on its tailnet address, and not on its WAN address,
// although it listens on all of them.
func TestWebAdminListener(t *testing.T) {
	t.Parallel()
	n := newGwNet(t, gwOpts{})
	n.start(t)
	gwIP, _ := n.join(t)
	page := func(from string, get func(url string) (string, error), host string) (string, error) {
		return get(fmt.Sprintf("http://%s:%d/login", host, appliance.DefaultWebPort))
	}
	hostGet := func(h interface {
		Labtool(time.Duration, ...string) (string, error)
	}) func(string) (string, error) {
		return func(url string) (string, error) { return h.Labtool(10*time.Second, "http-get", "-timeout=3s", url) }
	}
	tests := []struct {
		from   string
		get    func(string) (string, error)
		host   string
		answer bool
	}{
		{"the LAN host", hostGet(n.lanHost), "192.168.1.1", true},
		{"the gateway itself", hostGet(n.gw), "127.0.0.1", true},
		{"the phone, over the tailnet", hostGet(n.phone.Host), gwIP.String(), true},
		{"the internet host, to the WAN address", hostGet(n.inet), n.wanIP(1).String(), false},
	}
	for _, tt := range tests {
		out, err := page(tt.from, tt.get, tt.host)
		answered := err == nil && strings.Contains(out, "password")
		if answered != tt.answer {
			t.Errorf("%s → %s: answered %v, want %v (%v)\n%s", tt.from, tt.host, answered, tt.answer, err, out)
		}
	}
}
