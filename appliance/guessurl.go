package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GuessedURLFile is where serve without a config file keeps the server URL
// it guessed on its first start, in the state dir.
const GuessedURLFile = "server-url"

// KeepGuessedURL makes the server URL DefaultConfig guessed from this
// host's address stick: the first start writes it to GuessedURLFile, and
// later starts use that, although the address may have changed. Phones
// keep the URL they were given, and the relay its certificate. It reports
// whether the URL came from the file, and the file's path.
func KeepGuessedURL(cfg *Config) (kept bool, path string, err error) {
	path = filepath.Join(cfg.StateDir, GuessedURLFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		u := strings.TrimSpace(string(b))
		if err := validateServerURL(u); err != nil {
			return false, path, fmt.Errorf("%s: %w (delete the file to guess again)", path, err)
		}
		cfg.Server.URL = u
		return true, path, nil
	case !errors.Is(err, os.ErrNotExist):
		return false, path, fmt.Errorf("reading the kept server URL: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return false, path, fmt.Errorf("creating state dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(cfg.Server.URL+"\n"), 0o644); err != nil {
		return false, path, fmt.Errorf("keeping the guessed server URL: %w", err)
	}
	return false, path, nil
}
