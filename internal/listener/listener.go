// Package listener accepts client connections on TCP and WebSocket listeners and hands each
// one to the broker with what the transport knows about it. It enforces the per-listener
// connection limit before the broker sees the connection.
package listener

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Meta is what the transport knows about a connection.
type Meta struct {
	Listener string         // "tcp:default", "ws:default"
	Peer     netip.AddrPort // remote address: the real client behind a PROXY protocol proxy
	Header   http.Header    // WebSocket upgrade request headers; nil for TCP
	// TLS is the state of the completed handshake on ssl and wss listeners; nil otherwise.
	TLS *tls.ConnectionState
	// Proxy is what the PROXY protocol header said on a listener that requires one; nil
	// on other listeners.
	Proxy *ProxyInfo
	// Detach, when not nil, lets the handler return before the connection ends: it
	// returns a function to call exactly when the connection has ended (it is safe to
	// call more than once). Until then the connection still counts as open. Listeners
	// whose connections are plain sockets offer it, so an idle connection needs no
	// goroutine of its own.
	Detach func() (done func())
	// Admitted, when not nil, is called by the handler once it has let the client in (the
	// broker: once CONNECT is accepted); from then on the connection no longer counts
	// against PerIPLimits.MaxPreauth. It is safe to call more than once.
	Admitted func()
}

// Handler serves one connection. It must close conn before returning, unless it called
// meta.Detach; the listener counts the connection as open until the handler returns or,
// after Detach, until the done function is called.
type Handler func(ctx context.Context, conn net.Conn, meta Meta)

// Listener is a bound listener.
type Listener interface {
	// Name is "type:name".
	Name() string
	// Addr is the bound address (useful when the configured port was 0).
	Addr() net.Addr
	// Serve accepts connections until ctx is done or Close is called, then waits for no
	// one; open connections are the handler's to end.
	Serve(ctx context.Context, h Handler) error
	// Close stops accepting.
	Close() error
	// Open reports the number of connections whose handler is running.
	Open() int64
	// OnRefuse sets the function told of each connection closed for a per-address limit
	// (PerIPLimits); nil tells no one. Call it before Serve.
	OnRefuse(f RefuseFunc)
}

func peerOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap
	}
	return netip.AddrPort{}
}

func parseAddrPort(s string) (netip.AddrPort, error) { return netip.ParseAddrPort(s) }

// acquire takes one of max slots counted by n and reports whether it got one; max <= 0
// means no limit. It is safe for concurrent use: the count never exceeds max.
func acquire(n *atomic.Int64, max int64) bool {
	for {
		cur := n.Load()
		if max > 0 && cur >= max {
			return false
		}
		if n.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// limitListener bounds the sockets open at once, in all and per client address. A socket
// over a limit is closed as soon as it is accepted (or, with the PROXY protocol, as soon
// as its header names the client), before anything else is read from it; the others get
// TCP_NODELAY and hold their slot until they are closed.
type limitListener struct {
	net.Listener
	name   string
	max    int64 // 0 = unlimited
	n      atomic.Int64
	log    *slog.Logger
	access *AccessRules
	proxy  *proxyConfig // nil: no PROXY protocol
	rate   *connRate
	perIP  *ipCounts // nil: no per-address limits
	hook   *refuseHook
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.proxy != nil && !l.proxy.trusts(peerOf(c.RemoteAddr()).Addr()) {
			l.log.Debug("connection refused: not a trusted PROXY protocol peer", "listener", l.name, "peer", c.RemoteAddr())
			_ = c.Close()
			continue
		}
		// With the PROXY protocol the access rules wait for the real client's address:
		// proxyConn checks them once it has read the header.
		if !l.rate.allow(time.Now()) {
			l.log.Debug("connection refused: listener connect rate exceeded", "listener", l.name, "peer", c.RemoteAddr())
			_ = c.Close()
			continue
		}
		if l.proxy == nil && !l.access.Allowed(peerOf(c.RemoteAddr()).Addr()) {
			l.log.Debug("connection refused by access rules", "listener", l.name, "peer", c.RemoteAddr())
			_ = c.Close()
			continue
		}
		var ip *ipSlot
		if l.proxy == nil {
			peer := peerOf(c.RemoteAddr())
			var why Refusal
			if ip, why = l.perIP.take(peer.Addr()); why != 0 {
				l.refuse(why, peer, nil)
				_ = c.Close()
				continue
			}
		}
		if !acquire(&l.n, l.max) {
			l.log.Debug("connection refused: listener full", "listener", l.name, "peer", c.RemoteAddr(), "max_connections", l.max)
			ip.release()
			_ = c.Close()
			continue
		}
		// Go turns TCP_NODELAY on for every TCP connection it creates.
		sc := &slotConn{Conn: c, l: l, ip: ip}
		if l.proxy != nil {
			// The header is read by the connection's own goroutine, not here.
			return &proxyConn{Conn: sc, pc: l.proxy, access: l.access, log: l.log, name: l.name}, nil
		}
		return sc, nil
	}
}

// refuse logs and reports a connection refused for a per-address limit.
func (l *limitListener) refuse(why Refusal, peer netip.AddrPort, proxy net.Addr) {
	refused(l.log, l.hook, l.name, why, peer, proxy)
}

// refused logs (at debug level: the broker counts and logs refusals at a bounded rate)
// and reports a connection closed for a per-address limit.
func refused(log *slog.Logger, hook *refuseHook, name string, why Refusal, peer netip.AddrPort, proxy net.Addr) {
	if proxy != nil {
		log.Debug("connection refused: per-address limit", "listener", name, "peer", peer, "proxy", proxy, "limit", why.String())
	} else {
		log.Debug("connection refused: per-address limit", "listener", name, "peer", peer, "limit", why.String())
	}
	hook.report(why, name, peer)
}

// slotConn gives its slots back to the listener when closed.
type slotConn struct {
	net.Conn
	l    *limitListener
	once sync.Once

	mu     sync.Mutex
	ip     *ipSlot // the client address's counts; nil without them
	closed bool
}

// Close implements net.Conn.
func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.n.Add(-1)
		c.mu.Lock()
		c.closed = true
		ip := c.ip
		c.mu.Unlock()
		ip.release()
	})
	return err
}

// attachIP gives the connection the per-address slot taken once its PROXY header named
// the client; if the connection is already closed the slot is released at once.
func (c *slotConn) attachIP(ip *ipSlot) {
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.ip = ip
	}
	c.mu.Unlock()
	if closed {
		ip.release()
	}
}

// admitted ends the connection's pre-authentication count.
func (c *slotConn) admitted() {
	c.mu.Lock()
	ip := c.ip
	c.mu.Unlock()
	ip.admitted()
}

// CloseWrite half-closes the socket, as net/http does with a *net.TCPConn.
func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
