package postgres

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Query is a SQL statement from the configuration with its ${...} placeholders turned
// into positional parameters: the first distinct variable becomes $1, the next $2, and so
// on (a variable used twice is one parameter). Values are sent as bound arguments, never
// pasted into the SQL text, so a client id or user name cannot change the statement.
// A Query is immutable.
type Query struct {
	src  string
	sql  string
	vars []string // vars[i] is the variable of $(i+1)
}

// CompileQuery reads a configured statement. It refuses, naming the problem: a
// placeholder that placeholder.Parse refuses under o (unknown, or ${password} when
// o.NoPassword), a placeholder inside a quoted string or identifier (it would be the
// literal text "$1" there, never a match: write it bare), positional parameters such as
// $1 written by hand, dollar-quoted strings, and an unterminated quote or comment.
func CompileQuery(src string, o placeholder.Options) (*Query, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("query: empty")
	}
	q := &Query{src: src}
	index := map[string]int{}
	var b strings.Builder
	const (
		plain = iota
		quoted
		ident
		lineComment
		blockComment
	)
	state, depth, escapes := plain, 0, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		next := byte(0)
		if i+1 < len(src) {
			next = src[i+1]
		}
		if state != plain && state != lineComment && state != blockComment && c == '$' && next == '{' {
			return nil, fmt.Errorf("query: a placeholder at offset %d is inside quotes; write it without quotes: its value is sent as a bound argument", i)
		}
		switch state {
		case quoted:
			switch {
			case escapes && c == '\\' && next != 0:
				b.WriteByte(c)
				b.WriteByte(next)
				i++
				continue
			case c == '\'' && next == '\'':
				b.WriteString("''")
				i++
				continue
			case c == '\'':
				state = plain
			}
		case ident:
			switch {
			case c == '"' && next == '"':
				b.WriteString(`""`)
				i++
				continue
			case c == '"':
				state = plain
			}
		case lineComment:
			if c == '\n' {
				state = plain
			}
		case blockComment:
			switch {
			case c == '/' && next == '*':
				depth++
				b.WriteString("/*")
				i++
				continue
			case c == '*' && next == '/':
				depth--
				b.WriteString("*/")
				i++
				if depth == 0 {
					state = plain
				}
				continue
			}
		default:
			switch {
			case c == '\'':
				state = quoted
				escapes = i > 0 && (src[i-1] == 'E' || src[i-1] == 'e') && (i < 2 || !identChar(src[i-2]))
			case c == '"':
				state = ident
			case c == '-' && next == '-':
				state = lineComment
			case c == '/' && next == '*':
				state, depth = blockComment, 1
				b.WriteString("/*")
				i++
				continue
			case c == '$' && next == '{' && i > 0 && identChar(src[i-1]):
				return nil, fmt.Errorf("query: the placeholder at offset %d is glued to the word before it; separate them", i)
			case c == '$' && i > 0 && identChar(src[i-1]):
				// part of an identifier such as a$b
			case c == '$' && next == '{':
				end := strings.IndexByte(src[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("query: %q has no closing }", src[i:])
				}
				t, err := placeholder.Parse(src[i:i+end+1], o)
				if err != nil {
					return nil, fmt.Errorf("query: %w", err)
				}
				name, _ := t.IsSingleVar()
				n, ok := index[name]
				if !ok {
					q.vars = append(q.vars, name)
					n = len(q.vars)
					index[name] = n
				}
				b.WriteString("$" + strconv.Itoa(n))
				i += end
				if i+1 < len(src) && identChar(src[i+1]) {
					return nil, fmt.Errorf("query: the placeholder ending at offset %d is glued to the word after it; separate them", i)
				}
				continue
			case c == '$' && next >= '0' && next <= '9':
				return nil, fmt.Errorf("query: positional parameter at offset %d: use ${...} placeholders", i)
			case c == '$':
				return nil, fmt.Errorf("query: dollar-quoted strings (offset %d) are not supported", i)
			}
		}
		b.WriteByte(c)
	}
	switch state {
	case quoted:
		return nil, errors.New("query: unterminated quoted string")
	case ident:
		return nil, errors.New("query: unterminated quoted identifier")
	case blockComment:
		return nil, errors.New("query: unterminated comment")
	}
	q.sql = b.String()
	return q, nil
}

func identChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// String returns the statement as configured.
func (q *Query) String() string { return q.src }

// SQL returns the statement sent to the server, with $1, $2... in place of placeholders.
func (q *Query) SQL() string { return q.sql }

// Vars returns the variable bound to each parameter: Vars()[0] is $1.
func (q *Query) Vars() []string { return append([]string(nil), q.vars...) }

// Args returns the bound arguments for one client, in parameter order.
func (q *Query) Args(v placeholder.Values) []any {
	args := make([]any, len(q.vars))
	for i, name := range q.vars {
		args[i] = v.Lookup(name)
	}
	return args
}

// HasVars reports whether the statement uses any placeholder.
func (q *Query) HasVars() bool { return len(q.vars) > 0 }
