package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// kind is one listener type, so that the contract tests run against both.
type kind struct {
	typ    string
	listen func(t *testing.T, name string, max int64) Listener
	// try opens a client connection; for ws, it completes the upgrade.
	try func(t *testing.T, addr net.Addr) (net.Conn, error)
	// refused attempts one more client connection and returns nil if the listener
	// refused it: closed at once, never handed to the handler.
	refused func(t *testing.T, addr net.Addr) error
}

// dial opens a client connection that the listener must accept.
func (k kind) dial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := k.try(t, addr)
	if err != nil {
		t.Fatalf("%s dial %s: %v", k.typ, addr, err)
	}
	return c
}

var kinds = []kind{
	{
		typ:    "tcp",
		listen: func(t *testing.T, name string, max int64) Listener { return newTCPListener(t, name, max) },
		try: func(t *testing.T, addr net.Addr) (net.Conn, error) {
			d := net.Dialer{Timeout: patience}
			c, err := d.Dial("tcp", addr.String())
			if err == nil {
				t.Cleanup(func() { _ = c.Close() })
			}
			return c, err
		},
		refused: func(t *testing.T, addr net.Addr) error {
			return closedByPeer(dialTCP(t, addr))
		},
	},
	{
		typ: "ws",
		listen: func(t *testing.T, name string, max int64) Listener {
			return newWSListener(t, WSOptions{Name: name, MaxConnections: max})
		},
		try: func(t *testing.T, addr net.Addr) (net.Conn, error) {
			r := dialWSAttempt(t, addr, wsDial{})
			if r.err != nil {
				return nil, r.err
			}
			nc := websocket.NetConn(context.Background(), r.conn, websocket.MessageBinary)
			t.Cleanup(func() { _ = nc.Close() })
			return nc, nil
		},
		refused: func(t *testing.T, addr net.Addr) error {
			// A raw socket that never speaks HTTP must not hold a slot either.
			if err := closedByPeer(dialTCP(t, addr)); err != nil {
				return fmt.Errorf("raw socket: %w", err)
			}
			r := dialWSAttempt(t, addr, wsDial{})
			if r.err == nil {
				return fmt.Errorf("websocket upgrade succeeded past the limit (status %d)", r.status())
			}
			return nil
		},
	},
}

// TestNamedListeners runs several named listeners of each type at once and checks that
// each hands its connections over with its own name, the peer address, and (for TCP) no
// header.
func TestNamedListeners(t *testing.T) {
	checkGoroutines(t)
	for _, k := range kinds {
		t.Run(k.typ, func(t *testing.T) {
			type running struct {
				name string
				l    Listener
				g    *gate
			}
			var ls []running
			for _, name := range []string{"default", "internal", "edge"} {
				l := k.listen(t, name, 0)
				g := newGate()
				serveListener(t, l, g.handle)
				ls = append(ls, running{name, l, g})
			}
			for _, r := range ls {
				if got, want := r.l.Name(), k.typ+":"+r.name; got != want {
					t.Errorf("Name() = %q, want %q", got, want)
				}
				if ap := r.l.Addr().(*net.TCPAddr).AddrPort(); !ap.Addr().IsLoopback() || ap.Port() == 0 {
					t.Errorf("%s: Addr() = %v, want a bound loopback port", r.l.Name(), ap)
				}
				c := k.dial(t, r.l.Addr())
				if err := echoOnce(c, "hello "+r.name); err != nil {
					t.Fatalf("%s: %v", r.l.Name(), err)
				}
				m := <-r.g.metas
				if m.Listener != r.l.Name() {
					t.Errorf("Meta.Listener = %q, want %q", m.Listener, r.l.Name())
				}
				if !m.Peer.IsValid() || !m.Peer.Addr().IsLoopback() || m.Peer.Port() == 0 {
					t.Errorf("%s: Meta.Peer = %v, want the client's loopback address", r.l.Name(), m.Peer)
				}
				if k.typ == "tcp" {
					if want := c.LocalAddr().(*net.TCPAddr).AddrPort(); m.Peer != want {
						t.Errorf("%s: Meta.Peer = %v, want %v", r.l.Name(), m.Peer, want)
					}
					if m.Header != nil {
						t.Errorf("%s: Meta.Header = %v, want nil", r.l.Name(), m.Header)
					}
				}
				if got := r.l.Open(); got != 1 {
					t.Errorf("%s: Open() = %d while one handler runs, want 1", r.l.Name(), got)
				}
				_ = c.Close()
				waitFor(t, r.l.Name()+" handler to end", func() bool { return r.l.Open() == 0 })
			}
		})
	}
}

// TestMaxConnections floods each listener type past its limit: the number of running
// handlers never exceeds the limit, every extra socket is closed without reaching the
// handler and leaves no goroutine behind, and once handlers end the listener accepts
// connections again.
func TestMaxConnections(t *testing.T) {
	checkGoroutines(t)
	for _, k := range kinds {
		for _, limit := range []int64{1, 3} {
			t.Run(fmt.Sprintf("%s/max=%d", k.typ, limit), func(t *testing.T) {
				l := k.listen(t, "flood", limit)
				g := newGate()
				serveListener(t, l, g.handle)

				held := make([]net.Conn, limit)
				for i := range held {
					held[i] = k.dial(t, l.Addr())
					if err := echoOnce(held[i], "hold"); err != nil {
						t.Fatalf("connection %d within the limit: %v", i, err)
					}
				}
				if got := l.Open(); got != limit {
					t.Fatalf("Open() = %d with the limit reached, want %d", got, limit)
				}
				settled := runtime.NumGoroutine()

				flood := 4*int(limit) + 4
				for i := range flood {
					if err := k.refused(t, l.Addr()); err != nil {
						t.Fatalf("extra connection %d: %v", i, err)
					}
					if got := l.Open(); got > limit {
						t.Fatalf("Open() = %d during the flood, limit %d", got, limit)
					}
				}
				if got := g.calls.Load(); got != limit {
					t.Errorf("handler called %d times, want %d: refused connections reached the handler", got, limit)
				}
				if got := g.peak.Load(); got > limit {
					t.Errorf("%d handlers ran at once, limit %d", got, limit)
				}
				waitFor(t, "refused connections to cost no goroutine", func() bool {
					return runtime.NumGoroutine() <= settled
				})
				// Every held connection still works.
				for i, c := range held {
					if err := echoOnce(c, "still here"); err != nil {
						t.Fatalf("held connection %d after the flood: %v", i, err)
					}
				}

				// End the handlers: their slots become free again.
				for _, c := range held {
					_ = c.Close()
				}
				waitFor(t, "handlers to end", func() bool { return l.Open() == 0 })
				for i := range limit {
					var c net.Conn
					// The slot of a closed socket frees when the listener side is closed
					// too, which may trail the handler's return by a moment.
					waitFor(t, "a free slot", func() bool {
						var err error
						if c, err = k.try(t, l.Addr()); err != nil {
							return false
						}
						if err := echoOnce(c, "again"); err != nil {
							_ = c.Close()
							return false
						}
						return true
					})
					if got := l.Open(); got != i+1 {
						t.Errorf("Open() = %d, want %d", got, i+1)
					}
				}
				if got := g.peak.Load(); got > limit {
					t.Errorf("%d handlers ran at once, limit %d", got, limit)
				}
			})
		}
	}
}

// TestUnlimited checks that MaxConnections 0 does not limit.
func TestUnlimited(t *testing.T) {
	checkGoroutines(t)
	for _, k := range kinds {
		t.Run(k.typ, func(t *testing.T) {
			l := k.listen(t, "unlimited", 0)
			g := newGate()
			serveListener(t, l, g.handle)
			const n = 24
			for i := range n {
				if err := echoOnce(k.dial(t, l.Addr()), "x"); err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
			}
			if got := l.Open(); got != n {
				t.Errorf("Open() = %d, want %d", got, n)
			}
		})
	}
}

// TestServeStops checks both ways of stopping a listener: Serve returns nil, no new
// connection is accepted, and a connection already handed over stays the handler's to
// end — it keeps working until the handler closes it, even after ctx is done.
func TestServeStops(t *testing.T) {
	checkGoroutines(t)
	stops := []struct {
		name string
		stop func(l Listener, s *served) error
	}{
		{"cancel", func(_ Listener, s *served) error { s.cancel(); return nil }},
		{"close", func(l Listener, _ *served) error { return l.Close() }},
		{"close twice", func(l Listener, _ *served) error {
			if err := l.Close(); err != nil {
				return err
			}
			return l.Close()
		}},
	}
	for _, k := range kinds {
		for _, st := range stops {
			t.Run(k.typ+"/"+st.name, func(t *testing.T) {
				l := k.listen(t, "stop", 0)
				g := newGate()
				s := serveListener(t, l, g.handle)
				c := k.dial(t, l.Addr())
				if err := echoOnce(c, "before"); err != nil {
					t.Fatal(err)
				}
				addr := l.Addr()
				if err := st.stop(l, s); err != nil {
					t.Fatalf("stop: %v", err)
				}
				if !s.returned() {
					t.Fatal("Serve did not return")
				}
				if s.err != nil {
					t.Errorf("Serve returned %v, want nil", s.err)
				}
				if st.name == "cancel" {
					select {
					case <-g.ctxDone:
					case <-time.After(patience):
						t.Error("the handler's ctx did not end with Serve's")
					}
				}
				d := net.Dialer{Timeout: patience}
				if nc, err := d.Dial("tcp", addr.String()); err == nil {
					_ = nc.Close()
					t.Errorf("dial after stop succeeded: the listener still accepts")
				}
				if err := echoOnce(c, "after"); err != nil {
					t.Errorf("connection accepted before the stop: %v", err)
				}
				if got := l.Open(); got != 1 {
					t.Errorf("Open() = %d after stop with one handler running, want 1", got)
				}
				g.open()
				waitFor(t, "the handler to end", func() bool { return l.Open() == 0 })
			})
		}
	}
}

// TestCloseBeforeServe checks that Serve on a closed listener returns at once, and that
// Close or the end of ctx racing with the start of Serve is safe (run with -race).
func TestCloseBeforeServe(t *testing.T) {
	checkGoroutines(t)
	for _, k := range kinds {
		t.Run(k.typ+"/before", func(t *testing.T) {
			l := k.listen(t, "closed", 0)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			g := newGate()
			s := serveListener(t, l, g.handle)
			if !s.returned() {
				t.Fatal("Serve on a closed listener did not return")
			}
			if s.err != nil {
				t.Errorf("Serve on a closed listener: %v", s.err)
			}
		})
		t.Run(k.typ+"/cancel concurrent", func(t *testing.T) {
			for range 20 {
				l := k.listen(t, "race", 0)
				g := newGate()
				s := serveListener(t, l, g.handle)
				s.cancel()
				if !s.returned() {
					t.Fatal("Serve did not return after its ctx ended")
				}
			}
		})
		t.Run(k.typ+"/close concurrent", func(t *testing.T) {
			for range 20 {
				l := k.listen(t, "race", 0)
				g := newGate()
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); _ = l.Close() }()
				s := serveListener(t, l, g.handle)
				wg.Wait()
				if !s.returned() {
					t.Fatal("Serve did not return after a concurrent Close")
				}
			}
		})
	}
}

// TestBindError checks that a listener that cannot bind says which listener it is.
func TestBindError(t *testing.T) {
	taken := newTCPListener(t, "taken", 0)
	bind := taken.Addr().String()
	tests := []struct {
		name string
		new  func() (Listener, error)
		want string
	}{
		{"tcp", func() (Listener, error) {
			return NewTCP(context.Background(), TCPOptions{Name: "dup", Bind: bind})
		}, "tcp:dup"},
		{"ws", func() (Listener, error) {
			return NewWS(context.Background(), WSOptions{Name: "dup", Bind: bind})
		}, "ws:dup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tt.new()
			if err == nil {
				_ = l.Close()
				t.Fatalf("bind to %s in use succeeded", bind)
			}
			var oe *net.OpError
			if !strings.Contains(err.Error(), tt.want) || !errors.As(err, &oe) {
				t.Errorf("error %q: want it to name %s and wrap the *net.OpError", err, tt.want)
			}
		})
	}
}
