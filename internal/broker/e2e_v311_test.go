package broker

// End-to-end tests of MQTT 3.1.1 driven through eclipse/paho.mqtt.golang, and raw 3.1.1
// sockets that check the exact bytes of acknowledgements: a 3.1.1 client must never see an
// MQTT 5 field. Test names carry the MQTT 3.1.1 normative statement they check.

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestE2EV311Paho(t *testing.T) {
	b := startBroker(t, nil)
	pub, _, _ := b.v311Client(t, "p311-pub", nil)

	for qos := byte(0); qos <= 2; qos++ {
		t.Run(fmt.Sprintf("[MQTT-4.6.0-6] [MQTT-3.8.4-6] QoS %d pub/sub: in order, payload intact, granted QoS", qos), func(t *testing.T) {
			topic := fmt.Sprintf("p311/%d", qos)
			sub, _, _ := b.v311Client(t, fmt.Sprint("p311-sub-", qos), nil)
			got := make(chan mqtt.Message, 100)
			tok := sub.Subscribe(topic, qos, func(_ mqtt.Client, m mqtt.Message) { got <- m })
			waitToken(t, tok, "subscribe")
			if granted := tok.(*mqtt.SubscribeToken).Result()[topic]; granted != qos {
				t.Fatalf("granted QoS %d, want %d", granted, qos)
			}
			const n = 50
			for i := range n {
				payload := append([]byte(fmt.Sprintf("%03d:", i)), bytes.Repeat([]byte{byte(i), 0, 0xff}, i)...)
				waitToken(t, pub.Publish(topic, qos, false, payload), "publish")
			}
			for i := range n {
				m := recv311(t, got)
				want := append([]byte(fmt.Sprintf("%03d:", i)), bytes.Repeat([]byte{byte(i), 0, 0xff}, i)...)
				if !bytes.Equal(m.Payload(), want) || m.Qos() != qos || m.Topic() != topic {
					t.Fatalf("message %d: %q at QoS %d on %q", i, m.Payload()[:4], m.Qos(), m.Topic())
				}
			}
		})
	}

	t.Run("[MQTT-3.3.1-8] [MQTT-3.3.1-9] retained: RETAIN 1 on subscribe, 0 on live delivery", func(t *testing.T) {
		waitToken(t, pub.Publish("p311/ret", 1, true, "kept"), "publish retained")
		sub, _, _ := b.v311Client(t, "p311-ret", nil)
		got := make(chan mqtt.Message, 10)
		waitToken(t, sub.Subscribe("p311/ret", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }), "subscribe")
		if m := recv311(t, got); !m.Retained() || string(m.Payload()) != "kept" {
			t.Fatalf("got %q retained=%v", m.Payload(), m.Retained())
		}
		waitToken(t, pub.Publish("p311/ret", 1, true, "live"), "publish retained")
		if m := recv311(t, got); m.Retained() || string(m.Payload()) != "live" {
			t.Fatalf("live delivery %q retained=%v, want RETAIN 0", m.Payload(), m.Retained())
		}
		waitToken(t, pub.Publish("p311/ret", 1, true, ""), "delete retained")
		recv311(t, got)
		late, _, _ := b.v311Client(t, "p311-ret-late", nil)
		gotLate := make(chan mqtt.Message, 10)
		waitToken(t, late.Subscribe("p311/ret", 1, func(_ mqtt.Client, m mqtt.Message) { gotLate <- m }), "subscribe")
		select {
		case m := <-gotLate:
			t.Fatalf("[MQTT-3.3.1-10] deleted retained message delivered: %q", m.Payload())
		case <-time.After(waitShort):
		}
	})

	t.Run("[MQTT-3.1.2-8] will published when the network connection drops", func(t *testing.T) {
		watch, _, _ := b.v311Client(t, "p311-will-watch", nil)
		got := make(chan mqtt.Message, 10)
		waitToken(t, watch.Subscribe("p311/will", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }), "subscribe")
		var nc net.Conn
		b.v311Client(t, "p311-will", func(o *mqtt.ClientOptions) {
			o.SetWill("p311/will", "dropped", 1, false)
			o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
				c, err := net.DialTimeout("tcp", u.Host, waitLong)
				nc = c
				return c, err
			})
		})
		_ = nc.Close()
		if m := recv311(t, got); string(m.Payload()) != "dropped" {
			t.Fatalf("got %q", m.Payload())
		}
	})

	t.Run("[MQTT-3.1.2-10] will not published after DISCONNECT", func(t *testing.T) {
		watch, _, _ := b.v311Client(t, "p311-nowill-watch", nil)
		got := make(chan mqtt.Message, 10)
		waitToken(t, watch.Subscribe("p311/nowill", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }), "subscribe")
		c, _, _ := b.v311Client(t, "p311-nowill", func(o *mqtt.ClientOptions) { o.SetWill("p311/nowill", "x", 1, false) })
		c.Disconnect(100)
		select {
		case m := <-got:
			t.Fatalf("will published after DISCONNECT: %q", m.Payload())
		case <-time.After(waitShort):
		}
	})

	t.Run("[MQTT-3.1.2-4] [MQTT-3.2.2-2] clean session 0: resumed with session present 1 and queued messages", func(t *testing.T) {
		persistent := func(o *mqtt.ClientOptions) { o.SetCleanSession(false) }
		c, _, _ := b.v311Client(t, "p311-persist", persistent)
		waitToken(t, c.Subscribe("p311/persist", 1, nil), "subscribe")
		c.Disconnect(100)
		for i := range 5 {
			waitToken(t, pub.Publish("p311/persist", 1, false, fmt.Sprint(i)), "publish")
		}
		_, msgs, present := b.v311Client(t, "p311-persist", persistent)
		if !present {
			t.Fatal("session present 0")
		}
		for i := range 5 {
			if m := recv311(t, msgs); string(m.Payload()) != fmt.Sprint(i) {
				t.Fatalf("queued message %d is %q", i, m.Payload())
			}
		}
	})

	t.Run("[MQTT-3.1.2-6] [MQTT-3.2.2-1] clean session 1 discards the session", func(t *testing.T) {
		c, _, _ := b.v311Client(t, "p311-clean", func(o *mqtt.ClientOptions) { o.SetCleanSession(false) })
		waitToken(t, c.Subscribe("p311/clean", 1, nil), "subscribe")
		c.Disconnect(100)
		waitToken(t, pub.Publish("p311/clean", 1, false, "old"), "publish")
		_, msgs, present := b.v311Client(t, "p311-clean", nil)
		if present {
			t.Fatal("session present 1 with clean session 1")
		}
		select {
		case m := <-msgs:
			t.Fatalf("message of the discarded session delivered: %q", m.Payload())
		case <-time.After(waitShort):
		}
	})
}

func TestE2EV311Raw(t *testing.T) {
	b := startBroker(t, nil)
	c := b.dialRaw(t, packet.V311)
	c.mustConnect(v311Connect("r311"))
	rawNext := func(t *testing.T) []byte {
		t.Helper()
		f, ok := c.next(waitLong)
		if !ok {
			t.Fatal("nothing received")
		}
		return f.raw
	}

	for _, tc := range []struct {
		name string
		send packet.Packet
		want []byte
	}{
		{"[§3.4] PUBACK is exactly 40 02 id (no reason code, no properties)",
			&packet.Publish{QoS: 1, PacketID: 0x1234, Topic: "r311/none", Payload: []byte("x")}, []byte{0x40, 0x02, 0x12, 0x34}},
		{"[MQTT-3.3.5-2] PUBACK for a refused $SYS publish is a plain positive acknowledgement",
			&packet.Publish{QoS: 1, PacketID: 0x0102, Topic: "$SYS/x", Payload: []byte("x")}, []byte{0x40, 0x02, 0x01, 0x02}},
		{"[§3.5] PUBREC is exactly 50 02 id",
			&packet.Publish{QoS: 2, PacketID: 0x0a0b, Topic: "r311/none", Payload: []byte("x")}, []byte{0x50, 0x02, 0x0a, 0x0b}},
		{"[§3.7] PUBCOMP is exactly 70 02 id",
			&packet.Pubrel{PacketID: 0x0a0b}, []byte{0x70, 0x02, 0x0a, 0x0b}},
		{"[§3.7] PUBCOMP for an unknown id is exactly 70 02 id",
			&packet.Pubrel{PacketID: 0x7777}, []byte{0x70, 0x02, 0x77, 0x77}},
		{"[MQTT-4.7.1-2] [MQTT-3.9.3-2] SUBACK failure 0x80 for a/#/b, granted QoS for the valid filter",
			&packet.Subscribe{PacketID: 0x0203, Subscriptions: []packet.Subscription{{Filter: "a/#/b", QoS: 1}, {Filter: "r311/ok", QoS: 2}}},
			[]byte{0x90, 0x04, 0x02, 0x03, 0x80, 0x02}},
		{"[§3.11] UNSUBACK is exactly b0 02 id, also for a filter never subscribed",
			&packet.Unsubscribe{PacketID: 0x0304, Filters: []string{"never/subscribed"}}, []byte{0xb0, 0x02, 0x03, 0x04}},
		{"[MQTT-3.12.4-1] PINGRESP is exactly d0 00",
			&packet.Pingreq{}, []byte{0xd0, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.send(tc.send); err != nil {
				t.Fatal(err)
			}
			if got := rawNext(t); !bytes.Equal(got, tc.want) {
				t.Fatalf("got % x, want % x", got, tc.want)
			}
		})
	}

	t.Run("[§3.3.2] a message published with MQTT 5 properties reaches a 3.1.1 subscriber without them", func(t *testing.T) {
		sub := b.dialRaw(t, packet.V311)
		sub.mustConnect(v311Connect("r311-sub"))
		sub.mustSubscribe(1, "r311/props")
		pub5 := b.rawV5(t, "r311-pub5")
		p := &packet.Publish{QoS: 1, Topic: "r311/props", Payload: []byte("body")}
		p.Properties.ContentType = "text/plain"
		p.Properties.Set(packet.PropContentType)
		p.Properties.User = []packet.UserProperty{{Key: "k", Value: "v"}}
		p.Properties.MessageExpiry = 100
		p.Properties.Set(packet.PropMessageExpiry)
		pub5.publish(p)
		f, ok := sub.next(waitLong)
		if !ok {
			t.Fatal("no message")
		}
		// 32 rl | 00 0a "r311/props" | id(2) | "body": nothing else.
		want := append([]byte{0x32, byte(2 + 10 + 2 + 4), 0x00, 0x0a}, "r311/props"...)
		if len(f.raw) != len(want)+2+4 || !bytes.Equal(f.raw[:len(want)], want) || string(f.raw[len(want)+2:]) != "body" {
			t.Fatalf("3.1.1 PUBLISH bytes % x", f.raw)
		}
		_ = sub.send(&packet.Puback{PacketID: f.p.(*packet.Publish).PacketID})
	})

	t.Run("[MQTT-4.8.0-1] a 3.1.1 client never gets DISCONNECT: a protocol error just closes", func(t *testing.T) {
		x := b.dialRaw(t, packet.V311)
		x.mustConnect(v311Connect("r311-perr"))
		_ = x.sendBytes([]byte{0xf0, 0x00}) // AUTH does not exist in 3.1.1
		if got := x.expectClosed(waitLong); len(got) != 0 {
			t.Fatalf("got %s before close", describeAll(got))
		}
	})
}
