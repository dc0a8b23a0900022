package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// openTest opens a new store in a temporary directory (with awkward
// characters, to exercise DSN escaping) and returns it and its path.
func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dir with space#?%", "homenet.db")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// reopen closes db and opens path again.
func reopen(t *testing.T, db *DB, path string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawDB opens path with the driver alone, without migrations.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// newNode returns a valid node with fresh keys and the given name.
func newNode(name string) Node {
	return Node{
		MachineKey: key.NewMachine().Public(),
		NodeKey:    key.NewNode().Public(),
		Name:       name,
	}
}

// newKey returns a valid auth key with the given prefix.
func newKey(prefix string) AuthKey {
	h := sha256.Sum256([]byte(prefix))
	return AuthKey{Prefix: prefix, Hash: h[:]}
}

func TestOpenSettings(t *testing.T) {
	db, path := openTest(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("database file mode = %v, want 0600", got)
	}
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"user_version", strconv.Itoa(len(migrations()))},
	}
	for _, tt := range tests {
		var got string
		if err := db.sql.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %v = %q, want %q", tt.pragma, got, tt.want)
		}
	}
}

func TestOpenPaths(t *testing.T) {
	tests := []struct {
		name string
		path string // relative to a fresh working directory
	}{
		{"relative", "homenet.db"},
		{"relative in subdirectory", "sub dir/homenet.db"},
		{"absolute", ""}, // filled in below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			os.Mkdir("sub dir", 0o700)
			path := cmp.Or(tt.path, filepath.Join(dir, "abs.db"))
			db, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			err = db.SetSetting(t.Context(), "k", "v")
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("database not written at %q: %v", path, err)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	steps := []struct {
		set         bool // false: only read
		name, value string
		wantOK      bool
		wantValue   string
	}{
		{name: "noise_key", wantOK: false},
		{set: true, name: "noise_key", value: "privkey:01", wantOK: true, wantValue: "privkey:01"},
		{set: true, name: "noise_key", value: "privkey:02", wantOK: true, wantValue: "privkey:02"},
		{set: true, name: "empty", value: "", wantOK: true, wantValue: ""},
		{name: "other", wantOK: false},
	}
	for i, s := range steps {
		if s.set {
			if err := db.SetSetting(ctx, s.name, s.value); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		for _, when := range []string{"before", "after"} {
			if when == "after" {
				db = reopen(t, db, path)
			}
			got, ok, err := db.Setting(ctx, s.name)
			if err != nil || ok != s.wantOK || got != s.wantValue {
				t.Errorf("step %d, %s reopening: Setting(%q) = %q, %v, %v; want %q, %v, nil", i, when, s.name, got, ok, err, s.wantValue, s.wantOK)
			}
		}
	}
}

func TestNodeRoundTrip(t *testing.T) {
	full := Node{
		MachineKey: key.NewMachine().Public(),
		NodeKey:    key.NewNode().Public(),
		Name:       "laptop",
		IPv4:       netip.MustParseAddr("100.64.0.1"),
		IPv6:       netip.MustParseAddr("fd7a:115c:a1e0::1"),
		Hostinfo: &tailcfg.Hostinfo{
			IPNVersion:  "1.80.0",
			OS:          "linux",
			Hostname:    "laptop",
			RoutableIPs: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
			RequestTags: []string{"tag:laptop"},
			Services:    []tailcfg.Service{{Proto: tailcfg.TCP, Port: 22, Description: "ssh"}},
			NetInfo:     &tailcfg.NetInfo{PreferredDERP: 1, DERPLatency: map[string]float64{"1-v4": 0.012}},
		},
		Created:        time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		KeyExpiry:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		LastSeen:       time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC),
		Ephemeral:      true,
		Tags:           []string{"tag:a", "tag:b"},
		ApprovedRoutes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("::/0")},
		DiscoKey:       key.NewDisco().Public(),
		HomeDERP:       900,
		Endpoints:      []netip.AddrPort{netip.MustParseAddrPort("198.51.100.7:41641"), netip.MustParseAddrPort("[2001:db8::7]:41641")},
	}
	zoned := newNode("zoned")
	zoned.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	zonedWant := zoned
	zonedWant.Created = zoned.Created.UTC()
	emptyLists := newNode("empty-lists")
	emptyLists.Tags, emptyLists.ApprovedRoutes = []string{}, []netip.Prefix{}
	emptyLists.Hostinfo = &tailcfg.Hostinfo{}

	tests := []struct {
		name string
		node Node
		want Node
	}{
		{"every field set", full, full},
		{"zero times, nil Hostinfo and lists, no addresses", newNode("minimal"), newNode("minimal")},
		{"empty lists stay empty", emptyLists, emptyLists},
		{"times come back in UTC", zoned, zonedWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := openTest(t)
			n := tt.node
			want := tt.want
			want.MachineKey, want.NodeKey = n.MachineKey, n.NodeKey // newNode is random
			if err := db.PutNode(t.Context(), &n); err != nil {
				t.Fatal(err)
			}
			if n.ID != 1 {
				t.Errorf("assigned ID = %d, want 1", n.ID)
			}
			want.ID = n.ID
			var expiry string
			if err := db.sql.QueryRowContext(t.Context(), "SELECT key_expiry FROM nodes").Scan(&expiry); err != nil {
				t.Fatal(err)
			}
			if n.KeyExpiry.IsZero() != (expiry == "") {
				t.Errorf("key expiry %v stored as %q; want \"\" exactly for the zero time", n.KeyExpiry, expiry)
			}
			nodes, err := reopen(t, db, path).Nodes(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != 1 || !reflect.DeepEqual(nodes[0], want) {
				t.Errorf("Nodes() =\n%+v\nwant\n%+v", nodes, []Node{want})
			}
		})
	}
}

func TestNodeUpdateDelete(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	a, b := newNode("a"), newNode("b")
	for _, n := range []*Node{&a, &b} {
		if err := db.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	a.Name, a.IPv4, a.LastSeen = "a2", netip.MustParseAddr("100.64.0.9"), time.Unix(1700000000, 0).UTC()
	a.NodeKey = key.NewNode().Public()
	if err := db.PutNode(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteNode(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteNode(ctx, b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteNode(%d) = %v, want ErrNotFound", b.ID, err)
	}
	c := newNode("c")
	if err := db.PutNode(ctx, &c); err != nil {
		t.Fatal(err)
	}
	if c.ID != 3 {
		t.Errorf("new node got ID %d after deleting node 2, want 3 (IDs are never reused)", c.ID)
	}
	nodes, err := db.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Node{a, c}; !reflect.DeepEqual(nodes, want) {
		t.Errorf("Nodes() =\n%+v\nwant\n%+v", nodes, want)
	}
}

func TestPutNodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(n *Node, existing Node) // starts from a fresh node
		wantErr error                        // nil: must succeed
		wantMsg string                       // substring of the error
	}{
		{"same machine key", func(n *Node, e Node) { n.MachineKey = e.MachineKey }, ErrConflict, "machine key mkey:"},
		{"same node key", func(n *Node, e Node) { n.NodeKey = e.NodeKey }, ErrConflict, "node key nodekey:"},
		{"same name", func(n *Node, e Node) { n.Name = e.Name }, ErrConflict, "name existing already in use by node 1"},
		{"same name other case", func(n *Node, e Node) { n.Name = "EXISTING" }, ErrConflict, "name EXISTING"},
		{"same IPv4", func(n *Node, e Node) { n.IPv4 = e.IPv4 }, ErrConflict, "IPv4 address 100.64.0.1"},
		{"same IPv6", func(n *Node, e Node) { n.IPv6 = e.IPv6 }, ErrConflict, "IPv6 address fd7a:115c:a1e0::1"},
		{"update of missing ID", func(n *Node, e Node) { n.ID = 42 }, ErrNotFound, "update nodes id 42"},
		{"zero machine key", func(n *Node, e Node) { n.MachineKey = key.MachinePublic{} }, nil, "machine key is zero"},
		{"zero node key", func(n *Node, e Node) { n.NodeKey = key.NodePublic{} }, nil, "node key is zero"},
		{"empty name", func(n *Node, e Node) { n.Name = "" }, nil, "name is empty"},
		{"IPv6 as IPv4", func(n *Node, e Node) { n.IPv4 = netip.MustParseAddr("fd00::1") }, nil, "is not IPv4"},
		{"missing auth key", func(n *Node, e Node) { n.AuthKeyID = 7 }, nil, "FOREIGN KEY"},
		{"distinct values", func(n *Node, e Node) { n.IPv4 = netip.MustParseAddr("100.64.0.2") }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := t.Context()
			existing := newNode("existing")
			existing.IPv4 = netip.MustParseAddr("100.64.0.1")
			existing.IPv6 = netip.MustParseAddr("fd7a:115c:a1e0::1")
			if err := db.PutNode(ctx, &existing); err != nil {
				t.Fatal(err)
			}
			n := newNode("new")
			tt.modify(&n, existing)
			id := n.ID
			err := db.PutNode(ctx, &n)
			nodes, lerr := db.Nodes(ctx)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tt.wantMsg == "" {
				if err != nil || len(nodes) != 2 {
					t.Errorf("PutNode = %v with %d nodes stored; want success and 2", err, len(nodes))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("PutNode error = %v, want one containing %q", err, tt.wantMsg)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("PutNode error = %v, want one wrapping %v", err, tt.wantErr)
			}
			if n.ID != id || len(nodes) != 1 || !reflect.DeepEqual(nodes[0], existing) {
				t.Errorf("after failed PutNode: ID %d (was %d), nodes %+v; want only %+v", n.ID, id, nodes, existing)
			}
		})
	}
}

func TestAuthKeys(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	full := newKey("hskey-full")
	full.Reusable, full.Ephemeral, full.Revoked = true, true, true
	full.Tags = []string{"tag:server"}
	full.Created = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	full.Expiry = time.Date(2025, 2, 2, 3, 4, 5, 6, time.UTC)
	full.Used = 3
	minimal := newKey("hskey-min")
	for _, k := range []*AuthKey{&full, &minimal} {
		if err := db.PutAuthKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	minimal.Used, minimal.Revoked = 1, true
	if err := db.PutAuthKey(ctx, &minimal); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, path)

	keys, err := db.AuthKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []AuthKey{full, minimal}; !reflect.DeepEqual(keys, want) {
		t.Errorf("AuthKeys() =\n%+v\nwant\n%+v", keys, want)
	}

	lookups := []struct {
		prefix  string
		want    AuthKey
		wantErr error
	}{
		{"hskey-full", full, nil},
		{"hskey-min", minimal, nil},
		{"hskey-none", AuthKey{}, ErrNotFound},
		{"HSKEY-FULL", AuthKey{}, ErrNotFound},
	}
	for _, l := range lookups {
		got, err := db.AuthKeyByPrefix(ctx, l.prefix)
		if !errors.Is(err, l.wantErr) || (l.wantErr == nil) != (err == nil) || !reflect.DeepEqual(got, l.want) {
			t.Errorf("AuthKeyByPrefix(%q) = %+v, %v; want %+v, %v", l.prefix, got, err, l.want, l.wantErr)
		}
	}

	bad := []struct {
		name    string
		key     AuthKey
		wantErr error
		wantMsg string
	}{
		{"duplicate prefix", newKey("hskey-full"), ErrConflict, "prefix hskey-full already in use by auth key 1"},
		{"missing ID", func() AuthKey { k := newKey("x"); k.ID = 9; return k }(), ErrNotFound, "update auth_keys id 9"},
		{"short hash", AuthKey{Prefix: "x", Hash: []byte{1}}, nil, "hash is 1 bytes"},
		{"empty prefix", newKey(""), nil, "prefix is empty"},
	}
	for _, b := range bad {
		k := b.key
		err := db.PutAuthKey(ctx, &k)
		if err == nil || !strings.Contains(err.Error(), b.wantMsg) || (b.wantErr != nil && !errors.Is(err, b.wantErr)) {
			t.Errorf("%s: PutAuthKey error = %v, want %v containing %q", b.name, err, b.wantErr, b.wantMsg)
		}
	}
	if keys, err := db.AuthKeys(ctx); err != nil || len(keys) != 2 {
		t.Errorf("after failed puts: %d keys, %v; want 2", len(keys), err)
	}
}

func TestRegisterWithAuthKey(t *testing.T) {
	tests := []struct {
		name     string
		key      AuthKey
		keyID    int64 // 0: the key's own ID
		conflict bool  // the node's name is already taken
		wantErr  error // nil: must succeed
		wantUsed int
	}{
		{"single-use key", AuthKey{}, 0, false, nil, 1},
		{"reusable key used before", AuthKey{Reusable: true, Used: 4}, 0, false, nil, 5},
		{"single-use key used before", AuthKey{Used: 1}, 0, false, ErrKeyUnusable, 1},
		{"revoked key", AuthKey{Reusable: true, Revoked: true}, 0, false, ErrKeyUnusable, 0},
		{"missing key", AuthKey{}, 99, false, ErrNotFound, 0},
		{"node conflict leaves key unused", AuthKey{}, 0, true, ErrConflict, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := t.Context()
			k := newKey("hskey")
			k.Reusable, k.Revoked, k.Used = tt.key.Reusable, tt.key.Revoked, tt.key.Used
			if err := db.PutAuthKey(ctx, &k); err != nil {
				t.Fatal(err)
			}
			taken := newNode("taken")
			if err := db.PutNode(ctx, &taken); err != nil {
				t.Fatal(err)
			}
			n := newNode("new")
			if tt.conflict {
				n.Name = taken.Name
			}
			keyID := cmp.Or(tt.keyID, k.ID)
			err := db.RegisterWithAuthKey(ctx, &n, keyID)

			if (err == nil) != (tt.wantErr == nil) || !errors.Is(err, tt.wantErr) {
				t.Errorf("RegisterWithAuthKey = %v, want %v", err, tt.wantErr)
			}
			got, err := db.AuthKeyByPrefix(ctx, k.Prefix)
			if err != nil {
				t.Fatal(err)
			}
			if got.Used != tt.wantUsed {
				t.Errorf("key Used = %d, want %d", got.Used, tt.wantUsed)
			}
			nodes, err := db.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []Node{taken}
			if tt.wantErr == nil {
				if n.ID == 0 || n.AuthKeyID != k.ID {
					t.Errorf("registered node has ID %d, AuthKeyID %d; want nonzero, %d", n.ID, n.AuthKeyID, k.ID)
				}
				want = append(want, n)
			} else if n.ID != 0 || n.AuthKeyID != 0 {
				t.Errorf("failed registration changed node: ID %d, AuthKeyID %d", n.ID, n.AuthKeyID)
			}
			if !reflect.DeepEqual(nodes, want) {
				t.Errorf("Nodes() =\n%+v\nwant\n%+v", nodes, want)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	next := "ALTER TABLE settings ADD COLUMN note TEXT NOT NULL DEFAULT 'next'"
	cur := len(migrations())
	plus := func(extra ...string) []string { return append(migrations(), extra...) }
	tests := []struct {
		name        string
		version     int      // user_version to set on a fresh, current store; 0: leave
		steps       []string // migrations to run after Open
		wantVersion int
		wantErr     string
	}{
		{"nothing pending", 0, migrations(), cur, ""},
		{"next step", 0, plus(next), cur + 1, ""},
		{"failing step rolls back", 0, plus("CREATE TABLE half (x); CREATE TABLE nodes (x)"), cur, fmt.Sprintf("migrate to schema version %d", cur+1)},
		{"newer database", cur + 4, plus(next, next), cur + 4, fmt.Sprintf("database schema version %d is newer than this homenet (%d); upgrade homenet", cur+4, cur+2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := openTest(t)
			if err := db.SetSetting(t.Context(), "kept", "yes"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			raw := rawDB(t, path)
			if tt.version != 0 {
				if _, err := raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", tt.version)); err != nil {
					t.Fatal(err)
				}
			}
			err := migrate(t.Context(), raw, tt.steps)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("migrate = %v, want error containing %q", err, tt.wantErr)
			}
			var version, half int
			var kept string
			if err := raw.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
				t.Fatal(err)
			}
			if version != tt.wantVersion {
				t.Errorf("schema version = %d, want %d", version, tt.wantVersion)
			}
			if err := raw.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'half'").Scan(&half); err != nil || half != 0 {
				t.Errorf("table from failed migration: count %d, %v; want 0", half, err)
			}
			if err := raw.QueryRow("SELECT value FROM settings WHERE name = 'kept'").Scan(&kept); err != nil || kept != "yes" {
				t.Errorf("setting after migration = %q, %v; want yes", kept, err)
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	db, path := openTest(t)
	db.Close()
	raw := rawDB(t, path)
	if _, err := raw.Exec("PRAGMA user_version = 5"); err != nil {
		t.Fatal(err)
	}
	raw.Close() // releases the lock in exclusive locking mode
	_, err := Open(context.Background(), path)
	want := fmt.Sprintf("database schema version 5 is newer than this homenet (%d); upgrade homenet", len(migrations()))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Open = %v, want error containing %q", err, want)
	}
}

// A node stored by the first schema survives the later migrations, with
// zero values in the new columns.
func TestMigrateKeepsV1Nodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	raw := rawDB(t, path)
	if err := migrate(t.Context(), raw, migrations()[:1]); err != nil {
		t.Fatal(err)
	}
	_, err := raw.Exec(`INSERT INTO nodes (machine_key, node_key, name, ipv4, ipv6, hostinfo, created, key_expiry,
		last_seen, ephemeral, tags, approved_routes) VALUES (?, ?, 'old', '100.64.0.9', NULL, 'null', '', '', '', 0, 'null', 'null')`,
		key.NewMachine().Public().String(), key.NewNode().Public().String())
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nodes, err := db.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != "old" || nodes[0].IPv4 != netip.MustParseAddr("100.64.0.9") ||
		!nodes[0].DiscoKey.IsZero() || nodes[0].HomeDERP != 0 || nodes[0].Endpoints != nil {
		t.Fatalf("after migration: %+v", nodes)
	}
}
