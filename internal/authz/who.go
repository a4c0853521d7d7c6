package authz

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// WhoKind says which clients a Who selects.
type WhoKind uint8

// Who kinds. The zero value, WhoAll, selects every client.
const (
	WhoAll            WhoKind = iota
	WhoUsername               // Value is the exact user name
	WhoClientID               // Value is the exact client identifier
	WhoIPAddr                 // Value is a CIDR prefix or a single address of the peer
	WhoCertCommonName         // Value is the exact common name of the verified client certificate
	WhoUsernameRE             // Value is an RE2 expression searched in the user name (unanchored)
	WhoClientIDRE             // Value is an RE2 expression searched in the client identifier (unanchored)
	WhoClientAttrs            // Attrs: every listed client attribute has exactly the value given
	WhoAnd                    // List: every entry selects the client
	WhoOr                     // List: at least one entry selects the client
)

// whoKeys are the names of the who shapes in the ACL file and JSON forms, by kind.
var whoKeys = [...]string{
	WhoAll:            "all",
	WhoUsername:       "username",
	WhoClientID:       "clientid",
	WhoIPAddr:         "ipaddr",
	WhoCertCommonName: "cert_common_name",
	WhoUsernameRE:     "username_re",
	WhoClientIDRE:     "clientid_re",
	WhoClientAttrs:    "client_attrs",
	WhoAnd:            "and",
	WhoOr:             "or",
}

func (k WhoKind) String() string {
	if int(k) < len(whoKeys) {
		return whoKeys[k]
	}
	return fmt.Sprintf("who(%d)", uint8(k))
}

// Who selects the clients a rule applies to.
type Who struct {
	Kind  WhoKind
	Value string            // WhoUsername ... WhoClientIDRE
	Attrs map[string]string // WhoClientAttrs
	List  []Who             // WhoAnd, WhoOr
}

// String renders w in the ACL file's flow form, for logs and error messages.
func (w Who) String() string {
	switch w.Kind {
	case WhoAll:
		return "all"
	case WhoClientAttrs:
		names := make([]string, 0, len(w.Attrs))
		for k := range w.Attrs {
			names = append(names, k)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, k := range names {
			parts[i] = fmt.Sprintf("%q: %q", k, w.Attrs[k])
		}
		return "{client_attrs: {" + strings.Join(parts, ", ") + "}}"
	case WhoAnd, WhoOr:
		parts := make([]string, len(w.List))
		for i, s := range w.List {
			parts[i] = s.String()
		}
		return "{" + w.Kind.String() + ": [" + strings.Join(parts, ", ") + "]}"
	}
	return fmt.Sprintf("{%s: %q}", w.Kind, w.Value)
}

// maxWhoDepth bounds the nesting of and/or, so a hostile rule (a JWT claim) cannot make
// compiling or matching recurse without limit.
const maxWhoDepth = 8

// parseWho reads a who in its generic form (decoded JSON, or YAML turned into the same
// shapes): the string "all", or an object with exactly one of the keys in whoKeys.
func parseWho(v any, depth int) (Who, error) {
	if depth > maxWhoDepth {
		return Who{}, fmt.Errorf("and/or nested more than %d deep", maxWhoDepth)
	}
	switch x := v.(type) {
	case string:
		if x == "all" {
			return Who{Kind: WhoAll}, nil
		}
		return Who{}, fmt.Errorf("%q: want all or an object such as {username: NAME}", x)
	case map[string]any:
		if len(x) != 1 {
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return Who{}, fmt.Errorf("object with keys %q: want exactly one key (combine with and/or)", keys)
		}
		for key, val := range x {
			return parseWhoKey(key, val, depth)
		}
	}
	return Who{}, fmt.Errorf("want all or an object such as {username: NAME}, got %s", typeName(v))
}

func parseWhoKey(key string, val any, depth int) (Who, error) {
	kind := WhoKind(0)
	for k, name := range whoKeys {
		if name == key && WhoKind(k) != WhoAll {
			kind = WhoKind(k)
		}
	}
	var w Who
	switch kind {
	case WhoAll:
		return w, fmt.Errorf("unknown key %q: want one of username, clientid, ipaddr, cert_common_name, username_re, clientid_re, client_attrs, and, or", key)
	case WhoClientAttrs:
		m, ok := val.(map[string]any)
		if !ok {
			return w, fmt.Errorf("client_attrs: want an object of attribute names and values, got %s", typeName(val))
		}
		w = Who{Kind: kind, Attrs: make(map[string]string, len(m))}
		for name, av := range m {
			s, ok := av.(string)
			if !ok {
				return w, fmt.Errorf("client_attrs: %q: want a string, got %s", name, typeName(av))
			}
			w.Attrs[name] = s
		}
	case WhoAnd, WhoOr:
		list, ok := val.([]any)
		if !ok {
			return w, fmt.Errorf("%s: want a list, got %s", key, typeName(val))
		}
		w = Who{Kind: kind, List: make([]Who, 0, len(list))}
		for i, e := range list {
			sub, err := parseWho(e, depth+1)
			if err != nil {
				return w, fmt.Errorf("%s[%d]: %w", key, i, err)
			}
			w.List = append(w.List, sub)
		}
	default:
		s, ok := val.(string)
		if !ok {
			return w, fmt.Errorf("%s: want a string, got %s", key, typeName(val))
		}
		w = Who{Kind: kind, Value: s}
	}
	if _, err := compileWho(&w, 0); err != nil {
		return w, err
	}
	return w, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// whoMatcher is a compiled Who.
type whoMatcher struct {
	kind   WhoKind
	value  string
	re     *regexp.Regexp
	prefix netip.Prefix
	attrs  []attr // sorted by name
	list   []*whoMatcher
}

type attr struct{ name, value string }

// facts is what a who needs to know about a client, copied at ForClient.
type facts struct {
	username, clientID, cn string
	addr                   netip.Addr // invalid when unknown
	attrs                  map[string]string
}

func factsOf(info *clientinfo.Info) facts {
	f := facts{username: info.Username, clientID: info.ClientID, attrs: info.Attrs}
	if info.Peer.IsValid() {
		f.addr = info.Peer.Addr().Unmap()
	}
	if info.Cert != nil {
		f.cn = info.Cert.CN
	}
	return f
}

// compileWho checks w and returns its matcher; nil for WhoAll.
func compileWho(w *Who, depth int) (*whoMatcher, error) {
	if depth > maxWhoDepth {
		return nil, fmt.Errorf("and/or nested more than %d deep", maxWhoDepth)
	}
	m := &whoMatcher{kind: w.Kind, value: w.Value}
	switch w.Kind {
	case WhoAll:
		return nil, nil
	case WhoUsername, WhoClientID, WhoCertCommonName:
		if w.Value == "" {
			return nil, fmt.Errorf("%s: empty value", w.Kind)
		}
	case WhoIPAddr:
		p, err := parsePrefix(w.Value)
		if err != nil {
			return nil, fmt.Errorf("ipaddr %q: %w", w.Value, err)
		}
		m.prefix = p
	case WhoUsernameRE, WhoClientIDRE:
		if w.Value == "" {
			return nil, fmt.Errorf("%s: empty expression", w.Kind)
		}
		re, err := regexp.Compile(w.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.Kind, err)
		}
		m.re = re
	case WhoClientAttrs:
		if len(w.Attrs) == 0 {
			return nil, errors.New("client_attrs: no attribute given")
		}
		for name, v := range w.Attrs {
			if name == "" {
				return nil, errors.New("client_attrs: empty attribute name")
			}
			m.attrs = append(m.attrs, attr{name, v})
		}
		sort.Slice(m.attrs, func(i, j int) bool { return m.attrs[i].name < m.attrs[j].name })
	case WhoAnd, WhoOr:
		if len(w.List) == 0 {
			return nil, fmt.Errorf("%s: empty list", w.Kind)
		}
		for i := range w.List {
			sub, err := compileWho(&w.List[i], depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", w.Kind, i, err)
			}
			if sub == nil {
				sub = &whoMatcher{kind: WhoAll}
			}
			m.list = append(m.list, sub)
		}
	default:
		return nil, fmt.Errorf("unknown kind %d", w.Kind)
	}
	return m, nil
}

// parsePrefix reads a CIDR prefix, or a single address as a one-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func (m *whoMatcher) match(f *facts) bool {
	switch m.kind {
	case WhoAll:
		return true
	case WhoUsername:
		return f.username == m.value
	case WhoClientID:
		return f.clientID == m.value
	case WhoCertCommonName:
		return f.cn == m.value
	case WhoIPAddr:
		return f.addr.IsValid() && m.prefix.Contains(f.addr)
	case WhoUsernameRE:
		return m.re.MatchString(f.username)
	case WhoClientIDRE:
		return m.re.MatchString(f.clientID)
	case WhoClientAttrs:
		for _, a := range m.attrs {
			v, ok := f.attrs[a.name]
			if !ok || v != a.value {
				return false
			}
		}
		return true
	case WhoAnd:
		for _, s := range m.list {
			if !s.match(f) {
				return false
			}
		}
		return true
	case WhoOr:
		for _, s := range m.list {
			if s.match(f) {
				return true
			}
		}
	}
	return false
}
