package topic

import (
	"errors"
	"strings"
	"testing"
)

// checkErr fails t unless err is nil (want == 0) or an *Error of kind want with the rule
// wantRule (when wantRule is not empty).
func checkErr(t *testing.T, err error, want Kind, wantRule string) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("got error %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if wantRule != "" && e.Rule != wantRule {
		t.Fatalf("got rule %q, want %q", e.Rule, wantRule)
	}
	if e.Error() == "" || strings.Contains(e.Error(), "%!") {
		t.Fatalf("bad message %q", e.Error())
	}
}

// ED A0 80 is U+D800 and ED BF BF is U+DFFF, encoded as if they were scalar values.
const (
	surrogateLow  = "a/\xed\xa0\x80"
	surrogateHigh = "a/\xed\xbf\xbf"
)

func TestValidateName(t *testing.T) {
	max65535 := strings.Repeat("a", MaxLength)
	over := max65535 + "a"
	tests := []struct {
		name  string
		topic string
		lim   Limits
		want  Kind
		rule  string
	}{
		{name: "simple", topic: "sport/tennis/player1"},
		{name: "single level", topic: "sport"},
		{name: "leading slash is an empty level", topic: "/finance"},
		{name: "trailing slash", topic: "sport/"},
		{name: "only a separator", topic: "/"},
		{name: "empty levels", topic: "a//b"},
		{name: "spaces are allowed", topic: "a b/ c "},
		{name: "[MQTT-4.7.2-1] $SYS topic is a valid name", topic: "$SYS/broker/uptime"},
		{name: "$ in a later level", topic: "a/$b"},
		{name: "$share as a name", topic: "$share/g/a"},
		{name: "multibyte UTF-8", topic: "température/Zürich/東京/🚀"},
		{name: "[MQTT-1.5.4-3] BOM is an ordinary character", topic: "\uFEFFa"},
		{name: "U+FFFD is valid", topic: "a\uFFFDb"},
		{name: "largest code point", topic: "a/\U0010FFFF"},
		{name: "[MQTT-4.7.3-1] zero length", topic: "", want: ErrEmpty, rule: "MQTT-4.7.3-1"},
		{name: "[MQTT-4.7.0-1] + in name", topic: "sport/+", want: ErrWildcardInName, rule: "MQTT-4.7.0-1"},
		{name: "[MQTT-4.7.0-1] # in name", topic: "sport/#", want: ErrWildcardInName, rule: "MQTT-4.7.0-1"},
		{name: "[MQTT-4.7.0-1] wildcard inside a level", topic: "sp+ort", want: ErrWildcardInName},
		{name: "[MQTT-4.7.0-1] lone #", topic: "#", want: ErrWildcardInName},
		{name: "[MQTT-4.7.3-2] NUL", topic: "a\x00b", want: ErrNUL, rule: "MQTT-4.7.3-2"},
		{name: "[MQTT-1.5.4-2] NUL at the end", topic: "a/b\x00", want: ErrNUL},
		{name: "[MQTT-4.7.3-3] length 65535", topic: max65535},
		{name: "[MQTT-4.7.3-3] length 65536", topic: over, want: ErrTooLong, rule: "MQTT-4.7.3-3"},
		{name: "[MQTT-1.5.4-1] surrogate U+D800", topic: surrogateLow, want: ErrInvalidUTF8, rule: "MQTT-1.5.4-1"},
		{name: "[MQTT-1.5.4-1] surrogate U+DFFF", topic: surrogateHigh, want: ErrInvalidUTF8},
		{name: "[MQTT-1.5.4-1] truncated sequence", topic: "a\xc3", want: ErrInvalidUTF8},
		{name: "[MQTT-1.5.4-1] stray continuation byte", topic: "\x80", want: ErrInvalidUTF8},
		{name: "[MQTT-1.5.4-1] overlong slash", topic: "a\xc0\xafb", want: ErrInvalidUTF8},
		{name: "[MQTT-1.5.4-1] above U+10FFFF", topic: "\xf4\x90\x80\x80", want: ErrInvalidUTF8},
		{name: "[MQTT-1.5.4-1] 0xFF byte", topic: "a/\xff", want: ErrInvalidUTF8},
		{name: "MaxLength limit met", topic: "abcd", lim: Limits{MaxLength: 4}},
		{name: "MaxLength limit exceeded", topic: "abcde", lim: Limits{MaxLength: 4}, want: ErrTooLong},
		{name: "MaxLength above spec is capped", topic: over, lim: Limits{MaxLength: 1 << 20}, want: ErrTooLong},
		{name: "MaxLevels met", topic: "a/b/c", lim: Limits{MaxLevels: 3}},
		{name: "MaxLevels exceeded", topic: "a/b/c/d", lim: Limits{MaxLevels: 3}, want: ErrTooManyLevels},
		{name: "MaxLevels counts empty levels", topic: "//", lim: Limits{MaxLevels: 2}, want: ErrTooManyLevels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateName(tt.topic, tt.lim), tt.want, tt.rule)
		})
	}
}

func TestValidateFilter(t *testing.T) {
	max65535 := strings.Repeat("a", MaxLength)
	over := max65535 + "a"
	tests := []struct {
		name   string
		filter string
		lim    Limits
		want   Kind
		rule   string
	}{
		{name: "literal", filter: "sport/tennis/player1"},
		{name: "[MQTT-4.7.1-1] # alone", filter: "#"},
		{name: "[MQTT-4.7.1-1] # after separator", filter: "sport/tennis/player1/#"},
		{name: "[MQTT-4.7.1-1] # after empty level", filter: "/#"},
		{name: "[MQTT-4.7.1-2] + alone", filter: "+"},
		{name: "[MQTT-4.7.1-2] + first, middle, last", filter: "+/tennis/+/x/+"},
		{name: "[MQTT-4.7.1-2] + with #", filter: "+/tennis/#"},
		{name: "[MQTT-4.7.1-2] +/+", filter: "+/+"},
		{name: "[MQTT-4.7.1-2] /+", filter: "/+"},
		{name: "[MQTT-4.7.1-2] + before empty level", filter: "+//+/"},
		{name: "[MQTT-4.7.2-1] $SYS/#", filter: "$SYS/#"},
		{name: "$share without slash is an ordinary filter", filter: "$share"},
		{name: "$sharex is an ordinary filter", filter: "$sharex/g/a"},
		{name: "multibyte UTF-8", filter: "température/+/東京/#"},
		{name: "[MQTT-4.7.3-1] zero length", filter: "", want: ErrEmpty, rule: "MQTT-4.7.3-1"},
		{name: "[MQTT-4.7.1-1] # not last", filter: "sport/#/ranking", want: ErrMultiLevelWildcard, rule: "MQTT-4.7.1-1"},
		{name: "[MQTT-4.7.1-1] # followed by separator", filter: "sport/#/", want: ErrMultiLevelWildcard},
		{name: "[MQTT-4.7.1-1] # not alone in level (suffix)", filter: "sport/tennis#", want: ErrMultiLevelWildcard},
		{name: "[MQTT-4.7.1-1] # not alone in level (prefix)", filter: "#sport", want: ErrMultiLevelWildcard},
		{name: "[MQTT-4.7.1-1] ##", filter: "a/##", want: ErrMultiLevelWildcard},
		{name: "[MQTT-4.7.1-1] two #", filter: "#/#", want: ErrMultiLevelWildcard},
		{name: "[MQTT-4.7.1-2] + not alone in level (suffix)", filter: "sport+", want: ErrSingleLevelWildcard, rule: "MQTT-4.7.1-2"},
		{name: "[MQTT-4.7.1-2] + not alone in level (prefix)", filter: "sport/+tennis", want: ErrSingleLevelWildcard},
		{name: "[MQTT-4.7.1-2] ++", filter: "++", want: ErrSingleLevelWildcard},
		{name: "[MQTT-4.7.1-2] +#", filter: "a/+#", want: ErrSingleLevelWildcard},
		{name: "[MQTT-4.7.3-2] NUL", filter: "a/\x00/#", want: ErrNUL, rule: "MQTT-4.7.3-2"},
		{name: "[MQTT-1.5.4-2] NUL in share name", filter: "$share/g\x00/a", want: ErrNUL},
		{name: "[MQTT-4.7.3-3] length 65535", filter: max65535},
		{name: "[MQTT-4.7.3-3] length 65536", filter: over, want: ErrTooLong, rule: "MQTT-4.7.3-3"},
		{name: "[MQTT-4.7.3-3] shared, whole string 65536", filter: "$share/g/" + over[:MaxLength-8], want: ErrTooLong},
		{name: "[MQTT-1.5.4-1] surrogate", filter: surrogateLow, want: ErrInvalidUTF8, rule: "MQTT-1.5.4-1"},
		{name: "[MQTT-1.5.4-1] surrogate in share name", filter: "$share/\xed\xb0\x80/a", want: ErrInvalidUTF8},
		{name: "[MQTT-1.5.4-1] truncated", filter: "+/\xe2\x82", want: ErrInvalidUTF8},
		{name: "[MQTT-4.8.2-1] shared", filter: "$share/consumer1/sport/tennis/+"},
		{name: "[MQTT-4.8.2-1] shared #", filter: "$share/g/#"},
		{name: "[MQTT-4.8.2-1] shared with $ in group", filter: "$share/$g/a"},
		{name: "[MQTT-4.8.2-2] shared filter with empty levels", filter: "$share/g//"},
		{name: "[MQTT-4.8.2-1] empty share name", filter: "$share//a", want: ErrSharedSubscription, rule: "MQTT-4.8.2-1"},
		{name: "[MQTT-4.8.2-1] $share/ only", filter: "$share/", want: ErrSharedSubscription, rule: "MQTT-4.8.2-1"},
		{name: "[MQTT-4.8.2-2] share name with +", filter: "$share/g+/a", want: ErrSharedSubscription, rule: "MQTT-4.8.2-2"},
		{name: "[MQTT-4.8.2-2] share name is +", filter: "$share/+/a", want: ErrSharedSubscription},
		{name: "[MQTT-4.8.2-2] share name with #", filter: "$share/#", want: ErrSharedSubscription, rule: "MQTT-4.8.2-2"},
		{name: "[MQTT-4.8.2-2] no filter after share name", filter: "$share/g", want: ErrSharedSubscription, rule: "MQTT-4.8.2-2"},
		{name: "[MQTT-4.8.2-2] empty filter after share name", filter: "$share/g/", want: ErrSharedSubscription, rule: "MQTT-4.8.2-2"},
		{name: "[MQTT-4.8.2-2] bad filter after share name", filter: "$share/g/a/#/b", want: ErrMultiLevelWildcard},
		{name: "[MQTT-4.8.2-2] bad + after share name", filter: "$share/g/a+", want: ErrSingleLevelWildcard},
		{name: "MaxLevels met", filter: "a/+/#", lim: Limits{MaxLevels: 3}},
		{name: "MaxLevels exceeded", filter: "a/+/c/#", lim: Limits{MaxLevels: 3}, want: ErrTooManyLevels},
		{name: "MaxLevels applies to the shared filter part", filter: "$share/g/a/b/c", lim: Limits{MaxLevels: 3}},
		{name: "MaxLevels exceeded in shared filter part", filter: "$share/g/a/b/c/d", lim: Limits{MaxLevels: 3}, want: ErrTooManyLevels},
		{name: "MaxLength applies to the shared filter part", filter: "$share/group/abcd", lim: Limits{MaxLength: 4}},
		{name: "MaxLength exceeded in shared filter part", filter: "$share/g/abcde", lim: Limits{MaxLength: 4}, want: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateFilter(tt.filter, tt.lim), tt.want, tt.rule)
		})
	}
}

func TestErrorOffset(t *testing.T) {
	var e *Error
	if !errors.As(ValidateFilter("$share/g/a/b#", Limits{}), &e) || e.Offset != 12 {
		t.Fatalf("got %+v, want offset 12", e)
	}
	if !errors.As(ValidateName("ab/c+", Limits{}), &e) || e.Offset != 4 {
		t.Fatalf("got %+v, want offset 4", e)
	}
	if !errors.As(ValidateName("ab/\xed\xa0\x80", Limits{}), &e) || e.Offset != 3 {
		t.Fatalf("got %+v, want offset 3", e)
	}
}

func TestErrorMessagesOmitTopic(t *testing.T) {
	secret := "tenant-secret/+x"
	err := ValidateFilter(secret, Limits{})
	if err == nil || strings.Contains(err.Error(), "tenant") {
		t.Fatalf("message %v leaks the topic", err)
	}
	for k := ErrEmpty; k <= ErrSharedSubscription; k++ {
		if strings.Contains(k.Error(), "error kind") {
			t.Errorf("kind %d has no message", k)
		}
	}
	if got := Kind(200).Error(); got != "topic: error kind 200" {
		t.Errorf("unknown kind message %q", got)
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		in, group, filter string
		shared            bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true},
		{"$share/g/#", "g", "#", true},
		{"$share/g", "g", "", true},
		{"a/b", "", "a/b", false},
		{"$share", "", "$share", false},
		{"$SYS/#", "", "$SYS/#", false},
	}
	for _, tt := range tests {
		g, f, s := ParseShared(tt.in)
		if g != tt.group || f != tt.filter || s != tt.shared {
			t.Errorf("ParseShared(%q) = %q, %q, %v; want %q, %q, %v", tt.in, g, f, s, tt.group, tt.filter, tt.shared)
		}
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if ValidateName("devices/abc/telemetry", Limits{MaxLevels: 8}) != nil ||
			ValidateFilter("$share/g/devices/+/telemetry/#", Limits{MaxLevels: 8}) != nil {
			t.Fatal("unexpected error")
		}
	})
	if allocs != 0 {
		t.Fatalf("validation of valid topics allocates %v times", allocs)
	}
}
