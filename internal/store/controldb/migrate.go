package controldb

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order; migration i+1 is migrations[i]. Never edit or reorder
// one that has shipped: append a new one.
var migrations = [...]string{
	// 1: users of the built-in database authenticator. A user has a password hash (an
	// encoded string of package password), SCRAM credentials, or both; SCRAM columns hold
	// what RFC 5802 servers store (salt, iteration count, StoredKey, ServerKey), never a
	// password. Times are Unix milliseconds.
	`CREATE TABLE users (
		user_id_type TEXT NOT NULL CHECK (user_id_type IN ('username', 'clientid')),
		user_id TEXT NOT NULL CHECK (length(user_id) > 0),
		password_hash TEXT NOT NULL DEFAULT '',
		is_superuser INTEGER NOT NULL DEFAULT 0 CHECK (is_superuser IN (0, 1)),
		scram_sha256_salt BLOB,
		scram_sha256_iterations INTEGER,
		scram_sha256_stored_key BLOB,
		scram_sha256_server_key BLOB,
		scram_sha512_salt BLOB,
		scram_sha512_iterations INTEGER,
		scram_sha512_stored_key BLOB,
		scram_sha512_server_key BLOB,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (user_id_type, user_id),
		CHECK ((scram_sha256_salt IS NULL AND scram_sha256_iterations IS NULL AND
		        scram_sha256_stored_key IS NULL AND scram_sha256_server_key IS NULL) OR
		       (length(scram_sha256_salt) > 0 AND scram_sha256_iterations > 0 AND
		        length(scram_sha256_stored_key) = 32 AND length(scram_sha256_server_key) = 32)),
		CHECK ((scram_sha512_salt IS NULL AND scram_sha512_iterations IS NULL AND
		        scram_sha512_stored_key IS NULL AND scram_sha512_server_key IS NULL) OR
		       (length(scram_sha512_salt) > 0 AND scram_sha512_iterations > 0 AND
		        length(scram_sha512_stored_key) = 64 AND length(scram_sha512_server_key) = 64)),
		CHECK (password_hash != '' OR scram_sha256_salt IS NOT NULL OR scram_sha512_salt IS NOT NULL)
	) STRICT`,

	// 2: authorization rules of the built_in_database source, per username, per client id
	// or for all clients (subject ''). position orders the rules of one (scope, subject);
	// the unique index on it is also the index every lookup and scan uses. topics and qos
	// are JSON arrays (qos NULL: any QoS), retain NULL means either. Times are Unix
	// milliseconds.
	`CREATE TABLE acl_rules (
		id INTEGER PRIMARY KEY,
		scope TEXT NOT NULL CHECK (scope IN ('username', 'clientid', 'all')),
		subject TEXT NOT NULL,
		position INTEGER NOT NULL CHECK (position >= 0),
		permission TEXT NOT NULL CHECK (permission IN ('allow', 'deny')),
		action TEXT NOT NULL CHECK (action IN ('publish', 'subscribe', 'all')),
		topics TEXT NOT NULL CHECK (json_valid(topics) AND json_type(topics) = 'array'),
		qos TEXT CHECK (qos IS NULL OR (json_valid(qos) AND json_type(qos) = 'array')),
		retain INTEGER CHECK (retain IS NULL OR retain IN (0, 1)),
		created_at INTEGER NOT NULL,
		CHECK ((scope = 'all') = (subject = '')),
		UNIQUE (scope, subject, position)
	) STRICT`,

	// 3: bans, enforced by package guard from an in-memory index loaded at start. kind says
	// which client field value is matched against: exactly (clientid, username), as an
	// address or CIDR block in canonical form (peerhost), or as an RE2 pattern (clientid_re,
	// username_re). until NULL means the ban never ends. Times are Unix milliseconds. The
	// partial index serves the periodic deletion of expired bans.
	`CREATE TABLE bans (
		id INTEGER PRIMARY KEY,
		kind TEXT NOT NULL CHECK (kind IN ('clientid', 'username', 'peerhost', 'clientid_re', 'username_re')),
		value TEXT NOT NULL CHECK (length(value) > 0),
		reason TEXT NOT NULL DEFAULT '',
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		until INTEGER,
		UNIQUE (kind, value)
	) STRICT;
	CREATE INDEX bans_until ON bans (until) WHERE until IS NOT NULL`,
}

// SchemaVersion is the schema version this package writes.
const SchemaVersion = len(migrations)

// migrate applies the missing migrations in one transaction. BEGIN IMMEDIATE makes two
// processes opening the same new file take turns: the second sees the first's work.
func (db *DB) migrate(ctx context.Context) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			applied_at INTEGER NOT NULL
		) STRICT`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return err
		}
		if current > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this binary's %d: run a newer rampart, or restore a backup", current, SchemaVersion)
		}
		now := time.Now().UnixMilli()
		for v := current + 1; v <= SchemaVersion; v++ {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", v, now); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("controldb: migrate %s: %w", db.path, err)
	}
	return nil
}

// Version returns the schema version recorded in the database.
func (db *DB) Version(ctx context.Context) (int, error) {
	var v int
	if err := db.sql.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("controldb: schema version: %w", err)
	}
	return v, nil
}
