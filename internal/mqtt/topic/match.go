package topic

import "strings"

// Match reports whether the topic name matches the topic filter. Both are taken as they are
// (a shared subscription's filter must first be split with ParseShared) and are expected to
// be valid; for other input Match returns some answer without panicking. It does not
// allocate.
func Match(filter, name string) bool {
	if IsSys(name) && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	fi, ni := 0, 0
	for {
		fe := levelEnd(filter, fi)
		fl := filter[fi:fe]
		if fl == "#" {
			// Matches the parent level and everything below it, but only as the last level.
			return fe == len(filter)
		}
		ne := levelEnd(name, ni)
		if fl != "+" && fl != name[ni:ne] {
			return false
		}
		switch {
		case ne == len(name):
			// The name is used up: "a/#" still matches "a".
			return fe == len(filter) || filter[fe:] == "/#"
		case fe == len(filter):
			return false
		}
		fi, ni = fe+1, ne+1
	}
}

// IsSys reports whether name starts with '$', the mark of topics reserved for the server
// (such as "$SYS/...") that leading wildcards do not match [MQTT-4.7.2-1].
func IsSys(name string) bool {
	return name != "" && name[0] == '$'
}

// levelEnd returns the index of the '/' that ends the level starting at i, or len(s).
func levelEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '/'); j >= 0 {
		return i + j
	}
	return len(s)
}
