package ldap

import (
	"errors"
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// ErrEmptyValue is wrapped by Expand's error when a placeholder has no value for this
// client (no user name, no certificate, no such attribute). An empty value would change
// what a template means: "(uid=${username}*)" would become the presence filter
// "(uid=*)", matching every entry. Callers treat it as "no such entry".
var ErrEmptyValue = errors.New("a placeholder has no value for this client")

// probeValue stands for every placeholder when a template is checked at load time: one
// harmless character that is not a hexadecimal digit, so a backslash written just before a
// placeholder (which would swallow the start of the value) makes the check fail.
const probeValue = "x"

// Filter is a search filter from the configuration (RFC 4515), e.g.
// (&(objectClass=mqttUser)(uid=${username})). Placeholders may only stand in assertion
// values (after the "=" of a filter item); each value is escaped with RFC 4515's rules
// when the filter is expanded, so "*", "(", ")", "\" and NUL in a user name are matched as
// text and can neither add filter items nor turn an equality into a wildcard.
//
// The directory compares with its matching rules, which may fold case, spaces and
// Unicode forms; an equality assertion whose whole value is one placeholder, such as
// (uid=${username}), must also hold byte for byte in the entry found (see Exact). A
// Filter is immutable.
type Filter struct {
	t     *placeholder.Template
	exact *exactNode
}

// CompileFilter reads a configured filter. It refuses, naming the problem: an empty
// filter, a placeholder that placeholder.Parse refuses under o, a placeholder anywhere but
// in an assertion value (in an attribute description or matching rule, between filter
// items), and a filter that does not parse once its placeholders are filled in.
func CompileFilter(src string, o placeholder.Options) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("filter: empty")
	}
	if err := checkFilterPositions(src); err != nil {
		return nil, fmt.Errorf("filter %q: %w", src, err)
	}
	t, err := placeholder.Parse(src, o)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	probe := t.Expand(placeholder.Values{}, func(string) string { return probeValue })
	if _, err := goldap.CompileFilter(probe); err != nil {
		return nil, fmt.Errorf("filter %q: does not parse: %w", src, err)
	}
	exact, err := filterExact(src)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", src, err)
	}
	return &Filter{t: t, exact: exact}, nil
}

// checkFilterPositions walks a filter and refuses a "${" outside an assertion value.
func checkFilterPositions(src string) error {
	const (
		between = iota // before "(" or after ")"
		attr           // after "(": attribute description, matching rule, operator
		value          // after the first "=" of an item, until its ")"
	)
	state := between
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '$' && i+1 < len(src) && src[i+1] == '{' {
			if state != value {
				where := "between filter items"
				if state == attr {
					where = "in an attribute description or matching rule"
				}
				return fmt.Errorf("a placeholder at offset %d is %s; placeholders may only stand for assertion values, such as (uid=${username})", i, where)
			}
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return fmt.Errorf("%q has no closing }", src[i:])
			}
			i += end
			continue
		}
		switch state {
		case between:
			if c == '(' {
				state = attr
				if i+1 < len(src) && strings.IndexByte("&|!", src[i+1]) >= 0 {
					state = between
					i++
				}
			}
		case attr:
			switch c {
			case '=':
				state = value
			case '(', ')':
				state = between
				i-- // let "between" see it
			}
		case value:
			switch c {
			case '\\':
				i++ // the escape's first hex digit can never start a placeholder
			case ')':
				state = between
			}
		}
	}
	return nil
}

// String returns the filter as configured.
func (f *Filter) String() string { return f.t.String() }

// HasVars reports whether the filter uses any placeholder.
func (f *Filter) HasVars() bool { return f.t.HasVars() }

// ExactAttrs lists the attributes of the equality assertions whose whole value is one
// placeholder ("uid" for (&(objectClass=mqttUser)(uid=${username}))): a search must ask
// for them so that Exact can compare their values. Nil when there are none.
func (f *Filter) ExactAttrs() []string { return f.exact.attrs(nil) }

// Exact checks an entry the expanded filter found against the filter's equality
// assertions whose whole value is one placeholder: the entry must hold a value of the
// attribute equal, byte for byte, to the placeholder's raw value (before escaping). Under
// "|" one branch must hold; under "!", and for every other kind of assertion, the
// directory's answer stands. e must have been read with ExactAttrs. The error wraps
// ErrNotExact and names attributes and variables, never values.
func (f *Filter) Exact(v placeholder.Values, e *Entry) error { return f.exact.check(v, e) }

// Expand returns the filter for one client, every placeholder value escaped with
// ldap.EscapeFilter (RFC 4515). It fails, wrapping ErrEmptyValue, when a placeholder has
// no value.
func (f *Filter) Expand(v placeholder.Values) (string, error) {
	if err := noEmpty(f.t, v); err != nil {
		return "", err
	}
	return f.t.Expand(v, goldap.EscapeFilter), nil
}

// DN is a distinguished name from the configuration (RFC 4514), e.g.
// uid=${username},ou=users,dc=example,dc=com. Placeholders may only stand in attribute
// values; each value is escaped with RFC 4514's rules when the DN is expanded, so a user
// name such as "a,ou=admins" stays one value of one RDN.
//
// The directory compares DNs with its matching rules, which may fold case, spaces and
// Unicode forms; an attribute of the first RDN whose whole value is one placeholder, such
// as uid=${username}, must also hold byte for byte in the entry (see Exact). A DN is
// immutable.
type DN struct {
	t     *placeholder.Template
	exact *exactNode
	// shape is the number of attribute-value pairs of each RDN: the expansion must keep
	// it (a check behind the escaping).
	shape []int
}

// CompileDN reads a configured DN template. It refuses, naming the problem: an empty DN,
// a placeholder that placeholder.Parse refuses under o, a placeholder in an attribute
// type, inside a quoted value or in a value written in the #hex form, and a DN that does
// not parse once its placeholders are filled in.
func CompileDN(src string, o placeholder.Options) (*DN, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("bind_dn: empty")
	}
	if err := checkDNPositions(src); err != nil {
		return nil, fmt.Errorf("bind_dn %q: %w", src, err)
	}
	t, err := placeholder.Parse(src, o)
	if err != nil {
		return nil, fmt.Errorf("bind_dn: %w", err)
	}
	probe := t.Expand(placeholder.Values{}, func(string) string { return probeValue })
	dn, err := goldap.ParseDN(probe)
	if err != nil {
		return nil, fmt.Errorf("bind_dn %q: does not parse: %w", src, err)
	}
	if len(dn.RDNs) == 0 {
		return nil, fmt.Errorf("bind_dn %q: no RDN", src)
	}
	exact, err := dnExact(src, t)
	if err != nil {
		return nil, fmt.Errorf("bind_dn %q: %w", src, err)
	}
	return &DN{t: t, shape: dnShape(dn), exact: exact}, nil
}

func dnShape(dn *goldap.DN) []int {
	shape := make([]int, len(dn.RDNs))
	for i, r := range dn.RDNs {
		shape[i] = len(r.Attributes)
	}
	return shape
}

// checkDNPositions walks a DN and refuses a "${" outside a plain attribute value.
func checkDNPositions(src string) error {
	const (
		typ    = iota // attribute type, before "="
		value         // attribute value
		quoted        // inside a "..." value (the RFC 1779 form)
	)
	state, valueStart := typ, 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '$' && i+1 < len(src) && src[i+1] == '{' {
			switch state {
			case typ:
				return fmt.Errorf("a placeholder at offset %d is in an attribute type; placeholders may only stand for values, such as uid=${username}", i)
			case quoted:
				return fmt.Errorf("a placeholder at offset %d is inside quotes; write the value without quotes, it is escaped", i)
			}
			if strings.HasPrefix(strings.TrimLeft(src[valueStart:i], " "), "#") {
				return fmt.Errorf("a placeholder at offset %d is in a value written in the #hex form", i)
			}
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return fmt.Errorf("%q has no closing }", src[i:])
			}
			i += end
			continue
		}
		switch state {
		case typ:
			if c == '=' {
				state, valueStart = value, i+1
			}
		case value:
			switch c {
			case '\\':
				i++
			case '"':
				if strings.TrimSpace(src[valueStart:i]) == "" {
					state = quoted
				}
			case ',', ';', '+':
				state = typ
			}
		case quoted:
			switch c {
			case '\\':
				i++
			case '"':
				state = value
			}
		}
	}
	return nil
}

// String returns the DN template as configured.
func (d *DN) String() string { return d.t.String() }

// HasVars reports whether the DN uses any placeholder.
func (d *DN) HasVars() bool { return d.t.HasVars() }

// ExactAttrs lists the attributes of the first RDN whose whole value is one placeholder
// ("uid" for uid=${username},ou=users,dc=example,dc=com): a read of the entry must ask
// for them so that Exact can compare their values. Nil when there are none.
func (d *DN) ExactAttrs() []string { return d.exact.attrs(nil) }

// Exact checks the entry named by the expanded DN: for each attribute of the first RDN
// whose whole value is one placeholder, the entry must hold a value equal, byte for byte,
// to the placeholder's raw value (before escaping). The other RDNs name other entries and
// are left to the directory's matching rules. A nil e (no entry could be read) fails when
// there is anything to check. e must have been read with ExactAttrs. The error wraps
// ErrNotExact and names attributes and variables, never values.
func (d *DN) Exact(v placeholder.Values, e *Entry) error { return d.exact.check(v, e) }

// Expand returns the DN for one client, every placeholder value escaped with
// ldap.EscapeDN (RFC 4514). It fails, wrapping ErrEmptyValue, when a placeholder has no
// value, and when the result does not parse into RDNs of the template's shape (which the
// escaping should make impossible).
func (d *DN) Expand(v placeholder.Values) (string, error) {
	if err := noEmpty(d.t, v); err != nil {
		return "", err
	}
	s := d.t.Expand(v, goldap.EscapeDN)
	dn, err := goldap.ParseDN(s)
	if err != nil {
		return "", fmt.Errorf("bind_dn: the expansion does not parse: %w", err)
	}
	shape := dnShape(dn)
	if len(shape) != len(d.shape) {
		return "", errors.New("bind_dn: the expansion changed the number of RDNs")
	}
	for i := range shape {
		if shape[i] != d.shape[i] {
			return "", errors.New("bind_dn: the expansion changed an RDN's attributes")
		}
	}
	return s, nil
}

// noEmpty fails when a variable of t has no value for v.
func noEmpty(t *placeholder.Template, v placeholder.Values) error {
	for _, name := range t.Vars() {
		if v.Lookup(name) == "" {
			return fmt.Errorf("${%s}: %w", name, ErrEmptyValue)
		}
	}
	return nil
}
