package broker

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
)

// subscription is one filter a session subscribed to, with its options.
type subscription struct {
	filter   string // as subscribed, including any "$share/group/" prefix
	group    string // shared subscription group, "" when not shared
	qos      byte
	noLocal  bool
	rap      bool // retain as published
	rh       byte // retain handling
	subID    int  // subscription identifier, 0 when none
	isShared bool
}

// target is one session that a message is delivered to, with the options of every
// subscription of that session that matched, merged [MQTT-3.3.4-2], [MQTT-3.3.4-3].
type target struct {
	sess   *session
	qos    byte
	rap    bool
	subIDs []int
	shared string // group key when the delivery came through a shared subscription
	seq    uint64 // queue entry in the store, 0 when not stored
}

// router finds the sessions whose subscriptions match a topic.
type router struct {
	trie    *topic.Trie[*session, *subscription]
	random  bool
	mu      sync.Mutex
	cursors map[string]*atomic.Uint64 // round-robin position per shared group and filter
}

func newRouter(strategy string) *router {
	return &router{
		trie:    topic.NewTrie[*session, *subscription](),
		random:  strategy == "random",
		cursors: make(map[string]*atomic.Uint64),
	}
}

func (r *router) add(s *session, sub *subscription) { r.trie.Add(sub.filter, s, sub) }

func (r *router) remove(s *session, filter string) { r.trie.Remove(filter, s) }

func (r *router) cursor(key string) *atomic.Uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cursors[key]
	if c == nil {
		c = new(atomic.Uint64)
		r.cursors[key] = c
	}
	return c
}

// match appends to out the targets for a message on name published by client from.
func (r *router) match(name, from string, out []target) []target {
	start := len(out)
	r.trie.Match(name,
		func(_ string, s *session, sub *subscription) {
			if sub.noLocal && s.id == from {
				return // [MQTT-3.8.3-3]
			}
			out = append(out, target{sess: s, qos: sub.qos, rap: sub.rap, subIDs: appendSubID(nil, sub.subID)})
		},
		func(group, filter string, members []topic.Member[*session, *subscription]) {
			m := r.pick(group, filter, members)
			out = append(out, target{sess: m.Key, qos: m.Value.qos, rap: m.Value.rap,
				subIDs: appendSubID(nil, m.Value.subID), shared: group + "/" + filter})
		})
	return mergeTargets(out, start)
}

// pick chooses one member of a shared group, preferring connected sessions.
func (r *router) pick(group, filter string, members []topic.Member[*session, *subscription]) topic.Member[*session, *subscription] {
	n := uint64(len(members))
	var first uint64
	if r.random {
		first = rand.Uint64N(n)
	} else {
		first = r.cursor(group+"\x00"+filter).Add(1) - 1
	}
	for i := range n {
		m := members[(first+i)%n]
		if m.Key.online.Load() {
			return m
		}
	}
	return members[first%n]
}

func appendSubID(ids []int, id int) []int {
	if id == 0 {
		return ids
	}
	return append(ids, id)
}

// mergeTargets merges the targets of one session into one delivery: the highest QoS, retain
// as published if any subscription asks for it, every subscription identifier.
func mergeTargets(out []target, start int) []target {
	ts := out[start:]
	if len(ts) < 2 {
		return out
	}
	slices.SortFunc(ts, func(a, b target) int {
		switch {
		case a.sess.seq < b.sess.seq:
			return -1
		case a.sess.seq > b.sess.seq:
			return 1
		}
		return strings.Compare(a.shared, b.shared)
	})
	w := 0
	for i := 0; i < len(ts); i++ {
		t := ts[i]
		if w > 0 && ts[w-1].sess == t.sess && t.shared == "" && ts[w-1].shared == "" {
			prev := &ts[w-1]
			prev.qos = max(prev.qos, t.qos)
			prev.rap = prev.rap || t.rap
			prev.subIDs = append(prev.subIDs, t.subIDs...)
			continue
		}
		ts[w] = t
		w++
	}
	return out[:start+w]
}
