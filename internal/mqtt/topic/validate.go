package topic

import (
	"strings"
	"unicode/utf8"
)

// MaxLength is the longest topic name or filter the specification allows, in bytes: both are
// UTF-8 Encoded Strings with a two-byte length prefix [MQTT-4.7.3-3].
const MaxLength = 65535

// SharePrefix starts every shared subscription filter, "$share/{ShareName}/{filter}"
// (MQTT 5.0 §4.8.2).
const SharePrefix = "$share/"

// Limits are operator-configured bounds, tighter than the specification's.
type Limits struct {
	MaxLevels int // most '/'-separated levels; 0 = no limit beyond the spec
	MaxLength int // most bytes; 0 (or anything above MaxLength) = MaxLength
}

func (l Limits) maxLength() int {
	if l.MaxLength <= 0 || l.MaxLength > MaxLength {
		return MaxLength
	}
	return l.MaxLength
}

// ValidateName reports whether name may be used as a Topic Name (in PUBLISH, as a Will Topic
// or a Response Topic). The returned error is an *Error whose Kind says what was wrong.
func ValidateName(name string, lim Limits) error {
	if name == "" {
		return fail(ErrEmpty, "MQTT-4.7.3-1", 0)
	}
	if len(name) > MaxLength {
		return fail(ErrTooLong, "MQTT-4.7.3-3", MaxLength)
	}
	if len(name) > lim.maxLength() {
		return fail(ErrTooLong, "", lim.maxLength())
	}
	levels := 1
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '/':
			levels++
		case '+', '#':
			return fail(ErrWildcardInName, "MQTT-4.7.0-1", i)
		case 0:
			return fail(ErrNUL, "MQTT-4.7.3-2", i)
		}
	}
	if lim.MaxLevels > 0 && levels > lim.MaxLevels {
		return fail(ErrTooManyLevels, "", 0)
	}
	if i := invalidUTF8(name); i >= 0 {
		return fail(ErrInvalidUTF8, "MQTT-1.5.4-1", i)
	}
	return nil
}

// ValidateFilter reports whether filter may be used as a Topic Filter (in SUBSCRIBE or
// UNSUBSCRIBE), including the shared form "$share/{ShareName}/{filter}". The returned error
// is an *Error whose Kind says what was wrong; its Offset is relative to the whole filter.
func ValidateFilter(filter string, lim Limits) error {
	if filter == "" {
		return fail(ErrEmpty, "MQTT-4.7.3-1", 0)
	}
	if len(filter) > MaxLength {
		return fail(ErrTooLong, "MQTT-4.7.3-3", MaxLength)
	}
	if i := strings.IndexByte(filter, 0); i >= 0 {
		return fail(ErrNUL, "MQTT-4.7.3-2", i)
	}
	if i := invalidUTF8(filter); i >= 0 {
		return fail(ErrInvalidUTF8, "MQTT-1.5.4-1", i)
	}
	f, base := filter, 0
	if strings.HasPrefix(filter, SharePrefix) {
		rest := filter[len(SharePrefix):]
		slash := strings.IndexByte(rest, '/')
		group := rest
		if slash >= 0 {
			group = rest[:slash]
		}
		if group == "" {
			return fail(ErrSharedSubscription, "MQTT-4.8.2-1", len(SharePrefix))
		}
		if i := strings.IndexAny(group, "+#"); i >= 0 {
			return fail(ErrSharedSubscription, "MQTT-4.8.2-2", len(SharePrefix)+i)
		}
		if slash < 0 || slash == len(rest)-1 {
			return fail(ErrSharedSubscription, "MQTT-4.8.2-2", len(filter))
		}
		base = len(SharePrefix) + slash + 1
		f = filter[base:]
	}
	if len(f) > lim.maxLength() {
		return fail(ErrTooLong, "", base+lim.maxLength())
	}
	levels, levelStart := 1, 0
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '/':
			levels++
			levelStart = i + 1
		case '+':
			if i != levelStart || (i+1 < len(f) && f[i+1] != '/') {
				return fail(ErrSingleLevelWildcard, "MQTT-4.7.1-2", base+i)
			}
		case '#':
			if i != levelStart || i != len(f)-1 {
				return fail(ErrMultiLevelWildcard, "MQTT-4.7.1-1", base+i)
			}
		}
	}
	if lim.MaxLevels > 0 && levels > lim.MaxLevels {
		return fail(ErrTooManyLevels, "", base)
	}
	return nil
}

// ParseShared splits a shared subscription filter "$share/{group}/{filter}" into its share
// name and the filter proper. For any other filter it returns ("", filter, false). It
// assumes filter passed ValidateFilter; for "$share/g" (invalid) it returns ("g", "", true).
func ParseShared(filter string) (group, realFilter string, shared bool) {
	if !strings.HasPrefix(filter, SharePrefix) {
		return "", filter, false
	}
	rest := filter[len(SharePrefix):]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return rest, "", true
	}
	return rest[:slash], rest[slash+1:], true
}

// invalidUTF8 returns the offset of the first byte of s that does not start a well-formed
// UTF-8 sequence, or -1 if s is valid. Surrogate code points (U+D800..U+DFFF, encoded as
// ED A0 80 .. ED BF BF), overlong forms and values above U+10FFFF are all invalid.
func invalidUTF8(s string) int {
	if utf8.ValidString(s) {
		return -1
	}
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1 // unreachable: ValidString said otherwise
}
