package authz

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// RuleError is an error in one rule. Index counts rules from 0 in list order; Line is the
// line of the rule in the text it was read from (0 when it was not read from a file).
type RuleError struct {
	Index int
	Line  int
	Err   error
}

func (e *RuleError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: rule %d: %v", e.Line, e.Index, e.Err)
	}
	return fmt.Sprintf("rule %d: %v", e.Index, e.Err)
}

// Unwrap returns the underlying error.
func (e *RuleError) Unwrap() error { return e.Err }

// topicVars are the placeholders an ACL topic may use. ${password} is refused, and so is
// anything that does not identify the client.
var topicVars = map[string]bool{
	placeholder.ClientID:       true,
	placeholder.Username:       true,
	placeholder.PeerHost:       true,
	placeholder.CertCommonName: true,
	placeholder.CertSubject:    true,
}

const attrVarPrefix = "client_attrs."

// UnsafeForPlaceholders reports whether value must never be substituted into an ACL topic:
// it is empty, or contains '+', '#', '/' or NUL, any of which would turn the expansion
// into something other than one literal topic level. A rule whose placeholder would take
// such a value does not match for that client; the broker refuses such client ids and user
// names at CONNECT when any rule uses placeholders.
func UnsafeForPlaceholders(value string) bool {
	return value == "" || strings.ContainsAny(value, "+#/\x00")
}

// levelKind is the kind of one level of a compiled rule filter.
type levelKind uint8

const (
	lvLit  levelKind = iota // literal text
	lvPlus                  // '+'
	lvHash                  // '#' (always the last level)
	lvTmpl                  // a level with placeholders: tmpl indexes the rule set's templates
)

type level struct {
	kind levelKind
	text string
	tmpl int
}

// ctopic is one compiled rule topic.
type ctopic struct {
	eq     bool    // match the filter text literally
	group  string  // the share name of a "$share/{group}/{filter}" rule topic
	filter string  // the filter proper (without "eq " and "$share/{group}/")
	levels []level // for !eq
}

// crule is one compiled rule.
type crule struct {
	index   int
	perm    Permission
	actions Actions
	qos     uint8       // bit i set: QoS i allowed; 0: any QoS
	retain  int8        // -1: either; 0: only not retained; 1: only retained
	who     *whoMatcher // nil: every client (or the rule's bucket already proves who)
	whoKey  string      // who as text, to group rules with the same who
	bit     uint64      // the rule's who class in its bucket (see bucket.classes)
	topics  []ctopic    // empty: every topic
}

// templates holds the distinct placeholder levels of a rule set. A template at the first
// level whose text starts with a placeholder is kept apart: its expansion must not start
// with '$', or a client could reach the server's "$SYS/..." topics.
type templates struct {
	ids  map[tmplKey]int
	list []tmplLevel
}

type tmplKey struct {
	text  string
	first bool
}

type tmplLevel struct {
	t      *placeholder.Template
	noDoll bool // the expansion must not start with '$'
}

func (ts *templates) add(t *placeholder.Template, first bool) int {
	k := tmplKey{t.String(), first && strings.HasPrefix(t.String(), "${")}
	if id, ok := ts.ids[k]; ok {
		return id
	}
	if ts.ids == nil {
		ts.ids = map[tmplKey]int{}
	}
	ts.list = append(ts.list, tmplLevel{t: t, noDoll: k.first})
	ts.ids[k] = len(ts.list) - 1
	return len(ts.list) - 1
}

// compileRule checks one rule and compiles it; placeholder levels are added to ts.
func compileRule(i int, r *Rule, ts *templates) (*crule, error) {
	c := &crule{index: i, perm: r.Permission, actions: r.Action, retain: -1}
	if r.Permission != PermAllow && r.Permission != PermDeny {
		return nil, fmt.Errorf("permission: want allow or deny")
	}
	if c.actions == 0 {
		c.actions = ActAll
	}
	if c.actions&^ActAll != 0 {
		return nil, fmt.Errorf("action: unknown action bits %#x", uint8(r.Action))
	}
	for _, q := range r.QoS {
		if q > 2 {
			return nil, fmt.Errorf("qos %d: want 0, 1 or 2", q)
		}
		c.qos |= 1 << q
	}
	if r.Retain != nil {
		if c.actions == ActSubscribe {
			return nil, errors.New("retain: applies to publish only, and this rule is for subscribe")
		}
		c.retain = 0
		if *r.Retain {
			c.retain = 1
		}
	}
	if r.Who != nil {
		m, err := compileWho(r.Who, 0)
		if err != nil {
			return nil, fmt.Errorf("who: %w", err)
		}
		c.who = m
	}
	for _, t := range r.Topics {
		ct, err := compileTopic(t, ts)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %w", t, err)
		}
		if ct.group != "" && c.actions == ActPublish {
			return nil, fmt.Errorf("topic %q: a shared subscription filter in a publish rule", t)
		}
		c.topics = append(c.topics, ct)
	}
	return c, nil
}

func compileTopic(t string, ts *templates) (ctopic, error) {
	var ct ctopic
	if f, ok := strings.CutPrefix(t, "eq "); ok {
		if strings.Contains(f, "${") {
			return ct, errors.New(`placeholders are not expanded in "eq" topics; drop "eq" to match the expanded filter`)
		}
		if err := topic.ValidateFilter(f, topic.Limits{}); err != nil {
			return ct, err
		}
		ct.eq = true
		ct.group, ct.filter, _ = topic.ParseShared(f)
		return ct, nil
	}
	tmpl, err := placeholder.Parse(t, placeholder.Options{NoPassword: true})
	if err != nil {
		return ct, err
	}
	for _, v := range tmpl.Vars() {
		if !topicVars[v] && !strings.HasPrefix(v, attrVarPrefix) {
			return ct, fmt.Errorf("${%s} cannot be used in a topic; use clientid, username, peerhost, cert_common_name, cert_subject or client_attrs.NAME", v)
		}
	}
	// Validate the filter with every placeholder standing for one harmless literal: a
	// placeholder must sit where literal text may ("a/${clientid}+" is refused).
	probe := tmpl.Expand(placeholder.Values{}, func(string) string { return "x" })
	if err := topic.ValidateFilter(probe, topic.Limits{}); err != nil {
		return ct, err
	}
	ct.group, ct.filter, _ = topic.ParseShared(t)
	if ct.group != "" && strings.Contains(ct.group, "${") {
		return ct, errors.New("placeholders are not allowed in the share name")
	}
	for n, lv := range strings.Split(ct.filter, "/") {
		switch {
		case lv == "+":
			ct.levels = append(ct.levels, level{kind: lvPlus})
		case lv == "#":
			ct.levels = append(ct.levels, level{kind: lvHash})
		case strings.Contains(lv, "${"):
			lt, err := placeholder.Parse(lv, placeholder.Options{NoPassword: true})
			if err != nil {
				return ct, fmt.Errorf("a placeholder may not span levels: %w", err)
			}
			ct.levels = append(ct.levels, level{kind: lvTmpl, text: lv, tmpl: ts.add(lt, n == 0)})
		default:
			ct.levels = append(ct.levels, level{kind: lvLit, text: lv})
		}
	}
	return ct, nil
}
