package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestSelftest(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"selftest"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("selftest exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"ok   store", "ok   control", "ok   relay", "selftest passed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}

	stdout.Reset()
	if code := run(context.Background(), []string{"selftest", "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("selftest --json exit %d: %s", code, stderr.String())
	}
	var steps []selftestResult
	if err := json.Unmarshal([]byte(stdout.String()), &steps); err != nil {
		t.Fatalf("selftest --json: %v\n%s", err, stdout.String())
	}
	if len(steps) != 3 {
		t.Fatalf("got %d steps, want store, control, relay", len(steps))
	}
	for _, s := range steps {
		if !s.OK {
			t.Errorf("step %s failed: %s", s.Step, s.Detail)
		}
	}
}
