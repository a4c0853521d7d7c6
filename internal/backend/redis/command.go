package redis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Command is a configured command template such as "HMGET mqtt_user:${username}
// password_hash salt". It is split into words once, at configuration load; at run time
// each word becomes exactly one argument, its placeholders expanded in place. An expanded
// value is never split again, so a user name holding spaces, quotes or "\r\n" stays inside
// the one argument it was put in and cannot add arguments or commands.
type Command struct {
	name string
	key  *placeholder.Template
	rest []string // literal words after the key (field names)
}

// ParseCommand reads a command template. Its first word must be one of allowed (compared
// without case); its second word is the key, a template that must use at least one
// placeholder (a fixed key would give every client the same record); the remaining words
// are literal (placeholders are refused there, so a client cannot choose which fields
// are read). o restricts the key's placeholders.
func ParseCommand(s string, allowed []string, o placeholder.Options) (*Command, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return nil, fmt.Errorf("cmd is empty")
	}
	name := strings.ToUpper(words[0])
	if !slices.Contains(allowed, name) {
		return nil, fmt.Errorf("cmd %q: command %s is not allowed here (want one of %s)", s, words[0], strings.Join(allowed, ", "))
	}
	if len(words) < 2 {
		return nil, fmt.Errorf("cmd %q: no key", s)
	}
	key, err := placeholder.Parse(words[1], o)
	if err != nil {
		return nil, fmt.Errorf("cmd %q: key: %w", s, err)
	}
	if !key.HasVars() {
		return nil, fmt.Errorf("cmd %q: the key %q uses no placeholder, so every client would share one record", s, words[1])
	}
	for _, w := range words[2:] {
		if strings.Contains(w, "${") {
			return nil, fmt.Errorf("cmd %q: placeholder in %q: only the key may use placeholders", s, w)
		}
	}
	return &Command{name: name, key: key, rest: words[2:]}, nil
}

// Name is the command name in upper case.
func (c *Command) Name() string { return c.name }

// Fields are the literal words after the key.
func (c *Command) Fields() []string { return slices.Clone(c.rest) }

// Args expands the template for one client. ok is false when a placeholder of the key
// expands to an empty value (no user name, no certificate): such a client has no record
// to look up, and the caller must not query the server for one.
func (c *Command) Args(v placeholder.Values) (args []string, ok bool) {
	for _, name := range c.key.Vars() {
		if v.Lookup(name) == "" {
			return nil, false
		}
	}
	args = make([]string, 0, 2+len(c.rest))
	args = append(args, c.name, c.key.Expand(v, nil))
	return append(args, c.rest...), true
}

// String returns the template text in its normalised form.
func (c *Command) String() string {
	return strings.Join(append([]string{c.name, c.key.String()}, c.rest...), " ")
}
