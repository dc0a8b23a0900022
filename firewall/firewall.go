package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Firewall installs Rules with one netfilter backend.
type Firewall interface {
	// Name is the backend: "iptables-nft", "iptables-legacy" or "nftables"
	// ("iptables" when the variant of the iptables binary is unknown).
	Name() string

	// Apply installs r, or updates what is installed to exactly r. It is
	// idempotent: a second Apply with equal Rules changes nothing. Applying
	// the zero Rules is Remove.
	Apply(r Rules) error

	// Intact reports whether everything Apply(r) installs is in place, so
	// that a caller can re-Apply after a firewall reload flushed it. It is
	// cheap enough to call every few seconds: the iptables backends read
	// the rules back with one iptables-save per family, and the nf_tables
	// ones (nftables, iptables-nft) read nothing when no nf_tables change
	// was notified since the rules were last found intact, up to a minute.
	Intact(r Rules) (bool, error)

	// Remove deletes everything any homenet process installed with this
	// backend, including one killed with -9: it works from the fixed chain
	// and table names, not from memory. It is a no-op when nothing is there.
	Remove() error
}

// Backend kinds accepted by New.
const (
	KindAuto           = "auto"
	KindIPTables       = "iptables" // whatever variant the iptables binary is
	KindIPTablesNft    = "iptables-nft"
	KindIPTablesLegacy = "iptables-legacy"
	KindNftables       = "nftables"
)

// New returns the backend of the given kind: "auto" (or ""), "iptables",
// "iptables-nft", "iptables-legacy" or "nftables". It fails if the backend
// cannot work here (binary missing, no nf_tables in the kernel).
func New(kind string) (Firewall, error) {
	switch kind {
	case "", KindAuto:
		k, why := Detect()
		fw, err := New(k)
		if err != nil && k != KindNftables {
			// Detect vouched for the variant of the plain iptables binary;
			// some systems ship only that name.
			if fw2, err2 := New(KindIPTables); err2 == nil {
				return fw2, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w (auto: %s)", err, why)
		}
		return fw, nil
	case KindIPTables, KindIPTablesNft, KindIPTablesLegacy:
		return newIPTables(kind)
	case KindNftables:
		return newNftables()
	}
	return nil, fmt.Errorf("firewall: unknown backend %q (want auto, iptables, iptables-nft, iptables-legacy or nftables)", kind)
}

// Detect returns the backend "auto" picks and why, for `homenet status`.
//
// Like tailscaled, it follows the system: without an iptables binary on PATH
// it picks native nftables; otherwise the variant the iptables binary is, so
// that our rules sit beside the system's own and show up in its tools.
// (OpenWrt with fw4 has no iptables binary by default and gets nftables; an
// OpenWrt with iptables-legacy installed gets legacy unless configured.)
func Detect() (kind, why string) {
	path, err := exec.LookPath("iptables")
	if err != nil {
		return KindNftables, "no iptables binary on PATH: using native nftables"
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return KindNftables, fmt.Sprintf("%s --version failed (%v): using native nftables", path, err)
	}
	ver := strings.TrimSpace(string(out))
	switch variantOf(out) {
	case KindIPTablesNft:
		return KindIPTablesNft, fmt.Sprintf("%s is %q: using iptables-nft", path, ver)
	case KindIPTablesLegacy:
		return KindIPTablesLegacy, fmt.Sprintf("%s is %q: using iptables-legacy", path, ver)
	}
	return KindIPTables, fmt.Sprintf("%s is %q (variant unknown): using it as is", path, ver)
}

// variantOf parses `iptables --version` output: "iptables v1.8.9
// (nf_tables)" or "(legacy)"; versions before 1.8 print no variant and are
// legacy.
func variantOf(versionOutput []byte) string {
	switch {
	case bytes.Contains(versionOutput, []byte("(nf_tables)")):
		return KindIPTablesNft
	case bytes.Contains(versionOutput, []byte("(legacy)")):
		return KindIPTablesLegacy
	case bytes.HasPrefix(versionOutput, []byte("iptables v1.")) &&
		!bytes.Contains(versionOutput, []byte("(")):
		return KindIPTablesLegacy
	}
	return ""
}

// RemoveAll runs Remove on every backend usable here, for cleaning up after
// the configured backend changed between runs (or for `homenet cleanup`).
func RemoveAll() error {
	var errs []error
	for _, k := range []string{KindNftables, KindIPTablesNft, KindIPTablesLegacy} {
		fw, err := New(k)
		if err != nil {
			continue // not usable here, so nothing of ours can be there
		}
		if err := fw.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kernelHasIPv6 reports whether the kernel (this network namespace) has
// IPv6 at all; with ipv6.disable=1 there is no /proc/net/if_inet6.
func kernelHasIPv6() bool {
	_, err := os.Stat("/proc/net/if_inet6")
	return err == nil
}
