package sqlauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Config configures the SQL password authenticator. Key names in comments are the
// proposed YAML keys of an authentication entry with mechanism password_based and backend
// postgresql or mysql (EMQX's where EMQX has one). The connector's keys (server, database,
// username, password, pool_size, connect_timeout, request_timeout (as QueryTimeout), ssl,
// allow_plaintext) and the query (query) sit at the same level; the connector compiles the
// query (see QueryOptions) and hands it over as a Querier.
type Config struct {
	// Backend names the connector in logs, details and metrics: PostgreSQL or MySQL.
	// (backend)
	Backend string
	// PasswordHashAlgorithm says how password_hash (and salt) are stored.
	// (password_hash_algorithm)
	PasswordHashAlgorithm HashAlgorithm
	// OnError is what a failed query means: "deny" (default: the client is refused with
	// Server unavailable, or Server busy when every pooled connection stayed busy) or
	// "ignore" (the next authenticator decides). (on_error)
	OnError string
}

// Statement is a configured query as a connector compiled it (postgres.Query,
// mysql.Query): every ${...} placeholder is a bound parameter, never SQL text. The
// columns of its answer are found by name: password_hash (required), salt and
// is_superuser (optional), and username (optional: when present, it must equal the
// client's user name byte for byte). Only the first row is used.
type Statement interface {
	// String returns the query as configured.
	String() string
	// HasVars reports whether the query uses any placeholder.
	HasVars() bool
}

// Querier is a compiled query bound to a connection pool (postgres.Statement,
// mysql.Statement).
type Querier interface {
	Statement
	// Query runs the query with its placeholders bound to vals and reads at most maxRows
	// rows. An error wrapping health.ErrBusy says the pool stayed saturated.
	Query(ctx context.Context, vals placeholder.Values, maxRows int) (*sqlrows.Rows, error)
	// Target names the server and database for logs, without credentials.
	Target() string
	// Close releases the pool when the querier has its own (postgres.Open, mysql.Open);
	// a querier on a shared pool (Pool.Bind) leaves it open.
	Close()
}

// HashAlgorithm is EMQX's password_hash_algorithm for a database backend.
type HashAlgorithm struct {
	// Name is bcrypt, pbkdf2, sha256 or sha512 (EMQX's layouts: hex digest in
	// password_hash, raw salt in salt), or "" / "rampart" when password_hash holds a
	// hash in Rampart's own encoded form (argon2id, bcrypt, pbkdf2, as `rampart passwd`
	// writes it; salt is then ignored). plain, md5 and sha are refused. (name)
	Name string
	// MacFun is pbkdf2's digest: sha256 (default) or sha512. (mac_fun)
	MacFun string
	// Iterations is pbkdf2's iteration count; required for pbkdf2. (iterations)
	Iterations int
	// SaltPosition is prefix (default), suffix or disable, for sha256 and sha512.
	// (salt_position)
	SaltPosition string
}

// Values.
const (
	PostgreSQL = "postgresql"
	MySQL      = "mysql"

	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"

	// EncodedHash is the HashAlgorithm name for hashes in Rampart's encoded form.
	EncodedHash = "rampart"

	colHash      = "password_hash"
	colSalt      = "salt"
	colSuperuser = "is_superuser"
	colUsername  = "username"
)

// QueryOptions are the placeholder rules a connector compiles the query with: every
// variable is known, ${password} included (a query may compare it, e.g. with a function
// of the server, although a stored hash verified here is the better design).
func QueryOptions() placeholder.Options { return placeholder.Options{} }

// settings is a validated configuration.
type settings struct {
	backend string
	params  *password.Params // nil: password_hash is in the encoded form
	noSalt  bool             // salt_position disable: the salt column is not used
	ignore  bool
	onError string
}

// Validate checks the configuration and the compiled query without connecting; errors
// name the key. q nil means no query was configured.
func (c Config) Validate(q Statement) error {
	_, err := c.settings(q)
	return err
}

func (c Config) settings(q Statement) (*settings, error) {
	s := &settings{backend: c.Backend, onError: OnErrorDeny}
	if c.Backend != PostgreSQL && c.Backend != MySQL {
		return nil, fmt.Errorf("backend: %q: want %s or %s", c.Backend, PostgreSQL, MySQL)
	}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		s.ignore, s.onError = true, OnErrorIgnore
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	if q == nil || strings.TrimSpace(q.String()) == "" {
		return nil, errors.New("query: required, e.g. SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1")
	}
	if !q.HasVars() {
		return nil, errors.New("query: no placeholder: every client would get the same row; select by ${username} or ${clientid}")
	}
	p, err := c.PasswordHashAlgorithm.params()
	if err != nil {
		return nil, fmt.Errorf("password_hash_algorithm: %w", err)
	}
	s.params = p
	s.noSalt = strings.EqualFold(c.PasswordHashAlgorithm.SaltPosition, "disable")
	return s, nil
}

// params maps the EMQX-style algorithm onto password.Params for FromEMQX.
func (h HashAlgorithm) params() (*password.Params, error) {
	switch strings.ToLower(h.Name) {
	case "", EncodedHash:
		return nil, nil
	case "plain", "md5", "sha":
		return nil, fmt.Errorf("name: %q is refused: stored passwords must be salted hashes", h.Name)
	}
	alg, err := password.ParseEMQXAlgorithm(strings.ToLower(h.Name), strings.ToLower(h.MacFun))
	if err != nil {
		return nil, err
	}
	p := password.Params{Algorithm: alg}
	switch alg {
	case password.SHA256, password.SHA512:
		switch strings.ToLower(h.SaltPosition) {
		case "", "prefix", "disable":
			p.SaltPosition = password.Prefix
		case "suffix":
			p.SaltPosition = password.Suffix
		default:
			return nil, fmt.Errorf("salt_position: %q: want prefix, suffix or disable", h.SaltPosition)
		}
	case password.PBKDF2SHA256, password.PBKDF2SHA512:
		if h.Iterations < 1 {
			return nil, errors.New("iterations: required for pbkdf2 (the count the hashes were made with)")
		}
		p.Iterations = h.Iterations
	case password.Bcrypt:
	default:
		return nil, fmt.Errorf("name: %q: the hash and salt columns cannot hold it; store Rampart's encoded form and leave name empty", h.Name)
	}
	return &p, nil
}
