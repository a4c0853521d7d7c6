package password

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
)

// ErrEmptyPassword is returned by Hash for an empty password.
var ErrEmptyPassword = errors.New("password is empty")

// Hasher hashes new passwords with its Params and verifies stored hashes of any supported
// algorithm. All Hashers derived from one (WithParams) share one semaphore, so the broker
// bounds the CPU spent on password hashing globally, whatever authenticator asks.
//
// A Hasher is safe for concurrent use.
type Hasher struct {
	params Params
	sem    chan struct{}
}

// NewHasher returns a Hasher that hashes with p and runs at most concurrency hash
// computations at once; concurrency <= 0 means runtime.NumCPU(). p is validated.
func NewHasher(p Params, concurrency int) (*Hasher, error) {
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Hasher{params: p, sem: make(chan struct{}, concurrency)}, nil
}

// WithParams returns a Hasher that hashes with p and shares h's concurrency bound.
func (h *Hasher) WithParams(p Params) (*Hasher, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Hasher{params: p, sem: h.sem}, nil
}

// Params returns the parameters of new hashes, defaults filled in.
func (h *Hasher) Params() Params { return h.params }

// acquire takes a slot of the semaphore, or returns ctx's error. A context that has
// already ended never gets a slot, even when one is free.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the encoded hash of password with h's parameters. It refuses an empty
// password, and for bcrypt one longer than 72 bytes.
func (h *Hasher) Hash(ctx context.Context, password []byte) (string, error) {
	if len(password) == 0 {
		return "", ErrEmptyPassword
	}
	if h.params.Algorithm == Bcrypt && len(password) > bcryptMaxPassword {
		return "", ErrPasswordTooLong
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return newHash(h.params, password)
}

// Verify reports whether password matches the encoded hash. The error is non-nil only when
// the stored hash is malformed (it wraps ErrMalformed) or ctx ended before the hash could
// be computed (ctx's error); a wrong password is (false, nil).
func (h *Hasher) Verify(ctx context.Context, encoded string, password []byte) (bool, error) {
	s, err := parse(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	return s.verify(password)
}

// NeedsUpgrade reports whether a stored hash was made with another algorithm or other
// parameters than h's, so that it should be replaced by a fresh hash after the next
// successful verification. A malformed hash needs an upgrade too.
func (h *Hasher) NeedsUpgrade(encoded string) bool {
	s, err := parse(encoded)
	if err != nil {
		return true
	}
	got, want := s.params, h.params
	if got.Algorithm != want.Algorithm {
		return true
	}
	switch want.Algorithm {
	case Argon2id:
		return got.MemoryKiB != want.MemoryKiB || got.Time != want.Time || got.Threads != want.Threads ||
			got.SaltLength != want.SaltLength || got.KeyLength != want.KeyLength
	case Bcrypt:
		return got.Cost != want.Cost
	case PBKDF2SHA256, PBKDF2SHA512:
		return got.Iterations != want.Iterations || got.SaltLength != want.SaltLength || got.KeyLength != want.KeyLength
	case SHA256, SHA512:
		return got.SaltPosition != want.SaltPosition || got.SaltLength != want.SaltLength
	}
	return true
}

// FromEMQX builds an encoded hash from a user exported by EMQX's built-in database, where
// password_hash and salt are separate columns and the algorithm comes from the
// authenticator's configuration (p):
//
//   - sha256, sha512: hashHex is the hex digest; salt is used as its raw bytes, placed by
//     p.SaltPosition (default prefix). An empty salt is accepted (EMQX salt_position
//     "disable" exported with prefix).
//   - pbkdf2-sha256, pbkdf2-sha512: hashHex is the hex derived key; p.Iterations is the
//     iteration count EMQX was configured with (required: there is no safe guess).
//   - bcrypt: hashHex is the whole $2?$ string (EMQX keeps the salt inside it); salt is
//     ignored.
//
// The result verifies with Verify and is upgraded to the default algorithm on the
// user's next login.
func FromEMQX(p Params, hashHex, salt string) (string, error) {
	switch p.Algorithm {
	case Bcrypt:
		s, err := parseBcrypt(hashHex)
		if err != nil {
			return "", err
		}
		return s.encode(), nil
	case SHA256, SHA512:
		pos := p.SaltPosition
		if pos == "" {
			pos = Prefix
		}
		return Salted(p.Algorithm, hashHex, salt, pos)
	case PBKDF2SHA256, PBKDF2SHA512:
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return "", fmt.Errorf("password hash: %s import needs iterations in 1..%d, got %d", p.Algorithm, maxPBKDF2Iterations, p.Iterations)
		}
		key, err := decodeHex(hashHex)
		if err != nil {
			return "", err
		}
		s := stored{params: Params{Algorithm: p.Algorithm, Iterations: p.Iterations}, salt: []byte(salt), key: key}
		// Re-parse so an imported hash obeys the same limits as a stored one.
		enc := s.encode()
		if _, err := parse(enc); err != nil {
			return "", err
		}
		return enc, nil
	}
	return "", fmt.Errorf("password hash: cannot import %q hashes from EMQX", p.Algorithm)
}

// Salted builds the encoded form of a salted SHA-2 hash (alg SHA256 or SHA512) from its
// hex digest, its salt (raw bytes) and the salt's position.
func Salted(alg Algorithm, hashHex, salt string, pos SaltPosition) (string, error) {
	if alg != SHA256 && alg != SHA512 {
		return "", fmt.Errorf("password hash: %q is not a salted SHA-2 algorithm", alg)
	}
	if pos != Prefix && pos != Suffix {
		return "", fmt.Errorf("password hash: salt position %q is neither prefix nor suffix", pos)
	}
	key, err := decodeHex(hashHex)
	if err != nil {
		return "", err
	}
	s := stored{params: Params{Algorithm: alg, SaltPosition: pos}, salt: []byte(salt), key: key}
	enc := s.encode()
	if _, err := parse(enc); err != nil {
		return "", err
	}
	return enc, nil
}

func decodeHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, malformed("hash is not hex")
	}
	return b, nil
}
