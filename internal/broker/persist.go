package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
	"github.com/rampart-mqtt/rampart/internal/store"
)

// Persistence of the message path. With a store (durability "sync"):
//   - a QoS 1/2 message for a persistent session is written, fsynced with group commit,
//     before the publisher's PUBACK/PUBREC is sent, so it survives kill -9;
//   - retained messages are written in the same batch;
//   - session records (owner, expiry, subscriptions) are written before CONNACK and SUBACK;
//   - acknowledgements delete queue entries without waiting for fsync: after a crash a
//     message may be delivered again, never lost (at least once).

const recordVersion = 1

// sessionRecord is the stored form of a session.
type sessionRecord struct {
	V int `json:"v"`
	// Username is the owner's user name in records written before Owner existed; such a
	// session is never resumed (it has no principal).
	Username       string      `json:"username,omitempty"`
	Owner          *owner      `json:"owner,omitempty"`
	Expiry         uint32      `json:"expiry"`
	DisconnectedAt int64       `json:"disconnected_at,omitempty"` // unix ms; 0 = was connected
	Subs           []subRecord `json:"subs,omitempty"`
}

type subRecord struct {
	Filter string `json:"f"`
	QoS    byte   `json:"q"`
	NL     bool   `json:"nl,omitempty"`
	RAP    bool   `json:"rap,omitempty"`
	RH     byte   `json:"rh,omitempty"`
	SubID  int    `json:"id,omitempty"`
}

// persistent reports whether the session outlives its connection in the store.
// Call with s.mu held.
func (s *session) persistentLocked() bool { return s.srv.st != nil && s.expiry > 0 && !s.destroyed }

// recordLocked builds the session's stored form. Call with s.mu held.
func (s *session) recordLocked(disconnectedAt time.Time) []byte {
	r := sessionRecord{V: recordVersion, Owner: s.owner.Load(), Expiry: s.expiry}
	if !disconnectedAt.IsZero() {
		r.DisconnectedAt = disconnectedAt.UnixMilli()
	}
	for _, sub := range s.subs {
		r.Subs = append(r.Subs, subRecord{Filter: sub.filter, QoS: sub.qos, NL: sub.noLocal, RAP: sub.rap, RH: sub.rh, SubID: sub.subID})
	}
	b, _ := json.Marshal(r)
	return b
}

// saveSession writes the session record (or deletes it when the session is no longer
// persistent) and waits for it to be durable.
func (s *Server) saveSession(sess *session, disconnectedAt time.Time) error {
	if s.st == nil {
		return nil
	}
	b := s.st.NewBatch()
	sess.mu.Lock()
	if sess.persistentLocked() {
		b.PutSession(sess.id, sess.recordLocked(disconnectedAt))
	} else {
		b.DeleteSession(sess.id)
	}
	sess.mu.Unlock()
	return b.Commit(context.Background())
}

// deleteStoredSession removes a session and its queue from the store.
func (s *Server) deleteStoredSession(id string) {
	if s.st == nil {
		return
	}
	b := s.st.NewBatch()
	b.DeleteSession(id)
	if err := b.Commit(context.Background()); err != nil {
		s.log.Error("store: delete session", "client", id, "err", err)
	}
}

// forget deletes queue entries of completed or dropped messages. Losing this write in a
// crash only means a message is delivered again.
func (s *Server) forget(id string, seqs ...uint64) {
	if s.st == nil || len(seqs) == 0 {
		return
	}
	b := s.st.NewBatch()
	for _, seq := range seqs {
		if seq != 0 {
			b.DeleteQueued(id, seq)
		}
	}
	if err := b.CommitNoSync(context.Background()); err != nil {
		s.log.Error("store: forget queued", "client", id, "err", err)
	}
}

// updateQueued records the packet identifier and state of a QoS 1 or 2 message in flight,
// so a restarted broker resends it with the same identifier.
func (s *Server) updateQueued(id string, om *outMsg) {
	if s.st == nil || om.seq == 0 {
		return
	}
	b := s.st.NewBatch()
	b.PutQueued(id, om.seq, encodeQueued(nil, om, encodeMessage(nil, om.msg)))
	if err := b.CommitNoSync(context.Background()); err != nil {
		s.log.Error("store: update queued", "client", id, "err", err)
	}
}

// persistRoute writes what a routed message needs before it is acknowledged: queue
// entries of persistent sessions and the retained message. It assigns each stored target
// its sequence number. With lazy set, the write is not synced: the caller must call
// Store.Sync before it acknowledges the message, and wrote reports whether that is needed.
func (s *Server) persistRoute(m *Message, ts []target, lazy bool) (wrote bool, err error) {
	if s.st == nil {
		return false, nil
	}
	var b *store.Batch
	var msgBytes, buf []byte
	for i := range ts {
		t := &ts[i]
		qos := min(m.QoS, t.qos)
		if s.o.UpgradeQoS {
			qos = t.qos
		}
		if qos == 0 {
			continue
		}
		t.sess.mu.Lock()
		if !t.sess.persistentLocked() {
			t.sess.mu.Unlock()
			continue
		}
		t.sess.lastSeq++
		t.seq = t.sess.lastSeq
		t.sess.mu.Unlock()
		if b == nil {
			b = s.st.NewBatch()
			msgBytes = encodeMessage(nil, m)
		}
		om := outMsg{msg: m, qos: qos, retain: t.rap && m.Retain, subIDs: t.subIDs, shared: t.shared}
		buf = encodeQueued(buf[:0], &om, msgBytes)
		b.PutQueued(t.sess.id, t.seq, buf)
	}
	if m.Retain && s.o.RetainAvailable {
		if b == nil {
			b = s.st.NewBatch()
		}
		if len(m.Payload) == 0 {
			b.DeleteRetained(m.Topic)
		} else {
			if msgBytes == nil {
				msgBytes = encodeMessage(nil, m)
			}
			b.SetRetained(m.Topic, encodeQueued(nil, &outMsg{msg: m, qos: m.QoS, retain: true}, msgBytes))
		}
	}
	if b == nil {
		return false, nil
	}
	if lazy {
		return true, b.CommitNoSync(context.Background())
	}
	return false, b.Commit(context.Background())
}

// syncStore makes lazily written messages durable before their acknowledgements go out.
func (s *Server) syncStore() error {
	if s.st == nil {
		return nil
	}
	return s.st.Sync(context.Background())
}

// encodeMessage writes m as an MQTT 5 PUBLISH, the stored form of a message.
func encodeMessage(dst []byte, m *Message) []byte {
	p := packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Payload: m.Payload, Properties: m.Props}
	if p.QoS > 0 {
		p.PacketID = 1
	}
	out, err := p.AppendTo(dst, packet.V5)
	if err != nil {
		// The message was decoded from a valid packet; it always encodes.
		panic(fmt.Sprintf("broker: stored message does not encode: %v", err))
	}
	return out
}

// encodeQueued builds a queue record: a small header with the delivery state, then the
// message as encodeMessage wrote it.
//
//	version(1) qos(1) flags(1) state(1) pid(2) expiry-unix-ns(8) len(shared)(2) shared subIDs... publish
func encodeQueued(dst []byte, om *outMsg, msgBytes []byte) []byte {
	flags := byte(0)
	if om.retain {
		flags |= 1
	}
	dst = append(dst, recordVersion, om.qos, flags, om.state)
	dst = binary.BigEndian.AppendUint16(dst, om.pid)
	var exp int64
	if !om.msg.Expiry.IsZero() {
		exp = om.msg.Expiry.UnixNano()
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(exp))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(om.shared)))
	dst = append(dst, om.shared...)
	dst = binary.AppendUvarint(dst, uint64(len(om.subIDs)))
	for _, id := range om.subIDs {
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	return append(dst, msgBytes...)
}

var errBadRecord = errors.New("broker: unreadable stored message")

// decodeQueued reads a record written by encodeQueued. b is copied.
func decodeQueued(b []byte, from string) (*outMsg, error) {
	b = bytes.Clone(b)
	if len(b) < 16 || b[0] != recordVersion {
		return nil, errBadRecord
	}
	om := &outMsg{qos: b[1], retain: b[2]&1 != 0, state: b[3], pid: binary.BigEndian.Uint16(b[4:])}
	exp := int64(binary.BigEndian.Uint64(b[6:]))
	n := int(binary.BigEndian.Uint16(b[14:]))
	b = b[16:]
	if len(b) < n || om.qos > 2 || om.state > stateReleased {
		return nil, errBadRecord
	}
	om.shared = string(b[:n])
	b = b[n:]
	count, k := binary.Uvarint(b)
	if k <= 0 || count > 1<<16 {
		return nil, errBadRecord
	}
	b = b[k:]
	for range count {
		id, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errBadRecord
		}
		om.subIDs = append(om.subIDs, int(id))
		b = b[k:]
	}
	p, err := packet.NewReader(bytes.NewReader(b), 0).ReadPacket(packet.V5)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		return nil, errBadRecord
	}
	m := &Message{Topic: pub.Topic, Payload: pub.Payload, QoS: pub.QoS, Retain: pub.Retain, Props: pub.Properties, From: from}
	if exp != 0 {
		m.Expiry = time.Unix(0, exp)
	}
	om.msg = m
	return om, nil
}

// Restore loads retained messages and persistent sessions from the store. Call it once,
// before Serve.
func (s *Server) Restore(ctx context.Context) error {
	if s.st == nil {
		return nil
	}
	now := time.Now()
	nRetained, nSessions, nQueued := 0, 0, 0
	err := s.st.ForEachRetained(ctx, func(topic string, v []byte) error {
		om, err := decodeQueued(v, "")
		if err != nil {
			s.log.Warn("store: skipping unreadable retained message", "topic", topic, "err", err)
			return nil
		}
		if !om.msg.expired(now) {
			s.retained.set(om.msg)
			nRetained++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore retained: %w", err)
	}
	var expired []string
	var restored []*session
	err = s.st.ForEachSession(ctx, func(id string, v []byte) error {
		var r sessionRecord
		if err := json.Unmarshal(v, &r); err != nil || r.V != recordVersion {
			s.log.Warn("store: dropping unreadable session", "client", id, "err", err)
			expired = append(expired, id)
			return nil
		}
		left := time.Duration(r.Expiry) * time.Second
		if r.Expiry != 0xFFFFFFFF && r.DisconnectedAt > 0 {
			left -= now.Sub(time.UnixMilli(r.DisconnectedAt))
		}
		if r.Expiry == 0 || left <= 0 {
			expired = append(expired, id)
			return nil
		}
		o := r.Owner
		if o == nil {
			o = &owner{Username: r.Username}
		}
		sess := s.newSession(id, o, r.Expiry)
		// Authorized from the stored identity: rules changed while the broker was down
		// are applied before anything is delivered (see recheckRestored), and rule
		// changes from now on reach this session too.
		sess.az = o.authorizer(s.authz, id, now)
		for _, sr := range r.Subs {
			group, _, shared := parseSharedFilter(sr.Filter)
			sub := &subscription{filter: sr.Filter, group: group, isShared: shared, qos: sr.QoS, noLocal: sr.NL, rap: sr.RAP, rh: sr.RH, subID: sr.SubID}
			sess.putSubLocked(sub)
			s.router.add(sess, sub)
		}
		qerr := s.st.ForEachQueued(ctx, id, func(seq uint64, v []byte) error {
			om, err := decodeQueued(v, "")
			if err != nil {
				s.log.Warn("store: skipping unreadable queued message", "client", id, "seq", seq, "err", err)
				return nil
			}
			om.seq = seq
			sess.lastSeq = max(sess.lastSeq, seq)
			if om.state != stateQueued && om.pid != 0 {
				if _, dup := sess.inflight[om.pid]; !dup {
					sess.inflight[om.pid] = om
					sess.order = append(sess.order, om.pid)
					nQueued++
					return nil
				}
			}
			om.state, om.pid = stateQueued, 0
			sess.queue = append(sess.queue, om)
			sess.addQueued(om.msg.size())
			nQueued++
			return nil
		})
		if qerr != nil {
			return qerr
		}
		if r.Expiry != 0xFFFFFFFF {
			sess.expiryTimer = time.AfterFunc(left, func() { s.expireSession(sess) })
		}
		s.mu.Lock()
		s.sessions[id] = sess
		s.mu.Unlock()
		restored = append(restored, sess)
		nSessions++
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore sessions: %w", err)
	}
	for _, id := range expired {
		s.deleteStoredSession(id)
	}
	// Rules may have changed while the broker was down: what they no longer allow is
	// withdrawn, with the messages queued for it, before any client can connect.
	removed := 0
	for _, sess := range restored {
		removed += s.recheckSession(ctx, sess)
	}
	if removed > 0 {
		s.log.Info("restored sessions: subscriptions no longer authorized removed", "count", removed)
	}
	s.log.Info("restored from store", "retained", nRetained, "sessions", nSessions, "queued", nQueued, "expired_sessions", len(expired))
	return nil
}

func parseSharedFilter(f string) (group, real string, shared bool) { return topic.ParseShared(f) }
