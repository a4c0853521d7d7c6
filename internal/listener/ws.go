package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WSOptions configures a WebSocket listener.
type WSOptions struct {
	Name string
	Bind string
	Path string // HTTP path that upgrades, e.g. "/mqtt"; other paths get 404
	// MaxConnections bounds the sockets open at once, counted from accept: upgraded
	// connections and those still in the HTTP handshake. A socket over the limit is closed
	// at once. 0 = unlimited.
	MaxConnections int64
	CheckOrigin    bool     // refuse cross-origin upgrades unless the origin is allowed
	AllowedOrigins []string // "https://app.example.com" or host patterns (path.Match)
	// ReadLimit bounds one WebSocket message; the broker passes its maximum packet size.
	// A larger message ends the connection: the handler's read fails after at most
	// ReadLimit+1 bytes of it (the library reads one byte past the limit to tell a full
	// message from a longer one). 0 = no limit.
	ReadLimit int64
	Logger    *slog.Logger
	// TLS, when set, makes this a "wss" listener; the handshake must finish within
	// HandshakeTimeout (default 15 s).
	TLS              *tls.Config
	HandshakeTimeout time.Duration
	// Access, when set, is checked on accept, before the HTTP request is read. With Proxy
	// set it is checked, right after the PROXY header, against the real client instead
	// (against the proxy for a LOCAL or UNKNOWN header).
	Access *AccessRules
	// Proxy, when set, requires a PROXY protocol header (v1 or v2) from a trusted peer at
	// the start of every connection, before any TLS handshake or HTTP request. Accept
	// does not wait for it: the connection's first Read, Write or RemoteAddr, made by the
	// HTTP server's goroutine for that connection, reads it, and from then on the
	// connection's RemoteAddr (hence Meta.Peer) is the real client.
	Proxy *ProxyOptions
	// MaxConnRate bounds how fast connections are accepted, as for TCP.
	MaxConnRate RateLimit
	// PerIP bounds the connections of one client address, as for TCP. A connection
	// counts as not admitted from accept through the TLS and HTTP handshakes until the
	// handler calls Meta.Admitted.
	PerIP PerIPLimits
}

// connKey is the context key under which the HTTP server's connection context holds the
// accepted net.Conn.
type connKey struct{}

// subprotocol is the WebSocket subprotocol of MQTT.
const subprotocol = "mqtt"

// WS is an MQTT-over-WebSocket listener (subprotocol "mqtt").
type WS struct {
	name string
	o    WSOptions
	ln   *limitListener
	open atomic.Int64
	log  *slog.Logger
	hook refuseHook

	mu     sync.Mutex
	srv    *http.Server // set by Serve
	closed bool
}

// NewWS binds the listener.
func NewWS(ctx context.Context, o WSOptions) (*WS, error) {
	if o.Path == "" {
		o.Path = "/mqtt"
	}
	if !strings.HasPrefix(o.Path, "/") {
		return nil, fmt.Errorf("listener ws:%s: path %q must begin with /", o.Name, o.Path)
	}
	for _, p := range o.AllowedOrigins {
		if _, err := path.Match(strings.ToLower(p), ""); err != nil {
			return nil, fmt.Errorf("listener ws:%s: allowed origin %q: %w", o.Name, p, err)
		}
	}
	proxy, err := newProxyConfig(o.Proxy)
	if err != nil {
		return nil, fmt.Errorf("listener ws:%s: %w", o.Name, err)
	}
	ln, err := listen(ctx, o.Bind)
	if err != nil {
		return nil, fmt.Errorf("listener ws:%s: %w", o.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := "ws:" + o.Name
	if o.TLS != nil {
		name = "wss:" + o.Name
		if o.HandshakeTimeout <= 0 {
			o.HandshakeTimeout = 15 * time.Second
		}
	}
	w := &WS{name: name, o: o, log: log}
	w.ln = &limitListener{Listener: ln, name: name, max: o.MaxConnections, log: log, access: o.Access,
		rate: newConnRate(o.MaxConnRate), proxy: proxy, perIP: newIPCounts(o.PerIP), hook: &w.hook}
	return w, nil
}

// Name implements Listener.
func (w *WS) Name() string { return w.name }

// Addr implements Listener.
func (w *WS) Addr() net.Addr { return w.ln.Addr() }

// Open implements Listener.
func (w *WS) Open() int64 { return w.open.Load() }

// OnRefuse implements Listener.
func (w *WS) OnRefuse(f RefuseFunc) { w.hook.set(f) }

// Close implements Listener.
func (w *WS) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.ln.Close()
	if w.srv != nil {
		// Ends connections still in the HTTP handshake; upgraded ones are the handler's.
		_ = w.srv.Close()
	}
	return err
}

// Serve implements Listener.
func (w *WS) Serve(ctx context.Context, h Handler) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path != w.o.Path {
				http.NotFound(rw, r)
				return
			}
			w.upgrade(ctx, rw, r, h)
		}),
		ReadHeaderTimeout: 10 * time.Second, // also bounds the TLS handshake of wss
		TLSConfig:         w.o.TLS,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelDebug),
		// Called by the accept loop: it must not read from c.
		ConnContext: func(cctx context.Context, c net.Conn) context.Context { return context.WithValue(cctx, connKey{}, c) },
	}
	// Only the upgrade request is of use: a refused request ends its connection.
	srv.SetKeepAlivesEnabled(false)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	if w.srv != nil {
		w.mu.Unlock()
		return fmt.Errorf("listener %s: already serving", w.name)
	}
	w.srv = srv
	w.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { _ = w.Close() })
	defer stop()
	var err error
	if w.o.TLS != nil {
		srv.ReadHeaderTimeout = w.o.HandshakeTimeout
		err = srv.ServeTLS(w.ln, "", "") // certificates come from TLSConfig
	} else {
		err = srv.Serve(w.ln)
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("listener %s: %w", w.name, err)
}

// offersMQTT reports whether the client offers the mqtt subprotocol.
func offersMQTT(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), subprotocol) {
				return true
			}
		}
	}
	return false
}

func (w *WS) upgrade(ctx context.Context, rw http.ResponseWriter, r *http.Request, h Handler) {
	if !offersMQTT(r.Header) {
		// MQTT over WebSocket requires the "mqtt" subprotocol: refuse before upgrading.
		w.log.Debug("websocket upgrade refused: subprotocol mqtt not offered", "listener", w.name, "peer", r.RemoteAddr)
		http.Error(rw, "subprotocol mqtt required", http.StatusBadRequest)
		return
	}
	if !acquire(&w.open, w.o.MaxConnections) {
		http.Error(rw, "listener full", http.StatusServiceUnavailable)
		return
	}
	defer w.open.Add(-1)
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{subprotocol},
		InsecureSkipVerify: !w.o.CheckOrigin,
		OriginPatterns:     w.o.AllowedOrigins,
	})
	if err != nil {
		w.log.Debug("websocket upgrade refused", "listener", w.name, "peer", r.RemoteAddr, "err", err)
		return
	}
	if !strings.EqualFold(c.Subprotocol(), subprotocol) {
		_ = c.Close(websocket.StatusPolicyViolation, "subprotocol mqtt required")
		return
	}
	// The connection outlives the HTTP request and, as a TCP connection does, the
	// listener's ctx: it is the handler's to end, so that it can still say goodbye.
	conn := websocket.NetConn(context.WithoutCancel(ctx), c, websocket.MessageBinary)
	// After NetConn, which turns the read limit off.
	if w.o.ReadLimit > 0 {
		c.SetReadLimit(w.o.ReadLimit)
	}
	meta := Meta{Listener: w.name, Peer: peerOf(conn.RemoteAddr()), Header: r.Header.Clone(), TLS: r.TLS}
	if ap, err := parseAddrPort(r.RemoteAddr); err == nil {
		meta.Peer = ap
	}
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if w.ln.proxy != nil {
			meta.Proxy = proxyInfoOf(c)
		}
		if sc := slotConnOf(c); sc != nil && w.ln.perIP != nil {
			meta.Admitted = sc.admitted
		}
	}
	h(ctx, conn, meta)
}
