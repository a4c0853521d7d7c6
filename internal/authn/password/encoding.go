package password

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ErrMalformed is wrapped by the errors about a stored hash that cannot be parsed or whose
// parameters are outside the limits this package accepts.
var ErrMalformed = errors.New("malformed password hash")

// b64 is the base64 alphabet of the PHC string format: standard, no padding.
var b64 = base64.RawStdEncoding

// stored is a parsed hash string: the parameters that made it, its salt and its key.
type stored struct {
	params Params // Algorithm and the fields that apply to it; SaltLength/KeyLength as found
	salt   []byte
	key    []byte // derived key or digest; nil for bcrypt
	bcrypt []byte // the whole bcrypt string
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parse decodes an encoded hash. It never looks at a password, so its timing reveals
// nothing but the stored string's shape.
func parse(encoded string) (stored, error) {
	if !strings.HasPrefix(encoded, "$") {
		return stored{}, malformed("no algorithm prefix")
	}
	if strings.HasPrefix(encoded, "$2") {
		return parseBcrypt(encoded)
	}
	fields := strings.Split(encoded[1:], "$")
	switch Algorithm(fields[0]) {
	case Argon2id:
		return parseArgon2(fields)
	case PBKDF2SHA256, PBKDF2SHA512:
		return parsePBKDF2(fields)
	case SHA256, SHA512:
		return parseSalted(fields)
	}
	return stored{}, malformed("unknown algorithm %q", truncate(fields[0]))
}

// truncate keeps an error message about a stored string short and mostly free of it.
func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func parseBcrypt(encoded string) (stored, error) {
	if len(encoded) != 60 || encoded[3] != '$' || encoded[6] != '$' {
		return stored{}, malformed("bcrypt hash is not 60 characters of $2?$cc$...")
	}
	switch encoded[2] {
	case 'a', 'b', 'y':
	default:
		return stored{}, malformed("unsupported bcrypt version $2%c$", encoded[2])
	}
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		return stored{}, malformed("bcrypt: %v", err)
	}
	if cost < hardMinBcryptCost || cost > maxBcryptCost {
		return stored{}, malformed("bcrypt cost %d outside %d..%d", cost, hardMinBcryptCost, maxBcryptCost)
	}
	return stored{params: Params{Algorithm: Bcrypt, Cost: cost}, bcrypt: []byte(encoded)}, nil
}

func parseArgon2(f []string) (stored, error) {
	// argon2id, v=19, m=..,t=..,p=.., salt, key
	if len(f) != 5 {
		return stored{}, malformed("argon2id hash has %d fields, want 5", len(f))
	}
	if f[1] != "v=19" {
		return stored{}, malformed("argon2id version %q, want v=19", f[1])
	}
	var m, t, p uint64
	var err error
	kv := strings.Split(f[2], ",")
	if len(kv) != 3 {
		return stored{}, malformed("argon2id parameters %q, want m=..,t=..,p=..", f[2])
	}
	if m, err = field(kv[0], "m", maxArgon2MemoryKiB); err != nil {
		return stored{}, err
	}
	if t, err = field(kv[1], "t", maxArgon2Time); err != nil {
		return stored{}, err
	}
	if p, err = field(kv[2], "p", maxArgon2Threads); err != nil {
		return stored{}, err
	}
	if m < 8*p {
		return stored{}, malformed("argon2id memory %d KiB < 8 KiB per lane", m)
	}
	salt, key, err := saltAndKey(f[3], f[4])
	if err != nil {
		return stored{}, err
	}
	return stored{
		params: Params{Algorithm: Argon2id, MemoryKiB: uint32(m), Time: uint32(t), Threads: uint8(p),
			SaltLength: len(salt), KeyLength: len(key)},
		salt: salt, key: key,
	}, nil
}

func parsePBKDF2(f []string) (stored, error) {
	// pbkdf2-sha256, i=.., salt, key
	alg := Algorithm(f[0])
	if len(f) != 4 {
		return stored{}, malformed("%s hash has %d fields, want 4", alg, len(f))
	}
	i, err := field(f[1], "i", maxPBKDF2Iterations)
	if err != nil {
		return stored{}, err
	}
	salt, key, err := saltAndKey(f[2], f[3])
	if err != nil {
		return stored{}, err
	}
	return stored{
		params: Params{Algorithm: alg, Iterations: int(i), SaltLength: len(salt), KeyLength: len(key)},
		salt:   salt, key: key,
	}, nil
}

func parseSalted(f []string) (stored, error) {
	// sha256, prefix|suffix, salt, hex digest
	alg := Algorithm(f[0])
	if len(f) != 4 {
		return stored{}, malformed("%s hash has %d fields, want 4", alg, len(f))
	}
	pos := SaltPosition(f[1])
	if pos != Prefix && pos != Suffix {
		return stored{}, malformed("%s salt position %q, want prefix or suffix", alg, truncate(f[1]))
	}
	salt, err := b64.Strict().DecodeString(f[2])
	if err != nil {
		return stored{}, malformed("%s salt is not base64 (unpadded)", alg)
	}
	if len(salt) > 1024 {
		return stored{}, malformed("%s salt of %d bytes is too long", alg, len(salt))
	}
	digest, err := hex.DecodeString(f[3])
	if err != nil {
		return stored{}, malformed("%s digest is not hex", alg)
	}
	if len(digest) != digestSize(alg) {
		return stored{}, malformed("%s digest has %d bytes, want %d", alg, len(digest), digestSize(alg))
	}
	return stored{params: Params{Algorithm: alg, SaltPosition: pos, SaltLength: len(salt)}, salt: salt, key: digest}, nil
}

// field parses "name=<decimal>" with 1 <= value <= max.
func field(s, name string, max uint64) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, malformed("parameter %q, want %s=...", truncate(s), name)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < 1 || n > max || (len(v) > 1 && v[0] == '0') {
		return 0, malformed("parameter %s=%q outside 1..%d", name, truncate(v), max)
	}
	return n, nil
}

// saltAndKey decodes the salt and key fields of argon2id and PBKDF2 hashes. A key shorter
// than 16 bytes is refused: a truncated key would let many passwords match.
func saltAndKey(s, k string) (salt, key []byte, err error) {
	salt, err = b64.Strict().DecodeString(s)
	if err != nil {
		return nil, nil, malformed("salt is not base64 (unpadded)")
	}
	if len(salt) < hardMinSaltLength || len(salt) > maxSaltLength {
		return nil, nil, malformed("salt of %d bytes outside %d..%d", len(salt), hardMinSaltLength, maxSaltLength)
	}
	key, err = b64.Strict().DecodeString(k)
	if err != nil {
		return nil, nil, malformed("key is not base64 (unpadded)")
	}
	if len(key) < minKeyLength || len(key) > maxKeyLength {
		return nil, nil, malformed("key of %d bytes outside %d..%d", len(key), minKeyLength, maxKeyLength)
	}
	return salt, key, nil
}

// encode formats a stored hash (not bcrypt, which formats itself).
func (s stored) encode() string {
	p := s.params
	switch p.Algorithm {
	case Argon2id:
		return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.MemoryKiB, p.Time, p.Threads,
			b64.EncodeToString(s.salt), b64.EncodeToString(s.key))
	case PBKDF2SHA256, PBKDF2SHA512:
		return fmt.Sprintf("$%s$i=%d$%s$%s", p.Algorithm, p.Iterations, b64.EncodeToString(s.salt), b64.EncodeToString(s.key))
	case SHA256, SHA512:
		return fmt.Sprintf("$%s$%s$%s$%s", p.Algorithm, p.SaltPosition, b64.EncodeToString(s.salt), hex.EncodeToString(s.key))
	}
	return string(s.bcrypt)
}

func digestSize(a Algorithm) int {
	switch a {
	case PBKDF2SHA512, SHA512:
		return sha512.Size
	}
	return sha256.Size
}

// ParamsOf returns the algorithm and parameters of an encoded hash, or an error wrapping
// ErrMalformed. SaltLength and KeyLength are those found in the hash.
func ParamsOf(encoded string) (Params, error) {
	s, err := parse(encoded)
	if err != nil {
		return Params{}, err
	}
	return s.params, nil
}
