package appliance

import (
	"context"
	"testing"
)

func TestExecRunner(t *testing.T) {
	ctx := context.Background()
	var r ExecRunner
	if out, err := r.Run(ctx, "sh", "-c", "echo hi"); err != nil || string(out) != "hi\n" {
		t.Errorf("sh: %q, %v", out, err)
	}
	// A script that says no (procd's "enabled") is an exit status ...
	if _, err := r.Run(ctx, "sh", "-c", "echo nope >&2; exit 1"); !exitedNonZero(err) || err.Error() != "sh -c echo nope >&2; exit 1: exit status 1: nope" {
		t.Errorf("exit 1: %v (exited non-zero: %v)", err, exitedNonZero(err))
	}
	// ... unlike a command that does not exist.
	if _, err := r.Run(ctx, "/nonexistent/homenet-test"); err == nil || exitedNonZero(err) {
		t.Errorf("missing command: %v", err)
	}
}
