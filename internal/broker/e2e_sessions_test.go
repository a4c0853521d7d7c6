package broker

// End-to-end attacks on the global session bounds: a client creating sessions under many
// client ids, and offline sessions holding subscriptions outside the memory budget.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestE2EMaxSessions(t *testing.T) {
	const limit = 5
	b := startBroker(t, func(o *Options) { o.MaxSessions = limit })

	t.Run("[SECURITY] a CONNECT needing a session beyond max_sessions gets 0x97", func(t *testing.T) {
		for i := range limit {
			c := b.dialRaw(t, packet.V5)
			c.mustConnect(withExpiry(v5Connect(fmt.Sprintf("s-%d", i)), 300, true))
			c.disconnect(packet.Success) // the session stays: it counts offline too
		}
		c := b.dialRaw(t, packet.V5)
		if ack := c.connect(withExpiry(v5Connect("s-over"), 300, true)); ack.ReasonCode != packet.QuotaExceeded {
			t.Fatalf("CONNACK 0x%02X, want 0x97", byte(ack.ReasonCode))
		}
		c.expectClosed(waitLong)
		v3 := b.dialRaw(t, packet.V311)
		if ack := v3.connect(v311Connect("s-over-311")); ack.ReasonCode != packet.ConnRefusedServerUnavailable {
			t.Fatalf("CONNACK return code %d, want 3", byte(ack.ReasonCode))
		}
		if got := b.srv.LimitStats().SessionsRefused; got != 2 {
			t.Fatalf("SessionsRefused = %d, want 2", got)
		}
	})

	t.Run("resuming or starting clean an existing session still works", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		if ack := c.mustConnect(withExpiry(v5Connect("s-1"), 300, false)); !ack.SessionPresent {
			t.Fatal("session s-1 not resumed")
		}
		c.disconnect(packet.Success)
		b.dialRaw(t, packet.V5).mustConnect(withExpiry(v5Connect("s-2"), 300, true))
	})
}

func TestE2ESubscriptionsInMemoryBudget(t *testing.T) {
	const budget = 1 << 20
	b := startBroker(t, func(o *Options) { o.MaxMemoryBytes = budget; o.MaxSubscriptions = -1 })
	filter := func(id string, i int) string { return fmt.Sprintf("%s/%s/%d", id, strings.Repeat("f", 1000), i) }

	t.Run("offline sessions' subscriptions count", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("sub-mem-1"), 300, true))
		c.mustSubscribe(1, filter("a", 1), filter("a", 2))
		c.disconnect(packet.Success)
		want := subCost(filter("a", 1)) + subCost(filter("a", 2))
		if got := b.srv.LimitStats().SubscriptionBytes; got != want {
			t.Fatalf("SubscriptionBytes = %d, want %d", got, want)
		}
	})

	t.Run("[SECURITY] filters past the budget are refused with 0x97", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("sub-mem-2"), 300, true))
		refused := false
		for i := range 2000 {
			ack := c.subscribe(0, packet.Subscription{Filter: filter("b", i), QoS: 0})
			if ack.ReasonCodes[0] == packet.QuotaExceeded {
				refused = true
				break
			}
		}
		if !refused {
			t.Fatal("2000 filters of 2 KB each were all granted under a 1 MiB budget")
		}
		if used := b.srv.memoryUsed(); used > budget+budget/8 {
			t.Fatalf("memory budget passed: %d bytes used", used)
		}
		if b.srv.LimitStats().SubscriptionMemoryFull == 0 {
			t.Fatal("SubscriptionMemoryFull not counted")
		}
		// A clean start frees them.
		c.disconnect(packet.Success)
		b.dialRaw(t, packet.V5).mustConnect(withExpiry(v5Connect("sub-mem-2"), 0, true))
		want := subCost(filter("a", 1)) + subCost(filter("a", 2))
		eventually(t, waitLong, "subscription bytes released", func() bool { return b.srv.LimitStats().SubscriptionBytes == want })
	})
}
