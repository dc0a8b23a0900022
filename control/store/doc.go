// Package store persists the control server's durable state (nodes, auth
// keys, server keys) in SQLite with versioned migrations. It is written only
// on changes a user would miss after a crash, never on every map request, to
// spare router flash.
package store
