package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/builtin"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/scram"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// userStore is the built-in user database: the control-data SQLite file, the shared
// password hasher, and one in-memory index per user id type.
type userStore struct {
	db     *controldb.DB
	hasher *password.Hasher
	byType map[controldb.IDType]*builtin.Authenticator
}

// controlDBFile is the control-data database in the data directory.
const controlDBFile = "control.db"

// hashParams maps password_hash_algorithm onto the hasher's parameters.
func hashParams(h config.PasswordHash) (password.Params, error) {
	alg, err := password.ParseEMQXAlgorithm(h.Name, h.MacFun)
	if err != nil {
		return password.Params{}, err
	}
	p := password.Params{Algorithm: alg, Threads: uint8(min(h.Parallelism, 255)), Cost: h.SaltRounds,
		SaltPosition: password.SaltPosition(h.SaltPosition)}
	if h.Memory > 0 {
		p.MemoryKiB = uint32(min(h.Memory.Bytes()/1024, 1<<31))
	}
	switch alg {
	case password.Argon2id:
		p.Time = uint32(max(h.Iterations, 0))
	case password.PBKDF2SHA256, password.PBKDF2SHA512:
		p.Iterations = h.Iterations
	}
	return p, nil
}

// builtin returns the authenticator of a password_based or scram entry backed by the
// built-in database. Entries with the same user id type share one index.
func (b *chainBuilder) builtin(e config.Authenticator) (authn.Authenticator, authn.Enhanced, error) {
	if b.check {
		p, err := hashParams(e.PasswordHashAlgorithm)
		if err != nil {
			return nil, nil, fmt.Errorf("password_hash_algorithm: %w", err)
		}
		if e.BootstrapFile != "" {
			if _, err := os.Stat(e.BootstrapFile); err != nil {
				return nil, nil, fmt.Errorf("bootstrap_file: %w", err)
			}
		}
		c := builtin.Config{UserIDType: controldb.IDType(e.UserIDType), PasswordHash: p}
		if e.BootstrapType == "hash" {
			c.BootstrapType, c.BootstrapHashAlgorithm = builtin.BootstrapHash, p
		}
		if p.Algorithm == password.SHA256 || p.Algorithm == password.SHA512 {
			c.PasswordHash = password.Params{}
		}
		return nil, nil, c.Validate()
	}
	us, err := b.userStore()
	if err != nil {
		return nil, nil, err
	}
	idType := controldb.Username
	if e.Mechanism == config.MechPasswordBased {
		idType = controldb.IDType(e.UserIDType)
	}
	a, ok := us.byType[idType]
	if !ok {
		return nil, nil, fmt.Errorf("no built-in database for user_id_type %s", idType)
	}
	if e.Mechanism == config.MechPasswordBased {
		return a, nil, nil
	}
	hash := scram.SHA256
	if e.SCRAMAlgorithm() == "sha512" {
		hash = scram.SHA512
	}
	m, err := scram.New(scram.Config{Hash: hash, UserIDType: string(idType), Iterations: e.IterationCount}, a, b.log)
	return nil, m, err
}

// userStore opens the control database and builds the built-in authenticators of every
// configured chain, once: their settings come from the first password_based entry of
// each user id type, and SCRAM credentials are kept only when a scram entry exists.
func (b *chainBuilder) userStore() (*userStore, error) {
	if b.setup.users != nil {
		return b.setup.users, nil
	}
	all := append([]config.Authenticator(nil), b.cfg.Authentication...)
	for _, l := range allListenersNamed(b.cfg) {
		all = append(all, l.Authentication...)
	}
	settings := map[controldb.IDType]*builtin.Config{}
	var scramIter int
	var scramOn bool
	for _, e := range all {
		if !e.Enable || e.Backend != config.BackendBuiltIn {
			continue
		}
		if e.Mechanism == config.MechSCRAM {
			scramOn = true
			scramIter = max(scramIter, e.IterationCount)
			if settings[controldb.Username] == nil {
				settings[controldb.Username] = &builtin.Config{UserIDType: controldb.Username}
			}
			continue
		}
		t := controldb.IDType(e.UserIDType)
		if c := settings[t]; c != nil && c.BootstrapType != "" {
			continue // the first password_based entry of a type decides
		}
		p, err := hashParams(e.PasswordHashAlgorithm)
		if err != nil {
			return nil, fmt.Errorf("password_hash_algorithm: %w", err)
		}
		c := &builtin.Config{UserIDType: t, PasswordHash: p, BootstrapFile: e.BootstrapFile, BootstrapType: e.BootstrapType}
		if e.BootstrapType == "hash" {
			c.BootstrapHashAlgorithm = p
		}
		if p.Algorithm == password.SHA256 || p.Algorithm == password.SHA512 {
			// Salted SHA-2 is only for importing: new and upgraded hashes use argon2id.
			c.PasswordHash = password.Params{}
		}
		settings[t] = c
	}
	db := b.db
	us := &userStore{db: db, byType: map[controldb.IDType]*builtin.Authenticator{}}
	var err error
	if us.hasher, err = b.sharedHasher(); err != nil {
		return nil, err
	}
	for t, c := range settings {
		c.SCRAM, c.SCRAMIterations = scramOn, scramIter
		a, err := builtin.New(b.ctx, db, us.hasher, *c, b.log)
		if err != nil {
			return nil, err
		}
		us.byType[t] = a
		b.setup.closers = append(b.setup.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.Close(ctx)
		})
	}
	b.setup.users = us
	return us, nil
}

// ensureDir creates the data directory (0700) when it does not exist.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the data directory %s: %w", dir, err)
	}
	return nil
}
