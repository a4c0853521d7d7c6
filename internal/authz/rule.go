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

// Rule is one authorization rule. Topics are MQTT topic filters; a filter wrapped as
// "eq t/#" matches that exact filter text only (for subscribe rules). QoS and Retain, when
// set, narrow the rule further.
type Rule struct {
	Permission Permission
	Action     Actions
	Topics     []string
	QoS        []byte // empty: any QoS
	Retain     *bool  // nil: either
}

// jsonRule is the JSON form used in JWT acl claims and HTTP service answers:
// {"permission":"allow","action":"publish","topic":"t/1","qos":[0,1],"retain":false}.
type jsonRule struct {
	Permission string          `json:"permission"`
	Action     string          `json:"action"`
	Topic      string          `json:"topic"`
	Topics     []string        `json:"topics"`
	QoS        json.RawMessage `json:"qos"`
	Retain     json.RawMessage `json:"retain"`
}

// ParseJSONRules reads a JSON array of rules in the form above. Unknown permission or
// action names, a rule without topics, or QoS outside 0..2 are errors naming the rule's
// index; nothing is guessed.
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
