package listener

import (
	"context"
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
}

// TCP is a plain TCP listener.
type TCP struct {
	name  string
	ln    net.Listener
	max   int64
	open  atomic.Int64
	log   *slog.Logger
	close sync.Once
}

// NewTCP binds the listener so that its address is known before Serve.
func NewTCP(ctx context.Context, o TCPOptions) (*TCP, error) {
	// MQTT has its own keep alive; TCP keep-alive probes would only cost setsockopt calls
	// on every accepted connection. Go enables TCP_NODELAY on every TCP connection.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", o.Bind)
	if err != nil {
		return nil, fmt.Errorf("listener tcp:%s: %w", o.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TCP{name: "tcp:" + o.Name, ln: ln, max: o.MaxConnections, log: log}, nil
}

// Name implements Listener.
func (t *TCP) Name() string { return t.name }

// Addr implements Listener.
func (t *TCP) Addr() net.Addr { return t.ln.Addr() }

// Open implements Listener.
func (t *TCP) Open() int64 { return t.open.Load() }

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
		if t.max > 0 && t.open.Load() >= t.max {
			t.log.Debug("connection refused: listener full", "listener", t.name, "peer", conn.RemoteAddr(), "max_connections", t.max)
			_ = conn.Close()
			continue
		}
		t.open.Add(1)
		meta := Meta{Listener: t.name, Peer: peerOf(conn.RemoteAddr())}
		var detached atomic.Bool
		end := sync.OnceFunc(func() { t.open.Add(-1) })
		meta.Detach = func() func() {
			detached.Store(true)
			return end
		}
		go func() {
			h(ctx, conn, meta)
			if !detached.Load() {
				end()
			}
		}()
	}
}
