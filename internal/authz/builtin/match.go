package builtin

import (
	"errors"

	"github.com/rampart-mqtt/rampart/internal/authz"
)

// compile checks one subject's list and builds its index with the shared rule compiler.
// A rule of the built-in database is for whom its list is for: a rule naming its own who
// is refused rather than silently narrowed or ignored.
func compile(rules []authz.Rule) (*authz.RuleSet, error) {
	for i := range rules {
		if rules[i].Who != nil {
			return nil, &authz.RuleError{Index: i, Err: errors.New("who: the built-in database applies a list to its scope and subject; a rule cannot name other clients")}
		}
	}
	return authz.Compile(rules)
}
