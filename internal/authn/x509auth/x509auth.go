// Package x509auth is the authentication mechanism "x509": a client whose TLS certificate the
// listener verified is authenticated by that certificate alone, whatever username and
// password CONNECT carried. A client without a verified certificate is not this mechanism's
// business (Ignore), so the next authenticator in the chain decides.
//
// Optionally the client id must equal a field of the certificate (RequireClientIDMatch), so a
// device holding a valid certificate cannot connect as another device's client id and take
// over its session.
package x509auth

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Mechanism is the configuration name of this authenticator.
const Mechanism = "x509"

// The certificate fields a client id can be required to equal.
const (
	MatchNone   = "none"    // no requirement (the default)
	MatchCN     = "cn"      // the subject common name
	MatchDN     = "dn"      // the subject distinguished name (RFC 4514)
	MatchSANDNS = "san_dns" // any DNS subject alternative name
	MatchSANURI = "san_uri" // any URI subject alternative name
)

// maxDetailValue is how much of a client id or certificate field a log detail shows.
const maxDetailValue = 64

// Config is the configuration of an x509 authenticator.
type Config struct {
	// RequireClientIDMatch names the certificate field the client id must equal: "none"
	// (or empty), "cn", "dn", "san_dns" or "san_uri". For the SAN fields the client id must
	// equal one of the certificate's names of that kind. A certificate lacking the field
	// is denied, even when the client id is empty.
	RequireClientIDMatch string
}

// Validate reports an unknown RequireClientIDMatch.
func (c *Config) Validate() error {
	switch c.RequireClientIDMatch {
	case "", MatchNone, MatchCN, MatchDN, MatchSANDNS, MatchSANURI:
		return nil
	}
	return fmt.Errorf("x509: require_clientid_match: %q is not one of none, cn, dn, san_dns, san_uri",
		c.RequireClientIDMatch)
}

// Authenticator authenticates clients by their verified certificate. It is safe for
// concurrent use.
type Authenticator struct {
	match string
}

// New validates cfg and returns the authenticator.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := cfg.RequireClientIDMatch
	if m == "" {
		m = MatchNone
	}
	return &Authenticator{match: m}, nil
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Mechanism }

// Authenticate implements authn.Authenticator: Ignore without a verified certificate,
// Deny with NotAuthorized (0x87) when the client id does not match the required field,
// Allow otherwise.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, _ *authn.Credentials) authn.Result {
	if info.Cert == nil {
		return authn.Ignored("x509: no verified client certificate")
	}
	if err := ctx.Err(); err != nil {
		return authn.Denied(packet.NotAuthorized, "x509: "+err.Error())
	}
	c := info.Cert
	var candidates []string
	switch a.match {
	case MatchNone:
		r := authn.Allowed()
		r.Principal = principal(c)
		r.Detail = "x509: verified certificate " + quote(c.CN)
		return r
	case MatchCN:
		candidates = []string{c.CN}
	case MatchDN:
		candidates = []string{c.DN}
	case MatchSANDNS:
		candidates = c.DNSNames
	case MatchSANURI:
		candidates = c.URIs
	}
	// An empty field never matches, not even an empty client id.
	first := ""
	for _, v := range candidates {
		if v == "" {
			continue
		}
		if v == info.ClientID {
			r := authn.Allowed()
			r.Principal = principal(c)
			r.Detail = "x509: client id matches certificate " + a.match
			return r
		}
		if first == "" {
			first = v
		}
	}
	if first == "" {
		return authn.Denied(packet.NotAuthorized,
			fmt.Sprintf("x509: certificate %s has no %s to match the client id against", quote(c.CN), a.match))
	}
	return authn.Denied(packet.NotAuthorized,
		fmt.Sprintf("x509: client id %s does not match certificate %s %s", quote(info.ClientID), a.match, quote(first)))
}

// quote shows at most maxDetailValue bytes of s, cut on a rune boundary, escaped so control
// characters cannot forge log lines.
func quote(s string) string {
	if len(s) <= maxDetailValue {
		return fmt.Sprintf("%q", s)
	}
	n := maxDetailValue
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%q…(%d bytes)", s[:n], len(s))
}

var _ authn.Authenticator = (*Authenticator)(nil)

// principal is the identity a verified certificate proves: its issuer and subject, which
// survive a renewal of the certificate. A certificate vouched for by a trusted load
// balancer is known by its common name only.
func principal(c *clientinfo.Cert) string {
	if c.ViaProxy {
		return fmt.Sprintf("x509:proxy,cn=%q", c.CN)
	}
	return fmt.Sprintf("x509:issuer=%q,subject=%q", c.Issuer, c.DN)
}
