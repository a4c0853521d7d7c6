package broker

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
)

// retainedStore indexes retained messages by topic level so that a subscription finds the
// messages its filter matches without scanning them all.
type retainedStore struct {
	mu   sync.RWMutex
	root *rnode
	// count and bytes (the sum of Message.size) change under mu and are read without it
	// by the budgets.
	count atomic.Int64
	bytes atomic.Int64
}

type rnode struct {
	children map[string]*rnode
	msg      *Message
	at       int64 // when msg was stored, unix nanoseconds (for the retained expiry)
}

func newRetainedStore() *retainedStore { return &retainedStore{root: &rnode{}} }

// set stores m as the retained message of its topic, or deletes the topic's retained
// message when m has an empty payload [MQTT-3.3.1-6], [MQTT-3.3.1-7].
func (r *retainedStore) set(m *Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Payload) == 0 {
		r.deleteLocked(m.Topic, nil)
		return
	}
	n := r.root
	for level := range strings.SplitSeq(m.Topic, "/") {
		c := n.children[level]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*rnode)
			}
			c = &rnode{}
			n.children[level] = c
		}
		n = c
	}
	if n.msg == nil {
		r.count.Add(1)
	} else {
		r.bytes.Add(-int64(n.msg.size()))
	}
	r.bytes.Add(int64(m.size()))
	n.msg = m
	n.at = time.Now().UnixNano()
}

// sizeOf returns the size of the retained message of topic, and whether there is one.
func (r *retainedStore) sizeOf(topic string) (int, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := r.root
	for level := range strings.SplitSeq(topic, "/") {
		if n = n.children[level]; n == nil {
			return 0, false
		}
	}
	if n.msg == nil {
		return 0, false
	}
	return n.msg.size(), true
}

// deleteIf deletes m when it is still the retained message of its topic, and reports
// whether it did.
func (r *retainedStore) deleteIf(m *Message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deleteLocked(m.Topic, m)
}

// deleteLocked deletes the retained message of topic; when only is not nil, only if it is
// that message. It reports whether a message was deleted.
func (r *retainedStore) deleteLocked(topic string, only *Message) bool {
	levels := strings.Split(topic, "/")
	path := make([]*rnode, 0, len(levels)+1)
	n := r.root
	path = append(path, n)
	for _, l := range levels {
		n = n.children[l]
		if n == nil {
			return false
		}
		path = append(path, n)
	}
	if n.msg == nil || (only != nil && n.msg != only) {
		return false
	}
	r.count.Add(-1)
	r.bytes.Add(-int64(n.msg.size()))
	n.msg = nil
	// Prune empty nodes from the leaf up.
	for i := len(levels) - 1; i >= 0; i-- {
		child := path[i+1]
		if child.msg != nil || len(child.children) > 0 {
			break
		}
		delete(path[i].children, levels[i])
	}
	return true
}

// len returns the number of retained messages.
func (r *retainedStore) len() int { return int(r.count.Load()) }

// matchLive returns the retained messages whose topics match filter, with the ones that
// expired by now apart: their own message expiry passed, or (maxAge > 0) they were stored
// more than maxAge ago. A zero now expires nothing. Topics beginning with '$' are not
// matched by a wildcard in the first level [MQTT-4.7.2-1].
func (r *retainedStore) matchLive(filter string, now time.Time, maxAge time.Duration) (live, stale []*Message) {
	w := retainedWalk{}
	if !now.IsZero() {
		w.now = now
		if maxAge > 0 {
			w.storedBefore = now.Add(-maxAge).UnixNano()
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	w.walk(r.root, strings.Split(filter, "/"), true)
	return w.live, w.stale
}

// expired returns every message that expired by now (as matchLive decides), for the
// sweep.
func (r *retainedStore) expired(now time.Time, maxAge time.Duration) []*Message {
	w := retainedWalk{now: now, noLive: true}
	if maxAge > 0 {
		w.storedBefore = now.Add(-maxAge).UnixNano()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	w.all(r.root)
	return w.stale
}

// retainedWalk collects the messages of a walk of the tree, live and expired apart.
type retainedWalk struct {
	now          time.Time // zero: nothing expires
	storedBefore int64     // messages stored before this (unix ns) expired; 0: none
	noLive       bool      // collect only the expired ones
	live, stale  []*Message
}

func (w *retainedWalk) add(n *rnode) {
	if n.msg == nil {
		return
	}
	// The broker's own $SYS values are republished, not aged out.
	if !w.now.IsZero() && (n.msg.expired(w.now) || n.at < w.storedBefore && !topic.IsSys(n.msg.Topic)) {
		w.stale = append(w.stale, n.msg)
		return
	}
	if !w.noLive {
		w.live = append(w.live, n.msg)
	}
}

func (w *retainedWalk) walk(n *rnode, levels []string, first bool) {
	if len(levels) == 0 {
		w.add(n)
		return
	}
	switch l := levels[0]; l {
	case "#":
		// '#' matches the parent level too [MQTT-4.7.1-2].
		if !first {
			w.add(n)
		}
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			w.all(c)
		}
	case "+":
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			w.walk(c, levels[1:], false)
		}
	default:
		if c := n.children[l]; c != nil {
			w.walk(c, levels[1:], false)
		}
	}
}

func (w *retainedWalk) all(n *rnode) {
	w.add(n)
	for _, c := range n.children {
		w.all(c)
	}
}
