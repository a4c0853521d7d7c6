package authz

// The index of a rule set. Rules are filed in buckets: one per user name and one per client
// id for rules whose who names one (directly or as a term of an "and"), and a global bucket
// for the rest. A client sees at most three buckets. A bucket with few topics is a flat
// list; a larger one is a set of topic-level tries, so a decision follows the levels of the
// topic and collects only the rules filed along that path, keeping the one with the lowest
// index that also matches who, action, QoS and retain.
//
// Subscribe decisions treat the requested filter as the set of topics it can match:
//
//   - an allow rule matches when its filter covers that whole set (every topic the
//     request can match, the rule filter matches);
//   - a deny rule matches when its filter shares any topic with that set.
//
// So "#" is not allowed by an allow rule "a/#", and "+/x" is refused by a deny rule
// "secret/x" even when a later rule allows "#": nobody receives a message a deny rule names.
// For a publish the topic is a name, and both reduce to MQTT matching.

// flatMax is the most (rule, topic) pairs a bucket keeps as a flat list.
const flatMax = 8

type bucket struct {
	flat []pair // small buckets: every (rule, topic) pair in rule order
	t    *tries // large buckets
	// classes are the distinct conditional whos of a large bucket (the first 63 of them).
	// A rule of class k has bit k; every other rule has anyClass. Each trie node keeps the
	// union of the bits below it (per action), and a client's mask says which classes it is in, so a
	// search skips subtrees whose rules cannot apply to the client without looking at them.
	classes []*whoMatcher
}

// anyClass marks rules whose who needs no class: none, proven by the bucket, or beyond the
// first 63 classes. Every client's mask has it.
const anyClass uint64 = 1 << 63

// pair is one topic of one rule; t is nil for a rule without topics.
type pair struct {
	r *crule
	t *ctopic
}

type tries struct {
	allow, deny *node               // ordinary filters
	shared      map[string]*sharedT // "$share/{group}/..." filters by group
	eq          map[string][]*crule // "eq F", by F
	eqShared    map[string]map[string][]*crule
	any         []*crule // rules without topics
}

type sharedT struct{ allow, deny *node }

type node struct {
	key   string           // the literal level leading here
	kids  []*node          // literal children in insertion order
	lit   map[string]*node // literal children by level, once there are more than litScan
	plus  *node
	tmpl  []tmplEdge
	exact []*crule  // filters that end at this node
	hash  []*crule  // filters that end with "#" below this node
	min   int       // lowest rule index in this subtree, for pruning
	bits  [2]uint64 // union of the who classes of the rules in this subtree, by action
	// sure is the lowest-index subscribe rule in this subtree that applies to every client
	// at every QoS: a request that reaches the whole subtree takes it without looking at
	// the rules after it.
	sure *crule
}

// litScan is the most literal children a node finds by scanning rather than by map.
const litScan = 8

func (n *node) child(lv string) *node {
	if n.lit != nil {
		return n.lit[lv]
	}
	for _, c := range n.kids {
		if c.key == lv {
			return c
		}
	}
	return nil
}

type tmplEdge struct {
	id int
	n  *node
}

func newNode() *node { return &node{min: int(^uint(0) >> 1)} }

// appendRule adds r to a list kept in rule order; a rule listed twice (two topics of one
// rule ending at the same node) is kept once.
func appendRule(list []*crule, r *crule) []*crule {
	if n := len(list); n > 0 && list[n-1] == r {
		return list
	}
	return append(list, r)
}

func buildBucket(rules []*crule, flatLimit int) *bucket {
	n := 0
	for _, r := range rules {
		n += max(1, len(r.topics))
	}
	if n <= flatLimit {
		b := &bucket{flat: make([]pair, 0, n)}
		for _, r := range rules {
			if len(r.topics) == 0 {
				b.flat = append(b.flat, pair{r: r})
			}
			for i := range r.topics {
				b.flat = append(b.flat, pair{r: r, t: &r.topics[i]})
			}
		}
		return b
	}
	t := &tries{allow: newNode(), deny: newNode()}
	b := &bucket{t: t}
	ids := map[string]int{}
	for _, r := range rules {
		r.bit = anyClass
		if r.who == nil {
			continue
		}
		id, ok := ids[r.whoKey]
		if !ok && len(b.classes) < 63 {
			id, ok = len(b.classes), true
			ids[r.whoKey] = id
			b.classes = append(b.classes, r.who)
		}
		if ok {
			r.bit = 1 << id
		}
	}
	for _, r := range rules {
		if len(r.topics) == 0 {
			t.any = append(t.any, r)
			continue
		}
		for i := range r.topics {
			t.add(r, &r.topics[i])
		}
	}
	t.deny.finish()
	for _, st := range t.shared {
		st.deny.finish()
	}
	return b
}

func (t *tries) add(r *crule, ct *ctopic) {
	if ct.eq {
		if ct.group == "" {
			if t.eq == nil {
				t.eq = map[string][]*crule{}
			}
			t.eq[ct.filter] = appendRule(t.eq[ct.filter], r)
			return
		}
		if t.eqShared == nil {
			t.eqShared = map[string]map[string][]*crule{}
		}
		m := t.eqShared[ct.group]
		if m == nil {
			m = map[string][]*crule{}
			t.eqShared[ct.group] = m
		}
		m[ct.filter] = appendRule(m[ct.filter], r)
		return
	}
	allow, deny := t.allow, t.deny
	if ct.group != "" {
		if t.shared == nil {
			t.shared = map[string]*sharedT{}
		}
		s := t.shared[ct.group]
		if s == nil {
			s = &sharedT{allow: newNode(), deny: newNode()}
			t.shared[ct.group] = s
		}
		allow, deny = s.allow, s.deny
	}
	root := allow
	if r.perm == PermDeny {
		root = deny
	}
	root.insert(r, ct.levels)
}

func (n *node) insert(r *crule, levels []level) {
	for _, l := range levels {
		n.mark(r)
		switch l.kind {
		case lvHash:
			n.hash = appendRule(n.hash, r)
			return
		case lvPlus:
			if n.plus == nil {
				n.plus = newNode()
			}
			n = n.plus
		case lvTmpl:
			var next *node
			for _, e := range n.tmpl {
				if e.id == l.tmpl {
					next = e.n
				}
			}
			if next == nil {
				next = newNode()
				n.tmpl = append(n.tmpl, tmplEdge{l.tmpl, next})
			}
			n = next
		default:
			next := n.child(l.text)
			if next == nil {
				next = newNode()
				next.key = l.text
				n.kids = append(n.kids, next)
				if n.lit != nil {
					n.lit[l.text] = next
				} else if len(n.kids) > litScan {
					n.lit = make(map[string]*node, len(n.kids))
					for _, c := range n.kids {
						n.lit[c.key] = c
					}
				}
			}
			n = next
		}
	}
	n.mark(r)
	n.exact = appendRule(n.exact, r)
}

// mark records that r is filed in n's subtree.
func (n *node) mark(r *crule) {
	n.min = min(n.min, r.index)
	if r.actions&ActPublish != 0 {
		n.bits[0] |= r.bit
	}
	if r.actions&ActSubscribe != 0 {
		n.bits[1] |= r.bit
	}
}

// finish computes sure for every node of the subtree, once all rules are in.
func (n *node) finish() *crule {
	best := func(a, b *crule) *crule {
		if a == nil || b != nil && b.index < a.index {
			return b
		}
		return a
	}
	for _, list := range [][]*crule{n.exact, n.hash} {
		for _, r := range list {
			if r.actions&ActSubscribe != 0 && r.qos == 0 && r.who == nil {
				n.sure = best(n.sure, r)
				break
			}
		}
	}
	for _, c := range n.kids {
		n.sure = best(n.sure, c.finish())
	}
	for _, e := range n.tmpl {
		// Whether a placeholder level exists depends on the client.
		e.n.finish()
	}
	if n.plus != nil {
		n.sure = best(n.sure, n.plus.finish())
	}
	return n.sure
}

// search is one decision in progress.
type search struct {
	c     *ClientRules
	kind  Actions
	qos   byte
	ret   bool
	group string
	topic string
	mask  uint64 // the client's who classes in the bucket being searched
	act   int    // 0 for publish, 1 for subscribe: the index into node.bits
	best  *crule
}

// skip reports whether nothing in n's subtree can beat the best match so far: every rule
// there comes later, is for other actions, or is for clients of other who classes.
func (s *search) skip(n *node) bool { return n.bits[s.act]&s.mask == 0 || !s.improves(n.min) }

// improves reports whether a rule with index i would beat the best match so far.
func (s *search) improves(i int) bool { return s.best == nil || i < s.best.index }

// fits reports whether r's who, action, QoS and retain conditions hold.
func (s *search) fits(r *crule) bool {
	if r.actions&s.kind == 0 {
		return false
	}
	if r.qos != 0 && (s.qos > 2 || r.qos&(1<<s.qos) == 0) {
		return false
	}
	if r.retain >= 0 && s.kind == ActPublish && (r.retain == 1) != s.ret {
		return false
	}
	return r.who == nil || r.who.match(&s.c.facts)
}

// offer considers a list of rules in rule order.
func (s *search) offer(list []*crule) {
	for _, r := range list {
		if !s.improves(r.index) {
			return
		}
		if s.fits(r) {
			s.best = r
			return
		}
	}
}

// tmplIs reports whether placeholder level id expands, for this client, to lv.
func (s *search) tmplIs(id int, lv string) bool {
	v := &s.c.tmpl[id]
	return v.ok && v.val == lv
}

func (s *search) tmplOK(id int) bool { return s.c.tmpl[id].ok }

// levelAt returns the level of s.topic starting at pos and the start of the next one, or
// -1 when it is the last.
func (s *search) levelAt(pos int) (string, int) {
	t := s.topic
	for i := pos; i < len(t); i++ {
		if t[i] == '/' {
			return t[pos:i], i + 1
		}
	}
	return t[pos:], -1
}

func (b *bucket) search(s *search) {
	if b.t == nil {
		for i := range b.flat {
			p := &b.flat[i]
			if !s.improves(p.r.index) {
				return
			}
			if (p.t == nil || s.topicMatches(p.r, p.t)) && s.fits(p.r) {
				s.best = p.r
				return
			}
		}
		return
	}
	t := b.t
	s.offer(t.any)
	if t.eq != nil {
		s.offer(t.eq[s.topic])
	}
	t.allow.cover(s, 0, 0)
	t.deny.overlap(s, 0, 0)
	if s.group != "" {
		if m := t.eqShared[s.group]; m != nil {
			s.offer(m[s.topic])
		}
		if st := t.shared[s.group]; st != nil {
			st.allow.cover(s, 0, 0)
			st.deny.overlap(s, 0, 0)
		}
	}
}

// cover collects the rules of an allow trie whose filters cover the rest of the topic from
// pos (-1: the topic is used up), depth levels below the root.
func (n *node) cover(s *search, pos, depth int) {
	if s.skip(n) {
		return
	}
	if pos < 0 {
		s.offer(n.hash) // "a/#" covers "a"
		s.offer(n.exact)
		return
	}
	lv, next := s.levelAt(pos)
	sys := depth == 0 && isDollar(lv)
	if !sys {
		s.offer(n.hash)
	}
	switch lv {
	case "#":
		// Only a '#' covers a '#', and at the first level "+/#" too: "#" matches no
		// topic of zero levels, so both match every topic (but "$..." ones).
		if depth == 0 && n.plus != nil {
			s.offer(n.plus.hash)
		}
		return
	case "+":
		if n.plus != nil {
			n.plus.cover(s, next, depth+1)
		}
		return
	}
	if c := n.child(lv); c != nil {
		c.cover(s, next, depth+1)
	}
	for _, e := range n.tmpl {
		if s.tmplIs(e.id, lv) {
			e.n.cover(s, next, depth+1)
		}
	}
	if n.plus != nil && !sys {
		n.plus.cover(s, next, depth+1)
	}
}

// overlap collects the rules of a deny trie whose filters share at least one topic with
// the rest of the topic (or filter) from pos.
func (n *node) overlap(s *search, pos, depth int) {
	if s.skip(n) {
		return
	}
	if pos < 0 {
		s.offer(n.hash)
		s.offer(n.exact)
		return
	}
	lv, next := s.levelAt(pos)
	sys := depth == 0 && isDollar(lv)
	if !sys {
		s.offer(n.hash)
	}
	switch lv {
	case "#":
		// The request matches the parent level and everything below it.
		s.offer(n.exact)
		n.below(s, depth)
		return
	case "+":
		for _, c := range n.kids {
			if depth == 0 && isDollar(c.key) {
				continue
			}
			c.overlap(s, next, depth+1)
		}
		for _, e := range n.tmpl {
			if s.tmplOK(e.id) {
				e.n.overlap(s, next, depth+1)
			}
		}
		if n.plus != nil {
			n.plus.overlap(s, next, depth+1)
		}
		return
	}
	if c := n.child(lv); c != nil {
		c.overlap(s, next, depth+1)
	}
	for _, e := range n.tmpl {
		if s.tmplIs(e.id, lv) {
			e.n.overlap(s, next, depth+1)
		}
	}
	if n.plus != nil && !sys {
		n.plus.overlap(s, next, depth+1)
	}
}

// below offers every rule filed under the children of n (a '#' in the request reaches all
// of them), except "$..." first levels, which a leading wildcard never matches.
func (n *node) below(s *search, depth int) {
	for _, c := range n.kids {
		if depth == 0 && isDollar(c.key) {
			continue
		}
		c.all(s)
	}
	for _, e := range n.tmpl {
		if s.tmplOK(e.id) {
			e.n.all(s)
		}
	}
	if n.plus != nil {
		n.plus.all(s)
	}
}

func (n *node) all(s *search) {
	if s.skip(n) {
		return
	}
	if n.sure != nil && s.kind == ActSubscribe && s.improves(n.sure.index) {
		s.best = n.sure
	}
	s.offer(n.hash)
	s.offer(n.exact)
	n.below(s, 1)
}

func isDollar(s string) bool { return s != "" && s[0] == '$' }

// topicMatches decides one rule topic against the request, for flat buckets.
func (s *search) topicMatches(r *crule, t *ctopic) bool {
	if t.group != "" && t.group != s.group {
		return false
	}
	if t.eq {
		return t.filter == s.topic
	}
	if r.perm == PermDeny {
		return s.overlaps(t.levels)
	}
	return s.covers(t.levels)
}

// covers reports whether a rule filter covers every topic the request can match.
func (s *search) covers(ls []level) bool {
	pos := 0
	for i, l := range ls {
		if pos < 0 {
			return l.kind == lvHash // "a/#" covers "a"
		}
		lv, next := s.levelAt(pos)
		sys := i == 0 && isDollar(lv)
		switch l.kind {
		case lvHash:
			return !sys
		case lvPlus:
			if lv == "#" {
				// "+/#" is "#" at the first level; anywhere else "p/#" matches "p" too.
				return i == 0 && len(ls) == 2 && ls[1].kind == lvHash
			}
			if sys {
				return false
			}
		case lvTmpl:
			if !s.tmplIs(l.tmpl, lv) {
				return false
			}
		default:
			if l.text != lv {
				return false
			}
		}
		pos = next
	}
	return pos < 0
}

// overlaps reports whether a rule filter and the request share at least one topic.
func (s *search) overlaps(ls []level) bool {
	pos := 0
	for i, l := range ls {
		if pos < 0 {
			return l.kind == lvHash
		}
		lv, next := s.levelAt(pos)
		if lv == "#" {
			// The request matches everything from here on; the rule must still exist for
			// this client and, at the first level, not name a "$" topic.
			for j, l := range ls[i:] {
				switch {
				case l.kind == lvTmpl && !s.tmplOK(l.tmpl):
					return false
				case i+j == 0 && l.kind == lvLit && isDollar(l.text):
					return false
				}
			}
			return true
		}
		sys := i == 0 && isDollar(lv)
		switch l.kind {
		case lvHash:
			return !sys
		case lvPlus:
			if sys {
				return false
			}
		case lvTmpl:
			if lv == "+" {
				if !s.tmplOK(l.tmpl) {
					return false
				}
			} else if !s.tmplIs(l.tmpl, lv) {
				return false
			}
		default:
			if lv == "+" {
				if i == 0 && isDollar(l.text) {
					return false
				}
			} else if l.text != lv {
				return false
			}
		}
		pos = next
	}
	if pos < 0 {
		return true
	}
	// The rule is used up and the request goes on: only "a/#" still matches "a".
	lv, next := s.levelAt(pos)
	return lv == "#" && next < 0
}
