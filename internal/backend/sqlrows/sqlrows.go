// Package sqlrows holds what the SQL connectors (postgres, mysql) share: the answer of
// one SQL query as they return it (the column names the server sent and the rows read,
// each value as the driver decoded it, with the few readers the authenticator and the
// authorization source need to interpret a value whichever server it came from), and
// Statement, a compiled query bound to a connector's pool, which each connector
// instantiates with its own pool and query types.
package sqlrows

import (
	"strconv"
	"strings"
)

// Rows is the answer to one query: its column names as the server sent them and at most
// the asked number of rows. Values hold what the driver decoded: string or []byte for
// text, bool, signed or unsigned integers, nil for NULL, and others (floats, times) that
// the readers below do not interpret.
type Rows struct {
	Columns []string
	Values  [][]any
	// More is true when the server had more rows than were read.
	More bool
}

// Column returns the index of the column named name (case-insensitively), or -1.
func (r *Rows) Column(name string) int {
	for i, c := range r.Columns {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

// Text returns a column value as text: strings and []byte as they are, integers in
// decimal and booleans as "true"/"false". ok is false for NULL and other types.
func Text(v any) (s string, ok bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	}
	return "", false
}

// Truthy reads a flag such as is_superuser leniently: true, a non-zero integer, or the
// text true/t/1/yes/on (any case, surrounding spaces ignored). Every other value, NULL
// included, is false.
func Truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		s, _ := Text(x)
		return s != "0"
	}
	s, ok := Text(v)
	if !ok {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "1", "yes", "on":
		return true
	}
	return false
}

// Bool reads a flag strictly: a bool, the integers 0 and 1, or the text true/t/1 and
// false/f/0 (any case, surrounding spaces ignored). ok is false for NULL and anything
// else, so a value that is neither clearly true nor clearly false is never guessed.
func Bool(v any) (b, ok bool) {
	if b, ok := v.(bool); ok {
		return b, true
	}
	s, ok := Text(v)
	if !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "1":
		return true, true
	case "false", "f", "0":
		return false, true
	}
	return false, false
}
