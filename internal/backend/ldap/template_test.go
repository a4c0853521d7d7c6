package ldap

import (
	"errors"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

func TestCompileFilter(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		opts    placeholder.Options
		wantErr string
	}{
		{"and", "(&(objectClass=mqttUser)(uid=${username}))", placeholder.Options{}, ""},
		{"or of two values", "(|(uid=${username})(mail=${username}@example.com))", placeholder.Options{}, ""},
		{"not", "(!(uid=${clientid}))", placeholder.Options{}, ""},
		{"extensible match value", "(uid:caseExactMatch:=${username})", placeholder.Options{}, ""},
		{"substring around a value", "(cn=*${username}*)", placeholder.Options{}, ""},
		{"ordering", "(&(uid=${username})(uidNumber>=10))", placeholder.Options{}, ""},
		{"no placeholder", "(objectClass=*)", placeholder.Options{}, ""},
		{"escaped value kept", `(cn=a\2a${username})`, placeholder.Options{}, ""},
		{"empty", " ", placeholder.Options{}, "empty"},
		{"in attribute description", "(${username}=x)", placeholder.Options{}, "attribute description"},
		{"in attribute options", "(uid;${username}=x)", placeholder.Options{}, "attribute description"},
		{"in matching rule", "(uid:${username}:=x)", placeholder.Options{}, "attribute description"},
		{"between items", "(&${username}(uid=x))", placeholder.Options{}, "between filter items"},
		{"after the filter", "(uid=x)${username}", placeholder.Options{}, "between filter items"},
		{"no parentheses", "uid=${username}", placeholder.Options{}, "between filter items"},
		{"dangling escape before a placeholder", `(uid=\${username})`, placeholder.Options{}, "does not parse"},
		{"half an escape before a placeholder", `(uid=\2${username})`, placeholder.Options{}, "does not parse"},
		{"unbalanced", "(uid=${username}", placeholder.Options{}, "does not parse"},
		{"unknown variable", "(uid=${nobody})", placeholder.Options{}, "unknown variable"},
		{"password refused", "(uid=${password})", placeholder.Options{NoPassword: true}, "password"},
		{"unclosed placeholder", "(uid=${username)", placeholder.Options{}, "no closing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.src, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.String() != tt.src {
				t.Errorf("String %q", f.String())
			}
		})
	}
}

func TestFilterExpandEscapes(t *testing.T) {
	f, err := CompileFilter("(&(objectClass=mqttUser)(uid=${username}))", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ user, want string }{
		{"alice", `(&(objectClass=mqttUser)(uid=alice))`},
		{"*", `(&(objectClass=mqttUser)(uid=\2a))`},
		{"*)(uid=*", `(&(objectClass=mqttUser)(uid=\2a\29\28uid=\2a))`},
		{"admin)(|(uid=*", `(&(objectClass=mqttUser)(uid=admin\29\28|\28uid=\2a))`},
		{`\2a`, `(&(objectClass=mqttUser)(uid=\5c2a))`},
		{"uid=a,ou=users", `(&(objectClass=mqttUser)(uid=uid=a,ou=users))`},
		{"é\u200b", `(&(objectClass=mqttUser)(uid=\c3\a9\e2\80\8b))`},
		{"${password}", `(&(objectClass=mqttUser)(uid=${password}))`},
	}
	for _, tt := range tests {
		got, err := f.Expand(placeholder.Values{Info: &clientinfo.Info{Username: tt.user}, Password: []byte("secret")})
		if err != nil {
			t.Fatalf("%q: %v", tt.user, err)
		}
		if got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.user, got, tt.want)
		}
		// The expansion is one equality item, whatever the value: it compiles, and
		// decompiles to itself.
		pkt, err := goldap.CompileFilter(got)
		if err != nil {
			t.Fatalf("%q: expansion does not compile: %v", tt.user, err)
		}
		if len(pkt.Children) != 2 {
			t.Errorf("%q: the AND has %d items, want 2", tt.user, len(pkt.Children))
		}
	}
	if _, err := f.Expand(placeholder.Values{Info: &clientinfo.Info{}}); !errors.Is(err, ErrEmptyValue) {
		t.Errorf("empty user name: %v, want ErrEmptyValue", err)
	}
	// An empty value next to a wildcard would make a presence filter.
	g, err := CompileFilter("(uid=${username}*)", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Expand(placeholder.Values{}); !errors.Is(err, ErrEmptyValue) {
		t.Errorf("empty value before a wildcard: %v, want ErrEmptyValue", err)
	}
}

func TestCompileDN(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"uid", "uid=${username},ou=users,dc=example,dc=com", ""},
		{"prefix in value", "cn=device-${clientid},ou=devices,dc=example,dc=com", ""},
		{"multi-valued rdn", "cn=${username}+uid=${clientid},dc=example,dc=com", ""},
		{"no placeholder", "cn=fixed,dc=example,dc=com", ""},
		{"empty", "", "empty"},
		{"in attribute type", "${username}=x,dc=example,dc=com", "attribute type"},
		{"whole rdn", "${username},dc=example,dc=com", "attribute type"},
		{"type after plus", "cn=a+${username}=b,dc=example,dc=com", "attribute type"},
		{"quoted", `uid="${username}",dc=example,dc=com`, "inside quotes"},
		{"hex form", "uid=#${username},dc=example,dc=com", "#hex"},
		{"dangling escape", `uid=\${username},dc=example,dc=com`, "does not parse"},
		{"bad dn", "uid=${username},=x", "does not parse"},
		{"unknown variable", "uid=${nobody},dc=x", "unknown variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileDN(tt.src, placeholder.Options{NoPassword: true})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDNExpandEscapes(t *testing.T) {
	d, err := CompileDN("uid=${username},ou=users,dc=example,dc=com", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{
		"alice", "a,ou=x", "uid=a,ou=users", "a+cn=b", "a;ou=x", `a"b`, "<a>", `back\slash`, " lead", "trail ",
		"#hash", "*", "*)(uid=*", "é\u200b日本", "${clientid}",
	} {
		got, err := d.Expand(placeholder.Values{Info: &clientinfo.Info{Username: user, ClientID: "c"}})
		if err != nil {
			t.Fatalf("%q: %v", user, err)
		}
		dn, err := goldap.ParseDN(got)
		if err != nil {
			t.Fatalf("%q: %s does not parse: %v", user, got, err)
		}
		if len(dn.RDNs) != 4 || len(dn.RDNs[0].Attributes) != 1 || dn.RDNs[0].Attributes[0].Type != "uid" {
			t.Fatalf("%q: %s changed the DN's shape", user, got)
		}
		if v := dn.RDNs[0].Attributes[0].Value; v != user {
			t.Errorf("%q: %s has the value %q", user, got, v)
		}
		if dn.RDNs[1].String() != "ou=users" {
			t.Errorf("%q: %s: second RDN %s", user, got, dn.RDNs[1])
		}
	}
	if _, err := d.Expand(placeholder.Values{}); !errors.Is(err, ErrEmptyValue) {
		t.Errorf("empty user name: %v, want ErrEmptyValue", err)
	}
}

func entry(dn string, attrs map[string][]string) *Entry {
	e := &Entry{DN: dn}
	for k, v := range attrs {
		e.attrs = append(e.attrs, &goldap.EntryAttribute{Name: k, Values: v})
	}
	return e
}

func TestFilterExactAttrs(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{"(&(objectClass=mqttUser)(uid=${username}))", []string{"uid"}},
		{"(uid=${username})", []string{"uid"}},
		{"(&(uid=${username})(UID=${username})(cn=${clientid}))", []string{"uid", "cn"}},
		{"(|(uid=${username})(mail=${username}))", []string{"uid", "mail"}},
		{"(&(objectClass=mqttUser)(|(uid=${username})(cn=${username})))", []string{"uid", "cn"}},
		{"(uid;lang-en=${username})", []string{"uid;lang-en"}},
		{"(uid=${client_attrs.a)b})", []string{"uid"}},
		// The directory alone decides these.
		{"(|(uid=${username})(mail=${username}@example.com))", nil},
		{"(|(uid=${username})(objectClass=admin))", nil},
		{"(!(uid=${username}))", nil},
		{"(uid=${username}*)", nil},
		{"(uid=*${username})", nil},
		{"(uid=a${username})", nil},
		{"(uid= ${username})", nil},
		{`(uid=\61${username})`, nil},
		{"(uid=${username}${clientid})", nil},
		{"(uid:caseExactMatch:=${username})", nil},
		{"(uid:dn:=${username})", nil},
		{"(uid~=${username})", nil},
		{"(uidNumber>=${clientid})", nil},
		{"(uidNumber<=${clientid})", nil},
		{"(objectClass=mqttUser)", nil},
	}
	for _, tt := range tests {
		f, err := CompileFilter(tt.src, placeholder.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if got := f.ExactAttrs(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: ExactAttrs %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestFilterExact(t *testing.T) {
	and, err := CompileFilter("(&(objectClass=mqttUser)(uid=${username})(cn=${clientid}))", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	or, err := CompileFilter("(|(uid=${username})(mail=${username}))", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice := entry("uid=alice,dc=x", map[string][]string{"UID": {"Alice", "alice"}, "cn": {"c1"}, "mail": {"a@x"}})
	vals := func(user, client string) placeholder.Values {
		return placeholder.Values{Info: &clientinfo.Info{Username: user, ClientID: client}, Password: []byte("secret")}
	}
	tests := []struct {
		name  string
		f     *Filter
		v     placeholder.Values
		e     *Entry
		ok    bool
		empty bool // the error says an attribute came back empty
	}{
		{"every value exact", and, vals("alice", "c1"), alice, true, false},
		{"another value of the attribute", and, vals("Alice", "c1"), alice, true, false},
		{"case", and, vals("ALICE", "c1"), alice, false, false},
		{"leading space", and, vals(" alice", "c1"), alice, false, false},
		{"trailing space", and, vals("alice ", "c1"), alice, false, false},
		{"full width", and, vals("ａｌｉｃｅ", "c1"), alice, false, false},
		{"second assertion", and, vals("alice", "C1"), alice, false, false},
		{"attribute not read", and, vals("alice", "c1"), entry("uid=alice,dc=x", map[string][]string{"uid": {"alice"}}), false, true},
		{"no entry", and, vals("alice", "c1"), nil, false, true},
		{"or: first branch", or, vals("alice", ""), alice, true, false},
		{"or: second branch", or, vals("a@x", ""), alice, true, false},
		{"or: neither", or, vals("A@X", ""), alice, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Exact(tt.v, tt.e)
			if tt.ok {
				if err != nil {
					t.Fatalf("Exact: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrNotExact) {
				t.Fatalf("Exact: %v, want ErrNotExact", err)
			}
			if strings.Contains(err.Error(), "came back empty") != tt.empty {
				t.Errorf("Exact: %v", err)
			}
			// The entry's DN is named; the client's values are not.
			msg := err.Error()
			if tt.e != nil {
				msg = strings.TrimPrefix(msg, tt.e.DN)
			}
			for _, leak := range []string{"secret", tt.v.Info.Username} {
				if strings.Contains(msg, leak) {
					t.Errorf("Exact's error holds %q: %v", leak, err)
				}
			}
		})
	}
	// Nothing to compare: every entry passes, even none.
	loose, err := CompileFilter("(uid=${username}*)", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := loose.Exact(vals("ALICE", ""), nil); err != nil {
		t.Errorf("no exact assertion: %v", err)
	}
}

func TestDNExact(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{"uid=${username},ou=users,dc=example,dc=com", []string{"uid"}},
		{"UID=${username},ou=users,dc=example,dc=com", []string{"UID"}},
		{"uid=${username}+cn=${clientid},dc=x", []string{"uid", "cn"}},
		{"uid=${username}+cn=device,dc=x", []string{"uid"}},
		{"cn=pre-${username},dc=x", nil},
		{"cn=${username}${clientid},dc=x", nil},
		{"uid=alice,ou=${username},dc=x", nil},
	}
	for _, tt := range tests {
		d, err := CompileDN(tt.src, placeholder.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if got := d.ExactAttrs(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: ExactAttrs %q, want %q", tt.src, got, tt.want)
		}
	}
	d, err := CompileDN("uid=${username}+cn=${clientid},ou=users,dc=x", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := entry("uid=alice+cn=c1,ou=users,dc=x", map[string][]string{"uid": {"alice"}, "cn": {"c1"}})
	v := func(user string) placeholder.Values {
		return placeholder.Values{Info: &clientinfo.Info{Username: user, ClientID: "c1"}}
	}
	if err := d.Exact(v("alice"), e); err != nil {
		t.Errorf("alice: %v", err)
	}
	for _, user := range []string{"ALICE", " alice", "ａｌｉｃｅ"} {
		if err := d.Exact(v(user), e); !errors.Is(err, ErrNotExact) {
			t.Errorf("%q: %v, want ErrNotExact", user, err)
		}
	}
	if err := d.Exact(v("alice"), nil); !errors.Is(err, ErrNotExact) {
		t.Errorf("no entry: %v, want ErrNotExact", err)
	}
	loose, err := CompileDN("cn=pre-${username},dc=x", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := loose.Exact(v("ALICE"), nil); err != nil {
		t.Errorf("nothing to compare: %v", err)
	}
}
