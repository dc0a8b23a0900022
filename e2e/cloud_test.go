package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"homenet/e2e/lab"
)

// TestCloudResolver: a Linux VM on a cloud whose resolver lives at
// 100.100.2.136 (as on Alibaba Cloud) joins the tailnet with default
// settings and still resolves names through that resolver. tailscaled
// normally drops packets from 100.64.0.0/10 that do not come in on
// tailscale0; homenet must send the disable-linux-cgnat-drop-rule node
// attribute. (e2e/lab's TestCloudResolverDropRule shows this lab catches
// the drop rule.)
func TestCloudResolver(t *testing.T) {
	t.Parallel()
	tn := newTailnet(t, tailnetOpts{})
	cloud, vm := tn.natHost("vm")
	cloud.Resolver("100.100.2.136", "metadata.cloud.test=10.1.0.99")
	if err := vm.WriteFile("/etc/resolv.conf", []byte("nameserver 100.100.2.136\noptions timeout:1 attempts:2\n")); err != nil {
		t.Fatal(err)
	}
	query := func() error {
		out, err := vm.Labtool(10*time.Second, "dns-query", "-server", "100.100.2.136:53", "-name", "metadata.cloud.test", "-timeout", "2s")
		if err == nil && strings.TrimSpace(out) != "10.1.0.99" {
			err = fmt.Errorf("answer %q, want 10.1.0.99", out)
		}
		return err
	}
	getent := func() error {
		out, err := vm.Run("getent", "hosts", "metadata.cloud.test")
		if err == nil && !strings.Contains(out, "10.1.0.99") {
			err = fmt.Errorf("getent hosts: %q, want 10.1.0.99", out)
		}
		return err
	}
	if err := query(); err != nil {
		t.Fatalf("before joining, the VM cannot query its resolver (lab broken): %v", err)
	}

	p := tn.lab.Phone(vm)
	if err := p.Up(tn.hn.URL, tn.key(t)); err != nil { // default settings: no --accept-dns=false
		t.Fatalf("tailscale up: %v", err)
	}
	// Wait until tailscaled has set up its netfilter chains, where the CGNAT
	// rule lives, so the query below runs against the final ruleset.
	var rules string
	err := lab.Poll(20*time.Second, func() error {
		rules = netfilterRules(vm)
		if !strings.Contains(rules, "ts-input") {
			return fmt.Errorf("no ts-input chain yet")
		}
		return nil
	})
	if err != nil {
		t.Logf("tailscaled's netfilter chains did not appear (%v); querying anyway", err)
	}
	t.Logf("CGNAT rules in the VM after joining:\n%s", grepLines(rules, "100.64.0.0/10"))

	if err := lab.Poll(5*time.Second, query); err != nil {
		t.Errorf("after joining, the VM no longer gets answers from 100.100.2.136 (did homenet send %q?): %v",
			"disable-linux-cgnat-drop-rule", err)
	}
	if err := lab.Poll(5*time.Second, getent); err != nil {
		conf, _ := vm.Run("cat", "/etc/resolv.conf")
		t.Errorf("after joining, the system resolver fails: %v\n/etc/resolv.conf:\n%s", err, conf)
	}
}

// netfilterRules returns h's iptables and nftables rules, whichever
// tailscaled chose.
func netfilterRules(h *lab.Host) string {
	ipt, _ := h.Run("iptables-save")
	nft, _ := h.Run("nft", "list", "ruleset")
	return ipt + "\n" + nft
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, "\n")
}
