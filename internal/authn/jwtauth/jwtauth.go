// Package jwtauth authenticates clients that present a JSON Web Token in the CONNECT
// password (or user name): the signature is checked against a configured HMAC secret, a
// public key or the keys of a JWKS endpoint, with the accepted algorithms pinned by
// configuration; then exp/nbf/iat and the configured claim checks decide. A valid token can
// carry authorization rules, client attributes and the superuser flag.
package jwtauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Name is the authenticator's name in logs and metrics.
const Name = "jwt"

// Size bounds: real tokens are well under a kilobyte or two.
const (
	maxTokenSize  = 16 << 10
	maxHeaderSize = 4 << 10
)

// Authenticator verifies JWTs. It is safe for concurrent use.
type Authenticator struct {
	s      *settings
	parser *jwt.Parser
	jwks   *jwks // nil without use_jwks
	log    *slog.Logger
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates cfg and builds the authenticator. With use_jwks it fetches the key set
// once before returning; when the endpoint cannot be reached it logs the error and starts
// anyway, refusing every token until the keys arrive. Call Close to stop the refresh.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(s.algs),
		jwt.WithLeeway(s.leeway),
		jwt.WithIssuedAt(),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(),
	}
	if s.requireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	a := &Authenticator{s: s, parser: jwt.NewParser(opts...), log: log}
	if s.endpoint != "" {
		if a.jwks, err = newJWKS(ctx, s, log); err != nil {
			return nil, err
		}
		if a.jwks.keyCount(ctx) == 0 {
			log.Error("jwt: no keys loaded from the JWKS endpoint at start; every token is refused until they arrive",
				"endpoint", s.endpoint)
		}
	}
	log.Info("jwt authenticator ready", "from", s.from, "keys", s.description,
		"require_exp", s.requireExp, "leeway", s.leeway)
	return a, nil
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Name }

// Close stops the JWKS refresh and closes idle connections. It is safe to call more than once.
func (a *Authenticator) Close() {
	if a.jwks != nil {
		a.jwks.close()
	}
}

// Authenticate implements authn.Authenticator. A field without something shaped like a
// JWS (three dot-separated parts, the first a JSON object) is Ignore; any token that fails is Deny with
// BadUserNameOrPassword and a Detail naming the failure.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	var tok string
	if cred != nil {
		if a.s.from == FromUsername {
			tok = cred.Username
		} else {
			tok = string(cred.Password)
		}
	}
	if !looksLikeJWS(tok) {
		return authn.Ignored("no JWT in the " + a.s.from)
	}
	if len(tok) > maxTokenSize {
		return deny("token larger than %d bytes", maxTokenSize)
	}
	claims := jwt.MapClaims{}
	keyFn := a.staticKey
	if a.jwks != nil {
		keyFn = a.jwks.keyfunc(ctx)
	}
	if _, err := a.parser.ParseWithClaims(tok, claims, keyFn); err != nil {
		return a.failure(ctx, err)
	}
	if info == nil {
		info = &clientinfo.Info{}
	}
	return a.grant(info, claims, tok)
}

// looksLikeJWS reports whether s has the compact JWS shape header.payload.signature with a
// header that decodes to a JSON object, so an ordinary password that happens to hold two
// dots is not taken for a token.
func looksLikeJWS(s string) bool {
	if strings.Count(s, ".") != 2 {
		return false
	}
	head, _, _ := strings.Cut(s, ".")
	if head == "" || len(head) > maxHeaderSize {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(head, "="))
	if err != nil {
		return false
	}
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// staticKey returns the configured secret or public key. The parser has already refused
// algorithms outside the pinned set; the type check is a second lock on the same door.
func (a *Authenticator) staticKey(t *jwt.Token) (any, error) {
	if err := checkKey(t.Method.Alg(), a.s.key); err != nil {
		return nil, err
	}
	return a.s.key, nil
}

func deny(format string, args ...any) authn.Result {
	return authn.Denied(packet.BadUserNameOrPassword, "jwt: "+fmt.Sprintf(format, args...))
}

// failure turns a parse error into a Deny whose Detail names the check that failed. jwt's
// errors never quote the token.
func (a *Authenticator) failure(ctx context.Context, err error) authn.Result {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return deny("malformed token: %v", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable) && a.jwks != nil:
		if a.jwks.keyCount(ctx) == 0 {
			r := deny("no keys loaded from the JWKS endpoint yet")
			r.Reason = packet.NotAuthorized
			return r
		}
		if ke := (*keyError)(nil); errors.As(err, &ke) {
			return deny("%v", ke)
		}
		return deny("token cannot be verified: %v", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return deny("token cannot be verified: %v", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return deny("signature refused: %v", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return deny("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return deny("token not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return deny("token issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return deny("token has no exp claim (require_exp is on)")
	}
	return deny("token refused: %v", err)
}

// grant applies the claim checks to a verified token and builds the Allow.
func (a *Authenticator) grant(info *clientinfo.Info, claims jwt.MapClaims, tok string) authn.Result {
	if err := a.verifyClaims(info, claims); err != nil {
		return deny("%v", err)
	}
	res := authn.Allowed()
	res.Principal = principal(claims, tok)
	if raw, ok := claims[a.s.aclClaim]; ok {
		rules, err := parseACL(raw)
		if err != nil {
			return deny("claim %q: %v", a.s.aclClaim, err)
		}
		res.ACL = rules
	}
	for attr, claim := range a.s.attrs {
		if v, ok := claims[claim].(string); ok {
			if res.Attrs == nil {
				res.Attrs = make(map[string]string, len(a.s.attrs))
			}
			res.Attrs[attr] = v
		}
	}
	if a.s.superClaim != "" {
		if v, ok := claims[a.s.superClaim].(bool); ok && v {
			res.Superuser = true
		}
	}
	if a.s.setExpiry {
		exp, err := claims.GetExpirationTime()
		if err != nil {
			return deny("claim exp: %v", err)
		}
		if exp != nil {
			// A token accepted within the leeway stays valid for the leeway too.
			res.ExpiresAt = exp.Add(a.s.leeway)
		}
	}
	return res
}

// principal is who a verified token speaks for: its issuer and subject. The CONNECT's user
// name is not part of it (without verify_claims it is free text), so a client holding a
// token of its own cannot resume another subject's session. A token without a subject
// vouches only for itself: its session can be resumed with that very token.
func principal(claims jwt.MapClaims, tok string) string {
	sub, _ := claims["sub"].(string)
	if sub == "" {
		sum := sha256.Sum256([]byte(tok))
		return "jwt:token=" + hex.EncodeToString(sum[:16])
	}
	iss, _ := claims["iss"].(string)
	return fmt.Sprintf("jwt:iss=%q,sub=%q", iss, sub)
}
