package guard

import (
	"container/list"
	"net/netip"
	"time"
)

// keyKind separates username counters from address counters.
type keyKind uint8

const (
	kindIP     keyKind = iota
	kindUser           // a username from any address
	kindUserAt         // a username from one address block
)

// key identifies one counter: an address block, a username's keyed hash, or both.
type key struct {
	kind   keyKind
	prefix netip.Prefix
	user   uint64
}

// entry is one counter.
type entry struct {
	key           key
	failures      int       // failures since windowStart
	windowStart   time.Time // the first failure counted
	cooldownUntil time.Time // zero unless cooling down
	pending       int       // admitted attempts not yet resolved
	lastAdmit     time.Time // the latest admission, to forget unresolved ones
	expires       time.Time // when nothing of the above matters any more
	index         int       // position in the table's expiry heap; -1 once removed
	waiters       *list.List
}

// waiter is a Check waiting for a counter to free an in-flight slot.
type waiter struct {
	ch    chan struct{}
	woken bool
}

func (e *entry) due() time.Time { return e.expires }
func (e *entry) slot() *int     { return &e.index }
func (e *entry) tableKey() key  { return e.key }

func (e *entry) cooling() bool { return !e.cooldownUntil.IsZero() }

// load is what counts against the counter's maximum.
func (e *entry) load() int { return e.failures + e.pending }

func (e *entry) empty() bool { return e.failures == 0 && e.pending == 0 && !e.cooling() }

// release resolves one admitted attempt.
func (e *entry) release() {
	if e.pending > 0 {
		e.pending--
	}
}

// expiry is when the entry's state has all run out: the cooldown, the failure window and
// the window after which unresolved reservations are forgotten.
func (e *entry) expiry(window time.Duration) time.Time {
	var t time.Time
	if e.cooling() {
		t = e.cooldownUntil
	} else if e.failures > 0 {
		t = e.windowStart.Add(window)
	}
	if e.pending > 0 {
		if p := e.lastAdmit.Add(window); p.After(t) {
			t = p
		}
	}
	return t
}

// addWaiter queues w.
func (e *entry) addWaiter(w *waiter) *list.Element {
	if e.waiters == nil {
		e.waiters = list.New()
	}
	return e.waiters.PushBack(w)
}

// dropWaiter unqueues a waiter that gave up before being woken.
func (e *entry) dropWaiter(el *list.Element) {
	if e.waiters != nil {
		e.waiters.Remove(el)
	}
}

// wake wakes up to n waiters, oldest first.
func (e *entry) wake(n int) {
	for ; n > 0 && e.waiters != nil && e.waiters.Len() > 0; n-- {
		w := e.waiters.Remove(e.waiters.Front()).(*waiter)
		w.woken = true
		close(w.ch)
	}
}
