package config

import (
	"fmt"
	"strings"
)

// Error is one configuration problem. Load and Validate return them joined with
// errors.Join; errors.As finds the first one.
type Error struct {
	// Source says where the offending value came from: "FILE:LINE",
	// "environment RAMPART_..." or "" for a default or a value set in code.
	Source string
	// Path is the dotted key path, e.g. "listeners.tcp.default.bind".
	Path string
	// Msg says what is wrong.
	Msg string

	unknownKey bool // Msg already names Path: `unknown key "a.b"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Path != "" && !e.unknownKey {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func unknownKeyError(source, path string) *Error {
	return &Error{Source: source, Path: path, Msg: fmt.Sprintf("unknown key %q", path), unknownKey: true}
}

// origins remembers where each key that was set by the file or the environment came
// from, so that Validate's problems can point at the line to fix. Only leaf keys and map
// entries (listeners) are recorded.
type origins map[string]string

// of returns the source of path, or of the nearest enclosing entry that has one.
func (o origins) of(path string) string {
	for p := path; p != ""; {
		if src, ok := o[p]; ok {
			return src
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return ""
}
