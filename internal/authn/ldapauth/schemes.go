package ldapauth

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
)

// errRefusedScheme is wrapped by the errors about stored values the hash method will not
// compare: weak or unsupported schemes, and clear text.
var errRefusedScheme = errors.New("refused stored password")

// maxSalt bounds the salt of an {SSHA256}/{SSHA512} value (slapd writes 4 to 16 bytes).
const maxSalt = 64

// ldapScheme is one of the RFC 3112-style {SCHEME} prefixes the hash method compares.
type ldapScheme struct {
	newHash func() hash.Hash
	size    int
	salted  bool
}

// acceptedScheme returns how to compare a value of the {SCHEME} named (in upper case).
func acceptedScheme(name string) (ldapScheme, bool) {
	switch name {
	case "SSHA256":
		return ldapScheme{sha256.New, sha256.Size, true}, true
	case "SSHA512":
		return ldapScheme{sha512.New, sha512.Size, true}, true
	case "SHA256":
		return ldapScheme{sha256.New, sha256.Size, false}, true
	case "SHA512":
		return ldapScheme{sha512.New, sha512.Size, false}, true
	}
	return ldapScheme{}, false
}

// refusedScheme explains why the hash method refuses a common {SCHEME}.
func refusedScheme(name string) string {
	switch name {
	case "SSHA":
		return "salted SHA-1"
	case "SHA":
		return "unsalted SHA-1"
	case "MD5":
		return "unsalted MD5"
	case "SMD5":
		return "salted MD5"
	case "CRYPT":
		return "crypt(3), often DES or MD5"
	case "CLEARTEXT":
		return "clear text"
	}
	return "not supported by method hash"
}

// verifyStored compares password with one stored value of the password attribute. It
// returns (match, nil) for a value it can compare, and an error for a value it refuses
// (wrapping errRefusedScheme), a malformed value, or ctx ending while waiting for the
// hasher. It compares in constant time and never puts the value or the password in an
// error.
func verifyStored(ctx context.Context, h *password.Hasher, stored string, pw []byte) (bool, error) {
	if strings.HasPrefix(stored, "$") {
		return h.Verify(ctx, stored, pw)
	}
	if !strings.HasPrefix(stored, "{") {
		return false, fmt.Errorf("%w: the value is clear text (or an unknown form); store {SSHA256}, {SSHA512} or a Rampart hash, or use method bind", errRefusedScheme)
	}
	end := strings.IndexByte(stored, '}')
	if end < 0 {
		return false, fmt.Errorf("%w: a {SCHEME} prefix without its closing brace", errRefusedScheme)
	}
	scheme, value := strings.ToUpper(stored[1:end]), stored[end+1:]
	if scheme == "ARGON2" && strings.HasPrefix(value, "$argon2id$") {
		// slapd's argon2 module writes the PHC string after the prefix; Rampart's hasher
		// verifies argon2id ones (not argon2i, which Debian's module makes by default).
		return h.Verify(ctx, value, pw)
	}
	s, ok := acceptedScheme(scheme)
	if !ok {
		why := refusedScheme(scheme)
		if len(scheme) > 20 {
			scheme = scheme[:20] + "..."
		}
		return false, fmt.Errorf("%w: {%s} (%s); store {SSHA256}, {SSHA512} or a Rampart hash, or use method bind, which lets the directory check its own hashes", errRefusedScheme, scheme, why)
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return false, fmt.Errorf("{%s} value is not base64", scheme)
	}
	if !s.salted && len(raw) != s.size {
		return false, fmt.Errorf("{%s} value has %d bytes, want a %d-byte digest", scheme, len(raw), s.size)
	}
	if len(raw) < s.size || len(raw) > s.size+maxSalt {
		return false, fmt.Errorf("{%s} value has %d bytes, want a %d-byte digest and at most %d bytes of salt", scheme, len(raw), s.size, maxSalt)
	}
	digest, salt := raw[:s.size], raw[s.size:]
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d := s.newHash()
	d.Write(pw)
	d.Write(salt)
	return subtle.ConstantTimeCompare(d.Sum(nil), digest) == 1, nil
}
