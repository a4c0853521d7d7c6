package broker

// End-to-end attacks on the abuse controls (limits.go, ratelimit.go): oversized CONNECT,
// subscription floods, control and publish floods, retained floods and memory pressure.
// Every wait is bounded; the only timing figures are logged, not asserted, except the
// loose "far fewer than sent" bounds that show a flood was slowed down.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestE2EConnectSizeLimit(t *testing.T) {
	// A long CONNECT deadline: a connection closed within waitLong was closed for its size.
	b := startBroker(t, func(o *Options) { o.IdleTimeout = time.Minute })

	t.Run("[SECURITY] a CONNECT declaring 256 MiB is cut after its fixed header", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := b.dialRaw(t, packet.V311)
		if err := c.sendBytes([]byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F}); err != nil {
			t.Fatal(err)
		}
		if got := c.expectClosed(waitLong); len(got) != 0 {
			t.Fatalf("broker answered %s; want a bare close", describeAll(got))
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("the broker allocated %d bytes while refusing the header", grew)
		}
		if n := b.srv.LimitStats().ConnectTooLarge; n != 1 {
			t.Errorf("ConnectTooLarge = %d, want 1", n)
		}
	})

	t.Run("[MQTT-3.2.2-2] an MQTT 5 client is told 0x95 when its header shows the version", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		head := append([]byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F}, "\x00\x04MQTT\x05\x02\x00\x1e"...)
		if err := c.sendBytes(head); err != nil {
			t.Fatal(err)
		}
		got := c.expectClosed(waitLong)
		if len(got) != 1 {
			t.Fatalf("got %s, want CONNACK 0x95 and close", describeAll(got))
		}
		if ack, ok := got[0].(*packet.Connack); !ok || ack.ReasonCode != packet.PacketTooLarge {
			t.Fatalf("got %s, want CONNACK 0x95", describe(got[0]))
		}
	})

	// A will payload and a password make a CONNECT of about size bytes (each field holds
	// at most 64 KB).
	connectWithWill := func(v packet.Version, id string, size int) *packet.Connect {
		will := min(size, 60<<10)
		return &packet.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 30,
			Will:        &packet.Will{Topic: "will/" + id, Payload: bytes.Repeat([]byte("w"), will)},
			HasUsername: true, Username: "u", HasPassword: size > will, Password: make([]byte, size-will)}
	}
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(fmt.Sprintf("[SECURITY] %v: a 100 KB CONNECT is refused, a 60 KB one is accepted", v), func(t *testing.T) {
			big := b.dialRaw(t, v)
			_ = big.send(connectWithWill(v, "big-"+v.String(), 100<<10))
			for _, p := range big.expectClosed(waitLong) {
				if ack, ok := p.(*packet.Connack); !ok || ack.ReasonCode != packet.PacketTooLarge || v != packet.V5 {
					t.Fatalf("100 KB CONNECT answered with %s", describe(p))
				}
			}
			ok := b.dialRaw(t, v)
			ok.mustConnect(connectWithWill(v, "ok-"+v.String(), 60<<10))
			// Once in, the client has the full max_packet_size.
			if rc := ok.publish(&packet.Publish{QoS: 1, Topic: "big/after", Payload: make([]byte, 200<<10)}); rc.IsError() {
				t.Fatalf("200 KB PUBLISH after CONNACK refused: %v", rc)
			}
		})
	}
}

func TestE2EMaxSubscriptions(t *testing.T) {
	const limit = 5
	b := startBroker(t, func(o *Options) { o.MaxSubscriptions = limit })
	filters := func(prefix string, n int) []packet.Subscription {
		subs := make([]packet.Subscription, n)
		for i := range subs {
			subs[i] = packet.Subscription{Filter: fmt.Sprintf("%s/%d", prefix, i), QoS: 1}
		}
		return subs
	}

	t.Run("[SECURITY] filters beyond the limit in one SUBSCRIBE get 0x97", func(t *testing.T) {
		c := b.rawV5(t, "subs-one")
		ack := c.subscribe(0, filters("one", limit+3)...)
		want := slices.Repeat([]packet.ReasonCode{1}, limit)
		want = append(want, packet.QuotaExceeded, packet.QuotaExceeded, packet.QuotaExceeded)
		if !slices.Equal(ack.ReasonCodes, want) {
			t.Fatalf("SUBACK codes % x, want % x", ack.ReasonCodes, want)
		}
	})

	t.Run("[SECURITY] a flood of SUBSCRIBE packets stops at the limit and survives a reconnect", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("subs-flood"), 300, true))
		granted := 0
		for i, s := range filters("flood", 40) {
			switch rc := c.subscribe(0, s).ReasonCodes[0]; rc {
			case 1:
				granted++
			case packet.QuotaExceeded:
			default:
				t.Fatalf("SUBSCRIBE %d: code 0x%02X", i, byte(rc))
			}
		}
		if granted != limit {
			t.Fatalf("%d subscriptions granted, want %d", granted, limit)
		}
		// Subscribing again to a filter the session holds is not a new subscription.
		if rc := c.subscribe(0, filters("flood", 1)...).ReasonCodes[0]; rc != 1 {
			t.Fatalf("re-subscribe at the limit: 0x%02X", byte(rc))
		}
		// A resumed session keeps its count.
		c.disconnect(packet.NormalDisconnection)
		c = b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("subs-flood"), 300, false))
		if rc := c.subscribe(0, packet.Subscription{Filter: "flood/new"}).ReasonCodes[0]; rc != packet.QuotaExceeded {
			t.Fatalf("new filter after reconnect: 0x%02X, want 0x97", byte(rc))
		}
		// Unsubscribing frees a place.
		_ = c.send(&packet.Unsubscribe{PacketID: c.pid(), Filters: []string{"flood/0"}})
		expectPacket[*packet.Unsuback](c)
		if rc := c.subscribe(0, packet.Subscription{Filter: "flood/new"}).ReasonCodes[0]; rc != 0 {
			t.Fatalf("new filter after UNSUBSCRIBE: 0x%02X, want granted", byte(rc))
		}
	})

	t.Run("MQTT 3.1.1 gets 0x80 for the filters beyond the limit", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		c.mustConnect(v311Connect("subs-311"))
		ack := c.subscribe(0, filters("v3", limit+1)...)
		if ack.ReasonCodes[limit-1] != 1 || ack.ReasonCodes[limit] != packet.SubackFailure {
			t.Fatalf("SUBACK codes % x", ack.ReasonCodes)
		}
	})

	if n := b.srv.LimitStats().SubscriptionsRefused; n < 3+35+1+1 {
		t.Errorf("SubscriptionsRefused = %d", n)
	}
}

// countFrames counts the packets of type typ that arrive on c within d.
func countFrames(c *rawClient, typ packet.Type, d time.Duration) int {
	n := 0
	for deadline := time.Now().Add(d); ; {
		left := time.Until(deadline)
		if left <= 0 {
			return n
		}
		f, ok := c.next(left)
		if !ok {
			return n
		}
		if f.p != nil && f.p.Type() == typ {
			n++
		}
	}
}

func TestE2EControlRate(t *testing.T) {
	const rate, sent = 20, 500
	b := startBroker(t, func(o *Options) { o.MaxControlRate = rate })

	t.Run("[SECURITY] a PINGREQ flood is throttled, not buffered, and others are served", func(t *testing.T) {
		c := b.rawV5(t, "ping-flood")
		if err := c.sendBytes(bytes.Repeat([]byte{0xC0, 0x00}, sent)); err != nil {
			t.Fatal(err)
		}
		n := countFrames(c, packet.PINGRESP, time.Second)
		t.Logf("%d of %d PINGREQ answered in the first second at max_control_rate %d", n, sent, rate)
		if n == 0 || n > sent/2 {
			t.Fatalf("%d PINGRESP in a second; want some, far fewer than %d", n, sent)
		}
		other := b.rawV5(t, "ping-other")
		_ = other.send(&packet.Pingreq{})
		expectPacket[*packet.Pingresp](other)

		// The flooder's read loop is paused with hundreds of packets to go: taking over its
		// client id must still end it at once.
		again := b.dialRaw(t, packet.V5)
		again.mustConnect(v5Connect("ping-flood"))
		got := c.expectClosed(waitLong)
		if d, ok := got[len(got)-1].(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
			t.Fatalf("throttled connection ended with %s", describe(got[len(got)-1]))
		}
	})

	t.Run("[SECURITY] a SUBSCRIBE flood is throttled", func(t *testing.T) {
		c := b.rawV5(t, "sub-flood")
		var buf []byte
		for i := range sent {
			buf = encodeAppend(t, buf, &packet.Subscribe{PacketID: uint16(i + 1),
				Subscriptions: []packet.Subscription{{Filter: "sf/t"}}})
		}
		if err := c.sendBytes(buf); err != nil {
			t.Fatal(err)
		}
		n := countFrames(c, packet.SUBACK, time.Second)
		t.Logf("%d of %d SUBSCRIBE answered in the first second", n, sent)
		if n == 0 || n > sent/2 {
			t.Fatalf("%d SUBACK in a second; want some, far fewer than %d", n, sent)
		}
	})

	if b.srv.LimitStats().ControlThrottled == 0 {
		t.Error("ControlThrottled not counted")
	}
}

// publishBatch encodes n PUBLISH packets of QoS qos with packet ids from 1.
func publishBatch(t testing.TB, n int, qos byte, topic string, payload []byte) []byte {
	var buf []byte
	for i := range n {
		p := &packet.Publish{QoS: qos, Topic: topic, Payload: payload}
		if qos > 0 {
			p.PacketID = uint16(i + 1)
		}
		buf = encodeAppend(t, buf, p)
	}
	return buf
}

func TestE2EPublishRate(t *testing.T) {
	t.Run("[SECURITY] reject: QoS 1 beyond the burst gets PUBACK 0x97 and is not routed", func(t *testing.T) {
		const rate, sent = 10, 60
		b := startBroker(t, func(o *Options) { o.MaxPublishRate, o.RateLimitReject = rate, true })
		sub := b.rawV5(t, "rj-sub")
		sub.mustSubscribe(0, "rj/t")
		c := b.rawV5(t, "rj-pub")
		if err := c.sendBytes(publishBatch(t, sent, 1, "rj/t", []byte("x"))); err != nil {
			t.Fatal(err)
		}
		accepted, refused := 0, 0
		for range sent {
			switch rc := expectPacket[*packet.Puback](c).ReasonCode; rc {
			case packet.Success:
				accepted++
			case packet.QuotaExceeded:
				refused++
			default:
				t.Fatalf("PUBACK 0x%02X", byte(rc))
			}
		}
		t.Logf("%d accepted, %d refused of %d sent at once with max_publish_rate %d", accepted, refused, sent, rate)
		if accepted == 0 || refused < sent/2 {
			t.Fatalf("%d accepted, %d refused; want the burst accepted and most refused", accepted, refused)
		}
		if got := countFrames(sub, packet.PUBLISH, waitShort); got != accepted {
			t.Fatalf("subscriber received %d messages, want the %d accepted", got, accepted)
		}
		if n := b.srv.LimitStats().PublishRejected; n != int64(refused) {
			t.Errorf("PublishRejected = %d, want %d", n, refused)
		}
	})

	t.Run("[SECURITY] throttle: a QoS 1 flood is paced, nothing is refused", func(t *testing.T) {
		const rate, sent = 20, 300
		b := startBroker(t, func(o *Options) { o.MaxPublishRate = rate })
		c := b.rawV5(t, "th-pub")
		if err := c.sendBytes(publishBatch(t, sent, 1, "th/t", []byte("x"))); err != nil {
			t.Fatal(err)
		}
		n := 0
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			f, ok := c.next(time.Until(deadline))
			if !ok {
				break
			}
			if a, isAck := f.p.(*packet.Puback); !isAck || a.ReasonCode.IsError() {
				t.Fatalf("got %s, want PUBACK", describeFrame(f))
			}
			n++
		}
		t.Logf("%d of %d PUBLISH acknowledged in the first second at max_publish_rate %d", n, sent, rate)
		if n == 0 || n > sent/2 {
			t.Fatalf("%d PUBACK in a second; want some, far fewer than %d", n, sent)
		}
		if b.srv.LimitStats().PublishThrottled == 0 {
			t.Error("PublishThrottled not counted")
		}
	})

	t.Run("[SECURITY] throttle by bytes", func(t *testing.T) {
		const sent = 200
		b := startBroker(t, func(o *Options) { o.MaxPacketSize, o.MaxPublishBytesRate = 4096, 8192 })
		c := b.rawV5(t, "by-pub")
		if err := c.sendBytes(publishBatch(t, sent, 1, "by/t", make([]byte, 1000))); err != nil {
			t.Fatal(err)
		}
		n := countFrames(c, packet.PUBACK, time.Second)
		t.Logf("%d of %d 1 KB messages acknowledged in the first second at 8 KB/s", n, sent)
		if n == 0 || n > sent/2 {
			t.Fatalf("%d PUBACK in a second; want some, far fewer than %d", n, sent)
		}
	})

	t.Run("reject mode throttles what cannot be refused (QoS 0)", func(t *testing.T) {
		const rate, sent = 10, 100
		b := startBroker(t, func(o *Options) { o.MaxPublishRate, o.RateLimitReject = rate, true })
		sub := b.rawV5(t, "rq0-sub")
		sub.mustSubscribe(0, "rq0/t")
		c := b.rawV5(t, "rq0-pub")
		if err := c.sendBytes(publishBatch(t, sent, 0, "rq0/t", []byte("x"))); err != nil {
			t.Fatal(err)
		}
		n := countFrames(sub, packet.PUBLISH, time.Second)
		if n == 0 || n > sent/2 {
			t.Fatalf("%d of %d QoS 0 messages routed in a second at rate %d", n, sent, rate)
		}
		if b.srv.LimitStats().PublishRejected != 0 {
			t.Error("a QoS 0 message was counted as rejected")
		}
	})
}

func TestE2EFloodDoesNotStarveOthers(t *testing.T) {
	// One client publishes as fast as it can; another publishes 100 messages a second.
	// The second one's messages must keep flowing. Rates and latencies are logged.
	const floodRate, victimRate, victimMsgs = 2000, 100, 150
	b := startBroker(t, func(o *Options) {
		o.MaxPublishRate = floodRate
		// The victim pauses 10 ms between messages, longer than the harness's ParkAfter:
		// with parking, its figures would measure the parker's wake-ups, not the flood.
		o.ParkAfter = 0
	})
	sub := b.rawV5(t, "fair-sub")
	sub.mustSubscribe(0, "fair/victim")
	sink := b.rawV5(t, "fair-sink") // gives the flood somewhere to go
	sink.mustSubscribe(0, "fair/flood")
	go func() { // keep the sink reading, so the flood is routed, not dropped at its socket
		for {
			if _, ok := sink.next(waitLong); !ok && sink.isClosed() {
				return
			}
		}
	}()

	flooder := b.rawV5(t, "fair-flood")
	batch := publishBatch(t, 64, 0, "fair/flood", make([]byte, 256))
	stop, flooded := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { flooded <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if flooder.sendBytes(batch) != nil {
				return
			}
			n += 64
		}
	}()

	victim := b.rawV5(t, "fair-victim")
	latencies := make(chan time.Duration, victimMsgs)
	go func() {
		for range victimMsgs {
			f, ok := sub.next(waitLong)
			if !ok {
				break
			}
			if p, isPub := f.p.(*packet.Publish); isPub && len(p.Payload) == 8 {
				latencies <- time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(p.Payload))))
			}
		}
		close(latencies)
	}()
	start := time.Now()
	tick := time.NewTicker(time.Second / victimRate)
	var acks []time.Duration
	for range victimMsgs {
		<-tick.C
		sent := time.Now()
		payload := binary.BigEndian.AppendUint64(nil, uint64(sent.UnixNano()))
		if rc := victim.publish(&packet.Publish{QoS: 1, Topic: "fair/victim", Payload: payload}); rc.IsError() {
			t.Fatalf("victim PUBACK 0x%02X", byte(rc))
		}
		acks = append(acks, time.Since(sent))
	}
	tick.Stop()
	slices.Sort(acks)
	t.Logf("victim: PUBACK round trip p50 %v, p99 %v, max %v", acks[len(acks)/2], acks[len(acks)*99/100], acks[len(acks)-1])
	var got []time.Duration
	for l := range latencies {
		got = append(got, l)
	}
	elapsed := time.Since(start)
	close(stop)
	n := <-flooded
	if len(got) != victimMsgs {
		t.Fatalf("the subscriber received %d of the victim's %d messages", len(got), victimMsgs)
	}
	slices.Sort(got)
	t.Logf("victim: %d messages in %v (%.0f/s); latency p50 %v, p99 %v, max %v",
		len(got), elapsed.Round(time.Millisecond), float64(len(got))/elapsed.Seconds(),
		got[len(got)/2], got[len(got)*99/100], got[len(got)-1])
	t.Logf("flooder: %d messages written, %d throttled pauses at max_publish_rate %d",
		n, b.srv.LimitStats().PublishThrottled, floodRate)
	if b.srv.LimitStats().PublishThrottled == 0 {
		t.Error("the flooder was never throttled")
	}
}

func TestE2ERetainedBudgets(t *testing.T) {
	retained := func(topic string, qos byte, payload string) *packet.Publish {
		return &packet.Publish{Topic: topic, QoS: qos, Retain: true, Payload: []byte(payload)}
	}

	t.Run("[SECURITY] a retained flood stops at max_retained_messages with 0x97", func(t *testing.T) {
		const limit = 20
		b := startBroker(t, func(o *Options) { o.MaxRetained = limit })
		c := b.rawV5(t, "rc-pub")
		stored, refused := 0, 0
		for i := range 3 * limit {
			switch rc := c.publish(retained(fmt.Sprint("rc/", i), 1, "v")); {
			case rc == packet.QuotaExceeded:
				refused++
			case !rc.IsError():
				stored++
			default:
				t.Fatalf("PUBACK 0x%02X", byte(rc))
			}
		}
		if stored != limit || b.srv.retained.len() != limit {
			t.Fatalf("%d accepted, %d kept; want %d", stored, b.srv.retained.len(), limit)
		}
		// At the limit, replacing and deleting still work, and a deletion frees a place.
		if rc := c.publish(retained("rc/0", 1, "replaced")); rc.IsError() {
			t.Fatalf("replace at the limit: 0x%02X", byte(rc))
		}
		if rc := c.publish(retained("rc/1", 1, "")); rc.IsError() {
			t.Fatalf("delete at the limit: 0x%02X", byte(rc))
		}
		if rc := c.publish(retained("rc/new", 1, "v")); rc.IsError() {
			t.Fatalf("new topic after a delete: 0x%02X", byte(rc))
		}
		// Refused messages were neither kept nor routed.
		s := b.rawV5(t, "rc-sub")
		s.mustSubscribe(0, "rc/#")
		if n := countFrames(s, packet.PUBLISH, waitShort); n != limit {
			t.Fatalf("a new subscriber got %d retained messages, want %d", n, limit)
		}
		_ = c.send(&packet.Pingreq{})
		expectPacket[*packet.Pingresp](c)
		if st := b.srv.LimitStats(); st.RetainedCountFull != int64(refused) || st.RetainedMessages != limit {
			t.Errorf("stats %+v; want %d refusals", st, refused)
		}
	})

	t.Run("[SECURITY] payload and byte budgets", func(t *testing.T) {
		msgSize := (&Message{Topic: "rb/00", Payload: make([]byte, 100)}).size()
		b := startBroker(t, func(o *Options) {
			o.MaxRetainedPayload = 100
			o.MaxRetainedBytes = int64(5*msgSize + msgSize/2)
		})
		c := b.rawV5(t, "rb-pub")
		if rc := c.publish(retained("rb/big", 2, string(make([]byte, 101)))); rc != packet.QuotaExceeded {
			t.Fatalf("101-byte retained payload: PUBREC 0x%02X, want 0x97", byte(rc))
		}
		for i := range 6 {
			rc := c.publish(retained(fmt.Sprintf("rb/%02d", i), 1, string(make([]byte, 100))))
			if want := i == 5; rc == packet.QuotaExceeded != want {
				t.Fatalf("message %d: PUBACK 0x%02X", i, byte(rc))
			}
		}
		if rc := c.publish(retained("rb/00", 1, string(make([]byte, 100)))); rc.IsError() {
			t.Fatalf("same-size replacement at the byte budget: 0x%02X", byte(rc))
		}
		st := b.srv.LimitStats()
		if st.RetainedPayloadTooLarge != 1 || st.RetainedBytesFull != 1 || st.RetainedBytes != int64(5*msgSize) {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("QoS 0 and MQTT 3.1.1 over a budget: delivered now, not kept", func(t *testing.T) {
		b := startBroker(t, func(o *Options) { o.MaxRetained = 1 })
		c := b.rawV5(t, "rq-pub")
		c.publish(retained("rq/kept", 1, "k"))
		s := b.rawV5(t, "rq-sub")
		s.mustSubscribe(0, "rq/live/#")
		c.publish(retained("rq/live/v5", 0, "q0"))
		v3 := b.dialRaw(t, packet.V311)
		v3.mustConnect(v311Connect("rq-311"))
		if rc := v3.publish(retained("rq/live/v3", 1, "q1")); rc != packet.Success {
			t.Fatalf("MQTT 3.1.1 PUBACK 0x%02X", byte(rc))
		}
		for range 2 {
			if p := s.expectPublish(); p.Retain || !bytes.HasPrefix(p.Payload, []byte("q")) {
				t.Fatalf("current subscriber got %s", describe(p))
			}
		}
		late := b.rawV5(t, "rq-late")
		late.mustSubscribe(0, "rq/live/#")
		late.expectNone(waitShort, "a message over the retained budget was kept")
		if b.srv.retained.len() != 1 {
			t.Fatalf("%d retained messages, want 1", b.srv.retained.len())
		}
	})
}

func TestE2ERetainedExpiry(t *testing.T) {
	const expiry = 300 * time.Millisecond
	b := startBroker(t, func(o *Options) { o.RetainedExpiry = expiry })
	c := b.rawV5(t, "rx-pub")
	for _, topic := range []string{"rx/a", "rx/b"} {
		c.publish(&packet.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("old")})
	}
	s := b.rawV5(t, "rx-sub")
	s.mustSubscribe(0, "rx/a")
	if p := s.expectPublish(); !p.Retain {
		t.Fatalf("got %s, want the retained message before it expires", describe(p))
	}
	time.Sleep(expiry + 100*time.Millisecond) // let both age past retained_expiry

	t.Run("an expired retained message is not delivered and is dropped", func(t *testing.T) {
		late := b.rawV5(t, "rx-late")
		late.mustSubscribe(0, "rx/a")
		late.expectNone(waitShort, "expired retained message delivered")
	})
	t.Run("the sweep drops expired messages nobody asks for", func(t *testing.T) {
		eventually(t, 5*time.Second, "retained store empty", func() bool { return b.srv.retained.len() == 0 })
		if st := b.srv.LimitStats(); st.RetainedExpired != 2 || st.RetainedBytes != 0 {
			t.Errorf("stats %+v; want 2 expired, 0 bytes", st)
		}
	})
}

func TestE2EMemoryBudget(t *testing.T) {
	const budget = 64 << 10
	payload := make([]byte, 1000)
	msgSize := int64((&Message{Topic: "mem/q0", Payload: payload}).size())
	b := startBroker(t, func(o *Options) { o.MaxMemoryBytes = budget })
	offline := func(id, filter string, qos byte) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect(id), 300, true))
		c.mustSubscribe(qos, filter)
		c.disconnect(packet.NormalDisconnection)
	}
	offline("mem-q0", "mem/q0", 0)
	offline("mem-q1", "mem/q1", 1)
	pub := b.rawV5(t, "mem-pub")

	t.Run("[SECURITY] QoS 0 for a session that is not keeping up is dropped at the budget", func(t *testing.T) {
		_ = pub.sendBytes(publishBatch(t, 200, 0, "mem/q0", payload))
		_ = pub.send(&packet.Pingreq{}) // answered once every PUBLISH before it is handled
		expectPacket[*packet.Pingresp](pub)
		st := b.srv.LimitStats()
		t.Logf("queued %d bytes of %d sent, %d dropped", st.QueuedBytes, 200*msgSize, st.MemoryDropped)
		if st.QueuedBytes > budget || st.MemoryDropped == 0 {
			t.Fatalf("stats %+v; want at most %d bytes queued and drops counted", st, budget)
		}
	})

	t.Run("[SECURITY] then new retained messages are refused with 0x97", func(t *testing.T) {
		// The queues stop within one message of the budget; a retained message must fit.
		if rc := pub.publish(&packet.Publish{Topic: "mem/r", QoS: 1, Retain: true, Payload: payload}); rc != packet.QuotaExceeded {
			t.Fatalf("retained PUBACK 0x%02X, want 0x97", byte(rc))
		}
		if b.srv.LimitStats().RetainedMemoryFull != 1 {
			t.Error("RetainedMemoryFull not counted")
		}
	})

	t.Run("[SECURITY] an eighth above the budget, QoS 1 stops being queued too", func(t *testing.T) {
		for range 100 {
			if rc := pub.publish(&packet.Publish{Topic: "mem/q1", QoS: 1, Payload: payload}); rc.IsError() {
				t.Fatalf("PUBACK 0x%02X", byte(rc))
			}
		}
		if q := b.srv.LimitStats().QueuedBytes; q > budget+budget/8 {
			t.Fatalf("%d bytes queued, want at most %d", q, budget+budget/8)
		}
	})

	t.Run("draining the queues frees the budget", func(t *testing.T) {
		for _, id := range []string{"mem-q0", "mem-q1"} {
			c := b.dialRaw(t, packet.V5)
			c.mustConnect(withExpiry(v5Connect(id), 300, false))
			n := 0
			for {
				f, ok := c.next(waitShort)
				if !ok {
					break
				}
				if p, isPub := f.p.(*packet.Publish); isPub {
					c.ack(p)
					n++
				}
			}
			t.Logf("%s received %d queued messages", id, n)
		}
		eventually(t, waitLong, "queues empty", func() bool { return b.srv.LimitStats().QueuedBytes == 0 })
		if rc := pub.publish(&packet.Publish{Topic: "mem/r", QoS: 1, Retain: true, Payload: []byte("r")}); rc.IsError() {
			t.Fatalf("retained PUBACK 0x%02X after the queues drained", byte(rc))
		}
	})

	t.Run("the queue of a session that ends is given back", func(t *testing.T) {
		cp := v5Connect("mem-leak")
		cp.Properties.ReceiveMaximum = 1
		cp.Properties.Set(packet.PropReceiveMaximum)
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(cp)
		c.mustSubscribe(1, "mem/leak")
		for range 10 {
			pub.publish(&packet.Publish{Topic: "mem/leak", QoS: 1, Payload: payload})
		}
		if b.srv.LimitStats().QueuedBytes == 0 {
			t.Fatal("nothing queued behind a receive maximum of 1")
		}
		c.close()
		eventually(t, waitLong, "session ended", func() bool { return pub.probe("mem/leak") == packet.NoMatchingSubscribers })
		if q := b.srv.LimitStats().QueuedBytes; q != 0 {
			t.Fatalf("%d bytes still counted after the session ended", q)
		}
	})
}
