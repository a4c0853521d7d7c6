package listener

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// PerIPLimits bound the connections that one client address holds open on a listener.
// The address is the real client behind a trusted PROXY header; IPv6 addresses count by
// their /64 prefix, the smallest block a single host is usually given. Both limits are
// checked as soon as the address is known (on accept, or right after the PROXY header),
// before any TLS handshake or MQTT byte. Zero means no limit.
type PerIPLimits struct {
	// MaxConnections bounds the connections open at once from one address.
	MaxConnections int64
	// MaxPreauth bounds the connections open at once from one address that the handler
	// has not admitted yet (Meta.Admitted): for the broker, those that have not
	// completed CONNECT.
	MaxPreauth int64
}

func (l PerIPLimits) on() bool { return l.MaxConnections > 0 || l.MaxPreauth > 0 }

// Refusal says why a listener closed a connection as soon as it knew the client's address.
type Refusal int

// The refusals reported through OnRefuse.
const (
	// RefusedPerIPConnections: the address already had PerIPLimits.MaxConnections open.
	RefusedPerIPConnections Refusal = iota + 1
	// RefusedPerIPPreauth: the address already had PerIPLimits.MaxPreauth connections
	// that were not admitted yet.
	RefusedPerIPPreauth
)

func (r Refusal) String() string {
	switch r {
	case RefusedPerIPConnections:
		return "max_connections_per_ip"
	case RefusedPerIPPreauth:
		return "max_preauth_connections_per_ip"
	}
	return "unknown"
}

// RefuseFunc is told of each connection a listener closes for a Refusal. It runs on the
// goroutine that refused the connection and must not block.
type RefuseFunc func(r Refusal, listener string, peer netip.AddrPort)

// refuseHook holds a listener's RefuseFunc; the zero value reports nowhere.
type refuseHook struct{ f atomic.Pointer[RefuseFunc] }

func (h *refuseHook) set(f RefuseFunc) {
	if f == nil {
		h.f.Store(nil)
		return
	}
	h.f.Store(&f)
}

func (h *refuseHook) report(r Refusal, listener string, peer netip.AddrPort) {
	if f := h.f.Load(); f != nil {
		(*f)(r, listener, peer)
	}
}

// ipCounts counts the open and not yet admitted connections of each client address on one
// listener. An address is forgotten when its last connection closes, so the table never
// holds more entries than the listener has connections open; nil counts nothing.
type ipCounts struct {
	lim PerIPLimits
	mu  sync.Mutex
	m   map[netip.Addr]*ipCount
}

type ipCount struct{ open, preauth int64 }

func newIPCounts(l PerIPLimits) *ipCounts {
	if !l.on() {
		return nil
	}
	return &ipCounts{lim: l, m: make(map[netip.Addr]*ipCount)}
}

// ipKey is what a client address counts as: itself, or its /64 for IPv6.
func ipKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// take counts a new connection from addr, both open and not admitted, and returns its
// slot; or it returns the limit that refuses it. A nil *ipCounts returns a nil slot, which
// is valid.
func (c *ipCounts) take(addr netip.Addr) (*ipSlot, Refusal) {
	if c == nil {
		return nil, 0
	}
	key := ipKey(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[key]
	switch {
	case n == nil:
		n = &ipCount{}
		c.m[key] = n
	case c.lim.MaxConnections > 0 && n.open >= c.lim.MaxConnections:
		return nil, RefusedPerIPConnections
	case c.lim.MaxPreauth > 0 && n.preauth >= c.lim.MaxPreauth:
		return nil, RefusedPerIPPreauth
	}
	n.open++
	n.preauth++
	return &ipSlot{c: c, key: key, open: true, preauth: true}, 0
}

// tracked is the number of addresses counted now.
func (c *ipCounts) tracked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// ipSlot is one connection's share of its address's counts.
type ipSlot struct {
	c             *ipCounts
	key           netip.Addr
	open, preauth bool // guarded by c.mu
}

// admitted ends the connection's pre-authentication count. It is safe to call on a nil
// slot, more than once, and after release.
func (s *ipSlot) admitted() {
	if s == nil {
		return
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.preauth {
		s.preauth = false
		s.c.m[s.key].preauth--
	}
}

// release ends every count of the connection, which has closed. It is safe to call on a
// nil slot and more than once.
func (s *ipSlot) release() {
	if s == nil {
		return
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if !s.open {
		return
	}
	n := s.c.m[s.key]
	n.open--
	if s.preauth {
		n.preauth--
	}
	s.open, s.preauth = false, false
	if n.open == 0 {
		delete(s.c.m, s.key)
	}
}
