package subnet

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeProc builds a /proc/sys lookalike with the given values.
func fakeProc(t *testing.T, vals map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range vals {
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readAll(t *testing.T, root string, keys ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keys {
		v, err := readSysctl(root, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

var hostSysctls = map[string]string{
	"net/ipv4/ip_forward":                 "0",
	"net/ipv4/conf/all/forwarding":        "0",
	"net/ipv4/conf/default/forwarding":    "0",
	"net/ipv4/conf/eth0/forwarding":       "0",
	"net/ipv4/conf/lan0/forwarding":       "1", // odd, but must survive
	"net/ipv4/conf/all/accept_redirects":  "1",
	"net/ipv6/conf/all/forwarding":        "0",
	"net/ipv6/conf/default/forwarding":    "0",
	"net/ipv6/conf/eth0/forwarding":       "0",
	"net/ipv6/conf/eth0/accept_ra":        "1",
	"net/ipv6/conf/lan0/accept_ra":        "1",
	"net/ipv6/conf/all/disable_ipv6":      "0",
	"net/ipv4/conf/all/src_valid_mark":    "0",
	"net/ipv6/conf/default/disable_ipv6":  "0",
	"net/ipv4/conf/default/rp_filter":     "2",
	"net/ipv4/conf/lan0/accept_redirects": "1",
}

func TestForwardingSaveRestore(t *testing.T) {
	root := fakeProc(t, hostSysctls)
	keys := make([]string, 0, len(hostSysctls))
	for k := range hostSysctls {
		keys = append(keys, k)
	}
	s := sysctls{root: root, saved: filepath.Join(t.TempDir(), "state", sysctlFile)}

	set, err := s.enableForwarding(true, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.eth0.accept_ra=2"}
	if !slices.Equal(set, want) {
		t.Errorf("set %v, want %v", set, want)
	}
	if _, err := os.Stat(s.saved); err != nil {
		t.Fatalf("no restore file: %v", err)
	}
	got := readAll(t, root, "net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv6/conf/eth0/accept_ra", "net/ipv6/conf/lan0/accept_ra")
	if got["net/ipv4/ip_forward"] != "1" || got["net/ipv6/conf/all/forwarding"] != "1" ||
		got["net/ipv6/conf/eth0/accept_ra"] != "2" || got["net/ipv6/conf/lan0/accept_ra"] != "1" {
		t.Errorf("after enabling: %v", got)
	}
	// The kernel resets per-interface values when ip_forward changes;
	// imitate it, so restore has to put them back.
	os.WriteFile(filepath.Join(root, "net/ipv4/conf/lan0/forwarding"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(root, "net/ipv4/conf/all/accept_redirects"), []byte("0"), 0o644)

	// While a restore file exists (the run that wrote it never restored),
	// the saved originals must not be overwritten by current values.
	os.WriteFile(filepath.Join(root, "net/ipv4/ip_forward"), []byte("0"), 0o644)
	if _, err := s.enableForwarding(true, "eth0"); err == nil {
		t.Errorf("enableForwarding over an unrestored file succeeded")
	}

	done, err := s.restore()
	if err != nil {
		t.Fatal(err)
	}
	if len(done) == 0 {
		t.Errorf("restore changed nothing")
	}
	if after := readAll(t, root, keys...); !mapsEqual(after, hostSysctls) {
		t.Errorf("after restore:\n got %v\nwant %v", after, hostSysctls)
	}
	if _, err := os.Stat(s.saved); !os.IsNotExist(err) {
		t.Errorf("restore file still there: %v", err)
	}
	// Restoring again is a no-op.
	if done, err := s.restore(); err != nil || len(done) != 0 {
		t.Errorf("second restore: %v %v", done, err)
	}
}

func TestForwardingAlreadyOn(t *testing.T) {
	vals := map[string]string{
		"net/ipv4/ip_forward":          "1",
		"net/ipv6/conf/all/forwarding": "1",
		"net/ipv6/conf/eth0/accept_ra": "1",
	}
	root := fakeProc(t, vals)
	s := sysctls{root: root, saved: filepath.Join(t.TempDir(), sysctlFile)}
	set, err := s.enableForwarding(true, "eth0")
	if err != nil || len(set) != 0 {
		t.Fatalf("enableForwarding on a router = %v, %v; want nothing written", set, err)
	}
	if _, err := os.Stat(s.saved); !os.IsNotExist(err) {
		t.Errorf("restore file written though nothing changed")
	}
}

func TestForwardingIPv4Only(t *testing.T) {
	root := fakeProc(t, hostSysctls)
	s := sysctls{root: root, saved: filepath.Join(t.TempDir(), sysctlFile)}
	set, err := s.enableForwarding(false, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set, []string{"net.ipv4.ip_forward=1"}) {
		t.Errorf("set %v", set)
	}
	if v, _ := readSysctl(root, "net/ipv6/conf/all/forwarding"); v != "0" {
		t.Errorf("IPv6 forwarding touched without IPv6 routes")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
