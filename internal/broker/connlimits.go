package broker

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Limits on connections as a whole: the per-address refusals of the listeners, the
// connected clients of one user name, and the lifetime of a connection.

// listenerRefused counts a connection that a listener closed at accept for a per-address
// limit. Serve installs it on every listener.
func (s *Server) listenerRefused(r listener.Refusal, name string, peer netip.AddrPort) {
	reason := reasonPerIPConnections
	if r == listener.RefusedPerIPPreauth {
		reason = reasonPerIPPreauth
	}
	s.limitHit(reason, nil, "listener", name, "peer", peer)
}

// admitted tells the listener that the client is in, so that it no longer counts
// against its address's pre-authentication limit.
func (c *conn) admitted() {
	if c.meta.Admitted != nil {
		c.meta.Admitted()
	}
}

// takeUserSlot counts c among the connected clients of its user name, or reports false
// when the name already has MaxConnectionsPerUsername of them. A client that takes over
// the live session of its own client id and user name is let in over the limit: the
// connection it replaces is about to end, and its place with it.
func (s *Server) takeUserSlot(c *conn) bool {
	limit, name := s.o.MaxConnectionsPerUsername, c.info.Username
	if limit <= 0 || name == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userConns[name] >= limit {
		sess := s.sessions[c.info.ClientID]
		if sess == nil || !sess.online.Load() || sess.owner.Load().Username != name {
			return false
		}
	}
	if s.userConns == nil {
		s.userConns = make(map[string]int)
	}
	s.userConns[name]++
	c.userSlot = name
	return true
}

// releaseUserSlot gives back the place takeUserSlot gave c, if any.
func (s *Server) releaseUserSlot(c *conn) {
	name := c.userSlot
	if name == "" {
		return
	}
	c.userSlot = ""
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userConns[name] <= 1 {
		delete(s.userConns, name) // the table holds only names with clients connected
		return
	}
	s.userConns[name]--
}

// lifetimeOf is the lifetime of one connection: between nine tenths of limit and limit.
func lifetimeOf(limit time.Duration) time.Duration {
	if spread := int64(limit / 10); spread > 0 {
		return limit - time.Duration(rand.Int64N(spread+1))
	}
	return limit
}

// startLifetime arms the timer that ends the connection at its lifetime. The timer kicks
// the connection from its own goroutine, so it reaches a parked connection as well.
func (c *conn) startLifetime() {
	limit := c.srv.o.MaxConnectionLifetime
	if limit <= 0 {
		return
	}
	d := lifetimeOf(limit)
	c.lifetime = time.AfterFunc(d, func() {
		c.srv.limitHit(reasonLifetimeEnded, c, "lifetime", d.Round(time.Second).String())
		c.kick(packet.MaximumConnectTime)
	})
}

// stopLifetime stops the lifetime timer of a connection that has ended.
func (c *conn) stopLifetime() {
	if c.lifetime != nil {
		c.lifetime.Stop()
	}
}
