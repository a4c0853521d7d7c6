package broker

import (
	"runtime"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// parked is how many connections are parked right now.
func (b *testBroker) parked() int {
	p := b.srv.parker
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}

func TestParking(t *testing.T) {
	b := startBroker(t, nil) // the harness parks after 5 ms of silence

	t.Run("idle connections give up their goroutine and still count as open", func(t *testing.T) {
		runtime.GC()
		before := runtime.NumGoroutine()
		const n = 50
		var cs []*rawClient
		for i := range n {
			cs = append(cs, b.rawV5(t, "park-"+itoa(i)))
		}
		eventually(t, waitLong, "all connections parked", func() bool { return b.parked() >= n })
		if open := b.lis.Open(); open < n {
			t.Fatalf("listener counts %d open connections, want at least %d", open, n)
		}
		// The test's own readers add one goroutine per client; the broker adds none.
		if g := runtime.NumGoroutine() - before; g > n+10 {
			t.Fatalf("%d goroutines more for %d parked connections", g, n)
		}
		for _, c := range cs {
			c.close()
		}
		eventually(t, waitLong, "closed connections leave the listener", func() bool { return b.lis.Open() == 0 && b.parked() == 0 })
	})

	t.Run("a parked connection wakes up for its next packet", func(t *testing.T) {
		sub := b.rawV5(t, "park-sub")
		sub.mustSubscribe(1, "park/t")
		pub := b.rawV5(t, "park-pub")
		eventually(t, waitLong, "both parked", func() bool { return b.parked() >= 2 })
		if code := pub.publish(&packet.Publish{QoS: 1, Topic: "park/t", Payload: []byte("wake")}); code.IsError() {
			t.Fatalf("publish from a parked connection: %v", code)
		}
		if p := sub.expectPublish(); string(p.Payload) != "wake" {
			t.Fatalf("parked subscriber got %q", p.Payload)
		}
	})

	t.Run("[MQTT-3.1.2-24] keep alive is enforced while parked, and the will is published", func(t *testing.T) {
		watcher := b.rawV5(t, "park-watch")
		watcher.mustSubscribe(1, "park/will")
		cp := v5Connect("park-silent")
		cp.KeepAlive = 1 // closed after 1.5 s of silence
		cp.Will = &packet.Will{QoS: 1, Topic: "park/will", Payload: []byte("silent")}
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(cp)
		c.expectDisconnect(packet.KeepAliveTimeout)
		if p := watcher.expectPublish(); string(p.Payload) != "silent" {
			t.Fatalf("will payload %q", p.Payload)
		}
	})

	t.Run("[MQTT-3.1.4-3] a parked connection is taken over", func(t *testing.T) {
		old := b.rawV5(t, "park-dup")
		eventually(t, waitLong, "parked", func() bool { return b.parked() >= 1 })
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(v5Connect("park-dup"))
		old.expectDisconnect(packet.SessionTakenOver)
	})

	t.Run("shutdown reaches parked connections", func(t *testing.T) {
		c := b.rawV5(t, "park-shutdown")
		eventually(t, waitLong, "parked", func() bool { return b.parked() >= 1 })
		done := make(chan struct{})
		go func() { b.srv.Shutdown(); close(done) }()
		c.expectDisconnect(packet.ServerShuttingDown)
		select {
		case <-done:
		case <-time.After(waitLong):
			t.Fatal("Shutdown did not return")
		}
	})
}
