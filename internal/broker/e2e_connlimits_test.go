package broker

// End-to-end attacks on the connection limits (connlimits.go, the listener's per-address
// limits, the shared listener publish rate). Every wait is bounded; nothing asserts that
// anything was fast.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// dialIdle opens a socket to the broker that will never send anything; cleanup closes it.
func (b *testBroker) dialIdle(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedSilently waits up to d for the broker to close c without sending a byte.
func closedSilently(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	switch {
	case n > 0:
		return fmt.Errorf("the broker sent %d bytes", n)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("still open after %v", d)
	case err == nil, errors.Is(err, io.EOF):
		return nil
	}
	return nil // reset
}

func TestE2EPerIPPreauthLimit(t *testing.T) {
	const n = 10
	// The CONNECT deadline has to outlast the dialling of the sockets below; it is the
	// only reason the held sockets end.
	b := startBrokerOn(t, func(o *Options) { o.IdleTimeout = 3 * time.Second },
		func(l *listener.TCPOptions) { l.PerIP = listener.PerIPLimits{MaxPreauth: n} })

	// A client connected before the flood does not take a pre-authentication place.
	early := b.rawV5(t, "preauth-early")
	early.mustSubscribe(1, "preauth/t")

	var held []net.Conn
	for range n {
		held = append(held, b.dialIdle(t))
	}
	eventually(t, waitLong, "the held sockets accepted", func() bool { return b.lis.Open() == n+1 })

	t.Run("[SECURITY] sockets beyond max_preauth_connections_per_ip are closed at accept", func(t *testing.T) {
		for i := range 5 {
			if err := closedSilently(b.dialIdle(t), waitLong); err != nil {
				t.Fatalf("socket %d over the limit: %v", n+i+1, err)
			}
		}
		if got := b.srv.LimitStats().PerIPPreauthRefused; got != 5 {
			t.Fatalf("PerIPPreauthRefused = %d, want 5", got)
		}
	})

	t.Run("a connected client of the same address keeps working", func(t *testing.T) {
		if rc := early.in(t).publish(&packet.Publish{QoS: 1, Topic: "preauth/elsewhere", Payload: []byte("during")}); rc.IsError() {
			t.Fatalf("PUBLISH while the address is at its limit: %v", rc)
		}
	})

	t.Run("the held sockets end at the CONNECT deadline, then the address connects again", func(t *testing.T) {
		for i, c := range held {
			if err := closedSilently(c, 3*time.Second+waitLong); err != nil {
				t.Fatalf("held socket %d: %v", i+1, err)
			}
		}
		eventually(t, waitLong, "connect timeouts counted", func() bool { return b.srv.LimitStats().ConnectTimeouts == n })
		late := b.rawV5(t, "preauth-late")
		if rc := late.publish(&packet.Publish{QoS: 1, Topic: "preauth/t", Payload: []byte("after")}); rc.IsError() {
			t.Fatalf("PUBLISH after the flood: %v", rc)
		}
		if p := early.in(t).expectPublish(); string(p.Payload) != "after" {
			t.Fatalf("got %q", p.Payload)
		}
	})
}

func TestE2EPerIPConnectionLimit(t *testing.T) {
	const limit = 3
	b := startBrokerOn(t, nil, func(l *listener.TCPOptions) { l.PerIP = listener.PerIPLimits{MaxConnections: limit} })
	var in []*rawClient
	for i := range limit {
		in = append(in, b.rawV5(t, fmt.Sprintf("perip-%d", i)))
	}
	// The next one is closed before its CONNECT is read.
	over := b.dialRaw(t, packet.V5)
	_ = over.send(v5Connect("perip-over"))
	if got := over.expectClosed(waitLong); len(got) != 0 {
		t.Fatalf("[SECURITY] connection over max_connections_per_ip answered %s", describeAll(got))
	}
	if got := b.srv.LimitStats().PerIPConnectionsRefused; got != 1 {
		t.Fatalf("PerIPConnectionsRefused = %d, want 1", got)
	}
	in[0].disconnect(packet.NormalDisconnection)
	eventually(t, waitLong, "the disconnected client leaves the listener", func() bool { return b.lis.Open() == limit-1 })
	b.rawV5(t, "perip-again")
}

// userConns is the server's count of connected clients of a user name.
func (b *testBroker) userConns(name string) int {
	b.srv.mu.Lock()
	defer b.srv.mu.Unlock()
	return b.srv.userConns[name]
}

func TestE2EMaxConnectionsPerUsername(t *testing.T) {
	const limit = 2
	b := startBroker(t, func(o *Options) { o.MaxConnectionsPerUsername = limit })
	as := func(v packet.Version, id, user string) *packet.Connect {
		cp := v5Connect(id)
		if v == packet.V311 {
			cp = v311Connect(id)
		}
		cp.HasUsername, cp.Username = user != "", user
		return cp
	}

	t.Run("[SECURITY] MQTT 5: the client over the limit gets CONNACK 0x97", func(t *testing.T) {
		for i := range limit {
			b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, fmt.Sprintf("alice-%d", i), "alice"))
		}
		c := b.dialRaw(t, packet.V5)
		if ack := c.connect(as(packet.V5, "alice-over", "alice")); ack.ReasonCode != packet.QuotaExceeded {
			t.Fatalf("CONNACK 0x%02X, want 0x97", byte(ack.ReasonCode))
		}
		c.expectClosed(waitLong)
		if got := b.srv.LimitStats().UsernameConnectionsRefused; got != 1 {
			t.Fatalf("UsernameConnectionsRefused = %d, want 1", got)
		}
		// Other user names and clients without one are not limited by alice's count.
		b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, "bob-0", "bob"))
		for i := range limit + 1 {
			b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, fmt.Sprintf("anon-%d", i), ""))
		}
	})

	t.Run("[SECURITY] MQTT 3.1.1: the client over the limit gets return code 3", func(t *testing.T) {
		for i := range limit {
			b.dialRaw(t, packet.V311).mustConnect(as(packet.V311, fmt.Sprintf("carol-%d", i), "carol"))
		}
		c := b.dialRaw(t, packet.V311)
		if ack := c.connect(as(packet.V311, "carol-over", "carol")); ack.ReasonCode != packet.ConnRefusedServerUnavailable {
			t.Fatalf("CONNACK return code %d, want 3 (server unavailable)", byte(ack.ReasonCode))
		}
		c.expectClosed(waitLong)
	})

	t.Run("a take-over of the client's own session is not counted twice", func(t *testing.T) {
		first := b.dialRaw(t, packet.V5)
		first.mustConnect(as(packet.V5, "dave-0", "dave"))
		b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, "dave-1", "dave"))
		for range 3 {
			next := b.dialRaw(t, packet.V5)
			next.mustConnect(as(packet.V5, "dave-0", "dave"))
			first.expectDisconnect(packet.SessionTakenOver)
			first = next
		}
		eventually(t, waitLong, "dave counted twice", func() bool { return b.userConns("dave") == limit })
		// Another client id of the same user is still over the limit.
		c := b.dialRaw(t, packet.V5)
		if ack := c.connect(as(packet.V5, "dave-2", "dave")); ack.ReasonCode != packet.QuotaExceeded {
			t.Fatalf("CONNACK 0x%02X, want 0x97", byte(ack.ReasonCode))
		}
		// Taking over another user's client id does not let a user past its own limit.
		b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, "frank-0", "frank"))
		c = b.dialRaw(t, packet.V5)
		if ack := c.connect(as(packet.V5, "frank-0", "dave")); ack.ReasonCode != packet.QuotaExceeded {
			t.Fatalf("take-over of another user's client id: CONNACK 0x%02X, want 0x97", byte(ack.ReasonCode))
		}
	})

	t.Run("a place frees when a client leaves", func(t *testing.T) {
		a := b.dialRaw(t, packet.V5)
		a.mustConnect(as(packet.V5, "erin-0", "erin"))
		b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, "erin-1", "erin"))
		a.disconnect(packet.NormalDisconnection)
		eventually(t, waitLong, "erin's place given back", func() bool { return b.userConns("erin") == limit-1 })
		b.dialRaw(t, packet.V5).mustConnect(as(packet.V5, "erin-2", "erin"))
	})
}

func TestE2EMaxConnectionLifetime(t *testing.T) {
	const lifetime = time.Second
	for _, tc := range []struct {
		name string
		park time.Duration
	}{
		{"a reading connection", 0},
		{"a parked connection", 5 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, func(o *Options) { o.MaxConnectionLifetime, o.ParkAfter = lifetime, tc.park })
			c := b.rawV5(t, "life-v5")
			old := b.dialRaw(t, packet.V311)
			old.mustConnect(v311Connect("life-v311"))
			if tc.park > 0 {
				eventually(t, waitLong, "both connections parked", func() bool { return b.parked() >= 2 })
			}
			c.expectDisconnect(packet.MaximumConnectTime)
			if got := old.expectClosed(waitLong); len(got) != 0 {
				t.Fatalf("MQTT 3.1.1 connection got %s before its close", describeAll(got))
			}
			if got := b.srv.LimitStats().LifetimeEnded; got != 2 {
				t.Fatalf("LifetimeEnded = %d, want 2", got)
			}
			// The client connects again, and gets a new lifetime.
			again := b.rawV5(t, "life-v5")
			again.expectDisconnect(packet.MaximumConnectTime)
		})
	}
}

func TestLifetimeSpread(t *testing.T) {
	for range 1000 {
		if d := lifetimeOf(time.Hour); d < 54*time.Minute || d > time.Hour {
			t.Fatalf("lifetime %v outside [54m, 1h]", d)
		}
	}
	if d := lifetimeOf(5 * time.Nanosecond); d != 5*time.Nanosecond {
		t.Fatalf("lifetime %v, want 5ns", d)
	}
}

func TestE2EListenerPublishRate(t *testing.T) {
	t.Run("[SECURITY] throttle: the publishers of a listener share its rate", func(t *testing.T) {
		const rate, sent = 20, 150
		b := startBroker(t, func(o *Options) { o.MaxListenerPublishRate = rate })
		var pubs []*rawClient
		for i := range 2 {
			c := b.rawV5(t, fmt.Sprintf("lr-pub-%d", i))
			if err := c.sendBytes(publishBatch(t, sent, 1, "lr/t", []byte("x"))); err != nil {
				t.Fatal(err)
			}
			pubs = append(pubs, c)
		}
		acked := make(chan int, len(pubs))
		for _, c := range pubs {
			go func() { acked <- countFrames(c, packet.PUBACK, time.Second) }()
		}
		total := 0
		for range pubs {
			n := <-acked
			if n == 0 {
				t.Error("a publisher got no turn within a second")
			}
			total += n
		}
		t.Logf("%d of %d PUBLISH acknowledged in the first second at max_listener_publish_rate %d", total, 2*sent, rate)
		if total > sent {
			t.Fatalf("%d PUBACK in a second; want far fewer than the %d sent", total, 2*sent)
		}
		if b.srv.LimitStats().ListenerPublishThrottled == 0 {
			t.Error("ListenerPublishThrottled not counted")
		}
	})

	t.Run("[SECURITY] reject: QoS 1 over the listener's rate gets PUBACK 0x97", func(t *testing.T) {
		const rate, sent = 10, 60
		b := startBroker(t, func(o *Options) { o.MaxListenerPublishRate, o.RateLimitReject = rate, true })
		c := b.rawV5(t, "lr-rj")
		if err := c.sendBytes(publishBatch(t, sent, 1, "lr/rj", []byte("x"))); err != nil {
			t.Fatal(err)
		}
		accepted, refused := 0, 0
		for range sent {
			switch rc := expectPacket[*packet.Puback](c).ReasonCode; rc {
			case packet.Success, packet.NoMatchingSubscribers:
				accepted++
			case packet.QuotaExceeded:
				refused++
			default:
				t.Fatalf("PUBACK 0x%02X", byte(rc))
			}
		}
		t.Logf("%d accepted, %d refused of %d sent at once", accepted, refused, sent)
		if accepted == 0 || refused < sent/2 {
			t.Fatalf("%d accepted, %d refused; want the burst accepted and most refused", accepted, refused)
		}
		if got := b.srv.LimitStats().PublishRejected; got != int64(refused) {
			t.Errorf("PublishRejected = %d, want %d", got, refused)
		}
	})
}
