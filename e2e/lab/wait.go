package lab

import (
	"fmt"
	"testing"
	"time"
)

// PollInterval is how often Poll and WaitFor retry.
const PollInterval = 200 * time.Millisecond

// Poll calls cond until it returns nil or timeout passes; it then returns
// the last error, saying how long it waited.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(PollInterval)
	}
}

// WaitFor is Poll that fails the test, naming what it waited for. It
// returns how long the condition took to hold.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return time.Since(start)
}
