//go:build !mips && !mipsle && !ncruces

package store

import _ "modernc.org/sqlite" // registers the "sqlite" driver

// driverName is the database/sql driver: modernc.org/sqlite, SQLite
// translated to Go, the default where it builds.
const driverName = "sqlite"

// dsn returns the data source name for the database file at path.
func dsn(path string) string {
	return fileURI(path, pragmas())
}
