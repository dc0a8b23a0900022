package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// IntegrityCheck runs SQLite's PRAGMA integrity_check on the database file
// at path, opened read-only with the build's driver, and returns its rows:
// "ok" alone when the file is sound. A WAL left by a crash is read, not
// checkpointed, so the check sees what the next Open would.
func IntegrityCheck(ctx context.Context, path string) ([]string, error) {
	q := url.Values{"mode": {"ro"}, "_pragma": {"busy_timeout(5000)"}}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
	sdb, err := sql.Open(driverName, u.String())
	if err != nil {
		return nil, fmt.Errorf("integrity check of %v: %w", path, err)
	}
	defer sdb.Close()
	rows, err := sdb.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, fmt.Errorf("integrity check of %v: %w", path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("integrity check of %v: %w", path, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity check of %v: %w", path, err)
	}
	return out, nil
}
