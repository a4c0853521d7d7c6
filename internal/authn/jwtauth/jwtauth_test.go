package jwtauth

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func TestHMACAllow(t *testing.T) {
	for _, tc := range []struct {
		m    jwt.SigningMethod
		size int
	}{
		{jwt.SigningMethodHS256, 32},
		{jwt.SigningMethodHS384, 48},
		{jwt.SigningMethodHS512, 64},
	} {
		t.Run(tc.m.Alg(), func(t *testing.T) {
			ref, secret := secretFile(t, tc.size)
			a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, Algorithms: []string{tc.m.Alg()}})
			exp := time.Now().Add(time.Hour).Truncate(time.Second)
			r := auth(a, testInfo(), sign(t, tc.m, secret, valid(jwt.MapClaims{"exp": exp.Unix()}), ""))
			wantAllow(t, r)
			if !r.ExpiresAt.Equal(exp) {
				t.Fatalf("ExpiresAt %v, want %v", r.ExpiresAt, exp)
			}
			if r.Superuser || r.ACL != nil || r.Attrs != nil {
				t.Fatalf("a plain token granted extras: %+v", r)
			}
		})
	}
}

func TestHMACDefaultAlgorithmsFollowSecretLength(t *testing.T) {
	ref, secret := secretFile(t, 48)
	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref})
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodHS256, secret, valid(nil), "")))
	wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodHS384, secret, valid(nil), "")))
	// 48 bytes is too short for HS512: such tokens are refused even though the signature
	// is right.
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodHS512, secret, valid(nil), "")), "signing method HS512 is invalid")
}

func TestSecretSources(t *testing.T) {
	secret := []byte(strings.Repeat("s", 40))
	t.Run("env", func(t *testing.T) {
		t.Setenv("RAMPART_TEST_JWT_SECRET", string(secret))
		a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: "env:RAMPART_TEST_JWT_SECRET"})
		wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodHS256, secret, valid(nil), "")))
	})
	t.Run("base64", func(t *testing.T) {
		raw := make([]byte, 32)
		for i := range raw {
			raw[i] = byte(i * 7) // binary, not text
		}
		ref := "file:" + writeFile(t, "secret.b64", []byte(base64.StdEncoding.EncodeToString(raw)+"\n"))
		a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, SecretBase64Encoded: true})
		wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodHS256, raw, valid(nil), "")))
	})
}

func TestValidate(t *testing.T) {
	short, _ := secretFile(t, 31)
	ok32, _ := secretFile(t, 32)
	rsaPub := writeFile(t, "rsa.pem", publicKeyPEM(t, &rsaKey(t, 2048).PublicKey))
	rsaSmall := writeFile(t, "rsa1024.pem", publicKeyPEM(t, &rsaKey(t, 1024).PublicKey))
	ecPub := writeFile(t, "ec.pem", publicKeyPEM(t, &ecKey(t, elliptic.P256()).PublicKey))
	der, err := x509.MarshalPKCS8PrivateKey(ecKey(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	private := writeFile(t, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	for _, tc := range []struct {
		name string
		cfg  Config
		want string // part of the error
	}{
		{"short secret", Config{Algorithm: AlgorithmHMAC, Secret: short}, "too short"},
		{"HS384 with a 32-byte secret", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Algorithms: []string{"HS384"}}, "HS384 needs at least 48"},
		{"HS512 with a 32-byte secret", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Algorithms: []string{"HS512"}}, "HS512 needs at least 64"},
		{"inline secret", Config{Algorithm: AlgorithmHMAC, Secret: strings.Repeat("x", 64)}, "inline secrets are refused"},
		{"missing env", Config{Algorithm: AlgorithmHMAC, Secret: "env:RAMPART_TEST_NO_SUCH_VAR"}, "not set"},
		{"missing file", Config{Algorithm: AlgorithmHMAC, Secret: "file:/nonexistent/secret"}, "secret"},
		{"no secret", Config{Algorithm: AlgorithmHMAC}, "secret: required"},
		{"no algorithm", Config{Secret: ok32}, "algorithm: required"},
		{"bad algorithm", Config{Algorithm: "rsa"}, "want hmac-based or public-key"},
		{"alg none", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Algorithms: []string{"none"}}, "none is never accepted"},
		{"RS256 with a secret", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Algorithms: []string{"RS256"}}, "not an HMAC algorithm"},
		{"HS256 with a public key", Config{Algorithm: AlgorithmPublicKey, PublicKey: rsaPub, Algorithms: []string{"HS256"}}, "HMAC algorithm"},
		{"ES256 with an RSA key", Config{Algorithm: AlgorithmPublicKey, PublicKey: rsaPub, Algorithms: []string{"ES256"}}, "needs an ECDSA key"},
		{"ES384 with a P-256 key", Config{Algorithm: AlgorithmPublicKey, PublicKey: ecPub, Algorithms: []string{"ES384"}}, "curve P-384"},
		{"RSA 1024", Config{Algorithm: AlgorithmPublicKey, PublicKey: rsaSmall}, "too short"},
		{"private key", Config{Algorithm: AlgorithmPublicKey, PublicKey: private}, "give only the public key"},
		{"secret with public-key", Config{Algorithm: AlgorithmPublicKey, PublicKey: rsaPub, Secret: ok32}, "secret: not used"},
		{"no public key", Config{Algorithm: AlgorithmPublicKey}, "public_key: required"},
		{"bad from", Config{From: "clientid", Algorithm: AlgorithmHMAC, Secret: ok32}, "from"},
		{"leeway too long", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Leeway: 6 * time.Minute}, "leeway"},
		{"negative leeway", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Leeway: -time.Second}, "leeway"},
		{"verify_claims password", Config{Algorithm: AlgorithmHMAC, Secret: ok32, VerifyClaims: map[string]string{"pw": "${password}"}}, "only allowed in authentication"},
		{"verify_claims unknown var", Config{Algorithm: AlgorithmHMAC, Secret: ok32, VerifyClaims: map[string]string{"sub": "${nope}"}}, "unknown variable"},
		{"client_attrs bad name", Config{Algorithm: AlgorithmHMAC, Secret: ok32, ClientAttrs: map[string]string{"a}b": "c"}}, "attribute name"},
		{"jwks over http", Config{UseJWKS: true, Endpoint: "http://127.0.0.1:1/jwks"}, "https"},
		{"jwks without endpoint", Config{UseJWKS: true}, "endpoint: required"},
		{"jwks with secret", Config{UseJWKS: true, Endpoint: "https://127.0.0.1/jwks", Secret: ok32}, "secret: not used"},
		{"jwks with HS256", Config{UseJWKS: true, Endpoint: "https://127.0.0.1/jwks", Algorithms: []string{"HS256"}}, "cannot be used with JWKS"},
		{"jwks refresh too often", Config{UseJWKS: true, Endpoint: "https://127.0.0.1/jwks", RefreshInterval: time.Millisecond}, "refresh_interval"},
		{"jwks verify_none without allow", Config{UseJWKS: true, Endpoint: "https://127.0.0.1/jwks", SSL: tlsconf.ClientOptions{Verify: "verify_none"}}, "allow_verify_none"},
		{"endpoint without jwks", Config{Algorithm: AlgorithmHMAC, Secret: ok32, Endpoint: "https://127.0.0.1/jwks"}, "only used with use_jwks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if _, err := New(context.Background(), tc.cfg, nil); err == nil {
				t.Fatal("New accepted what Validate refused")
			}
		})
	}
}

func TestPublicKeys(t *testing.T) {
	rsaPriv, rsaOther := rsaKey(t, 2048), rsaKey(t, 2048)
	ec256, ec256Other := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	ec384, ec384Other := ecKey(t, elliptic.P384()), ecKey(t, elliptic.P384())
	ed, edOther := edKey(t), edKey(t)
	for _, tc := range []struct {
		name  string
		m     jwt.SigningMethod
		priv  any
		pub   any
		other any // a key of the same kind that the configuration does not hold
	}{
		{"RS256", jwt.SigningMethodRS256, rsaPriv, &rsaPriv.PublicKey, rsaOther},
		{"RS512", jwt.SigningMethodRS512, rsaPriv, &rsaPriv.PublicKey, rsaOther},
		{"PS256", jwt.SigningMethodPS256, rsaPriv, &rsaPriv.PublicKey, rsaOther},
		{"ES256", jwt.SigningMethodES256, ec256, &ec256.PublicKey, ec256Other},
		{"ES384", jwt.SigningMethodES384, ec384, &ec384.PublicKey, ec384Other},
		{"EdDSA", jwt.SigningMethodEdDSA, ed, ed.Public(), edOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "pub.pem", publicKeyPEM(t, tc.pub))
			a := newAuth(t, Config{Algorithm: AlgorithmPublicKey, PublicKey: path})
			wantAllow(t, auth(a, testInfo(), sign(t, tc.m, tc.priv, valid(nil), "")))

			forged := sign(t, tc.m, tc.other, valid(nil), "")
			r := auth(a, testInfo(), forged)
			wantDeny(t, r, "signature")
			noToken(t, r, forged)
		})
	}
	// A key pins its algorithms: an ES256 token is refused by an RSA configuration.
	path := writeFile(t, "rsa.pem", publicKeyPEM(t, &rsaPriv.PublicKey))
	a := newAuth(t, Config{Algorithm: AlgorithmPublicKey, PublicKey: path})
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, ec256, valid(nil), "")), "signing method ES256 is invalid")
}

func TestPublicKeyFromInlinePEMAndFilePrefix(t *testing.T) {
	k := ecKey(t, elliptic.P256())
	pemText := publicKeyPEM(t, &k.PublicKey)
	for _, ref := range []string{string(pemText), "file:" + writeFile(t, "pub.pem", pemText)} {
		a := newAuth(t, Config{Algorithm: AlgorithmPublicKey, PublicKey: ref})
		wantAllow(t, auth(a, testInfo(), sign(t, jwt.SigningMethodES256, k, valid(nil), "")))
	}
}

// Attack: a token with "alg": "none" and no signature.
func TestAlgNoneRefused(t *testing.T) {
	ref, _ := secretFile(t, 32)
	rsaPriv := rsaKey(t, 2048)
	rsaPath := writeFile(t, "rsa.pem", publicKeyPEM(t, &rsaPriv.PublicKey))
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(nil), "")
	// Hand-made variants: "None" capitalised, and a signature part that is not empty.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"None","typ":"JWT"}`))
	body := strings.Split(none, ".")[1]
	for _, cfg := range []Config{
		{Algorithm: AlgorithmHMAC, Secret: ref},
		{Algorithm: AlgorithmPublicKey, PublicKey: rsaPath},
	} {
		a := newAuth(t, cfg)
		for _, tok := range []string{none, hdr + "." + body + ".", hdr + "." + body + ".c2ln"} {
			r := auth(a, testInfo(), tok)
			if r.Outcome != authn.Deny {
				t.Fatalf("%s: alg none token answered %v (%s)", cfg.Algorithm, r.Outcome, r.Detail)
			}
			wantDeny(t, r, "")
		}
	}
}

// Attack: the configuration holds an RSA public key; the attacker signs with HS256 using
// the public key's bytes as the HMAC secret, hoping the verifier feeds the same bytes to
// HMAC.
func TestAlgorithmConfusionRefused(t *testing.T) {
	rsaPriv := rsaKey(t, 2048)
	pemBytes := publicKeyPEM(t, &rsaPriv.PublicKey)
	path := writeFile(t, "rsa.pem", pemBytes)
	a := newAuth(t, Config{Algorithm: AlgorithmPublicKey, PublicKey: path})
	block, _ := pem.Decode(pemBytes)
	for _, secret := range [][]byte{pemBytes, block.Bytes} {
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
			tok := sign(t, m, secret, valid(nil), "")
			r := auth(a, testInfo(), tok)
			wantDeny(t, r, "signing method "+m.Alg()+" is invalid")
			noToken(t, r, tok)
		}
	}
	// Even if the parser's pin were bypassed, the key lookup refuses an RSA key for HMAC.
	if _, err := a.staticKey(&jwt.Token{Method: jwt.SigningMethodHS256}); err == nil {
		t.Fatal("staticKey handed the RSA key to HS256")
	}
}

func TestTimeClaims(t *testing.T) {
	ref, secret := secretFile(t, 32)
	now := time.Now()
	hour := now.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name   string
		cfg    Config
		claims jwt.MapClaims
		detail string // "" = allow
	}{
		{"expired", Config{}, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}, "token expired"},
		{"expired within leeway", Config{Leeway: 2 * time.Minute}, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}, ""},
		{"expired past leeway", Config{Leeway: 30 * time.Second}, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}, "token expired"},
		{"missing exp", Config{}, jwt.MapClaims{"sub": "dev-1"}, "no exp claim"},
		{"missing exp allowed", Config{RequireExp: ptr(false)}, jwt.MapClaims{"sub": "dev-1"}, ""},
		{"exp not a number", Config{}, jwt.MapClaims{"exp": "tomorrow"}, "refused"},
		{"nbf in the future", Config{}, jwt.MapClaims{"exp": hour, "nbf": now.Add(time.Minute).Unix()}, "not valid yet"},
		{"nbf within leeway", Config{Leeway: 2 * time.Minute}, jwt.MapClaims{"exp": hour, "nbf": now.Add(time.Minute).Unix()}, ""},
		{"iat in the future", Config{}, jwt.MapClaims{"exp": hour, "iat": now.Add(time.Minute).Unix()}, "issued in the future"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Algorithm, cfg.Secret = AlgorithmHMAC, ref
			a := newAuth(t, cfg)
			r := auth(a, testInfo(), sign(t, jwt.SigningMethodHS256, secret, tc.claims, ""))
			if tc.detail == "" {
				wantAllow(t, r)
				return
			}
			wantDeny(t, r, tc.detail)
		})
	}
}

func TestExpiresAt(t *testing.T) {
	ref, secret := secretFile(t, 32)
	exp := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp.Unix()}, "")

	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, Leeway: time.Minute})
	r := auth(a, testInfo(), tok)
	wantAllow(t, r)
	if want := exp.Add(time.Minute); !r.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt %v, want exp+leeway %v", r.ExpiresAt, want)
	}

	a = newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, Leeway: time.Minute, DisconnectAfterExpire: ptr(false)})
	r = auth(a, testInfo(), tok)
	wantAllow(t, r)
	if !r.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt %v with disconnect_after_expire false", r.ExpiresAt)
	}
}

func TestBadSignatureAndTampering(t *testing.T) {
	ref, secret := secretFile(t, 32)
	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref})
	other := []byte(strings.Repeat("o", 32))
	wantDeny(t, auth(a, testInfo(), sign(t, jwt.SigningMethodHS256, other, valid(nil), "")), "signature")

	good := strings.Split(sign(t, jwt.SigningMethodHS256, secret, valid(nil), ""), ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999,"is_superuser":true}`))
	wantDeny(t, auth(a, testInfo(), good[0]+"."+forged+"."+good[2]), "signature")

	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	wantDeny(t, auth(a, testInfo(), head+".!!!.c2ln"), "malformed")
	wantDeny(t, auth(a, testInfo(), head+"."+strings.Repeat("a", maxTokenSize)+".c2ln"), "larger than")
}

func TestNoTokenIsIgnored(t *testing.T) {
	ref, secret := secretFile(t, 32)
	tok := sign(t, jwt.SigningMethodHS256, secret, valid(nil), "")
	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref})
	for name, cred := range map[string]*authn.Credentials{
		"nil credentials":    nil,
		"no password":        {Username: "alice"},
		"empty password":     {Username: "alice", Password: []byte{}},
		"ordinary password":  {Username: "alice", Password: []byte("hunter2")},
		"password with dots": {Username: "alice", Password: []byte("my.pass.word")},
		"token in username":  {Username: tok},
	} {
		if r := a.Authenticate(context.Background(), testInfo(), cred); r.Outcome != authn.Ignore {
			t.Errorf("%s: %v (%s), want ignore", name, r.Outcome, r.Detail)
		}
	}

	u := newAuth(t, Config{From: FromUsername, Algorithm: AlgorithmHMAC, Secret: ref})
	wantAllow(t, u.Authenticate(context.Background(), testInfo(), &authn.Credentials{Username: tok}))
	if r := u.Authenticate(context.Background(), testInfo(), &authn.Credentials{Username: "alice", Password: []byte(tok)}); r.Outcome != authn.Ignore {
		t.Fatalf("from username: a token in the password answered %v", r.Outcome)
	}
}

func TestVerifyClaims(t *testing.T) {
	ref, secret := secretFile(t, 32)
	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, VerifyClaims: map[string]string{
		"sub": "${clientid}",
		"aud": "mqtt-${username}",
	}})
	info := testInfo() // dev-1 / alice
	for _, tc := range []struct {
		name   string
		info   *clientinfo.Info
		claims jwt.MapClaims
		detail string // "" = allow
	}{
		{"match", info, jwt.MapClaims{"sub": "dev-1", "aud": "mqtt-alice"}, ""},
		{"aud list holds it", info, jwt.MapClaims{"sub": "dev-1", "aud": []string{"other", "mqtt-alice"}}, ""},
		{"sub mismatch", info, jwt.MapClaims{"sub": "dev-2", "aud": "mqtt-alice"}, `claim "sub" does not match`},
		{"aud list without it", info, jwt.MapClaims{"sub": "dev-1", "aud": []string{"other"}}, `claim "aud" does not match`},
		{"sub missing", info, jwt.MapClaims{"aud": "mqtt-alice"}, `claim "sub" missing`},
		{"sub not a string", info, jwt.MapClaims{"sub": 1, "aud": "mqtt-alice"}, `claim "sub" does not match`},
		// The client id is taken literally: "${username}" in it is not expanded again, so
		// a token for alice cannot be replayed by a client calling itself "${username}".
		{"client id injection", &clientinfo.Info{ClientID: "${username}", Username: "alice"},
			jwt.MapClaims{"sub": "alice", "aud": "mqtt-alice"}, `claim "sub" does not match`},
		{"empty username never matches", &clientinfo.Info{ClientID: "dev-1"},
			jwt.MapClaims{"sub": "dev-1", "aud": "mqtt-"}, "${username} is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid(tc.claims)
			if _, ok := tc.claims["sub"]; !ok {
				delete(c, "sub")
			}
			r := auth(a, tc.info, sign(t, jwt.SigningMethodHS256, secret, c, ""))
			if tc.detail == "" {
				wantAllow(t, r)
				return
			}
			wantDeny(t, r, tc.detail)
		})
	}
	// The literal client id "${username}" matches only a token made for that literal id.
	r := auth(a, &clientinfo.Info{ClientID: "${username}", Username: "alice"},
		sign(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"sub": "${username}", "aud": "mqtt-alice"}), ""))
	wantAllow(t, r)
}

func TestACLClaim(t *testing.T) {
	ref, secret := secretFile(t, 32)
	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref})
	tok := func(acl any) string {
		return sign(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{"acl": acl}), "")
	}
	f := false
	t.Run("rules", func(t *testing.T) {
		r := auth(a, testInfo(), tok([]any{
			map[string]any{"permission": "allow", "action": "publish", "topic": "devices/${clientid}/up", "qos": []int{0, 1}, "retain": false},
			map[string]any{"permission": "allow", "action": "sub", "topics": []string{"devices/${clientid}/down"}},
			map[string]any{"permission": "deny", "action": "all", "topic": "#"},
		}))
		wantAllow(t, r)
		want := []authz.Rule{
			{Permission: authz.PermAllow, Action: authz.ActPublish, Topics: []string{"devices/${clientid}/up"}, QoS: []byte{0, 1}, Retain: &f},
			{Permission: authz.PermAllow, Action: authz.ActSubscribe, Topics: []string{"devices/${clientid}/down"}},
			{Permission: authz.PermDeny, Action: authz.ActAll, Topics: []string{"#"}},
		}
		sameRules(t, r.ACL, want)
	})
	t.Run("legacy object", func(t *testing.T) {
		r := auth(a, testInfo(), tok(map[string]any{"pub": []string{"a/1", "a/2"}, "sub": []string{"b/#"}, "all": []string{"c"}}))
		wantAllow(t, r)
		sameRules(t, r.ACL, []authz.Rule{
			{Permission: authz.PermAllow, Action: authz.ActPublish, Topics: []string{"a/1", "a/2"}},
			{Permission: authz.PermAllow, Action: authz.ActSubscribe, Topics: []string{"b/#"}},
			{Permission: authz.PermAllow, Action: authz.ActAll, Topics: []string{"c"}},
		})
	})
	t.Run("custom claim name", func(t *testing.T) {
		b := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, ACLClaimName: "perms"})
		r := auth(b, testInfo(), sign(t, jwt.SigningMethodHS256, secret, valid(jwt.MapClaims{
			"perms": []any{map[string]any{"permission": "allow", "action": "all", "topic": "x"}},
			"acl":   "ignored: not the configured claim",
		}), ""))
		wantAllow(t, r)
		if len(r.ACL) != 1 || r.ACL[0].Topics[0] != "x" {
			t.Fatalf("ACL %+v", r.ACL)
		}
	})
	for name, bad := range map[string]any{
		"string":             "allow all",
		"number":             1,
		"unknown permission": []any{map[string]any{"permission": "maybe", "action": "all", "topic": "t"}},
		"unknown action":     []any{map[string]any{"permission": "allow", "action": "read", "topic": "t"}},
		"no topic":           []any{map[string]any{"permission": "allow", "action": "all"}},
		"qos 3":              []any{map[string]any{"permission": "allow", "action": "all", "topic": "t", "qos": 3}},
		"rule not an object": []any{"allow t"},
		"legacy unknown key": map[string]any{"pub": []string{"a"}, "admin": []string{"#"}},
		"legacy not a list":  map[string]any{"pub": "a"},
		"legacy empty topic": map[string]any{"sub": []string{""}},
	} {
		t.Run("malformed "+name, func(t *testing.T) {
			wantDeny(t, auth(a, testInfo(), tok(bad)), `claim "acl"`)
		})
	}
}

func sameRules(t *testing.T, got, want []authz.Rule) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rules %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Permission != w.Permission || g.Action != w.Action ||
			strings.Join(g.Topics, "|") != strings.Join(w.Topics, "|") || string(g.QoS) != string(w.QoS) ||
			(g.Retain == nil) != (w.Retain == nil) || (g.Retain != nil && *g.Retain != *w.Retain) {
			t.Fatalf("rule %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestClientAttrsAndSuperuser(t *testing.T) {
	ref, secret := secretFile(t, 32)
	claims := valid(jwt.MapClaims{"tenant": "acme", "zone": 7, "role": "ops", "is_superuser": true, "admin": "true"})
	tok := sign(t, jwt.SigningMethodHS256, secret, claims, "")

	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref,
		ClientAttrs: map[string]string{"tenant": "tenant", "zone": "zone", "group": "role", "missing": "nope"}})
	r := auth(a, testInfo(), tok)
	wantAllow(t, r)
	if len(r.Attrs) != 2 || r.Attrs["tenant"] != "acme" || r.Attrs["group"] != "ops" {
		t.Fatalf("Attrs %v: want tenant and group only (zone is not a string, nope is absent)", r.Attrs)
	}
	if r.Superuser {
		t.Fatal("superuser from a token without is_superuser_claim configured")
	}

	s := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, IsSuperuserClaim: "is_superuser"})
	if r := auth(s, testInfo(), tok); r.Outcome != authn.Allow || !r.Superuser {
		t.Fatalf("is_superuser true: %+v", r)
	}
	s = newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, IsSuperuserClaim: "admin"})
	if r := auth(s, testInfo(), tok); r.Outcome != authn.Allow || r.Superuser {
		t.Fatalf("a string \"true\" made a superuser: %+v", r)
	}
}

// TestPrincipal: the session owner a token vouches for is its issuer and subject, never
// the CONNECT's user name; a token without a subject vouches only for itself.
func TestPrincipal(t *testing.T) {
	ref, secret := secretFile(t, 32)
	a := newAuth(t, Config{Algorithm: AlgorithmHMAC, Secret: ref, Algorithms: []string{"HS256"}})
	exp := time.Now().Add(time.Hour).Unix()
	tok := func(claims jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, claims, "") }
	alice := tok(jwt.MapClaims{"exp": exp, "sub": "alice", "iss": "idp"})
	alice2 := tok(jwt.MapClaims{"exp": exp + 1, "sub": "alice", "iss": "idp"})
	other := tok(jwt.MapClaims{"exp": exp, "sub": "alice", "iss": "other-idp"})
	noSub1 := tok(jwt.MapClaims{"exp": exp})
	noSub2 := tok(jwt.MapClaims{"exp": exp + 1})
	p := func(token, user string) string {
		info := testInfo()
		info.Username = user
		r := auth(a, info, token)
		wantAllow(t, r)
		return r.Principal
	}
	if got := p(alice, "anything"); got != `jwt:iss="idp",sub="alice"` {
		t.Fatalf("principal %q", got)
	}
	if p(alice, "x") != p(alice2, "y") {
		t.Fatal("two tokens of one subject are different principals")
	}
	if p(alice, "x") == p(other, "x") {
		t.Fatal("the same subject from another issuer is the same principal")
	}
	if p(noSub1, "x") == p(noSub2, "x") || p(noSub1, "x") != p(noSub1, "y") {
		t.Fatal("a token without sub must vouch for itself only")
	}
}
