package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Delivery states of an outgoing QoS 1/2 message.
const (
	stateQueued    = iota // waiting for room in the inflight window or for the client
	statePublished        // PUBLISH sent, waiting for PUBACK / PUBREC
	stateReleased         // PUBREC received, PUBREL sent, waiting for PUBCOMP
)

// outMsg is a message on its way to one session.
type outMsg struct {
	msg    *Message
	qos    byte
	retain bool
	subIDs []int
	pid    uint16
	state  byte
	shared string // shared group key, so the message can move to another member
	seq    uint64 // queue entry in the store, 0 when not stored
}

// session is the state MQTT keeps for a client id across connections.
type session struct {
	srv *Server
	id  string
	seq uint64 // creation order, used to order and merge deliveries

	online atomic.Bool // a connection is attached (read without the lock by the router)
	// owner is who the session belongs to; never nil. Replaced (not changed) when its
	// principal resumes it, read without the lock (connection limits).
	owner atomic.Pointer[owner]

	mu        sync.Mutex
	conn      *conn
	expiry    uint32 // seconds after disconnect; 0 = ends with the connection; ^0 = never
	subs      map[string]*subscription
	inflight  map[uint16]*outMsg
	order     []uint16 // inflight packet ids in send order, for resending on resume
	queue     []*outMsg
	queueHead int
	queueSize int // bytes held by queue
	nextPID   uint16
	lastSeq   uint64               // last queue entry number used in the store
	awaitRel  map[uint16]time.Time // inbound QoS 2 ids between PUBREC and PUBREL
	destroyed bool
	az        ClientAuthorizer // of the last connection, or built from owner for a restored session

	expiryTimer *time.Timer
	willTimer   *time.Timer
}

func (s *session) queued() int { return len(s.queue) - s.queueHead }

// window is how many QoS 1/2 messages may be unacknowledged at once.
func (s *session) window() int {
	w := s.srv.o.MaxInflight
	if s.conn != nil && s.conn.recvMax > 0 && int(s.conn.recvMax) < w {
		w = int(s.conn.recvMax)
	}
	return w
}

// allocPID returns a packet identifier not in use by an inflight message.
func (s *session) allocPID() uint16 {
	for {
		s.nextPID++
		if s.nextPID == 0 {
			s.nextPID = 1
		}
		if _, used := s.inflight[s.nextPID]; !used {
			return s.nextPID
		}
	}
}

// deliver hands one message to the session: straight to the connection when there is
// room, into the queue otherwise.
func (s *session) deliver(m *Message, t *target, now time.Time) {
	qos := min(m.QoS, t.qos)
	if s.srv.o.UpgradeQoS {
		qos = t.qos
	}
	om := &outMsg{msg: m, qos: qos, retain: t.rap && m.Retain, subIDs: t.subIDs, shared: t.shared, seq: t.seq}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverLocked(om, now)
}

// deliverRetained sends retained messages matched by a new subscription; they keep the
// retain flag [MQTT-3.3.1-9].
func (s *session) deliverRetained(msgs []*Message, sub *subscription, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if m.expired(now) {
			continue
		}
		qos := min(m.QoS, sub.qos)
		s.deliverLocked(&outMsg{msg: m, qos: qos, retain: true, subIDs: appendSubID(nil, sub.subID)}, now)
	}
}

func (s *session) deliverLocked(om *outMsg, now time.Time) {
	if s.destroyed {
		return
	}
	c := s.conn
	if om.qos == 0 {
		if (c == nil || s.queued() > 0) && s.srv.memoryFull(int64(om.msg.size()), false) {
			// Over the memory budget, QoS 0 messages for sessions that are not keeping up
			// (offline, or with messages already waiting) go first.
			s.dropForMemory()
			return
		}
		if c != nil {
			c.sendMessage(om, now)
			return
		}
		if !s.srv.o.MqueueStoreQoS0 {
			s.srv.stats.dropped.Add(1)
			return
		}
		s.enqueue(om)
		return
	}
	if c != nil && s.queued() == 0 && len(s.inflight) < s.window() {
		s.publishLocked(om, now)
		return
	}
	if s.srv.memoryFull(int64(om.msg.size()), true) {
		s.dropForMemory()
		s.srv.forget(s.id, om.seq)
		return
	}
	s.enqueue(om)
}

// dropForMemory counts a message dropped because the memory budget is reached.
func (s *session) dropForMemory() {
	s.srv.stats.dropped.Add(1)
	s.srv.limitHit(reasonMemoryDropped, nil, "client", s.id)
}

// publishLocked moves a QoS 1/2 message into the inflight window and sends it. A message
// too large for the client is complete at once [MQTT-3.1.2-25] and takes no window slot.
func (s *session) publishLocked(om *outMsg, now time.Time) {
	if om.pid == 0 {
		om.pid = s.allocPID()
	}
	om.state = statePublished
	if s.conn.sendMessage(om, now) {
		s.srv.forget(s.id, om.seq)
		return
	}
	s.inflight[om.pid] = om
	s.order = append(s.order, om.pid)
	if om.seq != 0 {
		// Record the packet identifier, so a restarted broker resends the message with
		// it and with DUP set [MQTT-4.4.0-1].
		s.srv.updateQueued(s.id, om)
	}
}

// enqueue adds a message to the bounded queue. When the queue is full by count or bytes,
// the oldest message is dropped: for telemetry the newest reading matters most.
func (s *session) enqueue(om *outMsg) {
	size := om.msg.size()
	for s.queued() > 0 && (s.queued() >= s.srv.o.MaxMqueueLen || int64(s.queueSize+size) > s.srv.o.MaxMqueueBytes) {
		old := s.queue[s.queueHead]
		s.queue[s.queueHead] = nil
		s.queueHead++
		s.addQueued(-old.msg.size())
		s.srv.stats.dropped.Add(1)
		s.srv.forget(s.id, old.seq)
	}
	if int64(size) > s.srv.o.MaxMqueueBytes {
		s.srv.stats.dropped.Add(1)
		s.srv.forget(s.id, om.seq)
		return
	}
	if s.queueHead > 0 && s.queueHead >= len(s.queue)/2 {
		n := copy(s.queue, s.queue[s.queueHead:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.queueHead = 0
	}
	s.queue = append(s.queue, om)
	s.addQueued(size)
}

// fillWindowLocked sends queued messages while the client has room for them.
func (s *session) fillWindowLocked(now time.Time) {
	for s.conn != nil && s.queued() > 0 {
		om := s.queue[s.queueHead]
		if om.qos > 0 && len(s.inflight) >= s.window() {
			return
		}
		s.queue[s.queueHead] = nil
		s.queueHead++
		s.addQueued(-om.msg.size())
		if om.msg.expired(now) {
			s.srv.forget(s.id, om.seq)
			continue
		}
		if om.qos == 0 {
			s.conn.sendMessage(om, now)
			continue
		}
		s.publishLocked(om, now)
	}
}

func (s *session) removeInflight(pid uint16) {
	delete(s.inflight, pid)
	for i, p := range s.order {
		if p == pid {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// ack handles PUBACK (QoS 1) and PUBCOMP (QoS 2). It reports whether pid was known.
func (s *session) ack(pid uint16, wantState byte, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	om := s.inflight[pid]
	if om == nil || om.state != wantState || (wantState == statePublished && om.qos != 1) {
		return false
	}
	s.removeInflight(pid)
	s.srv.forget(s.id, om.seq)
	s.fillWindowLocked(now)
	return true
}

// received handles PUBREC: the message moves to the released state.
func (s *session) received(pid uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	om := s.inflight[pid]
	if om == nil || om.qos != 2 {
		return false
	}
	om.state = stateReleased
	s.srv.updateQueued(s.id, om)
	return true
}

// dropRefused forgets a QoS 2 message the client refused with an error PUBREC.
func (s *session) dropRefused(pid uint16, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if om := s.inflight[pid]; om != nil {
		s.removeInflight(pid)
		s.srv.forget(s.id, om.seq)
		s.fillWindowLocked(now)
	}
}

// resumeLocked resends what was unacknowledged when the client went away, with the same
// packet identifiers [MQTT-4.4.0-1], then sends from the queue.
func (s *session) resumeLocked(now time.Time) {
	for _, pid := range slices.Clone(s.order) {
		om := s.inflight[pid]
		switch om.state {
		case statePublished:
			if s.conn.resendMessage(om, now) {
				s.removeInflight(pid) // the client now takes smaller packets than before
				s.srv.forget(s.id, om.seq)
			}
		case stateReleased:
			s.conn.send(&packet.Pubrel{PacketID: pid})
		}
	}
	s.fillWindowLocked(now)
}

// takeShared removes the messages that reached this session through shared subscriptions
// and were not completed, so they can go to another member of the group.
func (s *session) takeShared() []*outMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*outMsg
	keep := s.order[:0]
	for _, pid := range s.order {
		om := s.inflight[pid]
		if om.shared != "" && om.state == statePublished {
			delete(s.inflight, pid)
			out = append(out, om)
			continue
		}
		keep = append(keep, pid)
	}
	s.order = keep
	q := s.queue[:s.queueHead]
	for _, om := range s.queue[s.queueHead:] {
		if om.shared != "" {
			s.addQueued(-om.msg.size())
			out = append(out, om)
			continue
		}
		q = append(q, om)
	}
	clear(s.queue[len(q):])
	s.queue = q
	return out
}

// putBack returns shared-subscription messages that no other member could take: sent
// ones go back into the inflight window with their packet identifiers, to be resent on
// resume, queued ones back to the queue.
func (s *session) putBack(msgs []*outMsg) {
	if len(msgs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return
	}
	for _, om := range msgs {
		if om.state == statePublished {
			if _, used := s.inflight[om.pid]; !used {
				s.inflight[om.pid] = om
				s.order = append(s.order, om.pid)
				continue
			}
			om.pid, om.state = 0, stateQueued
		}
		s.queue = append(s.queue, om)
		s.addQueued(om.msg.size())
	}
}
