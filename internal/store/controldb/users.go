package controldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// IDType says which CONNECT field identifies a built-in database user.
type IDType string

// The user id types (EMQX's user_id_type).
const (
	Username IDType = "username"
	ClientID IDType = "clientid"
)

// Valid reports whether t is one of the id types.
func (t IDType) Valid() bool { return t == Username || t == ClientID }

// maxUserIDLen is the longest MQTT string, hence the longest username or client id.
const maxUserIDLen = 65535

// SCRAM is a user's stored SCRAM credential for one hash function (RFC 5802 §3): enough
// to check a client's proof and prove the server, not enough to log in as the user.
type SCRAM struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// User is a user of the built-in database. PasswordHash is an encoded hash of package
// password, or empty when the user has only SCRAM credentials.
type User struct {
	IDType       IDType
	ID           string
	PasswordHash string
	Superuser    bool
	SCRAMSHA256  *SCRAM
	SCRAMSHA512  *SCRAM
	// CreatedAt and UpdatedAt are set by the store (millisecond precision).
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (u *User) validate() error {
	if !u.IDType.Valid() {
		return fmt.Errorf("user id type %q is neither username nor clientid", u.IDType)
	}
	if u.ID == "" || len(u.ID) > maxUserIDLen || !utf8.ValidString(u.ID) {
		return errors.New("user id must be 1 to 65535 bytes of UTF-8")
	}
	if u.PasswordHash == "" && u.SCRAMSHA256 == nil && u.SCRAMSHA512 == nil {
		return errors.New("user has neither a password hash nor SCRAM credentials")
	}
	for _, s := range []*SCRAM{u.SCRAMSHA256, u.SCRAMSHA512} {
		if s != nil && (len(s.Salt) == 0 || s.Iterations <= 0 || len(s.StoredKey) == 0 || len(s.ServerKey) == 0) {
			return errors.New("incomplete SCRAM credentials")
		}
	}
	return nil
}

// Users is the repository of built-in database users. It is safe for concurrent use.
type Users struct {
	db *DB
}

const userColumns = `user_id_type, user_id, password_hash, is_superuser,
	scram_sha256_salt, scram_sha256_iterations, scram_sha256_stored_key, scram_sha256_server_key,
	scram_sha512_salt, scram_sha512_iterations, scram_sha512_stored_key, scram_sha512_server_key,
	created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner) (User, error) {
	var (
		u            User
		super        int64
		created, upd int64
		s256, s512   scramCols
	)
	err := s.Scan(&u.IDType, &u.ID, &u.PasswordHash, &super,
		&s256.salt, &s256.iters, &s256.stored, &s256.server,
		&s512.salt, &s512.iters, &s512.stored, &s512.server,
		&created, &upd)
	if err != nil {
		return User{}, err
	}
	u.Superuser = super != 0
	u.SCRAMSHA256 = s256.value()
	u.SCRAMSHA512 = s512.value()
	u.CreatedAt = time.UnixMilli(created)
	u.UpdatedAt = time.UnixMilli(upd)
	return u, nil
}

// scramCols are the four nullable columns of one SCRAM credential.
type scramCols struct {
	salt, stored, server []byte
	iters                sql.NullInt64
}

func (c scramCols) value() *SCRAM {
	if !c.iters.Valid {
		return nil
	}
	return &SCRAM{Salt: c.salt, Iterations: int(c.iters.Int64), StoredKey: c.stored, ServerKey: c.server}
}

// scramArgs returns the four column values of s (all NULL for nil).
func scramArgs(s *SCRAM) []any {
	if s == nil {
		return []any{nil, nil, nil, nil}
	}
	return []any{s.Salt, int64(s.Iterations), s.StoredKey, s.ServerKey}
}

func userArgs(u *User, now int64) []any {
	super := 0
	if u.Superuser {
		super = 1
	}
	args := []any{string(u.IDType), u.ID, u.PasswordHash, super}
	args = append(args, scramArgs(u.SCRAMSHA256)...)
	args = append(args, scramArgs(u.SCRAMSHA512)...)
	return append(args, now, now)
}

const insertUser = `INSERT INTO users (` + userColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Get returns the user, or an error wrapping ErrNotFound.
func (r *Users) Get(ctx context.Context, idType IDType, id string) (User, error) {
	row := r.db.sql.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE user_id_type = ? AND user_id = ?`,
		string(idType), id)
	u, err := scanUser(row)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("controldb: user %s %q: %w", idType, id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("controldb: get user %s %q: %w", idType, id, err)
	}
	return u, nil
}

// Create inserts a new user, or returns an error wrapping ErrExists.
func (r *Users) Create(ctx context.Context, u User) error {
	if err := u.validate(); err != nil {
		return fmt.Errorf("controldb: create user: %w", err)
	}
	_, err := r.db.sql.ExecContext(ctx, insertUser, userArgs(&u, time.Now().UnixMilli())...)
	if isPrimaryKey(err) {
		return fmt.Errorf("controldb: user %s %q: %w", u.IDType, u.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("controldb: create user %s %q: %w", u.IDType, u.ID, err)
	}
	return nil
}

// Put inserts the user or replaces an existing one's credentials and superuser flag (its
// CreatedAt stays).
func (r *Users) Put(ctx context.Context, u User) error {
	if err := u.validate(); err != nil {
		return fmt.Errorf("controldb: put user: %w", err)
	}
	_, err := r.db.sql.ExecContext(ctx, insertUser+` ON CONFLICT (user_id_type, user_id) DO UPDATE SET
		password_hash = excluded.password_hash, is_superuser = excluded.is_superuser,
		scram_sha256_salt = excluded.scram_sha256_salt, scram_sha256_iterations = excluded.scram_sha256_iterations,
		scram_sha256_stored_key = excluded.scram_sha256_stored_key, scram_sha256_server_key = excluded.scram_sha256_server_key,
		scram_sha512_salt = excluded.scram_sha512_salt, scram_sha512_iterations = excluded.scram_sha512_iterations,
		scram_sha512_stored_key = excluded.scram_sha512_stored_key, scram_sha512_server_key = excluded.scram_sha512_server_key,
		updated_at = excluded.updated_at`, userArgs(&u, time.Now().UnixMilli())...)
	if err != nil {
		return fmt.Errorf("controldb: put user %s %q: %w", u.IDType, u.ID, err)
	}
	return nil
}

// InsertMissing inserts, in one transaction, those of users that do not exist yet, and
// leaves existing ones untouched. It returns the users it inserted. Either every missing
// user is inserted or, on error, none is.
func (r *Users) InsertMissing(ctx context.Context, users []User) ([]User, error) {
	for i := range users {
		if err := users[i].validate(); err != nil {
			return nil, fmt.Errorf("controldb: insert user %q: %w", users[i].ID, err)
		}
	}
	var inserted []User
	now := time.Now().UnixMilli()
	err := r.db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertUser+` ON CONFLICT (user_id_type, user_id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range users {
			res, err := stmt.ExecContext(ctx, userArgs(&users[i], now)...)
			if err != nil {
				return fmt.Errorf("user %s %q: %w", users[i].IDType, users[i].ID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				u := users[i]
				u.CreatedAt, u.UpdatedAt = time.UnixMilli(now), time.UnixMilli(now)
				inserted = append(inserted, u)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("controldb: insert users: %w", err)
	}
	return inserted, nil
}

// SwapPasswordHash replaces the user's password hash with newHash only if it is still
// oldHash, and reports whether it did. A concurrent password change therefore wins over a
// re-hash computed from the old password.
func (r *Users) SwapPasswordHash(ctx context.Context, idType IDType, id, oldHash, newHash string) (bool, error) {
	if newHash == "" {
		return false, errors.New("controldb: swap password hash: empty hash")
	}
	res, err := r.db.sql.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ?
		WHERE user_id_type = ? AND user_id = ? AND password_hash = ?`,
		newHash, time.Now().UnixMilli(), string(idType), id, oldHash)
	if err != nil {
		return false, fmt.Errorf("controldb: swap password hash of %s %q: %w", idType, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("controldb: swap password hash of %s %q: %w", idType, id, err)
	}
	return n == 1, nil
}

// Delete removes the user, or returns an error wrapping ErrNotFound.
func (r *Users) Delete(ctx context.Context, idType IDType, id string) error {
	res, err := r.db.sql.ExecContext(ctx, `DELETE FROM users WHERE user_id_type = ? AND user_id = ?`, string(idType), id)
	if err != nil {
		return fmt.Errorf("controldb: delete user %s %q: %w", idType, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("controldb: delete user %s %q: %w", idType, id, err)
	}
	if n == 0 {
		return fmt.Errorf("controldb: user %s %q: %w", idType, id, ErrNotFound)
	}
	return nil
}

// Page limits.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// List returns up to limit users of idType whose id sorts after the cursor after ("" for
// the first page), in id order, and the cursor of the next page ("" after the last).
// limit <= 0 means DefaultPageSize; more than MaxPageSize is capped.
func (r *Users) List(ctx context.Context, idType IDType, after string, limit int) (users []User, next string, err error) {
	if !idType.Valid() {
		return nil, "", fmt.Errorf("controldb: list users: id type %q is neither username nor clientid", idType)
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	users, err = r.page(ctx, idType, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("controldb: list users: %w", err)
	}
	if len(users) > limit {
		users = users[:limit]
		next = users[limit-1].ID
	}
	return users, next, nil
}

func (r *Users) page(ctx context.Context, idType IDType, after string, limit int) ([]User, error) {
	rows, err := r.db.sql.QueryContext(ctx, `SELECT `+userColumns+` FROM users
		WHERE user_id_type = ? AND user_id > ? ORDER BY user_id LIMIT ?`, string(idType), after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// forEachPage is how many users ForEach reads per query; it holds no read transaction
// open while fn runs on a page.
const forEachPage = 500

// ForEach calls fn for every user of idType in id order, stopping at fn's first error,
// which it returns. Users written while ForEach runs may or may not be seen.
func (r *Users) ForEach(ctx context.Context, idType IDType, fn func(User) error) error {
	if !idType.Valid() {
		return fmt.Errorf("controldb: users: id type %q is neither username nor clientid", idType)
	}
	after := ""
	for {
		users, err := r.page(ctx, idType, after, forEachPage)
		if err != nil {
			return fmt.Errorf("controldb: iterate users: %w", err)
		}
		for _, u := range users {
			if err := fn(u); err != nil {
				return err
			}
		}
		if len(users) < forEachPage {
			return nil
		}
		after = users[len(users)-1].ID
	}
}

// Count returns the number of users of idType.
func (r *Users) Count(ctx context.Context, idType IDType) (int, error) {
	var n int
	err := r.db.sql.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE user_id_type = ?`, string(idType)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("controldb: count users: %w", err)
	}
	return n, nil
}
