package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// labT lets the bench use the e2e lab (homenet/e2e/lab), which reports
// through a testing.TB, outside `go test`. It implements what the lab
// calls; Fatal and Skip end the goroutine the lab code runs in, as in a
// test, and Cleanup functions run when runLab returns, so the lab tears
// down its namespaces and processes exactly as after a test.
//
// testing.TB cannot be implemented outside package testing (it has an
// unexported method); embedding the interface supplies that method, and
// any TB method the lab starts to use that labT lacks panics on the nil
// embedded value, which runLab reports as an error.
type labT struct {
	testing.TB
	name string
	logf func(string, ...any)

	mu       sync.Mutex
	failed   bool
	skipped  bool
	errs     []string
	cleanups []func()
}

// runLab runs f with a fresh labT in a goroutine of its own, then its
// cleanups (last first). It returns an error if f failed, skipped or
// panicked.
func runLab(name string, logf func(string, ...any), f func(t *labT)) (err error) {
	t := &labT{name: name, logf: logf}
	done := make(chan any, 1)
	go func() {
		var p any
		defer func() { done <- p }()
		defer func() {
			if r := recover(); r != nil {
				buf := make([]byte, 8<<10)
				buf = buf[:runtime.Stack(buf, false)]
				p = fmt.Sprintf("%v\n%s", r, buf)
			}
		}()
		f(t)
	}()
	p := <-done
	if p != nil {
		t.Errorf("panic: %v", p)
	}
	t.runCleanups()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.failed:
		return fmt.Errorf("%s", strings.Join(t.errs, "; "))
	case t.skipped:
		return fmt.Errorf("skipped: %s", strings.Join(t.errs, "; "))
	}
	return nil
}

func (t *labT) runCleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("cleanup panicked: %v", r)
				}
			}()
			f()
		}()
	}
}

func (t *labT) Helper()      {}
func (t *labT) Name() string { return t.name }
func (t *labT) Logf(format string, args ...any) {
	t.logf("lab %s: %s", t.name, fmt.Sprintf(format, args...))
}
func (t *labT) Log(args ...any) { t.Logf("%s", fmt.Sprint(args...)) }

func (t *labT) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.failed = true
	t.errs = append(t.errs, firstLine(msg))
	t.mu.Unlock()
	t.logf("lab %s: ERROR: %s", t.name, msg)
}
func (t *labT) Error(args ...any) { t.Errorf("%s", fmt.Sprint(args...)) }
func (t *labT) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}
func (t *labT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *labT) FailNow() { t.Fail(); runtime.Goexit() }
func (t *labT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	runtime.Goexit()
}
func (t *labT) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }

func (t *labT) Skip(args ...any) { t.Skipf("%s", fmt.Sprint(args...)) }
func (t *labT) Skipf(format string, args ...any) {
	t.mu.Lock()
	t.skipped = true
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
	t.mu.Unlock()
	runtime.Goexit()
}
func (t *labT) SkipNow() { t.Skipf("skipped") }
func (t *labT) Skipped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped
}

func (t *labT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *labT) TempDir() string {
	dir, err := os.MkdirTemp("", "hnbench-lab")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
