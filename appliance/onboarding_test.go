package appliance

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rsc.io/qr"
)

func TestQRCode(t *testing.T) {
	const url = "http://203.0.113.7:8080"
	code, err := qr.Encode(url, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	for _, ansi := range []bool{false, true} {
		text, err := QRCode(url, ansi)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		const quiet = 2
		n := code.Size + 2*quiet
		if len(lines) != (n+1)/2 {
			t.Fatalf("%d lines, want %d", len(lines), (n+1)/2)
		}
		// Read the modules back from the half blocks.
		for row, line := range lines {
			if ansi {
				if !strings.HasPrefix(line, "\x1b[30;47m") || !strings.HasSuffix(line, "\x1b[0m") {
					t.Fatalf("line %d lacks the colour codes: %q", row, line)
				}
				line = strings.TrimSuffix(strings.TrimPrefix(line, "\x1b[30;47m"), "\x1b[0m")
			}
			cells := []rune(line)
			if len(cells) != n {
				t.Fatalf("line %d has %d cells, want %d", row, len(cells), n)
			}
			for x, c := range cells {
				top := c == '█' || c == '▀'
				bottom := c == '█' || c == '▄'
				for i, got := range []bool{top, bottom} {
					mx, my := x-quiet, 2*row+i-quiet
					want := mx >= 0 && my >= 0 && mx < code.Size && my < code.Size && code.Black(mx, my)
					if got != want {
						t.Fatalf("module (%d,%d) dark=%v, want %v", mx, my, got, want)
					}
				}
			}
		}
	}
}

func TestCreateOnboardingKeyTimeout(t *testing.T) {
	start := time.Now()
	_, _, err := createOnboardingKey(context.Background(), filepath.Join(t.TempDir(), "admin.sock"), 500*time.Millisecond, GatewayKeyOptions())
	if err == nil || !strings.Contains(err.Error(), "did not answer within 500ms") {
		t.Errorf("error %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}
