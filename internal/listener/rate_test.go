package listener

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !b.take(now, 1, 3) {
			t.Fatalf("take %d of a burst of 3 refused", i+1)
		}
	}
	if b.take(now, 1, 3) {
		t.Fatal("a fourth take at the same instant was allowed")
	}
	if !b.take(now.Add(time.Second), 1, 3) {
		t.Fatal("a token did not come back after a second at rate 1")
	}
}

func TestPerIPRate(t *testing.T) {
	a, _ := ParseAccessRules(nil)
	a.WithPerIPRate(RateLimit{Rate: 0.001, Burst: 2})
	x, y := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 2 {
		if !a.Allowed(x) {
			t.Fatalf("connection %d of the burst of 2 was refused", i+1)
		}
	}
	if a.Allowed(x) {
		t.Fatal("[SECURITY] a third connection from the same address within the burst was allowed")
	}
	if !a.Allowed(y) {
		t.Fatal("another address was limited by the first one's rate")
	}
	// [SECURITY] An IPv6 host owns its /64: rotating through it does not reset the rate.
	v6, _ := ParseAccessRules(nil)
	v6.WithPerIPRate(RateLimit{Rate: 0.001, Burst: 2})
	for i, addr := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"} {
		if got := v6.Allowed(netip.MustParseAddr(addr)); got != (i < 2) {
			t.Fatalf("IPv6 connection %d from the same /64: allowed %v", i+1, got)
		}
	}
	if !v6.Allowed(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatal("another /64 was limited")
	}
	denied, _ := ParseAccessRules([]string{"deny 192.0.2.9"})
	denied.WithPerIPRate(RateLimit{Rate: 100, Burst: 100})
	if denied.Allowed(netip.MustParseAddr("192.0.2.9")) {
		t.Fatal("a per-address rate let a denied address in")
	}
}

func TestIPRateMemoryIsBounded(t *testing.T) {
	r := newIPRate(RateLimit{Rate: 1000, Burst: 1})
	now := time.Unix(1000, 0)
	for i := range maxTrackedIPs + 10 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r.allow(a, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(r.m); n > maxTrackedIPs {
		t.Fatalf("%d addresses tracked, want at most %d", n, maxTrackedIPs)
	}
}

func TestListenerConnRate(t *testing.T) {
	l, err := NewTCP(context.Background(), TCPOptions{Name: "rate", Bind: "127.0.0.1:0", MaxConnRate: RateLimit{Rate: 0.001, Burst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var handled atomic.Int32
	serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) {
		handled.Add(1)
		_, _ = c.Write([]byte{'k'})
		_ = c.Close()
	})
	served := 0
	for range 6 {
		c := dialTCP(t, l.Addr())
		_ = c.SetReadDeadline(time.Now().Add(patience))
		var b [1]byte
		if n, _ := c.Read(b[:]); n == 1 {
			served++
		}
		_ = c.Close()
	}
	if served != 3 {
		t.Fatalf("[SECURITY] %d of 6 rapid connections were served, want the burst of 3", served)
	}
}

func TestWebSocketConnRate(t *testing.T) {
	l := newWSListener(t, WSOptions{Name: "rate", MaxConnRate: RateLimit{Rate: 0.001, Burst: 2}})
	serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) { _ = c.Close() })
	answered := 0
	for range 5 {
		c := dialTCP(t, l.Addr())
		_, _ = c.Write([]byte("GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(patience))
		var b [1]byte
		if n, _ := c.Read(b[:]); n == 1 {
			answered++ // a 404: the request was read
		}
		_ = c.Close()
	}
	if answered != 2 {
		t.Fatalf("[SECURITY] %d of 5 rapid connections were read, want the burst of 2", answered)
	}
}
