package subnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"tailscale.com/atomicfile"
)

// sysctlFile, in the state dir, holds the values the agent changed, as
// they were before, so that a start after kill -9 can put them back.
const sysctlFile = "sysctl-restore.json"

// sysctls changes kernel parameters under root (/proc/sys) and puts them
// back. Only values that need changing are touched; the old values are
// saved to a file before the first write.
type sysctls struct {
	root  string // "/proc/sys"
	saved string // path of the restore file
}

// savedSysctls is the restore file: keys (relative paths under /proc/sys,
// e.g. "net/ipv4/ip_forward") with their old values, restored in Order.
type savedSysctls struct {
	Order  []string          `json:"order"`
	Values map[string]string `json:"values"`
}

// forwardingPlan lists what enabling forwarding writes: ip_forward (and
// net.ipv6.conf.all.forwarding with v6) when not already 1. Writing these
// also resets per-interface values (conf/*/forwarding, and for IPv4
// conf/all/accept_redirects), which are saved too, so that restoring gives
// back exactly what was there. With v6 forwarding on, an interface with
// accept_ra = 1 stops taking router advertisements, so the WAN's goes to 2.
func (s sysctls) forwardingPlan(v6 bool, wan string) (writes [][2]string, save []string, err error) {
	get := func(k string) string { v, _ := readSysctl(s.root, k); return v }
	if v := get("net/ipv4/ip_forward"); v != "1" {
		writes = append(writes, [2]string{"net/ipv4/ip_forward", "1"})
		save = append(save, "net/ipv4/ip_forward")
		save = append(save, s.glob("net/ipv4/conf/*/forwarding")...)
		save = append(save, "net/ipv4/conf/all/accept_redirects")
	}
	if v6 {
		if _, err := os.Stat(filepath.Join(s.root, "net/ipv6/conf/all/forwarding")); err != nil {
			return writes, save, nil // no IPv6 in this kernel
		}
		if v := get("net/ipv6/conf/all/forwarding"); v != "1" {
			writes = append(writes, [2]string{"net/ipv6/conf/all/forwarding", "1"})
			save = append(save, "net/ipv6/conf/all/forwarding")
			save = append(save, s.glob("net/ipv6/conf/*/forwarding")...)
			if wan != "" {
				k := "net/ipv6/conf/" + wan + "/accept_ra"
				if get(k) == "1" {
					writes = append(writes, [2]string{k, "2"})
					save = append(save, k)
				}
			}
		}
	}
	return writes, dedupe(save), nil
}

func (s sysctls) glob(pattern string) []string {
	ms, _ := filepath.Glob(filepath.Join(s.root, pattern))
	var out []string
	for _, m := range ms {
		rel, err := filepath.Rel(s.root, m)
		if err == nil {
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// enableForwarding turns forwarding on, saving what it changes first. It
// returns the keys it wrote, for the log.
func (s sysctls) enableForwarding(v6 bool, wan string) ([]string, error) {
	writes, save, err := s.forwardingPlan(v6, wan)
	if err != nil || len(writes) == 0 {
		return nil, err
	}
	if _, err := os.Stat(s.saved); err == nil {
		return nil, fmt.Errorf("%s exists: restore it first", s.saved)
	}
	old := savedSysctls{Values: map[string]string{}}
	for _, k := range save {
		if v, err := readSysctl(s.root, k); err == nil {
			old.Order = append(old.Order, k)
			old.Values[k] = v
		}
	}
	b, err := json.MarshalIndent(old, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeRecord(s.saved, b); err != nil {
		return nil, fmt.Errorf("saving sysctl values: %w", err)
	}
	var done []string
	for _, w := range writes {
		if err := writeSysctl(s.root, w[0], w[1]); err != nil {
			return done, err
		}
		done = append(done, dotted(w[0])+"="+w[1])
	}
	return done, nil
}

// restore puts back the values in the restore file, if there is one, and
// removes it. The main switches go first, since writing them resets the
// per-interface values restored after them.
func (s sysctls) restore() ([]string, error) {
	b, err := os.ReadFile(s.saved)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var old savedSysctls
	if err := json.Unmarshal(b, &old); err != nil {
		os.Remove(s.saved)
		return nil, fmt.Errorf("%s: %w (removed)", s.saved, err)
	}
	order := slices.Clone(old.Order)
	main := func(k string) bool {
		return k == "net/ipv4/ip_forward" || k == "net/ipv6/conf/all/forwarding"
	}
	slices.SortStableFunc(order, func(a, b string) int {
		switch {
		case main(a) && !main(b):
			return -1
		case main(b) && !main(a):
			return 1
		}
		return 0
	})
	var errs []error
	var done []string
	for _, k := range order {
		v, ok := old.Values[k]
		if !ok {
			continue
		}
		cur, err := readSysctl(s.root, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the interface is gone
		}
		if cur == v {
			continue
		}
		if err := writeSysctl(s.root, k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, dotted(k)+"="+v)
	}
	if len(errs) == 0 {
		if err := os.Remove(s.saved); err != nil {
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}

func writeSysctl(root, key, val string) error {
	if err := os.WriteFile(filepath.Join(root, key), []byte(val), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", dotted(key), val, err)
	}
	return nil
}

// dotted turns "net/ipv4/ip_forward" into "net.ipv4.ip_forward".
func dotted(key string) string { return strings.ReplaceAll(key, "/", ".") }

// writeRecord writes path through a temporary file and fsync, so that a
// power cut leaves either no record or a whole one: it must survive the
// crash it is for.
func writeRecord(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

func readSysctl(root, key string) (string, error) {
	b, err := os.ReadFile(root + "/" + key)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
