package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCPOptions configures a TCP listener.
type TCPOptions struct {
	Name           string // listener name without the type
	Bind           string // host:port
	MaxConnections int64  // 0 = unlimited
	Logger         *slog.Logger
	// TLS, when set, makes this an "ssl" listener: every connection completes a TLS
	// handshake within HandshakeTimeout (default 15 s) before the handler sees it.
	TLS              *tls.Config
	HandshakeTimeout time.Duration
	// Access, when set, is checked on accept: a denied peer is closed before anything
	// else happens. With Proxy set it is checked, after the PROXY header, against the
	// real client instead (against the proxy for a LOCAL or UNKNOWN header).
	Access *AccessRules
	// Proxy, when set, requires a PROXY protocol header (v1 or v2) from a trusted peer at
	// the start of every connection, before any TLS handshake; Meta.Peer is then the
	// real client and Meta.Proxy what the header said.
	Proxy *ProxyOptions
	// MaxConnRate bounds how fast connections are accepted; extra ones are closed at once,
	// before any byte is read or a TLS handshake starts (so it is also the handshake rate).
	MaxConnRate RateLimit
	// PerIP bounds the connections of one client address; one over a limit is closed as
	// soon as the address is known, before any TLS handshake. A connection counts as not
	// admitted (PerIPLimits.MaxPreauth) from accept, through the PROXY header and the TLS
	// handshake, until the handler calls Meta.Admitted.
	PerIP PerIPLimits
}

// TCP is a plain TCP listener.
type TCP struct {
	name   string
	ln     net.Listener
	max    int64
	tls    *tls.Config
	hto    time.Duration
	access *AccessRules
	proxy  *proxyConfig // nil: no PROXY protocol
	rate   *connRate
	perIP  *ipCounts // nil: no per-address limits
	hook   refuseHook
	open   atomic.Int64
	log    *slog.Logger
	close  sync.Once
}

// NewTCP binds the listener so that its address is known before Serve.
func NewTCP(ctx context.Context, o TCPOptions) (*TCP, error) {
	proxy, err := newProxyConfig(o.Proxy)
	if err != nil {
		return nil, fmt.Errorf("listener tcp:%s: %w", o.Name, err)
	}
	ln, err := listen(ctx, o.Bind)
	if err != nil {
		return nil, fmt.Errorf("listener tcp:%s: %w", o.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TCP{name: "tcp:" + o.Name, ln: ln, max: o.MaxConnections, log: log, tls: o.TLS, hto: o.HandshakeTimeout, access: o.Access, proxy: proxy, rate: newConnRate(o.MaxConnRate),
		perIP: newIPCounts(o.PerIP)}
	if o.TLS != nil {
		t.name = "ssl:" + o.Name
		if t.hto <= 0 {
			t.hto = 15 * time.Second
		}
	}
	return t, nil
}

// Name implements Listener.
func (t *TCP) Name() string { return t.name }

// Addr implements Listener.
func (t *TCP) Addr() net.Addr { return t.ln.Addr() }

// Open implements Listener.
func (t *TCP) Open() int64 { return t.open.Load() }

// OnRefuse implements Listener.
func (t *TCP) OnRefuse(f RefuseFunc) { t.hook.set(f) }

// Close implements Listener.
func (t *TCP) Close() error {
	var err error
	t.close.Do(func() { err = t.ln.Close() })
	return err
}

// Serve implements Listener.
func (t *TCP) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { _ = t.Close() })
	defer stop()
	var backoff time.Duration
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary failures such as EMFILE: back off instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Warn("accept failed", "listener", t.name, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if !t.rate.allow(time.Now()) {
			t.log.Debug("connection refused: listener connect rate exceeded", "listener", t.name, "peer", conn.RemoteAddr())
			_ = conn.Close()
			continue
		}
		if t.proxy != nil && !t.proxy.trusts(peerOf(conn.RemoteAddr()).Addr()) {
			t.log.Debug("connection refused: not a trusted PROXY protocol peer", "listener", t.name, "peer", conn.RemoteAddr())
			_ = conn.Close()
			continue
		}
		// With the PROXY protocol the access rules wait for the real client's address.
		if t.proxy == nil && !t.access.Allowed(peerOf(conn.RemoteAddr()).Addr()) {
			t.log.Debug("connection refused by access rules", "listener", t.name, "peer", conn.RemoteAddr())
			_ = conn.Close()
			continue
		}
		if t.max > 0 && t.open.Load() >= t.max {
			t.log.Debug("connection refused: listener full", "listener", t.name, "peer", conn.RemoteAddr(), "max_connections", t.max)
			_ = conn.Close()
			continue
		}
		meta := Meta{Listener: t.name, Peer: peerOf(conn.RemoteAddr())}
		// The connection's share of its address's counts: taken here, or with the PROXY
		// protocol once the header names the client.
		var ip *ipSlot
		if t.proxy == nil {
			var why Refusal
			if ip, why = t.perIP.take(meta.Peer.Addr()); why != 0 {
				refused(t.log, &t.hook, t.name, why, meta.Peer, nil)
				_ = conn.Close()
				continue
			}
		}
		t.open.Add(1)
		var detached atomic.Bool
		end := sync.OnceFunc(func() {
			t.open.Add(-1)
			ip.release()
		})
		meta.Detach = func() func() {
			detached.Store(true)
			return end
		}
		if t.tls != nil {
			meta.Detach = nil // the TLS layer buffers: an idle TLS connection keeps its goroutine
		}
		go func() {
			if t.proxy != nil {
				if !t.readProxy(ctx, conn, &meta) {
					end()
					return
				}
				var why Refusal
				if ip, why = t.perIP.take(meta.Peer.Addr()); why != 0 {
					refused(t.log, &t.hook, t.name, why, meta.Peer, conn.RemoteAddr())
					_ = conn.Close()
					end()
					return
				}
			}
			if ip != nil {
				meta.Admitted = ip.admitted
			}
			if t.tls != nil {
				tc, ok := t.handshake(ctx, conn)
				if !ok {
					end()
					return
				}
				cs := tc.ConnectionState()
				conn, meta.TLS = tc, &cs
			}
			h(ctx, conn, meta)
			if !detached.Load() {
				end()
			}
		}()
	}
}

// readProxy reads the PROXY header of a new connection from a trusted peer, then checks
// the access rules against the client it names, and records it in meta. On failure it
// closes the connection (logged at debug level) and returns false.
func (t *TCP) readProxy(ctx context.Context, conn net.Conn, meta *Meta) bool {
	info, err := t.proxy.read(ctx, conn)
	if err != nil {
		t.log.Debug("PROXY header refused", "listener", t.name, "proxy", conn.RemoteAddr(), "err", err)
		_ = conn.Close()
		return false
	}
	if info.Source.IsValid() {
		meta.Peer = info.Source
	}
	if !t.access.Allowed(meta.Peer.Addr()) {
		t.log.Debug("connection refused by access rules", "listener", t.name, "peer", meta.Peer, "proxy", conn.RemoteAddr())
		_ = conn.Close()
		return false
	}
	meta.Proxy = &info
	return true
}

// handshake completes the TLS handshake of a new connection within the handshake timeout.
// A failed handshake closes the connection; it is logged at debug level only, since
// scanners and misconfigured clients make them common.
func (t *TCP) handshake(ctx context.Context, conn net.Conn) (*tls.Conn, bool) {
	tc := tls.Server(conn, t.tls)
	hctx, cancel := context.WithTimeout(ctx, t.hto)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		t.log.Debug("TLS handshake failed", "listener", t.name, "peer", conn.RemoteAddr(), "err", err)
		_ = conn.Close()
		return nil, false
	}
	return tc, true
}
