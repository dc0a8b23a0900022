package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"homenet/control"
)

// loopServer is `homenet serve` (or the bench helper running the same
// code, when pprof is wanted and homenet does not serve it) on loopback
// with a state directory of its own, which a row may kill and restart:
// rows 6 (crash) and 7 (soak). Row 3 predates it and starts its server in
// controlRun.
type loopServer struct {
	e         *env
	homenet   string   // homenet binary, for its CLI (keys, nodes)
	args      []string // the server command, without the config path
	env       []string
	dir       string
	cfgPath   string
	url       string // control
	pprofAddr string // loopback address serving pprof, "" without
	c         *child
}

// newLoopServer writes a config into a new directory under the bench's
// work directory. With pprof, the server serves net/http/pprof (through
// the bench helper unless homenet honours $HOMENET_PPROF itself).
func newLoopServer(e *env, name string, relay, pprof bool) (*loopServer, error) {
	bin, err := e.b.hostHomenet(e.ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.work, name)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	s := &loopServer{
		e:       e,
		homenet: bin,
		args:    []string{bin, "serve", "--config"},
		dir:     dir,
		cfgPath: filepath.Join(dir, "homenet.toml"),
		url:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
	}
	if pprof {
		s.pprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[3])
		s.env = append(s.env, pprofEnv+"="+s.pprofAddr)
		if !binaryMentions(bin, pprofEnv) {
			self, err := e.b.self()
			if err != nil {
				return nil, err
			}
			s.args = []string{self, "helper", "serve", "-config"}
		}
	}
	cfg := loopbackHomenetConfig(filepath.Join(dir, "state"), ports, relay)
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

// dbPath is the control store, as appliance.Serve names it.
func (s *loopServer) dbPath() string { return filepath.Join(s.dir, "state", "homenet.db") }

// start starts the server and returns the time from the process's start
// until control answers.
func (s *loopServer) start() (time.Duration, error) {
	t0 := time.Now()
	c, err := startChild(s.dir, "server", s.env, append(s.args, s.cfgPath)...)
	if err != nil {
		return 0, err
	}
	s.c = c
	if err := c.waitHTTP(s.e.ctx, s.url+"/key?v=113", 30*time.Second); err != nil {
		c.stop()
		return 0, err
	}
	return time.Since(t0), nil
}

func (s *loopServer) pid() int { return s.c.pid() }

// kill is kill -9: SIGKILL, then wait for the process to be gone.
func (s *loopServer) kill() error {
	if s.c == nil || s.c.exited() {
		return fmt.Errorf("server (%s) is not running", s.dir)
	}
	if err := s.c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %d: %w", s.pid(), err)
	}
	<-s.c.done
	return nil
}

// stop stops the server cleanly (SIGTERM).
func (s *loopServer) stop() {
	if s.c != nil {
		s.c.stop()
	}
}

// cli runs the homenet CLI against this server's config.
func (s *loopServer) cli(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.homenet, append(args, "--config", s.cfgPath)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		return nil, fmt.Errorf("homenet %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return out, nil
}

// reusableKey creates a reusable auth key.
func (s *loopServer) reusableKey(ctx context.Context) (string, error) {
	out, err := s.cli(ctx, "keys", "create", "--reusable")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// nodes lists the server's nodes through `homenet nodes list --json`.
func (s *loopServer) nodes(ctx context.Context) ([]control.NodeInfo, error) {
	out, err := s.cli(ctx, "nodes", "list", "--json")
	if err != nil {
		return nil, err
	}
	var nodes []control.NodeInfo
	if err := json.Unmarshal(out, &nodes); err != nil {
		return nil, fmt.Errorf("homenet nodes list --json: %w", err)
	}
	return nodes, nil
}
