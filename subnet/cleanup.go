//go:build linux

package subnet

import (
	"errors"
	"log/slog"
	"path/filepath"

	"golang.org/x/sys/unix"

	"homenet/firewall"
)

// Cleanup removes what a gateway agent that died without closing (kill -9,
// a crash, a power cut on a router whose /proc survives… well, a crash)
// left behind: our policy rules (only ours: matched by priority, table and
// mark), every route in our table, the netfilter rules of every backend
// and the tables iptables-nft created for them (by the record in
// stateDir), and it restores the sysctls saved in stateDir. The TUN and
// its addresses go away with the dead process. Start calls it first;
// `homenet cleanup` may call it too. Nothing that is not ours is touched.
func Cleanup(stateDir string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	rules, routes := leftovers()
	if err := sweep(nil); err != nil {
		errs = append(errs, err)
	}
	if rules+routes > 0 {
		logger.Info("gateway: removed what a dead run left behind", "policy_rules", rules, "routes", routes,
			"netfilter", "every backend's homenet rules")
	}
	if stateDir != "" && len(errs) == 0 {
		if err := removeCreatedTables(stateDir, logger); err != nil {
			errs = append(errs, err)
		}
	}
	if stateDir != "" {
		s := sysctls{root: "/proc/sys", saved: filepath.Join(stateDir, sysctlFile)}
		done, err := s.restore()
		if err != nil {
			errs = append(errs, err)
		}
		if len(done) > 0 {
			logger.Info("gateway: restored sysctls a dead run had changed", "set", done)
		}
	}
	return errors.Join(errs...)
}

// sweep removes our rules, our table and netfilter rules. With fw nil it
// asks every backend usable here.
func sweep(fw firewall.Firewall) error {
	var errs []error
	errs = append(errs, delRules(unix.AF_INET), flushTable(unix.AF_INET))
	// Rules a run with IPv6 left behind go even if IPv6 is off now; a
	// kernel without IPv6 has none to list.
	if err := errors.Join(delRules(unix.AF_INET6), flushTable(unix.AF_INET6)); err != nil && ipv6Usable("") {
		errs = append(errs, err)
	}
	if fw != nil {
		errs = append(errs, fw.Remove())
	} else {
		errs = append(errs, firewall.RemoveAll())
	}
	return errors.Join(errs...)
}

// netfilterFile, in the state dir, records the nf_tables tables there were
// before the agent first changed netfilter, so that the tables iptables-nft
// created for our rules go at stop, or at the start after a kill -9.
const netfilterFile = "netfilter-restore.json"

// recordTables writes netfilterFile; see firewall.RecordTables.
func recordTables(stateDir string) error {
	return firewall.RecordTables(filepath.Join(stateDir, netfilterFile))
}

// removeCreatedTables deletes the tables iptables-nft created for our
// rules, once sweep has removed the rules. After a failed sweep it must not
// run: our chains would make the tables look like someone else's, and the
// record, which the next start needs, would go.
func removeCreatedTables(stateDir string, logger *slog.Logger) error {
	removed, kept, err := firewall.RemoveCreatedTables(filepath.Join(stateDir, netfilterFile))
	if len(removed) > 0 {
		logger.Info("gateway: deleted the netfilter tables created for our rules", "tables", removed)
	}
	if len(kept) > 0 {
		logger.Info("gateway: netfilter tables created for our rules hold something else now; kept", "tables", kept)
	}
	return err
}

// leftovers counts our policy rules and the routes in our table, both
// families.
func leftovers() (rules, routes int) {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, _ := listRules(fam)
		for _, r := range rs {
			if isOurRule(r) {
				rules++
			}
		}
		rts, _ := tableRoutes(fam)
		routes += len(rts)
	}
	return rules, routes
}
