// Package controldb stores Rampart's control data (users and their credentials, and the
// authorization rules of the built-in database, today; bans, admins and API keys later)
// in one SQLite file in the data directory, through modernc.org/sqlite (pure Go, no cgo).
//
// Every connection runs with journal_mode=WAL, synchronous=FULL (a committed write is on
// disk before the call returns), foreign_keys=ON, SQLite's defensive mode and a busy
// timeout, and write transactions begin IMMEDIATE, so concurrent writers queue on the
// write lock instead of failing halfway. Open creates the file with mode 0600, checks its
// integrity (PRAGMA quick_check), and applies the numbered migrations that
// schema_migrations does not list yet, all in one transaction; it refuses a file written
// by a newer schema.
//
// Hot paths never query this database: authenticators and authorization sources load what
// they need into memory at start and are updated by the code that writes here.
package controldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors, wrapped with context by the repositories.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// busyTimeout is how long a statement waits for another connection's write lock.
const busyTimeout = 10 * time.Second

// maxOpenConns bounds the connections (and their page caches) one DB holds. Reads run in
// parallel under WAL; writes take turns on SQLite's single write lock.
const maxOpenConns = 4

// DB is an open control database. It is safe for concurrent use.
type DB struct {
	sql   *sql.DB
	path  string
	users *Users
}

// Open opens (creating if needed) the control database at path, e.g.
// <data_dir>/control.db, and brings its schema up to date. The directory is created with
// mode 0700 when missing.
func Open(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("controldb: open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("controldb: open %s: %w", abs, err)
	}
	// Create the file ourselves so it is private from the first byte: SQLite would create
	// it with the umask's mode, and its -wal and -shm files copy the database's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("controldb: open %s: %w", abs, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("controldb: open %s: %w", abs, err)
	}

	sqldb, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("controldb: open %s: %w", abs, err)
	}
	sqldb.SetMaxOpenConns(maxOpenConns)
	sqldb.SetMaxIdleConns(maxOpenConns)
	db := &DB{sql: sqldb, path: abs}
	db.users = &Users{db: db}
	if err := db.init(ctx); err != nil {
		_ = sqldb.Close()
		return nil, err
	}
	return db, nil
}

// dsn builds the connection string. The path goes into a file: URI, escaped, so a
// directory name holding '?' or '#' cannot inject parameters.
func dsn(path string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	q.Set("_defensive", "1")
	// Cells of users are small; a modest cache per connection is plenty.
	q.Add("_pragma", "cache_size(-2000)")
	u.RawQuery = q.Encode()
	return u.String()
}

func (db *DB) init(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return db.openError(err)
	}
	var check string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check); err != nil {
		return db.openError(err)
	}
	if check != "ok" {
		return fmt.Errorf("controldb: %s is corrupt: restore it from a backup (integrity check: %s)", db.path, strings.ReplaceAll(check, "\n", " "))
	}
	if err := db.migrate(ctx); err != nil {
		return err
	}
	return nil
}

// openError explains the errors a damaged or foreign file produces.
func (db *DB) openError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("controldb: %s is not an SQLite database (corrupt, or another kind of file): %w", db.path, err)
		case sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("controldb: %s is corrupt: restore it from a backup: %w", db.path, err)
		}
	}
	return fmt.Errorf("controldb: open %s: %w", db.path, err)
}

// Close closes the database. Pending writes have been committed (each call commits
// before it returns).
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("controldb: close %s: %w", db.path, err)
	}
	return nil
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Users returns the users repository.
func (db *DB) Users() *Users { return db.users }

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it, or rolls it back
// when fn fails.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isPrimaryKey reports whether err is a primary key (uniqueness) violation.
func isPrimaryKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
