package topic

import (
	"strings"
	"testing"
)

// refMatch is the obvious, allocating implementation of matching for valid, non-shared
// filters and valid names, written straight from MQTT 5.0 §4.7: split both on '/', compare
// level by level.
func refMatch(filter, name string) bool {
	f := strings.Split(filter, "/")
	n := strings.Split(name, "/")
	if strings.HasPrefix(name, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, level := range f {
		if level == "#" {
			return true // includes the parent level: "a/#" matches "a"
		}
		if i >= len(n) || (level != "+" && level != n[i]) {
			return false
		}
	}
	return len(f) == len(n)
}

// matchCases are the examples of MQTT 5.0 §4.7.1 and §4.7.2 and some edge cases.
var matchCases = []struct {
	name   string
	filter string
	topic  string
	want   bool
}{
	// §4.7.1.2 multi-level wildcard.
	{"[MQTT-4.7.1-1] sport/tennis/player1/# matches sport/tennis/player1", "sport/tennis/player1/#", "sport/tennis/player1", true},
	{"[MQTT-4.7.1-1] sport/tennis/player1/# matches ranking", "sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"[MQTT-4.7.1-1] sport/tennis/player1/# matches score/wimbledon", "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/# does not match player2", "sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/# does not match the grandparent", "sport/tennis/player1/#", "sport/tennis", false},
	{"§4.7.1.2 sport/# matches the parent sport", "sport/#", "sport", true},
	{"sport/# matches sport/", "sport/#", "sport/", true},
	{"sport/# does not match sports", "sport/#", "sports", false},
	{"# matches everything", "#", "sport/tennis/player1", true},
	{"# matches a single level", "#", "sport", true},
	{"# matches a leading empty level", "#", "/finance", true},
	{"/# matches /finance", "/#", "/finance", true},
	{"/# does not match finance", "/#", "finance", false},
	// §4.7.1.3 single-level wildcard.
	{"[MQTT-4.7.1-2] sport/tennis/+ matches player1", "sport/tennis/+", "sport/tennis/player1", true},
	{"[MQTT-4.7.1-2] sport/tennis/+ matches player2", "sport/tennis/+", "sport/tennis/player2", true},
	{"[MQTT-4.7.1-2] sport/tennis/+ does not match player1/ranking", "sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"§4.7.1.3 sport/+ does not match sport", "sport/+", "sport", false},
	{"§4.7.1.3 sport/+ matches sport/", "sport/+", "sport/", true},
	{"§4.7.1.3 +/+ matches /finance", "+/+", "/finance", true},
	{"§4.7.1.3 /+ matches /finance", "/+", "/finance", true},
	{"§4.7.1.3 + does not match /finance", "+", "/finance", false},
	{"+ matches one level", "+", "finance", true},
	{"+/tennis/# matches sport/tennis", "+/tennis/#", "sport/tennis", true},
	{"+/tennis/# matches sport/tennis/x/y", "+/tennis/#", "sport/tennis/x/y", true},
	{"+/tennis/# does not match sport/golf", "+/tennis/#", "sport/golf", false},
	{"+/+/+ matches //", "+/+/+", "//", true},
	{"+/# matches a", "+/#", "a", true},
	// §4.7.2 topics beginning with $.
	{"[MQTT-4.7.2-1] # does not match $SYS/x", "#", "$SYS/x", false},
	{"[MQTT-4.7.2-1] # does not match $SYS", "#", "$SYS", false},
	{"[MQTT-4.7.2-1] +/monitor/Clients does not match $SYS/monitor/Clients", "+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"[MQTT-4.7.2-1] +/x does not match $SYS/x", "+/x", "$SYS/x", false},
	{"[MQTT-4.7.2-1] + does not match $SYS", "+", "$SYS", false},
	{"[MQTT-4.7.2-1] +/# does not match $SYS/x", "+/#", "$SYS/x", false},
	{"§4.7.2 $SYS/# matches $SYS/x", "$SYS/#", "$SYS/x", true},
	{"§4.7.2 $SYS/# matches $SYS", "$SYS/#", "$SYS", true},
	{"§4.7.2 $SYS/monitor/+ matches $SYS/monitor/Clients", "$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$ later in the name is ordinary", "+/+", "a/$b", true},
	{"# matches a $ in a later level", "#", "a/$b", true},
	// Exact and near misses.
	{"literal equal", "a/b/c", "a/b/c", true},
	{"literal prefix", "a/b", "a/b/c", false},
	{"literal longer", "a/b/c", "a/b", false},
	{"trailing separator differs", "a/b", "a/b/", false},
	{"empty level differs", "a//b", "a/b", false},
	{"case sensitive", "Sport", "sport", false},
	{"no normalisation [MQTT-4.7.3-4]", "caf\u00e9", "cafe\u0301", false},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.filter, tt.topic); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
			}
			if got := refMatch(tt.filter, tt.topic); got != tt.want {
				t.Errorf("refMatch(%q, %q) = %v, want %v (bad test)", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

func TestMatchInvalidFiltersNeverMatchPastMisplacedHash(t *testing.T) {
	// The trie never reports entries stored below a '#'; Match agrees.
	for _, f := range []string{"#/a", "a/#/b", "#/"} {
		if Match(f, "a/a/b") || Match(f, "a") {
			t.Errorf("Match(%q, ...) matched", f)
		}
	}
}

func TestIsSys(t *testing.T) {
	for name, want := range map[string]bool{"$SYS/x": true, "$": true, "a/$SYS": false, "": false, "SYS": false} {
		if IsSys(name) != want {
			t.Errorf("IsSys(%q) = %v", name, !want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(1000, func() {
		if !Match("devices/+/telemetry/#", "devices/d-123/telemetry/temp") {
			t.Fatal("no match")
		}
		if Match("+/x", "$SYS/x") {
			t.Fatal("match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per call", allocs)
	}
}
