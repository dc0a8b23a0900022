package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
)

// ErrKeyUnusable is wrapped by RegisterWithAuthKey's error when the auth key
// is revoked, or single-use and already used.
var ErrKeyUnusable = errors.New("auth key revoked or already used")

// authKeyColumns are the auth_keys columns other than id, in encodeAuthKey's
// order.
const authKeyColumns = `prefix, hash, reusable, ephemeral, tags, created, expiry, used, revoked`

// AuthKeys returns all auth keys, ordered by ID.
func (db *DB) AuthKeys(ctx context.Context) ([]AuthKey, error) {
	keys, err := list(ctx, db.sql, "SELECT id, "+authKeyColumns+" FROM auth_keys ORDER BY id", scanAuthKey)
	if err != nil {
		return nil, fmt.Errorf("list auth keys: %w", err)
	}
	return keys, nil
}

// AuthKeyByPrefix returns the auth key with the given prefix; the error wraps
// ErrNotFound if there is none.
func (db *DB) AuthKeyByPrefix(ctx context.Context, prefix string) (AuthKey, error) {
	row := db.sql.QueryRowContext(ctx, "SELECT id, "+authKeyColumns+" FROM auth_keys WHERE prefix = ?", prefix)
	k, err := scanAuthKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return AuthKey{}, fmt.Errorf("read auth key %q: %w", prefix, err)
	}
	return k, nil
}

// DeleteAuthKey deletes the auth key id; nodes it registered stay, with no
// key recorded. The error wraps ErrNotFound if there is no such key.
func (db *DB) DeleteAuthKey(ctx context.Context, id int64) error {
	res, err := db.sql.ExecContext(ctx, "DELETE FROM auth_keys WHERE id = ?", id)
	if err == nil {
		err = wantOneRow(res)
	}
	if err != nil {
		return fmt.Errorf("delete auth key %d: %w", id, err)
	}
	return nil
}

// PutAuthKey inserts k if k.ID is zero, setting k.ID, and otherwise updates
// the key with that ID. An error wraps ErrConflict if another key has
// k.Prefix, and ErrNotFound if there is no key k.ID to update.
func (db *DB) PutAuthKey(ctx context.Context, k *AuthKey) error {
	var id int64
	err := db.inTx(ctx, func(tx *sql.Tx) (err error) {
		id, err = putAuthKey(ctx, tx, k)
		return err
	})
	if err != nil {
		return fmt.Errorf("put auth key %q: %w", k.Prefix, err)
	}
	k.ID = id
	return nil
}

// putAuthKey inserts or updates k in tx and returns its ID.
func putAuthKey(ctx context.Context, tx *sql.Tx, k *AuthKey) (int64, error) {
	switch {
	case k.Prefix == "":
		return 0, errors.New("prefix is empty")
	case len(k.Hash) != sha256.Size:
		return 0, fmt.Errorf("hash is %d bytes, want %d", len(k.Hash), sha256.Size)
	case k.Used < 0:
		return 0, fmt.Errorf("use count %d is negative", k.Used)
	}
	var e encoder
	args := []any{k.Prefix, k.Hash, k.Reusable, k.Ephemeral, e.json(k.Tags),
		e.time(k.Created), e.time(k.Expiry), k.Used, k.Revoked}
	if e.err != nil {
		return 0, e.err
	}
	err := checkUnique(ctx, tx, "auth_keys", "auth key", k.ID, []unique{{"prefix", "prefix", k.Prefix}})
	if err != nil {
		return 0, err
	}
	return put(ctx, tx, "auth_keys", authKeyColumns, k.ID, args)
}

// useAuthKey counts one use of auth key id in tx, refusing a revoked key and
// a used single-use key.
func useAuthKey(ctx context.Context, tx *sql.Tx, id int64) error {
	var reusable, revoked bool
	var used int
	row := tx.QueryRowContext(ctx, "SELECT reusable, revoked, used FROM auth_keys WHERE id = ?", id)
	err := row.Scan(&reusable, &revoked, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("auth key %d: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("read auth key %d: %w", id, err)
	case revoked || (!reusable && used > 0):
		return fmt.Errorf("auth key %d: %w", id, ErrKeyUnusable)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE auth_keys SET used = used + 1 WHERE id = ?", id); err != nil {
		return fmt.Errorf("count use of auth key %d: %w", id, err)
	}
	return nil
}

// scanAuthKey reads a row of id and authKeyColumns.
func scanAuthKey(row scanner) (AuthKey, error) {
	var (
		k                     AuthKey
		tags, created, expiry string
	)
	err := row.Scan(&k.ID, &k.Prefix, &k.Hash, &k.Reusable, &k.Ephemeral, &tags, &created, &expiry, &k.Used, &k.Revoked)
	if err != nil {
		return k, err
	}
	var d decoder
	d.json(tags, &k.Tags)
	k.Created, k.Expiry = d.time(created), d.time(expiry)
	if d.err != nil {
		return k, fmt.Errorf("decode auth key %d: %w", k.ID, d.err)
	}
	return k, nil
}
