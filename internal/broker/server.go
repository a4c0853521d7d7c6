package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store"
)

// Server is an MQTT broker. Connections reach it through HandleConn, normally from the
// listeners that Serve runs.
type Server struct {
	o     Options
	log   *slog.Logger
	st    *store.Store
	authn Authenticator
	authz Authorizer

	router   *router
	retained *retainedStore
	stats    stats
	started  time.Time

	parker *parker   // nil when connections cannot park
	inBufs sync.Pool // read buffers of active connections

	mu        sync.Mutex
	sessions  map[string]*session
	conns     map[*conn]struct{}
	userConns map[string]int           // connected clients by user name (MaxConnectionsPerUsername)
	pubRates  map[string]*rate.Limiter // PUBLISH rate by listener (MaxListenerPublishRate)
	nextSeq   uint64
	closing   bool
	connsDone sync.WaitGroup
}

// stats are the counters published in $SYS.
type stats struct {
	connected   atomic.Int64
	msgsIn      atomic.Int64
	msgsOut     atomic.Int64
	bytesIn     atomic.Int64
	bytesOut    atomic.Int64
	dropped     atomic.Int64
	slowClosed  atomic.Int64
	connections atomic.Int64 // total accepted
}

// New returns a Server. It does not listen: call Serve with listeners, or HandleConn.
func New(o Options) *Server {
	o = o.withDefaults()
	s := &Server{
		o:        o,
		log:      o.Logger,
		st:       o.Store,
		authn:    o.Authenticator,
		authz:    o.Authorizer,
		router:   newRouter(o.SharedStrategy),
		retained: newRetainedStore(),
		sessions: make(map[string]*session),
		conns:    make(map[*conn]struct{}),
		started:  time.Now(),
	}
	s.inBufs.New = func() any { return new([inBufSize]byte) }
	if s.authn == nil {
		s.authn = allowAll{}
	}
	if s.authz == nil {
		s.authz = allowAll{}
	}
	s.authz.OnChange(func() { s.recheckAll(context.Background()) })
	return s
}

// Serve runs the listeners until ctx is done, then shuts down: listeners stop accepting,
// MQTT 5 clients get DISCONNECT 0x8B (server shutting down), and every connection closes.
// It returns the first listener error, if any.
func (s *Server) Serve(ctx context.Context, ls []listener.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.o.ParkAfter > 0 && s.parker == nil {
		p, err := newParker(s.log)
		if err != nil {
			s.log.Info("idle connections keep their goroutine", "why", err)
		} else {
			s.parker = p
			defer p.close()
		}
	}
	// Expired retained messages are swept from the start, clients or not (restored ones
	// included); a connection handed to HandleConn without Serve starts it too.
	s.startHousekeeping(ctx)
	errs := make(chan error, len(ls))
	var wg sync.WaitGroup
	for _, l := range ls {
		l.OnRefuse(s.listenerRefused)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Serve(ctx, s.HandleConn); err != nil {
				errs <- err
				cancel()
			}
		}()
		s.log.Info("listening", "listener", l.Name(), "addr", l.Addr().String())
	}
	if s.parker != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.runTrim(ctx, s.parker) }()
	}
	if s.o.SysInterval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.runSys(ctx) }()
	}
	<-ctx.Done()
	for _, l := range ls {
		_ = l.Close()
	}
	s.Shutdown()
	wg.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// Shutdown disconnects every client (MQTT 5 clients with reason 0x8B) and waits for the
// connections to finish, at most a few seconds.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kick(serverShuttingDown)
	}
	done := make(chan struct{})
	go func() { s.connsDone.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("shutdown: connections still open after 5s")
	}
}

// HandleConn serves one client connection until it ends or, when the listener allows it
// (Meta.Detach), until it has been idle for Options.ParkAfter. It closes nc.
func (s *Server) HandleConn(ctx context.Context, nc net.Conn, meta listener.Meta) {
	c := newConn(s, nc, meta)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connsDone.Add(1)
	c.listenerRate = s.listenerRateLocked(meta.Listener)
	s.mu.Unlock()
	s.stats.connections.Add(1)
	c.onEnd = func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.connsDone.Done()
	}
	c.serve(ctx) // returns early when the connection parks
}

// errSessionsFull is returned by openSession when MaxSessions sessions exist.
var errSessionsFull = errors.New("the broker holds max_sessions sessions")

// openSession attaches c to the session of its client id: a new one, or the existing one
// when the client asked to resume and is the same principal. A connection already attached
// to the session is taken over [MQTT-3.1.4-3]. It reports whether a session was resumed.
func (s *Server) openSession(c *conn, cleanStart bool, expiry uint32) (*session, bool, error) {
	id := c.info.ClientID
	for range 16 {
		s.mu.Lock()
		sess := s.sessions[id]
		if sess == nil {
			if limit := s.o.MaxSessions; limit > 0 && len(s.sessions) >= limit {
				s.mu.Unlock()
				return nil, false, errSessionsFull
			}
			sess = s.newSessionLocked(id, ownerOf(c), expiry)
			sess.conn = c
			sess.az = c.az
			sess.online.Store(true)
			s.sessions[id] = sess
			s.mu.Unlock()
			if err := s.saveSession(sess, time.Time{}); err != nil {
				return nil, false, err
			}
			return sess, false, nil
		}
		s.mu.Unlock()

		sess.mu.Lock()
		old := sess.conn
		sess.mu.Unlock()
		if old != nil {
			old.kick(sessionTakenOver)
			select {
			case <-old.done:
			case <-time.After(5 * time.Second):
				return nil, false, errors.New("previous connection of this client id did not close")
			}
		}

		sess.mu.Lock()
		if sess.destroyed || sess.conn != nil {
			sess.mu.Unlock()
			continue
		}
		if cleanStart || !sess.ownedBy(c.auth.principal) {
			// A clean start, or another principal using this client id (the same client
			// id and user name are not enough: only what authentication vouched for
			// counts): the old session's subscriptions and messages are never handed over.
			sess.mu.Unlock()
			s.destroySession(sess)
			continue
		}
		sess.owner.Store(ownerOf(c))
		sess.conn = c
		sess.az = c.az
		sess.online.Store(true)
		sess.expiry = expiry
		if sess.expiryTimer != nil {
			sess.expiryTimer.Stop()
			sess.expiryTimer = nil
		}
		if sess.willTimer != nil {
			// Reconnected before the will delay ended: no will [MQTT-3.1.3-9].
			sess.willTimer.Stop()
			sess.willTimer = nil
		}
		sess.mu.Unlock()
		if err := s.saveSession(sess, time.Time{}); err != nil {
			return nil, false, err
		}
		return sess, true, nil
	}
	return nil, false, errors.New("client id contended by concurrent connections")
}

// destroySession ends a session: it leaves the registry and the router, and its queued
// messages are dropped (shared ones go to another member).
func (s *Server) destroySession(sess *session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
	shared := sess.takeShared()
	sess.mu.Lock()
	if sess.destroyed {
		sess.mu.Unlock()
		return
	}
	sess.destroyed = true
	subs := sess.takeSubsLocked()
	sess.addQueued(-sess.queueSize) // the memory budget counts live queues only
	sess.queue, sess.queueHead = nil, 0
	sess.inflight = nil
	if sess.expiryTimer != nil {
		sess.expiryTimer.Stop()
	}
	sess.mu.Unlock()
	for f := range subs {
		s.router.remove(sess, f)
	}
	s.deleteStoredSession(sess.id)
	if left := s.redistribute(sess, shared, false); len(left) > 0 {
		s.stats.dropped.Add(int64(len(left)))
	}
}

// newSessionLocked creates a session; call with s.mu held.
func (s *Server) newSessionLocked(id string, o *owner, expiry uint32) *session {
	s.nextSeq++
	sess := &session{srv: s, id: id, seq: s.nextSeq, expiry: expiry,
		subs: make(map[string]*subscription), inflight: make(map[uint16]*outMsg), awaitRel: make(map[uint16]time.Time)}
	sess.owner.Store(o)
	return sess
}

// newSession creates a session that is not yet in the registry.
func (s *Server) newSession(id string, o *owner, expiry uint32) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newSessionLocked(id, o, expiry)
}

// expireSession ends a session whose expiry interval has passed while it was offline.
func (s *Server) expireSession(sess *session) {
	sess.mu.Lock()
	stale := sess.conn != nil || sess.destroyed
	sess.mu.Unlock()
	if !stale {
		s.destroySession(sess)
	}
}

// redistribute gives the uncompleted shared-subscription messages of a member that left
// to another member of the same group: a connected one when there is one. When keep is
// set (the departing session persists) a message with no other connected member stays
// with it and is returned; otherwise it may go to an offline member with a persistent
// session, and is dropped only when the group has no other member at all.
func (s *Server) redistribute(from *session, msgs []*outMsg, keep bool) (left []*outMsg) {
	now := time.Now()
	var ts []target
	for _, om := range msgs {
		ts = s.router.match(om.msg.Topic, om.msg.From, ts[:0])
		var to []target
		for i := range ts {
			if ts[i].shared == om.shared && ts[i].sess != from {
				to = ts[i : i+1]
				break
			}
		}
		if to == nil || (keep && !to[0].sess.online.Load()) {
			left = append(left, om)
			continue
		}
		if _, err := s.persistRoute(om.msg, to, false); err != nil {
			s.log.Error("store: shared redistribution", "err", err)
			left = append(left, om)
			continue
		}
		to[0].sess.deliver(om.msg, &to[0], now)
		s.forget(from.id, om.seq)
	}
	clear(ts)
	return left
}

// route delivers a message to every matching session and keeps it when it is retained.
// With a store, what must survive a crash is durable before route returns, so the caller
// may acknowledge the message; with lazy set it is written but not yet synced, and
// needSync tells the caller to sync before acknowledging. It returns the number of
// sessions the message was delivered to.
func (s *Server) route(m *Message, scratch []target, lazy bool) (_ []target, n int, needSync bool, err error) {
	now := time.Now()
	ts := s.router.match(m.Topic, m.From, scratch[:0])
	if needSync, err = s.persistRoute(m, ts, lazy); err != nil {
		clear(ts)
		return ts[:0], 0, false, err
	}
	if m.Retain && s.o.RetainAvailable {
		s.retained.set(m)
	}
	for i := range ts {
		ts[i].sess.deliver(m, &ts[i], now)
	}
	n = len(ts)
	clear(ts) // drop references so the scratch slice does not pin sessions
	return ts[:0], n, needSync, nil
}

// DisconnectCerts ends every connection whose verified client certificate matches, with
// reason (MQTT 5 clients get DISCONNECT with it), and returns how many it ended. It is how
// the live sessions of a revoked certificate are closed. match sees the listener name and
// the certificate, which are fixed when the connection is accepted.
func (s *Server) DisconnectCerts(match func(listener string, cert *clientinfo.Cert) bool, reason packet.ReasonCode) int {
	s.mu.Lock()
	var hit []*conn
	for c := range s.conns {
		if c.info.Cert != nil && match(c.meta.Listener, c.info.Cert) {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	for _, c := range hit {
		s.log.Info("disconnecting a client whose certificate matched", "listener", c.meta.Listener,
			"cert_cn", c.info.Cert.CN, "cert_serial", c.info.Cert.Serial, "reason", reason.String())
		c.kick(reason)
	}
	return len(hit)
}

// DisconnectClients disconnects every connected client that match selects (MQTT 5:
// DISCONNECT with reason) and reports how many. match sees a copy of the client's
// identity as it was when the client connected.
func (s *Server) DisconnectClients(match func(info *clientinfo.Info) bool, reason packet.ReasonCode) int {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	n := 0
	for _, sess := range sessions {
		sess.mu.Lock()
		c := sess.conn
		sess.mu.Unlock()
		if c == nil {
			continue
		}
		// The fields written before the session was attached; Attrs and Superuser may
		// change at re-authentication and are not part of the copy.
		info := clientinfo.Info{ClientID: c.info.ClientID, Username: c.info.Username, Peer: c.info.Peer,
			Listener: c.info.Listener, ProtocolVersion: c.info.ProtocolVersion, Cert: c.info.Cert}
		if match(&info) {
			s.log.Info("disconnecting a client", "client", info.ClientID, "peer", info.PeerHost(), "reason", reason.String())
			c.kick(reason)
			n++
		}
	}
	return n
}
