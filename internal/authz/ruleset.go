package authz

import (
	"context"
	"slices"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// RuleSet is a compiled, indexed, immutable list of rules. It is safe for concurrent use.
type RuleSet struct {
	n        int
	global   *bucket
	byUser   map[string]*bucket
	byClient map[string]*bucket
	tmpl     []tmplLevel
}

// Compile checks and indexes rules. The first rule that is not valid (a bad filter, an
// unknown or forbidden placeholder, a regular expression or CIDR that does not parse, a
// QoS outside 0..2, retain on a subscribe-only rule) makes it fail with a *RuleError that
// names the rule's index.
//
// Rule topics may use the placeholders ${clientid}, ${username}, ${peerhost},
// ${cert_common_name}, ${cert_subject} and ${client_attrs.NAME} (${password} and the
// others are refused), inside a level but not across one ("dev-${clientid}" is fine). A
// placeholder expands to literal text, never to a wildcard: when a client's value is empty
// or contains '+', '#', '/' or NUL (see UnsafeForPlaceholders), the topic using it does not
// exist for that client, and neither does a first level that a placeholder would start
// with '$'. Other topics of the same rule still apply. Placeholders are not expanded in
// "eq" topics (refused) nor in a shared subscription's group name (refused).
//
// For publish, a rule filter matches the topic name by MQTT matching. For subscribe, an
// allow rule matches when its filter covers every topic the requested filter can match,
// and a deny rule matches when its filter shares at least one topic with it, so a deny is
// never bypassed by subscribing to a wider filter. Leading wildcards never match "$"
// topics. A rule with a "$share/G/F" topic applies to shared subscriptions of group G
// only; other topics apply to the real filter of any subscription.
func Compile(rules []Rule) (*RuleSet, error) { return compile(rules, flatMax) }

// compile is Compile with the flat-bucket limit as a parameter, so tests can force either
// layout.
func compile(rules []Rule, flatLimit int) (*RuleSet, error) {
	var ts templates
	rs := &RuleSet{n: len(rules)}
	var global []*crule
	users := map[string][]*crule{}
	clients := map[string][]*crule{}
	for i := range rules {
		c, err := compileRule(i, &rules[i], &ts)
		if err != nil {
			return nil, &RuleError{Index: i, Err: err}
		}
		kind, key, exact := bucketOf(rules[i].Who)
		if exact {
			c.who = nil // the bucket proves it
		} else if c.who != nil {
			c.whoKey = rules[i].Who.String()
		}
		switch kind {
		case WhoUsername:
			users[key] = append(users[key], c)
		case WhoClientID:
			clients[key] = append(clients[key], c)
		default:
			global = append(global, c)
		}
	}
	rs.global = buildBucket(global, flatLimit)
	if len(users) > 0 {
		rs.byUser = make(map[string]*bucket, len(users))
		for k, list := range users {
			rs.byUser[k] = buildBucket(list, flatLimit)
		}
	}
	if len(clients) > 0 {
		rs.byClient = make(map[string]*bucket, len(clients))
		for k, list := range clients {
			rs.byClient[k] = buildBucket(list, flatLimit)
		}
	}
	rs.tmpl = ts.list
	return rs, nil
}

// bucketOf says under which user name or client id a rule can be filed: when its who is
// one, or an "and" with one among its terms. exact is true when that is the whole who.
func bucketOf(w *Who) (kind WhoKind, key string, exact bool) {
	if w == nil {
		return WhoAll, "", false
	}
	switch w.Kind {
	case WhoUsername, WhoClientID:
		return w.Kind, w.Value, true
	case WhoAnd:
		for _, k := range []WhoKind{WhoUsername, WhoClientID} {
			for i := range w.List {
				if w.List[i].Kind == k {
					return k, w.List[i].Value, false
				}
			}
		}
	}
	return WhoAll, "", false
}

// Len returns the number of rules.
func (rs *RuleSet) Len() int { return rs.n }

// UsesPlaceholders reports whether any rule topic has a ${...} placeholder. The broker then
// refuses client ids and user names for which UnsafeForPlaceholders is true.
func (rs *RuleSet) UsesPlaceholders() bool { return len(rs.tmpl) > 0 }

// UsesPlaceholder reports whether any rule topic has the placeholder name ("clientid").
func (rs *RuleSet) UsesPlaceholder(name string) bool {
	for _, l := range rs.tmpl {
		if slices.Contains(l.t.Vars(), name) {
			return true
		}
	}
	return false
}

// ClientRules are a rule set's rules as they apply to one client: its buckets picked and its
// placeholders expanded. It is immutable and safe for concurrent use.
type ClientRules struct {
	b     [3]*bucket
	mask  [3]uint64 // per bucket: the who classes this client belongs to
	nb    int
	facts facts
	tmpl  []tmplValue
}

type tmplValue struct {
	val string
	ok  bool // every placeholder had a safe value
}

// ForClient resolves the rule set for one client: it picks the buckets of its user name and
// client id and expands every placeholder level once. Its cost depends on the number of
// distinct placeholder levels and of distinct conditional whos (at most 63 per bucket), not
// on the number of rules. info is read only during the
// call (its Attrs map is kept and must not be changed afterwards).
func (rs *RuleSet) ForClient(info *clientinfo.Info) *ClientRules {
	if info == nil {
		info = &clientinfo.Info{}
	}
	c := &ClientRules{facts: factsOf(info)}
	c.add(rs.global)
	if info.Username != "" {
		c.add(rs.byUser[info.Username])
	}
	if info.ClientID != "" {
		c.add(rs.byClient[info.ClientID])
	}
	if len(rs.tmpl) > 0 {
		vals := placeholder.Values{Info: info}
		c.tmpl = make([]tmplValue, len(rs.tmpl))
		for i, t := range rs.tmpl {
			c.tmpl[i] = expandLevel(t, vals)
		}
	}
	return c
}

// add appends a bucket and works out which of its who classes the client is in.
func (c *ClientRules) add(b *bucket) {
	if b == nil {
		return
	}
	m := anyClass
	for i, w := range b.classes {
		if w.match(&c.facts) {
			m |= 1 << i
		}
	}
	c.b[c.nb], c.mask[c.nb] = b, m
	c.nb++
}

// expandLevel expands one placeholder level. Every placeholder must have a value that is
// one literal piece of a level; otherwise the level matches nothing for this client.
func expandLevel(t tmplLevel, vals placeholder.Values) tmplValue {
	for _, v := range t.t.Vars() {
		if UnsafeForPlaceholders(vals.Lookup(v)) {
			return tmplValue{}
		}
	}
	s := t.t.Expand(vals, nil)
	if t.noDoll && strings.HasPrefix(s, "$") {
		return tmplValue{}
	}
	return tmplValue{val: s, ok: true}
}

// Decide returns the permission of the first rule, in list order, whose who, action, QoS,
// retain and topic match: Allow, Deny, or NoMatch when none does. For a publish, topic is
// the topic name; for a subscribe, it is the requested filter and a.Group the share name
// of a shared subscription (a "$share/{group}/{filter}" topic with no Group is split
// here). An Action whose Kind is not exactly publish or subscribe is denied.
func (c *ClientRules) Decide(a Action, t string) Decision {
	s := search{c: c, kind: a.Kind, qos: a.QoS, ret: a.Retain, topic: t}
	switch a.Kind {
	case ActPublish:
	case ActSubscribe:
		s.act = 1
		s.group = a.Group
		if s.group == "" {
			if g, f, ok := topic.ParseShared(t); ok {
				s.group, s.topic = g, f
			}
		}
	default:
		return Deny
	}
	for i, b := range c.b[:c.nb] {
		s.mask = c.mask[i]
		b.search(&s)
	}
	if s.best == nil {
		return NoMatch
	}
	if s.best.perm == PermAllow {
		return Allow
	}
	return Deny
}

// Authorize is Decide as a ClientSource.
func (c *ClientRules) Authorize(_ context.Context, a Action, t string) Decision {
	return c.Decide(a, t)
}
