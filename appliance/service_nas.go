package appliance

import (
	"context"
	"os"
	"path/filepath"
)

// On Synology and QNAP the homenet package owns the service: it runs
// "homenet serve" with the config init writes into the package's
// directory. Init only restarts the package so that it reads a changed
// config.

// synopkgPath is DSM's package tool.
const synopkgPath = "/usr/syno/bin/synopkg"

// nasServiceCommand returns the command that restarts homenet's package,
// or nil when the package is not installed.
func nasServiceCommand(root string, p Platform, verb string) []string {
	switch p.Kind {
	case PlatformSynology:
		if fileExists(root, p.PackageDir) {
			return []string{synopkgPath, verb, PackageName}
		}
	case PlatformQNAP:
		// The QPKG's service script, as App Center itself calls it.
		b, _ := os.ReadFile(filepath.Join(root, "/etc/config/qpkg.conf"))
		if shell := iniSection(b, PackageName)["Shell"]; shell != "" {
			return []string{shell, verb}
		}
	}
	return nil
}

// nasRestart restarts homenet's package when the config changed.
func nasRestart(ctx context.Context, run Runner, root string, p Platform, changed bool) (Step, bool) {
	st := Step{What: "package", Target: PackageName}
	cmd := nasServiceCommand(root, p, "restart")
	switch {
	case cmd == nil:
		st.Result, st.Detail = ResultSkipped, "the homenet package is not installed; install it and it runs homenet with this config"
		return st, false
	case !changed:
		st.Result, st.Detail = ResultUnchanged, "the package runs homenet"
		return st, true
	case run == nil:
		st.Result, st.Detail = ResultSkipped, "not the running system; restart the homenet package to apply the config"
		return st, false
	}
	if _, err := run.Run(ctx, cmd[0], cmd[1:]...); err != nil {
		st.Result, st.Detail = ResultFailed, err.Error()
		return st, false
	}
	st.Result, st.Detail = ResultDone, "restarted with the new configuration"
	return st, true
}
