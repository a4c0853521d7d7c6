package ldapauth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/backend/ldap"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Config configures the ldap password authenticator. Key names in comments are the
// proposed YAML keys of an authentication entry with mechanism password_based and backend
// ldap (EMQX's where EMQX has one).
type Config struct {
	// Backend is the server and pool; its keys (server, username, password, base_dn,
	// pool_size, connect_timeout, request_timeout (as QueryTimeout), ssl, ssl.start_tls,
	// allow_plaintext) sit at the entry's top level. username and password are the
	// service account's, which searches for users and reads their attributes. New
	// builds its pool from it; NewWith is given a pool instead and ignores it.
	Backend ldap.Config
	// Method is how the password is checked: "bind" (default) binds to the directory as
	// the user with the client's password, so the directory checks it with whatever hash
	// it stores (slapd's default {SSHA} included); "hash" reads PasswordAttribute as the
	// service account and compares it here, which accepts {SSHA256}, {SSHA512},
	// {SHA256}, {SHA512} and Rampart's own encoded hashes only. (method)
	Method string
	// BindDN finds the user's entry by name, e.g.
	// uid=${username},ou=users,dc=example,dc=com. Placeholder values are escaped as DN
	// values (RFC 4514); they may stand in attribute values only. An attribute of the
	// first RDN whose whole value is one placeholder must hold that value byte for byte in
	// the entry, which the service account reads. Give BindDN or Filter. (bind_dn)
	BindDN string
	// Filter finds the user's entry by a subtree search under base_dn, e.g.
	// (&(objectClass=mqttUser)(uid=${username})); exactly one entry must match.
	// Placeholder values are escaped as filter values (RFC 4515); they may stand in
	// assertion values only. An equality assertion whose whole value is one placeholder
	// must hold byte for byte in the entry found. Give BindDN or Filter. (filter)
	Filter string
	// PasswordAttribute is the attribute holding the password hash for the hash method;
	// default userPassword. (password_attribute)
	PasswordAttribute string
	// IsSuperuserAttribute is the attribute that makes the user a superuser when its value
	// is TRUE (or true, or 1); default isSuperuser. It is read as the service account.
	// (is_superuser_attribute)
	IsSuperuserAttribute string
	// OnError is what a failure of the directory (unreachable, timed out, busy, an
	// unusable entry) means: "deny" (default: the client is refused with Server
	// unavailable, or Server busy) or "ignore" (the next authenticator decides). A wrong
	// password or an unknown user is always refused with Bad user name or password.
	// (on_error)
	OnError string
}

// Values and defaults.
const (
	MethodBind = "bind"
	MethodHash = "hash"

	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"

	DefaultPasswordAttribute    = "userPassword"
	DefaultIsSuperuserAttribute = "isSuperuser"
)

// settings is a validated configuration.
type settings struct {
	hash      bool
	dn        *ldap.DN     // nil: search with filter
	filter    *ldap.Filter // nil: dn
	pwAttr    string
	superAttr string
	attrs     []string // read from the user's entry: superAttr, pwAttr (hash), the exact-match ones
	ignore    bool
	onError   string
}

// Validate checks the configuration without connecting or reading secrets; errors name
// the key.
func (c Config) Validate() error {
	if _, err := c.settings(c.Backend.BaseDN); err != nil {
		return err
	}
	return c.Backend.Validate()
}

// attrName is an attribute description: a name or numeric OID, with options.
var attrName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

// settings validates everything but the connection; baseDN is the base DN of the pool
// the authenticator will search (a filter needs one).
func (c Config) settings(baseDN string) (*settings, error) {
	s := &settings{onError: OnErrorDeny, pwAttr: c.PasswordAttribute, superAttr: c.IsSuperuserAttribute}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		s.ignore, s.onError = true, OnErrorIgnore
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	switch strings.ToLower(c.Method) {
	case "", MethodBind:
		if c.PasswordAttribute != "" {
			return nil, errors.New("password_attribute: only used by method hash")
		}
	case MethodHash:
		s.hash = true
	default:
		return nil, fmt.Errorf("method: %q: want bind or hash", c.Method)
	}
	if s.pwAttr == "" {
		s.pwAttr = DefaultPasswordAttribute
	}
	if s.superAttr == "" {
		s.superAttr = DefaultIsSuperuserAttribute
	}
	if !attrName.MatchString(s.pwAttr) {
		return nil, fmt.Errorf("password_attribute: %q is not an attribute name", s.pwAttr)
	}
	if !attrName.MatchString(s.superAttr) {
		return nil, fmt.Errorf("is_superuser_attribute: %q is not an attribute name", s.superAttr)
	}
	// ${password} is refused in both: the password is checked by a bind or a hash, never
	// sent as a DN or a search.
	opts := placeholder.Options{NoPassword: true}
	switch {
	case c.BindDN != "" && c.Filter != "":
		return nil, errors.New("bind_dn and filter: give one of them")
	case c.BindDN != "":
		dn, err := ldap.CompileDN(c.BindDN, opts)
		if err != nil {
			return nil, err
		}
		if !dn.HasVars() {
			return nil, errors.New("bind_dn: no placeholder: every client would be the same user; use ${username} or ${clientid}")
		}
		s.dn = dn
	case c.Filter != "":
		f, err := ldap.CompileFilter(c.Filter, opts)
		if err != nil {
			return nil, err
		}
		if !f.HasVars() {
			return nil, errors.New("filter: no placeholder: every client would find the same entries; use ${username} or ${clientid}")
		}
		if baseDN == "" {
			return nil, errors.New("base_dn: required with filter (where the search starts)")
		}
		s.filter = f
	default:
		return nil, errors.New("bind_dn or filter: required, e.g. bind_dn: uid=${username},ou=users,dc=example,dc=com or filter: (&(objectClass=mqttUser)(uid=${username}))")
	}
	s.attrs = []string{s.superAttr}
	if s.hash {
		s.attrs = append(s.attrs, s.pwAttr)
	}
	if s.dn != nil {
		s.attrs = addAttrs(s.attrs, s.dn.ExactAttrs())
	} else {
		s.attrs = addAttrs(s.attrs, s.filter.ExactAttrs())
	}
	return s, nil
}
