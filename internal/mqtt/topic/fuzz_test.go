package topic

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/; f.Add adds only a few basics here.

// refValidName is ValidateName written from the rules, without the single-pass tricks.
func refValidName(name string, lim Limits) bool {
	maxLen := MaxLength
	if lim.MaxLength > 0 && lim.MaxLength < maxLen {
		maxLen = lim.MaxLength
	}
	return name != "" && len(name) <= maxLen &&
		!strings.ContainsAny(name, "+#\x00") && utf8.ValidString(name) &&
		(lim.MaxLevels <= 0 || len(strings.Split(name, "/")) <= lim.MaxLevels)
}

// refValidFilter is ValidateFilter written from the rules by splitting on '/'.
func refValidFilter(filter string, lim Limits) bool {
	if filter == "" || len(filter) > MaxLength || strings.ContainsRune(filter, 0) || !utf8.ValidString(filter) {
		return false
	}
	f := filter
	if strings.HasPrefix(filter, "$share/") {
		parts := strings.SplitN(filter, "/", 3)
		if len(parts) < 3 || parts[1] == "" || strings.ContainsAny(parts[1], "+#") || parts[2] == "" {
			return false
		}
		f = parts[2]
	}
	if lim.MaxLength > 0 && len(f) > lim.MaxLength {
		return false
	}
	levels := strings.Split(f, "/")
	if lim.MaxLevels > 0 && len(levels) > lim.MaxLevels {
		return false
	}
	for i, l := range levels {
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
	}
	return true
}

// checkKind fails t unless err is nil or an *Error with a known Kind.
func checkKind(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Kind < ErrEmpty || e.Kind > ErrSharedSubscription || !errors.Is(err, e.Kind) {
		t.Fatalf("error %v (%T) is not an *Error with a known Kind", err, err)
	}
	if e.Offset < 0 {
		t.Fatalf("negative offset in %v", err)
	}
}

// fuzzLimits are the limits each fuzz input is also checked with.
func fuzzLimits() []Limits { return []Limits{{}, {MaxLevels: 4, MaxLength: 24}} }

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a/b", "", "a/+", "$SYS/x", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, lim := range fuzzLimits() {
			err := ValidateName(name, lim)
			checkKind(t, err)
			if want := refValidName(name, lim); (err == nil) != want {
				t.Fatalf("ValidateName(%q, %+v) = %v, reference says valid=%v", name, lim, err, want)
			}
		}
		if ValidateName(name, Limits{}) != nil {
			return
		}
		if name == "" || strings.ContainsAny(name, "+#\x00") || !utf8.ValidString(name) || len(name) > MaxLength {
			t.Fatalf("ValidateName accepted %q", name)
		}
		// A valid name is a valid filter matching exactly itself (unless it reads as shared).
		if !strings.HasPrefix(name, SharePrefix) {
			if err := ValidateFilter(name, Limits{}); err != nil {
				t.Fatalf("valid name %q is not a valid filter: %v", name, err)
			}
		}
		if !Match(name, name) {
			t.Fatalf("%q does not match itself", name)
		}
		if Match("#", name) == IsSys(name) {
			t.Fatalf("Match(#, %q) = %v with IsSys %v", name, !IsSys(name), IsSys(name))
		}
	})
}

func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"a/+/#", "#", "$share/g/a", "$share/g", "a/#/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		for _, lim := range fuzzLimits() {
			err := ValidateFilter(filter, lim)
			checkKind(t, err)
			if want := refValidFilter(filter, lim); (err == nil) != want {
				t.Fatalf("ValidateFilter(%q, %+v) = %v, reference says valid=%v", filter, lim, err, want)
			}
		}
		group, real, shared := ParseShared(filter)
		if ValidateFilter(filter, Limits{}) == nil {
			if shared && (group == "" || strings.ContainsAny(group, "+#/") || real == "") {
				t.Fatalf("ParseShared(%q) = %q, %q on a valid filter", filter, group, real)
			}
			if err := ValidateFilter(real, Limits{}); err != nil && !strings.HasPrefix(real, SharePrefix) {
				t.Fatalf("filter part %q of valid %q is invalid: %v", real, filter, err)
			}
		}
		// Any string can be stored and removed without a trace.
		tr := NewTrie[int, int]()
		tr.Add(filter, 1, 1)
		if v, ok := tr.Get(filter, 1); !ok || v != 1 {
			t.Fatalf("Get(%q) after Add = %d, %v", filter, v, ok)
		}
		if !tr.Remove(filter, 1) {
			t.Fatalf("Remove(%q) after Add failed", filter)
		}
		assertPristine(t, tr)
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("sport/#", "sport")
	f.Add("+/+", "/finance")
	f.Add("#", "$SYS/x")
	f.Add("$share/g/a/+", "a/b")
	f.Fuzz(func(t *testing.T, filter, name string) {
		got := Match(filter, name) // must not panic on anything
		group, real, shared := ParseShared(filter)

		// The trie agrees with Match on every input, valid or not.
		tr := NewTrie[int, int]()
		tr.Add(filter, 1, 1)
		hits, groups := 0, 0
		tr.Match(name, func(f string, k, v int) {
			hits++
			if f != real || k != 1 || v != 1 {
				t.Fatalf("trie reported (%q, %d, %d)", f, k, v)
			}
		}, func(g, f string, ms []Member[int, int]) {
			groups++
			if g != group || f != real || len(ms) != 1 || ms[0] != (Member[int, int]{1, 1}) {
				t.Fatalf("trie reported group (%q, %q, %v)", g, f, ms)
			}
		})
		want := Match(real, name)
		if shared {
			if hits != 0 || (groups == 1) != want || groups > 1 {
				t.Fatalf("trie with %q on %q: %d hits, %d groups; Match(%q) = %v", filter, name, hits, groups, real, want)
			}
		} else if groups != 0 || (hits == 1) != got || hits > 1 {
			t.Fatalf("trie with %q on %q: %d hits, %d groups; Match = %v", filter, name, hits, groups, got)
		}

		if ValidateFilter(filter, Limits{}) != nil || ValidateName(name, Limits{}) != nil {
			return
		}
		if ref := refMatch(real, name); want != ref {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", real, name, want, ref)
		}
		if !shared && got != want {
			t.Fatalf("Match(%q, %q) inconsistent", filter, name)
		}
	})
}
