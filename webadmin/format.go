package webadmin

import (
	"fmt"
	"html/template"
	"net/netip"
	"strings"
	"time"

	"rsc.io/qr"
)

// relTime says when t is relative to now, in words: "3 minutes ago",
// "in 2 days", "-" for the zero time.
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		s = count(int((d+30*time.Second)/time.Minute), "minute") // a 15-minute lockout reads "in 15 minutes"
	case d < 48*time.Hour:
		s = count(int(d/time.Hour), "hour")
	default:
		s = count(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func count(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// absTime is t for a tooltip: UTC, to the minute.
func absTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 MST")
}

// shortKey shortens "mkey:0123456789abcdef…" to "mkey:01234567…": enough
// to compare with what a device shows, short enough for a phone screen.
func shortKey(k string) string {
	typ, hex, ok := strings.Cut(k, ":")
	if !ok || len(hex) <= 8 {
		return k
	}
	return typ + ":" + hex[:8] + "…"
}

// join joins addresses, prefixes or strings with commas; "-" for none.
func join(v any) string {
	var s []string
	switch v := v.(type) {
	case []netip.Addr:
		for _, a := range v {
			s = append(s, a.String())
		}
	case []netip.Prefix:
		for _, p := range v {
			s = append(s, p.String())
		}
	case []string:
		s = v
	default:
		return fmt.Sprint(v)
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

// qrSVG renders text as a QR code in inline SVG: one path of unit squares
// with a four-module quiet zone, scaled by CSS. Inline SVG needs no image
// endpoint and no data: URI, and stays sharp at any size.
func qrSVG(text string) (template.HTML, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("QR code for %d bytes of text: %w", len(text), err)
	}
	const quiet = 4
	n := code.Size + 2*quiet
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="QR code">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" shape-rendering="crispEdges" d="`, n, n)
	for y := range code.Size {
		for x := 0; x < code.Size; x++ {
			if !code.Black(x, y) {
				continue
			}
			// One rectangle per run of dark modules in a row.
			run := 1
			for x+run < code.Size && code.Black(x+run, y) {
				run++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x+quiet, y+quiet, run, run)
			x += run - 1
		}
	}
	b.WriteString(`"/></svg>`)
	// The SVG holds only numbers and fixed markup: the text is not in it.
	return template.HTML(b.String()), nil
}
