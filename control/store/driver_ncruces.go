//go:build mips || mipsle || ncruces

package store

import (
	"slices"

	_ "github.com/ncruces/go-sqlite3/driver" // registers the "sqlite3" driver
	_ "github.com/ncruces/go-sqlite3/embed"  // the SQLite Wasm build it runs
	"github.com/ncruces/go-sqlite3/vfs"
)

// driverName is the database/sql driver: github.com/ncruces/go-sqlite3,
// SQLite compiled to Wasm and run by wazero, for platforms where
// modernc.org/sqlite does not build (mips, mipsle).
const driverName = "sqlite3"

// dsn returns the data source name for the database file at path.
func dsn(path string) string {
	p := pragmas()
	if !vfs.SupportsSharedMemory {
		// Without shared memory (as on mips), SQLite can use WAL only in
		// exclusive locking mode, set right after busy_timeout. With one
		// connection in one process this costs nothing but outside readers
		// (the sqlite3 shell) while homenet runs.
		p = slices.Insert(p, 1, "locking_mode(EXCLUSIVE)")
	}
	return fileURI(path, p)
}
