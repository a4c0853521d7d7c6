// Package password hashes and verifies stored passwords. New hashes use the configured
// algorithm (argon2id by default); stored hashes of every supported algorithm verify, so
// users imported from EMQX (bcrypt, PBKDF2, salted SHA-2) keep working and are re-hashed
// with the default on their next successful login (see Hasher.NeedsUpgrade).
//
// Every hash is stored as one self-describing string:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>   PHC string format
//	$2b$<cost>$<22 chars salt><31 chars hash>                   bcrypt ($2a$ and $2y$ verify too)
//	$pbkdf2-sha256$i=<iterations>$<salt>$<key>                  PBKDF2-HMAC-SHA-256
//	$pbkdf2-sha512$i=<iterations>$<salt>$<key>                  PBKDF2-HMAC-SHA-512
//	$sha256$<prefix|suffix>$<salt>$<hex digest>                 SHA-256(salt||password) or SHA-256(password||salt)
//	$sha512$<prefix|suffix>$<salt>$<hex digest>                 the same with SHA-512
//
// <salt> and <key> are standard base64 without padding (as in the PHC format); the salted
// SHA-2 digest stays hex, as EMQX stores it. The salt is base64 in every form because an
// imported salt may hold any byte, '$' included.
//
// Hashing and verifying are bounded: a Hasher holds a semaphore sized to the machine's
// cores, so a storm of CONNECTs queues for CPU instead of exhausting it, and a caller whose
// context ends while queued gets the context's error without any hashing done.
package password

import (
	"errors"
	"fmt"
)

// Algorithm names a password hashing algorithm.
type Algorithm string

// The supported algorithms. Argon2id, bcrypt and PBKDF2 are fit for new hashes; salted
// SHA-2 exists to verify users imported from EMQX and is refused for new hashes unless
// Params.AllowWeak is set.
const (
	Argon2id     Algorithm = "argon2id"
	Bcrypt       Algorithm = "bcrypt"
	PBKDF2SHA256 Algorithm = "pbkdf2-sha256"
	PBKDF2SHA512 Algorithm = "pbkdf2-sha512"
	SHA256       Algorithm = "sha256"
	SHA512       Algorithm = "sha512"
)

// SaltPosition says where a salted SHA-2 hash puts the salt.
type SaltPosition string

// Salt positions of the salted SHA-2 algorithms (EMQX's salt_position).
const (
	Prefix SaltPosition = "prefix" // digest = H(salt || password)
	Suffix SaltPosition = "suffix" // digest = H(password || salt)
)

// Defaults for new hashes (OWASP Password Storage Cheat Sheet figures).
const (
	DefaultArgon2MemoryKiB   = 19456 // 19 MiB
	DefaultArgon2Time        = 2
	DefaultArgon2Threads     = 1
	DefaultSaltLength        = 16
	DefaultArgon2KeyLength   = 32
	DefaultBcryptCost        = 12
	DefaultPBKDF2SHA256Iters = 600000
	DefaultPBKDF2SHA512Iters = 210000
)

// Floors below which Validate refuses parameters unless AllowWeak is set, and hard limits
// that hold even then. The upper limits keep one verification from costing seconds or
// gigabytes: a stored hash with larger parameters is refused as malformed.
const (
	minArgon2MemoryKiB  = 8192 // 8 MiB
	minBcryptCost       = 10
	minPBKDF2Iterations = 10000
	minSaltLength       = 16

	hardMinSaltLength = 8  // never fewer salt bytes for a new hash, AllowWeak or not
	minKeyLength      = 16 // a shorter derived key makes guessing a match cheap
	maxKeyLength      = 64
	maxSaltLength     = 64

	maxArgon2MemoryKiB  = 1 << 20 // 1 GiB
	maxArgon2Time       = 64
	maxArgon2Threads    = 64
	hardMinBcryptCost   = 4 // bcrypt's own minimum
	maxBcryptCost       = 16
	maxPBKDF2Iterations = 10_000_000
)

// ErrWeakParams is wrapped by Validate's error for parameters below the safe floors.
var ErrWeakParams = errors.New("password hash parameters are below the safe minimum")

// Params selects the algorithm and parameters of new hashes. Zero fields take the
// algorithm's defaults (see WithDefaults); the zero Params is argon2id with the defaults.
type Params struct {
	Algorithm Algorithm

	// Argon2id.
	MemoryKiB uint32 // memory in KiB (default 19456; at least 8192)
	Time      uint32 // passes over memory (default 2)
	Threads   uint8  // lanes (default 1)

	// Bcrypt.
	Cost int // default 12; at least 10

	// PBKDF2: iteration count (default 600000 with SHA-256, 210000 with SHA-512; at least
	// 10000).
	Iterations int

	// Salted SHA-2: where the salt goes (default prefix).
	SaltPosition SaltPosition

	// SaltLength is the length in bytes of the random salt of new argon2id, PBKDF2 and
	// salted SHA-2 hashes (default 16; at least 16).
	SaltLength int
	// KeyLength is the derived key length in bytes for argon2id (default 32) and PBKDF2
	// (default: the digest size), 16 to 64.
	KeyLength int

	// AllowWeak accepts parameters below the floors above and salted SHA-2 for new
	// hashes. It exists for tests and for deliberate migrations; `rampart doctor` flags it.
	AllowWeak bool
}

// DefaultParams returns the parameters of new hashes when nothing is configured: argon2id,
// m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte key.
func DefaultParams() Params { return Params{}.WithDefaults() }

// WithDefaults returns p with every zero field set to its algorithm's default.
func (p Params) WithDefaults() Params {
	if p.Algorithm == "" {
		p.Algorithm = Argon2id
	}
	switch p.Algorithm {
	case Argon2id:
		if p.MemoryKiB == 0 {
			p.MemoryKiB = DefaultArgon2MemoryKiB
		}
		if p.Time == 0 {
			p.Time = DefaultArgon2Time
		}
		if p.Threads == 0 {
			p.Threads = DefaultArgon2Threads
		}
		if p.KeyLength == 0 {
			p.KeyLength = DefaultArgon2KeyLength
		}
	case Bcrypt:
		if p.Cost == 0 {
			p.Cost = DefaultBcryptCost
		}
	case PBKDF2SHA256, PBKDF2SHA512:
		if p.Iterations == 0 {
			p.Iterations = DefaultPBKDF2SHA256Iters
			if p.Algorithm == PBKDF2SHA512 {
				p.Iterations = DefaultPBKDF2SHA512Iters
			}
		}
		if p.KeyLength == 0 {
			p.KeyLength = digestSize(p.Algorithm)
		}
	case SHA256, SHA512:
		if p.SaltPosition == "" {
			p.SaltPosition = Prefix
		}
	}
	if p.SaltLength == 0 && p.Algorithm != Bcrypt {
		p.SaltLength = DefaultSaltLength
	}
	return p
}

// Validate reports whether p (after WithDefaults) is safe for new hashes. Parameters below
// the floors wrap ErrWeakParams unless AllowWeak is set; parameters outside the hard limits
// are refused regardless.
func (p Params) Validate() error {
	p = p.WithDefaults()
	weak := func(format string, args ...any) error {
		if p.AllowWeak {
			return nil
		}
		return fmt.Errorf("%w: %s (set allow_weak to accept it)", ErrWeakParams, fmt.Sprintf(format, args...))
	}
	checkSalt := func() error {
		if p.SaltLength < hardMinSaltLength || p.SaltLength > maxSaltLength {
			return fmt.Errorf("password hash: salt length %d outside %d..%d", p.SaltLength, hardMinSaltLength, maxSaltLength)
		}
		if p.SaltLength < minSaltLength {
			return weak("salt length %d < %d", p.SaltLength, minSaltLength)
		}
		return nil
	}
	checkKey := func() error {
		if p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength {
			return fmt.Errorf("password hash: key length %d outside %d..%d", p.KeyLength, minKeyLength, maxKeyLength)
		}
		return nil
	}
	switch p.Algorithm {
	case Argon2id:
		if p.Threads > maxArgon2Threads {
			return fmt.Errorf("password hash: argon2id threads %d > %d", p.Threads, maxArgon2Threads)
		}
		if p.Time > maxArgon2Time {
			return fmt.Errorf("password hash: argon2id time %d > %d", p.Time, maxArgon2Time)
		}
		if p.MemoryKiB > maxArgon2MemoryKiB {
			return fmt.Errorf("password hash: argon2id memory %d KiB > %d KiB", p.MemoryKiB, maxArgon2MemoryKiB)
		}
		if p.MemoryKiB < 8*uint32(p.Threads) {
			return fmt.Errorf("password hash: argon2id memory %d KiB < 8 KiB per thread", p.MemoryKiB)
		}
		if err := checkSalt(); err != nil {
			return err
		}
		if err := checkKey(); err != nil {
			return err
		}
		if p.MemoryKiB < minArgon2MemoryKiB {
			return weak("argon2id memory %d KiB < %d KiB", p.MemoryKiB, minArgon2MemoryKiB)
		}
		return nil
	case Bcrypt:
		if p.Cost < hardMinBcryptCost || p.Cost > maxBcryptCost {
			return fmt.Errorf("password hash: bcrypt cost %d outside %d..%d", p.Cost, hardMinBcryptCost, maxBcryptCost)
		}
		if p.Cost < minBcryptCost {
			return weak("bcrypt cost %d < %d", p.Cost, minBcryptCost)
		}
		return nil
	case PBKDF2SHA256, PBKDF2SHA512:
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("password hash: %s iterations %d outside 1..%d", p.Algorithm, p.Iterations, maxPBKDF2Iterations)
		}
		if err := checkSalt(); err != nil {
			return err
		}
		if err := checkKey(); err != nil {
			return err
		}
		if p.Iterations < minPBKDF2Iterations {
			return weak("%s iterations %d < %d", p.Algorithm, p.Iterations, minPBKDF2Iterations)
		}
		return nil
	case SHA256, SHA512:
		if p.SaltPosition != Prefix && p.SaltPosition != Suffix {
			return fmt.Errorf("password hash: salt position %q is neither prefix nor suffix", p.SaltPosition)
		}
		if err := checkSalt(); err != nil {
			return err
		}
		return weak("salted %s is a fast hash, unfit for new passwords", p.Algorithm)
	}
	return fmt.Errorf("password hash: unknown algorithm %q", p.Algorithm)
}

// ParseAlgorithm returns the Algorithm named s, accepting the names above.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(s); a {
	case Argon2id, Bcrypt, PBKDF2SHA256, PBKDF2SHA512, SHA256, SHA512:
		return a, nil
	}
	return "", fmt.Errorf("password hash: unknown algorithm %q", s)
}

// ParseEMQXAlgorithm maps EMQX's password_hash_algorithm name and mac_fun (used by pbkdf2
// only) to an Algorithm: "pbkdf2" with mac_fun "sha512" is PBKDF2SHA512, with "sha256" or
// none PBKDF2SHA256; the other names are ParseAlgorithm's.
func ParseEMQXAlgorithm(name, macFun string) (Algorithm, error) {
	if name != "pbkdf2" {
		return ParseAlgorithm(name)
	}
	switch macFun {
	case "", "sha256":
		return PBKDF2SHA256, nil
	case "sha512":
		return PBKDF2SHA512, nil
	}
	return "", fmt.Errorf("password hash: pbkdf2 mac_fun %q is neither sha256 nor sha512", macFun)
}
