// Package listener accepts client connections on TCP and WebSocket listeners and hands each
// one to the broker with what the transport knows about it. It enforces the per-listener
// connection limit before the broker sees the connection.
package listener

import (
	"context"
	"net"
	"net/http"
	"net/netip"
)

// Meta is what the transport knows about a connection.
type Meta struct {
	Listener string         // "tcp:default", "ws:default"
	Peer     netip.AddrPort // remote address
	Header   http.Header    // WebSocket upgrade request headers; nil for TCP
}

// Handler serves one connection. It must close conn before returning; the listener counts
// the connection as open until the handler returns.
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
