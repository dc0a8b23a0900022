package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What the bench reads about a process from /proc. Every process it
// measures is its own child or runs in a lab namespace, which shares the
// machine's pid namespace.

// cpuTime returns the CPU time (user + system) a process has used: the sum
// of its threads' run time from /proc/PID/task/*/schedstat, which counts
// in nanoseconds where /proc/PID/stat counts in 10 ms ticks. Threads that
// exit take their time with them, so measure deltas over windows in which
// the process keeps its threads (Go programs do).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return cpuTimeTicks(pid)
	}
	var total int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q", p, b)
		}
		total += ns
	}
	return time.Duration(total), nil
}

// cpuTimeTicks reads utime+stime from /proc/PID/stat.
func cpuTimeTicks(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// fixed. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on every Linux we run on
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procStatus returns a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// rss returns VmRSS in bytes.
func rss(pid int) (int64, error) { return procStatus(pid, "VmRSS") }

// anonRSS returns the anonymous part of a process's RSS (heap, stacks,
// runtime), from /proc/PID/smaps_rollup; the rest is file-backed, mostly
// the binary's own pages.
func anonRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no Anonymous in smaps_rollup")
}

// bytesWritten returns wchar from /proc/PID/io: every byte the process
// handed to write-like system calls, sockets included.
func bytesWritten(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no wchar in /proc/PID/io")
}

// usage is a process's CPU time at one moment.
type usage struct {
	pid  int
	cpu  time.Duration
	wall time.Time
}

func sample(pid int) (usage, error) {
	c, err := cpuTime(pid)
	return usage{pid: pid, cpu: c, wall: time.Now()}, err
}

// since returns the CPU time and wall time spent since u.
func (u usage) since() (cpu, wall time.Duration, err error) {
	now, err := sample(u.pid)
	if err != nil {
		return 0, 0, err
	}
	return now.cpu - u.cpu, now.wall.Sub(u.wall), nil
}

// percentile returns the p-th percentile (0–100) of ds by the nearest-rank
// method; ds need not be sorted.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(len(s)-1, rank))]
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func ms(d time.Duration) float64   { return float64(d) / float64(time.Millisecond) }
func mib(n int64) float64          { return float64(n) / (1 << 20) }
func secs(d time.Duration) float64 { return d.Seconds() }
