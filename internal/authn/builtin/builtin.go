// Package builtin is the password_based:built_in_database authenticator: users and their
// password hashes live in the control database (package controldb) and, for lookups, in an
// in-memory index loaded at start and kept current by the methods that write the
// database (AddUser, UpdateUser, DeleteUser). A CONNECT never queries SQLite.
//
// Answers:
//   - no password in CONNECT, no user id, or a user unknown here: Ignore (the next
//     authenticator may know the client);
//   - a wrong password: Deny with Bad User Name or Password (0x86);
//   - the right password: Allow, Superuser from the user's record.
//
// Timing: a known user costs one password hash, an unknown one nothing. This reveals
// whether a user exists here no more than the answers do: Ignore passes the client to the
// next authenticator, whose behaviour (or the chain's final refusal) differs from this
// authenticator's Deny anyway. Per-IP and per-username failure throttles in front of the
// chain bound how fast anyone can probe.
//
// A user whose stored hash is not the configured default (imported from EMQX, or made
// before the parameters changed) is re-hashed with the default after a successful login,
// in the background; a failure to do so is logged and never affects the login.
//
// The authenticator also serves SCRAM credentials to package scram (it implements
// scram.Lookup) when Config.SCRAM makes AddUser and UpdateUser derive them.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/scram"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// Name is the authenticator's name in logs and metrics.
const Name = "password_based:built_in_database"

// Bootstrap file types.
const (
	BootstrapPlain = "plain" // user_id,password,is_superuser
	BootstrapHash  = "hash"  // user_id,password_hash,salt,is_superuser (EMQX export)
)

// Re-exported store errors, for callers of the user management methods.
var (
	ErrNotFound = controldb.ErrNotFound
	ErrExists   = controldb.ErrExists
)

// Config configures the authenticator. The zero Config identifies users by username and
// hashes new passwords with argon2id's defaults.
type Config struct {
	// UserIDType is controldb.Username (default) or controldb.ClientID: which CONNECT
	// field names the user.
	UserIDType controldb.IDType
	// PasswordHash is the algorithm and parameters of new hashes (zero: argon2id,
	// m=19456 KiB, t=2, p=1). Stored hashes that differ are upgraded on login.
	PasswordHash password.Params
	// BootstrapFile, when set, is a .csv or .json file of users inserted at start when
	// they do not exist yet; existing users are left alone.
	BootstrapFile string
	// BootstrapType is BootstrapPlain (default) or BootstrapHash.
	BootstrapType string
	// BootstrapHashAlgorithm is the algorithm of the password_hash column of a "hash"
	// bootstrap file: bcrypt, pbkdf2-sha256/512 (Iterations required), sha256/sha512
	// (SaltPosition, default prefix), as EMQX's password_hash_algorithm.
	BootstrapHashAlgorithm password.Params
	// SCRAM makes AddUser, UpdateUser and plain bootstrap also store SCRAM-SHA-256 and
	// SCRAM-SHA-512 credentials, for the SCRAM enhanced authentication methods. Off by
	// default: SCRAM's stored keys are PBKDF2 with a few thousand iterations, far cheaper
	// to attack offline than argon2id, so keep them only where SCRAM is used.
	SCRAM bool
	// SCRAMIterations is the PBKDF2 iteration count of derived SCRAM credentials (default
	// 4096, at least 4096).
	SCRAMIterations int
}

func (c *Config) withDefaults() {
	if c.UserIDType == "" {
		c.UserIDType = controldb.Username
	}
	if c.BootstrapType == "" {
		c.BootstrapType = BootstrapPlain
	}
	if c.SCRAMIterations == 0 {
		c.SCRAMIterations = scram.DefaultIterations
	}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	c.withDefaults()
	if !c.UserIDType.Valid() {
		return fmt.Errorf("built_in_database: user_id_type %q is neither username nor clientid", c.UserIDType)
	}
	if err := c.PasswordHash.Validate(); err != nil {
		return fmt.Errorf("built_in_database: password_hash_algorithm: %w", err)
	}
	switch c.BootstrapType {
	case BootstrapPlain:
	case BootstrapHash:
		switch c.BootstrapHashAlgorithm.Algorithm {
		case password.Bcrypt, password.SHA256, password.SHA512:
		case password.PBKDF2SHA256, password.PBKDF2SHA512:
			if c.BootstrapHashAlgorithm.Iterations <= 0 {
				return errors.New("built_in_database: a pbkdf2 bootstrap hash algorithm needs its iterations")
			}
		default:
			return fmt.Errorf("built_in_database: bootstrap hash algorithm %q is not one EMQX exports (bcrypt, pbkdf2-sha256, pbkdf2-sha512, sha256, sha512)",
				c.BootstrapHashAlgorithm.Algorithm)
		}
	default:
		return fmt.Errorf("built_in_database: bootstrap_type %q is neither plain nor hash", c.BootstrapType)
	}
	if c.SCRAMIterations < scram.MinIterations {
		return fmt.Errorf("built_in_database: SCRAM iterations %d < %d", c.SCRAMIterations, scram.MinIterations)
	}
	return nil
}

// entry is one user in the index. Entries are never modified once published: a change
// replaces the entry, so a reader may use one after releasing the lock.
type entry struct {
	hash      string
	superuser bool
	scram256  *scram.Credentials
	scram512  *scram.Credentials
}

// Authenticator is the built-in database authenticator. It is safe for concurrent use.
type Authenticator struct {
	cfg    Config
	users  *controldb.Users
	hasher *password.Hasher
	log    *slog.Logger

	mu    sync.RWMutex
	index map[string]*entry

	// writeMu orders writes: the database and then the index, one change at a time, so
	// the index never ends up older than the database.
	writeMu sync.Mutex

	// changed are told the id of a user whose password or superuser flag changed or who
	// was deleted, after the index has the change.
	changedMu sync.Mutex
	changed   []func(id string)

	upgrades upgrader
}

// OnUserChange registers fn to run, before UpdateUser or DeleteUser returns, with the id
// of the user it changed. The broker disconnects that user's live sessions, so no client
// keeps rights (a superuser flag, a session opened with a now-changed password) its
// account no longer has.
func (a *Authenticator) OnUserChange(fn func(id string)) {
	a.changedMu.Lock()
	a.changed = append(a.changed, fn)
	a.changedMu.Unlock()
}

func (a *Authenticator) userChanged(id string) {
	a.changedMu.Lock()
	fns := append([]func(string){}, a.changed...)
	a.changedMu.Unlock()
	for _, fn := range fns {
		fn(id)
	}
}

var (
	_ authn.Authenticator = (*Authenticator)(nil)
	_ scram.Lookup        = (*Authenticator)(nil)
)

// New validates cfg, loads the bootstrap file into db (users that do not exist yet), and
// loads the users of cfg.UserIDType into memory. hasher provides the shared concurrency
// bound of password hashing; the authenticator hashes with cfg.PasswordHash through it.
// log may be nil. Close releases the background work.
func New(ctx context.Context, db *controldb.DB, hasher *password.Hasher, cfg Config, log *slog.Logger) (*Authenticator, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil || hasher == nil {
		return nil, errors.New("built_in_database: no database or hasher")
	}
	h, err := hasher.WithParams(cfg.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("built_in_database: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{
		cfg: cfg, users: db.Users(), hasher: h,
		log:   log.With("authenticator", Name),
		index: map[string]*entry{},
	}
	a.upgrades.init()
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	if cfg.BootstrapFile != "" {
		if err := a.bootstrap(ctx); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// load fills the index from the database.
func (a *Authenticator) load(ctx context.Context) error {
	start := time.Now()
	index := map[string]*entry{}
	err := a.users.ForEach(ctx, a.cfg.UserIDType, func(u controldb.User) error {
		index[u.ID] = entryOf(&u)
		return nil
	})
	if err != nil {
		return fmt.Errorf("built_in_database: load users: %w", err)
	}
	a.mu.Lock()
	a.index = index
	a.mu.Unlock()
	a.log.Info("users loaded", "user_id_type", string(a.cfg.UserIDType), "count", len(index), "took", time.Since(start))
	return nil
}

func entryOf(u *controldb.User) *entry {
	e := &entry{hash: u.PasswordHash, superuser: u.Superuser}
	if s := u.SCRAMSHA256; s != nil {
		e.scram256 = &scram.Credentials{Salt: s.Salt, Iterations: s.Iterations, StoredKey: s.StoredKey, ServerKey: s.ServerKey}
	}
	if s := u.SCRAMSHA512; s != nil {
		e.scram512 = &scram.Credentials{Salt: s.Salt, Iterations: s.Iterations, StoredKey: s.StoredKey, ServerKey: s.ServerKey}
	}
	return e
}

func (a *Authenticator) get(id string) *entry {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.index[id]
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Name }

// userID returns the identity the client claims: its username (as the connection sees
// it, after any peer_cert_as_username) or its client id.
func (a *Authenticator) userID(info *clientinfo.Info, cred *authn.Credentials) string {
	if a.cfg.UserIDType == controldb.ClientID {
		if info == nil {
			return ""
		}
		return info.ClientID
	}
	if info != nil {
		return info.Username
	}
	return cred.Username
}

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if cred == nil || !cred.HasPassword() {
		return authn.Ignored("no password")
	}
	id := a.userID(info, cred)
	if id == "" {
		return authn.Ignored("no " + string(a.cfg.UserIDType))
	}
	e := a.get(id)
	if e == nil {
		return authn.Ignored("unknown user")
	}
	if e.hash == "" {
		return authn.Ignored("user has no password, only SCRAM credentials")
	}
	ok, err := a.hasher.Verify(ctx, e.hash, cred.Password)
	if err != nil {
		if errors.Is(err, password.ErrMalformed) {
			a.log.Error("stored password hash is malformed: reset the user's password", "user_id", id, "error", err)
			return authn.Denied(packet.BadUserNameOrPassword, "stored password hash is malformed")
		}
		// The context ended while queued for a hashing slot: the server is overloaded.
		return authn.Denied(packet.ServerBusy, "password check did not finish: "+err.Error())
	}
	if !ok {
		return authn.Denied(packet.BadUserNameOrPassword, "wrong password")
	}
	if a.hasher.NeedsUpgrade(e.hash) {
		a.upgrade(id, e.hash, cred.Password)
	}
	return authn.Result{Outcome: authn.Allow, Superuser: e.superuser}
}

// LookupSCRAM implements scram.Lookup from the index.
func (a *Authenticator) LookupSCRAM(_ context.Context, h scram.Hash, userID string) (scram.Account, bool, error) {
	e := a.get(userID)
	if e == nil {
		return scram.Account{}, false, nil
	}
	c := e.scram256
	if h == scram.SHA512 {
		c = e.scram512
	}
	if c == nil {
		return scram.Account{}, false, nil
	}
	return scram.Account{Credentials: *c, Superuser: e.superuser}, true, nil
}

// Close stops background work (password hash upgrades), waiting for running ones until
// ctx ends. It does not close the database.
func (a *Authenticator) Close(ctx context.Context) error {
	return a.upgrades.close(ctx)
}
