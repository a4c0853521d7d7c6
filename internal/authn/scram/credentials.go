package scram

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	xscram "github.com/xdg-go/scram"
)

// Hash is the hash function of a SCRAM mechanism.
type Hash string

// The supported hash functions.
const (
	SHA256 Hash = "SHA-256"
	SHA512 Hash = "SHA-512"
)

// ParseHash accepts "sha256", "SHA-256", "SCRAM-SHA-256" and the same for SHA-512.
func ParseHash(s string) (Hash, error) {
	switch strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SCRAM-")) {
	case "SHA256", "SHA-256":
		return SHA256, nil
	case "SHA512", "SHA-512":
		return SHA512, nil
	}
	return "", fmt.Errorf("scram: unknown hash %q (want sha256 or sha512)", s)
}

// Method is the MQTT Authentication Method name, e.g. "SCRAM-SHA-256".
func (h Hash) Method() string { return "SCRAM-" + string(h) }

// Size is the digest size in bytes: the length of StoredKey and ServerKey.
func (h Hash) Size() int {
	if h == SHA512 {
		return 64
	}
	return 32
}

func (h Hash) valid() bool { return h == SHA256 || h == SHA512 }

func (h Hash) gen() xscram.HashGeneratorFcn {
	if h == SHA512 {
		return xscram.SHA512
	}
	return xscram.SHA256
}

// Iteration counts. RFC 7677 asks for at least 4096 with SHA-256.
const (
	DefaultIterations = 4096
	MinIterations     = 4096
	// maxIterations keeps a client (or a tampered record) from making a login cost
	// minutes of PBKDF2 on the client side; the server never runs PBKDF2 at login.
	maxIterations = 10_000_000
	saltLength    = 16
)

// Credentials are what the server stores for one user and one hash function (RFC 5802
// §3): the salt and iteration count the client needs, StoredKey to check the client's
// proof and ServerKey to prove the server. They cannot be used to log in: that needs the
// ClientKey, which only the password yields.
type Credentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Derive computes the credentials of password for h with a fresh random salt;
// iterations <= 0 means DefaultIterations. The password is normalised with SASLprep
// (RFC 4013) as SCRAM clients do; a password SASLprep refuses is an error.
func Derive(ctx context.Context, h Hash, password []byte, iterations int) (Credentials, error) {
	if err := ctx.Err(); err != nil {
		return Credentials{}, err
	}
	if !h.valid() {
		return Credentials{}, fmt.Errorf("scram: unknown hash %q", h)
	}
	if len(password) == 0 {
		return Credentials{}, errors.New("scram: empty password")
	}
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	if iterations < MinIterations || iterations > maxIterations {
		return Credentials{}, fmt.Errorf("scram: iterations %d outside %d..%d", iterations, MinIterations, maxIterations)
	}
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, fmt.Errorf("scram: salt: %w", err)
	}
	return deriveWithSalt(h, password, salt, iterations)
}

func deriveWithSalt(h Hash, password, salt []byte, iterations int) (Credentials, error) {
	client, err := h.gen().NewClient("", string(password), "")
	if err != nil {
		// The library's message does not echo the password.
		return Credentials{}, fmt.Errorf("scram: password unusable with SCRAM: %w", err)
	}
	sc, err := client.GetStoredCredentialsWithError(xscram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return Credentials{}, fmt.Errorf("scram: derive: %w", err)
	}
	return Credentials{Salt: salt, Iterations: iterations, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// Validate checks that c is complete and its keys have h's size.
func (c Credentials) Validate(h Hash) error {
	switch {
	case !h.valid():
		return fmt.Errorf("scram: unknown hash %q", h)
	case len(c.Salt) == 0:
		return errors.New("scram: credentials without a salt")
	case c.Iterations < 1 || c.Iterations > maxIterations:
		return fmt.Errorf("scram: iterations %d outside 1..%d", c.Iterations, maxIterations)
	case len(c.StoredKey) != h.Size() || len(c.ServerKey) != h.Size():
		return fmt.Errorf("scram: %s keys must be %d bytes", h.Method(), h.Size())
	}
	return nil
}

// Encode formats credentials as PostgreSQL does for SCRAM verifiers:
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// with standard padded base64.
func (c Credentials) Encode(h Hash) string {
	e := base64.StdEncoding
	return fmt.Sprintf("%s$%d:%s$%s:%s", h.Method(), c.Iterations, e.EncodeToString(c.Salt),
		e.EncodeToString(c.StoredKey), e.EncodeToString(c.ServerKey))
}

// ParseCredentials reads the Encode format.
func ParseCredentials(s string) (Hash, Credentials, error) {
	method, rest, ok := strings.Cut(s, "$")
	if !ok {
		return "", Credentials{}, errors.New("scram: credentials: want METHOD$iterations:salt$StoredKey:ServerKey")
	}
	var h Hash
	switch method {
	case SHA256.Method():
		h = SHA256
	case SHA512.Method():
		h = SHA512
	default:
		return "", Credentials{}, fmt.Errorf("scram: credentials: unknown method %q", method)
	}
	salted, keys, ok := strings.Cut(rest, "$")
	iters, saltB64, ok1 := strings.Cut(salted, ":")
	storedB64, serverB64, ok2 := strings.Cut(keys, ":")
	if !ok || !ok1 || !ok2 {
		return "", Credentials{}, errors.New("scram: credentials: want METHOD$iterations:salt$StoredKey:ServerKey")
	}
	var c Credentials
	var err error
	if c.Iterations, err = strconv.Atoi(iters); err != nil {
		return "", Credentials{}, errors.New("scram: credentials: iterations are not a number")
	}
	e := base64.StdEncoding.Strict()
	if c.Salt, err = e.DecodeString(saltB64); err != nil {
		return "", Credentials{}, errors.New("scram: credentials: salt is not base64")
	}
	if c.StoredKey, err = e.DecodeString(storedB64); err != nil {
		return "", Credentials{}, errors.New("scram: credentials: StoredKey is not base64")
	}
	if c.ServerKey, err = e.DecodeString(serverB64); err != nil {
		return "", Credentials{}, errors.New("scram: credentials: ServerKey is not base64")
	}
	if err := c.Validate(h); err != nil {
		return "", Credentials{}, err
	}
	return h, c, nil
}
