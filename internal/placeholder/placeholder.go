// Package placeholder expands ${...} variables in configured templates (HTTP bodies and
// URLs, SQL and Redis arguments, JWT claim checks, ACL topics) from a client's clientinfo.
// Templates are parsed once, at configuration load, so an unknown variable is a start-up
// error; expansion never re-parses its output, so a value containing "${" stays literal.
package placeholder

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// Variable names.
const (
	ClientID       = "clientid"
	Username       = "username"
	Password       = "password"
	PeerHost       = "peerhost"
	PeerPort       = "peerport"
	Listener       = "listener"
	ProtoVer       = "proto_ver"
	CertCommonName = "cert_common_name"
	CertSubject    = "cert_subject"
	CertSHA256     = "cert_fingerprint"
	attrPrefix     = "client_attrs."
)

var known = map[string]bool{
	ClientID: true, Username: true, Password: true, PeerHost: true, PeerPort: true,
	Listener: true, ProtoVer: true, CertCommonName: true, CertSubject: true, CertSHA256: true,
}

// Template is a parsed template: literal text and variables in order.
type Template struct {
	src   string
	parts []part
}

type part struct {
	lit string
	v   string // variable name; "" for a literal part
}

// Options restrict what a template may use.
type Options struct {
	// NoPassword refuses ${password} (everywhere outside authentication).
	NoPassword bool
}

// Parse reads a template. "${name}" is a variable; "$$" is not special; a "${" without a
// closing brace or an unknown name is an error.
func Parse(s string, o Options) (*Template, error) {
	t := &Template{src: s}
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("placeholder in %q: %q has no closing }", s, rest[i:])
		}
		name := rest[i+2 : i+j]
		if err := check(name, o); err != nil {
			return nil, fmt.Errorf("placeholder in %q: %w", s, err)
		}
		t.parts = append(t.parts, part{v: name})
		rest = rest[i+j+1:]
	}
}

func check(name string, o Options) error {
	if attr, ok := strings.CutPrefix(name, attrPrefix); ok {
		if attr == "" {
			return fmt.Errorf("${%s}: attribute name missing", name)
		}
		return nil
	}
	if !known[name] {
		return fmt.Errorf("unknown variable ${%s}", name)
	}
	if name == Password && o.NoPassword {
		return fmt.Errorf("${password} is only allowed in authentication")
	}
	return nil
}

// MustParse is Parse for templates written in code; it panics on error.
func MustParse(s string) *Template {
	t, err := Parse(s, Options{})
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template's source text.
func (t *Template) String() string { return t.src }

// HasVars reports whether the template uses any variable.
func (t *Template) HasVars() bool {
	for _, p := range t.parts {
		if p.v != "" {
			return true
		}
	}
	return false
}

// Vars lists the variables the template uses, in order, with repeats.
func (t *Template) Vars() []string {
	var out []string
	for _, p := range t.parts {
		if p.v != "" {
			out = append(out, p.v)
		}
	}
	return out
}

// Values are what variables expand to for one client.
type Values struct {
	Info     *clientinfo.Info
	Password []byte
}

// Lookup returns the value of one variable. A missing value (no certificate, no such
// attribute) is "".
func (v Values) Lookup(name string) string {
	i := v.Info
	if i == nil {
		i = &clientinfo.Info{}
	}
	switch name {
	case ClientID:
		return i.ClientID
	case Username:
		return i.Username
	case Password:
		return string(v.Password)
	case PeerHost:
		return i.PeerHost()
	case PeerPort:
		if !i.Peer.IsValid() {
			return ""
		}
		return strconv.Itoa(int(i.Peer.Port()))
	case Listener:
		return i.Listener
	case ProtoVer:
		if i.ProtocolVersion == 0 {
			return ""
		}
		return strconv.Itoa(int(i.ProtocolVersion))
	case CertCommonName:
		return i.Cert.Field("cn")
	case CertSubject:
		return i.Cert.Field("dn")
	case CertSHA256:
		return i.Cert.Field("crt_sha256")
	}
	if attr, ok := strings.CutPrefix(name, attrPrefix); ok {
		return i.Attrs[attr]
	}
	return ""
}

// Expand returns the template with every variable replaced by its value through escape
// (nil: the raw value). Use url.QueryEscape or url.PathEscape for URLs; SQL and Redis
// callers use Args instead and bind the values.
func (t *Template) Expand(v Values, escape func(string) string) string {
	if len(t.parts) == 1 && t.parts[0].v == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.v == "" {
			b.WriteString(p.lit)
			continue
		}
		s := v.Lookup(p.v)
		if escape != nil {
			s = escape(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

// IsSingleVar reports whether the template is exactly one variable and nothing else, and
// names it. SQL and Redis argument templates must be of this form.
func (t *Template) IsSingleVar() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].v != "" {
		return t.parts[0].v, true
	}
	return "", false
}
