package broker

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Abuse control: budgets that bound what clients can make the broker hold, and the
// counters and log lines that say when one was reached.
//
//   - The packets read before CONNACK are bounded by MaxConnectPacketSize (newConn), and
//     must arrive within IdleTimeout (serve).
//   - Listeners refuse a client address over its concurrent or pre-authentication
//     connection limits at accept; they report it here (listenerRefused).
//   - A user name has at most MaxConnectionsPerUsername connected clients (takeUserSlot),
//     and a connection lives at most MaxConnectionLifetime (startLifetime).
//   - A session holds at most MaxSubscriptions filters (handleSubscribe).
//   - Per-connection token buckets pace PUBLISH and control packets, and one bucket per
//     listener paces the PUBLISH packets of all its connections (ratelimit.go).
//   - Retained messages have a count, a payload size and a byte budget, and may expire.
//   - At most MaxSessions sessions exist, online or offline (openSession).
//   - Session queues, subscriptions and retained messages together stay under
//     MaxMemoryBytes: past it, QoS 0 messages for sessions that are not keeping up are
//     dropped, no new retained message is stored and no new subscription is granted;
//     past MaxMemoryBytes plus an eighth, messages of any QoS that would wait in a queue
//     are dropped too.

// defaultMemory is assumed when the memory available to the process cannot be read.
const defaultMemory = 4 << 30

// limitLogEvery is the least time between two log lines for one reason.
const limitLogEvery = 10 * time.Second

// limitReason is why a limit acted. Each has a counter and its own log rate.
type limitReason int

const (
	reasonConnectTooLarge limitReason = iota
	reasonSubscriptionQuota
	reasonPublishThrottled
	reasonControlThrottled
	reasonPublishRejected
	reasonRetainedPayload
	reasonRetainedCount
	reasonRetainedBytes
	reasonRetainedMemory
	reasonMemoryDropped
	reasonRetainedExpired
	reasonConnectTimeout
	reasonPerIPConnections
	reasonPerIPPreauth
	reasonUsernameConnections
	reasonLifetimeEnded
	reasonListenerPublishThrottled
	reasonSessionsFull
	reasonSubscriptionMemory
	numLimitReasons
)

func (r limitReason) String() string {
	return [numLimitReasons]string{
		reasonConnectTooLarge:          "connect_too_large",
		reasonSubscriptionQuota:        "subscription_quota",
		reasonPublishThrottled:         "publish_throttled",
		reasonControlThrottled:         "control_throttled",
		reasonPublishRejected:          "publish_rate_rejected",
		reasonRetainedPayload:          "retained_payload_too_large",
		reasonRetainedCount:            "retained_count_full",
		reasonRetainedBytes:            "retained_bytes_full",
		reasonRetainedMemory:           "retained_memory_full",
		reasonMemoryDropped:            "memory_dropped",
		reasonRetainedExpired:          "retained_expired",
		reasonConnectTimeout:           "connect_timeout",
		reasonPerIPConnections:         "per_ip_connections",
		reasonPerIPPreauth:             "per_ip_preauth",
		reasonUsernameConnections:      "username_connections",
		reasonLifetimeEnded:            "connection_lifetime",
		reasonListenerPublishThrottled: "listener_publish_throttled",
		reasonSessionsFull:             "sessions_full",
		reasonSubscriptionMemory:       "subscription_memory_full",
	}[r]
}

// level is the level of the log line of r: routine housekeeping is logged at debug
// level, what every exposed broker sees (scanners holding sockets open, lifetimes that
// end by design) at info level, and the rest, which a client pushed into, as warnings.
func (r limitReason) level() slog.Level {
	switch r {
	case reasonRetainedExpired:
		return slog.LevelDebug
	case reasonConnectTimeout, reasonLifetimeEnded:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// limitState is the abuse-control state of one Server.
type limitState struct {
	queued     atomic.Int64 // bytes in session queues (see addQueued)
	subs       atomic.Int64 // bytes counted for subscriptions (see subCost)
	hits       [numLimitReasons]atomic.Int64
	loggedAt   [numLimitReasons]atomic.Int64 // unix nanoseconds of the last log line
	suppressed [numLimitReasons]atomic.Int64 // hits not logged since then

	housekeep sync.Once
}

// LimitStats counts what the abuse controls did since the server started, and what the
// budgets hold now.
type LimitStats struct {
	ConnectTooLarge         int64 // connections closed for a CONNECT over MaxConnectPacketSize
	SubscriptionsRefused    int64 // filters refused because the session had MaxSubscriptions
	PublishThrottled        int64 // PUBLISH packets whose reading waited for a publish rate
	ControlThrottled        int64 // control packets whose reading waited for MaxControlRate
	PublishRejected         int64 // PUBLISH packets refused with 0x97 by a publish rate
	RetainedPayloadTooLarge int64 // retained messages not stored: payload over MaxRetainedPayload
	RetainedCountFull       int64 // ... MaxRetained reached
	RetainedBytesFull       int64 // ... MaxRetainedBytes reached
	RetainedMemoryFull      int64 // ... MaxMemoryBytes reached
	MemoryDropped           int64 // messages dropped because MaxMemoryBytes was reached
	RetainedExpired         int64 // retained messages dropped as expired (RetainedExpiry or their own expiry)
	// ConnectTimeouts counts connections closed because no CONNECT (or no step of an
	// enhanced authentication) arrived within IdleTimeout.
	ConnectTimeouts int64
	// PerIPConnectionsRefused and PerIPPreauthRefused count connections a listener closed
	// at accept because their client address had too many open, or too many that had not
	// completed CONNECT (listener.PerIPLimits).
	PerIPConnectionsRefused int64
	PerIPPreauthRefused     int64
	// UsernameConnectionsRefused counts CONNECTs refused by MaxConnectionsPerUsername.
	UsernameConnectionsRefused int64
	// LifetimeEnded counts connections ended by MaxConnectionLifetime.
	LifetimeEnded int64
	// ListenerPublishThrottled counts PUBLISH packets whose reading waited for
	// MaxListenerPublishRate (rather than for a per-connection rate).
	ListenerPublishThrottled int64
	// SessionsRefused counts CONNECTs refused because MaxSessions sessions existed.
	SessionsRefused int64
	// SubscriptionMemoryFull counts filters refused because the memory budget was full.
	SubscriptionMemoryFull int64

	QueuedBytes       int64 // bytes in session queues now
	SubscriptionBytes int64 // bytes counted for the subscriptions of every session now
	RetainedBytes     int64 // bytes of retained messages now
	RetainedMessages  int64 // retained messages now
}

// LimitStats returns the abuse-control counters.
func (s *Server) LimitStats() LimitStats {
	l := s.o.limits
	h := func(r limitReason) int64 { return l.hits[r].Load() }
	return LimitStats{
		ConnectTooLarge:            h(reasonConnectTooLarge),
		SubscriptionsRefused:       h(reasonSubscriptionQuota),
		PublishThrottled:           h(reasonPublishThrottled),
		ControlThrottled:           h(reasonControlThrottled),
		PublishRejected:            h(reasonPublishRejected),
		RetainedPayloadTooLarge:    h(reasonRetainedPayload),
		RetainedCountFull:          h(reasonRetainedCount),
		RetainedBytesFull:          h(reasonRetainedBytes),
		RetainedMemoryFull:         h(reasonRetainedMemory),
		MemoryDropped:              h(reasonMemoryDropped),
		RetainedExpired:            h(reasonRetainedExpired),
		ConnectTimeouts:            h(reasonConnectTimeout),
		PerIPConnectionsRefused:    h(reasonPerIPConnections),
		PerIPPreauthRefused:        h(reasonPerIPPreauth),
		UsernameConnectionsRefused: h(reasonUsernameConnections),
		LifetimeEnded:              h(reasonLifetimeEnded),
		ListenerPublishThrottled:   h(reasonListenerPublishThrottled),
		SessionsRefused:            h(reasonSessionsFull),
		SubscriptionMemoryFull:     h(reasonSubscriptionMemory),
		QueuedBytes:                l.queued.Load(),
		SubscriptionBytes:          l.subs.Load(),
		RetainedBytes:              s.retained.bytes.Load(),
		RetainedMessages:           s.retained.count.Load(),
	}
}

// limitHit counts one action of a limit and logs it, at most once per reason every
// limitLogEvery, with the number of hits not logged since. The line names the client and
// its address, never a payload or a credential.
func (s *Server) limitHit(r limitReason, c *conn, attrs ...any) { s.limitHits(r, 1, c, attrs...) }

// limitHits is limitHit for n actions at once.
func (s *Server) limitHits(r limitReason, n int64, c *conn, attrs ...any) {
	l := s.o.limits
	l.hits[r].Add(n)
	now := time.Now().UnixNano()
	last := l.loggedAt[r].Load()
	if now-last < int64(limitLogEvery) || !l.loggedAt[r].CompareAndSwap(last, now) {
		l.suppressed[r].Add(n)
		return
	}
	attrs = append(attrs, "reason", r.String(), "not_logged_since_last", l.suppressed[r].Swap(0))
	if c != nil {
		attrs = append(attrs, "client", c.info.ClientID, "peer", c.meta.Peer, "listener", c.meta.Listener)
	}
	msg := "abuse control: limit reached"
	if r == reasonRetainedExpired {
		msg = "retained messages expired"
	}
	s.log.Log(context.Background(), r.level(), msg, attrs...)
}

// memoryUsed is what session queues, subscriptions and retained messages hold.
func (s *Server) memoryUsed() int64 {
	return s.o.limits.queued.Load() + s.o.limits.subs.Load() + s.retained.bytes.Load()
}

// memoryFull reports whether adding extra bytes would pass the memory budget; with hard,
// whether they would pass it by more than an eighth.
func (s *Server) memoryFull(extra int64, hard bool) bool {
	budget := s.o.MaxMemoryBytes
	if hard {
		budget += budget / 8
	}
	return s.memoryUsed()+extra > budget
}

// addQueued records a change of the bytes held by a session queue. Call with the
// session's lock held, for every change of queueSize.
func (s *session) addQueued(n int) {
	s.queueSize += n
	s.srv.o.limits.queued.Add(int64(n))
}

// startHousekeeping starts, once per Server, the goroutines that sweep expired retained
// messages and re-check subscriptions against sources with a ttl: from Serve, or from the first connection when HandleConn is used alone. It
// runs until ctx is done.
func (s *Server) startHousekeeping(ctx context.Context) {
	s.o.limits.housekeep.Do(func() {
		go s.housekeeping(ctx)
		if every, ok := s.authz.RecheckInterval(); ok {
			go s.recheckLoop(ctx, every)
		}
	})
}

func (s *Server) housekeeping(ctx context.Context) {
	if s.o.RetainedExpiry <= 0 {
		return
	}
	t := time.NewTicker(sweepInterval(s.o.RetainedExpiry))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.dropRetained(s.retained.expired(now, s.o.RetainedExpiry))
		}
	}
}

// sweepInterval is how often expired retained messages are looked for: a quarter of
// the expiry, between one second and one minute.
func sweepInterval(expiry time.Duration) time.Duration {
	return min(max(expiry/4, time.Second), time.Minute)
}

// admitRetained decides whether m, a retained message from a client, may be stored. An
// empty payload (deleting the topic's retained message) is always admitted, and so is a
// replacement that does not grow the retained bytes; a new topic or a larger payload must
// fit every budget. Concurrent publishers may together pass a budget by at most one
// message each.
func (s *Server) admitRetained(m *Message) (limitReason, bool) {
	if len(m.Payload) == 0 {
		return 0, true
	}
	o := &s.o
	if len(m.Payload) > o.MaxRetainedPayload {
		return reasonRetainedPayload, false
	}
	oldSize, exists := s.retained.sizeOf(m.Topic)
	if !exists && o.MaxRetained >= 0 && s.retained.count.Load() >= int64(o.MaxRetained) {
		return reasonRetainedCount, false
	}
	grow := int64(m.size() - oldSize)
	if grow <= 0 {
		return 0, true
	}
	if s.retained.bytes.Load()+grow > o.MaxRetainedBytes {
		return reasonRetainedBytes, false
	}
	if s.memoryFull(grow, false) {
		return reasonRetainedMemory, false
	}
	return 0, true
}

// dropRetained deletes retained messages that expired, each only while it is still its
// topic's retained message, from memory and from the store.
func (s *Server) dropRetained(stale []*Message) {
	if len(stale) == 0 {
		return
	}
	var gone []string
	for _, m := range stale {
		if s.retained.deleteIf(m) {
			gone = append(gone, m.Topic)
		}
	}
	if len(gone) == 0 {
		return
	}
	s.limitHits(reasonRetainedExpired, int64(len(gone)), nil, "messages", len(gone))
	if s.st == nil {
		return
	}
	b := s.st.NewBatch()
	for _, t := range gone {
		b.DeleteRetained(t)
	}
	if err := b.CommitNoSync(context.Background()); err != nil {
		s.log.Error("store: delete expired retained messages", "err", err)
	}
}

// matchRetained returns the live retained messages that filter matches, and drops the
// ones found expired on the way.
func (s *Server) matchRetained(filter string, now time.Time) []*Message {
	live, stale := s.retained.matchLive(filter, now, s.o.RetainedExpiry)
	s.dropRetained(stale)
	return live
}

// quotaCode is the refusal of a request over a quota: 0x97 for MQTT 5, and for MQTT 3.1.1
// the generic failure of the packet that answers it.
func (c *conn) quotaCode(failure packet.ReasonCode) packet.ReasonCode {
	if c.version == packet.V5 {
		return packet.QuotaExceeded
	}
	return failure
}

// connectTooLarge counts a first packet over MaxConnectPacketSize, and reports whether
// the bytes already received show an MQTT 5 CONNECT, whose client may be told why
// (CONNACK 0x95). Nothing more is read from the socket to find out.
func (c *conn) connectTooLarge() bool {
	c.srv.limitHit(reasonConnectTooLarge, c)
	return c.in.bufferedConnectV5()
}

// bufferedConnectV5 reports whether the buffered bytes after a fixed header that was
// refused for its size begin the variable header of an MQTT 5 CONNECT.
func (b *inBuf) bufferedConnectV5() bool {
	if b.buf == nil || b.r == 0 {
		return false
	}
	rest := b.buf[b.r:b.w]
	if b.buf[b.r-1]&0x80 != 0 {
		// The size was refused before the last byte of the remaining length: skip it.
		i := 0
		for i < len(rest) && rest[i]&0x80 != 0 {
			i++
		}
		if i >= len(rest) || i > 2 {
			return false
		}
		rest = rest[i+1:]
	}
	return len(rest) >= 7 && string(rest[:7]) == "\x00\x04MQTT\x05"
}

// limitCounter is one figure of LimitStats with its name in $SYS (limits/<name>).
type limitCounter struct {
	name  string
	value int64
}

func (l LimitStats) counters() []limitCounter {
	return []limitCounter{
		{"connect_too_large", l.ConnectTooLarge},
		{"subscriptions_refused", l.SubscriptionsRefused},
		{"publish_throttled", l.PublishThrottled},
		{"control_throttled", l.ControlThrottled},
		{"publish_rejected", l.PublishRejected},
		{"retained_payload_too_large", l.RetainedPayloadTooLarge},
		{"retained_count_full", l.RetainedCountFull},
		{"retained_bytes_full", l.RetainedBytesFull},
		{"retained_memory_full", l.RetainedMemoryFull},
		{"memory_dropped", l.MemoryDropped},
		{"retained_expired", l.RetainedExpired},
		{"connect_timeouts", l.ConnectTimeouts},
		{"per_ip_connections_refused", l.PerIPConnectionsRefused},
		{"per_ip_preauth_refused", l.PerIPPreauthRefused},
		{"username_connections_refused", l.UsernameConnectionsRefused},
		{"connection_lifetime_ended", l.LifetimeEnded},
		{"listener_publish_throttled", l.ListenerPublishThrottled},
		{"sessions_refused", l.SessionsRefused},
		{"subscription_memory_full", l.SubscriptionMemoryFull},
		{"queued_bytes", l.QueuedBytes},
		{"subscription_bytes", l.SubscriptionBytes},
		{"retained_bytes", l.RetainedBytes},
	}
}
