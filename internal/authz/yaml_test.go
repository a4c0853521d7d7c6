package authz

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseYAMLRules(t *testing.T) {
	f := false
	rules, err := ParseYAMLRules([]byte(`# comment
rules:
  - {permission: allow, who: {username: admin}, action: subscribe, topics: ["$SYS/#", "#"]}
  - permission: deny
    who: all
    action: subscribe
    topics: ["$SYS/#", "eq #", "eq +/#"]
  - {permission: allow, action: publish, topic: "devices/${clientid}/telemetry", qos: [0, 1], retain: false}
  - {permission: allow, who: {client_attrs: {floor: 3}}, qos: 2}
  - {permission: deny, who: {or: [{clientid_re: "^x"}, {and: [{ipaddr: 10.0.0.0/8}, {cert_common_name: cn}]}]}}
  - {permission: deny}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Permission: PermAllow, Who: &Who{Kind: WhoUsername, Value: "admin"}, Action: ActSubscribe, Topics: []string{"$SYS/#", "#"}},
		{Permission: PermDeny, Who: &Who{Kind: WhoAll}, Action: ActSubscribe, Topics: []string{"$SYS/#", "eq #", "eq +/#"}},
		{Permission: PermAllow, Action: ActPublish, Topics: []string{"devices/${clientid}/telemetry"}, QoS: []byte{0, 1}, Retain: &f},
		{Permission: PermAllow, Who: &Who{Kind: WhoClientAttrs, Attrs: map[string]string{"floor": "3"}}, Action: ActAll, QoS: []byte{2}},
		{Permission: PermDeny, Action: ActAll, Who: &Who{Kind: WhoOr, List: []Who{
			{Kind: WhoClientIDRE, Value: "^x"},
			{Kind: WhoAnd, List: []Who{{Kind: WhoIPAddr, Value: "10.0.0.0/8"}, {Kind: WhoCertCommonName, Value: "cn"}}},
		}}},
		{Permission: PermDeny, Action: ActAll},
	}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("got\n%s\nwant\n%s", dumpRules(rules), dumpRules(want))
	}
	empty, err := ParseYAMLRules([]byte("rules: []\n"))
	if err != nil || len(empty) != 0 {
		t.Errorf("rules: []: %v %v", empty, err)
	}
}

func TestParseYAMLRulesErrors(t *testing.T) {
	tests := []struct {
		name, src    string
		index, line  int // index -1: not about one rule
		wantContains string
	}{
		{"empty", "", -1, 0, "empty"},
		{"comments only", "# nothing\n", -1, 0, "empty"},
		{"two documents", "rules: []\n---\nrules: []\n", -1, 0, "second YAML document"},
		{"not a mapping", "- a\n", -1, 0, "want a mapping"},
		{"unknown top key", "rules: []\nrulez: []\n", -1, 0, `unknown key "rulez"`},
		{"rules null", "rules:\n", -1, 0, "want a list"},
		{"syntax", "rules: [\n", -1, 0, "yaml"},
		{"unknown key", "rules:\n  - {permission: allow}\n  - permission: allow\n    topisc: [a]\n", 1, 4, `unknown key "topisc"`},
		{"duplicate key", "rules:\n  - permission: allow\n    permission: deny\n", 0, 3, "duplicate key permission"},
		{"no permission", "rules:\n  - {topics: [a]}\n", 0, 2, "permission: missing"},
		{"bad permission", "rules:\n  - {permission: maybe}\n", 0, 2, "want allow or deny"},
		{"bad action", "rules:\n  - {permission: allow, action: read}\n", 0, 2, "want publish, subscribe or all"},
		{"bad who key", "rules:\n  - permission: allow\n    who: {user: x}\n", 0, 3, `unknown key "user"`},
		{"who two keys", "rules:\n  - {permission: allow, who: {username: x, clientid: y}}\n", 0, 2, "exactly one key"},
		{"who string", "rules:\n  - {permission: allow, who: everybody}\n", 0, 2, "want all"},
		{"bad regexp", "rules:\n  - {permission: allow, who: {username_re: \"(\"}}\n", 0, 2, "username_re"},
		{"bad cidr", "rules:\n  - {permission: allow, who: {ipaddr: 300.0.0.0/8}}\n", 0, 2, "ipaddr"},
		{"bad filter", "rules:\n  - {permission: allow}\n  - {permission: allow, topics: [\"a/#/b\"]}\n", 1, 3, `topic "a/#/b"`},
		{"bad placeholder", "rules:\n  - {permission: allow, topics: [\"a/${pasword}\"]}\n", 0, 2, "unknown variable"},
		{"password", "rules:\n  - {permission: allow, topics: [\"a/${password}\"]}\n", 0, 2, "password"},
		{"qos", "rules:\n  - {permission: allow, qos: [0, 3]}\n", 0, 2, "want 0, 1 or 2"},
		{"qos text", "rules:\n  - {permission: allow, qos: one}\n", 0, 2, "want 0, 1 or 2"},
		{"retain text", "rules:\n  - {permission: allow, retain: yes}\n", 0, 2, "want true or false"},
		{"topics scalar", "rules:\n  - {permission: allow, topics: a/b}\n", 0, 2, "want a list"},
		{"topics empty", "rules:\n  - {permission: allow, topics: []}\n", 0, 2, "empty list"},
		{"empty topic", "rules:\n  - {permission: allow, topics: [\"\"]}\n", 0, 2, "empty topic"},
		{"merge key", "x: &x {permission: allow}\nrules:\n  - {<<: *x}\n", -1, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseYAMLRules([]byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantContains) {
				t.Errorf("error %q does not contain %q", err, tc.wantContains)
			}
			var re *RuleError
			if tc.index < 0 {
				return
			}
			if !errors.As(err, &re) {
				t.Fatalf("error %q is not a RuleError", err)
			}
			if re.Index != tc.index || re.Line != tc.line {
				t.Errorf("error %q: rule %d line %d, want rule %d line %d", err, re.Index, re.Line, tc.index, tc.line)
			}
		})
	}
}

func TestCompileYAML(t *testing.T) {
	rs, err := CompileYAML([]byte("rules:\n  - {permission: allow, topics: [a]}\n"))
	if err != nil || rs.Len() != 1 {
		t.Fatalf("%v %v", rs, err)
	}
	_, err = CompileYAML([]byte("rules:\n  - {permission: allow}\n\n  - {permission: allow, qos: 1, who: {ipaddr: nope}}\n"))
	var re *RuleError
	if !errors.As(err, &re) || re.Index != 1 || re.Line != 4 || !strings.Contains(err.Error(), "line 4: rule 1: who: ipaddr") {
		t.Errorf("got %v", err)
	}
	// Found by Compile rather than the parser, and still given its line.
	_, err = CompileYAML([]byte("rules:\n  - {permission: allow}\n  - permission: deny\n    topics: [\"a/#/b\"]\n"))
	if !errors.As(err, &re) || re.Index != 1 || re.Line != 3 || !strings.Contains(err.Error(), `line 3: rule 1: topic "a/#/b"`) {
		t.Errorf("got %v", err)
	}
}
