package guard

import "time"

// tableEntry is an entry of an expiringTable: a deadlines item, due when its state has all
// run out, that knows its own key.
type tableEntry[K comparable] interface {
	comparable
	deadlined
	tableKey() K
}

// expiringTable is a map of at most limit entries, each filed by when its state runs out:
// inserting into a full table drops the entry that would expire soonest, and purge drops
// expired entries a batch at a time. What an entry holds, and so when it expires, is its
// owner's: the owner sets the due time and files the entry again with fix after every change.
//
// The table takes no lock of its own: its owner's mutex guards it together with the entries'
// contents, and must be held for every call.
type expiringTable[K comparable, E tableEntry[K]] struct {
	limit   int
	entries map[K]E
	expiry  deadlines[E]
	removed func(E) // called for every entry dropped, after it left the table; may be nil
}

func newExpiringTable[K comparable, E tableEntry[K]](limit int, removed func(E)) expiringTable[K, E] {
	return expiringTable[K, E]{limit: limit, entries: make(map[K]E), removed: removed}
}

// len returns the number of entries.
func (t *expiringTable[K, E]) len() int { return len(t.entries) }

// get returns k's entry, or the zero E when there is none.
func (t *expiringTable[K, E]) get(k K) E { return t.entries[k] }

// insert adds e, which must not be in the table, first dropping the soonest-expiring entries
// while the table is full. The caller gives e its due time and files it with fix.
func (t *expiringTable[K, E]) insert(e E) {
	for len(t.entries) >= t.limit {
		t.remove(t.expiry[0])
	}
	t.entries[e.tableKey()] = e
	t.expiry.push(e)
}

// fix files e again after its due time changed.
func (t *expiringTable[K, E]) fix(e E) { t.expiry.fix(e) }

// remove drops e; it does nothing when e is no longer in the table.
func (t *expiringTable[K, E]) remove(e E) {
	if *e.slot() < 0 {
		return
	}
	delete(t.entries, e.tableKey())
	t.expiry.remove(e)
	if t.removed != nil {
		t.removed(e)
	}
}

// maxPurge bounds the expired entries one purge drops, so no single caller pays for a large
// batch expiring together; the rest go on later calls.
const maxPurge = 64

// purge drops up to maxPurge entries whose state has expired at now.
func (t *expiringTable[K, E]) purge(now time.Time) {
	for i := 0; i < maxPurge; i++ {
		e, ok := t.expiry.peek()
		if !ok || now.Before(e.due()) {
			return
		}
		t.remove(e)
	}
}
