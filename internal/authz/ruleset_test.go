package authz

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

var (
	pub    = Action{Kind: ActPublish}
	pubQ2  = Action{Kind: ActPublish, QoS: 2}
	pubRet = Action{Kind: ActPublish, Retain: true}
	sub    = Action{Kind: ActSubscribe}
	subQ2  = Action{Kind: ActSubscribe, QoS: 2}
)

func mustYAML(t *testing.T, src string) *RuleSet {
	t.Helper()
	rules, err := ParseYAMLRules([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	rs, err := Compile(rules)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return rs
}

type check struct {
	info  *clientinfo.Info
	a     Action
	topic string
	want  Decision
}

func user(name string) *clientinfo.Info {
	return &clientinfo.Info{ClientID: "c-" + name, Username: name}
}

func client(id string) *clientinfo.Info { return &clientinfo.Info{ClientID: id, Username: "u"} }

// runChecks runs every check against the rules in both layouts (flat lists and tries).
func runChecks(t *testing.T, src string, checks []check) {
	t.Helper()
	rules, err := ParseYAMLRules([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, limit := range []int{0, 1 << 30} {
		rs, err := compile(rules, limit)
		if err != nil {
			t.Fatalf("compile: %v", err)
		}
		for _, c := range checks {
			if got := rs.ForClient(c.info).Decide(c.a, c.topic); got != c.want {
				t.Errorf("flat limit %d: client %q user %q %+v %q: got %v, want %v", limit, c.info.ClientID, c.info.Username, c.a, c.topic, got, c.want)
			}
		}
	}
}

func TestSubscribeCoverage(t *testing.T) {
	runChecks(t, `rules:
  - {permission: allow, topics: ["a/+/c"]}
  - {permission: allow, who: {username: root}, topics: ["#"]}
  - {permission: allow, who: {username: eq}, topics: ["eq #", "eq x/+"]}
  - {permission: allow, who: {username: plus}, topics: ["+/#", "p/+/#"]}
`, []check{
		{user("plus"), sub, "#", Allow}, // "+/#" and "#" match the same topics
		{user("plus"), sub, "$SYS/#", NoMatch},
		{user("plus"), sub, "p/#", Allow},
		{user("plus"), sub, "p", Allow},
		{user("root"), sub, "a/+/#", Allow},
		{user("u"), sub, "a/1/c", Allow},
		{user("u"), sub, "a/+/c", Allow},
		{user("u"), sub, "a/#", NoMatch},
		{user("u"), sub, "#", NoMatch},
		{user("u"), sub, "+/1/c", NoMatch},
		{user("u"), pub, "a/1/c", Allow},
		{user("u"), pub, "a/1/c/d", NoMatch},
		{user("root"), sub, "#", Allow},
		{user("root"), sub, "+/#", Allow},
		{user("root"), sub, "x/y/#", Allow},
		{user("root"), sub, "$SYS/#", NoMatch}, // '#' never covers "$" topics
		{user("root"), pub, "$SYS/x", NoMatch},
		{user("eq"), sub, "#", Allow},
		{user("eq"), sub, "x/+", Allow},
		{user("eq"), sub, "x/1", NoMatch}, // eq is the filter text, not a filter
		{user("eq"), sub, "+/#", NoMatch},
		{user("eq"), pub, "x/1", NoMatch},
	})
}

// A deny rule takes every subscription that could receive a topic it names: otherwise a
// later, wider allow would hand those messages out.
func TestDenyOverlapsSubscriptions(t *testing.T) {
	runChecks(t, `rules:
  - {permission: deny, topics: ["secret/x", "$SYS/#", "eq +/#"]}
  - {permission: allow, topics: ["#"]}
`, []check{
		{user("u"), sub, "+/x", Deny},
		{user("u"), sub, "secret/#", Deny},
		{user("u"), sub, "#", Deny},
		{user("u"), sub, "+/#", Deny},
		{user("u"), sub, "+/y", Allow},
		{user("u"), sub, "secret/y", Allow},
		{user("u"), sub, "secret", Allow},
		{user("u"), sub, "public/#", Allow},
		{user("u"), pub, "secret/x", Deny},
		{user("u"), pub, "secret/xx", Allow},
		{user("u"), sub, "$SYS/broker/+", Deny},
	})
}

func TestPlaceholdersExpandLiterally(t *testing.T) {
	src := `rules:
  - {permission: allow, topics: ["devices/${clientid}/#", "users/${username}/inbox", "attr/${client_attrs.site}/x"]}
  - {permission: allow, topics: ["cn/${cert_common_name}", "ip/${peerhost}"]}
  - {permission: allow, topics: ["${clientid}/own"]}
  - {permission: deny, topics: ["deny/${clientid}"]}
  - {permission: allow, topics: ["deny/+"]}
`
	withPeer := &clientinfo.Info{ClientID: "d1", Username: "u1", Peer: netip.MustParseAddrPort("10.0.0.7:5000"),
		Cert: &clientinfo.Cert{CN: "dev.example"}, Attrs: map[string]string{"site": "s1"}}
	checks := []check{
		{client("d1"), pub, "devices/d1/t", Allow},
		{client("d1"), sub, "devices/d1/#", Allow},
		{client("d1"), pub, "devices/d2/t", NoMatch},
		{client("d1"), sub, "devices/+/t", NoMatch},
		{user("u1"), sub, "users/u1/inbox", Allow},
		{user("u1"), sub, "users/u2/inbox", NoMatch},
		{withPeer, pub, "attr/s1/x", Allow},
		{withPeer, pub, "cn/dev.example", Allow},
		{withPeer, pub, "ip/10.0.0.7", Allow},
		{client("d1"), pub, "attr//x", NoMatch}, // no attribute: empty value, no match
		{client("d1"), pub, "cn/", NoMatch},
		{client("d1"), pub, "d1/own", Allow},
		{client("$SYS"), pub, "$SYS/own", NoMatch}, // a client id may not reach "$" topics
		{client("d1"), pub, "deny/d1", Deny},
		{client("d1"), pub, "deny/d2", Allow},
	}
	// Client ids that are not one literal level match no placeholder rule at all, and
	// cannot widen one: "#" is not a wildcard here.
	for _, id := range []string{"#", "+", "a/+", "x/y", "", "a\x00b"} {
		checks = append(checks,
			check{client(id), pub, "devices/" + id + "/t", NoMatch},
			check{client(id), sub, "devices/" + id + "/t", NoMatch},
			check{client(id), sub, "devices/" + id, NoMatch},
			check{client(id), pub, "devices/x/t", NoMatch},
			check{client(id), sub, "devices/#", NoMatch},
			check{client(id), sub, "devices/+/#", NoMatch},
			check{client(id), pub, id + "/own", NoMatch},
			check{client(id), sub, "#", NoMatch},
			// The deny rule does not exist for this client either; the allow after it does.
			check{client(id), pub, "deny/z", Allow},
		)
	}
	runChecks(t, src, checks)
}

func TestUnsafeForPlaceholders(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "#": true, "+": true, "a/b": true, "a\x00": true, "dev+1": true,
		"dev-1": false, "$SYS": false, "ü": false, " ": false,
	} {
		if got := UnsafeForPlaceholders(v); got != want {
			t.Errorf("UnsafeForPlaceholders(%q) = %v", v, got)
		}
	}
}

func TestUsesPlaceholders(t *testing.T) {
	if mustYAML(t, "rules: [{permission: allow, topics: [a/b]}]").UsesPlaceholders() {
		t.Error("no placeholder, but UsesPlaceholders")
	}
	if !mustYAML(t, "rules: [{permission: allow, who: {username: x}, topics: ['a/${username}']}]").UsesPlaceholders() {
		t.Error("placeholder in a per-user rule not seen")
	}
}

func TestWhoShapes(t *testing.T) {
	src := `rules:
  - {permission: allow, who: {username: alice}, topics: [t/username]}
  - {permission: allow, who: {clientid: c1}, topics: [t/clientid]}
  - {permission: allow, who: {ipaddr: 10.0.0.0/8}, topics: [t/ipaddr]}
  - {permission: allow, who: {ipaddr: "2001:db8::1"}, topics: [t/ipaddr6]}
  - {permission: allow, who: {cert_common_name: dev.example}, topics: [t/cn]}
  - {permission: allow, who: {username_re: "^ops-[0-9]+$"}, topics: [t/username_re]}
  - {permission: allow, who: {clientid_re: "^sensor-"}, topics: [t/clientid_re]}
  - {permission: allow, who: {client_attrs: {role: op, site: s1}}, topics: [t/attrs]}
  - {permission: allow, who: {and: [{username: bob}, {ipaddr: 192.168.0.0/16}]}, topics: [t/and]}
  - {permission: allow, who: {or: [{clientid: x1}, {username: carol}]}, topics: [t/or]}
  - {permission: allow, who: all, topics: [t/all]}
`
	peer := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	checks := []check{
		{&clientinfo.Info{Username: "alice"}, pub, "t/username", Allow},
		{&clientinfo.Info{Username: "alice2"}, pub, "t/username", NoMatch},
		{&clientinfo.Info{ClientID: "alice"}, pub, "t/username", NoMatch},
		{&clientinfo.Info{ClientID: "c1"}, pub, "t/clientid", Allow},
		{&clientinfo.Info{Username: "c1"}, pub, "t/clientid", NoMatch},
		{&clientinfo.Info{Peer: peer("10.9.9.9:1")}, pub, "t/ipaddr", Allow},
		{&clientinfo.Info{Peer: peer("[::ffff:10.9.9.9]:1")}, pub, "t/ipaddr", Allow},
		{&clientinfo.Info{Peer: peer("11.0.0.1:1")}, pub, "t/ipaddr", NoMatch},
		{&clientinfo.Info{}, pub, "t/ipaddr", NoMatch},
		{&clientinfo.Info{Peer: peer("[2001:db8::1]:1")}, pub, "t/ipaddr6", Allow},
		{&clientinfo.Info{Peer: peer("[2001:db8::2]:1")}, pub, "t/ipaddr6", NoMatch},
		{&clientinfo.Info{Cert: &clientinfo.Cert{CN: "dev.example"}}, pub, "t/cn", Allow},
		{&clientinfo.Info{Username: "dev.example"}, pub, "t/cn", NoMatch},
		{&clientinfo.Info{Username: "ops-12"}, pub, "t/username_re", Allow},
		{&clientinfo.Info{Username: "ops-12x"}, pub, "t/username_re", NoMatch},
		{&clientinfo.Info{ClientID: "sensor-9"}, pub, "t/clientid_re", Allow},
		{&clientinfo.Info{ClientID: "xsensor-9"}, pub, "t/clientid_re", NoMatch},
		{&clientinfo.Info{Attrs: map[string]string{"role": "op", "site": "s1", "x": "y"}}, pub, "t/attrs", Allow},
		{&clientinfo.Info{Attrs: map[string]string{"role": "op"}}, pub, "t/attrs", NoMatch},
		{&clientinfo.Info{Username: "bob", Peer: peer("192.168.1.1:1")}, pub, "t/and", Allow},
		{&clientinfo.Info{Username: "bob", Peer: peer("10.0.0.1:1")}, pub, "t/and", NoMatch},
		{&clientinfo.Info{Username: "bobby", Peer: peer("192.168.1.1:1")}, pub, "t/and", NoMatch},
		{&clientinfo.Info{ClientID: "x1"}, pub, "t/or", Allow},
		{&clientinfo.Info{Username: "carol"}, pub, "t/or", Allow},
		{&clientinfo.Info{Username: "dave"}, pub, "t/or", NoMatch},
		{&clientinfo.Info{}, pub, "t/all", Allow},
	}
	runChecks(t, src, checks)
	// Without any client information at all.
	if got := mustYAML(t, src).ForClient(nil).Decide(pub, "t/all"); got != Allow {
		t.Errorf("nil info: got %v", got)
	}
}

func TestActionQoSRetain(t *testing.T) {
	runChecks(t, `rules:
  - {permission: deny, action: publish, topics: [r/#], retain: true}
  - {permission: allow, action: publish, topics: [q/#], qos: [0, 1]}
  - {permission: allow, action: subscribe, topics: [s/#], qos: 2}
  - {permission: allow, action: all, topics: [r/#, both/#]}
  - {permission: allow, action: all, topics: [nr/#], retain: false}
`, []check{
		{user("u"), pubRet, "r/1", Deny},
		{user("u"), pub, "r/1", Allow},
		{user("u"), sub, "r/1", Allow}, // retain applies to publish only
		{user("u"), pub, "q/1", Allow},
		{user("u"), pubQ2, "q/1", NoMatch},
		{user("u"), sub, "q/1", NoMatch},
		{user("u"), subQ2, "s/1", Allow},
		{user("u"), sub, "s/1", NoMatch},
		{user("u"), pub, "s/1", NoMatch},
		{user("u"), pub, "both/1", Allow},
		{user("u"), sub, "both/1", Allow},
		{user("u"), pub, "nr/1", Allow},
		{user("u"), pubRet, "nr/1", NoMatch},
		{user("u"), sub, "nr/1", Allow},
		{user("u"), Action{Kind: ActAll}, "both/1", Deny}, // not one action
		{user("u"), Action{}, "both/1", Deny},
	})
}

func TestFirstMatchWins(t *testing.T) {
	runChecks(t, `rules:
  - {permission: deny, who: {username: u}, topics: [a/b]}
  - {permission: allow, topics: [a/#]}
  - {permission: deny, who: {clientid: c-v}, topics: [a/c]}
  - {permission: allow, who: {username: v}, topics: [b/#]}
  - {permission: deny}
  - {permission: allow, who: {username: v}, topics: [c/#]}
`, []check{
		{user("u"), pub, "a/b", Deny},
		{user("u"), pub, "a/c", Allow},
		{user("v"), pub, "a/b", Allow},
		{user("v"), pub, "a/c", Allow}, // rule 1 comes before the client id rule
		{user("v"), pub, "b/1", Allow},
		{user("v"), pub, "c/1", Deny}, // the catch-all comes first
		{user("u"), pub, "$SYS/x", Deny},
	})
}

func TestSharedSubscriptions(t *testing.T) {
	runChecks(t, `rules:
  - {permission: allow, action: subscribe, topics: ["$share/workers/jobs/#"]}
  - {permission: deny, action: subscribe, topics: ["eq $share/g2/jobs/#"]}
  - {permission: allow, action: subscribe, topics: ["pub/#"]}
`, []check{
		{user("u"), Action{Kind: ActSubscribe, Group: "workers"}, "jobs/#", Allow},
		{user("u"), Action{Kind: ActSubscribe}, "$share/workers/jobs/x", Allow},
		{user("u"), Action{Kind: ActSubscribe, Group: "other"}, "jobs/#", NoMatch},
		{user("u"), sub, "jobs/#", NoMatch},
		{user("u"), Action{Kind: ActSubscribe, Group: "g2"}, "jobs/#", Deny},
		{user("u"), Action{Kind: ActSubscribe, Group: "g2"}, "pub/x", Allow},
		{user("u"), Action{Kind: ActSubscribe, Group: "any"}, "pub/x", Allow},
		{user("u"), pub, "jobs/x", NoMatch},
	})
}

func TestCompileErrors(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{"no permission", Rule{Topics: []string{"a"}}, "permission"},
		{"bad filter", Rule{Permission: PermAllow, Topics: []string{"a/#/b"}}, `topic "a/#/b"`},
		{"bad plus", Rule{Permission: PermAllow, Topics: []string{"a/${clientid}+"}}, "'+'"},
		{"unknown placeholder", Rule{Permission: PermAllow, Topics: []string{"a/${nope}"}}, "unknown variable"},
		{"password", Rule{Permission: PermAllow, Topics: []string{"a/${password}"}}, "password"},
		{"listener", Rule{Permission: PermAllow, Topics: []string{"a/${listener}"}}, "cannot be used in a topic"},
		{"spanning", Rule{Permission: PermAllow, Topics: []string{"a/${client_attrs.x/y}"}}, "span"},
		{"eq placeholder", Rule{Permission: PermAllow, Topics: []string{"eq a/${clientid}"}}, "eq"},
		{"qos", Rule{Permission: PermAllow, QoS: []byte{3}}, "qos 3"},
		{"retain subscribe", Rule{Permission: PermAllow, Action: ActSubscribe, Retain: &yes}, "retain"},
		{"share publish", Rule{Permission: PermAllow, Action: ActPublish, Topics: []string{"$share/g/a"}}, "shared"},
		{"regexp", Rule{Permission: PermAllow, Who: &Who{Kind: WhoUsernameRE, Value: "("}}, "username_re"},
		{"cidr", Rule{Permission: PermAllow, Who: &Who{Kind: WhoIPAddr, Value: "10.0.0.0/33"}}, "ipaddr"},
		{"empty username", Rule{Permission: PermAllow, Who: &Who{Kind: WhoUsername}}, "empty"},
		{"empty and", Rule{Permission: PermAllow, Who: &Who{Kind: WhoAnd}}, "empty list"},
		{"nested", Rule{Permission: PermAllow, Who: &Who{Kind: WhoOr, List: []Who{{Kind: WhoClientIDRE, Value: "["}}}}, "or[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok := Rule{Permission: PermAllow, Topics: []string{"fine"}}
			_, err := Compile([]Rule{ok, tc.rule})
			var re *RuleError
			if !errors.As(err, &re) || re.Index != 1 {
				t.Fatalf("got %v, want a RuleError for rule 1", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "rule 1: ") {
				t.Errorf("error %q does not name rule 1 and %q", err, tc.want)
			}
		})
	}
}

// Rules filed under many users and client ids must not cost anything to the others.
func TestManyBuckets(t *testing.T) {
	var rules []Rule
	for i := range 100 {
		u := "user" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		rules = append(rules,
			Rule{Permission: PermDeny, Who: &Who{Kind: WhoClientID, Value: u}, Topics: []string{"home/" + u + "/secret"}},
			Rule{Permission: PermAllow, Who: &Who{Kind: WhoUsername, Value: u}, Topics: []string{"home/" + u + "/#"}},
		)
	}
	rs, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	c := rs.ForClient(&clientinfo.Info{Username: "userb", ClientID: "userb"})
	for topic, want := range map[string]Decision{"home/userb/x": Allow, "home/userb/secret": Deny, "home/usera/x": NoMatch} {
		if got := c.Decide(pub, topic); got != want {
			t.Errorf("%s: got %v, want %v", topic, got, want)
		}
	}
}

// More distinct conditional whos than a bucket has class bits: the ones beyond are checked
// on every candidate, the others let a search skip whole subtrees.
func TestManyWhoClasses(t *testing.T) {
	var rules []Rule
	for i := range 100 {
		rules = append(rules, Rule{Permission: PermDeny,
			Who:    &Who{Kind: WhoIPAddr, Value: "10.0." + strconv.Itoa(i) + ".0/24"},
			Topics: []string{"t/" + strconv.Itoa(i) + "/x"}})
	}
	rules = append(rules, Rule{Permission: PermAllow, Topics: []string{"#"}})
	rs, err := compile(rules, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := func(ip string) *ClientRules {
		return rs.ForClient(&clientinfo.Info{Peer: netip.MustParseAddrPort(ip + ":1")})
	}
	for _, tc := range []struct {
		ip    string
		a     Action
		topic string
		want  Decision
	}{
		{"10.0.5.5", sub, "#", Deny},
		{"10.0.80.5", sub, "#", Deny},
		{"10.0.80.5", sub, "t/+/x", Deny},
		{"10.0.80.5", sub, "t/79/#", Allow},
		{"11.0.0.1", sub, "#", Allow},
		{"10.0.80.5", pub, "t/80/x", Deny},
		{"10.0.5.5", pub, "t/80/x", Allow},
		{"10.0.5.5", pub, "t/5/x", Deny},
	} {
		if got := at(tc.ip).Decide(tc.a, tc.topic); got != tc.want {
			t.Errorf("%s %+v %q: got %v, want %v", tc.ip, tc.a, tc.topic, got, tc.want)
		}
	}
}
