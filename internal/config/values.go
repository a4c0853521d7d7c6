package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes. In the file it is a plain integer (bytes) or an integer
// followed by a unit, case-insensitive: B, KB, MB or GB, where 1KB = 1024 bytes,
// 1MB = 1024KB and 1GB = 1024MB. Negative numbers, fractions and other units are errors.
type Size int64

// Size units.
const (
	B  Size = 1
	KB Size = 1024 * B
	MB Size = 1024 * KB
	GB Size = 1024 * MB
)

var sizeUnits = [...]struct {
	name string
	mult Size
}{{"GB", GB}, {"MB", MB}, {"KB", KB}, {"B", B}}

// ParseSize reads a size such as "512B", "64KB", "1mb", "1GB" or "1048576".
func ParseSize(s string) (Size, error) {
	text := strings.TrimSpace(s)
	i := 0
	for i < len(text) && (text[i] >= '0' && text[i] <= '9' || text[i] == '_' || text[i] == '.' || text[i] == '-' || text[i] == '+') {
		i++
	}
	digits, unit := text[:i], strings.ToUpper(strings.TrimSpace(text[i:]))
	mult := Size(0)
	if unit == "" {
		mult = B
	}
	for _, u := range sizeUnits {
		if unit == u.name {
			mult = u.mult
		}
	}
	n, err := parseCount(digits)
	switch {
	case err != nil:
	case mult == 0:
		err = fmt.Errorf("unknown unit %q", text[i:])
	case n > int64(math.MaxInt64/mult):
		err = errors.New("too large")
	}
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v; want bytes or a whole number with B, KB, MB or GB (1KB = 1024B)", s, err)
	}
	return Size(n) * mult, nil
}

// Bytes returns the size as a number of bytes.
func (s Size) Bytes() int64 { return int64(s) }

// String writes the size in the largest unit that divides it exactly: "1MB", "1500B".
func (s Size) String() string {
	if s != 0 {
		for _, u := range sizeUnits {
			if s%u.mult == 0 {
				return strconv.FormatInt(int64(s/u.mult), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseSize.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalYAML writes the size as String does.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// Duration is a length of time. In the file it is a Go duration ("10s", "1m30s", "2h",
// "250ms") optionally led by a number of days ("7d", "1d12h"), or "0". Negative values and
// a number without a unit are errors.
type Duration time.Duration

// ParseDuration reads a duration such as "10s", "1m30s", "2h", "7d" or "0".
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %v; want a whole or decimal number with a unit (ms, s, m, h, d), e.g. 10s, 1m30s, 2h, 7d", s, err)
	}
	return d, nil
}

func parseDuration(s string) (Duration, error) {
	switch {
	case s == "":
		return 0, errors.New("empty")
	case s == "0":
		return 0, nil
	case s[0] == '-':
		return 0, errors.New("negative")
	case s[0] == '+':
		return 0, errors.New("sign not allowed")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := parseCount(s[:i])
		if err != nil {
			return 0, errors.New("days must be a whole number and come first")
		}
		if n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, errors.New("too large")
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return Duration(days), nil
		}
		if s[0] < '0' || s[0] > '9' {
			return 0, errors.New("malformed")
		}
	}
	if s[len(s)-1] >= '0' && s[len(s)-1] <= '9' {
		return 0, errors.New("missing unit")
	}
	rest, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("malformed")
	}
	if rest > math.MaxInt64-days {
		return 0, errors.New("too large")
	}
	return Duration(days + rest), nil
}

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String writes the duration compactly: "15s", "1m30s", "2h", "250ms".
func (d Duration) String() string {
	t := time.Duration(d)
	if t == 0 {
		return "0s"
	}
	if t < 0 || t%time.Second != 0 {
		return t.String()
	}
	var b strings.Builder
	h, m, sec := t/time.Hour, (t%time.Hour)/time.Minute, (t%time.Minute)/time.Second
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Limit is a count that may be unlimited. In the file it is a whole number or the word
// "infinity". Infinity is held as -1 (the constant Infinity), so the zero value is a limit
// of zero, which Validate refuses, rather than silently unlimited.
type Limit int

// Infinity is the Limit that does not limit.
const Infinity Limit = -1

// ParseLimit reads a limit: a whole number, or "infinity" (any case).
func ParseLimit(s string) (Limit, error) {
	text := strings.TrimSpace(s)
	if strings.EqualFold(text, "infinity") {
		return Infinity, nil
	}
	n, err := parseCount(text)
	if err == nil && n > math.MaxInt {
		err = errors.New("too large")
	}
	if err != nil {
		return 0, fmt.Errorf("invalid limit %q: %v; want a whole number or infinity", s, err)
	}
	return Limit(n), nil
}

// Unlimited reports whether the limit is Infinity.
func (l Limit) Unlimited() bool { return l < 0 }

// Allows reports whether a count of n stays within the limit.
func (l Limit) Allows(n int) bool { return l.Unlimited() || n <= int(l) }

// String writes the limit as a number or "infinity".
func (l Limit) String() string {
	if l.Unlimited() {
		return "infinity"
	}
	return strconv.Itoa(int(l))
}

// MarshalText implements encoding.TextMarshaler.
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseLimit.
func (l *Limit) UnmarshalText(b []byte) error {
	v, err := ParseLimit(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// MarshalYAML writes the limit as an integer, or as the string "infinity".
func (l Limit) MarshalYAML() (any, error) {
	if l.Unlimited() {
		return "infinity", nil
	}
	return int(l), nil
}

// parseCount reads a non-negative decimal integer. Underscores may separate digits
// ("10_000_000"); signs, leading zeros, other bases and fractions are refused, so that no
// value means something other than what it looks like.
func parseCount(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("missing number")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '_' && i > 0 && i < len(s)-1 && s[i-1] != '_':
		case c == '-' && i == 0:
			return 0, errors.New("negative")
		case c == '+' && i == 0:
			return 0, errors.New("sign not allowed")
		case c == '.':
			return 0, errors.New("not a whole number")
		default:
			return 0, errors.New("not a decimal number")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return 0, errors.New("too large")
	}
	return n, nil
}

// parseInt reads a decimal integer that may be negative; ranges are Validate's job.
func parseInt(s string) (int, error) {
	text := strings.TrimSpace(s)
	neg := strings.HasPrefix(text, "-")
	n, err := parseCount(strings.TrimPrefix(text, "-"))
	if err == nil && n > math.MaxInt {
		err = errors.New("too large")
	}
	if err != nil {
		return 0, fmt.Errorf("invalid integer %q: %v", s, err)
	}
	if neg {
		return -int(n), nil
	}
	return int(n), nil
}

func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return f, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q; want true or false", s)
}

// Durability says how the store treats acknowledged messages.
type Durability string

// Durability values.
const (
	// DurabilitySync syncs to disk before a publisher is acknowledged.
	DurabilitySync Durability = "sync"
	// DurabilityNone keeps everything in memory.
	DurabilityNone Durability = "none"
)

// UnmarshalText accepts one of the Durability values.
func (d *Durability) UnmarshalText(b []byte) error {
	return setEnum(d, string(b), DurabilitySync, DurabilityNone)
}

// LogLevel is the least severe level that is logged.
type LogLevel string

// LogLevel values.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// UnmarshalText accepts one of the LogLevel values.
func (l *LogLevel) UnmarshalText(b []byte) error {
	return setEnum(l, string(b), LogDebug, LogInfo, LogWarn, LogError)
}

// LogFormat is the encoding of log lines.
type LogFormat string

// LogFormat values.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// UnmarshalText accepts one of the LogFormat values.
func (f *LogFormat) UnmarshalText(b []byte) error {
	return setEnum(f, string(b), LogText, LogJSON)
}

// SharedStrategy picks which member of a shared subscription group gets a message.
type SharedStrategy string

// SharedStrategy values.
const (
	SharedRoundRobin SharedStrategy = "round_robin"
	SharedRandom     SharedStrategy = "random"
)

// UnmarshalText accepts one of the SharedStrategy values.
func (s *SharedStrategy) UnmarshalText(b []byte) error {
	return setEnum(s, string(b), SharedRoundRobin, SharedRandom)
}

func setEnum[T ~string](dst *T, s string, allowed ...T) error {
	if err := checkEnum(T(s), allowed...); err != nil {
		return err
	}
	*dst = T(s)
	return nil
}

func checkEnum[T ~string](v T, allowed ...T) error {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if v == a {
			return nil
		}
		names[i] = string(a)
	}
	return fmt.Errorf("invalid value %q; want one of %s", string(v), strings.Join(names, ", "))
}

// The YAML encoder must see the custom marshalers; these lines fail to compile otherwise.
var (
	_ yaml.Marshaler = Size(0)
	_ yaml.Marshaler = Duration(0)
	_ yaml.Marshaler = Limit(0)
)

// Verify is whether a TLS listener asks for and verifies client certificates.
type Verify string

// The values of ssl_options.verify.
const (
	VerifyNone Verify = "verify_none"
	VerifyPeer Verify = "verify_peer"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verify) UnmarshalText(b []byte) error {
	return setEnum(v, string(b), VerifyNone, VerifyPeer)
}

// CertField names the certificate field that becomes a user name or client id; "" = none.
type CertField string

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *CertField) UnmarshalText(b []byte) error {
	return setEnum(f, string(b), "", "cn", "dn", "san_dns", "san_uri", "crt_sha256")
}

// OCSPOnError is what happens to a client whose certificate's OCSP responder cannot give
// a verified answer.
type OCSPOnError string

// The values of ssl_options.ocsp.client_ocsp_on_error.
const (
	OCSPOnErrorDeny  OCSPOnError = "deny"
	OCSPOnErrorAllow OCSPOnError = "allow"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (e *OCSPOnError) UnmarshalText(b []byte) error {
	return setEnum(e, string(b), OCSPOnErrorDeny, OCSPOnErrorAllow)
}
