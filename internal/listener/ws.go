package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WSOptions configures a WebSocket listener.
type WSOptions struct {
	Name           string
	Bind           string
	Path           string   // HTTP path that upgrades, e.g. "/mqtt"
	MaxConnections int64    // 0 = unlimited
	CheckOrigin    bool     // refuse cross-origin upgrades unless the origin is allowed
	AllowedOrigins []string // "https://app.example.com" or host patterns
	// ReadLimit bounds one WebSocket message; the broker passes its maximum packet size.
	ReadLimit int64
	Logger    *slog.Logger
}

// WS is an MQTT-over-WebSocket listener (subprotocol "mqtt").
type WS struct {
	name  string
	o     WSOptions
	ln    net.Listener
	srv   *http.Server
	open  atomic.Int64
	log   *slog.Logger
	close sync.Once
}

// NewWS binds the listener.
func NewWS(ctx context.Context, o WSOptions) (*WS, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Bind)
	if err != nil {
		return nil, fmt.Errorf("listener ws:%s: %w", o.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Path == "" {
		o.Path = "/mqtt"
	}
	return &WS{name: "ws:" + o.Name, o: o, ln: ln, log: log}, nil
}

// Name implements Listener.
func (w *WS) Name() string { return w.name }

// Addr implements Listener.
func (w *WS) Addr() net.Addr { return w.ln.Addr() }

// Open implements Listener.
func (w *WS) Open() int64 { return w.open.Load() }

// Close implements Listener.
func (w *WS) Close() error {
	var err error
	w.close.Do(func() {
		err = w.ln.Close()
		if w.srv != nil {
			_ = w.srv.Close()
		}
	})
	return err
}

// Serve implements Listener.
func (w *WS) Serve(ctx context.Context, h Handler) error {
	mux := http.NewServeMux()
	mux.HandleFunc(w.o.Path, func(rw http.ResponseWriter, r *http.Request) { w.upgrade(ctx, rw, r, h) })
	w.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() { _ = w.Close() })
	defer stop()
	err := w.srv.Serve(w.ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("listener %s: %w", w.name, err)
}

func (w *WS) upgrade(ctx context.Context, rw http.ResponseWriter, r *http.Request, h Handler) {
	if w.o.MaxConnections > 0 && w.open.Load() >= w.o.MaxConnections {
		http.Error(rw, "listener full", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"mqtt"},
		InsecureSkipVerify: !w.o.CheckOrigin,
		OriginPatterns:     w.o.AllowedOrigins,
	})
	if err != nil {
		w.log.Debug("websocket upgrade refused", "listener", w.name, "peer", r.RemoteAddr, "err", err)
		return
	}
	if c.Subprotocol() != "mqtt" {
		// MQTT over WebSocket requires the "mqtt" subprotocol.
		_ = c.Close(websocket.StatusPolicyViolation, "subprotocol mqtt required")
		return
	}
	if w.o.ReadLimit > 0 {
		c.SetReadLimit(w.o.ReadLimit)
	}
	w.open.Add(1)
	defer w.open.Add(-1)
	// The connection outlives the HTTP request: its life is bound to the listener's ctx.
	conn := websocket.NetConn(ctx, c, websocket.MessageBinary)
	meta := Meta{Listener: w.name, Peer: peerOf(conn.RemoteAddr()), Header: r.Header.Clone()}
	if ap, err := parseAddrPort(r.RemoteAddr); err == nil {
		meta.Peer = ap
	}
	h(ctx, conn, meta)
}
