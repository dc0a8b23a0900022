package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a server the bench runs on loopback as a process of its own, so
// that its CPU time and memory are its alone.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startChild starts args with extra environment env, logging to
// dir/name.log.
func startChild(dir, name string, env []string, args ...string) (*child, error) {
	logPath := fmt.Sprintf("%s/%s.log", dir, name)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "==== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 10 s.
func (c *child) stop() {
	if c.exited() {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// tail returns the last n lines of the log.
func (c *child) tail(n int) string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// waitHTTP polls url until it answers 2xx, the child exits or timeout.
func (c *child) waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if c.exited() {
			return fmt.Errorf("%s exited: %v\n%s", c.name, c.err, c.tail(30))
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		res, err := hc.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("%s", res.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not answering %s after %v: %v\n%s", c.name, url, timeout, err, c.tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 (also free for
// UDP in practice: nothing else binds them in between).
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// loopbackHomenetConfig is a homenet config serving on 127.0.0.1: control
// on ports[0], the relay's TLS on ports[1] and STUN on ports[2]. With
// relay false, the relay is off.
func loopbackHomenetConfig(stateDir string, ports []int, relay bool) string {
	return fmt.Sprintf(`# written by homenet/bench
state_dir = %q

[server]
url = "http://127.0.0.1:%d"
listen = "127.0.0.1:%d"

[relay]
enabled = %v
listen = "127.0.0.1:%d"
stun_listen = "127.0.0.1:%d"
hostname = "127.0.0.1"

[gateway]
enabled = false

[web]
listen = ""

[upnp]
enabled = false
`, stateDir, ports[0], ports[0], relay, ports[1], ports[2])
}
