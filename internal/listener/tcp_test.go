package listener

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestTCPNoDelay checks that the connection handed to the handler has TCP_NODELAY on.
func TestTCPNoDelay(t *testing.T) {
	checkGoroutines(t)
	l := newTCPListener(t, "nodelay", 0)
	type result struct {
		on  bool
		err error
	}
	got := make(chan result, 1)
	serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) {
		defer c.Close()
		on, err := noDelay(c)
		got <- result{on, err}
	})
	c := dialTCP(t, l.Addr())
	var r result
	select {
	case r = <-got:
	case <-time.After(patience):
		t.Fatal("the handler was not called")
	}
	if errors.Is(r.err, errors.ErrUnsupported) {
		t.Skip(r.err)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.on {
		t.Error("TCP_NODELAY is off on an accepted connection")
	}
	if err := closedByPeer(c); err != nil {
		t.Errorf("the handler closed the connection: %v", err)
	}
}
