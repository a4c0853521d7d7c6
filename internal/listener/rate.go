package listener

import (
	"net/netip"
	"sync"
	"time"
)

// tokenBucket allows rate events per second with bursts of up to burst.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// RateLimit bounds how fast new connections are accepted: Rate per second, with bursts of
// Burst (at least 1). The zero value allows everything.
type RateLimit struct {
	Rate  float64
	Burst int
}

func (r RateLimit) on() bool { return r.Rate > 0 }

func (r RateLimit) burst() float64 { return float64(max(r.Burst, 1)) }

// connRate is a listener-wide limiter; nil allows everything.
type connRate struct {
	mu  sync.Mutex
	lim RateLimit
	b   tokenBucket
}

func newConnRate(l RateLimit) *connRate {
	if !l.on() {
		return nil
	}
	return &connRate{lim: l}
}

func (c *connRate) allow(now time.Time) bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.take(now, c.lim.Rate, c.lim.burst())
}

// maxTrackedIPs bounds the memory of the per-address limiter: past it, addresses whose
// bucket has refilled are forgotten, and if that is not enough the table starts afresh
// (the listener-wide limit still holds).
const maxTrackedIPs = 1 << 16

// ipRate limits connections per client address; nil allows everything.
type ipRate struct {
	mu  sync.Mutex
	lim RateLimit
	m   map[netip.Addr]*tokenBucket
}

func newIPRate(l RateLimit) *ipRate {
	if !l.on() {
		return nil
	}
	return &ipRate{lim: l, m: make(map[netip.Addr]*tokenBucket)}
}

func (r *ipRate) allow(addr netip.Addr, now time.Time) bool {
	if r == nil {
		return true
	}
	addr = ipKey(addr) // IPv6 by /64, like the per-address connection limits
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.m[addr]
	if b == nil {
		if len(r.m) >= maxTrackedIPs {
			r.sweepLocked(now)
		}
		b = &tokenBucket{}
		r.m[addr] = b
	}
	return b.take(now, r.lim.Rate, r.lim.burst())
}

func (r *ipRate) sweepLocked(now time.Time) {
	for a, b := range r.m {
		if b.tokens+now.Sub(b.last).Seconds()*r.lim.Rate >= r.lim.burst() {
			delete(r.m, a)
		}
	}
	if len(r.m) >= maxTrackedIPs {
		clear(r.m)
	}
}

// WithPerIPRate adds a limit on new connections per client address to the rules; it is
// checked wherever the rules are (on accept, or after a PROXY header for the real client).
func (a *AccessRules) WithPerIPRate(l RateLimit) *AccessRules {
	a.perIP = newIPRate(l)
	return a
}
