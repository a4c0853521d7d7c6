package controldb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "data", "control.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func scram(n int, b byte) *SCRAM {
	return &SCRAM{Salt: []byte("salt-salt-salt-1"), Iterations: 4096,
		StoredKey: bytes.Repeat([]byte{b}, n), ServerKey: bytes.Repeat([]byte{b + 1}, n)}
}

func TestOpenSettings(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	} {
		// Every pooled connection must carry the settings, not only the first: hold
		// several at once so the pool opens more than one.
		conns := make([]interface{ Close() error }, 0, maxOpenConns)
		for range maxOpenConns {
			c, err := db.sql.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
	v, err := db.Version(ctx)
	if err != nil || v != SchemaVersion {
		t.Fatalf("Version = %d, %v; want %d", v, err, SchemaVersion)
	}
	st, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, want 0600", st.Mode().Perm())
	}
	dir, _ := os.Stat(filepath.Dir(db.Path()))
	if dir.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %v, want 0700", dir.Mode().Perm())
	}
}

// A data directory whose name looks like URI syntax must not inject SQLite parameters
// (e.g. "?mode=ro" or "#") or open another file.
func TestOpenPathWithURISyntax(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?mode=memory&cache=shared#frag%41")
	path := filepath.Join(dir, "control.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.Users().Create(ctx, User{IDType: Username, ID: "u", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		t.Fatalf("database not written at the literal path: %v", err)
	}
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Users().Get(ctx, Username, "u"); err != nil {
		t.Fatalf("user not persisted at the literal path: %v", err)
	}
}

func TestUserCRUD(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	users := db.Users()

	alice := User{IDType: Username, ID: "alice", PasswordHash: "$argon2id$x", Superuser: true,
		SCRAMSHA256: scram(32, 1), SCRAMSHA512: scram(64, 3)}
	if err := users.Create(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := users.Create(ctx, alice); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create err = %v, want ErrExists", err)
	}
	got, err := users.Get(ctx, Username, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.PasswordHash != alice.PasswordHash || !got.Superuser || got.IDType != Username ||
		!equalSCRAM(got.SCRAMSHA256, alice.SCRAMSHA256) || !equalSCRAM(got.SCRAMSHA512, alice.SCRAMSHA512) {
		t.Fatalf("Get = %+v, want %+v", got, alice)
	}
	if got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Fatalf("timestamps %v %v", got.CreatedAt, got.UpdatedAt)
	}

	// The same id as a client id is another user.
	if _, err := users.Get(ctx, ClientID, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(clientid alice) err = %v, want ErrNotFound", err)
	}
	if err := users.Create(ctx, User{IDType: ClientID, ID: "alice", PasswordHash: "other"}); err != nil {
		t.Fatal(err)
	}

	// Put replaces the credentials and keeps CreatedAt; SCRAM can be removed.
	upd := User{IDType: Username, ID: "alice", PasswordHash: "$argon2id$y"}
	if err := users.Put(ctx, upd); err != nil {
		t.Fatal(err)
	}
	got2, err := users.Get(ctx, Username, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got2.PasswordHash != "$argon2id$y" || got2.Superuser || got2.SCRAMSHA256 != nil || got2.SCRAMSHA512 != nil {
		t.Fatalf("after Put: %+v", got2)
	}
	if !got2.CreatedAt.Equal(got.CreatedAt) || got2.UpdatedAt.Before(got.UpdatedAt) {
		t.Fatalf("Put changed CreatedAt or moved UpdatedAt back: %v %v", got2.CreatedAt, got2.UpdatedAt)
	}
	// Put inserts too; a SCRAM-only user has no password hash.
	if err := users.Put(ctx, User{IDType: Username, ID: "bob", SCRAMSHA256: scram(32, 5)}); err != nil {
		t.Fatal(err)
	}
	if b, err := users.Get(ctx, Username, "bob"); err != nil || b.PasswordHash != "" || b.SCRAMSHA256 == nil {
		t.Fatalf("bob = %+v, %v", b, err)
	}

	if err := users.Delete(ctx, Username, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Get(ctx, Username, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete err = %v", err)
	}
	if err := users.Delete(ctx, Username, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete err = %v, want ErrNotFound", err)
	}
	if _, err := users.Get(ctx, ClientID, "alice"); err != nil {
		t.Fatalf("Delete of the username removed the client id user: %v", err)
	}
	if n, err := users.Count(ctx, Username); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v", n, err)
	}
}

func equalSCRAM(a, b *SCRAM) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Salt, b.Salt) && a.Iterations == b.Iterations &&
		bytes.Equal(a.StoredKey, b.StoredKey) && bytes.Equal(a.ServerKey, b.ServerKey)
}

// Users that would be unusable or break the schema's promises are refused, by the Go
// checks or by the table's constraints, and nothing is written.
func TestUserValidation(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		name string
		u    User
	}{
		{"no id type", User{ID: "a", PasswordHash: "h"}},
		{"bad id type", User{IDType: "email", ID: "a", PasswordHash: "h"}},
		{"empty id", User{IDType: Username, PasswordHash: "h"}},
		{"invalid utf-8 id", User{IDType: Username, ID: "a\xff", PasswordHash: "h"}},
		{"over-long id", User{IDType: Username, ID: strings.Repeat("a", 65536), PasswordHash: "h"}},
		{"no credentials", User{IDType: Username, ID: "a"}},
		{"scram without salt", User{IDType: Username, ID: "a", SCRAMSHA256: &SCRAM{Iterations: 1, StoredKey: []byte{1}, ServerKey: []byte{1}}}},
		{"scram zero iterations", User{IDType: Username, ID: "a", SCRAMSHA256: &SCRAM{Salt: []byte{1}, StoredKey: []byte{1}, ServerKey: []byte{1}}}},
		{"sha256 key of sha512 size", User{IDType: Username, ID: "a", SCRAMSHA256: scram(64, 1)}},
		{"sha512 key of sha256 size", User{IDType: Username, ID: "a", SCRAMSHA512: scram(32, 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.Users().Create(ctx, tc.u); err == nil {
				t.Fatal("Create accepted")
			}
			if err := db.Users().Put(ctx, tc.u); err == nil {
				t.Fatal("Put accepted")
			}
			if _, err := db.Users().InsertMissing(ctx, []User{tc.u}); err == nil {
				t.Fatal("InsertMissing accepted")
			}
		})
	}
	for _, typ := range []IDType{Username, ClientID} {
		if n, _ := db.Users().Count(ctx, typ); n != 0 {
			t.Fatalf("%d invalid %s users written", n, typ)
		}
	}
}

func TestListPaging(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	var batch []User
	for i := range 25 {
		batch = append(batch, User{IDType: Username, ID: fmt.Sprintf("user%02d", i), PasswordHash: "h"})
	}
	batch = append(batch, User{IDType: ClientID, ID: "device", PasswordHash: "h"})
	if _, err := db.Users().InsertMissing(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var seen []string
	after, pages := "", 0
	for {
		page, next, err := db.Users().List(ctx, Username, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range page {
			seen = append(seen, u.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if pages != 3 || len(seen) != 25 || seen[0] != "user00" || seen[24] != "user24" {
		t.Fatalf("pages %d, seen %v", pages, seen)
	}
	// An exact multiple of the page size ends without an empty extra page.
	page, next, err := db.Users().List(ctx, Username, "user14", 10)
	if err != nil || len(page) != 10 || next != "" {
		t.Fatalf("last full page: %d users, next %q, %v", len(page), next, err)
	}
	if page, _, _ := db.Users().List(ctx, ClientID, "", 0); len(page) != 1 || page[0].ID != "device" {
		t.Fatalf("clientid list %+v", page)
	}
	if _, _, err := db.Users().List(ctx, "", "", 10); err == nil {
		t.Fatal("List accepted an empty id type")
	}
}

func TestForEach(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	const n = 1234 // more than two internal pages
	var batch []User
	for i := range n {
		batch = append(batch, User{IDType: ClientID, ID: fmt.Sprintf("c%05d", i), PasswordHash: "h", Superuser: i%7 == 0})
	}
	ins, err := db.Users().InsertMissing(ctx, batch)
	if err != nil || len(ins) != n {
		t.Fatalf("InsertMissing = %d, %v", len(ins), err)
	}
	count, supers, last := 0, 0, ""
	err = db.Users().ForEach(ctx, ClientID, func(u User) error {
		if u.ID <= last {
			t.Fatalf("ForEach out of order: %q after %q", u.ID, last)
		}
		last = u.ID
		count++
		if u.Superuser {
			supers++
		}
		return nil
	})
	if err != nil || count != n || supers != (n+6)/7 {
		t.Fatalf("ForEach: %d users, %d superusers, %v", count, supers, err)
	}
	stop := errors.New("stop")
	calls := 0
	err = db.Users().ForEach(ctx, ClientID, func(User) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ForEach did not stop at the first error: %v after %d calls", err, calls)
	}
	if err := db.Users().ForEach(ctx, Username, func(User) error { t.Fatal("called for an empty type"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestInsertMissing(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	if err := db.Users().Create(ctx, User{IDType: Username, ID: "existing", PasswordHash: "keep", Superuser: true}); err != nil {
		t.Fatal(err)
	}
	ins, err := db.Users().InsertMissing(ctx, []User{
		{IDType: Username, ID: "existing", PasswordHash: "overwrite?"},
		{IDType: Username, ID: "new", PasswordHash: "h"},
	})
	if err != nil || len(ins) != 1 || ins[0].ID != "new" {
		t.Fatalf("InsertMissing = %+v, %v", ins, err)
	}
	if u, _ := db.Users().Get(ctx, Username, "existing"); u.PasswordHash != "keep" || !u.Superuser {
		t.Fatalf("existing user changed: %+v", u)
	}
	// One bad row (passes the Go checks, fails a table constraint) rolls back the batch.
	_, err = db.Users().InsertMissing(ctx, []User{
		{IDType: Username, ID: "good", PasswordHash: "h"},
		{IDType: Username, ID: "bad", SCRAMSHA256: scram(10, 1)},
	})
	if err == nil {
		t.Fatal("batch with a bad row accepted")
	}
	if _, err := db.Users().Get(ctx, Username, "good"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial batch committed: %v", err)
	}
}

func TestSwapPasswordHash(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	if err := db.Users().Create(ctx, User{IDType: Username, ID: "u", PasswordHash: "old"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.Users().SwapPasswordHash(ctx, Username, "u", "stale", "new"); ok || err != nil {
		t.Fatalf("swap from a stale hash = %v, %v", ok, err)
	}
	if ok, err := db.Users().SwapPasswordHash(ctx, Username, "u", "old", "new"); !ok || err != nil {
		t.Fatalf("swap = %v, %v", ok, err)
	}
	if u, _ := db.Users().Get(ctx, Username, "u"); u.PasswordHash != "new" {
		t.Fatalf("hash %q", u.PasswordHash)
	}
	if ok, err := db.Users().SwapPasswordHash(ctx, Username, "missing", "old", "new"); ok || err != nil {
		t.Fatalf("swap of a missing user = %v, %v", ok, err)
	}
	if _, err := db.Users().SwapPasswordHash(ctx, Username, "u", "new", ""); err == nil {
		t.Fatal("swap to an empty hash accepted")
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "control.db")
	for i := range 3 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		if err := db.Users().Create(ctx, User{IDType: Username, ID: fmt.Sprint("u", i), PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		n, _ := db.Users().Count(ctx, Username)
		var rows int
		if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if n != i+1 || rows != SchemaVersion {
			t.Fatalf("open #%d: %d users, %d migration rows", i, n, rows)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "control.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.ExecContext(ctx, "INSERT INTO schema_migrations VALUES (?, 0)", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestCorruptFile(t *testing.T) {
	ctx := context.Background()
	// A real database to damage.
	valid := filepath.Join(t.TempDir(), "valid.db")
	db, err := Open(ctx, valid)
	if err != nil {
		t.Fatal(err)
	}
	var batch []User
	for i := range 300 {
		batch = append(batch, User{IDType: Username, ID: fmt.Sprintf("user%04d", i), PasswordHash: strings.Repeat("h", 200)})
	}
	if _, err := db.Users().InsertMissing(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	good, err := os.ReadFile(valid)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) < 4*4096 {
		t.Fatalf("test database too small: %d bytes", len(good))
	}

	damagedPages := append([]byte{}, good...)
	for i := 2 * 4096; i < len(damagedPages)-4096; i += 7 {
		damagedPages[i] ^= 0x5a
	}
	tests := []struct {
		name     string
		content  []byte
		wantText string
	}{
		{"text file", []byte("this is not a database, it is a config file\n" + strings.Repeat("x", 5000)), "not an SQLite database"},
		{"random header", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 2048), "not an SQLite database"},
		{"damaged pages", damagedPages, "corrupt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "control.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(ctx, path)
			if err == nil {
				db.Close()
				t.Fatal("corrupt file opened")
			}
			if !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not say %q and name the file", err, tc.wantText)
			}
			// The file is left as it was, for the operator to inspect or restore.
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tc.content) {
				t.Fatal("Open modified the corrupt file")
			}
		})
	}
}

// Writers on one DB and on two DBs open on the same file (two processes) all succeed:
// they queue on the write lock instead of failing with SQLITE_BUSY.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "control.db")
	db1, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()

	const writers, each = 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		db := db1
		if w%2 == 1 {
			db = db2
		}
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := db.Users().Put(ctx, User{IDType: Username, ID: id, PasswordHash: "h"}); err != nil {
					errs <- err
					return
				}
				// Everyone also rewrites one shared row.
				if err := db.Users().Put(ctx, User{IDType: Username, ID: "shared", PasswordHash: id}); err != nil {
					errs <- err
					return
				}
				if _, err := db.Users().InsertMissing(ctx, []User{{IDType: ClientID, ID: id, PasswordHash: "h"}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, db := range []*DB{db1, db2} {
		if n, err := db.Users().Count(ctx, Username); err != nil || n != writers*each+1 {
			t.Fatalf("Count(username) = %d, %v", n, err)
		}
		if n, err := db.Users().Count(ctx, ClientID); err != nil || n != writers*each {
			t.Fatalf("Count(clientid) = %d, %v", n, err)
		}
	}
}

// Several processes starting at once on a fresh file migrate it once.
func TestConcurrentOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "control.db")
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(ctx, path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		defer dbs[i].Close()
	}
	var rows int
	if err := dbs[0].sql.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != SchemaVersion {
		t.Fatalf("%d migration rows, want %d", rows, SchemaVersion)
	}
}

func TestCancelledContext(t *testing.T) {
	db := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Users().Get(ctx, Username, "x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if err := db.Users().Put(ctx, User{IDType: Username, ID: "x", PasswordHash: "h"}); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "c.db")); err == nil {
		t.Fatal("Open with a cancelled context succeeded")
	}
}
