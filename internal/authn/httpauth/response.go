package httpauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// answer is the JSON a service returns:
//
//	{"result": "allow", "is_superuser": false, "acl": [rules], "client_attrs": {"k": "v"},
//	 "expire_at": 1735689600}
//
// Only result is required; the rest counts on allow only.
type answer struct {
	Result      *string           `json:"result"`
	IsSuperuser json.RawMessage   `json:"is_superuser"`
	ACL         json.RawMessage   `json:"acl"`
	ClientAttrs map[string]string `json:"client_attrs"`
	ExpireAt    *json.Number      `json:"expire_at"`
}

// maxExpireAt is the year 10000 in Unix seconds: anything later is a unit mistake
// (milliseconds) rather than a date.
const maxExpireAt = 253402300800

// decide reads a 2xx answer. An error means the answer is unusable; a deny result or an
// expiry already past is a Deny.
func decide(body []byte, now time.Time) (authn.Result, error) {
	var ans answer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&ans); err != nil {
		return authn.Result{}, fmt.Errorf("answer is not the expected JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return authn.Result{}, errors.New("answer has data after the JSON object")
	}
	if ans.Result == nil {
		return authn.Result{}, errors.New(`answer has no "result"`)
	}
	switch strings.ToLower(*ans.Result) {
	case "deny":
		return authn.Denied(packet.BadUserNameOrPassword, "http: service answered deny"), nil
	case "ignore":
		return authn.Ignored("http: service answered ignore"), nil
	case "allow":
	default:
		return authn.Result{}, fmt.Errorf("result %.32q: want allow, deny or ignore", *ans.Result)
	}

	res := authn.Allowed()
	su, err := superuser(ans.IsSuperuser)
	if err != nil {
		return authn.Result{}, err
	}
	res.Superuser = su
	if len(ans.ACL) > 0 && string(ans.ACL) != "null" {
		if res.ACL, err = parseRules(ans.ACL); err != nil {
			return authn.Result{}, err
		}
	}
	for k, v := range ans.ClientAttrs {
		if !validAttrName(k) {
			return authn.Result{}, fmt.Errorf("client_attrs: attribute name %.64q: want letters, digits, '_', '-' or '.'", k)
		}
		if res.Attrs == nil {
			res.Attrs = make(map[string]string, len(ans.ClientAttrs))
		}
		res.Attrs[k] = v
	}
	if ans.ExpireAt != nil {
		sec, err := ans.ExpireAt.Int64()
		if err != nil || sec <= 0 || sec >= maxExpireAt {
			return authn.Result{}, errors.New("expire_at: want Unix seconds")
		}
		exp := time.Unix(sec, 0)
		if !exp.After(now) {
			return authn.Denied(packet.BadUserNameOrPassword, "http: service answered allow with an expire_at already past"), nil
		}
		res.ExpiresAt = exp
	}
	return res, nil
}

func superuser(raw json.RawMessage) (bool, error) {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", `"false"`:
		return false, nil
	case "true", `"true"`:
		return true, nil
	}
	return false, errors.New("is_superuser: want true or false")
}

// parseRules reads the acl list in the JSON rule form; EMQX's "pub" and "sub" are taken
// for "publish" and "subscribe".
func parseRules(raw json.RawMessage) ([]authz.Rule, error) {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("acl: want a list of rules: %w", err)
	}
	for _, r := range list {
		switch strings.ToLower(strings.TrimSpace(string(r["action"]))) {
		case `"pub"`:
			r["action"] = json.RawMessage(`"publish"`)
		case `"sub"`:
			r["action"] = json.RawMessage(`"subscribe"`)
		}
	}
	norm, err := json.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	rules, err := authz.ParseJSONRules(norm)
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	return rules, nil
}

func validAttrName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
