package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations returns the schema changes in order: applying migrations()[i]
// brings the schema from version i to i+1. The version is kept in PRAGMA
// user_version. Never edit a released migration; append a new one.
func migrations() []string {
	return []string{schemaV1, schemaV2}
}

// schemaV2 keeps what peers need to reach a node across a server restart:
// without the disco key, the first netmap after a restart would tell every
// peer that the node's key vanished, and they drop their paths to it.
const schemaV2 = `
ALTER TABLE nodes ADD COLUMN disco_key TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN home_derp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN endpoints TEXT NOT NULL DEFAULT 'null';
`

// schemaV1 creates the tables. Keys are stored in their text form, addresses
// as text (NULL when absent, so that UNIQUE ignores them), lists and Hostinfo
// as JSON, and times as RFC 3339 in UTC ("" for the zero time).
const schemaV1 = `
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

CREATE TABLE auth_keys (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	prefix    TEXT NOT NULL UNIQUE,
	hash      BLOB NOT NULL,
	reusable  INTEGER NOT NULL,
	ephemeral INTEGER NOT NULL,
	tags      TEXT NOT NULL,
	created   TEXT NOT NULL,
	expiry    TEXT NOT NULL,
	used      INTEGER NOT NULL,
	revoked   INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: a deleted node's ID is never given to another node.
CREATE TABLE nodes (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	machine_key     TEXT NOT NULL UNIQUE,
	node_key        TEXT NOT NULL UNIQUE,
	name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
	ipv4            TEXT UNIQUE,
	ipv6            TEXT UNIQUE,
	hostinfo        TEXT NOT NULL,
	created         TEXT NOT NULL,
	key_expiry      TEXT NOT NULL,
	last_seen       TEXT NOT NULL,
	ephemeral       INTEGER NOT NULL,
	tags            TEXT NOT NULL,
	approved_routes TEXT NOT NULL,
	auth_key_id     INTEGER REFERENCES auth_keys (id) ON DELETE SET NULL
) STRICT;
`

// migrate applies the pending steps, each in its own transaction together
// with the version bump, so a crash leaves the schema at some exact version.
// It refuses a database newer than steps.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	for {
		done, err := migrateOnce(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOnce applies the next pending step, or reports done if none is.
// It reads the version inside the write transaction, so two processes
// opening the same new database cannot both apply a step.
func migrateOnce(ctx context.Context, db *sql.DB, steps []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback() // no-op after Commit

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version > len(steps):
		return false, fmt.Errorf("database schema version %d is newer than this homenet (%d); upgrade homenet", version, len(steps))
	case version == len(steps):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, steps[version]); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", version+1, err)
	}
	// PRAGMA takes no bound parameters; version is an int we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("set schema version %d: %w", version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit schema version %d: %w", version+1, err)
	}
	return false, nil
}
