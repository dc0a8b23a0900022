// Package promtext checks and reads the Prometheus text exposition format
// (version 0.0.4), as served at /metrics, for tests: it is strict about
// the syntax and the order of TYPE lines and samples, and keeps what a test
// asks about, the samples and the families' types.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Sample is one sample line.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Exposition is a parsed scrape.
type Exposition struct {
	Samples []Sample
	Types   map[string]string // family name → counter, gauge, histogram, summary or untyped
}

// Parse reads a scrape and reports the first line that breaks the format.
func Parse(r io.Reader) (*Exposition, error) {
	e := &Exposition{Types: map[string]string{}}
	seen := map[string]bool{} // families that had samples
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Text()
		if err := e.parseLine(line, seen); err != nil {
			return nil, fmt.Errorf("line %d %q: %w", ln, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Exposition) parseLine(line string, seen map[string]bool) error {
	if strings.TrimSpace(line) == "" {
		return nil
	}
	if rest, ok := strings.CutPrefix(line, "#"); ok {
		f := strings.Fields(rest)
		if len(f) < 2 || (f[0] != "TYPE" && f[0] != "HELP") {
			return nil // a comment
		}
		if !validName(f[1]) {
			return fmt.Errorf("bad metric name %q", f[1])
		}
		if f[0] == "HELP" {
			return nil
		}
		if len(f) != 3 {
			return fmt.Errorf("TYPE line needs a name and a type")
		}
		switch f[2] {
		case "counter", "gauge", "histogram", "summary", "untyped":
		default:
			return fmt.Errorf("unknown type %q", f[2])
		}
		if _, dup := e.Types[f[1]]; dup {
			return fmt.Errorf("second TYPE line for %s", f[1])
		}
		if seen[f[1]] {
			return fmt.Errorf("TYPE line for %s after its samples", f[1])
		}
		e.Types[f[1]] = f[2]
		return nil
	}
	s, err := parseSample(line)
	if err != nil {
		return err
	}
	seen[family(s.Name, e.Types)] = true
	e.Samples = append(e.Samples, s)
	return nil
}

// family is the family a sample belongs to: a histogram's or summary's
// series carry suffixes.
func family(name string, types map[string]string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if t := types[base]; t == "histogram" || t == "summary" {
				return base
			}
		}
	}
	return name
}

func parseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("sample without a value")
	}
	s.Name = line[:i]
	if !validName(s.Name) {
		return s, fmt.Errorf("bad metric name %q", s.Name)
	}
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		var err error
		if rest, err = parseLabels(rest[1:], s.Labels); err != nil {
			return s, err
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 || !strings.HasPrefix(rest, " ") {
		return s, fmt.Errorf("want a value and an optional timestamp after the name")
	}
	v, err := parseValue(f[0])
	if err != nil {
		return s, err
	}
	s.Value = v
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			return s, fmt.Errorf("bad timestamp %q", f[1])
		}
	}
	return s, nil
}

// parseLabels reads `name="value",…}` into into and returns what follows.
func parseLabels(s string, into map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ")
		if rest, ok := strings.CutPrefix(s, "}"); ok {
			return rest, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return "", fmt.Errorf("label without =")
		}
		name := strings.TrimSpace(s[:eq])
		if !validLabelName(name) {
			return "", fmt.Errorf("bad label name %q", name)
		}
		if _, dup := into[name]; dup {
			return "", fmt.Errorf("label %q twice", name)
		}
		s = strings.TrimLeft(s[eq+1:], " ")
		if !strings.HasPrefix(s, `"`) {
			return "", fmt.Errorf("label %q: value not quoted", name)
		}
		var val strings.Builder
		j := 1
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] != '\\' {
				val.WriteByte(s[j])
				continue
			}
			if j++; j == len(s) {
				break
			}
			switch s[j] {
			case '\\', '"':
				val.WriteByte(s[j])
			case 'n':
				val.WriteByte('\n')
			default:
				return "", fmt.Errorf("label %q: bad escape \\%c", name, s[j])
			}
		}
		if j >= len(s) {
			return "", fmt.Errorf("label %q: unterminated value", name)
		}
		into[name] = val.String()
		s = strings.TrimLeft(s[j+1:], " ")
		if rest, ok := strings.CutPrefix(s, ","); ok {
			s = rest
		} else if !strings.HasPrefix(s, "}") {
			return "", fmt.Errorf("want , or } after label %q", name)
		}
	}
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf", "-Inf", "NaN":
	default:
		if strings.ContainsAny(s, "iInN_xXpP") {
			return 0, fmt.Errorf("bad value %q", s)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool {
	return validName(s) && !strings.Contains(s, ":")
}

// Has reports whether a sample of the named series exists.
func (e *Exposition) Has(name string) bool {
	return slices.ContainsFunc(e.Samples, func(s Sample) bool { return s.Name == name })
}

// Value returns the value of the named series with exactly the given
// labels (pairs of name and value), and whether there is one.
func (e *Exposition) Value(name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range e.Samples {
		if s.Name == name && maps.Equal(s.Labels, want) {
			return s.Value, true
		}
	}
	return 0, false
}

// Sum returns the sum of every sample of the named series, whatever its
// labels, and how many there were.
func (e *Exposition) Sum(name string) (float64, int) {
	var sum float64
	var n int
	for _, s := range e.Samples {
		if s.Name == name {
			sum += s.Value
			n++
		}
	}
	return sum, n
}
