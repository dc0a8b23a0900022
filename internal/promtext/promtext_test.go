package promtext

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // empty: parses
	}{
		{"empty", "", ""},
		{"typed counter", "# TYPE a_total counter\na_total 3\n", ""},
		{"untyped", "a 1.5\n", ""},
		{"comment", "# skipping expvar \"x\" (Go type string)\na 1\n", ""},
		{"help", "# HELP a says \"what\"\n# TYPE a gauge\na -2\n", ""},
		{"labels", "a{x=\"1\",y=\"q\\\"\\\\\\n\"} 1\n", ""},
		{"trailing comma", "a{x=\"1\",} 1\n", ""},
		{"timestamp", "a 1 1700000000000\n", ""},
		{"special values", "a +Inf\nb -Inf\nc NaN\nd 1e9\n", ""},
		{"histogram", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", ""},

		{"bad name", "1a 1\n", "bad metric name"},
		{"dash in name", "a-b 1\n", "bad metric name"},
		{"no value", "a\n", "without a value"},
		{"bad value", "a one\n", "bad value"},
		{"hex value", "a 0x10\n", "bad value"},
		{"two values", "a 1 2 3\n", "want a value"},
		{"bad timestamp", "a 1 soon\n", "bad timestamp"},
		{"unknown type", "# TYPE a meter\n", "unknown type"},
		{"TYPE twice", "# TYPE a gauge\n# TYPE a gauge\n", "second TYPE"},
		{"TYPE after samples", "a 1\n# TYPE a gauge\n", "after its samples"},
		{"unquoted label", "a{x=1} 1\n", "not quoted"},
		{"unterminated label", "a{x=\"1} 1\n", "unterminated"},
		{"label twice", "a{x=\"1\",x=\"2\"} 1\n", "twice"},
		{"colon in label name", "a{x:y=\"1\"} 1\n", "bad label name"},
		{"bad escape", "a{x=\"\\t\"} 1\n", "bad escape"},
		{"missing separator", "a{x=\"1\" y=\"2\"} 1\n", "want , or }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Parse: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Parse succeeded, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Parse: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	e, err := Parse(strings.NewReader("# TYPE r_total counter\nr_total{o=\"a\"} 2\nr_total{o=\"b\"} 3\ng 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Types["r_total"]; got != "counter" {
		t.Errorf("type of r_total = %q, want counter", got)
	}
	if v, ok := e.Value("r_total", "o", "b"); !ok || v != 3 {
		t.Errorf("Value(r_total, o=b) = %v, %v; want 3, true", v, ok)
	}
	if _, ok := e.Value("r_total"); ok {
		t.Error("Value(r_total) without labels found a sample")
	}
	if v, ok := e.Value("g"); !ok || v != 7 {
		t.Errorf("Value(g) = %v, %v; want 7, true", v, ok)
	}
	if sum, n := e.Sum("r_total"); sum != 5 || n != 2 {
		t.Errorf("Sum(r_total) = %v, %d; want 5, 2", sum, n)
	}
	if !e.Has("g") || e.Has("nope") {
		t.Error("Has is wrong")
	}
}
