package redis

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
)

// TestBackoff takes the server away: the first question fails, the next ones are refused
// without a connection attempt while the back-off runs, and the client recovers once the
// server is back.
func TestBackoff(t *testing.T) {
	addr, stop := testsvc.StartRedis(t)
	c, err := New(Config{Addr: addr, CommandTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A back-off long enough that the second question surely falls inside it.
	c.health = health.New("redis "+addr, 2*time.Second, 4*time.Second)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if h := c.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("health before stop: %+v", h)
	}
	stop()

	// In the server's place, a listener that counts connections and closes each at once.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	err = c.Ping(ctx)
	if err == nil || errors.Is(err, health.ErrBackoff) || errors.Is(err, health.ErrBusy) {
		t.Fatalf("first ping with the server down: %v, want a connection error", err)
	}
	dialled := accepted.Load()
	if dialled == 0 {
		t.Fatal("the first ping did not connect")
	}
	for i := range 3 {
		if err := c.Ping(ctx); !errors.Is(err, health.ErrBackoff) {
			t.Fatalf("ping %d during the back-off: %v, want health.ErrBackoff", i+2, err)
		}
	}
	if n := accepted.Load(); n != dialled {
		t.Fatalf("%d connections during the back-off, want none", n-dialled)
	}
	if h := c.Health(); h.Up || h.Failures != 1 || h.LastErr == "" {
		t.Fatalf("health while down: %+v", h)
	}
	l.Close()

	testsvc.RestartRedis(t, addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h := c.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("health after recovery: %+v", h)
	}
}

// TestBusy holds the only pooled connection with a blocking command: the next question
// is refused as busy (not as a failure to reach the server, which would start a back-off).
func TestBusy(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	c, err := New(Config{Addr: addr, PoolSize: 1, CommandTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	admin, err := New(Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	const wake = "rampart:test:wake"
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, "BLPOP", wake, "10")
		blocked <- err
	}()
	waitFor(t, "BLPOP to block", func() bool {
		v, err := admin.Do(ctx, "CLIENT", "LIST")
		s, _ := v.(string)
		return err == nil && strings.Contains(s, "cmd=blpop")
	})

	_, err = c.Do(ctx, "GET", "k")
	if !errors.Is(err, health.ErrBusy) {
		t.Fatalf("GET with the pool taken: %v, want health.ErrBusy", err)
	}
	if h := c.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("a busy pool counted as a failure: %+v", h)
	}
	if _, err := admin.Do(ctx, "LPUSH", wake, "x"); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatalf("BLPOP: %v", err)
	}
	if _, err := c.Do(ctx, "GET", "k"); err != nil {
		t.Fatalf("GET after the pool came free: %v", err)
	}
}

// TestCallerGaveUp: a question whose caller's context ends first says nothing about the
// server and starts no back-off.
func TestCallerGaveUp(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	c, err := New(Config{Addr: addr, CommandTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, "BLPOP", "rampart:test:never", "10")
		done <- err
	}()
	admin, err := New(Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	waitFor(t, "BLPOP to block", func() bool {
		v, err := admin.Do(context.Background(), "CLIENT", "LIST")
		s, _ := v.(string)
		return err == nil && strings.Contains(s, "cmd=blpop")
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("BLPOP after cancel: %v, want context.Canceled", err)
	}
	if h := c.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("an abandoned question counted as a failure: %+v", h)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping after an abandoned question: %v", err)
	}
}

// TestErrorReplyIsAnAnswer: an error the server answers with says the server is up.
func TestErrorReplyIsAnAnswer(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	c, err := New(Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for range 3 {
		if _, err := c.Do(ctx, "NO-SUCH-COMMAND"); err == nil || errors.Is(err, health.ErrBackoff) {
			t.Fatalf("unknown command: %v, want the server's error", err)
		}
	}
	if h := c.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("error replies counted as failures: %+v", h)
	}
}

// waitFor polls cond for at most 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
