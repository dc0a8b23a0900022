package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeepGuessedURL(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Server.URL = "http://192.168.1.20:8080"
	kept, path, err := KeepGuessedURL(&cfg)
	if err != nil || kept {
		t.Fatalf("first start: kept %v, err %v; want the guess written", kept, err)
	}
	// The host's address changes; the URL phones know must not.
	cfg.Server.URL = "http://192.168.1.77:8080"
	kept, _, err = KeepGuessedURL(&cfg)
	if err != nil || !kept || cfg.Server.URL != "http://192.168.1.20:8080" {
		t.Errorf("second start: kept %v, URL %s, err %v; want the first guess", kept, cfg.Server.URL, err)
	}
	os.WriteFile(path, []byte("192.168.1.20:8080\n"), 0o644)
	if _, _, err := KeepGuessedURL(&cfg); err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Errorf("a bad kept URL: %v, want an error saying what to do", err)
	}
}
