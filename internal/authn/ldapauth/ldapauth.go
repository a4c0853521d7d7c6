// Package ldapauth authenticates clients against users kept in an LDAP directory
// (mechanism password_based, backend ldap). The user's entry is named by a DN template
// (bind_dn) or found by a search (filter, exactly one entry); placeholder values are
// escaped for a DN or a filter, so a user name such as "*" or "*)(uid=*" only ever names
// itself.
//
// Method bind (the default) checks the password by binding to the directory as the user:
// the directory compares it with whatever hash it keeps, so this is the method to use
// with slapd's default {SSHA} hashes and with Active Directory. Method hash reads the
// password attribute as the service account and compares it here; it accepts {SSHA256},
// {SSHA512}, {SHA256}, {SHA512} and Rampart's own encoded hashes, and refuses weaker or
// unknown schemes ({SSHA}, {SHA}, {MD5}, {SMD5}, {CRYPT}...) and clear text, naming the
// problem in the log.
//
// A CONNECT without a password is not this authenticator's to decide (Ignore). An empty
// password is refused before anything is sent: a simple bind with a DN and an empty
// password is an unauthenticated bind (RFC 4513 §5.1.2), which a directory may answer
// with success. A wrong password and an unknown user are both Deny with Bad user name or
// password; a right password is Allow, superuser when is_superuser_attribute is TRUE. A
// directory that cannot be reached, times out or is saturated denies with Server
// unavailable (Server busy for a saturated pool), or Ignore with on_error: ignore. Each
// CONNECT asks the directory: deleting a user refuses that user's next connection.
//
// User names match byte for byte. The directory's matching rules fold: with uid's
// caseIgnoreMatch and RFC 4518 string preparation, "ALICE", " alice" and "ａｌｉｃｅ"
// (full-width) all find alice's entry, while the client keeps the MQTT user name it sent
// (the name ${username} in ACL rules and other authenticators see). So the entry must
// also hold each placeholder's value exactly: with a filter, every equality assertion
// whose whole value is one placeholder, such as (uid=${username}), is compared with the
// attribute's values in the entry found (under "|", one branch must hold); with bind_dn,
// every attribute of the first RDN whose whole value is one placeholder, such as
// uid=${username}, is compared with the entry's values, read as the service account
// after the user's bind (method bind) or with the password (method hash). An entry that
// matches only under the directory's folding is no such user. Values that are only part
// of an assertion or RDN ((mail=${username}@example.com), substrings, extensible
// matches, the DN's other RDNs) are left to the directory's rules.
package ldapauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/ldap"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the authenticator's name in logs and metrics.
const Name = "password_based:ldap"

// maxPasswordValues bounds the values of the password attribute compared for one user.
const maxPasswordValues = 8

// Authenticator checks passwords against an LDAP directory. It is safe for concurrent
// use.
type Authenticator struct {
	s        *settings
	pool     *ldap.Pool
	ownsPool bool // Close closes pool (New); false when it is shared (NewWith)
	hasher   *password.Hasher
	log      *slog.Logger
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates cfg and builds the authenticator with its own connection pool, made from
// cfg.Backend (which connects on first use). hasher verifies Rampart's encoded hashes for
// method hash, bounding the CPU spent, and is shared with the broker's other password
// authenticators; nil makes one of its own. Close releases the pool.
func New(cfg Config, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	a, err := build(cfg, cfg.Backend.BaseDN, hasher, log)
	if err != nil {
		return nil, err
	}
	if a.pool, err = ldap.New(cfg.Backend); err != nil {
		return nil, fmt.Errorf("ldap authn: %w", err)
	}
	a.ownsPool = true
	a.ready()
	return a, nil
}

// NewWith validates cfg and builds the authenticator on pool, which it shares with others
// (an authorization source on the same directory, say): cfg.Backend is not used (a
// filter searches under the pool's base DN), and Close leaves the pool open for whoever
// made it to close. hasher is as for New.
func NewWith(cfg Config, pool *ldap.Pool, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	if pool == nil {
		return nil, errors.New("ldap authn: no connection pool")
	}
	a, err := build(cfg, pool.BaseDN(), hasher, log)
	if err != nil {
		return nil, err
	}
	a.pool = pool
	a.ready()
	return a, nil
}

// build checks everything of cfg but the connection.
func build(cfg Config, baseDN string, hasher *password.Hasher, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := cfg.settings(baseDN)
	if err != nil {
		return nil, fmt.Errorf("ldap authn: %w", err)
	}
	if hasher == nil {
		if hasher, err = password.NewHasher(password.Params{}, 0); err != nil {
			return nil, fmt.Errorf("ldap authn: %w", err)
		}
	}
	return &Authenticator{s: s, hasher: hasher, log: log}, nil
}

// ready logs the authenticator's settings once its pool is set.
func (a *Authenticator) ready() {
	method, find := MethodBind, ""
	if a.s.hash {
		method = MethodHash
	}
	if a.s.dn != nil {
		find = "bind_dn " + a.s.dn.String()
	} else {
		find = "filter " + a.s.filter.String() + " under " + a.pool.BaseDN()
	}
	a.log.Info("ldap authenticator ready", "server", a.pool.Target(), "method", method, "user", find,
		"request_timeout", a.pool.QueryTimeout(), "on_error", a.s.onError)
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Name }

// Close closes the connections to the server when the pool is the authenticator's own
// (New); a shared pool (NewWith) stays open.
func (a *Authenticator) Close() {
	if a.ownsPool {
		a.pool.Close()
	}
}

// Health returns the health of the connection to the directory.
func (a *Authenticator) Health() health.Snapshot { return a.pool.Health() }

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if cred == nil || !cred.HasPassword() {
		return authn.Ignored("no password")
	}
	if len(cred.Password) == 0 {
		return authn.Denied(packet.BadUserNameOrPassword,
			"empty password refused: an LDAP bind without a password is unauthenticated and proves nothing")
	}
	if info == nil {
		info = &clientinfo.Info{}
	}
	dn, entry, res, ok := a.find(ctx, info)
	if !ok {
		return res
	}
	if a.s.hash {
		if res, ok := a.compare(ctx, info, entry, cred.Password); !ok {
			return res
		}
	} else {
		err := a.pool.UserBind(ctx, dn, cred.Password)
		switch {
		case errors.Is(err, ldap.ErrInvalidCredentials):
			return authn.Denied(packet.BadUserNameOrPassword, "wrong password (or no such user) in ldap")
		case err != nil:
			return a.fail(info, err, "bind as the user: %v", err)
		}
		if entry == nil {
			// Named by bind_dn: read the superuser flag, and the RDN's values to
			// compare, as the service account. An entry the service account may not
			// see is no superuser, and passes the comparison only when there is
			// nothing to compare.
			if entry, err = a.pool.Read(ctx, dn, a.s.attrs); err != nil {
				return a.fail(info, err, "reading %s of the entry named by bind_dn %s: %v", a.s.superAttr, a.s.dn.String(), err)
			}
			if res, ok := a.exact(info, a.s.dn.Exact(placeholder.Values{Info: info}, entry)); !ok {
				return res
			}
		}
	}
	out := authn.Allowed()
	out.Superuser = entry != nil && truthy(entry.Values(a.s.superAttr))
	out.Detail = "password matches the ldap entry " + dn
	return out
}

// find returns the user's DN and, when it had to read it, the entry with a.s.attrs (nil
// for method bind with bind_dn, which needs no read before the bind). ok is false when
// res is the answer.
func (a *Authenticator) find(ctx context.Context, info *clientinfo.Info) (dn string, e *ldap.Entry, res authn.Result, ok bool) {
	vals := placeholder.Values{Info: info}
	if a.s.dn != nil {
		dn, err := a.s.dn.Expand(vals)
		if errors.Is(err, ldap.ErrEmptyValue) {
			return "", nil, authn.Denied(packet.BadUserNameOrPassword, "no such user in ldap: "+err.Error()), false
		}
		if err != nil {
			return "", nil, a.fail(info, err, "%v", err), false
		}
		if !a.s.hash {
			// The RDN is compared after the bind, with the superuser flag.
			return dn, nil, authn.Result{}, true
		}
		e, err := a.pool.Read(ctx, dn, a.s.attrs)
		switch {
		case err != nil:
			return "", nil, a.fail(info, err, "reading %s: %v", dn, err), false
		case e == nil:
			return "", nil, authn.Denied(packet.BadUserNameOrPassword, "no such user in ldap"), false
		}
		if res, ok := a.exact(info, a.s.dn.Exact(vals, e)); !ok {
			return "", nil, res, false
		}
		return dn, e, authn.Result{}, true
	}
	filter, err := a.s.filter.Expand(vals)
	if errors.Is(err, ldap.ErrEmptyValue) {
		return "", nil, authn.Denied(packet.BadUserNameOrPassword, "no such user in ldap: "+err.Error()), false
	}
	if err != nil {
		return "", nil, a.fail(info, err, "%v", err), false
	}
	r, err := a.pool.Search(ctx, "", filter, a.s.attrs, 1)
	switch {
	case err != nil:
		return "", nil, a.fail(info, err, "searching with filter %s: %v", a.s.filter.String(), err), false
	case len(r.Entries) == 0:
		return "", nil, authn.Denied(packet.BadUserNameOrPassword, "no such user in ldap"), false
	case r.More:
		// Which of them would it be? Refuse rather than guess; the directory or the
		// filter needs fixing.
		a.log.Warn("ldap authentication: the filter matches more than one entry; refusing the client",
			"client", info.ClientID, "filter", a.s.filter.String())
		return "", nil, authn.Denied(packet.BadUserNameOrPassword, "the filter matches more than one ldap entry"), false
	}
	if res, ok := a.exact(info, a.s.filter.Exact(vals, r.Entries[0])); !ok {
		return "", nil, res, false
	}
	return r.Entries[0].DN, r.Entries[0], authn.Result{}, true
}

// exact turns the result of an exact comparison (Filter.Exact, DN.Exact) into the
// answer: nothing (ok) when the entry holds the client's values byte for byte, otherwise
// no such user. The detail (which the chain logs) and this package's debug line name the
// entry, attributes and variables, never a value: neither the password nor the user name
// (which may be a token).
func (a *Authenticator) exact(info *clientinfo.Info, err error) (authn.Result, bool) {
	if err == nil {
		return authn.Result{}, true
	}
	a.log.Debug("ldap authentication: the entry matches the client only under the directory's matching rules; refused as no such user",
		"client", info.ClientID, "err", err.Error())
	return authn.Denied(packet.BadUserNameOrPassword, "no such user in ldap: "+err.Error()), false
}

// addAttrs appends to attrs those of more it does not hold (attribute names compare
// without regard to ASCII case).
func addAttrs(attrs, more []string) []string {
	out := slices.Clip(attrs) // append copies: attrs stays the caller's
next:
	for _, m := range more {
		for _, a := range out {
			if strings.EqualFold(a, m) {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// compare checks the password against the entry's password attribute (method hash).
func (a *Authenticator) compare(ctx context.Context, info *clientinfo.Info, e *ldap.Entry, pw []byte) (authn.Result, bool) {
	stored := e.Values(a.s.pwAttr)
	switch {
	case len(stored) == 0:
		return a.fail(info, nil, "%s of %s: no value (none stored, or the service account may not read it)", a.s.pwAttr, e.DN), false
	case len(stored) > maxPasswordValues:
		return a.fail(info, nil, "%s of %s: %d values, at most %d are compared", a.s.pwAttr, e.DN, len(stored), maxPasswordValues), false
	}
	// Every value is checked, so a refused scheme is reported whatever the password.
	match := false
	for i, v := range stored {
		m, err := verifyStored(ctx, a.hasher, v, pw)
		if err != nil {
			return a.fail(info, err, "%s of %s, value %d: %v", a.s.pwAttr, e.DN, i+1, err), false
		}
		match = match || m
	}
	if !match {
		return authn.Denied(packet.BadUserNameOrPassword, "wrong password"), false
	}
	return authn.Result{}, true
}

// fail is the answer to a backend or data error: Deny with Server unavailable (Server
// busy for a saturated pool), or Ignore with on_error: ignore.
func (a *Authenticator) fail(info *clientinfo.Info, err error, format string, args ...any) authn.Result {
	detail := fmt.Sprintf(format, args...)
	a.log.Warn("ldap authentication failed", "client", info.ClientID, "err", detail, "on_error", a.s.onError)
	if a.s.ignore {
		return authn.Ignored(detail)
	}
	if errors.Is(err, health.ErrBusy) {
		return authn.Denied(packet.ServerBusy, detail)
	}
	return authn.Denied(packet.ServerUnavailable, detail)
}

// truthy reads the superuser attribute: TRUE (LDAP's boolean), true or 1.
func truthy(vals []string) bool {
	if len(vals) == 0 {
		return false
	}
	v := strings.TrimSpace(vals[0])
	return strings.EqualFold(v, "true") || v == "1"
}
