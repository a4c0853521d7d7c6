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
// reconnect. Sessions restored from the store without a connection since are checked
// when they resume.
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
	sess.mu.Lock()
	for _, sub := range denied {
		// Only the subscription checked: the client may have subscribed again meanwhile.
		if sess.subs[sub.filter] == sub {
			delete(sess.subs, sub.filter)
			gone = append(gone, sub)
		}
	}
	sess.mu.Unlock()
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
