package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// ErrNotFound is wrapped by errors about rows that do not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped by errors about a unique value (key, name, address,
// auth key prefix) that another row already holds.
var ErrConflict = errors.New("already in use")

// DB is the control server's store. Its methods are safe for concurrent use;
// they are serialized on a single SQLite connection.
type DB struct {
	sql *sql.DB
}

// Open opens (creating if needed) the SQLite database at path and runs
// pending migrations. ctx bounds only the opening, not the DB's lifetime.
//
// The database holds the control server's private key: a new file is created
// readable by its owner only, and path's directory should be private too,
// since SQLite creates the -wal and -shm files next to it.
func Open(ctx context.Context, path string) (*DB, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %v: %w", path, err)
	}
	f.Close()

	sdb, err := sql.Open(driverName, dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open store %v: %w", path, err)
	}
	// One connection: writes are rare, and per-connection pragmas (and the
	// exclusive locking mode some platforms need for WAL) stay simple.
	sdb.SetMaxOpenConns(1)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %v: %w", path, err)
	}
	if err := migrate(ctx, sdb, migrations()); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %v: %w", path, err)
	}
	return &DB{sql: sdb}, nil
}

// Close closes the database.
func (db *DB) Close() error {
	return db.sql.Close()
}

// pragmas are set on every new connection, busy_timeout first so that the
// others wait for locks rather than fail. synchronous=FULL makes every
// acknowledged commit durable: writes are rare, losing one is not.
func pragmas() []string {
	return []string{
		"busy_timeout(5000)",
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"foreign_keys(1)",
	}
}

// fileURI returns a DSN both drivers understand: an SQLite file: URI for
// path, with the pragmas in order as _pragma parameters and transactions that
// take the write lock at BEGIN (so they cannot fail to upgrade midway).
func fileURI(path string, pragmas []string) string {
	q := url.Values{"_pragma": pragmas, "_txlock": {"immediate"}}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
	return u.String()
}

// inTx runs f in a transaction, committing if f returns nil.
func (db *DB) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
