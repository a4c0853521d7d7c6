package listener

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestIPCounts(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff:2")
	v6other := netip.MustParseAddr("2001:db8:0:1::1")
	type step struct {
		addr  netip.Addr
		want  Refusal // 0: taken
		admit bool    // admit the slot taken by this step
	}
	for _, tc := range []struct {
		name  string
		lim   PerIPLimits
		steps []step
	}{
		{"pre-auth limit, admitted connections do not count", PerIPLimits{MaxPreauth: 2}, []step{
			{addr: v4a}, {addr: v4a}, {addr: v4a, want: RefusedPerIPPreauth},
			{addr: v4b}, // another address has its own count
			{addr: v4a, want: RefusedPerIPPreauth, admit: true},
		}},
		{"admitting frees a pre-auth place", PerIPLimits{MaxPreauth: 1}, []step{
			{addr: v4a, admit: true}, {addr: v4a, admit: true}, {addr: v4a}, {addr: v4a, want: RefusedPerIPPreauth},
		}},
		{"open limit counts admitted connections too", PerIPLimits{MaxConnections: 2, MaxPreauth: 5}, []step{
			{addr: v4a, admit: true}, {addr: v4a}, {addr: v4a, want: RefusedPerIPConnections},
		}},
		{"an IPv4-mapped address is the IPv4 address", PerIPLimits{MaxConnections: 1}, []step{
			{addr: v4a}, {addr: mapped, want: RefusedPerIPConnections},
		}},
		{"[SECURITY] IPv6 addresses count by their /64", PerIPLimits{MaxConnections: 1}, []step{
			{addr: v6a}, {addr: v6b, want: RefusedPerIPConnections}, {addr: v6other},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newIPCounts(tc.lim)
			var slots []*ipSlot
			for i, s := range tc.steps {
				slot, why := c.take(s.addr)
				if why != s.want {
					t.Fatalf("step %d (%v): got %v, want %v", i+1, s.addr, why, s.want)
				}
				if slot != nil {
					slots = append(slots, slot)
				}
				if s.admit && slot != nil {
					slot.admitted()
					slot.admitted() // a second call changes nothing
				}
			}
			for _, s := range slots {
				s.release()
				s.release()
				s.admitted() // after release: nothing to do
			}
			if n := c.tracked(); n != 0 {
				t.Fatalf("%d addresses still tracked with every connection closed", n)
			}
		})
	}
	if newIPCounts(PerIPLimits{}) != nil {
		t.Fatal("no limits should count nothing")
	}
	var none *ipCounts
	if slot, why := none.take(v4a); slot != nil || why != 0 {
		t.Fatal("nil counts refused or counted")
	}
}

func TestIPCountsMemoryIsBounded(t *testing.T) {
	c := newIPCounts(PerIPLimits{MaxConnections: 1, MaxPreauth: 1})
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		slot, _ := c.take(a)
		slot.release()
	}
	if n := c.tracked(); n != 0 {
		t.Fatalf("%d addresses tracked after their connections closed", n)
	}
}

// refusals records what a listener reports through OnRefuse.
type refusals struct {
	mu    sync.Mutex
	why   []Refusal
	peers []netip.AddrPort
}

func (r *refusals) add(why Refusal, _ string, peer netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.why = append(r.why, why)
	r.peers = append(r.peers, peer)
}

func (r *refusals) count(why Refusal) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.why {
		if w == why {
			n++
		}
	}
	return n
}

// admitter is a Handler that lets a client in, as the broker does at CONNECT, when it
// sends 'A', and answers every byte with 'k'. It holds the connection until the peer
// closes it.
func admitter(_ context.Context, c net.Conn, m Meta) {
	defer c.Close()
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		if b[0] == 'A' && m.Admitted != nil {
			m.Admitted()
		}
		if _, err := c.Write([]byte{'k'}); err != nil {
			return
		}
	}
}

// roundTrip sends b on c and waits for the handler's answer.
func roundTrip(t *testing.T, c net.Conn, b byte) {
	t.Helper()
	if _, err := c.Write([]byte{b}); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(patience))
	var got [1]byte
	if _, err := io.ReadFull(c, got[:]); err != nil || got[0] != 'k' {
		t.Fatalf("no answer from the handler: %q, %v", got, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

func TestTCPPerIPLimits(t *testing.T) {
	checkGoroutines(t)
	l, err := NewTCP(context.Background(), TCPOptions{Name: "perip", Bind: "127.0.0.1:0",
		PerIP: PerIPLimits{MaxConnections: 4, MaxPreauth: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	rec := &refusals{}
	l.OnRefuse(rec.add)
	serveListener(t, l, admitter)

	// Two sockets that never log in take the address's pre-authentication places.
	idle1 := dialFrom(t, "127.0.0.1", l.Addr())
	idle2 := dialFrom(t, "127.0.0.1", l.Addr())
	waitFor(t, "two connections accepted", func() bool { return l.Open() == 2 })
	for i := range 3 {
		if err := closedByPeer(dialFrom(t, "127.0.0.1", l.Addr())); err != nil {
			t.Fatalf("[SECURITY] socket %d over max_preauth_connections_per_ip: %v", i+1, err)
		}
	}
	if n := rec.count(RefusedPerIPPreauth); n != 3 {
		t.Fatalf("%d pre-auth refusals reported, want 3", n)
	}
	// Another address has its own places.
	roundTrip(t, dialFrom(t, "127.0.0.2", l.Addr()), 'x')

	// A client that logs in leaves the pre-authentication count, and its place is free.
	roundTrip(t, idle1, 'A')
	for range 2 {
		c := dialFrom(t, "127.0.0.1", l.Addr())
		roundTrip(t, c, 'A')
	}
	// 127.0.0.1 now holds four connections, one not logged in: the fifth is refused by
	// max_connections_per_ip although a pre-authentication place is free.
	if err := closedByPeer(dialFrom(t, "127.0.0.1", l.Addr())); err != nil {
		t.Fatalf("[SECURITY] socket over max_connections_per_ip: %v", err)
	}
	if n := rec.count(RefusedPerIPConnections); n != 1 {
		t.Fatalf("%d refusals for max_connections_per_ip reported, want 1", n)
	}
	// A connection that ends gives both its places back.
	_ = idle2.Close()
	waitFor(t, "the closed connection leaves the listener", func() bool { return l.Open() == 4 })
	roundTrip(t, dialFrom(t, "127.0.0.1", l.Addr()), 'x')
}

func TestTCPPerIPLimitsBehindProxy(t *testing.T) {
	checkGoroutines(t)
	l := newProxyTCP(t, TCPOptions{PerIP: PerIPLimits{MaxConnections: 1}})
	rec := &refusals{}
	l.OnRefuse(rec.add)
	serveListener(t, l, admitter)
	via := func(header string) net.Conn {
		c := dialFrom(t, proxyAddr, l.Addr())
		if _, err := c.Write([]byte(header)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	roundTrip(t, via("PROXY TCP4 203.0.113.7 127.0.0.1 5555 1883\r\n"), 'x')
	// The proxy's address is shared by every client; the client the header names counts.
	if err := closedByPeer(via("PROXY TCP4 203.0.113.7 127.0.0.1 5556 1883\r\n")); err != nil {
		t.Fatalf("[SECURITY] second connection of 203.0.113.7 through the proxy: %v", err)
	}
	roundTrip(t, via("PROXY TCP4 203.0.113.8 127.0.0.1 5555 1883\r\n"), 'x')
	roundTrip(t, via("PROXY TCP6 2001:db8::1 ::1 5555 1883\r\n"), 'x')
	if err := closedByPeer(via("PROXY TCP6 2001:db8::2 ::1 5555 1883\r\n")); err != nil {
		t.Fatalf("[SECURITY] a second address of the same IPv6 /64: %v", err)
	}
	roundTrip(t, via("PROXY TCP6 2001:db8:0:1::1 ::1 5555 1883\r\n"), 'x')
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::2")}
	if len(rec.peers) != len(want) {
		t.Fatalf("refusals reported for %v, want %v", rec.peers, want)
	}
	for i, p := range rec.peers {
		if p.Addr() != want[i] || rec.why[i] != RefusedPerIPConnections {
			t.Errorf("refusal %d: %v for %v, want %v for %v", i+1, rec.why[i], p, RefusedPerIPConnections, want[i])
		}
	}
}

func TestWebSocketPerIPPreauth(t *testing.T) {
	checkGoroutines(t)
	l := newWSListener(t, WSOptions{Name: "perip", PerIP: PerIPLimits{MaxPreauth: 1}})
	rec := &refusals{}
	l.OnRefuse(rec.add)
	serveListener(t, l, func(_ context.Context, c net.Conn, m Meta) {
		defer c.Close()
		if m.Admitted != nil {
			m.Admitted()
		}
		_, _ = io.Copy(io.Discard, c)
	})
	// A socket that never sends its HTTP request holds the address's only place.
	idle := dialTCP(t, l.Addr())
	waitFor(t, "the idle socket counted", func() bool { return l.ln.perIP.tracked() == 1 })
	if r := dialWSAttempt(t, l.Addr(), wsDial{}); r.err == nil {
		t.Fatal("[SECURITY] a WebSocket client got in while its address had max_preauth_connections_per_ip sockets in the handshake")
	}
	if n := rec.count(RefusedPerIPPreauth); n != 1 {
		t.Fatalf("%d pre-auth refusals reported, want 1", n)
	}
	_ = idle.Close()
	waitFor(t, "the idle socket released", func() bool { return l.ln.perIP.tracked() == 0 })
	// Admitted connections leave the count: two in a row get in.
	for i := range 2 {
		if r := dialWSAttempt(t, l.Addr(), wsDial{}); r.err != nil {
			t.Fatalf("WebSocket client %d: %v", i+1, r.err)
		}
		waitFor(t, "the client admitted", func() bool {
			l.ln.perIP.mu.Lock()
			defer l.ln.perIP.mu.Unlock()
			n := l.ln.perIP.m[ipKey(netip.MustParseAddr("127.0.0.1"))]
			return n != nil && n.preauth == 0 && n.open == int64(i+1)
		})
	}
}
