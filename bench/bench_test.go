package main

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary double as the bench helper, as the bench
// binary does: the harness runs os.Executable() with "helper …".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		if err := helperMain(os.Args[2:]); err != nil {
			os.Stderr.WriteString("bench helper: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the harness in -short mode and checks the shape of what
// it writes: the rows are there, every measured figure is positive and
// finite, the markdown has the table and the PNG decodes. It never checks
// a time or a ratio: the machine is shared and benchmarks never fail on
// speed. As root it also runs the relay row (2 s per system) in the lab;
// with `go test -short` or without root only the rows that need no root
// (control plane with N=10, binary sizes for this machine's arch, crash
// with 50 registrations, a 20 s soak).
func TestSmoke(t *testing.T) {
	rows := "3,4,6,7"
	wantRows := []string{"3", "4", "6", "7"}
	if os.Geteuid() == 0 && !testing.Short() {
		rows = "2,3,4,6,7"
		wantRows = append(wantRows, "2")
	}
	out := t.TempDir()
	// Generous: a cold machine builds homenet and the stock pieces first,
	// beside the other packages' tests. The go test timeout still bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	r, err := run(ctx, options{
		short:    true,
		rows:     rows,
		out:      out,
		ns:       "10",
		transfer: 2 * time.Second,
		arches:   "",
		coldRuns: 1,
		soak:     20 * time.Second,
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	// latest.json reads back into the same report.
	b, err := os.ReadFile(filepath.Join(out, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	if !got.Short || got.Date == "" || got.Machine.Cores < 1 || got.Versions["go"] == "" || got.Versions["homenet"] == "" {
		t.Errorf("latest.json header incomplete: short=%v date=%q machine=%+v versions=%v", got.Short, got.Date, got.Machine, got.Versions)
	}
	if len(got.Rows) != len(r.Rows) {
		t.Errorf("latest.json has %d rows, the run returned %d", len(got.Rows), len(r.Rows))
	}
	for _, id := range wantRows {
		measured := 0
		for _, row := range got.Rows {
			if row.ID != id {
				continue
			}
			if row.NotMeasured != "" {
				t.Errorf("row %s (%s): not measured: %s", id, row.Case, row.NotMeasured)
				continue
			}
			measured++
			if len(row.Metrics) == 0 {
				t.Errorf("row %s (%s): no metrics", id, row.Case)
			}
			for _, m := range row.Metrics {
				// A count of bad events (missing registrations,
				// failures) is best at 0.
				zeroOK := m.Value == 0 && m.Better == "lower"
				if !(m.Value > 0 || zeroOK) || m.Unit == "" || m.Name == "" {
					t.Errorf("row %s (%s): metric %q = %v %q: want a positive figure with a unit", id, row.Case, m.Name, m.Value, m.Unit)
				}
				if m.RefName != "" && !(m.Ref > 0 && m.Ratio > 0) {
					t.Errorf("row %s (%s): metric %q has reference %q = %v, ratio %v: want both positive", id, row.Case, m.Name, m.RefName, m.Ref, m.Ratio)
				}
				if m.Better != "" && m.Ref > 0 && m.Verdict == "" {
					t.Errorf("row %s (%s): metric %q has a reference and a better side but no verdict", id, row.Case, m.Name)
				}
			}
		}
		if measured == 0 {
			t.Errorf("row %s: no measured case", id)
		}
	}

	md, err := os.ReadFile(filepath.Join(out, "latest.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| # | benchmark |", "- machine:", "- homenet:", "## Commands"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("latest.md lacks %q", want)
		}
	}
	for _, id := range wantRows {
		if !strings.Contains(string(md), "\n| "+id+" | ") {
			t.Errorf("latest.md has no table row for benchmark %s", id)
		}
	}
	f, err := os.Open(filepath.Join(out, "latest.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("latest.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 20 {
		t.Errorf("latest.png is %v", b)
	}
	if _, err := os.Stat(filepath.Join(out, "profile-3.txt")); err != nil {
		t.Errorf("no profile for row 3: %v", err)
	}
}

// TestVerdict: a figure is "worse" whenever it is worse than its
// reference by more than the same-band, in either direction of better.
func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		v, ref float64
		better string
		want   string
	}{
		{1.0, 2.0, "higher", "worse"},
		{2.0, 1.0, "higher", "better"},
		{1.0, 2.0, "lower", "better"},
		{2.0, 1.0, "lower", "worse"},
		{1.01, 1.0, "lower", "same"},
		{1.0, 0, "lower", ""},
		{1.0, 2.0, "", ""},
	} {
		if got := verdict(tc.v, tc.ref, tc.better); got != tc.want {
			t.Errorf("verdict(%v, %v, %q) = %q, want %q", tc.v, tc.ref, tc.better, got, tc.want)
		}
	}
}
