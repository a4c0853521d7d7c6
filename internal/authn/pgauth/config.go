package pgauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Config configures the postgresql password authenticator. Key names in comments are the
// proposed YAML keys of an authentication entry with mechanism password_based and backend
// postgresql (EMQX's where EMQX has one).
type Config struct {
	// Backend is the server and pool; its keys (server, database, username, password,
	// pool_size, connect_timeout, query_timeout, acquire_timeout, ssl, allow_plaintext, or
	// dsn) sit at the entry's top level.
	Backend postgres.Config
	// Query selects the user. Each ${...} placeholder becomes a bound parameter ($1,
	// $2, ...), never SQL text. The columns are found by name: password_hash (required),
	// salt and is_superuser (optional). Only the first row is used. (query)
	Query string
	// PasswordHashAlgorithm says how password_hash (and salt) are stored.
	// (password_hash_algorithm)
	PasswordHashAlgorithm HashAlgorithm
	// OnError is what a failed query means: "deny" (default: the client is refused with
	// Server unavailable) or "ignore" (the next authenticator decides). (on_error)
	OnError string
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
	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"

	// EncodedHash is the HashAlgorithm name for hashes in Rampart's encoded form.
	EncodedHash = "rampart"

	colHash      = "password_hash"
	colSalt      = "salt"
	colSuperuser = "is_superuser"
)

// settings is a validated configuration.
type settings struct {
	query   *postgres.Query
	params  *password.Params // nil: password_hash is in the encoded form
	noSalt  bool             // salt_position disable: the salt column is not used
	ignore  bool
	onError string
}

// Validate checks the configuration without connecting; errors name the key.
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c Config) settings() (*settings, error) {
	s := &settings{onError: OnErrorDeny}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		s.ignore, s.onError = true, OnErrorIgnore
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	if c.Query == "" {
		return nil, errors.New("query: required, e.g. SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1")
	}
	q, err := postgres.CompileQuery(c.Query, placeholder.Options{})
	if err != nil {
		return nil, err
	}
	if !q.HasVars() {
		return nil, errors.New("query: no placeholder: every client would get the same row; select by ${username} or ${clientid}")
	}
	s.query = q
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
