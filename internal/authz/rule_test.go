package authz

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseJSONRules(t *testing.T) {
	f := false
	tests := []struct {
		name string
		src  string
		want []Rule
	}{
		{"forms without who", `[
			{"permission":"allow","action":"publish","topic":"t/1","qos":[0,1],"retain":false},
			{"permission":"deny","action":"all","topics":["a","b"],"qos":1},
			{"permission":"Allow","action":"SUBSCRIBE","topic":"x","topics":["y"],"qos":null,"retain":null}]`,
			[]Rule{
				{Permission: PermAllow, Action: ActPublish, Topics: []string{"t/1"}, QoS: []byte{0, 1}, Retain: &f},
				{Permission: PermDeny, Action: ActAll, Topics: []string{"a", "b"}, QoS: []byte{1}},
				{Permission: PermAllow, Action: ActSubscribe, Topics: []string{"x", "y"}},
			}},
		{"who shapes", `[
			{"permission":"allow","action":"all","topic":"t","who":"all"},
			{"permission":"allow","action":"all","topic":"t","who":{"username":"u"}},
			{"permission":"allow","action":"all","topic":"t","who":{"and":[{"clientid":"c"},{"ipaddr":"10.0.0.0/8"}]}},
			{"permission":"allow","action":"all","topic":"t","who":{"client_attrs":{"role":"op"}}},
			{"permission":"allow","action":"all","topic":"t","who":null}]`,
			[]Rule{
				{Permission: PermAllow, Action: ActAll, Topics: []string{"t"}, Who: &Who{Kind: WhoAll}},
				{Permission: PermAllow, Action: ActAll, Topics: []string{"t"}, Who: &Who{Kind: WhoUsername, Value: "u"}},
				{Permission: PermAllow, Action: ActAll, Topics: []string{"t"}, Who: &Who{Kind: WhoAnd, List: []Who{
					{Kind: WhoClientID, Value: "c"}, {Kind: WhoIPAddr, Value: "10.0.0.0/8"}}}},
				{Permission: PermAllow, Action: ActAll, Topics: []string{"t"}, Who: &Who{Kind: WhoClientAttrs, Attrs: map[string]string{"role": "op"}}},
				{Permission: PermAllow, Action: ActAll, Topics: []string{"t"}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseJSONRules([]byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", dumpRules(got), dumpRules(tc.want))
			}
			if _, err := Compile(got); err != nil {
				t.Errorf("compile: %v", err)
			}
		})
	}
}

func TestParseJSONRulesErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"permission", `[{"permission":"maybe","action":"all","topic":"t"}]`, "acl rule 0: permission"},
		{"action", `[{"permission":"allow","action":"read","topic":"t"}]`, "acl rule 0: action"},
		{"no topic", `[{"permission":"allow","action":"all"}]`, "acl rule 0: no topic"},
		{"qos", `[{"permission":"allow","action":"all","topic":"t"},{"permission":"allow","action":"all","topic":"t","qos":[3]}]`, "acl rule 1: qos 3"},
		{"who key", `[{"permission":"allow","action":"all","topic":"t","who":{"user":"u"}}]`, `acl rule 0: who: unknown key "user"`},
		{"who type", `[{"permission":"allow","action":"all","topic":"t","who":{"username":3}}]`, "acl rule 0: who: username: want a string"},
		{"who regexp", `[{"permission":"allow","action":"all","topic":"t","who":{"clientid_re":"["}}]`, "acl rule 0: who: clientid_re"},
		{"who depth", `[{"permission":"allow","action":"all","topic":"t","who":` + strings.Repeat(`{"and":[`, 12) + `"all"` + strings.Repeat(`]}`, 12) + `}]`, "nested"},
		{"not a list", `{"permission":"allow"}`, "acl rules"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJSONRules([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestWhoString(t *testing.T) {
	w := Who{Kind: WhoAnd, List: []Who{{Kind: WhoUsername, Value: "u"}, {Kind: WhoClientAttrs, Attrs: map[string]string{"b": "2", "a": "1"}}, {}}}
	if got, want := w.String(), `{and: [{username: "u"}, {client_attrs: {"a": "1", "b": "2"}}, all]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
