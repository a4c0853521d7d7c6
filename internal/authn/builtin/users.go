package builtin

import (
	"context"
	"errors"
	"fmt"

	"github.com/rampart-mqtt/rampart/internal/authn/scram"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// User is what may be shown about a user: never a hash, salt or key.
type User struct {
	ID          string
	Superuser   bool
	HasPassword bool // a password hash for password_based login
	HasSCRAM    bool // SCRAM credentials for enhanced authentication
}

// UserSpec describes a new user.
type UserSpec struct {
	ID        string
	Password  []byte
	Superuser bool
}

// UserUpdate changes a user; nil fields stay as they are.
type UserUpdate struct {
	Password  []byte
	Superuser *bool
}

// AddUser hashes the password (and derives SCRAM credentials when configured), stores
// the user, then makes it visible to Authenticate. It returns an error wrapping ErrExists
// when the user exists.
func (a *Authenticator) AddUser(ctx context.Context, spec UserSpec) error {
	if spec.ID == "" {
		return errors.New("built_in_database: add user: empty user id")
	}
	u := controldb.User{IDType: a.cfg.UserIDType, ID: spec.ID, Superuser: spec.Superuser}
	if err := a.setCredentials(ctx, &u, spec.Password); err != nil {
		return fmt.Errorf("built_in_database: add user %q: %w", spec.ID, err)
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if err := a.users.Create(ctx, u); err != nil {
		return fmt.Errorf("built_in_database: add user: %w", err)
	}
	a.publish(&u)
	return nil
}

// UpdateUser changes a user's password and/or superuser flag, in the database and then in
// memory. It returns an error wrapping ErrNotFound for an unknown user.
func (a *Authenticator) UpdateUser(ctx context.Context, id string, upd UserUpdate) error {
	var fresh controldb.User
	if upd.Password != nil {
		if err := a.setCredentials(ctx, &fresh, upd.Password); err != nil {
			return fmt.Errorf("built_in_database: update user %q: %w", id, err)
		}
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	u, err := a.users.Get(ctx, a.cfg.UserIDType, id)
	if err != nil {
		return fmt.Errorf("built_in_database: update user: %w", err)
	}
	if upd.Password != nil {
		u.PasswordHash, u.SCRAMSHA256, u.SCRAMSHA512 = fresh.PasswordHash, fresh.SCRAMSHA256, fresh.SCRAMSHA512
	}
	if upd.Superuser != nil {
		u.Superuser = *upd.Superuser
	}
	if err := a.users.Put(ctx, u); err != nil {
		return fmt.Errorf("built_in_database: update user: %w", err)
	}
	a.publish(&u)
	a.userChanged(id)
	return nil
}

// DeleteUser removes a user from the database and then from memory. It returns an error
// wrapping ErrNotFound for an unknown user.
func (a *Authenticator) DeleteUser(ctx context.Context, id string) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if err := a.users.Delete(ctx, a.cfg.UserIDType, id); err != nil {
		return fmt.Errorf("built_in_database: delete user: %w", err)
	}
	a.mu.Lock()
	delete(a.index, id)
	a.mu.Unlock()
	a.userChanged(id)
	return nil
}

// User returns what may be shown about a user, from memory.
func (a *Authenticator) User(id string) (User, bool) {
	e := a.get(id)
	if e == nil {
		return User{}, false
	}
	return User{ID: id, Superuser: e.superuser, HasPassword: e.hash != "",
		HasSCRAM: e.scram256 != nil || e.scram512 != nil}, true
}

// Len returns the number of users in memory.
func (a *Authenticator) Len() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.index)
}

// Reload replaces the in-memory index with the database's users, for changes written by
// another process.
func (a *Authenticator) Reload(ctx context.Context) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	return a.load(ctx)
}

// setCredentials hashes password into u, and derives SCRAM credentials when configured.
// It runs before writeMu is taken: hashing is the slow part.
func (a *Authenticator) setCredentials(ctx context.Context, u *controldb.User, pw []byte) error {
	hash, err := a.hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	if !a.cfg.SCRAM {
		return nil
	}
	for _, h := range []scram.Hash{scram.SHA256, scram.SHA512} {
		c, err := scram.Derive(ctx, h, pw, a.cfg.SCRAMIterations)
		if err != nil {
			return err
		}
		s := &controldb.SCRAM{Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
		if h == scram.SHA256 {
			u.SCRAMSHA256 = s
		} else {
			u.SCRAMSHA512 = s
		}
	}
	return nil
}

// publish puts a written user into the index. The caller holds writeMu.
func (a *Authenticator) publish(u *controldb.User) {
	e := entryOf(u)
	a.mu.Lock()
	a.index[u.ID] = e
	a.mu.Unlock()
}
