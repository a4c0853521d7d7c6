package listener

import (
	"context"
	"net"
	"sync"
	"testing"
)

func TestTCPDetach(t *testing.T) {
	l := newTCPListener(t, "detach", 2)
	var mu sync.Mutex
	var dones []func()
	var conns []net.Conn
	serveListener(t, l, func(_ context.Context, c net.Conn, m Meta) {
		if m.Detach == nil {
			t.Error("TCP listener offers no Detach")
			_ = c.Close()
			return
		}
		done := m.Detach()
		mu.Lock()
		dones = append(dones, done)
		conns = append(conns, c)
		mu.Unlock()
		// Return at once: the connection lives on without this goroutine.
	})
	a, b := dialTCP(t, l.Addr()), dialTCP(t, l.Addr())
	defer a.Close()
	defer b.Close()
	waitFor(t, "two detached connections", func() bool { mu.Lock(); defer mu.Unlock(); return len(dones) == 2 })
	if got := l.Open(); got != 2 {
		t.Fatalf("Open() = %d after the handlers returned detached, want 2", got)
	}

	// Detached connections still count against max_connections.
	c := dialTCP(t, l.Addr())
	defer c.Close()
	var one [1]byte
	if _, err := c.Read(one[:]); err == nil {
		t.Fatal("a third connection was served past max_connections 2")
	}

	mu.Lock()
	for i, done := range dones {
		_ = conns[i].Close()
		done()
		done() // a second call is harmless
	}
	mu.Unlock()
	waitFor(t, "no connection open", func() bool { return l.Open() == 0 })
}
