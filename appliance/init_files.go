package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// initMarker starts the first comment of every file init writes besides
// the config. Uninstall removes only files that carry it, and init never
// replaces a file without it: such a file belongs to someone else, such as
// a package.
const initMarker = "Written by homenet init"

// markerLine is initMarker as a shell/TOML/INI comment line.
const markerLine = "# " + initMarker + `; "homenet uninstall" removes it.` + "\n"

// Step is one thing init or uninstall did, or found already done.
type Step struct {
	What   string `json:"what"`   // such as "config", "systemd unit", "firewalld"
	Target string `json:"target"` // a path, unit, interface or section
	Result string `json:"result"` // one of the Result constants
	Detail string `json:"detail,omitempty"`
}

// Results of a Step.
const (
	ResultCreated   = "created"
	ResultUpdated   = "updated"
	ResultUnchanged = "unchanged"
	ResultKept      = "kept"    // exists and was deliberately left as it is
	ResultRemoved   = "removed" // uninstall removed it
	ResultAbsent    = "absent"  // nothing to remove
	ResultDone      = "done"    // an action on the running system, such as starting a unit
	ResultSkipped   = "skipped" // not done; Detail says why and what to do
	ResultFailed    = "failed"
)

// Changed reports whether the step changed the system.
func (s Step) Changed() bool {
	switch s.Result {
	case ResultCreated, ResultUpdated, ResultRemoved, ResultDone:
		return true
	}
	return false
}

// fileStatus says how the file at p relates to want.
type fileStatus int

const (
	fileMissing fileStatus = iota
	fileSame
	fileDiffers
)

func statFile(p string, want []byte, mode fs.FileMode) (fileStatus, []byte, error) {
	have, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fileMissing, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	if !bytes.Equal(have, want) {
		return fileDiffers, have, nil
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != mode.Perm() {
		return fileDiffers, have, nil
	}
	return fileSame, have, nil
}

// writeFileAtomic writes b to p through a temporary file in the same
// directory, creating the directory (0755) when needed.
func writeFileAtomic(p string, b []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// installFile makes the file at platform path p under root hold b. A file
// there that does not carry initMarker is someone else's and is kept.
func installFile(root, what, p string, b []byte, mode fs.FileMode) (Step, error) {
	st := Step{What: what, Target: p}
	hp := filepath.Join(root, p)
	status, have, err := statFile(hp, b, mode)
	if err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	switch status {
	case fileSame:
		st.Result = ResultUnchanged
		return st, nil
	case fileDiffers:
		if !bytes.Contains(have, []byte(initMarker)) {
			st.Result = ResultKept
			st.Detail = "exists and was not written by homenet init (a package's?); left as it is"
			return st, nil
		}
		st.Result = ResultUpdated
	default:
		st.Result = ResultCreated
	}
	if err := writeFileAtomic(hp, b, mode); err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	return st, nil
}

// removeFile removes the file at platform path p under root if init wrote
// it.
func removeFile(root, what, p string) (Step, error) {
	st := Step{What: what, Target: p}
	hp := filepath.Join(root, p)
	have, err := os.ReadFile(hp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.Result = ResultAbsent
		return st, nil
	case err != nil:
		return st, fmt.Errorf("%s: %w", what, err)
	case !bytes.Contains(have, []byte(initMarker)):
		st.Result = ResultKept
		st.Detail = "not written by homenet init; left as it is"
		return st, nil
	}
	if err := os.Remove(hp); err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	st.Result = ResultRemoved
	return st, nil
}

// fileExists reports whether platform path p exists under root.
func fileExists(root, p string) bool {
	_, err := os.Stat(filepath.Join(root, p))
	return err == nil
}
