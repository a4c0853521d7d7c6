package broker

import (
	"context"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
)

// recheckAll checks every session's subscriptions against the authorization rules in
// force, removing the ones they no longer allow. It runs when the rules change, so a
// subscription the new rules deny stops receiving at once, not after a cache expiry or a
// reconnect, and periodically for sources whose rules live on a server that does not
// announce changes (see recheckLoop). Offline sessions, restored from the store or not,
// are checked with the identity their owner had.
func (s *Server) recheckAll(ctx context.Context) {
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	removed := 0
	for _, sess := range all {
		removed += s.recheckSession(ctx, sess)
	}
	if removed > 0 {
		s.log.Info("authorization rules changed: subscriptions removed", "count", removed)
	}
}

// recheckSession removes the subscriptions of one session that its client may no longer
// have, and reports how many it removed.
func (s *Server) recheckSession(ctx context.Context, sess *session) int {
	sess.mu.Lock()
	az := sess.az
	if az == nil || sess.destroyed {
		sess.mu.Unlock()
		return 0
	}
	subs := make([]*subscription, 0, len(sess.subs))
	for _, sub := range sess.subs {
		subs = append(subs, sub)
	}
	sess.mu.Unlock()
	var denied []*subscription
	for _, sub := range subs {
		_, real, _ := topic.ParseShared(sub.filter)
		if !az.Authorize(ctx, authz.Action{Kind: authz.ActSubscribe, QoS: sub.qos, Group: sub.group}, real) {
			denied = append(denied, sub)
		}
	}
	if len(denied) == 0 {
		return 0
	}
	var gone []*subscription
	dropped := 0
	sess.mu.Lock()
	for _, sub := range denied {
		// Only the subscription checked: the client may have subscribed again meanwhile.
		if sess.subs[sub.filter] == sub {
			sess.dropSubLocked(sub.filter)
			gone = append(gone, sub)
		}
	}
	if len(gone) > 0 {
		// What was queued for the withdrawn subscriptions is not delivered either.
		dropped = sess.dropUnmatchedLocked()
	}
	sess.mu.Unlock()
	if dropped > 0 {
		s.log.Info("queued messages dropped: their subscription is no longer authorized", "client", sess.id, "count", dropped)
	}
	for _, sub := range gone {
		s.router.remove(sess, sub.filter)
		s.log.Info("subscription removed: no longer authorized", "client", sess.id, "filter", sub.filter)
	}
	if len(gone) == 0 {
		return 0
	}
	if err := s.saveSession(sess, time.Time{}); err != nil {
		s.log.Error("session not stored after removing subscriptions", "client", sess.id, "err", err)
	}
	return len(gone)
}

// dropUnmatchedLocked forgets the messages waiting for the session that none of its
// subscriptions matches any more, after subscriptions were withdrawn: the queued ones, and
// the unacknowledged ones while the client is away (they would be sent again when it
// resumes). Messages a connected client already holds finish their exchange. It returns
// how many it dropped; call with s.mu held.
func (s *session) dropUnmatchedLocked() int {
	filters := make([]string, 0, len(s.subs))
	for _, sub := range s.subs {
		_, real, _ := topic.ParseShared(sub.filter)
		filters = append(filters, real)
	}
	matched := func(om *outMsg) bool {
		for _, f := range filters {
			if topic.Match(f, om.msg.Topic) {
				return true
			}
		}
		return false
	}
	var forget []uint64
	n := 0
	if s.conn == nil {
		keep := s.order[:0]
		for _, pid := range s.order {
			om := s.inflight[pid]
			if om.state == statePublished && !matched(om) {
				delete(s.inflight, pid)
				forget = append(forget, om.seq)
				n++
				continue
			}
			keep = append(keep, pid)
		}
		clear(s.order[len(keep):])
		s.order = keep
	}
	q := s.queue[:s.queueHead]
	for _, om := range s.queue[s.queueHead:] {
		if matched(om) {
			q = append(q, om)
			continue
		}
		s.addQueued(-om.msg.size())
		forget = append(forget, om.seq)
		n++
	}
	clear(s.queue[len(q):])
	s.queue = q
	s.srv.stats.dropped.Add(int64(n))
	s.srv.forget(s.id, forget...)
	return n
}

// recheckLoop re-checks every session's subscriptions as often as the shortest view ttl
// of the authorization sources (at least every minRecheck), so that a subscription a
// database, directory or HTTP service stops granting is withdrawn within that time,
// although such a server never announces a change. It runs until ctx is done.
func (s *Server) recheckLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(max(every, minRecheck))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.recheckAll(ctx)
		}
	}
}

// minRecheck bounds how often recheckLoop runs: a source with ttl 0 (read at every
// question) would otherwise have every subscription of every session asked about
// continuously.
const minRecheck = time.Second
