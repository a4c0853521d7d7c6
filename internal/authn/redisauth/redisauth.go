// Package redisauth authenticates clients against user records kept in Redis hashes, the
// way EMQX's password_based:redis authenticator does: a configured HMGET (or HGET) command
// reads the stored password hash, its salt and the superuser flag of the connecting user.
// The command is a template split into arguments at load time; placeholders expand inside
// their own argument, so nothing a client sends can add arguments or commands. A backend
// failure denies unless the authenticator is configured to ignore errors.
package redisauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/redis"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the authenticator's name in logs and metrics.
const Name = "password_based:redis"

// Field names a command may read (EMQX's). "password" is accepted for "password_hash".
const (
	FieldPasswordHash = "password_hash"
	FieldPassword     = "password"
	FieldSalt         = "salt"
	FieldSuperuser    = "is_superuser"
)

// on_error values.
const (
	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"
)

// Config configures the authenticator (proposed YAML keys in parentheses). The Redis
// connection keys sit beside these in the authenticator's YAML map.
type Config struct {
	// Redis is the server to ask (redis_type, server, servers, sentinel, username,
	// password, sentinel_username, sentinel_password, database, pool_size,
	// connect_timeout, command_timeout, ssl, allow_plaintext). New connects with it;
	// NewWith is given a client instead and ignores it.
	Redis redis.Config
	// Cmd is the command template (cmd), e.g.
	// "HMGET mqtt_user:${username} password_hash salt is_superuser". Only HMGET and HGET
	// are allowed; the field names after the key say which value is which. HGET reads
	// one field, the password hash.
	Cmd string
	// PasswordHashAlgorithm says how the stored hash was made (password_hash_algorithm).
	PasswordHashAlgorithm HashAlgorithm
	// OnError is what a backend failure means: "deny" (default) or "ignore" (on_error).
	OnError string
}

// HashAlgorithm is EMQX's password_hash_algorithm block.
type HashAlgorithm struct {
	// Name (name): bcrypt, pbkdf2, sha256, sha512 for hashes stored as EMQX stores them
	// (hex digest in password_hash, salt in its own field); argon2id, or rampart, for
	// hashes in Rampart's self-describing encoding (any algorithm it supports).
	Name string
	// MacFun is pbkdf2's digest, sha256 (default) or sha512 (mac_fun).
	MacFun string
	// SaltPosition is where sha256/sha512 put the salt: prefix (default), suffix, or
	// disable (no salt) (salt_position).
	SaltPosition string
	// Iterations is pbkdf2's iteration count, required with pbkdf2 (iterations).
	Iterations int
}

// Authenticator checks passwords against Redis. It is safe for concurrent use.
type Authenticator struct {
	rdb       *redis.Client
	ownsRDB   bool // Close closes rdb (New); false when it is shared (NewWith)
	cmd       *redis.Command
	hashIdx   int // index of the password hash in the reply
	saltIdx   int // -1: none
	superIdx  int // -1: none
	native    bool
	params    password.Params
	noSalt    bool
	hasher    *password.Hasher
	ignoreErr bool
	log       *slog.Logger
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates cfg and builds the authenticator with a Redis client of its own, made
// from cfg.Redis. hasher verifies the stored hashes and bounds the CPU spent doing so
// (share the broker's). The connection to Redis is opened on the first CONNECT; Close
// releases it.
func New(cfg Config, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	a, err := build(cfg, hasher, log)
	if err != nil {
		return nil, err
	}
	rdb, err := redis.New(cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("redis authn: %w", err)
	}
	a.rdb, a.ownsRDB = rdb, true
	a.ready(cfg.OnError)
	return a, nil
}

// NewWith validates cfg and builds the authenticator on rdb, a client it shares with
// others (an authorization source on the same server, say): cfg.Redis is not used, and
// Close leaves rdb open for whoever made it to close. hasher is as for New.
func NewWith(cfg Config, rdb *redis.Client, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	if rdb == nil {
		return nil, errors.New("redis authn: no Redis client")
	}
	a, err := build(cfg, hasher, log)
	if err != nil {
		return nil, err
	}
	a.rdb = rdb
	a.ready(cfg.OnError)
	return a, nil
}

// build checks everything of cfg but the connection.
func build(cfg Config, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if hasher == nil {
		return nil, errors.New("redis authn: no password hasher")
	}
	a := &Authenticator{hasher: hasher, log: log, saltIdx: -1, superIdx: -1, hashIdx: -1}
	switch cfg.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		a.ignoreErr = true
	default:
		return nil, fmt.Errorf("redis authn: on_error %q: want deny or ignore", cfg.OnError)
	}
	if err := a.setCommand(cfg.Cmd); err != nil {
		return nil, fmt.Errorf("redis authn: %w", err)
	}
	if err := a.setAlgorithm(cfg.PasswordHashAlgorithm); err != nil {
		return nil, fmt.Errorf("redis authn: password_hash_algorithm: %w", err)
	}
	return a, nil
}

// ready logs the authenticator's settings once its client is set.
func (a *Authenticator) ready(onError string) {
	if a.rdb.Insecure() {
		a.log.Warn("redis authn: plain-text connection to a non-loopback server; configure ssl", "server", a.rdb.Addr())
	}
	a.log.Info("redis authenticator ready", "server", a.rdb.Addr(), "cmd", a.cmd.String(), "on_error", onError)
}

func (a *Authenticator) setCommand(s string) error {
	cmd, err := redis.ParseCommand(s, []string{"HMGET", "HGET"}, placeholder.Options{NoPassword: true})
	if err != nil {
		return err
	}
	fields := cmd.Fields()
	if cmd.Name() == "HGET" && len(fields) != 1 {
		return fmt.Errorf("cmd %q: HGET reads exactly one field, the password hash", s)
	}
	if len(fields) == 0 {
		return fmt.Errorf("cmd %q: no fields", s)
	}
	seen := map[string]bool{}
	for i, f := range fields {
		name := strings.ToLower(f)
		if seen[name] {
			return fmt.Errorf("cmd %q: field %q twice", s, f)
		}
		seen[name] = true
		switch name {
		case FieldPasswordHash, FieldPassword:
			if a.hashIdx >= 0 {
				return fmt.Errorf("cmd %q: both password and password_hash", s)
			}
			a.hashIdx = i
		case FieldSalt:
			a.saltIdx = i
		case FieldSuperuser:
			a.superIdx = i
		default:
			return fmt.Errorf("cmd %q: unknown field %q (want password_hash, salt, is_superuser)", s, f)
		}
	}
	if a.hashIdx < 0 {
		return fmt.Errorf("cmd %q: reads no password_hash field", s)
	}
	a.cmd = cmd
	return nil
}

func (a *Authenticator) setAlgorithm(h HashAlgorithm) error {
	switch strings.ToLower(h.Name) {
	case "":
		return errors.New("name is required (bcrypt, pbkdf2, sha256, sha512, argon2id)")
	case "plain":
		return errors.New("plain-text passwords are not supported; store a hash")
	case "argon2id", "rampart":
		a.native = true
		return nil
	}
	alg, err := password.ParseEMQXAlgorithm(strings.ToLower(h.Name), strings.ToLower(h.MacFun))
	if err != nil {
		return err
	}
	p := password.Params{Algorithm: alg, Iterations: h.Iterations}
	switch alg {
	case password.SHA256, password.SHA512:
		switch strings.ToLower(h.SaltPosition) {
		case "", "prefix":
			p.SaltPosition = password.Prefix
		case "suffix":
			p.SaltPosition = password.Suffix
		case "disable":
			p.SaltPosition, a.noSalt = password.Prefix, true
		default:
			return fmt.Errorf("salt_position %q: want prefix, suffix or disable", h.SaltPosition)
		}
	case password.PBKDF2SHA256, password.PBKDF2SHA512:
		if h.Iterations <= 0 {
			return errors.New("pbkdf2 needs iterations (the count the hashes were made with)")
		}
	}
	if (alg == password.SHA256 || alg == password.SHA512) && !a.noSalt && a.saltIdx < 0 {
		return fmt.Errorf("%s with salt_position %s needs the salt field in cmd", alg, p.SaltPosition)
	}
	a.params = p
	return nil
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Name }

// Close closes the connections to Redis when the client is the authenticator's own
// (New); a shared client (NewWith) stays open.
func (a *Authenticator) Close() error {
	if !a.ownsRDB {
		return nil
	}
	return a.rdb.Close()
}

// Authenticate implements authn.Authenticator. No password, or no value for the key's
// placeholders, is Ignore; no record is Ignore; a wrong password is Deny with
// BadUserNameOrPassword; a backend failure is Deny with ServerUnavailable, or ServerBusy
// when every pooled connection stayed busy (Ignore with on_error ignore).
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if cred == nil || !cred.HasPassword() {
		return authn.Ignored("redis: no password")
	}
	args, ok := a.cmd.Args(placeholder.Values{Info: info})
	if !ok {
		return authn.Ignored("redis: a placeholder of the key has no value for this client")
	}
	reply, err := a.rdb.Do(ctx, args...)
	if err != nil {
		if errors.Is(err, health.ErrBusy) {
			return a.fail(packet.ServerBusy, "redis: %v", err)
		}
		return a.fail(packet.ServerUnavailable, "redis: %v", err)
	}
	vals, err := a.values(reply)
	if err != nil {
		return a.fail(packet.ServerUnavailable, "redis: %v", err)
	}
	if !slices.ContainsFunc(vals, func(v *string) bool { return v != nil }) {
		return authn.Ignored("redis: no such user")
	}
	hash := vals[a.hashIdx]
	if hash == nil || *hash == "" {
		return authn.Denied(packet.NotAuthorized, "redis: the user record has no password hash")
	}
	encoded, err := a.encoded(*hash, vals)
	if err != nil {
		return a.fail(packet.NotAuthorized, "redis: stored password hash: %v", err)
	}
	match, err := a.hasher.Verify(ctx, encoded, cred.Password)
	if err != nil {
		if ctx.Err() != nil {
			return a.fail(packet.ServerUnavailable, "redis: verifying the password: %v", err)
		}
		return a.fail(packet.NotAuthorized, "redis: stored password hash: %v", err)
	}
	if !match {
		return authn.Denied(packet.BadUserNameOrPassword, "redis: wrong password")
	}
	r := authn.Allowed()
	if a.superIdx >= 0 && vals[a.superIdx] != nil {
		switch strings.ToLower(*vals[a.superIdx]) {
		case "1", "true":
			r.Superuser = true
		}
	}
	r.Detail = "redis: password matches"
	return r
}

// values turns the reply into one optional string per requested field.
func (a *Authenticator) values(reply any) ([]*string, error) {
	n := len(a.cmd.Fields())
	switch v := reply.(type) {
	case nil:
		return make([]*string, n), nil
	case string:
		if n != 1 {
			return nil, fmt.Errorf("unexpected reply of type string to %s", a.cmd.Name())
		}
		return []*string{&v}, nil
	case []any:
		if len(v) != n {
			return nil, fmt.Errorf("%s answered %d values for %d fields", a.cmd.Name(), len(v), n)
		}
		out := make([]*string, n)
		for i, e := range v {
			switch s := e.(type) {
			case nil:
			case string:
				out[i] = &s
			default:
				return nil, fmt.Errorf("field %d: unexpected value of type %T", i, e)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply of type %T to %s", reply, a.cmd.Name())
}

// encoded turns the stored hash (and salt) into Rampart's encoding.
func (a *Authenticator) encoded(hash string, vals []*string) (string, error) {
	if a.native {
		return hash, nil
	}
	salt := ""
	if a.saltIdx >= 0 && vals[a.saltIdx] != nil && !a.noSalt {
		salt = *vals[a.saltIdx]
	}
	return password.FromEMQX(a.params, hash, salt)
}

// fail answers a failure: Deny with reason, or Ignore with on_error ignore.
func (a *Authenticator) fail(reason packet.ReasonCode, format string, args ...any) authn.Result {
	detail := fmt.Sprintf(format, args...)
	if a.ignoreErr {
		a.log.Warn("redis authn: failed; ignoring as configured (on_error: ignore)", "detail", detail)
		return authn.Ignored(detail)
	}
	a.log.Warn("redis authn: failed; denying", "detail", detail)
	return authn.Denied(reason, detail)
}
