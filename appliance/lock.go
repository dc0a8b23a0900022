//go:build unix

package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// lockFile is the file in the state dir that one homenet serve holds locked,
// with its pid in it.
const lockFile = "serve.lock"

// lockStateDir makes this process the only homenet serve using the state dir
// dir, before it opens the store or touches the gateway's rules. It holds an
// flock on dir/serve.lock and writes its pid there; a second caller, in this
// process or another, fails with an error naming that pid. The kernel drops
// the lock when the process dies, so kill -9 leaves no stale lock behind.
// unlock releases it.
func lockStateDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	// The lock belongs to the open file, so a second open in this process
	// conflicts too. Its descriptor is close-on-exec: no child inherits it.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		pid := "unknown"
		if s := string(bytes.TrimSpace(b)); s != "" {
			pid = s // written right after locking; empty only in that instant
		}
		return nil, fmt.Errorf("another homenet serve is running (pid %s): it holds %s", pid, path)
	}
	if err := writeLockPID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the pid to %s: %w", path, err)
	}
	return func() {
		f.Truncate(0) // no pid left behind for people to wonder about
		f.Close()
	}, nil
}

// writeLockPID replaces the contents of the locked file f with this
// process's pid.
func writeLockPID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}
