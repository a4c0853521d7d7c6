package mysql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Query is a SQL statement from the configuration with its ${...} placeholders turned
// into the server's parameter markers: each placeholder becomes one ? and one bound
// argument, in the order they appear (a variable used twice is two arguments with the
// same value). Values are sent as arguments of a server-side prepared statement, never
// pasted into the SQL text, so a client id or user name cannot change the statement. A
// Query is immutable.
type Query struct {
	src  string
	sql  string
	vars []string // vars[i] is the variable of the (i+1)th ?
}

// CompileQuery reads a configured statement with MySQL's and MariaDB's lexical rules:
// strings in '...' or "..." (a doubled quote or a backslash escapes the next character),
// identifiers in `...` (a doubled backtick escapes one), comments from # or from -- and a
// space to the end of the line, and /* ... */ comments (not nested). It refuses, naming
// the problem: a placeholder that placeholder.Parse refuses under o (unknown, or
// ${password} when o.NoPassword); a placeholder inside a string, a quoted identifier or a
// comment (it would never be a parameter there: write it bare); a placeholder glued to
// the word before it; a ? written by hand (a parameter with no value: use ${...});
// executable comments (/*! ... */, /*M! ... */), whose text the server runs; a second
// statement after a semicolon; and an unterminated string, identifier or comment. A
// final semicolon is dropped.
func CompileQuery(src string, o placeholder.Options) (*Query, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("query: empty")
	}
	q := &Query{src: src}
	var b strings.Builder
	const (
		plain = iota
		single
		double
		backtick
		lineComment
		blockComment
	)
	state, ended := plain, -1 // ended: offset of the statement's final semicolon
	for i := 0; i < len(src); i++ {
		c := src[i]
		next := byte(0)
		if i+1 < len(src) {
			next = src[i+1]
		}
		if c == '$' && next == '{' {
			switch state {
			case single, double, backtick:
				return nil, fmt.Errorf("query: a placeholder at offset %d is inside quotes; write it without quotes: its value is sent as a bound argument", i)
			case lineComment, blockComment:
				return nil, fmt.Errorf("query: a placeholder at offset %d is inside a comment, where it would never be a parameter", i)
			}
		}
		switch state {
		case single, double:
			quote := byte('\'')
			if state == double {
				quote = '"'
			}
			switch {
			case c == '\\' && next != 0:
				b.WriteByte(c)
				b.WriteByte(next)
				i++
				continue
			case c == quote && next == quote:
				b.WriteByte(c)
				b.WriteByte(next)
				i++
				continue
			case c == quote:
				state = plain
			}
		case backtick:
			switch {
			case c == '`' && next == '`':
				b.WriteString("``")
				i++
				continue
			case c == '`':
				state = plain
			}
		case lineComment:
			if c == '\n' {
				state = plain
			}
		case blockComment:
			if c == '*' && next == '/' {
				b.WriteString("*/")
				i++
				state = plain
				continue
			}
		default:
			if ended >= 0 && !isSpace(c) && c != '#' && !(c == '/' && next == '*') && !(c == '-' && next == '-' && dashComment(src, i)) {
				return nil, fmt.Errorf("query: a second statement after the semicolon at offset %d: give one statement", ended)
			}
			switch {
			case c == '\'':
				state = single
			case c == '"':
				state = double
			case c == '`':
				state = backtick
			case c == '#':
				state = lineComment
			case c == '-' && next == '-' && dashComment(src, i):
				state = lineComment
			case c == '/' && next == '*':
				rest := src[i+2:]
				if strings.HasPrefix(rest, "!") || strings.HasPrefix(rest, "M!") || strings.HasPrefix(rest, "m!") {
					return nil, fmt.Errorf("query: executable comment at offset %d (/*! or /*M!): its text would run as SQL; write the SQL without the comment", i)
				}
				state = blockComment
				b.WriteString("/*")
				i++
				continue
			case c == ';':
				ended = i
				continue // dropped: the statement ends here
			case c == '?':
				return nil, fmt.Errorf("query: a ? parameter written by hand at offset %d has no value; use ${...} placeholders", i)
			case c == '$' && next == '{':
				if i > 0 && identChar(src[i-1]) {
					return nil, fmt.Errorf("query: the placeholder at offset %d is glued to the word before it; separate them", i)
				}
				end := strings.IndexByte(src[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("query: %q has no closing }", src[i:])
				}
				t, err := placeholder.Parse(src[i:i+end+1], o)
				if err != nil {
					return nil, fmt.Errorf("query: %w", err)
				}
				name, _ := t.IsSingleVar()
				q.vars = append(q.vars, name)
				b.WriteByte('?')
				i += end
				if i+1 < len(src) && identChar(src[i+1]) {
					return nil, fmt.Errorf("query: the placeholder ending at offset %d is glued to the word after it; separate them", i)
				}
				continue
			}
		}
		b.WriteByte(c)
	}
	switch state {
	case single, double:
		return nil, errors.New("query: unterminated quoted string")
	case backtick:
		return nil, errors.New("query: unterminated quoted identifier")
	case blockComment:
		return nil, errors.New("query: unterminated comment")
	}
	q.sql = strings.TrimRightFunc(b.String(), func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
	if strings.TrimSpace(q.sql) == "" {
		return nil, errors.New("query: empty")
	}
	return q, nil
}

// dashComment reports whether the -- at src[i] starts a comment: MySQL wants a space or
// control character (or the end) after it, so 1--1 is arithmetic.
func dashComment(src string, i int) bool {
	return i+2 >= len(src) || src[i+2] <= ' ' || src[i+2] == 0x7f
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func identChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// String returns the statement as configured.
func (q *Query) String() string { return q.src }

// SQL returns the statement sent to the server, with a ? in place of each placeholder.
func (q *Query) SQL() string { return q.sql }

// Vars returns the variable bound to each ?, in order.
func (q *Query) Vars() []string { return append([]string(nil), q.vars...) }

// Args returns the bound arguments for one client, one per ?.
func (q *Query) Args(v placeholder.Values) []any {
	args := make([]any, len(q.vars))
	for i, name := range q.vars {
		args[i] = v.Lookup(name)
	}
	return args
}

// HasVars reports whether the statement uses any placeholder.
func (q *Query) HasVars() bool { return len(q.vars) > 0 }
