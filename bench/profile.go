package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// profile summarizes a CPU profile of homenet into
// results/profile-<row>.txt with `go tool pprof`: the top functions by
// own time, by cumulative time, and the homenet source lines that the
// samples last passed through (each sample charged to its innermost
// homenet frame, with file:line). The first of those lines goes into the
// report's notes as the row's biggest homenet cost.
func (e *env) profile(row, title, path string) { e.profileOf(row, title, path, "") }

// profileOf is profile with extra pprof flags, such as a sample index for
// heap profiles.
func (e *env) profileOf(row, title, path, extra string) {
	sections := []struct{ name, args string }{
		{"top by own (flat) value, whole process", "-top -nodecount=25"},
		{"top by cumulative value, whole process", "-top -cum -nodecount=30"},
		{"homenet lines, each sample charged to its innermost homenet frame", "-top -lines -nodecount=25 -show=^homenet/"},
	}
	kind := "CPU profile"
	if extra != "" {
		kind = "profile (" + extra + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s of homenet: %s\nprofile: profile-%s.pb.gz\n", kind, title, row)
	var biggest, topFlat string
	for i, s := range sections {
		args := append([]string{"tool", "pprof"}, strings.Fields(s.args+" "+extra)...)
		args = append(args, path)
		out, err := exec.CommandContext(e.ctx, "go", args...).CombinedOutput()
		fmt.Fprintf(&b, "\n==== %s: go %s\n", s.name, strings.Join(args, " "))
		b.Write(out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
			continue
		}
		switch i {
		case 0:
			topFlat = topEntries(string(out), 3)
		case 2:
			biggest = topEntries(string(out), 1)
		}
	}
	dst := filepath.Join(e.results, "profile-"+row+".txt")
	if err := os.WriteFile(dst, []byte(b.String()), 0o644); err != nil {
		e.logf("writing %s: %v", dst, err)
		return
	}
	// Keep the raw profile beside it, for `go tool pprof -http`.
	if raw, err := os.ReadFile(path); err == nil {
		os.WriteFile(filepath.Join(e.results, "profile-"+row+".pb.gz"), raw, 0o644)
	}
	if biggest != "" || topFlat != "" {
		what := "most own CPU time in"
		if extra != "" {
			what = "largest own share in"
		}
		e.note(fmt.Sprintf("row %s profile (%s): %s %s; the homenet line most samples pass through last: %s (see profile-%s.txt)", row, title, what, topFlat, biggest, row))
	}
}

// topEntries returns the first n rows of a pprof -top table, compacted:
// "homenet/control.(*Server).deltaLocked control/poll.go:304 22.1%".
func topEntries(top string, n int) string {
	var out []string
	inTable := false
	for _, line := range strings.Split(top, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "flat" && f[1] == "flat%" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 6 {
			continue
		}
		// flat flat% sum% cum cum% name [file:line]
		out = append(out, fmt.Sprintf("%s (%s of samples)", strings.Join(f[5:], " "), f[1]))
		if len(out) == n {
			break
		}
	}
	return strings.Join(out, ", ")
}
