package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/secret"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config is the configuration of one JWT authenticator. Key names in comments are the YAML
// keys (EMQX's where EMQX has one).
type Config struct {
	// From names the CONNECT field that carries the token: "password" (default) or
	// "username". (from)
	From string

	// UseJWKS selects where verification keys come from: false = a configured secret or
	// public key, true = a JWKS endpoint. (use_jwks)
	UseJWKS bool

	// Algorithm is "hmac-based" or "public-key" when UseJWKS is false. (algorithm)
	Algorithm string
	// Secret is the HMAC secret as "file:/path" or "env:NAME"; inline secrets are refused.
	// A file's trailing line break is dropped. (secret)
	Secret string
	// SecretBase64Encoded says the secret is base64 text. (secret_base64_encoded)
	SecretBase64Encoded bool
	// PublicKey is the verification key for "public-key": a PEM file as "/path" or
	// "file:/path", or the PEM text itself. PUBLIC KEY (PKIX), RSA PUBLIC KEY (PKCS #1)
	// and CERTIFICATE blocks are read; a private key is refused. RSA keys need at least
	// 2048 bits. (public_key)
	PublicKey string
	// Algorithms pins the JWS algorithms accepted (RS256, PS384, ES256, EdDSA, HS512, ...).
	// Empty = every algorithm the key supports: for an HMAC secret, the HS algorithms
	// whose minimum secret length it meets (HS256 32 bytes, HS384 48, HS512 64); for a
	// public key, the algorithms of its type and curve; for JWKS, every asymmetric
	// algorithm. "none" and HMAC with a public key or JWKS are never accepted. (algorithms)
	Algorithms []string

	// Endpoint is the JWKS URL; https only. (endpoint)
	Endpoint string
	// RefreshInterval is how often the JWKS is fetched again; default 5m, at least 1s.
	// (refresh_interval)
	RefreshInterval time.Duration
	// UnknownKIDRefreshInterval is the rate limit of the extra fetch a token with an
	// unknown kid triggers: at most one per interval. Default 1m, at least 1s.
	// (unknown_kid_refresh_interval)
	UnknownKIDRefreshInterval time.Duration
	// RequestTimeout bounds one JWKS fetch; default 10s. (request_timeout)
	RequestTimeout time.Duration
	// SSL configures TLS to the JWKS endpoint; the server is verified by default. (ssl)
	SSL tlsconf.ClientOptions

	// RequireExp refuses tokens without an exp claim; nil means true. (require_exp)
	RequireExp *bool
	// Leeway is the clock skew allowed on exp, nbf and iat; default 0, at most 5m. (leeway)
	Leeway time.Duration
	// VerifyClaims maps a claim name to a placeholder template, e.g. sub: "${clientid}".
	// Each claim must be present and equal the expanded text (a list claim must contain
	// it); ${password} is not allowed. (verify_claims)
	VerifyClaims map[string]string
	// ACLClaimName is the claim holding authorization rules; default "acl".
	// (acl_claim_name)
	ACLClaimName string
	// ClientAttrs maps a client attribute name to the claim it is read from; only string
	// claims are used. (client_attrs)
	ClientAttrs map[string]string
	// IsSuperuserClaim names a boolean claim that makes the client a superuser; empty =
	// never. (is_superuser_claim)
	IsSuperuserClaim string
	// DisconnectAfterExpire sets Result.ExpiresAt from exp so the broker disconnects the
	// client when the token expires; nil means true. (disconnect_after_expire)
	DisconnectAfterExpire *bool
}

// Values the From field takes.
const (
	FromPassword = "password"
	FromUsername = "username"
)

// Values the Algorithm field takes.
const (
	AlgorithmHMAC      = "hmac-based"
	AlgorithmPublicKey = "public-key"
)

// Defaults and limits.
const (
	DefaultRefreshInterval           = 5 * time.Minute
	DefaultUnknownKIDRefreshInterval = time.Minute
	DefaultRequestTimeout            = 10 * time.Second
	DefaultACLClaimName              = "acl"
	MaxLeeway                        = 5 * time.Minute
	minInterval                      = time.Second
	minRSABits                       = 2048
)

// keyKind is the family of keys an algorithm verifies with.
type keyKind int

const (
	kindNone keyKind = iota
	kindHMAC
	kindRSA
	kindECDSA
	kindEd25519
)

// algKind returns the key family of a JWS algorithm name, with the minimum HMAC secret
// length or the ECDSA curve where that applies. Unknown names (including "none") are
// kindNone.
func algKind(alg string) (kind keyKind, hmacMin int, curve elliptic.Curve) {
	switch alg {
	case "HS256":
		return kindHMAC, 32, nil
	case "HS384":
		return kindHMAC, 48, nil
	case "HS512":
		return kindHMAC, 64, nil
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return kindRSA, 0, nil
	case "ES256":
		return kindECDSA, 0, elliptic.P256()
	case "ES384":
		return kindECDSA, 0, elliptic.P384()
	case "ES512":
		return kindECDSA, 0, elliptic.P521()
	case "EdDSA":
		return kindEd25519, 0, nil
	}
	return kindNone, 0, nil
}

func hmacAlgs() []string { return []string{"HS256", "HS384", "HS512"} }

func asymmetricAlgs() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// settings is a validated configuration with its keys loaded and templates parsed.
type settings struct {
	from        string
	algs        []string
	key         any // []byte for HMAC, a public key otherwise; nil with JWKS
	endpoint    string
	refresh     time.Duration
	unknownKID  time.Duration
	timeout     time.Duration
	tls         tlsconf.ClientOptions
	requireExp  bool
	leeway      time.Duration
	claims      []claimCheck
	aclClaim    string
	attrs       map[string]string
	superClaim  string
	setExpiry   bool
	description string // what verifies tokens, for the start-up log
}

type claimCheck struct {
	name string
	tmpl *placeholder.Template
}

// Validate checks the configuration, reading the secret or public key it names. Errors name
// the key.
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c Config) settings() (*settings, error) {
	s := &settings{
		from:       c.From,
		requireExp: c.RequireExp == nil || *c.RequireExp,
		setExpiry:  c.DisconnectAfterExpire == nil || *c.DisconnectAfterExpire,
		leeway:     c.Leeway,
		aclClaim:   c.ACLClaimName,
		superClaim: c.IsSuperuserClaim,
	}
	switch c.From {
	case "":
		s.from = FromPassword
	case FromPassword, FromUsername:
	default:
		return nil, fmt.Errorf("from: %q: want password or username", c.From)
	}
	for _, a := range c.Algorithms {
		if kind, _, _ := algKind(a); kind == kindNone {
			return nil, fmt.Errorf("algorithms: %q is not a supported JWS algorithm (none is never accepted)", a)
		}
	}
	if c.UseJWKS {
		if err := c.jwksSettings(s); err != nil {
			return nil, err
		}
	} else if err := c.keySettings(s); err != nil {
		return nil, err
	}

	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return nil, fmt.Errorf("leeway: %v: want between 0s and %v", c.Leeway, MaxLeeway)
	}
	if s.aclClaim == "" {
		s.aclClaim = DefaultACLClaimName
	}
	names := make([]string, 0, len(c.VerifyClaims))
	for name := range c.VerifyClaims {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		src := c.VerifyClaims[name]
		if name == "" {
			return nil, errors.New("verify_claims: empty claim name")
		}
		if src == "" {
			return nil, fmt.Errorf("verify_claims.%s: empty value", name)
		}
		t, err := placeholder.Parse(src, placeholder.Options{NoPassword: true})
		if err != nil {
			return nil, fmt.Errorf("verify_claims.%s: %w", name, err)
		}
		s.claims = append(s.claims, claimCheck{name: name, tmpl: t})
	}
	if len(c.ClientAttrs) > 0 {
		s.attrs = make(map[string]string, len(c.ClientAttrs))
		for attr, claim := range c.ClientAttrs {
			if !validAttrName(attr) {
				return nil, fmt.Errorf("client_attrs: attribute name %q: want letters, digits, '_', '-' or '.'", attr)
			}
			if claim == "" {
				return nil, fmt.Errorf("client_attrs.%s: empty claim name", attr)
			}
			s.attrs[attr] = claim
		}
	}
	return s, nil
}

func (c Config) jwksSettings(s *settings) error {
	switch {
	case c.Algorithm != "":
		return errors.New("algorithm: not used with use_jwks: true (keys come from the endpoint)")
	case c.Secret != "":
		return errors.New("secret: not used with use_jwks: true")
	case c.PublicKey != "":
		return errors.New("public_key: not used with use_jwks: true")
	case c.Endpoint == "":
		return errors.New("endpoint: required with use_jwks: true")
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("endpoint: %q: want an https:// URL (keys fetched over plain HTTP can be replaced by anyone on the path)", c.Endpoint)
	}
	if u.User != nil {
		return errors.New("endpoint: credentials in the URL are refused")
	}
	s.endpoint = c.Endpoint
	s.algs = asymmetricAlgs()
	if len(c.Algorithms) > 0 {
		for _, a := range c.Algorithms {
			if kind, _, _ := algKind(a); kind == kindHMAC {
				return fmt.Errorf("algorithms: %s needs a shared secret and cannot be used with JWKS", a)
			}
		}
		s.algs = slices.Clone(c.Algorithms)
	}
	if s.refresh, err = interval("refresh_interval", c.RefreshInterval, DefaultRefreshInterval); err != nil {
		return err
	}
	if s.unknownKID, err = interval("unknown_kid_refresh_interval", c.UnknownKIDRefreshInterval, DefaultUnknownKIDRefreshInterval); err != nil {
		return err
	}
	if s.timeout, err = interval("request_timeout", c.RequestTimeout, DefaultRequestTimeout); err != nil {
		return err
	}
	s.tls = c.SSL
	if _, err := tlsconf.NewClient(c.SSL); err != nil {
		return fmt.Errorf("ssl: %w", err)
	}
	s.description = "jwks " + c.Endpoint
	return nil
}

func interval(key string, v, def time.Duration) (time.Duration, error) {
	if v == 0 {
		return def, nil
	}
	if v < minInterval {
		return 0, fmt.Errorf("%s: %v: want at least %v", key, v, minInterval)
	}
	return v, nil
}

func (c Config) keySettings(s *settings) error {
	switch {
	case c.Endpoint != "":
		return errors.New("endpoint: only used with use_jwks: true")
	case c.RefreshInterval != 0:
		return errors.New("refresh_interval: only used with use_jwks: true")
	case c.UnknownKIDRefreshInterval != 0:
		return errors.New("unknown_kid_refresh_interval: only used with use_jwks: true")
	case c.RequestTimeout != 0:
		return errors.New("request_timeout: only used with use_jwks: true")
	case c.SSL != tlsconf.ClientOptions{}:
		return errors.New("ssl: only used with use_jwks: true")
	}
	switch c.Algorithm {
	case AlgorithmHMAC:
		if c.PublicKey != "" {
			return errors.New("public_key: not used with algorithm hmac-based")
		}
		return c.hmacSettings(s)
	case AlgorithmPublicKey:
		if c.Secret != "" {
			return errors.New("secret: not used with algorithm public-key")
		}
		return c.publicKeySettings(s)
	case "":
		return errors.New("algorithm: required (hmac-based or public-key) when use_jwks is false")
	}
	return fmt.Errorf("algorithm: %q: want hmac-based or public-key", c.Algorithm)
}

func (c Config) hmacSettings(s *settings) error {
	if c.Secret == "" {
		return errors.New("secret: required with algorithm hmac-based (file:/path or env:NAME)")
	}
	secret, err := loadSecret(c.Secret)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	if c.SecretBase64Encoded {
		if secret, err = decodeBase64(secret); err != nil {
			return fmt.Errorf("secret: secret_base64_encoded is set but the secret is not base64: %w", err)
		}
	}
	if len(c.Algorithms) == 0 {
		for _, a := range hmacAlgs() {
			if _, least, _ := algKind(a); len(secret) >= least {
				s.algs = append(s.algs, a)
			}
		}
		if len(s.algs) == 0 {
			return fmt.Errorf("secret: %d bytes is too short: HS256 needs at least 32", len(secret))
		}
	} else {
		for _, a := range c.Algorithms {
			kind, least, _ := algKind(a)
			if kind != kindHMAC {
				return fmt.Errorf("algorithms: %s is not an HMAC algorithm (algorithm is hmac-based)", a)
			}
			if len(secret) < least {
				return fmt.Errorf("secret: %d bytes is too short: %s needs at least %d", len(secret), a, least)
			}
		}
		s.algs = slices.Clone(c.Algorithms)
	}
	s.key = secret
	s.description = "hmac secret (" + strings.Join(s.algs, ", ") + ")"
	return nil
}

// loadSecret reads a "file:/path" or "env:NAME" reference.
func loadSecret(ref string) ([]byte, error) {
	if !secret.IsRef(ref) {
		return nil, errors.New("inline secrets are refused: give file:/path or env:NAME")
	}
	return secret.Read(ref)
}

func decodeBase64(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out, err := enc.DecodeString(s)
		if err == nil {
			return out, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func (c Config) publicKeySettings(s *settings) error {
	if c.PublicKey == "" {
		return errors.New("public_key: required with algorithm public-key")
	}
	pemData := []byte(c.PublicKey)
	if !strings.HasPrefix(strings.TrimSpace(c.PublicKey), "-----BEGIN") {
		path := strings.TrimPrefix(c.PublicKey, "file:")
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("public_key: %w", err)
		}
		pemData = data
	}
	key, err := parsePublicKey(pemData)
	if err != nil {
		return fmt.Errorf("public_key: %w", err)
	}
	if len(c.Algorithms) == 0 {
		for _, a := range asymmetricAlgs() {
			if checkKey(a, key) == nil {
				s.algs = append(s.algs, a)
			}
		}
		if len(s.algs) == 0 {
			// checkKey of the first candidate explains why (e.g. a short RSA key).
			return fmt.Errorf("public_key: %w", checkKey(defaultAlgFor(key), key))
		}
	} else {
		for _, a := range c.Algorithms {
			if kind, _, _ := algKind(a); kind == kindHMAC {
				return fmt.Errorf("algorithms: %s is an HMAC algorithm; with a public key it would let anyone who has the public key sign tokens", a)
			}
			if err := checkKey(a, key); err != nil {
				return fmt.Errorf("algorithms: %s: %w", a, err)
			}
		}
		s.algs = slices.Clone(c.Algorithms)
	}
	s.key = key
	s.description = "public key (" + strings.Join(s.algs, ", ") + ")"
	return nil
}

func defaultAlgFor(key crypto.PublicKey) string {
	switch key.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return "ES256"
}

// parsePublicKey reads the first PEM block of a public key or certificate.
func parsePublicKey(data []byte) (crypto.PublicKey, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM public key or certificate found")
		}
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PUBLIC KEY: %w", err)
			}
			return k, nil
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("RSA PUBLIC KEY: %w", err)
			}
			return k, nil
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("CERTIFICATE: %w", err)
			}
			return cert.PublicKey, nil
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("found a %s: give only the public key (the broker never needs the signer's private key)", block.Type)
		}
	}
}

// checkKey reports whether key can verify tokens signed with alg: the right type, the
// right curve, and an RSA modulus of at least 2048 bits.
func checkKey(alg string, key any) error {
	kind, _, curve := algKind(alg)
	switch kind {
	case kindRSA:
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA key, have %T", alg, key)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too short: want at least %d", k.N.BitLen(), minRSABits)
		}
		return nil
	case kindECDSA:
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an ECDSA key, have %T", alg, key)
		}
		if k.Curve.Params().Name != curve.Params().Name {
			return fmt.Errorf("%s needs curve %s, key is on %s", alg, curve.Params().Name, k.Curve.Params().Name)
		}
		return nil
	case kindEd25519:
		if _, ok := key.(ed25519.PublicKey); !ok {
			return fmt.Errorf("%s needs an Ed25519 key, have %T", alg, key)
		}
		return nil
	case kindHMAC:
		if _, ok := key.([]byte); !ok {
			return fmt.Errorf("%s needs a shared secret, have %T", alg, key)
		}
		return nil
	}
	return fmt.Errorf("algorithm %q is not supported", alg)
}

func validAttrName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
