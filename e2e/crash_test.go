package e2e

import (
	"slices"
	"strings"
	"testing"

	"homenet/e2e/lab"
)

// TestCrashKeepsAcknowledged: what homenet acknowledged (a key created, a
// node registered) survives kill -9 right after the acknowledgement.
func TestCrashKeepsAcknowledged(t *testing.T) {
	l := lab.New(t)
	inet := l.Internet()
	gw := l.Host("gw", inet.Link(publicWAN+".1/24"))
	p := l.Phone(l.Host("p1", inet.Link(publicWAN+".21/24")))
	hn := l.Homenet(gw, lab.HomenetConfig{})

	key, err := hn.CreateKey("--reusable")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Up(hn.URL, key); err != nil {
		t.Fatal(err)
	}
	node, err := hn.Node(p.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	second, err := hn.CreateKey()
	if err != nil {
		t.Fatal(err)
	}
	hn.Kill()
	hn.Start()

	out, err := hn.CLI("keys", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, second} {
		prefix := k[:strings.LastIndex(k, "-")]
		if !strings.Contains(out, prefix) {
			t.Errorf("key %s lost in the crash; keys list:\n%s", prefix, out)
		}
	}
	after, err := hn.Node(p.Hostname)
	if err != nil {
		t.Fatalf("node lost in the crash: %v", err)
	}
	if after.ID != node.ID || !slices.Equal(after.Addresses, node.Addresses) {
		t.Errorf("after the crash node = %+v, want %+v", after, node)
	}
}
