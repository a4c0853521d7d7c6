package listener

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestLimitListener checks the socket limit under the WebSocket listener directly: sockets
// get TCP_NODELAY, one over the limit is closed before anything is read, and closing an
// accepted socket frees its slot.
func TestLimitListener(t *testing.T) {
	checkGoroutines(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := &limitListener{Listener: raw, name: "ws:unit", max: 1, log: discardLogger()}
	t.Cleanup(func() { _ = ll.Close() })
	accepted := make(chan net.Conn, 4)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ll.Close()
		<-acceptDone
		close(accepted)
		for c := range accepted {
			_ = c.Close()
		}
	})
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(patience):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	c1 := dialTCP(t, ll.Addr())
	s1 := next()
	if on, err := noDelay(s1.(*slotConn).Conn); errors.Is(err, errors.ErrUnsupported) {
		t.Log(err)
	} else if err != nil || !on {
		t.Errorf("TCP_NODELAY on an accepted socket: %v, %v", on, err)
	}
	// Over the limit: closed at once.
	for i := range 5 {
		if err := closedByPeer(dialTCP(t, ll.Addr())); err != nil {
			t.Fatalf("socket %d over the limit: %v", i, err)
		}
	}
	if got := ll.n.Load(); got != 1 {
		t.Errorf("%d slots taken, want 1", got)
	}
	// Closing twice gives the slot back once.
	_ = s1.Close()
	_ = s1.Close()
	if got := ll.n.Load(); got != 0 {
		t.Errorf("%d slots taken after close, want 0", got)
	}
	if err := closedByPeer(c1); err != nil {
		t.Errorf("first socket after its server side closed: %v", err)
	}
	c2 := dialTCP(t, ll.Addr())
	s2 := next()
	if _, err := io.WriteString(c2, "x"); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if err := s2.SetReadDeadline(time.Now().Add(patience)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s2, b[:]); err != nil || b[0] != 'x' {
		t.Errorf("read on the socket accepted after a slot freed: %q, %v", b, err)
	}
	_ = s2.Close()
}
