//go:build unix

package appliance

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockStateDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, lockFile)
	if b, _ := os.ReadFile(path); string(b) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("%s holds %q, want this process's pid %d", path, b, os.Getpid())
	}

	_, err = lockStateDir(dir)
	want := fmt.Sprintf("another homenet serve is running (pid %d): it holds %s", os.Getpid(), path)
	if err == nil || err.Error() != want {
		t.Fatalf("second lock: err = %v, want %q", err, want)
	}

	unlock()
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("after unlock, %s holds %q, want nothing", path, b)
	}
	unlock, err = lockStateDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock()
}

// TestLockStateDirKilled: a homenet serve killed with SIGKILL leaves no
// stale lock, and while it lives, another process is told its pid.
func TestLockStateDirKilled(t *testing.T) {
	if dir := os.Getenv("HOMENET_TEST_LOCK_DIR"); dir != "" {
		// The child: hold the lock until killed.
		if _, err := lockStateDir(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockStateDirKilled$")
	cmd.Env = append(os.Environ(), "HOMENET_TEST_LOCK_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("child: %q, want \"locked\"", line)
	}

	_, err = lockStateDir(dir)
	if want := fmt.Sprintf("another homenet serve is running (pid %d)", cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("lock while the child holds it: err = %v, want one containing %q", err, want)
	}

	cmd.Process.Kill() // SIGKILL: no chance to clean up
	cmd.Wait()
	unlock, err := lockStateDir(dir)
	if err != nil {
		t.Fatalf("lock after the holder was killed: %v", err)
	}
	unlock()
}
