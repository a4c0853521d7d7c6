package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Reasons the server closes a connection (MQTT 5 DISCONNECT reason codes).
const (
	serverShuttingDown = packet.ServerShuttingDown
	sessionTakenOver   = packet.SessionTakenOver
)

// conn is one client connection.
type conn struct {
	srv  *Server
	nc   net.Conn
	meta listener.Meta
	info clientinfo.Info
	rd   *packet.Reader
	in   *inBuf
	done chan struct{}
	ctx  context.Context

	// Parking (see park_linux.go): an idle connection gives up its goroutine.
	fd           int // socket descriptor, -1 when the connection cannot be parked
	parkID       uint64
	noPark       bool // guarded by the parker's lock
	lastRead     time.Time
	rdDeadline   time.Time // the read deadline last set
	kaTimer      *time.Timer
	listenerDone func() // from listener.Meta.Detach, once the connection parked
	onEnd        func() // the server's bookkeeping when the connection has ended

	version   packet.Version
	sess      *session
	keepAlive time.Duration // read deadline between packets; 0 = none

	// What the client announced in CONNECT (MQTT 5).
	recvMax     uint16
	maxPacket   uint32
	aliasMax    uint16
	problemInfo bool
	zeroExpiry  bool // CONNECT had session expiry 0: DISCONNECT may not raise it

	will         *Message
	willDelay    time.Duration
	willDone     bool // DISCONNECT other than 0x04 received: no will [MQTT-3.1.2-8]
	disconnected bool // the client sent DISCONNECT
	cleanEnd     bool // ... with reason 0x00 or 0x04 (or before MQTT 5)
	guarded      bool // the Guard let the client through: finish tells it the end

	inAlias map[uint16]string
	scratch []target

	// Outgoing side, see writer.go.
	wmu           sync.Mutex
	wbuf          []byte
	flushing      bool
	wclosed       bool
	closeAfter    bool
	held          bool        // output waits for CONNACK: the session is attached before it is sent
	deferFlush    bool        // the read loop has more buffered packets and flushes after them
	deferring     bool        // the read loop's own copy of deferFlush
	syncPending   atomic.Bool // messages written lazily to the store await a sync
	sendTimeout   time.Duration
	highWatermark int
	outAlias      map[string]uint16

	auth authState        // what authentication granted; see auth.go
	az   ClientAuthorizer // what the client may do; set after authentication

	kickOnce   sync.Once
	kickReason packet.ReasonCode // guarded by wmu; 0 until kicked

	// Abuse control, see ratelimit.go and connlimits.go.
	rates        *connRates    // token buckets, made on first use
	listenerRate *rate.Limiter // shared by the connections of the listener; nil = none
	pktSize      int           // wire size of the packet being handled
	closed       chan struct{} // made by closing; closed when the connection is closing
	userSlot     string        // the user name whose connected clients count this one
	lifetime     *time.Timer   // ends the connection at MaxConnectionLifetime
}

func newConn(s *Server, nc net.Conn, meta listener.Meta) *conn {
	c := &conn{srv: s, nc: nc, meta: meta, done: make(chan struct{}), problemInfo: true}
	c.info.Listener = meta.Listener
	c.info.Peer = meta.Peer
	c.info.WebSocket = meta.Header
	switch {
	case meta.TLS != nil:
		if id, ok := tlsconf.PeerIdentity(*meta.TLS); ok {
			c.info.Cert = &clientinfo.Cert{CN: id.CN, DN: id.DN, DNSNames: id.DNSNames, URIs: id.URIs, SHA256: id.SHA256,
				Issuer: id.Issuer, Serial: id.Serial}
		}
	case meta.Proxy != nil && meta.Proxy.SSLVerified && meta.Proxy.SSLCN != "":
		// A trusted load balancer terminated TLS and verified the client's certificate;
		// its PROXY v2 header carries the certificate's CN (the listener accepts headers
		// from trusted proxies only).
		c.info.Cert = &clientinfo.Cert{CN: meta.Proxy.SSLCN, ViaProxy: true}
	}
	c.in = &inBuf{nc: nc, pool: &s.inBufs}
	c.rd = packet.NewReader(c.in, s.o.MaxConnectPacketSize) // until CONNECT is accepted
	c.fd = -1
	if tc, ok := nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil && meta.Detach != nil && s.parker != nil && s.o.ParkAfter > 0 {
			_ = rc.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	c.sendTimeout, c.highWatermark = s.o.SendTimeout, s.o.HighWatermark
	if l, ok := s.o.PerListener[meta.Listener]; ok {
		if l.SendTimeout > 0 {
			c.sendTimeout = l.SendTimeout
		}
		if l.HighWatermark > 0 {
			c.highWatermark = l.HighWatermark
		}
	}
	return c
}

// kick closes the connection from another goroutine: MQTT 5 clients first get a
// DISCONNECT with reason.
func (c *conn) kick(reason packet.ReasonCode) {
	c.kickOnce.Do(func() {
		c.wmu.Lock()
		c.kickReason = reason
		c.wmu.Unlock()
		if c.version == packet.V5 {
			c.send(&packet.Disconnect{ReasonCode: reason})
		}
		c.flushAndClose()
	})
}

// serve runs the connection: CONNECT, then packets until the connection ends or parks.
func (c *conn) serve(ctx context.Context) {
	c.ctx = ctx
	c.setReadDeadline(time.Now().Add(c.srv.o.IdleTimeout))
	p, err := c.rd.ReadPacket(0)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.srv.limitHit(reasonConnectTimeout, c)
		}
		c.refuseConnect(p, err)
		c.finish()
		return
	}
	if !c.connect(ctx, p.(*packet.Connect)) {
		c.finish()
		return
	}
	c.lastRead = time.Now()
	c.run()
}

// run reads packets until the connection ends, then finishes it; or until it parks.
func (c *conn) run() {
	if c.readLoop(c.ctx) {
		return // parked: a wake-up calls resume
	}
	c.finish()
}

// resume continues the read loop of a parked connection, on a new goroutine.
func (c *conn) resume() {
	if c.kaTimer != nil {
		c.kaTimer.Stop()
		c.kaTimer = nil
	}
	c.run()
}

// finish runs once, when the connection has ended.
func (c *conn) finish() {
	c.cleanup()
	c.in.release()
	if c.guarded {
		// Before done is closed: a connection taking the session over waits for it.
		c.srv.o.Guard.Ended(c.ctx, &c.info, c.end())
	}
	close(c.done)
	if c.onEnd != nil {
		c.onEnd()
	}
	if c.listenerDone != nil {
		c.listenerDone()
	}
}

// end tells how the connection ended, for the Guard.
func (c *conn) end() End {
	c.wmu.Lock()
	kicked := c.kickReason
	c.wmu.Unlock()
	switch {
	case c.sess == nil:
		return EndRefused
	case c.disconnected && c.cleanEnd:
		return EndClean
	case kicked == sessionTakenOver:
		return EndTakenOver
	case kicked != 0:
		return EndByServer
	}
	return EndAbnormal
}

// closeSocket closes the connection's socket. A parked connection is woken first, so its
// read loop ends it properly.
func (c *conn) closeSocket() {
	if p := c.srv.parker; p != nil && c.fd >= 0 && p.stop(c) {
		go c.resume()
	}
	_ = c.nc.Close()
}

// tryPark hands the idle connection to the parker. It reports false when the connection
// must keep reading on this goroutine.
func (c *conn) tryPark(kaDeadline time.Time) bool {
	p := c.srv.parker
	if p == nil || c.fd < 0 {
		return false
	}
	if c.listenerDone == nil {
		c.listenerDone = c.meta.Detach()
	}
	if c.keepAlive > 0 {
		c.kaTimer = time.AfterFunc(time.Until(kaDeadline), func() {
			if p.unpark(c) {
				go c.resume() // and find the keep alive expired
			}
		})
	}
	if !p.park(c) {
		if c.kaTimer != nil {
			c.kaTimer.Stop()
			c.kaTimer = nil
		}
		return false
	}
	return true
}

// refuseConnect answers a CONNECT that could not be decoded, when the protocol lets the
// server say why, and closes.
func (c *conn) refuseConnect(p packet.Packet, err error) {
	var pe *packet.Error
	if !errors.As(err, &pe) {
		if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.srv.log.Debug("connection closed before CONNECT", "peer", c.meta.Peer, "err", err)
		}
		c.closeSocket()
		return
	}
	c.srv.log.Debug("bad CONNECT", "peer", c.meta.Peer, "listener", c.meta.Listener, "err", err)
	cp, _ := p.(*packet.Connect)
	switch {
	case pe.Code == packet.PacketTooLarge:
		if c.connectTooLarge() {
			c.version = packet.V5
			c.send(&packet.Connack{ReasonCode: packet.PacketTooLarge})
		}
	case cp != nil && cp.Version == packet.V5:
		c.version = packet.V5
		c.send(&packet.Connack{ReasonCode: pe.Code})
	case pe.Code == packet.UnsupportedProtocolVersion:
		c.version = packet.V311
		c.send(&packet.Connack{ReasonCode: packet.ConnRefusedProtocolVersion})
	case pe.Code == packet.ClientIdentifierNotValid && cp != nil:
		c.version = cp.Version
		c.send(&packet.Connack{ReasonCode: packet.ConnRefusedIdentifierRejected})
	}
	c.flushAndClose()
}

// refuse sends a CONNACK refusal in the client's protocol version and closes.
func (c *conn) refuse(code packet.ReasonCode, why string) bool {
	c.srv.log.Info("connection refused", "client", c.info.ClientID, "peer", c.meta.Peer,
		"listener", c.meta.Listener, "reason", code.String(), "why", why)
	if c.version != packet.V5 {
		code = code.ConnackV3()
	}
	c.sendFirst(&packet.Connack{ReasonCode: code})
	c.flushAndClose()
	return false
}

func (c *conn) limits() topic.Limits {
	return topic.Limits{MaxLevels: c.srv.o.MaxTopicLevels, MaxLength: c.srv.o.MaxTopicLength}
}

// connect processes an accepted CONNECT packet and reports whether the client is in.
func (c *conn) connect(ctx context.Context, cp *packet.Connect) bool {
	o := &c.srv.o
	c.version = cp.Version
	c.info.ProtocolVersion = byte(cp.Version)
	c.info.ClientID = cp.ClientID
	c.info.Username = cp.Username
	assigned := false
	if len(cp.ClientID) > o.MaxClientIDLen {
		return c.refuse(packet.ClientIdentifierNotValid, "client id too long")
	}
	if cp.ClientID == "" {
		c.info.ClientID = newClientID()
		assigned = true
	}
	if as, ok := o.CertIdentity[c.meta.Listener]; ok {
		// The verified certificate, not the client, says who this is.
		if as.Username != "" {
			if c.info.Username = c.info.Cert.Field(as.Username); c.info.Username == "" {
				return c.refuse(packet.NotAuthorized, "no verified client certificate field "+as.Username+" for the user name")
			}
		}
		if as.ClientID != "" {
			if c.info.ClientID = c.info.Cert.Field(as.ClientID); c.info.ClientID == "" {
				return c.refuse(packet.NotAuthorized, "no verified client certificate field "+as.ClientID+" for the client id")
			}
			assigned = false
		}
	}

	var ack packet.Connack
	ka := cp.KeepAlive
	if c.version == packet.V5 {
		props := &cp.Properties
		c.recvMax = 65535
		if props.Has(packet.PropReceiveMaximum) {
			c.recvMax = props.ReceiveMaximum
		}
		if props.Has(packet.PropMaximumPacketSize) {
			c.maxPacket = props.MaximumPacketSize
		}
		c.aliasMax = props.TopicAliasMaximum
		if props.Has(packet.PropRequestProblemInfo) {
			c.problemInfo = props.RequestProblemInfo == 1
		}
		switch {
		case o.ServerKeepAlive > 0 && o.ServerKeepAlive != ka:
			ka = o.ServerKeepAlive
			ack.Properties.ServerKeepAlive = ka
			ack.Properties.Set(packet.PropServerKeepAlive)
		case ka > o.MaxKeepAlive || (ka == 0 && o.MaxKeepAlive < 65535):
			ka = o.MaxKeepAlive
			ack.Properties.ServerKeepAlive = ka
			ack.Properties.Set(packet.PropServerKeepAlive)
		}
	} else if ka > o.MaxKeepAlive || (ka == 0 && o.MaxKeepAlive < 65535) {
		return c.refuse(packet.ServerUnavailable, "keep alive above max_keepalive")
	}
	c.keepAlive = time.Duration(float64(time.Duration(ka)*time.Second) * o.KeepaliveMultiplier)

	if w := cp.Will; w != nil {
		if err := topic.ValidateName(w.Topic, c.limits()); err != nil || topic.IsSys(w.Topic) {
			return c.refuse(packet.TopicNameInvalid, "will topic invalid")
		}
		if w.QoS > o.MaxQoS {
			return c.refuse(packet.QoSNotSupported, "will QoS above maximum QoS")
		}
		if w.Retain && !o.RetainAvailable {
			return c.refuse(packet.RetainNotSupported, "retained will but retain is not available")
		}
		c.will = &Message{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain, Props: w.Properties, From: c.info.ClientID}
		if w.Properties.Has(packet.PropMessageExpiry) {
			// The expiry of a will counts from when it is published; keep the interval.
			c.will.Props.Clear(packet.PropMessageExpiry)
			c.will.Props.MessageExpiry = w.Properties.MessageExpiry
		}
		c.willDelay = time.Duration(w.Properties.WillDelay) * time.Second
		c.will.Props.Clear(packet.PropWillDelay)
	}

	if !c.authenticate(ctx, cp, &ack) {
		return false
	}
	if err := c.srv.authz.CheckIdentity(&c.info); err != nil {
		return c.refuse(packet.ClientIdentifierNotValid, err.Error())
	}
	c.az = c.srv.authz.ForClient(&c.info, c.auth.acl)
	if c.will != nil && !c.az.Authorize(ctx, authz.Action{Kind: authz.ActPublish, QoS: c.will.QoS, Retain: c.will.Retain}, c.will.Topic) {
		return c.refuse(packet.NotAuthorized, "will topic not authorized")
	}
	// Checked once the client is authenticated, so that the answer tells a stranger
	// nothing about a user name's connections.
	if !c.srv.takeUserSlot(c) {
		c.srv.limitHit(reasonUsernameConnections, c, "username_limit", o.MaxConnectionsPerUsername)
		return c.refuse(packet.QuotaExceeded, "the user name has max_connections_per_username clients connected")
	}

	maxExpiry := uint32(min(o.SessionExpiry/time.Second, 0xFFFFFFFF))
	var expiry uint32
	if c.version == packet.V5 {
		expiry = cp.Properties.SessionExpiry
		if expiry > maxExpiry {
			expiry = maxExpiry
			ack.Properties.SessionExpiry = expiry
			ack.Properties.Set(packet.PropSessionExpiry)
		}
		c.zeroExpiry = expiry == 0
	} else if !cp.CleanStart {
		expiry = maxExpiry
	}

	// From the moment the session is attached the router may deliver to this connection;
	// hold that output back until CONNACK is in front of it [MQTT-3.2.0-1].
	c.wmu.Lock()
	c.held = true
	c.wmu.Unlock()
	sess, present, err := c.srv.openSession(c, cp.CleanStart, expiry)
	if errors.Is(err, errSessionsFull) {
		c.srv.limitHit(reasonSessionsFull, c, "max_sessions", o.MaxSessions)
		return c.refuse(packet.QuotaExceeded, err.Error())
	}
	if err != nil {
		return c.refuse(packet.ServerBusy, err.Error())
	}
	c.sess = sess
	c.srv.stats.connected.Add(1)
	c.admitted()
	c.startLifetime()

	ack.SessionPresent = present
	if c.version == packet.V5 {
		c.fillConnackProps(&ack.Properties, assigned)
	}
	c.sendFirst(&ack)
	c.rd.SetMaxPacketSize(o.MaxPacketSize)
	c.srv.log.Debug("client connected", "client", c.info.ClientID, "peer", c.meta.Peer, "listener", c.meta.Listener,
		"version", c.version.String(), "session_present", present)
	if present {
		// The rules, or who the client is, may have changed since the session's
		// subscriptions were granted: they are checked again before anything is sent.
		c.srv.recheckSession(ctx, sess)
		now := time.Now()
		sess.mu.Lock()
		sess.resumeLocked(now)
		sess.mu.Unlock()
	}
	return true
}

func (c *conn) fillConnackProps(p *packet.Properties, assigned bool) {
	o := &c.srv.o
	if assigned {
		p.AssignedClientID = c.info.ClientID
		p.Set(packet.PropAssignedClientID)
	}
	if o.MaxInflight < 65535 {
		p.ReceiveMaximum = uint16(o.MaxInflight)
		p.Set(packet.PropReceiveMaximum)
	}
	if o.MaxQoS < 2 {
		p.MaximumQoS = o.MaxQoS
		p.Set(packet.PropMaximumQoS)
	}
	if !o.RetainAvailable {
		p.Set(packet.PropRetainAvailable)
	}
	if o.MaxPacketSize < packet.MaxPacketSize {
		p.MaximumPacketSize = uint32(o.MaxPacketSize)
		p.Set(packet.PropMaximumPacketSize)
	}
	if o.MaxTopicAlias > 0 {
		p.TopicAliasMaximum = o.MaxTopicAlias
		p.Set(packet.PropTopicAliasMaximum)
	}
	if !o.WildcardSubscription {
		p.Set(packet.PropWildcardSubAvailable)
	}
	if !o.SharedSubscription {
		p.Set(packet.PropSharedSubAvailable)
	}
}

func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "rampart-" + hex.EncodeToString(b[:])
}

// deadlineSlack is how far a read deadline may be from the wanted one before it is moved.
const deadlineSlack = 100 * time.Millisecond

func (c *conn) setReadDeadline(t time.Time) {
	c.rdDeadline = t
	_ = c.nc.SetReadDeadline(t)
}

// readLoop reads and handles packets until the connection ends, or until it has been
// idle for ParkAfter and is parked (then it reports true).
func (c *conn) readLoop(ctx context.Context) (parked bool) {
	c.srv.startHousekeeping(ctx)
	for {
		if c.in.buffered() > 0 {
			if !c.deferring {
				c.deferring = true
				c.deferFlushes()
			}
		} else {
			c.deferring = false
			c.flushOwn()
		}
		var kaDeadline time.Time
		if c.keepAlive > 0 {
			kaDeadline = c.lastRead.Add(c.keepAlive)
		}
		if c.fd >= 0 && c.in.buffered() == 0 {
			// Wait for the next packet, but only so long before parking. The deadline need
			// not be exact (waking a little early only parks a little early), so it is
			// moved only when it is off by more than deadlineSlack: most packets then
			// cost no timer update.
			deadline := time.Now().Add(c.srv.o.ParkAfter)
			if c.keepAlive > 0 && kaDeadline.Before(deadline) {
				deadline = kaDeadline
			}
			if d := deadline.Sub(c.rdDeadline); d > deadlineSlack || d < -deadlineSlack {
				c.setReadDeadline(deadline)
			}
			err := c.in.waitData()
			switch {
			case err == nil:
			case errors.Is(err, os.ErrDeadlineExceeded) && (c.keepAlive == 0 || time.Now().Before(kaDeadline)):
				c.in.release()
				c.releaseWriteBuf()
				if c.tryPark(kaDeadline) {
					return true
				}
			default:
				c.readFailed(err)
				return false
			}
		}
		// Reading a packet that is not all buffered must not time out before the keep
		// alive does (a later deadline by up to deadlineSlack is harmless).
		if !c.in.hasPacket() {
			if d := c.rdDeadline.Sub(kaDeadline); d < 0 || d > deadlineSlack || kaDeadline.IsZero() != c.rdDeadline.IsZero() {
				c.setReadDeadline(kaDeadline) // zero: no deadline
			}
		}
		h, err := c.rd.ReadFixedHeader()
		var p packet.Packet
		if err == nil {
			var body []byte
			body, err = c.rd.ReadBody(h, nil)
			if err == nil {
				c.srv.stats.bytesIn.Add(int64(h.Size()))
				p, err = packet.Decode(h, body, c.version)
			}
		}
		if err != nil {
			c.readFailed(err)
			return false
		}
		c.lastRead = time.Now()
		c.pktSize = h.Size()
		if !c.pace(p, c.pktSize) {
			return false
		}
		if code, why := c.handle(ctx, p); code != packet.Success {
			c.closeWith(code, why)
			return false
		}
		if c.disconnected || c.isClosed() {
			return false
		}
	}
}

func (c *conn) isClosed() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.wclosed || c.closeAfter
}

// readFailed ends the connection after a read error: a protocol violation gets a
// DISCONNECT with its reason (MQTT 5), a silent client a keep-alive timeout.
func (c *conn) readFailed(err error) {
	var pe *packet.Error
	switch {
	case errors.As(err, &pe):
		c.closeWith(pe.Code, pe.Error())
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.closeWith(packet.KeepAliveTimeout, "no packet within 1.5 x keep alive")
	default:
		c.srv.log.Debug("connection lost", "client", c.info.ClientID, "err", err)
		c.closeSocket()
	}
}

// closeWith ends the connection because of the server: MQTT 5 clients get a DISCONNECT
// with the reason [MQTT-4.13.1-1].
func (c *conn) closeWith(code packet.ReasonCode, why string) {
	c.srv.log.Debug("disconnecting client", "client", c.info.ClientID, "reason", code.String(), "why", why)
	if c.version == packet.V5 && code.ValidFor(packet.DISCONNECT) {
		d := &packet.Disconnect{ReasonCode: code}
		if c.problemInfo && why != "" && len(why) < 256 {
			d.Properties.ReasonString = why
			d.Properties.Set(packet.PropReasonString)
		}
		c.send(d)
	}
	c.flushAndClose()
}

// cleanup runs when the connection has ended: the session is detached, the will is
// published or scheduled, and a session whose expiry is 0 ends.
func (c *conn) cleanup() {
	c.flushAndClose()
	c.stopAuth()
	c.stopLifetime()
	c.srv.releaseUserSlot(c)
	sess := c.sess
	if sess == nil {
		return
	}
	c.srv.stats.connected.Add(-1)
	sess.mu.Lock()
	if sess.conn != c {
		sess.mu.Unlock()
		return
	}
	sess.conn = nil
	sess.online.Store(false)
	expiry := sess.expiry
	will := c.will
	if c.willDone {
		will = nil
	}
	delayed := false
	if will != nil && c.willDelay > 0 && expiry > 0 {
		d := c.willDelay
		if expiry != 0xFFFFFFFF {
			d = min(d, time.Duration(expiry)*time.Second)
		}
		sess.willTimer = time.AfterFunc(d, func() {
			sess.mu.Lock()
			fire := sess.willTimer != nil && sess.conn == nil
			sess.willTimer = nil
			sess.mu.Unlock()
			if fire {
				c.srv.publishWill(will, &c.info, c.az)
			}
		})
		delayed = true
	}
	if expiry > 0 && expiry != 0xFFFFFFFF {
		sess.expiryTimer = time.AfterFunc(time.Duration(expiry)*time.Second, func() { c.srv.expireSession(sess) })
	}
	sess.mu.Unlock()
	if expiry > 0 {
		if err := c.srv.saveSession(sess, time.Now()); err != nil {
			c.srv.log.Error("store: session record", "client", sess.id, "err", err)
		}
	}
	if will != nil && !delayed {
		c.srv.publishWill(will, &c.info, c.az)
	}
	if expiry == 0 {
		c.srv.destroySession(sess)
		return
	}
	sess.putBack(c.srv.redistribute(sess, sess.takeShared(), true))
}
