package broker

import (
	"strings"
	"sync"
)

// retainedStore indexes retained messages by topic level so that a subscription finds the
// messages its filter matches without scanning them all.
type retainedStore struct {
	mu    sync.RWMutex
	root  *rnode
	count int
}

type rnode struct {
	children map[string]*rnode
	msg      *Message
}

func newRetainedStore() *retainedStore { return &retainedStore{root: &rnode{}} }

// set stores m as the retained message of its topic, or deletes the topic's retained
// message when m has an empty payload [MQTT-3.3.1-6], [MQTT-3.3.1-7].
func (r *retainedStore) set(m *Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Payload) == 0 {
		r.deleteLocked(m.Topic)
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
		r.count++
	}
	n.msg = m
}

func (r *retainedStore) deleteLocked(topic string) {
	levels := strings.Split(topic, "/")
	path := make([]*rnode, 0, len(levels)+1)
	n := r.root
	path = append(path, n)
	for _, l := range levels {
		n = n.children[l]
		if n == nil {
			return
		}
		path = append(path, n)
	}
	if n.msg == nil {
		return
	}
	n.msg = nil
	r.count--
	// Prune empty nodes from the leaf up.
	for i := len(levels) - 1; i >= 0; i-- {
		child := path[i+1]
		if child.msg != nil || len(child.children) > 0 {
			break
		}
		delete(path[i].children, levels[i])
	}
}

// len returns the number of retained messages.
func (r *retainedStore) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count
}

// match returns the retained messages whose topics match filter. Topics beginning with '$'
// are not matched by a wildcard in the first level [MQTT-4.7.2-1].
func (r *retainedStore) match(filter string) []*Message {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Message
	r.walk(r.root, strings.Split(filter, "/"), true, &out)
	return out
}

func (r *retainedStore) walk(n *rnode, levels []string, first bool, out *[]*Message) {
	if len(levels) == 0 {
		if n.msg != nil {
			*out = append(*out, n.msg)
		}
		return
	}
	switch l := levels[0]; l {
	case "#":
		// '#' matches the parent level too [MQTT-4.7.1-2].
		if n.msg != nil && !first {
			*out = append(*out, n.msg)
		}
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			r.all(c, out)
		}
	case "+":
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			r.walk(c, levels[1:], false, out)
		}
	default:
		if c := n.children[l]; c != nil {
			r.walk(c, levels[1:], false, out)
		}
	}
}

func (r *retainedStore) all(n *rnode, out *[]*Message) {
	if n.msg != nil {
		*out = append(*out, n.msg)
	}
	for _, c := range n.children {
		r.all(c, out)
	}
}
