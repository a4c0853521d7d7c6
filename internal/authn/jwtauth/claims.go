package jwtauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// verifyClaims checks every verify_claims entry: the claim must exist and equal the
// expanded template, or, for a list claim, contain it. A template with a variable the
// client has no value for (say ${username} for a client without one) never matches.
func (a *Authenticator) verifyClaims(info *clientinfo.Info, claims jwt.MapClaims) error {
	vals := placeholder.Values{Info: info}
	for _, c := range a.s.claims {
		for _, v := range c.tmpl.Vars() {
			if vals.Lookup(v) == "" {
				return fmt.Errorf("verify_claims: %s: ${%s} is empty for this client", c.name, v)
			}
		}
		want := c.tmpl.Expand(vals, nil)
		got, ok := claims[c.name]
		if !ok {
			return fmt.Errorf("verify_claims: claim %q missing", c.name)
		}
		if !claimHolds(got, want) {
			return fmt.Errorf("verify_claims: claim %q does not match %q", c.name, c.tmpl.String())
		}
	}
	return nil
}

// claimHolds reports whether a claim value is the string want or a list containing it.
// Numbers, booleans and objects never match: the comparison is on text, exactly.
func claimHolds(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// parseACL reads an acl claim: a list of rules in the JSON rule form (EMQX's "pub" and
// "sub" are accepted for "publish" and "subscribe"), or EMQX's older object form
// {"pub": [topics], "sub": [topics], "all": [topics]}, whose topics become allow rules.
// Anything else is an error, and the token is refused.
func parseACL(v any) ([]authz.Rule, error) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("rule %d: not an object", i)
			}
			if act, ok := m["action"].(string); ok {
				switch strings.ToLower(act) {
				case "pub":
					m["action"] = "publish"
				case "sub":
					m["action"] = "subscribe"
				}
			}
		}
		raw, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return authz.ParseJSONRules(raw)
	case map[string]any:
		return parseLegacyACL(x)
	}
	return nil, errors.New("want a list of rules or an object of topic lists")
}

func parseLegacyACL(m map[string]any) ([]authz.Rule, error) {
	var rules []authz.Rule
	for _, k := range []string{"pub", "sub", "all"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a list of topics", k)
		}
		r := authz.Rule{Permission: authz.PermAllow}
		switch k {
		case "pub":
			r.Action = authz.ActPublish
		case "sub":
			r.Action = authz.ActSubscribe
		default:
			r.Action = authz.ActAll
		}
		for i, e := range list {
			t, ok := e.(string)
			if !ok || t == "" {
				return nil, fmt.Errorf("%s[%d]: want a non-empty topic string", k, i)
			}
			r.Topics = append(r.Topics, t)
		}
		if len(r.Topics) > 0 {
			rules = append(rules, r)
		}
	}
	for k := range m {
		if k != "pub" && k != "sub" && k != "all" {
			return nil, fmt.Errorf("unknown key %q: want pub, sub or all", k)
		}
	}
	return rules, nil
}
