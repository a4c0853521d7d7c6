package jwtauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// secretFile writes a secret of n bytes and returns its file: reference and the bytes.
func secretFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	secret := []byte(strings.Repeat("k", n))
	return "file:" + writeFile(t, "secret", append(secret, '\n')), secret
}

func publicKeyPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign makes a token. kid, when not empty, goes into the header.
func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", m.Alg(), err)
	}
	return s
}

// valid returns claims for a token valid for an hour.
func valid(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "dev-1", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func newAuth(t *testing.T, cfg Config) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func testInfo() *clientinfo.Info {
	return &clientinfo.Info{ClientID: "dev-1", Username: "alice"}
}

func auth(a *Authenticator, info *clientinfo.Info, token string) authn.Result {
	return a.Authenticate(context.Background(), info, &authn.Credentials{Username: info.Username, Password: []byte(token)})
}

func wantAllow(t *testing.T, r authn.Result) {
	t.Helper()
	if r.Outcome != authn.Allow {
		t.Fatalf("outcome %v (%s), want allow", r.Outcome, r.Detail)
	}
}

// wantDeny checks a Deny with BadUserNameOrPassword whose Detail contains detail.
func wantDeny(t *testing.T, r authn.Result, detail string) {
	t.Helper()
	if r.Outcome != authn.Deny {
		t.Fatalf("outcome %v (%s), want deny", r.Outcome, r.Detail)
	}
	if r.DenyReason() != packet.BadUserNameOrPassword {
		t.Fatalf("reason %v, want bad user name or password", r.DenyReason())
	}
	if !strings.Contains(r.Detail, detail) {
		t.Fatalf("detail %q does not mention %q", r.Detail, detail)
	}
}

// noToken checks that a Detail never quotes the token.
func noToken(t *testing.T, r authn.Result, token string) {
	t.Helper()
	for _, part := range strings.Split(token, ".") {
		if len(part) > 8 && strings.Contains(r.Detail, part) {
			t.Fatalf("detail %q quotes the token", r.Detail)
		}
	}
}

func ptr[T any](v T) *T { return &v }
