// Package sqlauth authenticates clients against users kept in a SQL table (mechanism
// password_based, backend postgresql or mysql). A configured query selects the user's
// stored password hash, optional salt and superuser flag; its ${...} placeholders are sent
// as bound parameters, so a user name such as "' OR '1'='1" is only ever compared as text.
// The package knows no database: a connector (internal/backend/postgres,
// internal/backend/mysql) compiles the query and runs it, as a Querier.
//
// A CONNECT without a password, or for which the query returns no row, is not this
// authenticator's to decide (Ignore). A wrong password is Deny (Bad user name or
// password); a right one is Allow, superuser when is_superuser says so. A failed or
// timed-out query, an unusable row or a stored hash that does not parse deny with Server
// unavailable (Server busy when every pooled connection stayed busy for the whole wait for
// one), or Ignore with on_error: ignore. Each CONNECT queries the server: deleting a
// user's row refuses that user's next connection.
//
// The server compares the user name as its column says. MySQL and MariaDB compare text
// in the column's collation, by default case-insensitive and ignoring trailing spaces:
// "ALICE " then finds alice's row (and, with alice's password, logs in as a client whose
// ${username} is "ALICE "). Declare the column with a binary collation (utf8mb4_bin),
// compare with one in the query, or select the username column too: when the query
// returns a column named username, a row whose value is not byte for byte the client's
// user name is treated as no row.
package sqlauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Authenticator checks passwords against a SQL table. It is safe for concurrent use.
type Authenticator struct {
	s      *settings
	q      Querier
	name   string
	hasher *password.Hasher
	log    *slog.Logger
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates cfg and q and builds the authenticator on q, which it takes over: Close
// closes it, and so does New when it fails. hasher bounds the CPU spent verifying hashes
// and is shared with the broker's other password authenticators; nil makes one of its
// own.
func New(cfg Config, q Querier, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if q == nil {
		return nil, fmt.Errorf("%s authn: query: required", cfg.Backend)
	}
	s, err := cfg.settings(q)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("%s authn: %w", cfg.Backend, err)
	}
	if hasher == nil {
		if hasher, err = password.NewHasher(password.Params{}, 0); err != nil {
			q.Close()
			return nil, fmt.Errorf("%s authn: %w", cfg.Backend, err)
		}
	}
	log.Info(s.backend+" authenticator ready", "server", q.Target(), "query", q.String(), "on_error", s.onError)
	return &Authenticator{s: s, q: q, name: "password_based:" + s.backend, hasher: hasher, log: log}, nil
}

// Name implements authn.Authenticator: password_based:postgresql or password_based:mysql.
func (a *Authenticator) Name() string { return a.name }

// Close closes the connections to the server.
func (a *Authenticator) Close() { a.q.Close() }

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if cred == nil || !cred.HasPassword() {
		return authn.Ignored("no password")
	}
	if info == nil {
		info = &clientinfo.Info{}
	}
	rows, err := a.q.Query(ctx, placeholder.Values{Info: info, Password: cred.Password}, 1)
	if err != nil {
		reason := packet.ServerUnavailable
		if errors.Is(err, health.ErrBusy) {
			reason = packet.ServerBusy
		}
		return a.fail(info, reason, "query failed: %v", err)
	}
	if len(rows.Values) == 0 {
		return authn.Ignored("no such user in " + a.s.backend)
	}
	hashCol, saltCol, suCol := rows.Column(colHash), rows.Column(colSalt), rows.Column(colSuperuser)
	if userCol := rows.Column(colUsername); userCol >= 0 {
		// The database found the row by its collation, which may fold case and spaces
		// (MySQL's defaults do): a row whose user name is not byte for byte the client's
		// belongs to another spelling, so it is no such user.
		if name, ok := sqlrows.Text(rows.Values[0][userCol]); !ok || name != info.Username {
			return authn.Ignored("no such user in " + a.s.backend + " (a row matched only under the database's collation)")
		}
	}
	if hashCol < 0 {
		return a.fail(info, packet.ServerUnavailable, "the query returns no %s column (columns: %s)", colHash, strings.Join(rows.Columns, ", "))
	}
	row := rows.Values[0]
	hash, ok := sqlrows.Text(row[hashCol])
	if !ok || hash == "" {
		return a.fail(info, packet.ServerUnavailable, "%s is NULL, empty or not text", colHash)
	}
	salt := ""
	if saltCol >= 0 && !a.s.noSalt {
		salt, _ = sqlrows.Text(row[saltCol]) // NULL: no salt
	}
	encoded := hash
	if a.s.params != nil {
		if encoded, err = password.FromEMQX(*a.s.params, hash, salt); err != nil {
			return a.fail(info, packet.ServerUnavailable, "stored hash: %v", err)
		}
	}
	match, err := a.hasher.Verify(ctx, encoded, cred.Password)
	switch {
	case errors.Is(err, password.ErrMalformed):
		return a.fail(info, packet.ServerUnavailable, "stored hash: %v", err)
	case err != nil:
		return a.fail(info, packet.ServerUnavailable, "verifying the password: %v", err)
	case !match:
		return authn.Denied(packet.BadUserNameOrPassword, "wrong password")
	}
	res := authn.Allowed()
	if suCol >= 0 {
		res.Superuser = sqlrows.Truthy(row[suCol])
	}
	res.Detail = "password matches the " + a.s.backend + " user"
	return res
}

// fail is the answer to a backend or data error: Deny with reason, or Ignore.
func (a *Authenticator) fail(info *clientinfo.Info, reason packet.ReasonCode, format string, args ...any) authn.Result {
	detail := fmt.Sprintf(format, args...)
	a.log.Warn(a.s.backend+" authentication failed", "client", info.ClientID, "err", detail, "on_error", a.s.onError)
	if a.s.ignore {
		return authn.Ignored(detail)
	}
	return authn.Denied(reason, detail)
}
