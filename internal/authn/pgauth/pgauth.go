// Package pgauth authenticates clients against users kept in a PostgreSQL table
// (mechanism password_based, backend postgresql). A configured query selects the user's
// stored password hash, optional salt and superuser flag; its ${...} placeholders are sent
// as bound parameters, so a user name such as "' OR '1'='1" is only ever compared as text.
//
// A CONNECT without a password, or for which the query returns no row, is not this
// authenticator's to decide (Ignore). A wrong password is Deny (Bad user name or
// password); a right one is Allow, superuser when is_superuser says so. A failed or
// timed-out query, an unusable row or a stored hash that does not parse deny with Server
// unavailable, or Ignore with on_error: ignore. Each CONNECT queries the server: deleting
// a user's row refuses that user's next connection.
package pgauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the authenticator's name in logs and metrics.
const Name = "password_based:postgresql"

// Authenticator checks passwords against a PostgreSQL table. It is safe for concurrent
// use.
type Authenticator struct {
	s      *settings
	pool   *postgres.Pool
	hasher *password.Hasher
	log    *slog.Logger
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates cfg and builds the authenticator with its own connection pool (which
// connects on first use). hasher bounds the CPU spent verifying hashes and is shared with
// the broker's other password authenticators; nil makes one of its own. Close releases
// the pool.
func New(ctx context.Context, cfg Config, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("postgresql authn: %w", err)
	}
	if hasher == nil {
		if hasher, err = password.NewHasher(password.Params{}, 0); err != nil {
			return nil, fmt.Errorf("postgresql authn: %w", err)
		}
	}
	pool, err := postgres.New(ctx, cfg.Backend)
	if err != nil {
		return nil, fmt.Errorf("postgresql authn: %w", err)
	}
	log.Info("postgresql authenticator ready", "server", pool.Target(), "query", s.query.String(),
		"query_timeout", pool.QueryTimeout(), "on_error", s.onError)
	return &Authenticator{s: s, pool: pool, hasher: hasher, log: log}, nil
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Name }

// Close closes the connections to the server.
func (a *Authenticator) Close() { a.pool.Close() }

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if cred == nil || !cred.HasPassword() {
		return authn.Ignored("no password")
	}
	if info == nil {
		info = &clientinfo.Info{}
	}
	rows, err := a.pool.Query(ctx, a.s.query, placeholder.Values{Info: info, Password: cred.Password}, 1)
	if err != nil {
		return a.fail(info, "query failed: %v", err)
	}
	if len(rows.Values) == 0 {
		return authn.Ignored("no such user in postgresql")
	}
	hashCol, saltCol, suCol := rows.Column(colHash), rows.Column(colSalt), rows.Column(colSuperuser)
	if hashCol < 0 {
		return a.fail(info, "the query returns no %s column (columns: %s)", colHash, strings.Join(rows.Columns, ", "))
	}
	row := rows.Values[0]
	hash, ok := postgres.Text(row[hashCol])
	if !ok || hash == "" {
		return a.fail(info, "%s is NULL, empty or not text", colHash)
	}
	salt := ""
	if saltCol >= 0 && !a.s.noSalt {
		salt, _ = postgres.Text(row[saltCol]) // NULL: no salt
	}
	encoded := hash
	if a.s.params != nil {
		if encoded, err = password.FromEMQX(*a.s.params, hash, salt); err != nil {
			return a.fail(info, "stored hash: %v", err)
		}
	}
	match, err := a.hasher.Verify(ctx, encoded, cred.Password)
	switch {
	case errors.Is(err, password.ErrMalformed):
		return a.fail(info, "stored hash: %v", err)
	case err != nil:
		return a.fail(info, "verifying the password: %v", err)
	case !match:
		return authn.Denied(packet.BadUserNameOrPassword, "wrong password")
	}
	res := authn.Allowed()
	if suCol >= 0 {
		res.Superuser = truthy(row[suCol])
	}
	res.Detail = "password matches the postgresql user"
	return res
}

// fail is the answer to a backend or data error: Deny with Server unavailable, or Ignore.
func (a *Authenticator) fail(info *clientinfo.Info, format string, args ...any) authn.Result {
	detail := fmt.Sprintf(format, args...)
	a.log.Warn("postgresql authentication failed", "client", info.ClientID, "err", detail, "on_error", a.s.onError)
	if a.s.ignore {
		return authn.Ignored(detail)
	}
	return authn.Denied(packet.ServerUnavailable, detail)
}

// truthy reads is_superuser: true, a non-zero integer, or the text true/t/1/yes/on. Every
// other value, NULL included, is false.
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int16:
		return x != 0
	case int32:
		return x != 0
	case int64:
		return x != 0
	}
	s, ok := postgres.Text(v)
	if !ok {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "1", "yes", "on":
		return true
	}
	return false
}
