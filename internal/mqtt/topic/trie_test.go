package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// hit is one ordinary entry reported by Trie.Match.
type hit struct {
	filter string
	key    int
	value  int
}

// groupHit is one shared group reported by Trie.Match, with its members sorted by key.
type groupHit struct {
	group, filter string
	members       string
}

func memberString(ms []Member[int, int]) string {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Member[int, int]) int { return a.Key - b.Key })
	var sb strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&sb, "%d=%d,", m.Key, m.Value)
	}
	return sb.String()
}

// collect runs tr.Match(name) and returns what it reported, sorted. It fails t if a shared
// group is reported twice or with no members.
func collect(t testing.TB, tr *Trie[int, int], name string) ([]hit, []groupHit) {
	t.Helper()
	var hits []hit
	var groups []groupHit
	tr.Match(name, func(filter string, key, v int) {
		hits = append(hits, hit{filter, key, v})
	}, func(group, filter string, members []Member[int, int]) {
		if len(members) == 0 {
			t.Errorf("Match(%q): group %q on %q reported with no members", name, group, filter)
		}
		groups = append(groups, groupHit{group, filter, memberString(members)})
	})
	sortHits(hits, groups)
	for i := 1; i < len(groups); i++ {
		if groups[i].group == groups[i-1].group && groups[i].filter == groups[i-1].filter {
			t.Errorf("Match(%q): group %q on %q reported twice", name, groups[i].group, groups[i].filter)
		}
	}
	return hits, groups
}

func sortHits(hits []hit, groups []groupHit) {
	slices.SortFunc(hits, func(a, b hit) int {
		if c := strings.Compare(a.filter, b.filter); c != 0 {
			return c
		}
		return a.key - b.key
	})
	slices.SortFunc(groups, func(a, b groupHit) int {
		if c := strings.Compare(a.filter, b.filter); c != 0 {
			return c
		}
		return strings.Compare(a.group, b.group)
	})
}

// model is the obvious implementation of a trie: a map of (filter, key) to value, matched by
// scanning every entry with Match.
type model map[modelKey]int

type modelKey struct {
	filter string // as given to Add, possibly "$share/..."
	key    int
}

func (m model) match(name string) ([]hit, []groupHit) {
	var hits []hit
	shared := map[[2]string][]Member[int, int]{}
	for k, v := range m {
		group, f, isShared := ParseShared(k.filter)
		if !Match(f, name) {
			continue
		}
		if isShared {
			id := [2]string{group, f}
			shared[id] = append(shared[id], Member[int, int]{k.key, v})
		} else {
			hits = append(hits, hit{f, k.key, v})
		}
	}
	var groups []groupHit
	for id, ms := range shared {
		groups = append(groups, groupHit{id[0], id[1], memberString(ms)})
	}
	sortHits(hits, groups)
	return hits, groups
}

func assertSameMatch(t *testing.T, tr *Trie[int, int], m model, name string) {
	t.Helper()
	gotHits, gotGroups := collect(t, tr, name)
	wantHits, wantGroups := m.match(name)
	if !slices.Equal(gotHits, wantHits) {
		t.Fatalf("Match(%q) ordinary entries:\n got %v\nwant %v", name, gotHits, wantHits)
	}
	if !slices.Equal(gotGroups, wantGroups) {
		t.Fatalf("Match(%q) shared groups:\n got %v\nwant %v", name, gotGroups, wantGroups)
	}
}

// assertPristine fails t unless the trie holds nothing at all, so every node was freed.
func assertPristine(t *testing.T, tr *Trie[int, int]) {
	t.Helper()
	r := &tr.root
	if tr.Len() != 0 || !r.empty() || r.bigPeak != 0 {
		t.Fatalf("trie not empty after removing everything: len %d, root %+v", tr.Len(), r)
	}
}

func TestTrieAddReplaceRemove(t *testing.T) {
	tr := NewTrie[int, int]()
	if tr.Remove("a/b", 1) {
		t.Fatal("Remove on empty trie reported true")
	}
	if tr.Add("a/b", 1, 10) {
		t.Fatal("first Add reported replaced")
	}
	if !tr.Add("a/b", 1, 11) {
		t.Fatal("second Add of the same (filter, key) not reported as replaced")
	}
	if tr.Add("a/b", 2, 20) || tr.Add("a/+", 1, 30) || tr.Add("a/#", 1, 40) || tr.Add("a", 1, 50) {
		t.Fatal("Add of new entries reported replaced")
	}
	if got := tr.Len(); got != 5 {
		t.Fatalf("Len = %d, want 5", got)
	}
	if v, ok := tr.Get("a/b", 1); !ok || v != 11 {
		t.Fatalf("Get = %d, %v; want 11, true", v, ok)
	}
	if _, ok := tr.Get("a/b", 3); ok {
		t.Fatal("Get of a missing key succeeded")
	}
	if _, ok := tr.Get("a/b/c", 1); ok {
		t.Fatal("Get of a missing filter succeeded")
	}
	hits, _ := collect(t, tr, "a/b")
	want := []hit{{"a/#", 1, 40}, {"a/+", 1, 30}, {"a/b", 1, 11}, {"a/b", 2, 20}}
	if !slices.Equal(hits, want) {
		t.Fatalf("Match = %v, want %v", hits, want)
	}
	hits, _ = collect(t, tr, "a")
	if want := []hit{{"a", 1, 50}, {"a/#", 1, 40}}; !slices.Equal(hits, want) {
		t.Fatalf("Match(a) = %v, want %v", hits, want)
	}
	if tr.Remove("a/b", 3) || tr.Remove("a/c", 1) || tr.Remove("$share/g/a/b", 1) {
		t.Fatal("Remove of a missing entry reported true")
	}
	for _, f := range []string{"a/b", "a/+", "a/#", "a"} {
		if !tr.Remove(f, 1) {
			t.Fatalf("Remove(%q, 1) reported false", f)
		}
		if tr.Remove(f, 1) {
			t.Fatalf("second Remove(%q, 1) reported true", f)
		}
	}
	if !tr.Remove("a/b", 2) {
		t.Fatal("Remove(a/b, 2) reported false")
	}
	assertPristine(t, tr)
}

func TestTrieZeroValue(t *testing.T) {
	var tr Trie[string, struct{}]
	tr.Add("x/+", "c1", struct{}{})
	n := 0
	tr.Match("x/y", func(string, string, struct{}) { n++ }, nil)
	tr.Match("x/y", nil, nil)
	if n != 1 {
		t.Fatalf("got %d matches, want 1", n)
	}
}

func TestTrieSharedGroups(t *testing.T) {
	tr := NewTrie[int, int]()
	tr.Add("$share/g1/sport/+", 1, 1)
	tr.Add("$share/g1/sport/+", 2, 2)
	tr.Add("$share/g2/sport/+", 3, 3)
	tr.Add("$share/g1/sport/tennis", 4, 4) // same group, other filter: a separate pick
	tr.Add("sport/+", 1, 100)              // an ordinary subscription by a group member
	if !tr.Add("$share/g1/sport/+", 2, 22) {
		t.Fatal("re-adding a member was not a replace")
	}
	if v, ok := tr.Get("$share/g1/sport/+", 2); !ok || v != 22 {
		t.Fatalf("Get = %d, %v", v, ok)
	}
	if _, ok := tr.Get("$share/g3/sport/+", 2); ok {
		t.Fatal("Get in a missing group succeeded")
	}
	if got := tr.Len(); got != 5 {
		t.Fatalf("Len = %d, want 5", got)
	}
	hits, groups := collect(t, tr, "sport/tennis")
	if want := []hit{{"sport/+", 1, 100}}; !slices.Equal(hits, want) {
		t.Fatalf("ordinary = %v, want %v", hits, want)
	}
	wantGroups := []groupHit{
		{"g1", "sport/+", "1=1,2=22,"},
		{"g2", "sport/+", "3=3,"},
		{"g1", "sport/tennis", "4=4,"},
	}
	if !slices.Equal(groups, wantGroups) {
		t.Fatalf("groups = %v, want %v", groups, wantGroups)
	}
	_, groups = collect(t, tr, "sport/golf")
	if len(groups) != 2 {
		t.Fatalf("groups for sport/golf = %v", groups)
	}
	// Removing the last member of g2 removes the group.
	if !tr.Remove("$share/g2/sport/+", 3) {
		t.Fatal("Remove from g2 failed")
	}
	_, groups = collect(t, tr, "sport/golf")
	if want := []groupHit{{"g1", "sport/+", "1=1,2=22,"}}; !slices.Equal(groups, want) {
		t.Fatalf("groups = %v, want %v", groups, want)
	}
	if tr.Remove("$share/g1/sport/+", 3) {
		t.Fatal("Remove of a non-member reported true")
	}
	for _, e := range []struct {
		f string
		k int
	}{{"$share/g1/sport/+", 1}, {"$share/g1/sport/+", 2}, {"$share/g1/sport/tennis", 4}, {"sport/+", 1}} {
		if !tr.Remove(e.f, e.k) {
			t.Fatalf("Remove(%q, %d) failed", e.f, e.k)
		}
	}
	assertPristine(t, tr)
}

func TestTrieMatchesSpecCases(t *testing.T) {
	for _, tt := range matchCases {
		tr := NewTrie[int, int]()
		tr.Add(tt.filter, 1, 1)
		tr.Add("$share/g/"+tt.filter, 2, 2)
		hits, groups := collect(t, tr, tt.topic)
		if got := len(hits) == 1; got != tt.want || len(hits) > 1 {
			t.Errorf("%s: trie reported %v, want match %v", tt.name, hits, tt.want)
		}
		if got := len(groups) == 1; got != tt.want || len(groups) > 1 {
			t.Errorf("%s: trie reported shared %v, want match %v", tt.name, groups, tt.want)
		}
	}
}

// levelAlphabet is the small alphabet of the randomized tests: few enough levels that random
// filters and names often meet.
var filterLevels = []string{"a", "b", "c", "", "$x", "+", "#"}

func randomFilter(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	levels := make([]string, 0, n)
	for i := 0; i < n; i++ {
		l := filterLevels[r.IntN(len(filterLevels))]
		levels = append(levels, l)
		if l == "#" {
			break
		}
	}
	return strings.Join(levels, "/")
}

func randomName(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	levels := make([]string, n)
	for i := range levels {
		levels[i] = filterLevels[r.IntN(len(filterLevels)-2)] // no wildcards
	}
	return strings.Join(levels, "/")
}

// TestTrieRandomized checks, on random sequences of Add and Remove over random filters, that
// Trie.Match reports exactly the entries whose filter satisfies Match, and that removing
// everything frees every node.
func TestTrieRandomized(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	for round := 0; round < rounds; round++ {
		r := rand.New(rand.NewPCG(uint64(round), 0x5eed))
		tr := NewTrie[int, int]()
		m := model{}
		ops := 1 + r.IntN(300)
		for op := 0; op < ops; op++ {
			f := randomFilter(r)
			if ValidateFilter(f, Limits{}) != nil {
				continue
			}
			switch r.IntN(4) {
			case 0:
				f = "$share/" + []string{"g", "h"}[r.IntN(2)] + "/" + f
			case 1: // remove a random existing entry, to exercise pruning
				for k := range m {
					if !tr.Remove(k.filter, k.key) {
						t.Fatalf("Remove(%q, %d) of a present entry failed", k.filter, k.key)
					}
					delete(m, k)
					break
				}
				continue
			}
			k := modelKey{f, r.IntN(5)}
			v := r.IntN(1000)
			_, had := m[k]
			if replaced := tr.Add(f, k.key, v); replaced != had {
				t.Fatalf("Add(%q, %d) replaced = %v, want %v", f, k.key, replaced, had)
			}
			m[k] = v
		}
		if tr.Len() != len(m) {
			t.Fatalf("Len = %d, want %d", tr.Len(), len(m))
		}
		for i := 0; i < 100; i++ {
			name := randomName(r)
			if ValidateName(name, Limits{}) != nil {
				continue
			}
			assertSameMatch(t, tr, m, name)
		}
		for k := range m {
			if !tr.Remove(k.filter, k.key) {
				t.Fatalf("Remove(%q, %d) failed", k.filter, k.key)
			}
		}
		assertPristine(t, tr)
	}
}

// TestTrieLargeFanout drives the containers past their small forms: many literal children
// (slice to map, map shrink and back), many members on one filter (key index) and many
// shared groups on one filter (group index), then removes everything.
func TestTrieLargeFanout(t *testing.T) {
	const n = 1000
	tr := NewTrie[int, int]()
	m := model{}
	add := func(f string, k, v int) {
		tr.Add(f, k, v)
		m[modelKey{f, k}] = v
	}
	for i := 0; i < n; i++ {
		add(fmt.Sprintf("dev/%d/cmd", i), i, i)
		add("all/+", i, i)
		add(fmt.Sprintf("$share/g%d/jobs/#", i%300), i, i)
		add("$share/one/jobs", i, i)
	}
	check := func() {
		t.Helper()
		for _, name := range []string{"dev/7/cmd", "dev/999/cmd", "dev/x/cmd", "all/x", "jobs", "jobs/a/b"} {
			assertSameMatch(t, tr, m, name)
		}
		if tr.Len() != len(m) {
			t.Fatalf("Len = %d, want %d", tr.Len(), len(m))
		}
	}
	check()
	// Remove most of everything, checking on the way down through each container's
	// shrink thresholds.
	for i := n - 1; i >= 3; i-- {
		for _, f := range []string{fmt.Sprintf("dev/%d/cmd", i), "all/+", fmt.Sprintf("$share/g%d/jobs/#", i%300), "$share/one/jobs"} {
			if !tr.Remove(f, i) {
				t.Fatalf("Remove(%q, %d) failed", f, i)
			}
			delete(m, modelKey{f, i})
		}
		if i%97 == 0 || i < 12 {
			check()
		}
	}
	dev := tr.find("dev")
	if dev.big != nil || len(dev.small) != 3 {
		t.Fatalf("dev node kept a map (%d) or wrong children (%d) after shrinking", len(dev.big), len(dev.small))
	}
	all := tr.find("all/+")
	if all.subs.index != nil || cap(all.subs.members) > 64 {
		t.Fatalf("member set did not shrink: index %v, cap %d", all.subs.index != nil, cap(all.subs.members))
	}
	for k := range m {
		tr.Remove(k.filter, k.key)
	}
	assertPristine(t, tr)
}

// TestTrieDollarTopics checks [MQTT-4.7.2-1] in the trie: leading wildcards never match a
// '$' name, while filters that spell out the '$' level do.
func TestTrieDollarTopics(t *testing.T) {
	tr := NewTrie[int, int]()
	for i, f := range []string{"#", "+/x", "+", "+/#", "$SYS/#", "$SYS/+", "$SYS", "$share/g/#", "$share/g/$SYS/#"} {
		tr.Add(f, i, 0)
	}
	hits, groups := collect(t, tr, "$SYS/x")
	if want := []hit{{"$SYS/#", 4, 0}, {"$SYS/+", 5, 0}}; !slices.Equal(hits, want) {
		t.Fatalf("$SYS/x: %v, want %v", hits, want)
	}
	if len(groups) != 1 || groups[0].filter != "$SYS/#" {
		t.Fatalf("$SYS/x groups: %v", groups)
	}
	hits, _ = collect(t, tr, "$SYS")
	if want := []hit{{"$SYS", 6, 0}, {"$SYS/#", 4, 0}}; !slices.Equal(hits, want) {
		t.Fatalf("$SYS: %v, want %v", hits, want)
	}
	hits, _ = collect(t, tr, "a/x")
	if want := []hit{{"#", 0, 0}, {"+/#", 3, 0}, {"+/x", 1, 0}}; !slices.Equal(hits, want) {
		t.Fatalf("a/x: %v, want %v", hits, want)
	}
}

func TestTrieInvalidFiltersDoNotPanic(t *testing.T) {
	tr := NewTrie[int, int]()
	bad := []string{"", "#/a", "a/#/b", "a+/b", "$share/g", "$share/", "$share//a", "//", "\x00", "$share/g/"}
	for i, f := range bad {
		tr.Add(f, i, i)
	}
	for _, name := range []string{"", "a", "a/b", "#", "+", "/", "$share/g"} {
		tr.Match(name, func(f string, _, _ int) {
			if !Match(f, name) {
				t.Errorf("trie reported %q for %q but Match disagrees", f, name)
			}
		}, nil)
	}
	for i, f := range bad {
		if !tr.Remove(f, i) {
			t.Errorf("Remove(%q) failed", f)
		}
	}
	assertPristine(t, tr)
}

func TestTrieKeepsOwnCopyOfFilter(t *testing.T) {
	buf := []byte("a/b/c")
	tr := NewTrie[int, int]()
	tr.Add(string(buf[:3]), 1, 1) // "a/b", converted into a fresh string
	copy(buf, "x/y/z")
	hits, _ := collect(t, tr, "a/b")
	if want := []hit{{"a/b", 1, 1}}; !slices.Equal(hits, want) {
		t.Fatalf("got %v", hits)
	}
}

// TestTrieConcurrent runs readers while a writer adds and removes; run it with -race. A
// permanent subscription must be seen by every read.
func TestTrieConcurrent(t *testing.T) {
	const readers, reads = 4, 3000
	tr := NewTrie[int, int]()
	tr.Add("fleet/+/status", -1, 0)
	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < reads; i++ {
				seen := false
				tr.Match("fleet/d7/status", func(f string, k, _ int) {
					if k == -1 {
						seen = true
					}
				}, func(_, _ string, ms []Member[int, int]) {
					_ = ms[0].Key
				})
				if !seen {
					t.Error("permanent subscription not matched")
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	filters := []string{"fleet/+/status", "fleet/d7/#", "fleet/d7/status", "$share/g/fleet/#", "#", "+/+/+"}
	writes := 0
	for running := true; running; writes++ {
		select {
		case <-done:
			running = false
		default:
		}
		f := filters[rng.IntN(len(filters))]
		k := rng.IntN(50)
		if rng.IntN(2) == 0 {
			tr.Add(f, k, writes)
		} else {
			tr.Remove(f, k)
		}
		_ = tr.Len()
	}
	if !tr.Remove("fleet/+/status", -1) {
		t.Fatal("permanent subscription lost")
	}
	for _, f := range filters {
		for k := 0; k < 50; k++ {
			tr.Remove(f, k)
		}
	}
	assertPristine(t, tr)
	t.Logf("%d writes during %d reads", writes, readers*reads)
}

func TestTrieMatchDoesNotAllocate(t *testing.T) {
	tr := NewTrie[string, int]()
	for i := 0; i < 100; i++ {
		tr.Add(fmt.Sprintf("devices/d%d/commands", i), fmt.Sprint("c", i), i)
	}
	tr.Add("devices/+/commands", "monitor", 1)
	tr.Add("devices/#", "audit", 2)
	tr.Add("#", "everything", 3)
	tr.Add("$share/workers/devices/+/commands", "w1", 4)
	tr.Add("$share/workers/devices/+/commands", "w2", 5)
	count, shared, sum := 0, 0, 0
	fn := func(filter string, key string, v int) {
		count++
		sum += v + len(filter) + len(key)
	}
	fnShared := func(group, filter string, members []Member[string, int]) {
		shared++
		sum += members[shared%len(members)].Value
	}
	allocs := testing.AllocsPerRun(1000, func() {
		tr.Match("devices/d42/commands", fn, fnShared)
		// A closure created at the call site must not escape either.
		tr.Match("devices/d42/commands", func(string, string, int) { count++ }, nil)
		tr.Match("$SYS/x", nil, nil)
	})
	if allocs != 0 {
		t.Fatalf("Trie.Match allocates %v times per call", allocs)
	}
	if count == 0 || shared == 0 || sum == 0 {
		t.Fatal("callbacks not called")
	}
}
