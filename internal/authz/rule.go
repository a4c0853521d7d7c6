// Package authz decides what an authenticated client may do: publish to which topics and
// subscribe to which filters. This file holds the rule model shared by every source and by
// authenticators that return rules (a JWT acl claim, an HTTP service's answer).
package authz

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Permission is what a matching rule decides.
type Permission uint8

// Permissions.
const (
	PermAllow Permission = iota + 1
	PermDeny
)

func (p Permission) String() string {
	if p == PermAllow {
		return "allow"
	}
	return "deny"
}

// Actions a rule applies to, as a bit set.
type Actions uint8

// Action bits.
const (
	ActPublish   Actions = 1 << iota
	ActSubscribe         // subscribe (including shared subscriptions)
	ActAll       = ActPublish | ActSubscribe
)

// Rule is one authorization rule: it applies to the clients Who selects, for the actions in
// Action, on Topics.
//
// Topics are MQTT topic filters, which may hold placeholders such as ${clientid} (see
// Compile); "eq F" matches the filter text F itself and nothing else (a client subscribing
// to exactly "#"); "$share/G/F" applies to shared subscriptions of group G only. No topics
// means every topic. QoS and Retain, when set, narrow the rule further; Retain applies to
// publish only.
type Rule struct {
	Permission Permission
	Who        *Who    // nil: every client
	Action     Actions // zero: ActAll
	Topics     []string
	QoS        []byte // empty: any QoS
	Retain     *bool  // nil: either
}

// jsonRule is the JSON form used in JWT acl claims and HTTP service answers:
// {"permission":"allow","action":"publish","topic":"t/1","qos":[0,1],"retain":false}, with
// an optional "who" in the shapes of the ACL file ("all", {"username":"u"}, {"and":[...]}).
type jsonRule struct {
	Permission string          `json:"permission"`
	Who        json.RawMessage `json:"who"`
	Action     string          `json:"action"`
	Topic      string          `json:"topic"`
	Topics     []string        `json:"topics"`
	QoS        json.RawMessage `json:"qos"`
	Retain     json.RawMessage `json:"retain"`
}

// ParseJSONRules reads a JSON array of rules in the form above. Unknown permission or
// action names, a rule without topics, QoS outside 0..2, or a who of an unknown shape (or
// whose regular expression or CIDR does not parse) are errors naming the rule's index;
// nothing is guessed.
func ParseJSONRules(data []byte) ([]Rule, error) {
	var raw []jsonRule
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("acl rules: %w", err)
	}
	out := make([]Rule, 0, len(raw))
	for i, jr := range raw {
		r, err := jr.rule()
		if err != nil {
			return nil, fmt.Errorf("acl rule %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (jr *jsonRule) rule() (Rule, error) {
	var r Rule
	switch strings.ToLower(jr.Permission) {
	case "allow":
		r.Permission = PermAllow
	case "deny":
		r.Permission = PermDeny
	default:
		return r, fmt.Errorf("permission %q: want allow or deny", jr.Permission)
	}
	if len(jr.Who) > 0 && string(jr.Who) != "null" {
		var v any
		if err := json.Unmarshal(jr.Who, &v); err != nil {
			return r, fmt.Errorf("who: %w", err)
		}
		w, err := parseWho(v, 0)
		if err != nil {
			return r, fmt.Errorf("who: %w", err)
		}
		r.Who = &w
	}
	switch strings.ToLower(jr.Action) {
	case "publish":
		r.Action = ActPublish
	case "subscribe":
		r.Action = ActSubscribe
	case "all":
		r.Action = ActAll
	default:
		return r, fmt.Errorf("action %q: want publish, subscribe or all", jr.Action)
	}
	if jr.Topic != "" {
		r.Topics = append(r.Topics, jr.Topic)
	}
	r.Topics = append(r.Topics, jr.Topics...)
	if len(r.Topics) == 0 {
		return r, fmt.Errorf("no topic")
	}
	for _, t := range r.Topics {
		if t == "" {
			return r, fmt.Errorf("empty topic")
		}
	}
	if len(jr.QoS) > 0 && string(jr.QoS) != "null" {
		var one byte
		var many []byte
		if err := json.Unmarshal(jr.QoS, &one); err == nil {
			many = []byte{one}
		} else if err := json.Unmarshal(jr.QoS, &many); err != nil {
			return r, fmt.Errorf("qos: want 0, 1, 2 or a list of them")
		}
		for _, q := range many {
			if q > 2 {
				return r, fmt.Errorf("qos %d: want 0, 1 or 2", q)
			}
		}
		r.QoS = many
	}
	if len(jr.Retain) > 0 && string(jr.Retain) != "null" {
		var b bool
		if err := json.Unmarshal(jr.Retain, &b); err != nil {
			return r, fmt.Errorf("retain: want true or false")
		}
		r.Retain = &b
	}
	return r, nil
}
