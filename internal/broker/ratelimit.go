package broker

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Rate limits. A client over a rate is slowed down by not reading its socket: the read
// loop waits out the token bucket's delay before it handles the packet, so the client's
// own sends back up in TCP and nothing is buffered for it here. Each connection has its
// own buckets; the PUBLISH packets of all the connections of a listener also share one
// bucket of that listener. A paused connection holds at most one reservation in the
// shared bucket, so the connections of a listener over its rate take turns.

// connRates holds a connection's token buckets; each is made when first needed and is nil
// while its rate is unlimited.
type connRates struct {
	publish, publishBytes, control *rate.Limiter
}

func (c *conn) rateLimits() *connRates {
	if c.rates == nil {
		c.rates = &connRates{}
	}
	return c.rates
}

func (r *connRates) publishLimiters(o *Options) (msgs, bytes *rate.Limiter) {
	if r.publish == nil && o.MaxPublishRate > 0 {
		r.publish = rate.NewLimiter(rate.Limit(o.MaxPublishRate), o.MaxPublishRate)
	}
	if r.publishBytes == nil && o.MaxPublishBytesRate > 0 {
		// The burst is one second's worth, or one packet of the largest size when that
		// is more, so that every packet the broker accepts can pass.
		burst := int(min(max(o.MaxPublishBytesRate, int64(o.MaxPacketSize)), 1<<30))
		r.publishBytes = rate.NewLimiter(rate.Limit(o.MaxPublishBytesRate), burst)
	}
	return r.publish, r.publishBytes
}

// listenerRateLocked returns the shared PUBLISH bucket of the listener of that name,
// making it on first use, or nil without MaxListenerPublishRate. Call with s.mu held. The
// table holds one bucket per listener name the server has seen.
func (s *Server) listenerRateLocked(name string) *rate.Limiter {
	n := s.o.MaxListenerPublishRate
	if n <= 0 {
		return nil
	}
	l := s.pubRates[name]
	if l == nil {
		if s.pubRates == nil {
			s.pubRates = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Limit(n), n)
		s.pubRates[name] = l
	}
	return l
}

func (r *connRates) controlLimiter(o *Options) *rate.Limiter {
	if r.control == nil && o.MaxControlRate > 0 {
		r.control = rate.NewLimiter(rate.Limit(o.MaxControlRate), o.MaxControlRate)
	}
	return r.control
}

// pace applies the rate limits to packet p, of size bytes on the wire, before it is
// handled: when the client is over a rate, the read loop waits until it is back under it.
// It reports false when the connection closed meanwhile. An MQTT 5 QoS 1 or 2 PUBLISH is
// not paced when the limits reject: handlePublish refuses it instead (allowPublish).
func (c *conn) pace(p packet.Packet, size int) bool {
	o := &c.srv.o
	var delay time.Duration
	var reason limitReason
	switch p := p.(type) {
	case *packet.Publish:
		if (o.MaxPublishRate <= 0 && o.MaxPublishBytesRate <= 0 && c.listenerRate == nil) || c.rejectsOverRate(p) {
			return true // without publish limits a PUBLISH costs no clock read here
		}
		now := time.Now()
		msgs, bytes := c.rateLimits().publishLimiters(o)
		if msgs != nil {
			delay = msgs.ReserveN(now, 1).DelayFrom(now)
		}
		if bytes != nil {
			delay = max(delay, bytes.ReserveN(now, min(size, bytes.Burst())).DelayFrom(now))
		}
		reason = reasonPublishThrottled
		if c.listenerRate != nil {
			if d := c.listenerRate.ReserveN(now, 1).DelayFrom(now); d > delay {
				delay, reason = d, reasonListenerPublishThrottled
			}
		}
	case *packet.Subscribe, *packet.Unsubscribe, *packet.Pingreq, *packet.Auth:
		if o.MaxControlRate <= 0 {
			return true
		}
		now := time.Now()
		delay = c.rateLimits().controlLimiter(o).ReserveN(now, 1).DelayFrom(now)
		reason = reasonControlThrottled
	default:
		return true
	}
	if delay <= 0 {
		return true
	}
	c.srv.limitHit(reason, c)
	return c.pause(delay)
}

// rejectsOverRate reports whether p is refused, rather than paced, when it is over a
// publish rate: only MQTT 5 QoS 1 and 2 messages have an acknowledgement that can say so.
func (c *conn) rejectsOverRate(p *packet.Publish) bool {
	return c.srv.o.RateLimitReject && c.version == packet.V5 && p.QoS > 0
}

// allowPublish takes the tokens of one PUBLISH of size bytes if the client and its
// listener have them, and reports whether they had: the reject mode of the publish rates.
func (c *conn) allowPublish(now time.Time, size int) bool {
	msgs, bytes := c.rateLimits().publishLimiters(&c.srv.o)
	var taken []*rate.Reservation
	ok := true
	if msgs != nil {
		r := msgs.ReserveN(now, 1)
		taken = append(taken, r)
		ok = r.DelayFrom(now) == 0
	}
	if bytes != nil && ok {
		r := bytes.ReserveN(now, min(size, bytes.Burst()))
		taken = append(taken, r)
		ok = r.DelayFrom(now) == 0
	}
	if c.listenerRate != nil && ok {
		r := c.listenerRate.ReserveN(now, 1)
		taken = append(taken, r)
		ok = r.DelayFrom(now) == 0
	}
	if !ok {
		for _, r := range taken {
			r.CancelAt(now) // a refused message costs nothing
		}
	}
	return ok
}

// pause stops reading for d, first writing the answers to what was read so far. It
// reports false when the connection is closed meanwhile (a take-over, a shutdown, a
// failed write). The wait does not count against the client's keep alive.
func (c *conn) pause(d time.Duration) bool {
	c.deferring = false
	c.flushOwn()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closing():
		return false
	}
	c.lastRead = time.Now()
	return true
}

// closing returns a channel that is closed once the connection is closing.
func (c *conn) closing() <-chan struct{} {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed == nil {
		c.closed = make(chan struct{})
		if c.wclosed || c.closeAfter {
			close(c.closed)
		}
	}
	return c.closed
}

// signalClosingLocked closes the channel of closing, if there is one. Call it, with wmu
// held, wherever wclosed or closeAfter is set.
func (c *conn) signalClosingLocked() {
	if c.closed == nil {
		return
	}
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
}
