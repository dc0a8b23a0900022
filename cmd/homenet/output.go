package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table writes aligned columns; call flush when done.
type table struct {
	tw *tabwriter.Writer
}

// newTable starts a table on w with the given column headers.
func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	t.row(headers...)
	return t
}

// row adds a row; empty cells are shown as "-".
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// flush writes the table out.
func (t *table) flush() error { return t.tw.Flush() }

// printJSON writes v as indented JSON to w.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// relTime describes t relative to now, as in "3m ago" or "in 23h". The zero
// time is described as zero.
func relTime(now, t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	d := t.Sub(now)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d < 0:
		return roughDuration(-d) + " ago"
	}
	return "in " + roughDuration(d)
}

// roughDuration rounds d to its largest sensible unit, as in "45s", "3m",
// "23h" or "12d".
func roughDuration(d time.Duration) string {
	units := []struct {
		size  time.Duration
		below time.Duration // switch to the next unit from here; 0: never
		name  string
	}{
		{time.Second, time.Minute, "s"},
		{time.Minute, time.Hour, "m"},
		{time.Hour, 48 * time.Hour, "h"},
		{24 * time.Hour, 0, "d"},
	}
	for _, u := range units {
		n := (d + u.size/2) / u.size
		if u.below == 0 || n*u.size < u.below {
			return fmt.Sprintf("%d%s", n, u.name)
		}
	}
	panic("unreachable")
}

// yesNo shows b as "yes" or "no".
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// joinStrings joins the string forms of vs with commas.
func joinStrings[T fmt.Stringer](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

// done prints the outcome of a command that returns nothing: msg for
// people, or {"ok": true} with --json.
func done(inv *invocation, format string, args ...any) error {
	if inv.opts.json {
		return printJSON(inv.stdout, map[string]bool{"ok": true})
	}
	_, err := fmt.Fprintf(inv.stdout, format+"\n", args...)
	return err
}
