package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Setting returns the value of the named setting; ok is false if it was
// never set.
func (db *DB) Setting(ctx context.Context, name string) (value string, ok bool, err error) {
	err = db.sql.QueryRowContext(ctx, "SELECT value FROM settings WHERE name = ?", name).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read setting %q: %w", name, err)
	}
	return value, true, nil
}

// SetSetting sets the named setting, replacing any previous value.
func (db *DB) SetSetting(ctx context.Context, name, value string) error {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	if err != nil {
		return fmt.Errorf("write setting %q: %w", name, err)
	}
	return nil
}
