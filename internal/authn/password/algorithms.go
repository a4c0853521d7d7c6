package password

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// bcryptMaxPassword is bcrypt's input limit: it ignores bytes past the 72nd.
const bcryptMaxPassword = 72

// ErrPasswordTooLong is returned by Hash for a password bcrypt would silently truncate.
var ErrPasswordTooLong = errors.New("password longer than 72 bytes cannot be hashed with bcrypt")

// newHash computes a fresh encoded hash of password with p (already validated and
// defaulted). It does the expensive work; the caller holds the semaphore.
func newHash(p Params, password []byte) (string, error) {
	if p.Algorithm == Bcrypt {
		if len(password) > bcryptMaxPassword {
			return "", ErrPasswordTooLong
		}
		h, err := bcrypt.GenerateFromPassword(password, p.Cost)
		if err != nil {
			return "", fmt.Errorf("password hash: bcrypt: %w", err)
		}
		// x/crypto writes $2a$; its output is what OpenBSD calls $2b$ (the 2a/2b fix
		// concerns a length overflow Go's implementation never had).
		h[2] = 'b'
		return string(h), nil
	}
	salt := make([]byte, p.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password hash: salt: %w", err)
	}
	s := stored{params: p, salt: salt}
	key, err := derive(s.params, salt, password)
	if err != nil {
		return "", err
	}
	s.key = key
	return s.encode(), nil
}

// derive computes the key or digest of password for the parameters and salt of a
// non-bcrypt hash; its length is p.KeyLength for argon2id and PBKDF2.
func derive(p Params, salt, password []byte) ([]byte, error) {
	switch p.Algorithm {
	case Argon2id:
		return argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, uint32(p.KeyLength)), nil
	case PBKDF2SHA256, PBKDF2SHA512:
		k, err := pbkdf2.Key(hashFunc(p.Algorithm), string(password), salt, p.Iterations, p.KeyLength)
		if err != nil {
			return nil, fmt.Errorf("password hash: %s: %w", p.Algorithm, err)
		}
		return k, nil
	case SHA256, SHA512:
		h := hashFunc(p.Algorithm)()
		if p.SaltPosition == Prefix {
			h.Write(salt)
			h.Write(password)
		} else {
			h.Write(password)
			h.Write(salt)
		}
		return h.Sum(nil), nil
	}
	return nil, fmt.Errorf("password hash: unknown algorithm %q", p.Algorithm)
}

func hashFunc(a Algorithm) func() hash.Hash {
	switch a {
	case PBKDF2SHA512, SHA512:
		return sha512.New
	}
	return sha256.New
}

// verify checks password against a parsed hash in constant time with respect to the
// stored key. The caller holds the semaphore.
func (s stored) verify(password []byte) (bool, error) {
	if s.params.Algorithm == Bcrypt {
		// A stored bcrypt hash only ever saw 72 bytes; accepting a longer password would
		// let anything that shares the first 72 bytes in.
		if len(password) > bcryptMaxPassword {
			return false, nil
		}
		err := bcrypt.CompareHashAndPassword(s.bcrypt, password)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		}
		return false, fmt.Errorf("%w: bcrypt: %v", ErrMalformed, err)
	}
	p := s.params
	p.KeyLength = len(s.key)
	key, err := derive(p, s.salt, password)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(key, s.key) == 1, nil
}
