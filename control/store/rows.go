package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// This file holds the SQL shared by the nodes and auth_keys tables, whose
// rows have an integer id and are read and written whole.

// list runs query and returns every row, decoded by scan.
func list[T any](ctx context.Context, db *sql.DB, query string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// put inserts args as a new row of table if id is zero, and otherwise
// updates row id, returning an error wrapping ErrNotFound if there is none.
// It returns the row's id.
func put(ctx context.Context, tx *sql.Tx, table, columns string, id int64, args []any) (int64, error) {
	marks := strings.Repeat("?, ", len(args)-1) + "?"
	if id == 0 {
		res, err := tx.ExecContext(ctx, "INSERT INTO "+table+" ("+columns+") VALUES ("+marks+")", args...)
		if err != nil {
			return 0, fmt.Errorf("insert into %v: %w", table, err)
		}
		return res.LastInsertId()
	}
	q := "UPDATE " + table + " SET (" + columns + ") = (" + marks + ") WHERE id = ?"
	res, err := tx.ExecContext(ctx, q, append(args, id)...)
	if err == nil {
		err = wantOneRow(res)
	}
	if err != nil {
		return 0, fmt.Errorf("update %v id %d: %w", table, id, err)
	}
	return id, nil
}

// wantOneRow returns ErrNotFound if res changed no row.
func wantOneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// unique describes one value that must be unique in its column.
type unique struct {
	what   string // for errors, e.g. "node key"
	column string
	value  any // nil (SQL NULL) is never a conflict
}

// checkUnique returns an error wrapping ErrConflict if a row of table other
// than id holds one of the values; owner names such a row in the error. It
// runs inside the writing transaction, so it cannot race, and it names the
// field, which SQLite's own UNIQUE errors do only in a driver-specific form;
// the schema's UNIQUE constraints remain the safety net.
func checkUnique(ctx context.Context, tx *sql.Tx, table, owner string, id int64, values []unique) error {
	for _, u := range values {
		if u.value == nil {
			continue
		}
		var other int64
		q := "SELECT id FROM " + table + " WHERE " + u.column + " = ? AND id != ?"
		err := tx.QueryRowContext(ctx, q, u.value, id).Scan(&other)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return fmt.Errorf("check unique %v.%v: %w", table, u.column, err)
		}
		return fmt.Errorf("%v %v %w by %v %d", u.what, u.value, ErrConflict, owner, other)
	}
	return nil
}
