package topic

import "strconv"

// Kind classifies why a topic name or filter was refused. Every Kind is itself an error, so
// the constants below are the sentinels for errors.Is:
//
//	if errors.Is(err, topic.ErrWildcardInName) { ... }
//
// Being constants, they cannot be reassigned by other packages.
type Kind uint8

// The kinds of validation failure.
const (
	// ErrEmpty: a topic name or filter (or the filter part of a shared subscription) is
	// zero bytes long [MQTT-4.7.3-1].
	ErrEmpty Kind = iota + 1
	// ErrTooLong: longer than Limits.MaxLength, or than 65535 bytes [MQTT-4.7.3-3].
	ErrTooLong
	// ErrTooManyLevels: more levels than Limits.MaxLevels.
	ErrTooManyLevels
	// ErrWildcardInName: a topic name contains '+' or '#' [MQTT-4.7.0-1].
	ErrWildcardInName
	// ErrMultiLevelWildcard: a '#' that is not alone in the last level of a filter [MQTT-4.7.1-1].
	ErrMultiLevelWildcard
	// ErrSingleLevelWildcard: a '+' that does not occupy a whole level of a filter [MQTT-4.7.1-2].
	ErrSingleLevelWildcard
	// ErrNUL: the text contains U+0000 [MQTT-4.7.3-2], [MQTT-1.5.4-2].
	ErrNUL
	// ErrInvalidUTF8: the text is not well-formed UTF-8, or encodes a surrogate
	// (U+D800..U+DFFF) [MQTT-1.5.4-1].
	ErrInvalidUTF8
	// ErrSharedSubscription: a filter starting with "$share/" has an empty share name, a
	// share name containing '+', '#' or '/', or no "/" and topic filter after the share name
	// [MQTT-4.8.2-1], [MQTT-4.8.2-2].
	ErrSharedSubscription
)

// Error implements error.
func (k Kind) Error() string {
	switch k {
	case ErrEmpty:
		return "topic: empty topic"
	case ErrTooLong:
		return "topic: topic too long"
	case ErrTooManyLevels:
		return "topic: too many topic levels"
	case ErrWildcardInName:
		return "topic: wildcard in topic name"
	case ErrMultiLevelWildcard:
		return "topic: '#' must be alone in the last level"
	case ErrSingleLevelWildcard:
		return "topic: '+' must occupy a whole level"
	case ErrNUL:
		return "topic: topic contains U+0000"
	case ErrInvalidUTF8:
		return "topic: topic is not valid UTF-8"
	case ErrSharedSubscription:
		return "topic: malformed shared subscription"
	}
	return "topic: error kind " + strconv.Itoa(int(k))
}

// Error is the error returned by ValidateName and ValidateFilter. It unwraps to its Kind, so
// errors.Is(err, ErrNUL) and friends work, and errors.As gives the rule and offset.
type Error struct {
	Kind   Kind
	Rule   string // normative statement, e.g. "MQTT-4.7.1-1"; empty when none applies
	Offset int    // byte offset in the checked string where the problem was found
}

// Error implements error. The message never contains the topic itself, which may be
// attacker-controlled or confidential.
func (e *Error) Error() string {
	s := e.Kind.Error() + " at byte " + strconv.Itoa(e.Offset)
	if e.Rule != "" {
		s += " [" + e.Rule + "]"
	}
	return s
}

// Unwrap returns the Kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

func fail(k Kind, rule string, off int) error {
	return &Error{Kind: k, Rule: rule, Offset: off}
}
