package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Report is one invocation's results: what latest.md, latest.json and
// latest.png show.
type Report struct {
	Date     string            `json:"date"`     // RFC 3339, when the run started
	Took     string            `json:"took"`     // wall time of the whole run
	Short    bool              `json:"short"`    // -short smoke mode: tiny N, short runs
	Machine  Machine           `json:"machine"`  // where it ran
	Versions map[string]string `json:"versions"` // homenet, tailscale.com, Go, kernel, iperf3
	Pinning  string            `json:"pinning"`  // how processes were pinned to CPUs
	Commands []string          `json:"commands"` // the commands that were measured
	Rows     []Row             `json:"rows"`
	Notes    []string          `json:"notes"`
}

// Machine describes the host.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	MemMiB int    `json:"mem_mib"`
	Kernel string `json:"kernel"`
	Load   string `json:"load"` // /proc/loadavg when the run started: the machine is shared
}

// Row is one benchmark of the issue (1–5) in one case, e.g. "relay" or
// "control-plane N=100". NotMeasured, when set, says why it has no
// figures.
type Row struct {
	ID          string   `json:"id"`   // "1".."5"
	Name        string   `json:"name"` // "subnet-router throughput"
	Case        string   `json:"case"` // "1 stream", "N=100", …
	Metrics     []Metric `json:"metrics"`
	NotMeasured string   `json:"not_measured,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// Metric is one figure of a row, with its reference when there is one.
type Metric struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"` // homenet
	// Ref is the reference figure and RefName what it is ("stock
	// tailscaled", "kernel forwarding", "N=10"); Ref is 0 when there is
	// none.
	Ref     float64 `json:"ref,omitempty"`
	RefName string  `json:"ref_name,omitempty"`
	// Ratio is Value/Ref, 0 without a reference.
	Ratio float64 `json:"ratio,omitempty"`
	// Better is "higher" or "lower": which way is better for homenet.
	// Empty for figures that are neither (ratios of scale).
	Better string `json:"better,omitempty"`
	// Verdict is "better", "worse" or "same" (within 2 %), set when there
	// is a reference and a direction.
	Verdict string `json:"verdict,omitempty"`
	// Extra references (e.g. the kernel ceiling beside stock tailscaled).
	Also []Ref `json:"also,omitempty"`
}

// Ref is an additional reference for a metric.
type Ref struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Ratio float64 `json:"ratio"`
}

// sameBand is the relative difference below which a figure counts as the
// same as its reference rather than better or worse.
const sameBand = 0.02

// withRef fills Ref, Ratio and Verdict.
func (m Metric) withRef(name string, ref float64) Metric {
	m.RefName, m.Ref = name, ref
	if ref != 0 {
		m.Ratio = m.Value / ref
	}
	m.Verdict = verdict(m.Value, ref, m.Better)
	return m
}

// also adds another reference.
func (m Metric) also(name string, ref float64) Metric {
	r := Ref{Name: name, Value: ref}
	if ref != 0 {
		r.Ratio = m.Value / ref
	}
	m.Also = append(m.Also, r)
	return m
}

func verdict(v, ref float64, better string) string {
	if ref == 0 || better == "" || math.IsNaN(v) || math.IsNaN(ref) {
		return ""
	}
	r := v / ref
	switch {
	case math.Abs(r-1) <= sameBand:
		return "same"
	case (r > 1) == (better == "higher"):
		return "better"
	default:
		return "worse"
	}
}

// writeResults writes latest.md, latest.json and latest.png into dir.
func writeResults(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "latest.json"), append(js, '\n')); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "latest.md"), []byte(markdown(r))); err != nil {
		return err
	}
	png, err := chartPNG(r)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "latest.png"), png)
}

// writeAtomic writes through a .tmp file (ignored by git) and a rename, so
// a killed run never leaves half a table.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// markdown renders the report as the table the issue asks for.
func markdown(r *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# homenet benchmarks\n\n")
	if r.Short {
		fmt.Fprintf(&b, "**Smoke run (-short): tiny N and short runs; the figures only show the harness works.**\n\n")
	}
	fmt.Fprintf(&b, "- date: %s (took %s)\n", r.Date, r.Took)
	fmt.Fprintf(&b, "- machine: %s, %d cores, %d MiB, kernel %s; load average at start %s\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.MemMiB, r.Machine.Kernel, r.Machine.Load)
	for _, k := range sortedKeys(r.Versions) {
		fmt.Fprintf(&b, "- %s: %s\n", k, r.Versions[k])
	}
	if r.Pinning != "" {
		fmt.Fprintf(&b, "- pinning: %s\n", r.Pinning)
	}
	fmt.Fprintf(&b, "\nEvery ratio is homenet ÷ reference, measured back to back in this invocation. ")
	fmt.Fprintf(&b, "\"worse\" means homenet's figure is worse than the reference by more than %.0f %%; ", sameBand*100)
	fmt.Fprintf(&b, "\"same\" means within %.0f %%.\n\n", sameBand*100)

	fmt.Fprintf(&b, "| # | benchmark | case | metric | homenet | reference | ratio | verdict |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---:|---|---:|---|\n")
	for _, row := range r.Rows {
		if row.NotMeasured != "" {
			fmt.Fprintf(&b, "| %s | %s | %s | — | not measured: %s | | | |\n", row.ID, row.Name, row.Case, mdEscape(row.NotMeasured))
			continue
		}
		for _, m := range row.Metrics {
			ref, ratio := "none", ""
			if m.RefName != "" {
				ref = fmt.Sprintf("%s %s", m.RefName, fmtNum(m.Ref))
				if m.Ref != 0 {
					ratio = fmt.Sprintf("%.2f", m.Ratio)
				}
			}
			for _, a := range m.Also {
				ref += fmt.Sprintf("; %s %s", a.Name, fmtNum(a.Value))
				if a.Value != 0 {
					ratio += fmt.Sprintf("; %.2f", a.Ratio)
				}
			}
			v := m.Verdict
			if v == "worse" {
				v = fmt.Sprintf("**worse** (%+.0f %%)", (m.Ratio-1)*100)
			} else if v == "better" {
				v = fmt.Sprintf("better (%+.0f %%)", (m.Ratio-1)*100)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s (%s) | %s | %s | %s | %s |\n",
				row.ID, row.Name, row.Case, m.Name, m.Unit, fmtNum(m.Value), mdEscape(ref), ratio, v)
		}
	}
	var notes []string
	for _, row := range r.Rows {
		for _, n := range row.Notes {
			notes = append(notes, fmt.Sprintf("row %s (%s, %s): %s", row.ID, row.Name, row.Case, n))
		}
	}
	notes = append(notes, r.Notes...)
	if len(notes) > 0 {
		fmt.Fprintf(&b, "\n## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Commands) > 0 {
		fmt.Fprintf(&b, "\n## Commands\n\n```\n")
		for _, c := range r.Commands {
			fmt.Fprintf(&b, "%s\n", c)
		}
		fmt.Fprintf(&b, "```\n")
	}
	fmt.Fprintf(&b, "\nChart: latest.png. Raw figures: latest.json. CPU profiles of homenet: profile-*.txt.\n")
	return b.String()
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// fmtNum prints a figure with about three significant digits.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1e6:
		return fmt.Sprintf("%.3g", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
