package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// TestRelayAdmission: the home DERP relay admits registered nodes only. A
// DERP client with an unregistered node key is refused; a node deleted with
// `homenet nodes delete` drops out of its peer's netmap within 5 s and loses
// relay access.
func TestRelayAdmission(t *testing.T) {
	t.Parallel()
	tn := newTailnet(t, tailnetOpts{})
	p1, p2 := tn.phone("p1"), tn.phone("p2")
	tn.join(t, tn.key(t), p1, p2)

	// A stranger on the internet, with the DERP map the phones were given.
	stranger := tn.lab.Host("stranger", tn.inet.Link(tn.wanAddr(50).String()+"/24"))
	dm, err := p1.DERPMap()
	if err != nil {
		t.Fatalf("tailscale debug derp-map: %v", err)
	}
	dmFile := tn.lab.Dir() + "/derpmap.json"
	if err := os.WriteFile(dmFile, dm, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("DERP map as p1 got it: %s", dm)
	probe := func(key string) (admitted bool, out string) {
		out, err := stranger.Labtool(30*time.Second, "derp-probe", "-derpmap", dmFile, "-key", key, "-timeout", "10s")
		if err == nil {
			return true, out
		}
		if !strings.Contains(out, "refused") {
			t.Fatalf("DERP probe with key %s could not tell (the relay unreachable?): %v", key, err)
		}
		return false, out
	}

	// With p2's own node key, the probe is admitted: the probe works.
	p2Key := "state:" + p2.StateFile()
	if ok, out := probe(p2Key); !ok {
		t.Fatalf("registered node p2's key was refused by the relay:\n%s", out)
	}
	if ok, out := probe("new"); ok {
		t.Errorf("a fresh, unregistered node key was admitted by the relay:\n%s", out)
	}

	node, err := tn.hn.Node(p2.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.hn.CLI("nodes", "delete", strconv.FormatInt(int64(node.ID), 10)); err != nil {
		t.Fatalf("homenet nodes delete %d: %v", int64(node.ID), err)
	}
	deleted := time.Now()
	err = lab.Poll(5*time.Second, func() error {
		st, err := p1.Status()
		if err != nil {
			return err
		}
		if lab.Peer(st, p2.Hostname) != nil {
			return fmt.Errorf("p1 still has p2 in its netmap")
		}
		return nil
	})
	if err != nil {
		t.Errorf("deleted node: %v", err)
	} else {
		t.Logf("deleted node left its peer's netmap after %v", time.Since(deleted).Round(time.Millisecond))
	}

	err = lab.Poll(5*time.Second, func() error {
		if ok, out := probe(p2Key); ok {
			return fmt.Errorf("deleted node's key still admitted: %s", out)
		}
		return nil
	})
	if err != nil {
		t.Errorf("deleted node keeps relay access: %v", err)
	}
	if _, err := tn.hn.Node(p2.Hostname); err == nil {
		t.Errorf("deleted node still in homenet nodes list")
	}
}
