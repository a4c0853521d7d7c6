package topic

import (
	"strings"
	"sync"
)

// Member is one subscriber of a filter: its key and the value stored with it.
type Member[K comparable, V any] struct {
	Key   K
	Value V
}

// Trie indexes subscriptions by topic filter. K identifies the subscriber (a client id, a
// session pointer); V is the value stored with it (subscription options, an ACL rule). A
// filter "$share/{group}/{filter}" puts the entry in shared group "group" on filter.
//
// The zero value is an empty trie ready to use. A Trie must not be copied after first use.
// See the package documentation for the concurrency contract of Match's callbacks.
type Trie[K comparable, V any] struct {
	mu   sync.RWMutex
	root node[K, V]
	n    int
}

// NewTrie returns an empty trie.
func NewTrie[K comparable, V any]() *Trie[K, V] {
	return &Trie[K, V]{}
}

// Tuning constants for the node and entry containers.
const (
	// maxSmallChildren is how many literal children a node keeps in a slice, scanned
	// linearly, before it moves them to a map; it moves them back at half that.
	maxSmallChildren = 8
	// maxUnindexed is how many entries a set keeps without a key index.
	maxUnindexed = 8
	// minRebuild is the smallest map worth rebuilding when it has shrunk to a quarter of
	// its peak (Go maps never give memory back on delete).
	minRebuild = 64
)

// node is one level of the trie. Its filter is the topic filter it stands for, "a/+/c"; the
// root's is "" and so is that of the root's child for an empty first level.
type node[K comparable, V any] struct {
	parent  *node[K, V]
	filter  string
	small   []*node[K, V]          // literal children, while there are few (big == nil)
	big     map[string]*node[K, V] // literal children by level, once there are many
	bigPeak int                    // largest len(big) since big was (re)built
	plus    *node[K, V]            // the '+' child
	hash    *node[K, V]            // the '#' child
	subs    set[K, V]              // ordinary subscriptions on filter
	groups  *groups[K, V]          // shared subscriptions on filter, nil when none
}

// groups are the shared groups on one filter.
type groups[K comparable, V any] struct {
	list  []*group[K, V]
	index map[string]int // position in list by name; only when list is long
}

// group is one shared group: a share name and its members.
type group[K comparable, V any] struct {
	name string
	set  set[K, V]
}

// set is a collection of members with unique keys. Order is not kept.
type set[K comparable, V any] struct {
	members []Member[K, V]
	index   map[K]int // position in members by key; only when members is long
}

// Add stores (key, v) under filter. A filter "$share/{group}/{f}" adds key as a member of
// shared group "group" on filter f. If key already has an entry for that filter (and group),
// its value is replaced and Add returns true.
//
// filter should have passed ValidateFilter. The trie keeps its own copy of filter (and of the
// share name), so the caller's string may live in a reused buffer; key and v are stored as
// given.
func (t *Trie[K, V]) Add(filter string, key K, v V) (replaced bool) {
	name, f, shared := ParseShared(filter)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.insert(f)
	if shared {
		replaced = n.group(name, true).set.put(key, v)
	} else {
		replaced = n.subs.put(key, v)
	}
	if !replaced {
		t.n++
	}
	return replaced
}

// Remove deletes key's entry under filter (and its shared group, for a "$share/..." filter)
// and reports whether there was one. Nodes left empty are freed.
func (t *Trie[K, V]) Remove(filter string, key K) (removed bool) {
	name, f, shared := ParseShared(filter)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.find(f)
	if n == nil {
		return false
	}
	if shared {
		g := n.group(name, false)
		if g == nil || !g.set.remove(key) {
			return false
		}
		if len(g.set.members) == 0 {
			n.dropGroup(name)
		}
	} else if !n.subs.remove(key) {
		return false
	}
	t.n--
	t.prune(n)
	return true
}

// Get returns the value stored for key under filter (a "$share/..." filter looks in that
// group).
func (t *Trie[K, V]) Get(filter string, key K) (v V, ok bool) {
	name, f, shared := ParseShared(filter)
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := t.find(f)
	if n == nil {
		return v, false
	}
	s := &n.subs
	if shared {
		g := n.group(name, false)
		if g == nil {
			return v, false
		}
		s = &g.set
	}
	if i := s.find(key); i >= 0 {
		return s.members[i].Value, true
	}
	return v, false
}

// Len returns the number of entries: ordinary subscriptions plus members of shared groups.
func (t *Trie[K, V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Match finds every entry whose filter matches the topic name. It calls fn for each ordinary
// entry, and fnShared once for each (shared group, filter) that matches, with all members of
// that group on that filter; either callback may be nil. Match does not allocate.
//
// The callbacks run under the trie's read lock: they must not call methods of this trie, and
// must neither keep nor modify members (copy the member you pick).
func (t *Trie[K, V]) Match(name string, fn func(filter string, key K, v V), fnShared func(group, filter string, members []Member[K, V])) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r := &t.root
	sys := IsSys(name)
	if r.hash != nil && !sys {
		r.hash.emit(fn, fnShared) // "#" [MQTT-4.7.2-1]
	}
	r.matchLevel(name, 0, sys, fn, fnShared)
}

// matchLevel matches the level of name that starts at byte i against n's children. noWild
// suppresses the '+' child (for the first level of a '$' name).
func (n *node[K, V]) matchLevel(name string, i int, noWild bool, fn func(string, K, V), fnShared func(string, string, []Member[K, V])) {
	end := levelEnd(name, i)
	level := name[i:end]
	if c := n.child(level); c != nil {
		c.matched(name, end, fn, fnShared)
	}
	if n.plus != nil && !noWild {
		n.plus.matched(name, end, fn, fnShared)
	}
}

// matched is called on a node whose filter matched name up to byte end (exclusive).
func (n *node[K, V]) matched(name string, end int, fn func(string, K, V), fnShared func(string, string, []Member[K, V])) {
	if n.hash != nil {
		// "a/#" matches "a" and everything below it.
		n.hash.emit(fn, fnShared)
	}
	if end == len(name) {
		n.emit(fn, fnShared)
		return
	}
	if n.small != nil || n.big != nil || n.plus != nil {
		n.matchLevel(name, end+1, false, fn, fnShared)
	}
}

// emit reports n's entries.
func (n *node[K, V]) emit(fn func(string, K, V), fnShared func(string, string, []Member[K, V])) {
	if fn != nil {
		for i := range n.subs.members {
			m := &n.subs.members[i]
			fn(n.filter, m.Key, m.Value)
		}
	}
	if fnShared != nil && n.groups != nil {
		for _, g := range n.groups.list {
			fnShared(g.name, n.filter, g.set.members)
		}
	}
}

// insert returns the node for filter, creating the missing nodes on the way.
func (t *Trie[K, V]) insert(filter string) *node[K, V] {
	n := &t.root
	owned := "" // filter, copied once if a node must be created
	for start := 0; ; {
		end := levelEnd(filter, start)
		level := filter[start:end]
		var c *node[K, V]
		switch level {
		case "+":
			c = n.plus
		case "#":
			c = n.hash
		default:
			c = n.child(level)
		}
		if c == nil {
			if owned == "" {
				owned = strings.Clone(filter)
			}
			c = &node[K, V]{parent: n, filter: owned[:end]}
			switch level {
			case "+":
				n.plus = c
			case "#":
				n.hash = c
			default:
				n.addChild(level, c)
			}
		}
		n = c
		if end == len(filter) {
			return n
		}
		start = end + 1
	}
}

// find returns the node for filter, or nil.
func (t *Trie[K, V]) find(filter string) *node[K, V] {
	n := &t.root
	for start := 0; n != nil; {
		end := levelEnd(filter, start)
		switch level := filter[start:end]; level {
		case "+":
			n = n.plus
		case "#":
			n = n.hash
		default:
			n = n.child(level)
		}
		if end == len(filter) {
			return n
		}
		start = end + 1
	}
	return nil
}

// prune frees n and its ancestors for as long as they hold nothing.
func (t *Trie[K, V]) prune(n *node[K, V]) {
	for n.parent != nil && n.empty() {
		p := n.parent
		p.removeChild(n)
		n.parent = nil
		n = p
	}
}

func (n *node[K, V]) empty() bool {
	return len(n.subs.members) == 0 && n.groups == nil &&
		n.small == nil && n.big == nil && n.plus == nil && n.hash == nil
}

// childOffset is where the level of a child starts in the child's filter.
func (n *node[K, V]) childOffset() int {
	if n.parent == nil {
		return 0
	}
	return len(n.filter) + 1
}

// child returns the literal child for level, or nil.
func (n *node[K, V]) child(level string) *node[K, V] {
	if n.big != nil {
		return n.big[level]
	}
	off := n.childOffset()
	for _, c := range n.small {
		if c.filter[off:] == level {
			return c
		}
	}
	return nil
}

func (n *node[K, V]) addChild(level string, c *node[K, V]) {
	if n.big != nil {
		n.big[level] = c
		n.bigPeak = max(n.bigPeak, len(n.big))
		return
	}
	if len(n.small) < maxSmallChildren {
		n.small = append(n.small, c)
		return
	}
	off := n.childOffset()
	n.big = make(map[string]*node[K, V], 2*maxSmallChildren)
	for _, s := range n.small {
		n.big[s.filter[off:]] = s
	}
	n.big[level] = c
	n.bigPeak = len(n.big)
	n.small = nil
}

func (n *node[K, V]) removeChild(c *node[K, V]) {
	switch c {
	case n.plus:
		n.plus = nil
		return
	case n.hash:
		n.hash = nil
		return
	}
	off := n.childOffset()
	if n.big == nil {
		for i, s := range n.small {
			if s == c {
				last := len(n.small) - 1
				n.small[i] = n.small[last]
				n.small[last] = nil
				n.small = n.small[:last]
				break
			}
		}
		if len(n.small) == 0 {
			n.small = nil
		}
		return
	}
	delete(n.big, c.filter[off:])
	switch l := len(n.big); {
	case l <= maxSmallChildren/2:
		n.small = make([]*node[K, V], 0, maxSmallChildren)
		for _, s := range n.big {
			n.small = append(n.small, s)
		}
		n.big, n.bigPeak = nil, 0
		if l == 0 {
			n.small = nil
		}
	case n.bigPeak >= minRebuild && 4*l <= n.bigPeak:
		m := make(map[string]*node[K, V], l)
		for k, s := range n.big {
			m[k] = s
		}
		n.big, n.bigPeak = m, l
	}
}

// group returns the shared group called name on n, creating it if create is set.
func (n *node[K, V]) group(name string, create bool) *group[K, V] {
	gs := n.groups
	if gs != nil {
		if gs.index != nil {
			if i, ok := gs.index[name]; ok {
				return gs.list[i]
			}
		} else {
			for _, g := range gs.list {
				if g.name == name {
					return g
				}
			}
		}
	}
	if !create {
		return nil
	}
	if gs == nil {
		gs = &groups[K, V]{}
		n.groups = gs
	}
	g := &group[K, V]{name: strings.Clone(name)}
	gs.list = append(gs.list, g)
	if gs.index != nil {
		gs.index[g.name] = len(gs.list) - 1
	} else if len(gs.list) > maxUnindexed {
		gs.index = make(map[string]int, len(gs.list))
		for i, g := range gs.list {
			gs.index[g.name] = i
		}
	}
	return g
}

// dropGroup removes the shared group called name from n.
func (n *node[K, V]) dropGroup(name string) {
	gs := n.groups
	i := -1
	if gs.index != nil {
		i = gs.index[name]
		delete(gs.index, name)
	} else {
		for j, g := range gs.list {
			if g.name == name {
				i = j
				break
			}
		}
	}
	last := len(gs.list) - 1
	if i != last {
		gs.list[i] = gs.list[last]
		if gs.index != nil {
			gs.index[gs.list[i].name] = i
		}
	}
	gs.list[last] = nil
	gs.list = gs.list[:last]
	switch {
	case last == 0:
		n.groups = nil
	case gs.index != nil && last <= maxUnindexed/2:
		gs.index = nil
	case cap(gs.list) > minRebuild && 4*last <= cap(gs.list):
		gs.list = append(make([]*group[K, V], 0, 2*last), gs.list...)
		if gs.index != nil {
			gs.index = make(map[string]int, last)
			for i, g := range gs.list {
				gs.index[g.name] = i
			}
		}
	}
}

// find returns the position of key in s.members, or -1.
func (s *set[K, V]) find(key K) int {
	if s.index != nil {
		if i, ok := s.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range s.members {
		if s.members[i].Key == key {
			return i
		}
	}
	return -1
}

// put stores (key, v), reporting whether key was already present.
func (s *set[K, V]) put(key K, v V) (replaced bool) {
	if i := s.find(key); i >= 0 {
		s.members[i].Value = v
		return true
	}
	s.members = append(s.members, Member[K, V]{Key: key, Value: v})
	if s.index != nil {
		s.index[key] = len(s.members) - 1
	} else if len(s.members) > maxUnindexed {
		s.reindex()
	}
	return false
}

// remove deletes key, reporting whether it was present.
func (s *set[K, V]) remove(key K) bool {
	i := s.find(key)
	if i < 0 {
		return false
	}
	last := len(s.members) - 1
	if i != last {
		s.members[i] = s.members[last]
		if s.index != nil {
			s.index[s.members[i].Key] = i
		}
	}
	s.members[last] = Member[K, V]{} // let the key and value be collected
	s.members = s.members[:last]
	if s.index != nil {
		delete(s.index, key)
	}
	switch {
	case last == 0:
		s.members, s.index = nil, nil
	case s.index != nil && last <= maxUnindexed/2:
		s.index = nil
	case cap(s.members) > minRebuild && 4*last <= cap(s.members):
		// Give back the array, and the index map that grew with it.
		s.members = append(make([]Member[K, V], 0, 2*last), s.members...)
		if s.index != nil {
			s.reindex()
		}
	}
	return true
}

func (s *set[K, V]) reindex() {
	s.index = make(map[K]int, len(s.members))
	for i := range s.members {
		s.index[s.members[i].Key] = i
	}
}
