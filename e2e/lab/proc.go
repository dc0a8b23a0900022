package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultRunTimeout bounds Host.Run and friends.
const DefaultRunTimeout = 60 * time.Second

// Command returns a command that runs args inside h: in its network
// namespace and its mount namespace (private /etc).
func (h *Host) Command(ctx context.Context, args ...string) *exec.Cmd {
	pid := fmt.Sprint(h.anchor.Process.Pid)
	full := append([]string{"-t", pid, "-n", "-m", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.WaitDelay = 5 * time.Second
	h.lab.mu.Lock()
	if len(h.env) > 0 {
		cmd.Env = append(os.Environ(), h.env...)
	}
	h.lab.mu.Unlock()
	return cmd
}

// SetEnv adds environment variables ("K=V") to every command run or
// started in h from now on, for example SSL_CERT_FILE to make the host
// trust a lab CA. Later values win.
func (h *Host) SetEnv(kv ...string) {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	h.env = append(h.env, kv...)
}

// Exec runs args inside h and returns stdout and stderr separately. The
// error, if any, carries stderr.
func (h *Host) Exec(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := h.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("[%s] %s: %w\n%s%s", h.Name, strings.Join(args, " "), err, e.String(), o.String())
	}
	return o.String(), e.String(), err
}

// RunTimeout runs args inside h with a deadline and returns stdout and
// stderr together.
func (h *Host) RunTimeout(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	o, e, err := h.Exec(ctx, args...)
	return o + e, err
}

// Output runs args inside h with a deadline and returns its stdout; the
// error carries stderr.
func (h *Host) Output(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	o, _, err := h.Exec(ctx, args...)
	return o, err
}

// Run runs args inside h (with DefaultRunTimeout) and returns stdout and
// stderr together.
func (h *Host) Run(args ...string) (string, error) {
	return h.RunTimeout(DefaultRunTimeout, args...)
}

// MustRun is Run that fails the test on error.
func (h *Host) MustRun(args ...string) string {
	h.lab.t.Helper()
	out, err := h.Run(args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return out
}

// Proc is a long-running process inside a host. Its stdout and stderr go to
// a log file, dumped into the test log when the test fails. The lab stops it
// at the end of the test.
type Proc struct {
	Name    string
	Host    *Host
	LogPath string
	// DumpLines is how many trailing log lines are shown on failure.
	DumpLines int

	cmd     *exec.Cmd
	done    chan struct{}
	err     error // valid after done
	stopped sync.Once
}

// Start starts args inside h in the background, with extra environment
// variables env ("K=V"). name labels its log.
func (h *Host) Start(name string, env []string, args ...string) *Proc {
	h.lab.t.Helper()
	p, err := h.start(name, env, args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return p
}

func (h *Host) start(name string, env []string, args ...string) (*Proc, error) {
	logPath := fmt.Sprintf("%s/%s.log", h.Dir, name)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "==== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := h.Command(context.Background(), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(cmd.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("[%s] starting %s: %w", h.Name, name, err)
	}
	p := &Proc{Name: name, Host: h, LogPath: logPath, DumpLines: 80, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p, nil
}

// Pid is the process id (nsenter execs the command, so it is the
// command's own pid).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits up to d for the process to exit and returns its error.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("[%s] %s still running after %v", p.Host.Name, p.Name, d)
	}
}

// Stop sends SIGTERM, waits up to 10 s, then SIGKILLs. It is idempotent.
func (p *Proc) Stop() error {
	p.stopped.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && !ee.Exited() {
		return nil // killed by our signal
	}
	return p.err
}

// Log returns everything the process has printed so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	lines := strings.SplitAfter(p.Log(), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[… %d lines …]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

func (p *Proc) dump() {
	if p.DumpLines <= 0 {
		return
	}
	p.Host.lab.t.Logf("---- %s on %s (pid %d), last %d lines of %s ----\n%s",
		p.Name, p.Host.Name, p.Pid(), p.DumpLines, p.LogPath, p.Tail(p.DumpLines))
}
