package appliance

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// UninstallOptions configure Uninstall.
type UninstallOptions struct {
	// Root, ConfigPath, Bus and Run are as in InitOptions.
	Root       string
	ConfigPath string
	Bus        func() (Bus, error)
	Run        Runner
	// Purge also deletes the config (with its backups) and the state dir:
	// the database with every node, the keys, the relay's certificate.
	Purge bool
	// Confirm, when set, is asked before Purge deletes anything; false
	// keeps the config and state.
	Confirm func(question string) (bool, error)
}

// UninstallResult is what Uninstall did.
type UninstallResult struct {
	Platform   Platform `json:"platform"`
	ConfigPath string   `json:"config"`
	StateDir   string   `json:"state_dir"`
	Steps      []Step   `json:"steps"`
	Changed    bool     `json:"changed"`
	// Kept are the paths left in place without Purge.
	Kept []string `json:"kept,omitempty"`
	Next []string `json:"next,omitempty"`
}

// Uninstall removes what Init added: it stops and disables the service,
// removes the unit or init script, the sysctl and NetworkManager files, the
// firewalld trust and the OpenWrt UCI sections. The config and the state
// dir stay unless o.Purge. Files init did not write are left alone. Run
// again, it changes nothing.
func Uninstall(ctx context.Context, o UninstallOptions) (*UninstallResult, error) {
	un := &initRun{o: InitOptions{Root: o.Root, Bus: o.Bus, Run: o.Run}, root: cmp.Or(o.Root, "/")}
	defer un.closeBus()
	res, err := un.uninstall(ctx, o)
	for _, s := range res.Steps {
		res.Changed = res.Changed || s.Changed()
	}
	return res, err
}

func (un *initRun) uninstall(ctx context.Context, o UninstallOptions) (*UninstallResult, error) {
	un.plat = DetectPlatform(un.root)
	res := &UninstallResult{Platform: un.plat, ConfigPath: cmp.Or(o.ConfigPath, un.plat.ConfigPath), Steps: []Step{}}
	step := func(s Step) { res.Steps = append(res.Steps, s) }
	stepErr := func(s Step, err error) error {
		if err != nil {
			return err
		}
		step(s)
		return nil
	}
	if !path.IsAbs(res.ConfigPath) {
		return res, fmt.Errorf("config path %q is not absolute", res.ConfigPath)
	}
	res.StateDir = un.plat.StateDir
	cfg, _, cfgErr := readExistingConfig(un.root, res.ConfigPath)
	if cfg != nil {
		res.StateDir = absStateDir(res.ConfigPath, cfg.StateDir)
	}

	// The service.
	switch un.plat.Kind {
	case PlatformSystemd:
		bus := un.getBus()
		if bus != nil {
			steps, err := systemdRemove(ctx, bus)
			res.Steps = append(res.Steps, steps...)
			if err != nil {
				return res, err
			}
		}
		st, err := removeFile(un.root, "systemd unit", systemdUnitPath)
		if err := stepErr(st, err); err != nil {
			return res, err
		}
		if bus == nil {
			// Disable by hand: the link "systemctl enable" made.
			link := "/etc/systemd/system/multi-user.target.wants/" + unitName
			if removeLink(un.root, link, systemdUnitPath) {
				step(Step{What: "systemd", Target: link, Result: ResultRemoved, Detail: "disabled"})
			}
			if st.Result == ResultRemoved {
				res.Next = append(res.Next, "systemctl stop "+unitName+"; systemctl daemon-reload")
			}
		} else if st.Result == ResultRemoved {
			if err := systemdReload(ctx, bus); err != nil {
				return res, fmt.Errorf("systemd Reload: %w", err)
			}
			step(Step{What: "systemd", Target: "daemon", Result: ResultDone, Detail: "reloaded unit files"})
		}
	case PlatformOpenWrt:
		if un.o.Run != nil && fileExists(un.root, procdScriptPath) {
			steps, err := procdRemove(ctx, un.o.Run)
			res.Steps = append(res.Steps, steps...)
			if err != nil {
				return res, err
			}
		}
		st, err := removeFile(un.root, "procd init script", procdScriptPath)
		if err := stepErr(st, err); err != nil {
			return res, err
		}
		if un.o.Run == nil {
			for _, l := range []string{"/etc/rc.d/S80homenet", "/etc/rc.d/K10homenet"} {
				if removeLink(un.root, l, "../init.d/homenet") {
					step(Step{What: "procd", Target: l, Result: ResultRemoved, Detail: "disabled"})
				}
			}
		}
	case PlatformSynology, PlatformQNAP:
		// The package owns the service; stop it, since its config may go.
		if cmd := nasServiceCommand(un.root, un.plat, "stop"); cmd != nil && un.o.Run != nil {
			st := Step{What: "package", Target: PackageName, Result: ResultDone, Detail: "stopped"}
			if _, err := un.o.Run.Run(ctx, cmd[0], cmd[1:]...); err != nil {
				st.Result, st.Detail = ResultFailed, err.Error()
			}
			step(st)
		}
		res.Next = append(res.Next, "remove the homenet package in "+map[PlatformKind]string{PlatformSynology: "Package Center", PlatformQNAP: "App Center"}[un.plat.Kind])
	}

	// Host integration.
	switch un.plat.Kind {
	case PlatformOpenWrt:
		var changed []string
		for _, f := range []string{uciNetworkPath, uciFirewallPath} {
			st, err := uciRemove(un.root, f)
			if err := stepErr(st, err); err != nil {
				return res, err
			}
			if st.Changed() {
				changed = append(changed, f)
			}
		}
		if len(changed) > 0 && un.o.Run != nil {
			res.Steps = append(res.Steps, openwrtReload(ctx, un.o.Run, changed)...)
		}
		st, err := removeFile(un.root, "forwarding", sysctlPath)
		if err := stepErr(st, err); err != nil {
			return res, err
		}
	case PlatformSystemd, PlatformLinux:
		st, err := removeFile(un.root, "forwarding", sysctlPath)
		if st.Result == ResultRemoved {
			st.Detail = "forwarding stays on until the next boot"
		}
		if err := stepErr(st, err); err != nil {
			return res, err
		}
		st, err = removeFile(un.root, "NetworkManager", nmConfPath)
		if err := stepErr(st, err); err != nil {
			return res, err
		}
		if st.Result == ResultRemoved && un.running(ctx, nmDest) {
			rst := Step{What: "NetworkManager", Target: "configuration", Result: ResultDone, Detail: "reloaded"}
			if err := nmReload(ctx, un.getBus()); err != nil {
				rst.Result, rst.Detail = ResultFailed, err.Error()
			}
			step(rst)
		}
		if un.running(ctx, firewalldDest) {
			steps, err := firewalldUntrust(ctx, un.getBus(), tunName)
			res.Steps = append(res.Steps, steps...)
			if err != nil {
				step(Step{What: "firewalld", Target: tunName, Result: ResultFailed, Detail: err.Error()})
			}
		}
	}

	// Config and state.
	stateHost := filepath.Join(un.root, res.StateDir)
	if !o.Purge {
		for _, p := range []string{res.ConfigPath, res.StateDir} {
			if fileExists(un.root, p) || p == res.StateDir && dirExists(stateHost) {
				res.Kept = append(res.Kept, p)
			}
		}
		return res, nil
	}
	if o.Confirm != nil {
		ok, err := o.Confirm(fmt.Sprintf("Delete the config %s and the state dir %s, with every node and key?", res.ConfigPath, res.StateDir))
		if err != nil {
			return res, err
		}
		if !ok {
			res.Kept = append(res.Kept, res.ConfigPath, res.StateDir)
			return res, nil
		}
	}
	if cfgErr != nil && cfg == nil && o.ConfigPath == "" && fileExists(un.root, res.ConfigPath) {
		// An unreadable config may name another state dir; say so.
		step(Step{What: "config", Target: res.ConfigPath, Result: ResultFailed, Detail: cfgErr.Error() + "; removing the default state dir only"})
	}
	st, err := un.purgeStateDir(res.StateDir, stateHost)
	if err := stepErr(st, err); err != nil {
		return res, err
	}
	for _, p := range configFiles(un.root, res.ConfigPath) {
		if err := os.Remove(filepath.Join(un.root, p)); err != nil {
			return res, fmt.Errorf("removing %s: %w", p, err)
		}
		step(Step{What: "config", Target: p, Result: ResultRemoved})
	}
	if res.ConfigPath == un.plat.ConfigPath && un.plat.Kind != PlatformSynology {
		// The config's directory, which init made, when it is now empty.
		// DSM owns the package's etc directory.
		dir := path.Dir(res.ConfigPath)
		if os.Remove(filepath.Join(un.root, dir)) == nil {
			step(Step{What: "config dir", Target: dir, Result: ResultRemoved})
		}
	}
	return res, nil
}

// configFiles returns the config and its backups that exist under root.
func configFiles(root, cfgPath string) []string {
	var out []string
	if fileExists(root, cfgPath) {
		out = append(out, cfgPath)
	}
	ms, _ := filepath.Glob(filepath.Join(root, cfgPath) + ".bak-*")
	for _, m := range ms {
		out = append(out, path.Join(path.Dir(cfgPath), filepath.Base(m)))
	}
	return out
}

// purgeStateDir deletes the state dir, if it looks like homenet's own: its
// name mentions homenet, or it is the platform's default. DSM's package
// var dir is emptied rather than removed, since DSM owns it.
func (un *initRun) purgeStateDir(stateDir, hp string) (Step, error) {
	st := Step{What: "state dir", Target: stateDir}
	if !dirExists(hp) {
		st.Result = ResultAbsent
		return st, nil
	}
	clean := path.Clean(stateDir)
	ours := strings.Contains(path.Base(clean), "homenet") || clean == un.plat.StateDir
	if !ours || strings.Count(clean, "/") < 2 {
		st.Result = ResultSkipped
		st.Detail = "does not look like homenet's own directory; delete it yourself if it is"
		return st, nil
	}
	if un.plat.Kind == PlatformSynology && clean == un.plat.StateDir {
		ents, err := os.ReadDir(hp)
		if err != nil {
			return st, err
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(hp, e.Name())); err != nil {
				return st, fmt.Errorf("purging the state dir: %w", err)
			}
		}
		st.Result, st.Detail = ResultRemoved, "emptied (DSM owns the directory)"
		return st, nil
	}
	if err := os.RemoveAll(hp); err != nil {
		return st, fmt.Errorf("purging the state dir: %w", err)
	}
	st.Result = ResultRemoved
	return st, nil
}

// removeLink removes the symlink at platform path p under root if it points
// at target (given as the link's text or the target's platform path).
func removeLink(root, p, target string) bool {
	hp := filepath.Join(root, p)
	dest, err := os.Readlink(hp)
	if err != nil {
		return false
	}
	if dest != target && path.Clean(path.Join(path.Dir(p), dest)) != path.Clean(target) {
		return false
	}
	return os.Remove(hp) == nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
