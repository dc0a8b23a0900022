package store

import (
	"os"
	"slices"
	"testing"
)

func TestIntegrityCheck(t *testing.T) {
	tests := []struct {
		name   string
		mangle func(t *testing.T, db *DB, path string) // after a node is stored
		wantOK bool
	}{
		{"open, with a WAL", func(*testing.T, *DB, string) {}, true},
		{"closed", func(t *testing.T, db *DB, _ string) { db.Close() }, true},
		{"a page overwritten", func(t *testing.T, db *DB, path string) {
			db.Close()
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Page 2 onwards hold the schema's tables: garbage over their
			// headers is what a torn write would leave.
			junk := make([]byte, 3*4096)
			for i := range junk {
				junk[i] = 0xa5
			}
			if _, err := f.WriteAt(junk, 4096); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := openTest(t)
			n := newNode("a")
			if err := db.PutNode(t.Context(), &n); err != nil {
				t.Fatal(err)
			}
			tt.mangle(t, db, path)
			got, err := IntegrityCheck(t.Context(), path)
			ok := err == nil && slices.Equal(got, []string{"ok"})
			if ok != tt.wantOK {
				t.Fatalf("IntegrityCheck = %q, %v; want ok=%v", got, err, tt.wantOK)
			}
			t.Logf("IntegrityCheck = %q, %v", got, err)
		})
	}
}
