package broker

import (
	"context"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
)

// handle processes one packet after CONNECT. A code other than Success ends the
// connection with that reason.
func (c *conn) handle(ctx context.Context, p packet.Packet) (packet.ReasonCode, string) {
	now := time.Now()
	switch p := p.(type) {
	case *packet.Publish:
		return c.handlePublish(ctx, p, now)
	case *packet.Puback:
		c.sess.ack(p.PacketID, statePublished, now)
	case *packet.Pubrec:
		switch {
		case p.ReasonCode.IsError():
			c.sess.dropRefused(p.PacketID, now)
		case c.sess.received(p.PacketID):
			c.send(&packet.Pubrel{PacketID: p.PacketID})
		default:
			c.send(c.notFound(&packet.Pubrel{PacketID: p.PacketID}))
		}
	case *packet.Pubrel:
		c.sess.mu.Lock()
		_, known := c.sess.awaitRel[p.PacketID]
		delete(c.sess.awaitRel, p.PacketID)
		c.sess.mu.Unlock()
		if known {
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		} else {
			c.send(c.notFoundComp(p.PacketID))
		}
	case *packet.Pubcomp:
		c.sess.ack(p.PacketID, stateReleased, now)
	case *packet.Subscribe:
		return c.handleSubscribe(ctx, p, now)
	case *packet.Unsubscribe:
		return c.handleUnsubscribe(p)
	case *packet.Pingreq:
		c.send(&packet.Pingresp{})
	case *packet.Disconnect:
		return c.handleDisconnect(p)
	case *packet.Auth:
		return c.handleAuth(ctx, p)
	case *packet.Connect:
		return packet.ProtocolError, "second CONNECT" // [MQTT-3.1.0-2]
	default:
		return packet.ProtocolError, p.Type().String() + " is not sent by clients"
	}
	return packet.Success, ""
}

func (c *conn) notFound(p *packet.Pubrel) *packet.Pubrel {
	if c.version == packet.V5 {
		p.ReasonCode = packet.PacketIdentifierNotFound
	}
	return p
}

func (c *conn) notFoundComp(pid uint16) *packet.Pubcomp {
	p := &packet.Pubcomp{PacketID: pid}
	if c.version == packet.V5 {
		p.ReasonCode = packet.PacketIdentifierNotFound
	}
	return p
}

// handlePublish routes an incoming application message and acknowledges it.
func (c *conn) handlePublish(ctx context.Context, p *packet.Publish, now time.Time) (packet.ReasonCode, string) {
	o := &c.srv.o
	c.srv.stats.msgsIn.Add(1)
	name := p.Topic
	if c.version == packet.V5 && p.Properties.Has(packet.PropTopicAlias) {
		a := p.Properties.TopicAlias
		if o.MaxTopicAlias == 0 || a > o.MaxTopicAlias {
			return packet.TopicAliasInvalid, "topic alias above the maximum" // [MQTT-3.3.2-9]
		}
		if name != "" {
			if c.inAlias == nil {
				c.inAlias = make(map[uint16]string)
			}
			c.inAlias[a] = strings.Clone(name)
		} else if name = c.inAlias[a]; name == "" {
			return packet.ProtocolError, "unknown topic alias"
		}
	}
	if p.QoS > o.MaxQoS {
		return packet.QoSNotSupported, "QoS above maximum QoS" // [MQTT-3.2.2-11]
	}
	if p.Retain && !o.RetainAvailable {
		return packet.RetainNotSupported, "retain is not available" // [MQTT-3.2.2-14]
	}
	if c.version == packet.V5 && p.Properties.Has(packet.PropSubscriptionID) {
		return packet.ProtocolError, "subscription identifier from a client" // [MQTT-3.3.4-6]
	}
	if err := topic.ValidateName(name, c.limits()); err != nil {
		if c.version == packet.V5 && p.QoS > 0 {
			return c.ackPublish(p, packet.TopicNameInvalid, now)
		}
		return packet.TopicNameInvalid, err.Error()
	}
	if p.QoS == 2 {
		c.sess.mu.Lock()
		_, dup := c.sess.awaitRel[p.PacketID]
		limit := min(o.MaxInflight, o.MaxAwaitingRel)
		if !dup && len(c.sess.awaitRel) >= limit {
			// At the limit: forget packet ids whose PUBREL never came within
			// await_rel_timeout, so an abandoned exchange cannot hold a slot forever.
			for id, at := range c.sess.awaitRel {
				if now.Sub(at) > o.AwaitRelTimeout {
					delete(c.sess.awaitRel, id)
				}
			}
		}
		full := !dup && len(c.sess.awaitRel) >= limit
		c.sess.mu.Unlock()
		if dup {
			// Already received and routed: acknowledge again, do not deliver twice.
			c.send(&packet.Pubrec{PacketID: p.PacketID})
			return packet.Success, ""
		}
		if full {
			if c.version == packet.V5 {
				return packet.ReceiveMaximumExceeded, "more unacknowledged QoS 2 messages than receive maximum"
			}
			return packet.QuotaExceeded, "too many QoS 2 messages awaiting release"
		}
	}
	if c.rejectsOverRate(p) && !c.allowPublish(now, c.pktSize) {
		c.srv.limitHit(reasonPublishRejected, c)
		return c.ackPublish(p, packet.QuotaExceeded, now)
	}
	if topic.IsSys(name) {
		// Clients never publish into the broker's own namespace.
		return c.ackPublish(p, packet.NotAuthorized, now)
	}
	if !c.az.Authorize(ctx, authz.Action{Kind: authz.ActPublish, QoS: p.QoS, Retain: p.Retain}, name) {
		if c.srv.authz.DisconnectOnDeny() {
			return packet.NotAuthorized, "publish to " + name + " not authorized"
		}
		return c.ackPublish(p, packet.NotAuthorized, now)
	}
	m := newMessage(p, name, c.info.ClientID, now)
	if m.Retain && o.RetainAvailable {
		if reason, ok := c.srv.admitRetained(m); !ok {
			c.srv.limitHit(reason, c)
			if c.version == packet.V5 && p.QoS > 0 {
				return c.ackPublish(p, packet.QuotaExceeded, now) // neither kept nor routed
			}
			// Nothing can tell the publisher: the message still reaches the current
			// subscribers, but is not kept for future ones.
			m.Retain = false
		}
	}
	var n int
	var err error
	// What a client publishes is written without waiting for the disk. For QoS 1 and 2 the
	// writer syncs the store once before it sends the acknowledgements of a whole run of
	// pipelined messages (syncPending), so a burst costs one fsync, not one per message.
	// QoS 0 has no acknowledgement to hold back: its writes (a retained message) become
	// durable with the next sync of any connection.
	var needSync bool
	c.scratch, n, needSync, err = c.srv.route(m, c.scratch, true)
	if needSync && p.QoS > 0 {
		c.syncPending.Store(true) // before the acknowledgement is queued
	}
	if err != nil {
		c.srv.log.Error("message not stored: refusing it", "client", c.info.ClientID, "topic", name, "err", err)
		if c.version != packet.V5 {
			return packet.UnspecifiedError, "message could not be stored" // 3.1.1 cannot refuse: close so it is resent
		}
		return c.ackPublish(p, packet.UnspecifiedError, now)
	}
	code := packet.Success
	if n == 0 {
		code = packet.NoMatchingSubscribers
	}
	return c.ackPublish(p, code, now)
}

// ackPublish acknowledges a PUBLISH. Refusals are told to MQTT 5 clients; MQTT 3.1.1 has
// no way to say no, so it gets a positive acknowledgement [MQTT-3.3.5-2].
func (c *conn) ackPublish(p *packet.Publish, code packet.ReasonCode, now time.Time) (packet.ReasonCode, string) {
	if c.version != packet.V5 {
		code = packet.Success
	}
	switch p.QoS {
	case 1:
		c.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: code})
	case 2:
		if !code.IsError() {
			c.sess.mu.Lock()
			c.sess.awaitRel[p.PacketID] = now
			c.sess.mu.Unlock()
		}
		c.send(&packet.Pubrec{PacketID: p.PacketID, ReasonCode: code})
	}
	return packet.Success, ""
}

// handleSubscribe grants or refuses each filter, answers with SUBACK, then sends the
// retained messages the new subscriptions ask for.
func (c *conn) handleSubscribe(ctx context.Context, p *packet.Subscribe, now time.Time) (packet.ReasonCode, string) {
	o := &c.srv.o
	subID := 0
	if len(p.Properties.SubscriptionIDs) > 0 {
		subID = p.Properties.SubscriptionIDs[0]
	}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	type retainedSend struct {
		sub  *subscription
		msgs []*Message
	}
	var sends []retainedSend
	denied := false
	for i, req := range p.Subscriptions {
		if full, why := c.subscriptionsFull(req.Filter); full {
			codes[i] = c.quotaCode(packet.SubackFailure)
			c.srv.limitHit(why, c)
			continue
		}
		code, sub, refused := c.grant(ctx, req, subID)
		codes[i] = code
		denied = denied || refused
		if sub == nil {
			continue
		}
		c.sess.mu.Lock()
		existed := c.sess.putSubLocked(sub)
		c.sess.mu.Unlock()
		c.srv.router.add(c.sess, sub)
		// Retained messages: not for shared subscriptions; retain handling 1 only for a new
		// subscription, 2 never [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11].
		if o.RetainAvailable && !sub.isShared && (sub.rh == 0 || (sub.rh == 1 && !existed)) {
			if msgs := c.srv.matchRetained(sub.filter, now); len(msgs) > 0 {
				sends = append(sends, retainedSend{sub, msgs})
			}
		}
	}
	if err := c.srv.saveSession(c.sess, time.Time{}); err != nil {
		c.srv.log.Error("subscription not stored", "client", c.info.ClientID, "err", err)
		return packet.UnspecifiedError, "subscription could not be stored"
	}
	c.send(&packet.Suback{PacketID: p.PacketID, ReasonCodes: codes})
	for _, s := range sends {
		var allowed []*Message
		for _, m := range s.msgs {
			// A retained message is delivered only when the subscriber may subscribe to
			// its exact topic: a wide filter does not reach past a narrower deny.
			if c.az.Authorize(ctx, authz.Action{Kind: authz.ActSubscribe, QoS: m.QoS}, m.Topic) {
				allowed = append(allowed, m)
			}
		}
		c.sess.deliverRetained(allowed, s.sub, now)
	}
	if denied && c.srv.authz.DisconnectOnDeny() {
		return packet.NotAuthorized, "subscription not authorized"
	}
	return packet.Success, ""
}

// grant decides one requested subscription; refused reports an authorization refusal.
func (c *conn) grant(ctx context.Context, req packet.Subscription, subID int) (code packet.ReasonCode, sub *subscription, refused bool) {
	o := &c.srv.o
	fail := func(code packet.ReasonCode) (packet.ReasonCode, *subscription, bool) {
		if c.version != packet.V5 {
			return packet.SubackFailure, nil, code == packet.NotAuthorized
		}
		return code, nil, code == packet.NotAuthorized
	}
	if err := topic.ValidateFilter(req.Filter, c.limits()); err != nil {
		return fail(packet.TopicFilterInvalid)
	}
	group, real, shared := topic.ParseShared(req.Filter)
	if shared && !o.SharedSubscription {
		return fail(packet.SharedSubscriptionsNotSupported)
	}
	if !o.WildcardSubscription && strings.ContainsAny(real, "+#") {
		return fail(packet.WildcardSubscriptionsNotSupported)
	}
	qos := min(req.QoS, o.MaxQoS)
	if !c.az.Authorize(ctx, authz.Action{Kind: authz.ActSubscribe, QoS: qos, Group: group}, real) {
		return fail(packet.NotAuthorized)
	}
	return packet.ReasonCode(qos), &subscription{filter: req.Filter, group: group, isShared: shared, qos: qos,
		noLocal: req.NoLocal, rap: req.RetainAsPublished, rh: req.RetainHandling, subID: subID}, false
}

// subscriptionsFull reports whether filter would be a subscription beyond the session's
// MaxSubscriptions or past the memory budget, and which; subscribing again to a filter
// the session has is always allowed.
func (c *conn) subscriptionsFull(filter string) (bool, limitReason) {
	c.sess.mu.Lock()
	_, has := c.sess.subs[filter]
	n := len(c.sess.subs)
	c.sess.mu.Unlock()
	switch limit := c.srv.o.MaxSubscriptions; {
	case has:
		return false, 0
	case limit >= 0 && n >= limit:
		return true, reasonSubscriptionQuota
	case c.srv.memoryFull(subCost(filter), false):
		return true, reasonSubscriptionMemory
	}
	return false, 0
}

func (c *conn) handleUnsubscribe(p *packet.Unsubscribe) (packet.ReasonCode, string) {
	codes := make([]packet.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		c.sess.mu.Lock()
		ok := c.sess.dropSubLocked(f)
		c.sess.mu.Unlock()
		if ok {
			c.srv.router.remove(c.sess, f)
		} else {
			codes[i] = packet.NoSubscriptionExisted
		}
	}
	if err := c.srv.saveSession(c.sess, time.Time{}); err != nil {
		return packet.UnspecifiedError, "subscription change could not be stored"
	}
	ack := &packet.Unsuback{PacketID: p.PacketID}
	if c.version == packet.V5 {
		ack.ReasonCodes = codes
	}
	c.send(ack)
	return packet.Success, ""
}

// handleDisconnect ends the connection at the client's request. Only reason 0x00 (and any
// DISCONNECT before MQTT 5) discards the will [MQTT-3.14.4-3]; 0x04 and the error reasons
// keep it [MQTT-3.1.2-8].
func (c *conn) handleDisconnect(p *packet.Disconnect) (packet.ReasonCode, string) {
	if c.version == packet.V5 && p.Properties.Has(packet.PropSessionExpiry) {
		if c.zeroExpiry && p.Properties.SessionExpiry != 0 {
			return packet.ProtocolError, "session expiry raised from 0 at DISCONNECT" // [MQTT-3.14.2-2]
		}
		maxExpiry := uint32(min(c.srv.o.SessionExpiry/time.Second, 0xFFFFFFFF))
		c.sess.mu.Lock()
		c.sess.expiry = min(p.Properties.SessionExpiry, maxExpiry)
		c.sess.mu.Unlock()
	}
	c.disconnected = true
	c.willDone = c.version != packet.V5 || p.ReasonCode == packet.NormalDisconnection
	c.cleanEnd = c.willDone || p.ReasonCode == packet.DisconnectWithWillMessage
	c.closeSocket()
	return packet.Success, ""
}

// publishWill publishes a will message when it is due, if the client may still publish to
// its topic under the rules in force then.
func (s *Server) publishWill(m *Message, info *clientinfo.Info, az ClientAuthorizer) {
	if az == nil || !az.Authorize(context.Background(), authz.Action{Kind: authz.ActPublish, QoS: m.QoS, Retain: m.Retain}, m.Topic) {
		s.log.Info("will not published: not authorized", "client", info.ClientID, "topic", m.Topic)
		return
	}
	w := *m
	if m.Props.MessageExpiry > 0 {
		w.Expiry = time.Now().Add(time.Duration(m.Props.MessageExpiry) * time.Second)
		w.Props.MessageExpiry = 0
	}
	if w.Retain && s.o.RetainAvailable {
		if reason, ok := s.admitRetained(&w); !ok {
			s.limitHit(reason, nil, "client", info.ClientID)
			w.Retain = false // published, not kept
		}
	}
	if _, _, _, err := s.route(&w, nil, false); err != nil {
		s.log.Error("will not published: store failed", "client", info.ClientID, "err", err)
	}
}
