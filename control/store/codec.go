package store

import (
	"database/sql"
	"encoding"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// Column encodings: keys as their text form, addresses as text (NULL when
// zero, so that UNIQUE ignores them), Hostinfo and lists as JSON (nil becomes
// null and comes back nil; empty stays empty), and times as RFC 3339 in UTC
// ("" for the zero time; times come back in UTC).

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// encoder encodes column values, keeping the first error.
type encoder struct{ err error }

func (e *encoder) time(t time.Time) string {
	if t.IsZero() || e.err != nil {
		return ""
	}
	b, err := t.UTC().MarshalText()
	if err != nil {
		e.err = fmt.Errorf("encode time %v: %w", t, err)
	}
	return string(b)
}

func (e *encoder) json(v any) string {
	if e.err != nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		e.err = fmt.Errorf("encode %T as JSON: %w", v, err)
	}
	return string(b)
}

// addrText encodes a as text, or as NULL if it is the zero Addr.
func addrText(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a.String()
}

// decoder decodes column values, keeping the first error.
type decoder struct{ err error }

func (d *decoder) time(s string) time.Time {
	var t time.Time
	if s == "" || d.err != nil {
		return t
	}
	if err := t.UnmarshalText([]byte(s)); err != nil {
		d.err = fmt.Errorf("decode time %q: %w", s, err)
	}
	return t
}

func (d *decoder) json(s string, v any) {
	if d.err != nil {
		return
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		d.err = fmt.Errorf("decode %T from JSON %q: %w", v, s, err)
	}
}

func (d *decoder) text(s string, v encoding.TextUnmarshaler) {
	if d.err != nil {
		return
	}
	if err := v.UnmarshalText([]byte(s)); err != nil {
		d.err = fmt.Errorf("decode %T from %q: %w", v, s, err)
	}
}

func (d *decoder) addr(s sql.NullString) netip.Addr {
	var a netip.Addr
	if !s.Valid || d.err != nil {
		return a
	}
	d.text(s.String, &a)
	return a
}
