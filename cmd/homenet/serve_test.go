package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"homenet/appliance"
)

// lockedBuffer is a bytes.Buffer for a writer that runs concurrently with
// the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeServeConfig writes a config for serve on loopback, with the relay
// and STUN on and nothing that talks to the network outside the host, and
// returns its path and state dir. extra is appended.
func writeServeConfig(t *testing.T, extra string) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	conf := fmt.Sprintf(`state_dir = %q
[server]
url = "http://127.0.0.1:8080"
listen = "127.0.0.1:0"
[relay]
listen = "127.0.0.1:0"
stun_listen = "127.0.0.1:0"
[upnp]
enabled = false
[web]
listen = "127.0.0.1:0"
%s`, stateDir, extra)
	path = filepath.Join(dir, "homenet.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

// captureStdLog sends the standard log package's output to w until the
// test ends, as it goes to serve's stderr in production.
func captureStdLog(t *testing.T, w *lockedBuffer) {
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(w)
	t.Cleanup(func() {
		log.SetOutput(prev)
		log.SetFlags(flags)
	})
}

// startServe runs the CLI with args (a serve command) until the test ends
// or the returned stop is called, and waits until it is serving. stderr
// collects its stderr.
func startServe(t *testing.T, stderr *lockedBuffer, args ...string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, args, new(bytes.Buffer), stderr) }()
	stop = sync.OnceValue(func() int {
		cancel()
		return <-exit
	})
	t.Cleanup(func() { stop() })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "homenet: serving") {
		select {
		case code := <-exit:
			t.Fatalf("homenet %s exited with %d before serving:\n%s", strings.Join(args, " "), code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("homenet %s is not serving after 30s:\n%s", strings.Join(args, " "), stderr.String())
		}
	}
	return stop
}

// jsonLines parses every line of out as a JSON object, failing the test
// for any that is not one.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestServeJSON: serve --json writes only JSON lines, from the first to the
// last, also what packages write to the standard log package (tailscale.com's
// STUN server did); the first names the config file, and the start summary
// says where the admin password is, that the gateway is off and that phones
// on the road cannot use a loopback server URL.
func TestServeJSON(t *testing.T) {
	var stderr lockedBuffer
	captureStdLog(t, &stderr)
	config, stateDir := writeServeConfig(t, "")
	stop := startServe(t, &stderr, "serve", "--json", "--config", config)
	log.Print("a line from a package that uses the standard log package")
	if code := stop(); code != exitOK {
		t.Errorf("exit code %d, want 0", code)
	}

	recs := jsonLines(t, stderr.String())
	if len(recs) == 0 {
		t.Fatal("serve logged nothing")
	}
	if first := recs[0]; first["msg"] != "homenet: using config" || first["file"] != config {
		t.Errorf("first line %v, want msg \"homenet: using config\" and file %q", first, config)
	}
	find := func(msg string) map[string]any {
		for _, r := range recs {
			if m, _ := r["msg"].(string); strings.HasPrefix(m, msg) {
				return r
			}
		}
		t.Errorf("no line with a msg starting %q:\n%s", msg, stderr.String())
		return nil
	}
	if r := find("homenet: serving"); r != nil {
		if want := filepath.Join(stateDir, "admin-password"); r["admin_password_file"] != want || r["gateway"] != false {
			t.Errorf("summary %v, want admin_password_file %q and gateway false", r, want)
		}
	}
	find("homenet: gateway off (gateway.enabled = false)")
	if r := find("homenet: The server URL http://127.0.0.1:8080 names a loopback address"); r != nil && r["level"] != "WARN" {
		t.Errorf("loopback URL logged at %v, want WARN", r["level"])
	}
	find("a line from a package that uses the standard log package")
	find("homenet: shutting down")
}

// TestServeSecond: a second serve on the same state dir fails at once,
// naming the first one's pid; with --json, in a JSON line.
func TestServeSecond(t *testing.T) {
	var first lockedBuffer
	config, stateDir := writeServeConfig(t, "")
	startServe(t, &first, "serve", "--config", config)

	want := fmt.Sprintf("another homenet serve is running (pid %d): it holds %s", os.Getpid(), filepath.Join(stateDir, "serve.lock"))
	code, stdout, stderr := runCLI(t, "serve", "--config", config)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; code != exitError || stdout != "" || last != "homenet: serve: "+want {
		t.Errorf("second serve: exit code %d, stdout %q, last line of stderr %q; want 1 and %q", code, stdout, last, "homenet: serve: "+want)
	}

	code, _, stderr = runCLI(t, "serve", "--json", "--config", config)
	recs := jsonLines(t, stderr)
	if last := recs[len(recs)-1]; code != exitError || last["level"] != "ERROR" || last["err"] != "serve: "+want {
		t.Errorf("second serve --json: exit code %d, last line %v; want 1 and an ERROR with err %q", code, last, "serve: "+want)
	}
}

// TestServeJSONFailure: serve --json reports a failure to start as a JSON
// line too.
func TestServeJSONFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	config, _ := writeServeConfig(t, "")
	b, _ := os.ReadFile(config)
	os.WriteFile(config, bytes.Replace(b, []byte(`listen = "127.0.0.1:0"`), fmt.Appendf(nil, "listen = %q", ln.Addr()), 1), 0o600)

	code, stdout, stderr := runCLI(t, "serve", "--json", "--config", config)
	if code != exitError || stdout != "" {
		t.Errorf("exit code %d, stdout %q; want 1 and nothing", code, stdout)
	}
	recs := jsonLines(t, stderr)
	if len(recs) == 0 {
		t.Fatal("nothing on stderr")
	}
	last := recs[len(recs)-1]
	if msg, _ := last["err"].(string); last["level"] != "ERROR" || !strings.Contains(msg, "server.listen") || !strings.Contains(msg, "address already in use") {
		t.Errorf("last line %v, want an ERROR naming server.listen", last)
	}
}

// TestPrintDefaults: without a config file, serve says where it looked and
// what it runs on: a table, or with --json a JSON line.
func TestPrintDefaults(t *testing.T) {
	cfg := appliance.DefaultConfig()
	for _, asJSON := range []bool{false, true} {
		var stderr bytes.Buffer
		inv := &invocation{stderr: &stderr, opts: options{json: asJSON}}
		if err := printDefaults(inv, newServeLogger(&stderr, &inv.opts), &cfg, false, "/var/lib/homenet/server-url"); err != nil {
			t.Fatal(err)
		}
		if asJSON {
			recs := jsonLines(t, stderr.String())
			if len(recs) != 1 || recs[0]["looked_for"] != platformConfigPath() || recs[0]["url"] != cfg.Server.URL {
				t.Errorf("--json: %s, want one line with looked_for %q and url %q", stderr.String(), platformConfigPath(), cfg.Server.URL)
			}
			continue
		}
		for _, want := range []string{
			"homenet: no --config given and no " + platformConfigPath() + "; using built-in defaults:",
			"server URL      " + cfg.Server.URL + " (guessed",
			"gateway         off (no LAN routes, no exit node)",
			"admin password  in /var/lib/homenet/admin-password",
			"Run homenet init, or write " + platformConfigPath(),
		} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, stderr.String())
			}
		}
	}
}
