package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// jwksServer is an HTTPS JWKS endpoint on loopback whose key set, availability and
// request count the test controls.
type jwksServer struct {
	srv     *httptest.Server
	caFile  string
	fetches atomic.Int64
	up      atomic.Bool
	mu      sync.Mutex
	keys    []map[string]string
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	j := &jwksServer{}
	j.up.Store(true)
	j.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		if !j.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		j.mu.Lock()
		body, err := json.Marshal(map[string]any{"keys": j.keys})
		j.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	j.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	j.srv.StartTLS()
	t.Cleanup(j.srv.Close)
	j.caFile = writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: j.srv.Certificate().Raw}))
	return j
}

func (j *jwksServer) serve(keys ...map[string]string) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

func (j *jwksServer) config() Config {
	return Config{
		UseJWKS:                   true,
		Endpoint:                  j.srv.URL + "/.well-known/jwks.json",
		SSL:                       tlsconf.ClientOptions{CACertFile: j.caFile},
		RefreshInterval:           time.Hour,
		UnknownKIDRefreshInterval: time.Hour,
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ecJWK is the public JWK of a P-256 key.
func ecJWK(k *ecdsa.PrivateKey, kid string) map[string]string {
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		panic(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": b64(raw[1:33]), "y": b64(raw[33:])}
}

func TestJWKSAllow(t *testing.T) {
	srv := newJWKSServer(t)
	k1 := ecKey(t, elliptic.P256())
	srv.serve(ecJWK(k1, "k1"))
	a := newAuth(t, srv.config())
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, valid(nil), "k1")))
	// A token without kid is checked against every key that fits.
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, valid(nil), "")))
	// A key not in the set is refused, with or without a kid.
	other := ecKey(t, elliptic.P256())
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, other, valid(nil), "k1")), "signature")
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, other, valid(nil), "")), "signature")
	// The claim checks apply as with a static key.
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}, "k1")), "expired")
}

// Attack: the JWKS (by mistake or after tampering) holds a symmetric "oct" key; a token
// signed with HS256 and that key must still be refused.
func TestJWKSRefusesSymmetricKeys(t *testing.T) {
	srv := newJWKSServer(t)
	secret := []byte(strings.Repeat("z", 64))
	srv.serve(map[string]string{"kty": "oct", "kid": "h", "k": b64(secret)})
	a := newAuth(t, srv.config())
	for _, kid := range []string{"h", ""} {
		r := auth(a, testInfo(), sign(t, jwt.SigningMethodHS256, secret, valid(nil), kid))
		wantDeny(t, r, "signing method HS256 is invalid")
	}
}

// Attack: a token whose alg is RS256 names an EC key's kid.
func TestJWKSKeyMustFitAlgorithm(t *testing.T) {
	srv := newJWKSServer(t)
	ec := ecKey(t, elliptic.P256())
	jwk := ecJWK(ec, "k1")
	delete(jwk, "alg") // no alg in the JWK: only the key type can refuse the mismatch
	srv.serve(jwk)
	a := newAuth(t, srv.config())
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, ec, valid(nil), "k1")))
	rsaPriv := rsaKey(t, 2048)
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodRS256, rsaPriv, valid(nil), "k1")), "does not fit")
}

func TestJWKSRotation(t *testing.T) {
	srv := newJWKSServer(t)
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	srv.serve(ecJWK(k1, "k1"))
	a := newAuth(t, srv.config())
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, valid(nil), "k1")))
	before := srv.fetches.Load()

	// The issuer rotates: k2 replaces k1. The periodic refresh is an hour away; the first
	// token naming k2 makes the authenticator fetch the set again.
	srv.serve(ecJWK(k2, "k2"))
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k2, valid(nil), "k2")))
	if got := srv.fetches.Load() - before; got != 1 {
		t.Fatalf("%d fetches for the rotation, want 1", got)
	}
	// k1 is gone from the refreshed set.
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, valid(nil), "k1")), "no usable JWKS key for kid \"k1\"")
}

// Attack: tokens with random kids, each of which would make a naive verifier fetch the
// JWKS, turning the broker into an amplifier against the identity provider.
func TestJWKSUnknownKIDFloodIsRateLimited(t *testing.T) {
	srv := newJWKSServer(t)
	k1 := ecKey(t, elliptic.P256())
	srv.serve(ecJWK(k1, "k1"))
	a := newAuth(t, srv.config())
	start := srv.fetches.Load() // the fetch at start

	attacker := ecKey(t, elliptic.P256())
	const flood = 200
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tok := sign(t, jwt.SigningMethodES256, attacker, valid(nil), fmt.Sprintf("kid-%d", i))
			r := a.Authenticate(ctx, testInfo(), &authn.Credentials{Password: []byte(tok)})
			if r.Outcome == authn.Allow {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 0 {
		t.Fatalf("%d forged tokens allowed", allowed.Load())
	}
	// One refresh per unknown-kid window (an hour here), whatever the flood.
	if got := srv.fetches.Load() - start; got > 1 {
		t.Fatalf("%d JWKS fetches for %d unknown kids, want at most 1", got, flood)
	}
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, valid(nil), "k1")))
}

func TestJWKSDownAtStart(t *testing.T) {
	srv := newJWKSServer(t)
	k1 := ecKey(t, elliptic.P256())
	srv.serve(ecJWK(k1, "k1"))
	srv.up.Store(false)
	cfg := srv.config()
	cfg.RefreshInterval = time.Second
	cfg.UnknownKIDRefreshInterval = time.Second
	a := newAuth(t, cfg) // starts although the endpoint fails
	tok := sign(t, jwt.SigningMethodES256, k1, valid(nil), "k1")

	r := auth(a, testInfo(), tok)
	if r.Outcome != authn.Deny || r.DenyReason() != packet.NotAuthorized || !strings.Contains(r.Detail, "no keys loaded") {
		t.Fatalf("with the JWKS down: %v %v %q, want deny / not authorized / no keys loaded", r.Outcome, r.DenyReason(), r.Detail)
	}

	srv.up.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = auth(a, testInfo(), tok)
		if r.Outcome == authn.Allow {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys never arrived after the endpoint came up: %v %q", r.Outcome, r.Detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestJWKSUntrustedCertificate(t *testing.T) {
	srv := newJWKSServer(t)
	k1 := ecKey(t, elliptic.P256())
	srv.serve(ecJWK(k1, "k1"))
	cfg := srv.config()
	cfg.SSL = tlsconf.ClientOptions{} // system roots: the test server's certificate is not trusted
	a := newAuth(t, cfg)
	r := auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k1, valid(nil), "k1"))
	if r.Outcome != authn.Deny {
		t.Fatalf("keys from an unverified server were used: %v", r.Outcome)
	}
}

func TestJWKSOversizedResponse(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[],"pad":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", maxJWKSSize)))
		_, _ = w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	ca := writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	a := newAuth(t, Config{UseJWKS: true, Endpoint: srv.URL, SSL: tlsconf.ClientOptions{CACertFile: ca}})
	if n := a.jwks.keyCount(context.Background()); n != 0 {
		t.Fatalf("%d keys from an oversized answer", n)
	}
}

func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		size    int
		wantErr bool
	}{{10, false}, {16, false}, {17, true}, {1000, true}} {
		b := &limitedBody{rc: nopCloser{strings.NewReader(strings.Repeat("a", tc.size))}, left: 16}
		var buf [7]byte
		var n int
		var err error
		for err == nil {
			var k int
			k, err = b.Read(buf[:])
			n += k
		}
		if tc.wantErr != (err == errTooLarge) {
			t.Errorf("size %d: read %d bytes, err %v", tc.size, n, err)
		}
		if n > 16 {
			t.Errorf("size %d: read %d bytes past the limit", tc.size, n)
		}
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
