package httpsrc

import (
	"strconv"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Variables of the question, besides the client's (package placeholder).
const (
	VarAction = "action" // publish or subscribe
	VarTopic  = "topic"  // the topic name, or the filter (of a shared subscription: the real filter)
	VarQoS    = "qos"    // 0, 1 or 2
	VarRetain = "retain" // true or false (always false for subscribe)
)

func isQuestionVar(name string) bool {
	switch name {
	case VarAction, VarTopic, VarQoS, VarRetain:
		return true
	}
	return false
}

// template is a configured text with client placeholders and question variables. The
// client parts are parsed by package placeholder (which refuses ${password} here); the
// question variables sit between them.
type template struct {
	parts []tpart
}

type tpart struct {
	client *placeholder.Template // nil for a question variable
	name   string                // the question variable
}

// parseTemplate splits s at its question variables and parses the text between them as
// client placeholder templates, so every ${...} is either known or a start-up error.
func parseTemplate(s string) (*template, error) {
	t := &template{}
	last, pos := 0, 0
	for {
		i := strings.Index(s[pos:], "${")
		if i < 0 {
			break
		}
		i += pos
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break // the client parser reports the unclosed placeholder
		}
		j += i
		if name := s[i+2 : j]; isQuestionVar(name) {
			if err := t.addClient(s[last:i]); err != nil {
				return nil, err
			}
			t.parts = append(t.parts, tpart{name: name})
			last = j + 1
		}
		pos = j + 1
	}
	if err := t.addClient(s[last:]); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *template) addClient(text string) error {
	if text == "" {
		return nil
	}
	p, err := placeholder.Parse(text, placeholder.Options{NoPassword: true})
	if err != nil {
		return err
	}
	t.parts = append(t.parts, tpart{client: p})
	return nil
}

// hasVars reports whether the template uses any variable.
func (t *template) hasVars() bool {
	for _, p := range t.parts {
		if p.client == nil || p.client.HasVars() {
			return true
		}
	}
	return false
}

// values are what a template expands with: the client's and the question's.
type values struct {
	client placeholder.Values
	q      *question
}

// HasVars implements httpc.Template.
func (t *template) HasVars() bool { return t.hasVars() }

// Expand implements httpc.Template.
func (t *template) Expand(v values, escape func(string) string) string {
	return t.expand(v.client, v.q, escape)
}

// question is what the question variables expand to.
type question struct {
	action, topic, qos, retain string
}

func newQuestion(a authz.Action, topic string) question {
	q := question{topic: topic, qos: strconv.Itoa(int(a.QoS)), retain: "false"}
	if a.Kind == authz.ActPublish {
		q.action = "publish"
		if a.Retain {
			q.retain = "true"
		}
	} else {
		q.action = "subscribe"
	}
	return q
}

func (q *question) lookup(name string) string {
	switch name {
	case VarAction:
		return q.action
	case VarTopic:
		return q.topic
	case VarQoS:
		return q.qos
	case VarRetain:
		return q.retain
	}
	return ""
}

// expand returns the text with every variable's value passed through escape (nil: the
// raw value). Values are never parsed again, so a "${" in a topic stays literal.
func (t *template) expand(vals placeholder.Values, q *question, escape func(string) string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.client != nil {
			b.WriteString(p.client.Expand(vals, escape))
			continue
		}
		v := q.lookup(p.name)
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
	}
	return b.String()
}
