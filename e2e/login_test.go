package e2e

import (
	"net/url"
	"path"
	"testing"
	"time"
)

// TestInteractiveLogin: `tailscale up` without a key prints a URL; the
// owner approves its code with `homenet nodes approve CODE`; the node joins
// and can reach a node that joined with a key.
func TestInteractiveLogin(t *testing.T) {
	t.Parallel()
	tn := newTailnet(t, tailnetOpts{})
	p1, p2 := tn.phone("p1"), tn.phone("p2")
	tn.join(t, tn.key(t), p2)

	authURL, up, err := p1.UpInteractive(tn.hn.URL)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("auth URL %q: %v", authURL, err)
	}
	if want := tn.hn.URL; u.Scheme+"://"+u.Host != want {
		t.Errorf("auth URL %s is not on the login server %s", authURL, want)
	}
	code := path.Base(u.Path)
	t.Logf("auth URL %s, code %s", authURL, code)

	if out, err := tn.hn.CLI("nodes", "approve", code); err != nil {
		t.Fatalf("homenet nodes approve %s: %v\n%s", code, err, out)
	}
	if err := up.Wait(60 * time.Second); err != nil {
		t.Fatalf("tailscale up after approval: %v\n%s", err, up.Log())
	}
	if err := p1.WaitRunning(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkAddresses(t, p1, defaultPrefix)
	if _, err := tn.hn.Node(p1.Hostname); err != nil {
		t.Error(err)
	}
	if err := p1.WaitPeers(joinTimeout, p2); err != nil {
		t.Fatal(err)
	}
	icmpReaches(t, p1, ip4(t, p2))
}
