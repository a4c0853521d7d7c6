package authz

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// The oracle decides by brute force: it walks every rule in order and compares filters by
// enumerating the topic names they can match, with topic.Match as the only notion of
// matching. The indexed rule set (both layouts) must agree with it on random rule sets.

// universe lists every topic name built from the literal levels of the given filters plus
// a fresh level and a fresh "$" level, up to one level longer than the longest filter. Any
// difference between two filters shows on one of these names.
func universe(filters ...string) []string {
	alpha := []string{"z", "$z"}
	maxLen := 0
	for _, f := range filters {
		ls := strings.Split(f, "/")
		maxLen = max(maxLen, len(ls))
		for _, l := range ls {
			if l != "+" && l != "#" && !slices.Contains(alpha, l) {
				alpha = append(alpha, l)
			}
		}
	}
	var out []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		for _, l := range alpha {
			name := l
			if n > 0 {
				name = prefix + "/" + l
			}
			out = append(out, name)
			if n+1 < maxLen+1 {
				gen(name, n+1)
			}
		}
	}
	gen("", 0)
	return out
}

func bruteCovers(rule, req string) bool {
	for _, n := range universe(rule, req) {
		if topic.Match(req, n) && !topic.Match(rule, n) {
			return false
		}
	}
	return true
}

func bruteOverlaps(rule, req string) bool {
	for _, n := range universe(rule, req) {
		if topic.Match(req, n) && topic.Match(rule, n) {
			return true
		}
	}
	return false
}

// oracleExpand expands a rule filter for a client the way the rules promise: every
// placeholder value must be safe, and a first level that starts with a placeholder must not
// expand to a "$" level. ok is false when the topic does not exist for this client.
func oracleExpand(t *testing.T, f string, info *clientinfo.Info) (string, bool) {
	tm, err := placeholder.Parse(f, placeholder.Options{NoPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	vals := placeholder.Values{Info: info}
	for _, v := range tm.Vars() {
		if UnsafeForPlaceholders(vals.Lookup(v)) {
			return "", false
		}
	}
	out := tm.Expand(vals, nil)
	if strings.HasPrefix(f, "${") && strings.HasPrefix(out, "$") {
		return "", false
	}
	return out, true
}

func naiveDecide(t *testing.T, rules []Rule, info *clientinfo.Info, a Action, req string) Decision {
	group := ""
	if a.Kind == ActSubscribe {
		group = a.Group
	}
	f := factsOf(info)
	for _, r := range rules {
		if r.Who != nil {
			m, err := compileWho(r.Who, 0)
			if err != nil {
				t.Fatal(err)
			}
			if m != nil && !m.match(&f) {
				continue
			}
		}
		acts := r.Action
		if acts == 0 {
			acts = ActAll
		}
		if acts&a.Kind == 0 {
			continue
		}
		if len(r.QoS) > 0 && !slices.Contains(r.QoS, a.QoS) {
			continue
		}
		if r.Retain != nil && a.Kind == ActPublish && *r.Retain != a.Retain {
			continue
		}
		match := len(r.Topics) == 0
		for _, tp := range r.Topics {
			if eq, ok := strings.CutPrefix(tp, "eq "); ok {
				g, rf, _ := topic.ParseShared(eq)
				if (g == "" || g == group) && rf == req {
					match = true
				}
				continue
			}
			g, rf, _ := topic.ParseShared(tp)
			if g != "" && g != group {
				continue
			}
			exp, ok := oracleExpand(t, rf, info)
			if !ok {
				continue
			}
			if r.Permission == PermAllow && bruteCovers(exp, req) || r.Permission == PermDeny && bruteOverlaps(exp, req) {
				match = true
			}
		}
		if match {
			if r.Permission == PermAllow {
				return Allow
			}
			return Deny
		}
	}
	return NoMatch
}

func pick[T any](r *rand.Rand, list ...T) T { return list[r.IntN(len(list))] }

func randFilter(r *rand.Rand, vars bool) string {
	n := 1 + r.IntN(3)
	ls := make([]string, n)
	for i := range ls {
		opts := []string{"a", "b", "", "$s", "+", "+", "a"}
		if i == n-1 {
			opts = append(opts, "#", "#")
		}
		if vars {
			opts = append(opts, "${clientid}", "${username}", "x${clientid}")
		}
		ls[i] = pick(r, opts...)
	}
	if f := strings.Join(ls, "/"); f != "" {
		return f
	}
	return "a"
}

func randName(r *rand.Rand) string {
	n := 1 + r.IntN(3)
	ls := make([]string, n)
	for i := range ls {
		ls[i] = pick(r, "a", "b", "", "$s", "xa", "z", "#", "+")
		if ls[i] == "#" || ls[i] == "+" {
			ls[i] = "a" // names have no wildcards
		}
	}
	if n := strings.Join(ls, "/"); n != "" {
		return n
	}
	return "b"
}

func randWho(r *rand.Rand) *Who {
	switch r.IntN(9) {
	case 0, 1:
		return nil
	case 2:
		return &Who{Kind: WhoAll}
	case 3:
		return &Who{Kind: WhoUsername, Value: pick(r, "a", "admin")}
	case 4:
		return &Who{Kind: WhoClientID, Value: pick(r, "a", "b")}
	case 5:
		return &Who{Kind: WhoAnd, List: []Who{{Kind: WhoUsername, Value: "a"}, {Kind: WhoIPAddr, Value: "10.0.0.0/8"}}}
	case 6:
		return &Who{Kind: WhoOr, List: []Who{{Kind: WhoClientID, Value: "b"}, {Kind: WhoUsernameRE, Value: "^ad"}}}
	case 7:
		return &Who{Kind: WhoClientAttrs, Attrs: map[string]string{"role": "x"}}
	}
	return &Who{Kind: WhoAnd, List: []Who{{Kind: WhoClientID, Value: "a"}, {Kind: WhoCertCommonName, Value: "a"}}}
}

func randRule(r *rand.Rand) Rule {
	rule := Rule{
		Permission: pick(r, PermAllow, PermDeny),
		Who:        randWho(r),
		Action:     pick(r, ActPublish, ActSubscribe, ActAll, 0),
	}
	if r.IntN(4) == 0 {
		rule.QoS = []byte{byte(r.IntN(3))}
	}
	if r.IntN(5) == 0 && rule.Action != ActSubscribe {
		b := r.IntN(2) == 0
		rule.Retain = &b
	}
	nt := r.IntN(4)
	if r.IntN(6) == 0 {
		nt = 0
	}
	for range nt {
		var tp string
		switch r.IntN(10) {
		case 0:
			tp = "eq " + randFilter(r, false)
		case 1:
			if rule.Action != ActPublish {
				tp = "$share/g/" + randFilter(r, true)
			} else {
				tp = randFilter(r, true)
			}
		default:
			tp = randFilter(r, true)
		}
		rule.Topics = append(rule.Topics, tp)
	}
	return rule
}

func oracleClients() []*clientinfo.Info {
	var out []*clientinfo.Info
	for _, id := range []string{"a", "b", "$s", "#", "+", "x/y", "", "xa"} {
		for _, user := range []string{"a", "admin", "", "a/#"} {
			info := &clientinfo.Info{ClientID: id, Username: user, Peer: netip.MustParseAddrPort("10.1.2.3:1883")}
			if id == "b" {
				info.Peer = netip.MustParseAddrPort("[::ffff:192.168.1.1]:1883")
				info.Attrs = map[string]string{"role": "x"}
				info.Cert = &clientinfo.Cert{CN: "a"}
			}
			out = append(out, info)
		}
	}
	return out
}

func TestDecideAgreesWithOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	clients := oracleClients()
	sets := 500
	if testing.Short() {
		sets = 50
	}
	for set := range sets {
		rules := make([]Rule, 1+r.IntN(30))
		for i := range rules {
			rules[i] = randRule(r)
		}
		flat, err := compile(rules, 1<<30)
		if err != nil {
			t.Fatalf("set %d: %v", set, err)
		}
		trie, err := compile(rules, 0)
		if err != nil {
			t.Fatal(err)
		}
		def, err := Compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		for range 12 {
			info := pick(r, clients...)
			var a Action
			var req string
			if r.IntN(2) == 0 {
				a = Action{Kind: ActPublish, QoS: byte(r.IntN(3)), Retain: r.IntN(2) == 0}
				req = randName(r)
			} else {
				a = Action{Kind: ActSubscribe, QoS: byte(r.IntN(3)), Group: pick(r, "", "", "g", "h")}
				req = randFilter(r, false)
			}
			want := naiveDecide(t, rules, info, a, req)
			for name, rs := range map[string]*RuleSet{"flat": flat, "trie": trie, "default": def} {
				if got := rs.ForClient(info).Decide(a, req); got != want {
					t.Fatalf("set %d (%s layout): client %q user %q, %+v %q: got %v, want %v\nrules:\n%s",
						set, name, info.ClientID, info.Username, a, req, got, want, dumpRules(rules))
				}
			}
		}
	}
}

func dumpRules(rules []Rule) string {
	var b strings.Builder
	for i, r := range rules {
		who := "all"
		if r.Who != nil {
			who = r.Who.String()
		}
		ret := "-"
		if r.Retain != nil {
			ret = fmt.Sprint(*r.Retain)
		}
		fmt.Fprintf(&b, "  %d: %v who=%s action=%d qos=%v retain=%s topics=%q\n", i, r.Permission, who, r.Action, r.QoS, ret, r.Topics)
	}
	return b.String()
}

// TestOracle checks the brute-force oracle itself on the cases the rules are defined by.
func TestOracle(t *testing.T) {
	tests := []struct {
		rule, req        string
		covers, overlaps bool
	}{
		{"a/+/c", "a/1/c", true, true},
		{"a/+/c", "a/+/c", true, true},
		{"a/+/c", "a/#", false, true},
		{"a/+/c", "#", false, true},
		{"#", "#", true, true},
		{"#", "+/#", true, true},
		{"+/#", "#", true, true},
		{"#", "$SYS/#", false, false},
		{"$SYS/#", "#", false, false},
		{"a/#", "a", true, true},
		{"a", "a/#", false, true},
		{"a/+", "a", false, false},
	}
	for _, tc := range tests {
		if got := bruteCovers(tc.rule, tc.req); got != tc.covers {
			t.Errorf("covers(%q, %q) = %v", tc.rule, tc.req, got)
		}
		if got := bruteOverlaps(tc.rule, tc.req); got != tc.overlaps {
			t.Errorf("overlaps(%q, %q) = %v", tc.rule, tc.req, got)
		}
	}
}
