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
