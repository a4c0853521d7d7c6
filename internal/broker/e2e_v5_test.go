package broker

// End-to-end tests of MQTT 5 behaviour driven mostly through eclipse/paho.golang, the way
// real MQTT 5 clients use the broker; raw clients (e2e_helpers_test.go) stand in where the
// test must withhold an acknowledgement, close a socket abruptly or read exact properties.
// Test names carry the normative statement they check (MQTT 5.0 numbering; [§x.y] where
// the rule has no number).

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestE2ESessions(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	prober := b.rawV5(t, "sess-probe")

	connect := func(t *testing.T, id string, clean bool, expiry *uint32) (*paho.Client, *paho.Connack, chan *paho.Publish) {
		t.Helper()
		cp := &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30}
		if expiry != nil {
			cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: expiry}
		}
		return b.v5Client(t, cp)
	}
	subscribe := func(t *testing.T, c *paho.Client, filter string) {
		t.Helper()
		if _, err := c.Subscribe(pahoCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("[MQTT-3.1.2-4] [MQTT-3.2.2-2] clean start discards the session", func(t *testing.T) {
		prober := prober.in(t)
		c, _, _ := connect(t, "sess-clean", true, u32(60))
		subscribe(t, c, "sess/clean")
		_ = c.Disconnect(&paho.Disconnect{})
		_, ack, msgs := connect(t, "sess-clean", true, u32(60))
		if ack.SessionPresent {
			t.Fatal("session present 1 after clean start")
		}
		if rc := prober.probe("sess/clean"); rc != packet.NoMatchingSubscribers {
			t.Fatalf("PUBACK 0x%02X: the discarded session's subscription still routes", byte(rc))
		}
		noMessage(t, msgs, waitShort, "message for a discarded subscription")
	})

	t.Run("[MQTT-3.1.2-5] [MQTT-3.2.2-3] session expiry > 0: resumed with session present 1 and its subscriptions", func(t *testing.T) {
		c, _, _ := connect(t, "sess-keep", true, u32(60))
		subscribe(t, c, "sess/keep")
		_ = c.Disconnect(&paho.Disconnect{})
		c2, ack, msgs := connect(t, "sess-keep", false, u32(60))
		if !ack.SessionPresent {
			t.Fatal("session present 0 on resume")
		}
		pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "sess-keep-pub", CleanStart: true})
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "sess/keep", QoS: 1, Payload: []byte("still here")}); err != nil {
			t.Fatal(err)
		}
		if p := recv(t, msgs); string(p.Payload) != "still here" {
			t.Fatalf("got %q", p.Payload)
		}
		_ = c2
	})

	t.Run("[MQTT-3.1.2-23] [MQTT-4.6.0-5] QoS 1 messages published while offline are delivered in order on resume", func(t *testing.T) {
		c, _, _ := connect(t, "sess-queue", true, u32(60))
		subscribe(t, c, "sess/queue")
		_ = c.Disconnect(&paho.Disconnect{})
		pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "sess-queue-pub", CleanStart: true})
		const n = 30
		for i := range n {
			if _, err := pub.Publish(ctx, &paho.Publish{Topic: "sess/queue", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
		_, ack, msgs := connect(t, "sess-queue", false, u32(60))
		if !ack.SessionPresent {
			t.Fatal("session present 0 on resume")
		}
		for i := range n {
			p := recv(t, msgs)
			if string(p.Payload) != fmt.Sprint(i) || p.QoS != 1 {
				t.Fatalf("message %d: got %q at QoS %d", i, p.Payload, p.QoS)
			}
		}
		noMessage(t, msgs, waitShort, "more than was queued")
	})

	t.Run("[MQTT-3.1.2-23] session expiry 0: the session ends at disconnect", func(t *testing.T) {
		prober := prober.in(t)
		c, _, _ := connect(t, "sess-zero", true, nil)
		subscribe(t, c, "sess/zero")
		_ = c.Disconnect(&paho.Disconnect{})
		eventually(t, waitLong, "session gone", func() bool { return prober.probe("sess/zero") == packet.NoMatchingSubscribers })
		_, ack, _ := connect(t, "sess-zero", false, nil)
		if ack.SessionPresent {
			t.Fatal("session present 1 after a session with expiry 0 ended")
		}
	})

	t.Run("[MQTT-3.1.2-23] session with expiry 1 s is gone after it passes", func(t *testing.T) {
		prober := prober.in(t)
		c, _, _ := connect(t, "sess-short", true, u32(1))
		subscribe(t, c, "sess/short")
		_ = c.Disconnect(&paho.Disconnect{})
		eventually(t, waitLong, "session expired", func() bool { return prober.probe("sess/short") == packet.NoMatchingSubscribers })
		_, ack, msgs := connect(t, "sess-short", false, u32(1))
		if ack.SessionPresent {
			t.Fatal("session present 1 after its expiry interval")
		}
		noMessage(t, msgs, waitShort, "message queued for an expired session")
	})

	t.Run("[§3.2.2.3.2] session expiry above the broker's maximum is lowered in CONNACK", func(t *testing.T) {
		b := startBroker(t, func(o *Options) { o.SessionExpiry = 100 * time.Second })
		_, ack, _ := b.v5Client(t, &paho.Connect{ClientID: "sess-cap", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(1000)}})
		if ack.Properties == nil || ack.Properties.SessionExpiryInterval == nil || *ack.Properties.SessionExpiryInterval != 100 {
			t.Fatalf("CONNACK properties %+v, want Session Expiry Interval 100", ack.Properties)
		}
	})
}

func TestE2ETakeoverPrincipal(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	prober := b.rawV5(t, "tp-probe")
	pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "tp-pub", CleanStart: true})

	owner := func(t *testing.T, id, user string, clean bool) (*paho.Client, *paho.Connack, chan *paho.Publish) {
		return b.v5Client(t, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30, Username: user, UsernameFlag: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
	}

	for _, online := range []bool{false, true} {
		name := "offline"
		if online {
			name = "online"
		}
		t.Run("[SECURITY] [MQTT-3.1.4-3] takeover by another username inherits no subscription and no message ("+name+")", func(t *testing.T) {
			prober := prober.in(t)
			id, topic := "tp-victim-"+name, "tp/secret/"+name
			alice := b.dialRaw(t, packet.V5)
			cp := withExpiry(v5Connect(id), 60, true)
			cp.HasUsername, cp.Username = true, "alice"
			alice.mustConnect(cp)
			alice.mustSubscribe(1, topic)
			if !online {
				alice.disconnect(packet.NormalDisconnection)
			}
			for i := range 3 {
				if _, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprint("secret ", i))}); err != nil {
					t.Fatal(err)
				}
			}
			_, ack, msgs := owner(t, id, "mallory", false)
			if online {
				// alice held the messages unacknowledged; she is told and cut off.
				got := alice.expectClosed(waitLong)
				if len(got) == 0 {
					t.Fatal("alice closed without DISCONNECT 0x8E")
				}
				if d, ok := got[len(got)-1].(*packet.Disconnect); !ok || d.ReasonCode != packet.SessionTakenOver {
					t.Fatalf("alice got %s", describeAll(got))
				}
			}
			if ack.SessionPresent {
				t.Fatal("session present 1 for another username: alice's session was handed over")
			}
			noMessage(t, msgs, waitShort, "alice's queued message delivered to mallory")
			if rc := prober.probe(topic); rc != packet.NoMatchingSubscribers {
				t.Fatalf("PUBACK 0x%02X: alice's subscription survived the takeover by mallory", byte(rc))
			}
			noMessage(t, msgs, waitShort, "mallory receives on alice's subscription")
		})
	}

	t.Run("[MQTT-3.1.2-5] the same username resuming inherits subscriptions and queued messages", func(t *testing.T) {
		c, _, _ := owner(t, "tp-same", "bob", true)
		if _, err := c.Subscribe(pahoCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "tp/bob", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "tp/bob", QoS: 1, Payload: []byte("for bob")}); err != nil {
			t.Fatal(err)
		}
		_, ack, msgs := owner(t, "tp-same", "bob", false)
		if !ack.SessionPresent {
			t.Fatal("session present 0 for the same username")
		}
		if p := recv(t, msgs); string(p.Payload) != "for bob" {
			t.Fatalf("got %q", p.Payload)
		}
	})
}

// payloadFor builds a binary payload of varying length carrying its sequence number.
func payloadFor(rng *rand.Rand, i int) []byte {
	p := make([]byte, 8+rng.IntN(2000))
	binary.BigEndian.PutUint64(p, uint64(i))
	for j := 8; j < len(p); j++ {
		p[j] = byte(rng.UintN(256))
	}
	return p
}

func TestE2EQoS(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "qos-pub", CleanStart: true, KeepAlive: 30})

	for qos := byte(0); qos <= 2; qos++ {
		t.Run(fmt.Sprintf("[MQTT-4.6.0-5] [§4.3] QoS %d: 100 messages in order with intact payloads", qos), func(t *testing.T) {
			topic := fmt.Sprintf("qos/%d", qos)
			_, msgs := b.v5Sub(t, fmt.Sprint("qos-sub-", qos), topic, qos)
			rng := rand.New(rand.NewPCG(uint64(qos), 1))
			sent := make([][]byte, 100)
			for i := range sent {
				sent[i] = payloadFor(rng, i)
				resp, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: sent[i]})
				if err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				if qos > 0 && resp.ReasonCode != 0 {
					t.Fatalf("publish %d: reason 0x%02X", i, resp.ReasonCode)
				}
			}
			for i := range sent {
				p := recv(t, msgs)
				if p.QoS != qos || p.Topic != topic {
					t.Fatalf("message %d at QoS %d on %q", i, p.QoS, p.Topic)
				}
				if !bytes.Equal(p.Payload, sent[i]) {
					got := -1
					if len(p.Payload) >= 8 {
						got = int(binary.BigEndian.Uint64(p.Payload))
					}
					t.Fatalf("message %d: payload differs (carries sequence %d, %d bytes, want %d bytes)", i, got, len(p.Payload), len(sent[i]))
				}
			}
			noMessage(t, msgs, waitShort/4, "more messages than published")
		})
	}

	for _, tc := range []struct{ pubQoS, subQoS, want byte }{{2, 0, 0}, {2, 1, 1}, {1, 0, 0}, {1, 2, 1}, {0, 2, 0}} {
		t.Run(fmt.Sprintf("[MQTT-3.8.4-8] published at QoS %d, subscribed at %d: delivered at %d", tc.pubQoS, tc.subQoS, tc.want), func(t *testing.T) {
			topic := fmt.Sprintf("down/%d%d", tc.pubQoS, tc.subQoS)
			_, msgs := b.v5Sub(t, "down-"+topic[5:], topic, tc.subQoS)
			if _, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: tc.pubQoS, Payload: []byte("d")}); err != nil {
				t.Fatal(err)
			}
			if p := recv(t, msgs); p.QoS != tc.want {
				t.Fatalf("delivered at QoS %d", p.QoS)
			}
		})
	}

	t.Run("[§3.4.2.1] PUBACK 0x10 when no subscription matches", func(t *testing.T) {
		resp, err := pub.Publish(ctx, &paho.Publish{Topic: "nobody/listens", QoS: 1, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ReasonCode != byte(packet.NoMatchingSubscribers) {
			t.Fatalf("PUBACK 0x%02X, want 0x10", resp.ReasonCode)
		}
	})
}

func TestE2ERetained(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "ret-pub", CleanStart: true, KeepAlive: 30})
	publish := func(t *testing.T, topic string, payload string, retain bool, props *paho.PublishProperties) {
		t.Helper()
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(payload), Properties: props}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	newSub := func(t *testing.T, opts ...paho.SubscribeOptions) (*paho.Client, chan *paho.Publish) {
		t.Helper()
		n++
		c, _, msgs := b.v5Client(t, &paho.Connect{ClientID: fmt.Sprint("ret-sub-", n), CleanStart: true, KeepAlive: 30})
		if len(opts) > 0 {
			if _, err := c.Subscribe(pahoCtx(t), &paho.Subscribe{Subscriptions: opts}); err != nil {
				t.Fatal(err)
			}
		}
		return c, msgs
	}

	t.Run("[MQTT-3.3.1-9] retained message sent on subscribe with RETAIN 1", func(t *testing.T) {
		publish(t, "ret/a", "hello", true, nil)
		_, msgs := newSub(t, paho.SubscribeOptions{Topic: "ret/+", QoS: 1})
		if p := recv(t, msgs); p.Topic != "ret/a" || string(p.Payload) != "hello" || !p.Retain {
			t.Fatalf("got topic=%q payload=%q retain=%v", p.Topic, p.Payload, p.Retain)
		}
		noMessage(t, msgs, waitShort/2, "second retained message")
	})

	t.Run("[MQTT-3.3.1-5] a new retained message replaces the old one", func(t *testing.T) {
		publish(t, "ret/a", "hello again", true, nil)
		_, msgs := newSub(t, paho.SubscribeOptions{Topic: "ret/a", QoS: 1})
		if p := recv(t, msgs); string(p.Payload) != "hello again" || !p.Retain {
			t.Fatalf("got %q retain=%v", p.Payload, p.Retain)
		}
		noMessage(t, msgs, waitShort/2, "replaced retained message")
	})

	t.Run("[MQTT-3.3.1-8] a non-retained publish neither stores nor replaces", func(t *testing.T) {
		publish(t, "ret/a", "transient", false, nil)
		publish(t, "ret/b", "transient", false, nil)
		_, msgs := newSub(t, paho.SubscribeOptions{Topic: "ret/#", QoS: 1})
		if p := recv(t, msgs); p.Topic != "ret/a" || string(p.Payload) != "hello again" {
			t.Fatalf("got %q on %q", p.Payload, p.Topic)
		}
		noMessage(t, msgs, waitShort/2, "non-retained message stored")
	})

	t.Run("[MQTT-3.3.1-6] [MQTT-3.3.1-7] empty retained payload deletes, and is delivered normally", func(t *testing.T) {
		_, live := newSub(t, paho.SubscribeOptions{Topic: "ret/a", QoS: 1, RetainHandling: 2})
		publish(t, "ret/a", "", true, nil)
		if p := recv(t, live); len(p.Payload) != 0 || p.Retain {
			t.Fatalf("existing subscriber got %q retain=%v, want empty payload with RETAIN 0", p.Payload, p.Retain)
		}
		_, msgs := newSub(t, paho.SubscribeOptions{Topic: "ret/#", QoS: 1})
		noMessage(t, msgs, waitShort, "deleted retained message")
	})

	t.Run("[MQTT-4.7.1-2] 'x/#' gets the retained message of 'x' itself", func(t *testing.T) {
		publish(t, "retp", "parent", true, nil)
		_, msgs := newSub(t, paho.SubscribeOptions{Topic: "retp/#", QoS: 1})
		if p := recv(t, msgs); p.Topic != "retp" || !p.Retain {
			t.Fatalf("got %q on %q", p.Payload, p.Topic)
		}
	})

	t.Run("[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] retain handling 0, 1 and 2", func(t *testing.T) {
		publish(t, "ret/h", "h", true, nil)
		c, msgs := newSub(t)
		sub := func(rh byte) {
			t.Helper()
			if _, err := c.Subscribe(pahoCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ret/h", QoS: 1, RetainHandling: rh}}}); err != nil {
				t.Fatal(err)
			}
		}
		sub(2) // new subscription, retain handling 2: nothing [MQTT-3.3.1-11]
		noMessage(t, msgs, waitShort, "retain handling 2")
		_, _ = c.Unsubscribe(pahoCtx(t), &paho.Unsubscribe{Topics: []string{"ret/h"}})
		sub(1) // new subscription, retain handling 1: sent [MQTT-3.3.1-10]
		if p := recv(t, msgs); string(p.Payload) != "h" || !p.Retain {
			t.Fatalf("retain handling 1 on a new subscription: got %q retain=%v", p.Payload, p.Retain)
		}
		sub(1) // existing subscription, retain handling 1: nothing [MQTT-3.3.1-10]
		noMessage(t, msgs, waitShort, "retain handling 1 on an existing subscription")
		sub(0) // existing subscription, retain handling 0: sent again [MQTT-3.3.1-9]
		if p := recv(t, msgs); string(p.Payload) != "h" || !p.Retain {
			t.Fatalf("retain handling 0 on re-subscribe: got %q retain=%v", p.Payload, p.Retain)
		}
	})

	t.Run("[MQTT-3.3.1-12] [MQTT-3.3.1-13] live retained publish: RETAIN 0 unless retain as published", func(t *testing.T) {
		_, plain := newSub(t, paho.SubscribeOptions{Topic: "ret/live", QoS: 1})
		_, rap := newSub(t, paho.SubscribeOptions{Topic: "ret/live", QoS: 1, RetainAsPublished: true})
		publish(t, "ret/live", "now", true, nil)
		if p := recv(t, plain); p.Retain {
			t.Fatal("RETAIN 1 to an existing subscription without retain as published [MQTT-3.3.1-12]")
		}
		if p := recv(t, rap); !p.Retain {
			t.Fatal("RETAIN 0 to a subscription with retain as published [MQTT-3.3.1-13]")
		}
		publish(t, "ret/live", "not retained", false, nil)
		if p := recv(t, rap); p.Retain {
			t.Fatal("RETAIN 1 for a message published without it")
		}
		recv(t, plain)
	})

	t.Run("[MQTT-3.3.2-5] retained message past its expiry interval is not sent", func(t *testing.T) {
		publish(t, "retexp/short", "short-lived", true, &paho.PublishProperties{MessageExpiry: u32(1)})
		publish(t, "retexp/long", "long-lived", true, &paho.PublishProperties{MessageExpiry: u32(3600)})
		time.Sleep(2 * time.Second)
		_, msgs := newSub(t, paho.SubscribeOptions{Topic: "retexp/+", QoS: 1})
		p := recv(t, msgs)
		if p.Topic != "retexp/long" {
			t.Fatalf("got %q on %q, want only the unexpired retexp/long", p.Payload, p.Topic)
		}
		if p.Properties == nil || p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry >= 3600 || *p.Properties.MessageExpiry < 3590 {
			t.Fatalf("retained message expiry %v, want the remaining time below 3600 [MQTT-3.3.2-6]", p.Properties)
		}
		noMessage(t, msgs, waitShort, "expired retained message")
	})
}

func TestE2EWill(t *testing.T) {
	b := startBroker(t, nil)
	_, wills := b.v5Sub(t, "will-watch", "will/#", 1)

	willConnect := func(id string, delay, expiry uint32) *packet.Connect {
		cp := withExpiry(v5Connect(id), expiry, true)
		cp.Will = &packet.Will{QoS: 1, Topic: "will/" + id, Payload: []byte("bye " + id)}
		if delay > 0 {
			cp.Will.Properties.WillDelay = delay
			cp.Will.Properties.Set(packet.PropWillDelay)
		}
		return cp
	}
	expectWill := func(t *testing.T, id string) *paho.Publish {
		t.Helper()
		p := recv(t, wills)
		if p.Topic != "will/"+id || string(p.Payload) != "bye "+id {
			t.Fatalf("got %q on %q, want the will of %s", p.Payload, p.Topic, id)
		}
		return p
	}

	t.Run("[MQTT-3.1.2-8] will with delay published once the delay has passed", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(willConnect("w-delay", 1, 60))
		c.close()
		expectWill(t, "w-delay")
	})

	t.Run("[MQTT-3.1.3-9] reconnect before the will delay: no will", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(willConnect("w-back", 1, 60))
		c.close()
		again := b.dialRaw(t, packet.V5)
		cp := willConnect("w-back", 1, 60)
		cp.CleanStart = false
		cp.Will = nil
		if ack := again.mustConnect(cp); !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		noMessage(t, wills, 2*time.Second, "will published although the client came back within the delay")
	})

	t.Run("[MQTT-3.1.2-8] will delay longer than the session: published when the session ends", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(willConnect("w-sess", 3600, 1))
		c.close()
		expectWill(t, "w-sess")
	})

	t.Run("[MQTT-3.1.3-10] [§3.1.3.2] will properties passed through", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		cp := willConnect("w-props", 0, 0)
		wp := &cp.Will.Properties
		wp.ContentType = "text/plain"
		wp.Set(packet.PropContentType)
		wp.PayloadFormat = 1
		wp.Set(packet.PropPayloadFormat)
		wp.ResponseTopic = "will/reply"
		wp.Set(packet.PropResponseTopic)
		wp.CorrelationData = []byte{0, 1, 2, 0xff}
		wp.Set(packet.PropCorrelationData)
		wp.User = []packet.UserProperty{{Key: "k", Value: "v1"}, {Key: "a", Value: "v2"}, {Key: "k", Value: "v3"}}
		c.mustConnect(cp)
		c.close()
		p := expectWill(t, "w-props")
		pp := p.Properties
		if pp == nil || pp.ContentType != "text/plain" || pp.ResponseTopic != "will/reply" ||
			!bytes.Equal(pp.CorrelationData, []byte{0, 1, 2, 0xff}) || pp.PayloadFormat == nil || *pp.PayloadFormat != 1 {
			t.Fatalf("will properties %+v", pp)
		}
		want := paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "a", Value: "v2"}, {Key: "k", Value: "v3"}}
		if !slices.Equal(pp.User, want) {
			t.Fatalf("user properties %v, want %v in order", pp.User, want)
		}
	})

	t.Run("[MQTT-3.1.2-8] retained will is retained", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		cp := willConnect("w-ret", 0, 0)
		cp.Will.Retain = true
		c.mustConnect(cp)
		c.close()
		expectWill(t, "w-ret")
		_, msgs := b.v5Sub(t, "w-ret-late", "will/w-ret", 1)
		if p := recv(t, msgs); !p.Retain || string(p.Payload) != "bye w-ret" {
			t.Fatalf("late subscriber got %q retain=%v", p.Payload, p.Retain)
		}
	})
}

func TestE2EProperties(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "props-pub", CleanStart: true, KeepAlive: 30})

	t.Run("[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] properties passed through unchanged", func(t *testing.T) {
		_, msgs := b.v5Sub(t, "props-sub", "props/t", 2)
		pf := byte(1)
		in := &paho.PublishProperties{
			PayloadFormat:   &pf,
			ContentType:     "application/json; charset=utf-8",
			ResponseTopic:   "props/reply/42",
			CorrelationData: []byte{0x00, 0xde, 0xad, 0xbe, 0xef, 0x00},
			User:            paho.UserProperties{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}, {Key: "z", Value: "3"}, {Key: "", Value: ""}},
		}
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "props/t", QoS: 2, Payload: []byte(`{"x":1}`), Properties: in}); err != nil {
			t.Fatal(err)
		}
		p := recv(t, msgs)
		out := p.Properties
		if out == nil || out.PayloadFormat == nil || *out.PayloadFormat != 1 || out.ContentType != in.ContentType ||
			out.ResponseTopic != in.ResponseTopic || !bytes.Equal(out.CorrelationData, in.CorrelationData) {
			t.Fatalf("properties changed: %+v", out)
		}
		if !slices.Equal(out.User, in.User) {
			t.Fatalf("user properties %v, want %v in order", out.User, in.User)
		}
		if out.MessageExpiry != nil || out.TopicAlias != nil {
			t.Fatalf("properties added: %+v", out)
		}
	})

	t.Run("[MQTT-3.3.4-3] subscription identifier delivered", func(t *testing.T) {
		c, _, msgs := b.v5Client(t, &paho.Connect{ClientID: "props-sid", CleanStart: true, KeepAlive: 30})
		id := 4242
		if _, err := c.Subscribe(pahoCtx(t), &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &id},
			Subscriptions: []paho.SubscribeOptions{{Topic: "props/sid/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "props/sid/x", QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		p := recv(t, msgs)
		if p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != id {
			t.Fatalf("properties %+v, want subscription identifier %d", p.Properties, id)
		}
	})

	t.Run("[MQTT-3.3.2-6] [MQTT-3.3.2-5] message expiry counts down while queued, and expired messages are dropped", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("props-exp"), 60, true))
		c.mustSubscribe(1, "props/exp")
		c.disconnect(packet.NormalDisconnection)
		// The broker closed the socket; give it a moment to detach the session, so that
		// the messages below are queued rather than sent to the closing connection.
		time.Sleep(100 * time.Millisecond)
		for _, m := range []struct {
			payload string
			expiry  uint32
		}{{"short", 1}, {"long", 10}} {
			if _, err := pub.Publish(ctx, &paho.Publish{Topic: "props/exp", QoS: 1, Payload: []byte(m.payload),
				Properties: &paho.PublishProperties{MessageExpiry: u32(m.expiry)}}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2100 * time.Millisecond)
		_, ack, msgs := b.v5Client(t, &paho.Connect{ClientID: "props-exp", CleanStart: false, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(60)}})
		if !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		p := recv(t, msgs)
		if string(p.Payload) != "long" {
			t.Fatalf("got %q first, want only \"long\" (\"short\" expired while queued)", p.Payload)
		}
		if p.Properties == nil || p.Properties.MessageExpiry == nil || *p.Properties.MessageExpiry >= 10 || *p.Properties.MessageExpiry == 0 {
			t.Fatalf("message expiry %+v, want between 1 and 9 after 2 s in the queue", p.Properties)
		}
		noMessage(t, msgs, waitShort, "expired message delivered")
	})
}

func TestE2EShared(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "shp", CleanStart: true, KeepAlive: 30})

	t.Run("[§4.8.2] round robin: every message to exactly one member, each member some", func(t *testing.T) {
		_, m1 := b.v5Sub(t, "shm1", "$share/g/shr/rr", 1)
		_, m2 := b.v5Sub(t, "shm2", "$share/g/shr/rr", 1)
		_, other := b.v5Sub(t, "shm3", "$share/h/shr/rr", 1) // another group gets its own copy
		const n = 40
		for i := range n {
			if _, err := pub.Publish(ctx, &paho.Publish{Topic: "shr/rr", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]int{}
		per := [2]int{}
		for len(seen) < n {
			select {
			case p := <-m1:
				seen[string(p.Payload)]++
				per[0]++
			case p := <-m2:
				seen[string(p.Payload)]++
				per[1]++
			case <-time.After(waitLong):
				t.Fatalf("only %d of %d messages delivered to the group", len(seen), n)
			}
		}
		noMessage(t, m1, waitShort/2, "duplicate delivery in the group")
		noMessage(t, m2, waitShort/2, "duplicate delivery in the group")
		for k, v := range seen {
			if v != 1 {
				t.Fatalf("message %s delivered %d times", k, v)
			}
		}
		if per[0] == 0 || per[1] == 0 {
			t.Fatalf("distribution %v: one member got nothing", per)
		}
		for range n {
			recv(t, other)
		}
	})

	t.Run("[§4.8.2] no retained messages on a shared subscription", func(t *testing.T) {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "shr/ret", QoS: 1, Retain: true, Payload: []byte("r")}); err != nil {
			t.Fatal(err)
		}
		_, shared := b.v5Sub(t, "shret", "$share/g/shr/ret", 1)
		noMessage(t, shared, waitShort, "retained message sent to a shared subscription")
		_, plain := b.v5Sub(t, "shret-plain", "shr/ret", 1)
		if p := recv(t, plain); !p.Retain {
			t.Fatal("control: non-shared subscription did not get the retained message")
		}
	})
}

func TestE2ESys(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.SysInterval = 200 * time.Millisecond
		o.NodeName = "n1"
	})
	ctx := context.Background()

	t.Run("[§4.7.2] $SYS/brokers/n1/version is published", func(t *testing.T) {
		_, msgs := b.v5Sub(t, "sys-ver", "$SYS/brokers/n1/version", 0)
		if p := recv(t, msgs); p.Topic != "$SYS/brokers/n1/version" || string(p.Payload) != "dev" {
			t.Fatalf("got %q on %q", p.Payload, p.Topic)
		}
	})

	t.Run("[MQTT-4.7.2-1] wildcards at the first level do not match $SYS topics", func(t *testing.T) {
		_, all := b.v5Sub(t, "sys-hash", "#", 0)
		_, plus := b.v5Sub(t, "sys-plus", "+/brokers/#", 0)
		_, shared := b.v5Sub(t, "sys-shared", "$share/g/#", 0)
		noMessage(t, all, 3*200*time.Millisecond+waitShort, "'#' received a $SYS topic")
		noMessage(t, plus, waitShort/4, "'+/brokers/#' received a $SYS topic")
		noMessage(t, shared, waitShort/4, "'$share/g/#' received a $SYS topic")
	})

	t.Run("[§3.3.5] [MQTT-4.7.2-1] clients cannot publish to $SYS", func(t *testing.T) {
		c, _, _ := b.v5Client(t, &paho.Connect{ClientID: "sys-pub", CleanStart: true, KeepAlive: 30})
		_, watch := b.v5Sub(t, "sys-watch", "$SYS/#", 0)
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "$SYS/x", QoS: 1, Payload: []byte("forged")})
		if resp == nil || resp.ReasonCode != byte(packet.NotAuthorized) {
			t.Fatalf("PUBACK %+v (err %v), want 0x87", resp, err)
		}
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "$SYS/brokers/n1/version", QoS: 0, Retain: true, Payload: []byte("forged")}); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(3*200*time.Millisecond + waitShort)
		for {
			select {
			case p := <-watch:
				if p.Topic == "$SYS/x" || string(p.Payload) == "forged" {
					t.Fatalf("forged $SYS message delivered: %q on %q", p.Payload, p.Topic)
				}
				continue
			case <-deadline:
			}
			break
		}
		_, late := b.v5Sub(t, "sys-late", "$SYS/brokers/n1/version", 0)
		if p := recv(t, late); string(p.Payload) != "dev" {
			t.Fatalf("retained $SYS version is %q", p.Payload)
		}
	})
}
