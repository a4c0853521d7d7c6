package broker

// End-to-end tests that speak MQTT byte by byte through the packet codec over loopback
// sockets, for what client libraries cannot produce or do not show: malformed and
// out-of-order packets, unacknowledged deliveries, exact acknowledgement bytes, flow
// control and topic aliases. Test names carry the normative statement they check
// (MQTT 5.0 numbering unless the test is about 3.1.1; [§x.y] where the rule has no number).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func encode(t testing.TB, p packet.Packet, v packet.Version) []byte {
	t.Helper()
	b, err := p.AppendTo(nil, v)
	if err != nil {
		t.Fatalf("encode %v: %v", p.Type(), err)
	}
	return b
}

func TestE2EConnect(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })

	t.Run("[MQTT-3.1.2-2] protocol levels 5, 4 and 3 (MQIsdp) accepted", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cp   *packet.Connect
		}{
			{"5.0", &packet.Connect{Version: packet.V5, ClientID: "lvl5", CleanStart: true, KeepAlive: 30}},
			{"3.1.1", &packet.Connect{Version: packet.V311, ClientID: "lvl4", CleanStart: true, KeepAlive: 30}},
			{"3.1", &packet.Connect{Version: packet.V31, ProtocolName: "MQIsdp", ClientID: "lvl3", CleanStart: true, KeepAlive: 30}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := b.dialRaw(t, tc.cp.Version)
				if err := c.send(tc.cp); err != nil {
					t.Fatal(err)
				}
				f, ok := c.next(waitLong)
				if !ok {
					t.Fatal("no CONNACK")
				}
				if tc.cp.Version != packet.V5 && !bytes.Equal(f.raw, []byte{0x20, 0x02, 0x00, 0x00}) {
					t.Fatalf("CONNACK bytes % x, want 20 02 00 00", f.raw)
				}
				if ack, ok := f.p.(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
					t.Fatalf("got %s, want CONNACK success", describeFrame(f))
				}
				// The connection works: a QoS 1 round trip to itself.
				topic := "lvl/" + tc.name
				c.mustSubscribe(1, topic)
				if err := c.send(&packet.Publish{QoS: 1, PacketID: 77, Topic: topic, Payload: []byte("x")}); err != nil {
					t.Fatal(err)
				}
				var gotAck, gotMsg bool
				for !(gotAck && gotMsg) {
					switch p := c.expect().(type) {
					case *packet.Puback:
						gotAck = p.PacketID == 77
					case *packet.Publish:
						gotMsg = p.Topic == topic && string(p.Payload) == "x"
						c.ack(p)
					default:
						t.Fatalf("unexpected %s", describe(p))
					}
				}
			})
		}
	})

	t.Run("[MQTT-3.1.2-2] protocol level 6 gets 3.1.1 CONNACK 0x01 then close", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		raw := encode(t, v311Connect("lvl6"), packet.V311)
		if string(raw[4:8]) != "MQTT" || raw[8] != 4 {
			t.Fatalf("unexpected CONNECT layout % x", raw)
		}
		raw[8] = 6
		_ = c.sendBytes(raw)
		f, ok := c.next(waitLong)
		if !ok || !bytes.Equal(f.raw, []byte{0x20, 0x02, 0x00, 0x01}) {
			t.Fatalf("got %v (% x), want CONNACK bytes 20 02 00 01", ok, f.raw)
		}
		if rest := c.expectClosed(waitLong); len(rest) != 0 {
			t.Fatalf("after CONNACK: %s", describeAll(rest))
		}
	})

	t.Run("[MQTT-3.1.2-3] v5 CONNECT with reserved flag set: closed", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		raw := encode(t, v5Connect("reserved"), packet.V5)
		raw[9] |= 0x01
		_ = c.sendBytes(raw)
		got := c.expectClosed(waitLong)
		// A CONNACK with a failure code (0x81) is allowed before the close; nothing else.
		for _, p := range got {
			if ack, ok := p.(*packet.Connack); !ok || !ack.ReasonCode.IsError() {
				t.Fatalf("before close: %s", describeAll(got))
			}
		}
	})

	t.Run("[MQTT-3.1.3-8] 3.1.1 empty client id with clean session 0: CONNACK 0x02 then close", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		cp := v311Connect("")
		cp.CleanStart = false
		_ = c.send(cp)
		f, ok := c.next(waitLong)
		if !ok || !bytes.Equal(f.raw, []byte{0x20, 0x02, 0x00, 0x02}) {
			t.Fatalf("got %v (% x), want CONNACK bytes 20 02 00 02", ok, f.raw)
		}
		if rest := c.expectClosed(waitLong); len(rest) != 0 {
			t.Fatalf("after CONNACK: %s", describeAll(rest))
		}
	})

	t.Run("[MQTT-3.1.3-6] 3.1.1 empty client id with clean session 1 accepted", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		c.mustConnect(v311Connect(""))
	})

	t.Run("[MQTT-3.2.2-16] v5 empty client id gets Assigned Client Identifier", func(t *testing.T) {
		ids := map[string]bool{}
		for range 2 {
			c := b.dialRaw(t, packet.V5)
			ack := c.mustConnect(v5Connect(""))
			if !ack.Properties.Has(packet.PropAssignedClientID) || ack.Properties.AssignedClientID == "" {
				t.Fatalf("CONNACK without Assigned Client Identifier: %+v", ack.Properties)
			}
			ids[ack.Properties.AssignedClientID] = true
		}
		if len(ids) != 2 {
			t.Fatalf("two connections were assigned the same client id: %v", ids)
		}
	})

	t.Run("[MQTT-3.1.0-2] second CONNECT closes the connection", func(t *testing.T) {
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			t.Run(v.String(), func(t *testing.T) {
				c := b.dialRaw(t, v)
				cp := &packet.Connect{Version: v, ClientID: "twice-" + v.String(), CleanStart: true, KeepAlive: 30}
				c.mustConnect(cp)
				_ = c.send(cp)
				got := c.expectClosed(waitLong)
				if v == packet.V5 && len(got) > 0 {
					if d, ok := got[len(got)-1].(*packet.Disconnect); !ok || d.ReasonCode != packet.ProtocolError {
						t.Fatalf("before close: %s, want at most DISCONNECT 0x82", describeAll(got))
					}
				}
				if v != packet.V5 && len(got) != 0 {
					t.Fatalf("3.1.1 connection got %s before close", describeAll(got))
				}
			})
		}
	})

	t.Run("[MQTT-3.1.0-1] first packet not CONNECT closes the connection", func(t *testing.T) {
		for _, p := range []packet.Packet{
			&packet.Pingreq{},
			&packet.Publish{Topic: "a", Payload: []byte("x")},
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "#"}}},
		} {
			t.Run(p.Type().String(), func(t *testing.T) {
				c := b.dialRaw(t, packet.V311)
				_ = c.sendBytes(encode(t, p, packet.V311))
				if got := c.expectClosed(waitLong); len(got) != 0 {
					t.Fatalf("got %s before close, want nothing", describeAll(got))
				}
			})
		}
	})

	t.Run("[MQTT-4.12.0-1] unsupported authentication method: CONNACK 0x8C then close", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		cp := v5Connect("authm")
		cp.Properties.AuthMethod = "SCRAM-SHA-1"
		cp.Properties.Set(packet.PropAuthMethod)
		if ack := c.connect(cp); ack.ReasonCode != packet.BadAuthenticationMethod {
			t.Fatalf("CONNACK 0x%02X, want 0x8C", byte(ack.ReasonCode))
		}
		c.expectClosed(waitLong)
	})

	t.Run("[DESIGN bounded] socket that never sends CONNECT is closed after IdleTimeout", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		if got := c.expectClosed(waitLong); len(got) != 0 {
			t.Fatalf("got %s", describeAll(got))
		}
	})

	t.Run("[DESIGN bounded] CONNECT trickled one byte at a time is closed after IdleTimeout", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		raw := encode(t, &packet.Connect{Version: packet.V311, ClientID: "a-rather-long-client-identifier-to-trickle", CleanStart: true}, packet.V311)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for _, x := range raw {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if c.sendBytes([]byte{x}) != nil {
					return
				}
			}
		}()
		got := c.expectClosed(waitLong)
		for _, p := range got {
			if ack, ok := p.(*packet.Connack); ok && ack.ReasonCode == packet.Success {
				t.Fatalf("a CONNECT trickled over %v was accepted", time.Duration(len(raw))*100*time.Millisecond)
			}
		}
	})
}

func TestE2EConnackProperties(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.MaxInflight = 7
		o.MaxTopicAlias = 9
		o.MaxPacketSize = 4096
	})
	c := b.dialRaw(t, packet.V5)
	ack := c.mustConnect(v5Connect("props"))
	p := &ack.Properties
	for _, tc := range []struct {
		name string
		id   packet.PropID
		got  uint32
		want uint32
	}{
		{"[§3.2.2.3.3] Receive Maximum = MaxInflight", packet.PropReceiveMaximum, uint32(p.ReceiveMaximum), 7},
		{"[§3.2.2.3.8] Topic Alias Maximum = MaxTopicAlias", packet.PropTopicAliasMaximum, uint32(p.TopicAliasMaximum), 9},
		{"[§3.2.2.3.6] Maximum Packet Size = MaxPacketSize", packet.PropMaximumPacketSize, p.MaximumPacketSize, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !p.Has(tc.id) || tc.got != tc.want {
				t.Fatalf("%v present=%v value=%d, want %d", tc.id, p.Has(tc.id), tc.got, tc.want)
			}
		})
	}
	t.Run("[§3.2.2.3.4] no Maximum QoS when QoS 2 is supported", func(t *testing.T) {
		if p.Has(packet.PropMaximumQoS) {
			t.Fatalf("Maximum QoS %d announced", p.MaximumQoS)
		}
	})
	t.Run("[MQTT-3.2.2-15] packet larger than the announced Maximum Packet Size: DISCONNECT 0x95", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(v5Connect("toolarge"))
		_ = c.send(&packet.Publish{Topic: "big", Payload: make([]byte, 5000)})
		c.expectDisconnect(packet.PacketTooLarge)
	})
}

func TestE2EKeepAlive(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxKeepAlive = 5 })

	t.Run("[MQTT-3.1.2-22] v5 client silent for 1.5 x keep alive: DISCONNECT 0x8D then close", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		cp := v5Connect("ka5")
		cp.KeepAlive = 1
		c.mustConnect(cp)
		c.expectDisconnect(packet.KeepAliveTimeout)
	})

	t.Run("[MQTT-3.1.2-24] 3.1.1 client silent for 1.5 x keep alive: closed", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		cp := v311Connect("ka4")
		cp.KeepAlive = 1
		c.mustConnect(cp)
		if got := c.expectClosed(waitLong); len(got) != 0 {
			t.Fatalf("3.1.1 client got %s before close", describeAll(got))
		}
	})

	t.Run("[MQTT-3.12.4-1] PINGREQ answered by PINGRESP and keeps the connection open", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		cp := v5Connect("pinger")
		cp.KeepAlive = 1
		c.mustConnect(cp)
		for range 8 { // 8 x 250 ms = 2 s, more than 1.5 x keep alive
			time.Sleep(250 * time.Millisecond)
			_ = c.send(&packet.Pingreq{})
			expectPacket[*packet.Pingresp](c)
		}
	})

	t.Run("[MQTT-3.2.2-21] Server Keep Alive caps a v5 client's keep alive", func(t *testing.T) {
		for _, asked := range []uint16{60, 0} {
			t.Run(strconv.Itoa(int(asked)), func(t *testing.T) {
				c := b.dialRaw(t, packet.V5)
				cp := v5Connect("ska" + strconv.Itoa(int(asked)))
				cp.KeepAlive = asked
				ack := c.mustConnect(cp)
				if !ack.Properties.Has(packet.PropServerKeepAlive) || ack.Properties.ServerKeepAlive != 5 {
					t.Fatalf("Server Keep Alive present=%v value=%d, want 5",
						ack.Properties.Has(packet.PropServerKeepAlive), ack.Properties.ServerKeepAlive)
				}
			})
		}
	})

	t.Run("[MQTT-3.2.2-22] v5 keep alive within the maximum is kept (no Server Keep Alive)", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		cp := v5Connect("ska-ok")
		cp.KeepAlive = 4
		if ack := c.mustConnect(cp); ack.Properties.Has(packet.PropServerKeepAlive) {
			t.Fatalf("Server Keep Alive %d sent for an acceptable keep alive", ack.Properties.ServerKeepAlive)
		}
	})

	t.Run("[§3.2.2.3] 3.1.1 client asking more than MaxKeepAlive is refused", func(t *testing.T) {
		c := b.dialRaw(t, packet.V311)
		cp := v311Connect("ka-big")
		cp.KeepAlive = 60
		ack := c.connect(cp)
		if ack.ReasonCode == packet.Success || ack.SessionPresent {
			t.Fatalf("CONNACK 0x%02X sp=%v, want a refusal", byte(ack.ReasonCode), ack.SessionPresent)
		}
		c.expectClosed(waitLong)
	})
}

func TestE2ETakeover(t *testing.T) {
	b := startBroker(t, nil)
	t.Run("[MQTT-3.1.4-3] second connection with the same client id: DISCONNECT 0x8E to the first, then close", func(t *testing.T) {
		first := b.rawV5(t, "dup-id")
		second := b.dialRaw(t, packet.V5)
		second.mustConnect(v5Connect("dup-id"))
		first.expectDisconnect(packet.SessionTakenOver)
		// The second connection is the one that works.
		_ = second.send(&packet.Pingreq{})
		expectPacket[*packet.Pingresp](second)
	})
	t.Run("[MQTT-3.1.4-3] 3.1.1 takeover closes the first connection", func(t *testing.T) {
		first := b.dialRaw(t, packet.V311)
		first.mustConnect(v311Connect("dup-311"))
		second := b.dialRaw(t, packet.V311)
		second.mustConnect(v311Connect("dup-311"))
		if got := first.expectClosed(waitLong); len(got) != 0 {
			t.Fatalf("3.1.1 connection got %s before close", describeAll(got))
		}
	})
}

func TestE2EQoS2Duplicate(t *testing.T) {
	b := startBroker(t, nil)
	sub := b.rawV5(t, "q2dup-sub")
	sub.mustSubscribe(2, "q2/dup")
	pub := b.rawV5(t, "q2dup-pub")

	t.Run("[MQTT-4.3.3-10] duplicate QoS 2 PUBLISH before PUBREL is acknowledged, not delivered twice", func(t *testing.T) {
		sub, pub := sub.in(t), pub.in(t)
		_ = pub.send(&packet.Publish{QoS: 2, PacketID: 7, Topic: "q2/dup", Payload: []byte("once")})
		if r := expectPacket[*packet.Pubrec](pub); r.PacketID != 7 || r.ReasonCode.IsError() {
			t.Fatalf("PUBREC %+v", r)
		}
		_ = pub.send(&packet.Publish{Dup: true, QoS: 2, PacketID: 7, Topic: "q2/dup", Payload: []byte("once")})
		if r := expectPacket[*packet.Pubrec](pub); r.PacketID != 7 || r.ReasonCode.IsError() {
			t.Fatalf("second PUBREC %+v", r)
		}
		_ = pub.send(&packet.Pubrel{PacketID: 7})
		if c := expectPacket[*packet.Pubcomp](pub); c.PacketID != 7 || c.ReasonCode != packet.Success {
			t.Fatalf("PUBCOMP %+v", c)
		}
		if p := sub.expectPublish(); string(p.Payload) != "once" {
			t.Fatalf("got %s", describe(p))
		}
		sub.expectNone(waitShort, "duplicate QoS 2 delivered twice")
	})

	t.Run("[MQTT-4.3.3-12] after PUBCOMP the same packet id is a new message", func(t *testing.T) {
		sub, pub := sub.in(t), pub.in(t)
		if rc := pub.publish(&packet.Publish{QoS: 2, PacketID: 7, Topic: "q2/dup", Payload: []byte("again")}); rc.IsError() {
			t.Fatalf("PUBREC 0x%02X", byte(rc))
		}
		if p := sub.expectPublish(); string(p.Payload) != "again" {
			t.Fatalf("got %s", describe(p))
		}
	})

	t.Run("[MQTT-4.4.0-1] [MQTT-4.3.3-10] QoS 2 PUBLISH resent after reconnect before PUBREL is not delivered twice", func(t *testing.T) {
		sub := sub.in(t)
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("q2dup-resume"), 60, true))
		_ = c.send(&packet.Publish{QoS: 2, PacketID: 9, Topic: "q2/dup", Payload: []byte("resumed")})
		expectPacket[*packet.Pubrec](c)
		c.close() // connection lost before PUBREL
		if p := sub.expectPublish(); string(p.Payload) != "resumed" {
			t.Fatalf("got %s", describe(p))
		}
		c2 := b.dialRaw(t, packet.V5)
		if ack := c2.mustConnect(withExpiry(v5Connect("q2dup-resume"), 60, false)); !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		_ = c2.send(&packet.Publish{Dup: true, QoS: 2, PacketID: 9, Topic: "q2/dup", Payload: []byte("resumed")})
		if r := expectPacket[*packet.Pubrec](c2); r.PacketID != 9 || r.ReasonCode.IsError() {
			t.Fatalf("PUBREC %+v", r)
		}
		_ = c2.send(&packet.Pubrel{PacketID: 9})
		if comp := expectPacket[*packet.Pubcomp](c2); comp.PacketID != 9 || comp.ReasonCode != packet.Success {
			t.Fatalf("PUBCOMP %+v, want success: the session forgot the message awaiting release", comp)
		}
		sub.expectNone(waitShort, "QoS 2 message delivered twice across a reconnect")
	})

	t.Run("[MQTT-4.3.3-11] PUBREL for an unknown packet id: PUBCOMP 0x92", func(t *testing.T) {
		pub := pub.in(t)
		_ = pub.send(&packet.Pubrel{PacketID: 999})
		if c := expectPacket[*packet.Pubcomp](pub); c.PacketID != 999 || c.ReasonCode != packet.PacketIdentifierNotFound {
			t.Fatalf("PUBCOMP %+v, want 0x92 for 999", c)
		}
	})
}

func TestE2EResendOnResume(t *testing.T) {
	b := startBroker(t, nil)
	pub := b.rawV5(t, "resend-pub")

	for _, tc := range []struct {
		name   string
		qos    byte
		pubrec bool // the client sends PUBREC for the first delivery, then goes away
	}{
		{"[MQTT-4.4.0-1] [MQTT-3.3.1-1] QoS 1 PUBLISH without PUBACK resent with DUP and same id", 1, false},
		{"[MQTT-4.4.0-1] [MQTT-3.3.1-1] QoS 2 PUBLISH without PUBREC resent with DUP and same id", 2, false},
		{"[MQTT-4.4.0-1] QoS 2 PUBREL resent when PUBCOMP is missing", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := pub.in(t)
			id := fmt.Sprintf("resend-%d-%v", tc.qos, tc.pubrec)
			topic := "resend/" + id
			sub := b.dialRaw(t, packet.V5)
			sub.mustConnect(withExpiry(v5Connect(id), 60, true))
			sub.mustSubscribe(tc.qos, topic)
			if rc := pub.publish(&packet.Publish{QoS: tc.qos, Topic: topic, Payload: []byte("m1")}); rc != packet.Success {
				t.Fatalf("publish: 0x%02X", byte(rc))
			}
			first := sub.expectPublish(true)
			if first.Dup || first.QoS != tc.qos || string(first.Payload) != "m1" {
				t.Fatalf("first delivery %s", describe(first))
			}
			if tc.pubrec {
				_ = sub.send(&packet.Pubrec{PacketID: first.PacketID})
				if rel := expectPacket[*packet.Pubrel](sub); rel.PacketID != first.PacketID {
					t.Fatalf("PUBREL %+v", rel)
				}
			}
			sub.disconnect(packet.NormalDisconnection)

			again := b.dialRaw(t, packet.V5)
			if ack := again.mustConnect(withExpiry(v5Connect(id), 60, false)); !ack.SessionPresent {
				t.Fatal("session present 0 on resume")
			}
			if tc.pubrec {
				rel := expectPacket[*packet.Pubrel](again)
				if rel.PacketID != first.PacketID {
					t.Fatalf("PUBREL for %d, want %d", rel.PacketID, first.PacketID)
				}
				_ = again.send(&packet.Pubcomp{PacketID: rel.PacketID})
			} else {
				p := again.expectPublish()
				if !p.Dup || p.PacketID != first.PacketID || p.QoS != tc.qos || string(p.Payload) != "m1" || p.Topic != topic {
					t.Fatalf("resent %s, want DUP=1 pid=%d m1", describe(p), first.PacketID)
				}
			}
			again.expectNone(waitShort, "after the resend")
		})
	}
}

func TestE2EResendOrder(t *testing.T) {
	b := startBroker(t, nil)
	t.Run("[MQTT-4.4.0-1] [MQTT-4.6.0-5] on resume, unacknowledged messages are resent in order, then the queued ones", func(t *testing.T) {
		sub := b.dialRaw(t, packet.V5)
		cp := withExpiry(v5Connect("rorder"), 60, true)
		cp.Properties.ReceiveMaximum = 3
		cp.Properties.Set(packet.PropReceiveMaximum)
		sub.mustConnect(cp)
		sub.mustSubscribe(1, "rorder/t")
		pub := b.rawV5(t, "rorder-pub")
		for i := range 6 {
			pub.publish(&packet.Publish{QoS: 1, Topic: "rorder/t", Payload: []byte{'0' + byte(i)}})
		}
		var pids []uint16
		for i := range 3 {
			p := sub.expectPublish(true)
			if p.Payload[0] != '0'+byte(i) {
				t.Fatalf("message %d is %q", i, p.Payload)
			}
			pids = append(pids, p.PacketID)
		}
		sub.disconnect(packet.NormalDisconnection)
		again := b.dialRaw(t, packet.V5)
		cp.CleanStart = false
		if ack := again.mustConnect(cp); !ack.SessionPresent {
			t.Fatal("session not resumed")
		}
		for i := range 6 {
			p := again.expectPublish()
			if p.Payload[0] != '0'+byte(i) {
				t.Fatalf("after resume, message %d is %q", i, p.Payload)
			}
			if i < 3 && (!p.Dup || p.PacketID != pids[i]) {
				t.Fatalf("resent message %d: %s, want DUP with pid %d", i, describe(p), pids[i])
			}
			if i >= 3 && p.Dup {
				t.Fatalf("first delivery of queued message %d has DUP set", i)
			}
		}
	})
}

func TestE2EReceiveMaximum(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxInflight = 2 })

	t.Run("[MQTT-3.3.4-7] client exceeding the broker's Receive Maximum with QoS 2: DISCONNECT 0x93", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		ack := c.mustConnect(v5Connect("rm-in"))
		if ack.Properties.ReceiveMaximum != 2 {
			t.Fatalf("Receive Maximum %d, want 2", ack.Properties.ReceiveMaximum)
		}
		for pid := uint16(1); pid <= 2; pid++ {
			_ = c.send(&packet.Publish{QoS: 2, PacketID: pid, Topic: "rm/in", Payload: []byte("x")})
			if r := expectPacket[*packet.Pubrec](c); r.PacketID != pid {
				t.Fatalf("PUBREC %+v", r)
			}
		}
		_ = c.send(&packet.Publish{QoS: 2, PacketID: 3, Topic: "rm/in", Payload: []byte("x")})
		c.expectDisconnect(packet.ReceiveMaximumExceeded)
	})

	t.Run("[MQTT-3.3.4-9] broker never has more than the client's Receive Maximum unacknowledged", func(t *testing.T) {
		b := startBroker(t, nil) // broker window 32: the client's 2 is the limit
		sub := b.dialRaw(t, packet.V5)
		cp := v5Connect("rm-out")
		cp.Properties.ReceiveMaximum = 2
		cp.Properties.Set(packet.PropReceiveMaximum)
		sub.mustConnect(cp)
		sub.mustSubscribe(1, "rm/out")
		pub := b.rawV5(t, "rm-out-pub")
		for i := range 5 {
			pub.publish(&packet.Publish{QoS: 1, Topic: "rm/out", Payload: []byte{'0' + byte(i)}})
		}
		got := func() *packet.Publish { return sub.expectPublish(true) }
		m0, m1 := got(), got()
		sub.expectNone(waitShort, "third PUBLISH with 2 unacknowledged")
		_ = sub.send(&packet.Puback{PacketID: m0.PacketID})
		m2 := got()
		sub.expectNone(waitShort, "fourth PUBLISH with 2 unacknowledged")
		_ = sub.send(&packet.Puback{PacketID: m1.PacketID})
		_ = sub.send(&packet.Puback{PacketID: m2.PacketID})
		m3, m4 := got(), got()
		for i, m := range []*packet.Publish{m0, m1, m2, m3, m4} {
			if m.Payload[0] != '0'+byte(i) {
				t.Fatalf("message %d is %q", i, m.Payload)
			}
		}
	})

	t.Run("[MQTT-3.3.4-9] order and count of a window-limited stream", func(t *testing.T) {
		b := startBroker(t, nil)
		sub := b.dialRaw(t, packet.V5)
		cp := v5Connect("rm-stream")
		cp.Properties.ReceiveMaximum = 2
		cp.Properties.Set(packet.PropReceiveMaximum)
		sub.mustConnect(cp)
		sub.mustSubscribe(1, "rm/stream")
		pub := b.rawV5(t, "rm-stream-pub")
		for i := range 10 {
			pub.publish(&packet.Publish{QoS: 1, Topic: "rm/stream", Payload: []byte(strconv.Itoa(i))})
		}
		unacked := map[uint16]bool{}
		for i := range 10 {
			p := sub.expectPublish(true)
			unacked[p.PacketID] = true
			if len(unacked) > 2 {
				t.Fatalf("%d unacknowledged QoS 1 messages in flight, Receive Maximum is 2", len(unacked))
			}
			if string(p.Payload) != strconv.Itoa(i) {
				t.Fatalf("message %d is %q", i, p.Payload)
			}
			if len(unacked) == 2 {
				sub.expectNone(waitShort/4, "window full")
				for pid := range unacked {
					_ = sub.send(&packet.Puback{PacketID: pid})
					delete(unacked, pid)
				}
			}
		}
	})
}

func TestE2ETopicAlias(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxTopicAlias = 10 })
	withAlias := func(p *packet.Publish, a uint16) *packet.Publish {
		p.Properties.TopicAlias = a
		p.Properties.Set(packet.PropTopicAlias)
		return p
	}

	t.Run("[MQTT-3.3.2-12] inbound alias set then used with an empty topic", func(t *testing.T) {
		sub := b.rawV5(t, "ta-sub")
		sub.mustSubscribe(1, "ta/#")
		pub := b.rawV5(t, "ta-pub")
		steps := []struct {
			topic string
			alias uint16
			want  string
		}{
			{"ta/one", 1, "ta/one"},
			{"", 1, "ta/one"},
			{"ta/two", 1, "ta/two"}, // remap
			{"", 1, "ta/two"},
			{"ta/three", 10, "ta/three"}, // the maximum itself is accepted
			{"", 10, "ta/three"},
		}
		for i, s := range steps {
			if rc := pub.publish(withAlias(&packet.Publish{QoS: 1, Topic: s.topic, Payload: []byte{byte(i)}}, s.alias)); rc != packet.Success {
				t.Fatalf("step %d: PUBACK 0x%02X", i, byte(rc))
			}
			p := sub.expectPublish()
			if p.Topic != s.want || p.Payload[0] != byte(i) || p.Properties.Has(packet.PropTopicAlias) {
				t.Fatalf("step %d: got %s, want topic %q without alias", i, describe(p), s.want)
			}
		}
	})

	t.Run("[MQTT-3.3.2-9] alias above Topic Alias Maximum: DISCONNECT 0x94", func(t *testing.T) {
		c := b.rawV5(t, "ta-big")
		_ = c.send(withAlias(&packet.Publish{Topic: "ta/x", Payload: []byte("x")}, 11))
		c.expectDisconnect(packet.TopicAliasInvalid)
	})

	t.Run("[§3.3.2.3.4] unknown alias with empty topic: DISCONNECT 0x82", func(t *testing.T) {
		c := b.rawV5(t, "ta-unknown")
		_ = c.send(withAlias(&packet.Publish{Topic: "", Payload: []byte("x")}, 5))
		c.expectDisconnect(packet.ProtocolError)
	})

	t.Run("[MQTT-3.3.2-7] aliases do not survive the connection", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("ta-carry"), 60, true))
		c.publish(withAlias(&packet.Publish{QoS: 1, Topic: "ta/carry", Payload: []byte("x")}, 3))
		c.disconnect(packet.NormalDisconnection)
		c2 := b.dialRaw(t, packet.V5)
		c2.mustConnect(withExpiry(v5Connect("ta-carry"), 60, false))
		_ = c2.send(withAlias(&packet.Publish{QoS: 1, PacketID: 1, Topic: "", Payload: []byte("x")}, 3))
		c2.expectDisconnect(packet.ProtocolError)
	})

	t.Run("[MQTT-3.3.2-11] outbound aliases within the subscriber's Topic Alias Maximum", func(t *testing.T) {
		sub := b.dialRaw(t, packet.V5)
		cp := v5Connect("ta-out")
		cp.Properties.TopicAliasMaximum = 2
		cp.Properties.Set(packet.PropTopicAliasMaximum)
		sub.mustConnect(cp)
		sub.mustSubscribe(1, "oa/#")
		pub := b.rawV5(t, "ta-out-pub")
		known := map[uint16]string{} // what the subscriber learned
		topics := []string{"oa/a", "oa/a", "oa/b", "oa/a", "oa/b", "oa/c", "oa/c", "oa/a"}
		empties := 0
		for i, topic := range topics {
			pub.publish(&packet.Publish{QoS: 1, Topic: topic, Payload: []byte{byte(i)}})
			p := sub.expectPublish()
			name := p.Topic
			if p.Properties.Has(packet.PropTopicAlias) {
				a := p.Properties.TopicAlias
				if a == 0 || a > 2 {
					t.Fatalf("message %d: alias %d outside 1..2", i, a)
				}
				if p.Topic != "" {
					known[a] = p.Topic
				} else {
					empties++
					var ok bool
					if name, ok = known[a]; !ok {
						t.Fatalf("message %d: empty topic with alias %d never set", i, a)
					}
				}
			} else if p.Topic == "" {
				t.Fatalf("message %d: empty topic without alias", i)
			}
			if name != topic || p.Payload[0] != byte(i) {
				t.Fatalf("message %d: resolved topic %q payload %v, want %q", i, name, p.Payload, topic)
			}
		}
		if empties == 0 {
			t.Fatal("the broker never used an alias in place of a repeated topic")
		}
	})

	t.Run("[MQTT-3.1.2-27] no outbound alias when the subscriber announces none", func(t *testing.T) {
		sub := b.rawV5(t, "ta-none")
		sub.mustSubscribe(0, "on/#")
		pub := b.rawV5(t, "ta-none-pub")
		for range 3 {
			pub.publish(&packet.Publish{QoS: 1, Topic: "on/x", Payload: []byte("x")})
			if p := sub.expectPublish(); p.Properties.Has(packet.PropTopicAlias) || p.Topic != "on/x" {
				t.Fatalf("got %s", describe(p))
			}
		}
	})
}

func TestE2ESubscriptionIdentifiers(t *testing.T) {
	b := startBroker(t, nil)
	sub := b.rawV5(t, "sid")
	for _, s := range []struct {
		id     int
		filter string
		qos    byte
	}{{11, "sid/+", 0}, {22, "sid/#", 2}, {0, "sid/x", 1}} {
		if ack := sub.subscribe(s.id, packet.Subscription{Filter: s.filter, QoS: s.qos}); ack.ReasonCodes[0] != packet.ReasonCode(s.qos) {
			t.Fatalf("SUBACK %+v", ack)
		}
	}
	pub := b.rawV5(t, "sid-pub")

	t.Run("[MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-4] overlapping subscriptions: one copy, max QoS, every identifier", func(t *testing.T) {
		sub, pub := sub.in(t), pub.in(t)
		pub.publish(&packet.Publish{QoS: 2, Topic: "sid/x", Payload: []byte("x")})
		p := sub.expectPublish()
		ids := slices.Clone(p.Properties.SubscriptionIDs)
		slices.Sort(ids)
		if p.QoS != 2 || !slices.Equal(ids, []int{11, 22}) {
			t.Fatalf("got %s, want QoS 2 with subscription ids 11 and 22", describe(p))
		}
		sub.expectNone(waitShort, "second copy of an overlapping delivery")
	})

	t.Run("[MQTT-3.3.4-3] only the identifiers of matching subscriptions", func(t *testing.T) {
		sub, pub := sub.in(t), pub.in(t)
		pub.publish(&packet.Publish{QoS: 1, Topic: "sid/y/z", Payload: []byte("y")})
		p := sub.expectPublish()
		if !slices.Equal(p.Properties.SubscriptionIDs, []int{22}) || p.QoS != 1 {
			t.Fatalf("got %s, want QoS 1 with subscription id 22", describe(p))
		}
	})

	t.Run("[MQTT-3.3.4-3] retained message sent on subscribe carries the new subscription's identifier", func(t *testing.T) {
		pub := pub.in(t)
		pub.publish(&packet.Publish{QoS: 1, Retain: true, Topic: "sidr/t", Payload: []byte("r")})
		c := b.rawV5(t, "sid-ret")
		c.subscribe(33, packet.Subscription{Filter: "sidr/#", QoS: 1})
		p := c.expectPublish()
		if !p.Retain || !slices.Equal(p.Properties.SubscriptionIDs, []int{33}) {
			t.Fatalf("got %s, want retained with subscription id 33", describe(p))
		}
	})

	t.Run("[MQTT-3.3.4-6] PUBLISH from a client with a subscription identifier: DISCONNECT 0x82", func(t *testing.T) {
		c := b.rawV5(t, "sid-bad")
		p := &packet.Publish{Topic: "sid/q", Payload: []byte("x")}
		p.Properties.SubscriptionIDs = []int{5}
		_ = c.send(p)
		c.expectDisconnect(packet.ProtocolError)
	})
}

func TestE2EUnsubscribe(t *testing.T) {
	b := startBroker(t, nil)
	c := b.rawV5(t, "unsub")
	c.mustSubscribe(1, "un/+", "un/x")
	prober := b.rawV5(t, "unsub-probe")
	t.Run("[MQTT-3.10.4-1] [MQTT-3.11.3-1] UNSUBSCRIBE deletes exactly the named filter", func(t *testing.T) {
		_ = c.send(&packet.Unsubscribe{PacketID: 5, Filters: []string{"un/+", "un/#"}})
		u := expectPacket[*packet.Unsuback](c)
		if u.PacketID != 5 || !slices.Equal(u.ReasonCodes, []packet.ReasonCode{packet.Success, packet.NoSubscriptionExisted}) {
			t.Fatalf("UNSUBACK %+v, want [0x00 0x11]", u)
		}
		if rc := prober.probe("un/y"); rc != packet.NoMatchingSubscribers {
			t.Fatalf("PUBACK 0x%02X for un/y after unsubscribing un/+", byte(rc))
		}
		if rc := prober.probe("un/x"); rc != packet.Success {
			t.Fatalf("PUBACK 0x%02X for un/x, still subscribed", byte(rc))
		}
		if p := c.expectPublish(); p.Topic != "un/x" {
			t.Fatalf("got %s", describe(p))
		}
		c.expectNone(waitShort, "delivery after unsubscribe")
	})
}

func TestE2ENoLocal(t *testing.T) {
	b := startBroker(t, nil)
	self := b.rawV5(t, "nl-self")
	if ack := self.subscribe(0, packet.Subscription{Filter: "nl/t", QoS: 1, NoLocal: true}); ack.ReasonCodes[0] != 1 {
		t.Fatalf("SUBACK %+v", ack)
	}
	other := b.rawV5(t, "nl-other")
	other.mustSubscribe(1, "nl/t")

	t.Run("[MQTT-3.8.3-3] no local: own messages are not forwarded, others' are", func(t *testing.T) {
		self, other := self.in(t), other.in(t)
		_ = self.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "nl/t", Payload: []byte("mine")})
		if a := expectPacket[*packet.Puback](self); a.PacketID != 1 {
			t.Fatalf("PUBACK %+v", a)
		}
		if p := other.expectPublish(); string(p.Payload) != "mine" {
			t.Fatalf("other got %s", describe(p))
		}
		self.expectNone(waitShort, "own message forwarded despite no local")
		_ = other.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "nl/t", Payload: []byte("theirs")})
		var gotAck, gotMsg bool
		for !(gotAck && gotMsg) {
			switch p := other.expect().(type) {
			case *packet.Puback:
				gotAck = true
			case *packet.Publish:
				other.ack(p)
				gotMsg = true // the other subscription has no no-local
			default:
				t.Fatalf("unexpected %s", describe(p))
			}
		}
		if p := self.expectPublish(); string(p.Payload) != "theirs" {
			t.Fatalf("self got %s", describe(p))
		}
	})
}

func TestE2EMaximumPacketSize(t *testing.T) {
	b := startBroker(t, nil)
	pub := b.rawV5(t, "mps-pub")
	big := bytes.Repeat([]byte("B"), 300)

	for _, tc := range []struct {
		name     string
		qos      byte
		recvMax  uint16 // 0: not announced
		aliasMax uint16
	}{
		{"[MQTT-3.1.2-24] [MQTT-3.1.2-25] QoS 0: oversize dropped, next small delivered", 0, 0, 0},
		{"[MQTT-3.1.2-25] QoS 1 with Receive Maximum 1: oversize counts as sent, next small delivered", 1, 1, 0},
		{"[MQTT-3.1.2-25] [MQTT-3.3.2-11] with topic aliases: a dropped message teaches no alias", 1, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := pub.in(t)
			id := fmt.Sprintf("mps-%d-%d-%d", tc.qos, tc.recvMax, tc.aliasMax)
			topic := "mps/" + id
			sub := b.dialRaw(t, packet.V5)
			cp := v5Connect(id)
			cp.Properties.MaximumPacketSize = 128
			cp.Properties.Set(packet.PropMaximumPacketSize)
			if tc.recvMax > 0 {
				cp.Properties.ReceiveMaximum = tc.recvMax
				cp.Properties.Set(packet.PropReceiveMaximum)
			}
			if tc.aliasMax > 0 {
				cp.Properties.TopicAliasMaximum = tc.aliasMax
				cp.Properties.Set(packet.PropTopicAliasMaximum)
			}
			sub.mustConnect(cp)
			sub.mustSubscribe(tc.qos, topic)
			pub.publish(&packet.Publish{QoS: tc.qos, Topic: topic, Payload: big})
			pub.publish(&packet.Publish{QoS: tc.qos, Topic: topic, Payload: []byte("small")})
			f, ok := sub.next(waitLong)
			if !ok {
				t.Fatal("the small message after an oversize one was not delivered")
			}
			if len(f.raw) > 128 {
				t.Fatalf("broker sent a %d-byte packet to a client with Maximum Packet Size 128", len(f.raw))
			}
			p, isPub := f.p.(*packet.Publish)
			if f.err != nil || !isPub || string(p.Payload) != "small" {
				t.Fatalf("got %s, want the small message", describeFrame(f))
			}
			if p.Topic == "" {
				t.Fatalf("first delivery on this connection has an empty topic with alias %d that was never set", p.Properties.TopicAlias)
			}
			sub.ack(p)
			sub.expectNone(waitShort, "after the small message")
		})
	}
}

func TestE2EMaximumPacketSizeAlias(t *testing.T) {
	b := startBroker(t, nil)
	t.Run("[MQTT-3.1.2-24] a message that fits the Maximum Packet Size thanks to its topic alias is delivered", func(t *testing.T) {
		topic := "mpsa/" + string(bytes.Repeat([]byte("t"), 60))
		sub := b.dialRaw(t, packet.V5)
		cp := v5Connect("mpsa")
		cp.Properties.MaximumPacketSize = 128
		cp.Properties.Set(packet.PropMaximumPacketSize)
		cp.Properties.TopicAliasMaximum = 5
		cp.Properties.Set(packet.PropTopicAliasMaximum)
		sub.mustConnect(cp)
		sub.mustSubscribe(1, topic)
		pub := b.rawV5(t, "mpsa-pub")
		pub.publish(&packet.Publish{QoS: 1, Topic: topic, Payload: []byte("first")}) // teaches the alias
		first := sub.expectPublish()
		if !first.Properties.Has(packet.PropTopicAlias) || first.Topic != topic {
			t.Fatalf("first delivery %s, want the topic with a new alias", describe(first))
		}
		// 80 bytes of payload: about 90 bytes with the alias, about 155 with the topic.
		payload := bytes.Repeat([]byte("p"), 80)
		pub.publish(&packet.Publish{QoS: 1, Topic: topic, Payload: payload})
		f, ok := sub.next(waitLong)
		if !ok {
			t.Fatalf("a %d-byte message (with its alias) was not delivered to a client accepting 128 bytes", 1+1+2+2+1+3+len(payload))
		}
		p, isPub := f.p.(*packet.Publish)
		if !isPub || !bytes.Equal(p.Payload, payload) || len(f.raw) > 128 {
			t.Fatalf("got %s (%d bytes)", describeFrame(f), len(f.raw))
		}
	})
}

func TestE2EMaximumPacketSizeWindow(t *testing.T) {
	b := startBroker(t, nil) // MaxInflight 32
	t.Run("[MQTT-3.1.2-25] [SECURITY] oversize QoS 1 messages cannot exhaust a subscriber's window", func(t *testing.T) {
		sub := b.dialRaw(t, packet.V5)
		cp := v5Connect("mpsw")
		cp.Properties.MaximumPacketSize = 128
		cp.Properties.Set(packet.PropMaximumPacketSize)
		sub.mustConnect(cp)
		sub.mustSubscribe(1, "mpsw/t")
		pub := b.rawV5(t, "mpsw-pub")
		big := bytes.Repeat([]byte("B"), 300)
		// Anyone allowed to publish on the topic sends one window's worth of messages the
		// device cannot receive...
		for range 33 {
			pub.publish(&packet.Publish{QoS: 1, Topic: "mpsw/t", Payload: big})
		}
		// ...and the device must still get the next message it can receive.
		pub.publish(&packet.Publish{QoS: 1, Topic: "mpsw/t", Payload: []byte("small")})
		f, ok := sub.next(waitLong)
		if !ok {
			t.Fatal("subscriber starved: oversize messages were never completed and filled its inflight window")
		}
		if p, isPub := f.p.(*packet.Publish); !isPub || string(p.Payload) != "small" {
			t.Fatalf("got %s", describeFrame(f))
		}
	})
}

func TestE2ERequestProblemInfo(t *testing.T) {
	b := startBroker(t, nil)
	c := b.dialRaw(t, packet.V5)
	cp := v5Connect("rpi0")
	cp.Properties.RequestProblemInfo = 0
	cp.Properties.Set(packet.PropRequestProblemInfo)
	c.mustConnect(cp)
	noProblem := func(t *testing.T, what string, p *packet.Properties) {
		t.Helper()
		if p.Has(packet.PropReasonString) || p.Has(packet.PropUser) {
			t.Fatalf("%s carries reason string %q / user properties %v", what, p.ReasonString, p.User)
		}
	}
	t.Run("[MQTT-3.1.2-29] PUBACK 0x10 without reason string", func(t *testing.T) {
		c := c.in(t)
		_ = c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "rpi/none", Payload: []byte("x")})
		a := expectPacket[*packet.Puback](c)
		if a.ReasonCode != packet.NoMatchingSubscribers {
			t.Fatalf("PUBACK 0x%02X, want 0x10", byte(a.ReasonCode))
		}
		noProblem(t, "PUBACK", &a.Properties)
	})
	t.Run("[MQTT-3.1.2-29] PUBACK 0x87 without reason string", func(t *testing.T) {
		c := c.in(t)
		_ = c.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "$SYS/x", Payload: []byte("x")})
		a := expectPacket[*packet.Puback](c)
		if a.ReasonCode != packet.NotAuthorized {
			t.Fatalf("PUBACK 0x%02X, want 0x87", byte(a.ReasonCode))
		}
		noProblem(t, "PUBACK", &a.Properties)
	})
	t.Run("[MQTT-3.1.2-29] PUBREC error without reason string", func(t *testing.T) {
		c := c.in(t)
		_ = c.send(&packet.Publish{QoS: 2, PacketID: 3, Topic: "$SYS/y", Payload: []byte("x")})
		r := expectPacket[*packet.Pubrec](c)
		if r.ReasonCode != packet.NotAuthorized {
			t.Fatalf("PUBREC 0x%02X, want 0x87", byte(r.ReasonCode))
		}
		noProblem(t, "PUBREC", &r.Properties)
	})
	t.Run("[MQTT-3.1.2-29] SUBACK failure without reason string", func(t *testing.T) {
		c := c.in(t)
		ack := c.subscribe(0, packet.Subscription{Filter: "a/#/b"})
		if ack.ReasonCodes[0] != packet.TopicFilterInvalid {
			t.Fatalf("SUBACK 0x%02X, want 0x8F", byte(ack.ReasonCodes[0]))
		}
		noProblem(t, "SUBACK", &ack.Properties)
	})
	t.Run("[MQTT-3.1.2-29] UNSUBACK 0x11 without reason string", func(t *testing.T) {
		c := c.in(t)
		_ = c.send(&packet.Unsubscribe{PacketID: 9, Filters: []string{"never/subscribed"}})
		u := expectPacket[*packet.Unsuback](c)
		if len(u.ReasonCodes) != 1 || u.ReasonCodes[0] != packet.NoSubscriptionExisted {
			t.Fatalf("UNSUBACK %+v, want 0x11", u)
		}
		noProblem(t, "UNSUBACK", &u.Properties)
	})
}

func TestE2EClientDisconnect(t *testing.T) {
	b := startBroker(t, nil)
	prober := b.rawV5(t, "dc-probe")
	watcher := b.rawV5(t, "dc-watch")
	watcher.mustSubscribe(1, "dc/will/#")
	willConnect := func(id string) *packet.Connect {
		cp := v5Connect(id)
		cp.Will = &packet.Will{QoS: 1, Topic: "dc/will/" + id, Payload: []byte("gone:" + id)}
		return cp
	}

	for _, tc := range []struct {
		name     string
		reason   packet.ReasonCode
		wantWill bool
	}{
		{"[MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will", packet.NormalDisconnection, false},
		{"[§3.14.2.1] DISCONNECT 0x04 publishes the will", packet.DisconnectWithWillMessage, true},
		{"[MQTT-3.1.2-8] DISCONNECT 0x80 (client error) still publishes the will", packet.UnspecifiedError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watcher := watcher.in(t)
			id := fmt.Sprintf("dc-%02x", byte(tc.reason))
			c := b.dialRaw(t, packet.V5)
			c.mustConnect(willConnect(id))
			c.disconnect(tc.reason)
			if tc.wantWill {
				f, ok := watcher.next(waitLong)
				if !ok {
					t.Fatalf("will not published within %v after DISCONNECT 0x%02X", waitLong, byte(tc.reason))
				}
				if p, isPub := f.p.(*packet.Publish); !isPub || string(p.Payload) != "gone:"+id {
					t.Fatalf("got %s", describeFrame(f))
				} else {
					watcher.ack(p)
				}
			} else {
				watcher.expectNone(waitShort, "will published after DISCONNECT 0x00")
			}
		})
	}

	t.Run("[§3.14.2.2.2] session expiry raised from 0 at DISCONNECT: DISCONNECT 0x82 and the will", func(t *testing.T) {
		watcher := watcher.in(t)
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(willConnect("dc-raise"))
		d := &packet.Disconnect{}
		d.Properties.SessionExpiry = 60
		d.Properties.Set(packet.PropSessionExpiry)
		_ = c.send(d)
		c.expectDisconnect(packet.ProtocolError)
		if p := watcher.expectPublish(); string(p.Payload) != "gone:dc-raise" {
			t.Fatalf("got %s", describe(p))
		}
	})

	t.Run("[MQTT-3.1.2-23] session expiry lowered to 0 at DISCONNECT ends the session", func(t *testing.T) {
		prober := prober.in(t)
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("dc-lower"), 60, true))
		c.mustSubscribe(1, "dc/lower")
		d := &packet.Disconnect{}
		d.Properties.SessionExpiry = 0
		d.Properties.Set(packet.PropSessionExpiry)
		_ = c.send(d)
		c.expectClosed(waitLong)
		eventually(t, waitLong, "session ended", func() bool { return prober.probe("dc/lower") == packet.NoMatchingSubscribers })
		c2 := b.dialRaw(t, packet.V5)
		if ack := c2.mustConnect(withExpiry(v5Connect("dc-lower"), 60, false)); ack.SessionPresent {
			t.Fatal("session present after DISCONNECT with session expiry 0")
		}
	})
}

func TestE2EWillAbnormal(t *testing.T) {
	b := startBroker(t, nil)
	watcher := b.rawV5(t, "wa-watch")
	watcher.mustSubscribe(1, "wa/#")

	t.Run("[MQTT-3.1.2-8] will published when the socket closes without DISCONNECT", func(t *testing.T) {
		watcher := watcher.in(t)
		for _, v := range []packet.Version{packet.V5, packet.V311} {
			c := b.dialRaw(t, v)
			c.mustConnect(&packet.Connect{Version: v, ClientID: "wa-" + v.String(), CleanStart: true, KeepAlive: 30,
				Will: &packet.Will{QoS: 1, Topic: "wa/" + v.String(), Payload: []byte("lost")}})
			c.close()
			p := watcher.expectPublish()
			if p.Topic != "wa/"+v.String() || string(p.Payload) != "lost" {
				t.Fatalf("%v: got %s", v, describe(p))
			}
		}
	})

	t.Run("[MQTT-3.1.2-8] will published when the broker closes the connection for a protocol error", func(t *testing.T) {
		watcher := watcher.in(t)
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(&packet.Connect{Version: packet.V5, ClientID: "wa-perr", CleanStart: true, KeepAlive: 30,
			Will: &packet.Will{QoS: 1, Topic: "wa/perr", Payload: []byte("perr")}})
		_ = c.send(&packet.Connect{Version: packet.V5, ClientID: "wa-perr", CleanStart: true})
		c.expectClosed(waitLong)
		if p := watcher.expectPublish(); p.Topic != "wa/perr" {
			t.Fatalf("got %s", describe(p))
		}
	})

	t.Run("[MQTT-3.1.4-3] will (delay 0) published when the connection is taken over", func(t *testing.T) {
		watcher := watcher.in(t)
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(&packet.Connect{Version: packet.V5, ClientID: "wa-take", KeepAlive: 30,
			Will: &packet.Will{QoS: 1, Topic: "wa/take", Payload: []byte("taken")}}, 60, true))
		c2 := b.dialRaw(t, packet.V5)
		c2.mustConnect(withExpiry(v5Connect("wa-take"), 60, false))
		c.expectDisconnect(packet.SessionTakenOver)
		if p := watcher.expectPublish(); p.Topic != "wa/take" || string(p.Payload) != "taken" {
			t.Fatalf("got %s", describe(p))
		}
	})
}

func TestE2ESharedRaw(t *testing.T) {
	b := startBroker(t, nil)

	t.Run("[MQTT-3.8.3-4] no local on a shared subscription: protocol error, connection closed", func(t *testing.T) {
		c := b.rawV5(t, "sh-nl")
		_ = c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "$share/g/sh/nl", QoS: 1, NoLocal: true}}})
		got := c.expectClosed(waitLong)
		for _, p := range got {
			if _, ok := p.(*packet.Suback); ok {
				t.Fatalf("SUBACK sent for a no-local shared subscription: %s", describeAll(got))
			}
		}
		if len(got) > 0 {
			if d, ok := got[len(got)-1].(*packet.Disconnect); !ok || d.ReasonCode != packet.ProtocolError {
				t.Fatalf("got %s, want at most DISCONNECT 0x82", describeAll(got))
			}
		}
	})

	t.Run("[MQTT-4.8.2-1] [MQTT-4.8.2-2] malformed shared subscription filters refused with 0x8F", func(t *testing.T) {
		c := b.rawV5(t, "sh-bad")
		for _, f := range []string{"$share/g", "$share//t", "$share/g+/t", "$share/g#/t", "$share/g/"} {
			if ack := c.subscribe(0, packet.Subscription{Filter: f, QoS: 1}); ack.ReasonCodes[0] != packet.TopicFilterInvalid {
				t.Errorf("%q: SUBACK 0x%02X, want 0x8F", f, byte(ack.ReasonCodes[0]))
			}
		}
	})

	t.Run("[§4.8.2] unacknowledged QoS 1 of a departing member goes to the other member", func(t *testing.T) {
		lazy := b.rawV5(t, "sh-lazy")
		lazy.mustSubscribe(1, "$share/g/sh/work")
		busy := b.rawV5(t, "sh-busy")
		busy.mustSubscribe(1, "$share/g/sh/work")
		pub := b.rawV5(t, "sh-pub")
		const n = 10
		for i := range n {
			pub.publish(&packet.Publish{QoS: 1, Topic: "sh/work", Payload: []byte(strconv.Itoa(i))})
		}
		held := 0
		// The lazy member takes its share and acknowledges nothing.
		for {
			f, ok := lazy.next(waitShort)
			if !ok {
				break
			}
			if _, isPub := f.p.(*packet.Publish); !isPub {
				t.Fatalf("lazy member got %s", describeFrame(f))
			}
			held++
		}
		if held == 0 || held == n {
			t.Fatalf("round robin gave %d of %d messages to one of two members", held, n)
		}
		lazy.close() // abnormal close, session expiry 0: the session ends
		got := map[string]int{}
		for len(got) < n {
			p := busy.expectPublish()
			got[string(p.Payload)]++
		}
		for i := range n {
			if got[strconv.Itoa(i)] != 1 {
				t.Fatalf("message %d delivered %d times to the remaining member: %v", i, got[strconv.Itoa(i)], got)
			}
		}
		busy.expectNone(waitShort, "extra delivery")
	})

	t.Run("[MQTT-4.4.0-1] sole shared member with a persistent session gets its unacknowledged message again on resume", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withExpiry(v5Connect("sh-sole"), 60, true))
		c.mustSubscribe(1, "$share/solo/sh/sole")
		pub := b.rawV5(t, "sh-sole-pub")
		pub.publish(&packet.Publish{QoS: 1, Topic: "sh/sole", Payload: []byte("keep me")})
		first := c.expectPublish(true)
		c.disconnect(packet.NormalDisconnection)
		c2 := b.dialRaw(t, packet.V5)
		if ack := c2.mustConnect(withExpiry(v5Connect("sh-sole"), 60, false)); !ack.SessionPresent {
			t.Fatal("session not present")
		}
		f, ok := c2.next(waitLong)
		if !ok {
			t.Fatal("unacknowledged QoS 1 message of a shared subscription lost when its only member went offline")
		}
		p, isPub := f.p.(*packet.Publish)
		if !isPub || string(p.Payload) != "keep me" || p.PacketID != first.PacketID || !p.Dup {
			t.Fatalf("got %s, want DUP resend of pid %d", describeFrame(f), first.PacketID)
		}
	})
}

func TestE2EConnackFirstUnderLoad(t *testing.T) {
	// A resumed session is attached to its new connection before CONNACK is written; a
	// message routed in that window must not overtake the CONNACK. The window is short, so
	// several persistent subscribers reconnect many times while publishers flood.
	b := startBroker(t, nil)
	const subscribers, rounds = 4, 150
	for i := range subscribers {
		sub := b.dialRaw(t, packet.V5)
		sub.mustConnect(withExpiry(v5Connect(fmt.Sprint("cf-sub-", i)), 60, true))
		sub.mustSubscribe(0, "cf/load")
		sub.disconnect(packet.NormalDisconnection)
	}
	stop := make(chan struct{})
	var flooders []chan struct{}
	batch := bytes.Repeat(encode(t, &packet.Publish{Topic: "cf/load", Payload: []byte("load")}, packet.V5), 64)
	for i := range 2 {
		pub := b.rawV5(t, fmt.Sprint("cf-pub-", i))
		done := make(chan struct{})
		flooders = append(flooders, done)
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if pub.sendBytes(batch) != nil {
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		for _, d := range flooders {
			<-d
		}
	}()

	t.Run("[MQTT-3.2.0-1] CONNACK is the first packet on a resumed session under load", func(t *testing.T) {
		errs := make(chan string, subscribers)
		for i := range subscribers {
			go func() {
				id := fmt.Sprint("cf-sub-", i)
				connect := encode(t, withExpiry(v5Connect(id), 60, false), packet.V5)
				for r := range rounds {
					nc, err := net.DialTimeout("tcp", b.addr, waitLong)
					if err != nil {
						errs <- err.Error()
						return
					}
					_ = nc.SetDeadline(time.Now().Add(waitLong))
					_, err = nc.Write(connect)
					var p packet.Packet
					if err == nil {
						p, err = packet.NewReader(bufio.NewReader(nc), 0).ReadPacket(packet.V5)
					}
					_ = nc.Close()
					switch {
					case err != nil:
						errs <- fmt.Sprintf("%s reconnect %d: %v", id, r, err)
						return
					case p.Type() != packet.CONNACK:
						errs <- fmt.Sprintf("%s reconnect %d: first packet from the broker is %s, not CONNACK", id, r, describe(p))
						return
					}
				}
				errs <- ""
			}()
		}
		for range subscribers {
			if e := <-errs; e != "" {
				t.Error(e)
			}
		}
	})
}

func TestE2ESlowConsumer(t *testing.T) {
	b := startBroker(t, func(o *Options) {
		o.HighWatermark = 64 << 10
		o.SendTimeout = 500 * time.Millisecond
	})

	// The slow subscriber: a tiny receive buffer, and after SUBACK it never reads again.
	d := net.Dialer{Timeout: waitLong, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	slow, err := d.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slowRd := packet.NewReader(bufio.NewReader(slow), 0)
	_ = slow.SetDeadline(time.Now().Add(waitLong))
	if _, err := slow.Write(encode(t, v5Connect("slow"), packet.V5)); err != nil {
		t.Fatal(err)
	}
	if p, err := slowRd.ReadPacket(packet.V5); err != nil || p.Type() != packet.CONNACK || p.(*packet.Connack).ReasonCode != 0 {
		t.Fatalf("slow CONNACK: %v %v", p, err)
	}
	if _, err := slow.Write(encode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "slow/t"}}}, packet.V5)); err != nil {
		t.Fatal(err)
	}
	if p, err := slowRd.ReadPacket(packet.V5); err != nil || p.Type() != packet.SUBACK {
		t.Fatalf("slow SUBACK: %v %v", p, err)
	}
	_ = slow.SetDeadline(time.Time{})

	fast := b.rawV5(t, "fast")
	fast.mustSubscribe(0, "slow/t")
	pub := b.rawV5(t, "flood")

	const total, size, batch = 20000, 1024, 32
	payload := make([]byte, size)
	start := time.Now()
	limit := start.Add(20 * time.Second)
	t.Run("[DESIGN principle 3] a subscriber that never reads blocks neither the publisher nor other subscribers", func(t *testing.T) {
		fast, pub := fast.in(t), pub.in(t)
		var buf []byte
		for i := 0; i < total; i += batch {
			buf = buf[:0]
			for j := i; j < i+batch; j++ {
				copy(payload, strconv.Itoa(j))
				buf = encodeAppend(t, buf, &packet.Publish{Topic: "slow/t", Payload: payload})
			}
			if err := pub.sendBytes(buf); err != nil {
				t.Fatalf("publisher blocked or cut off after %d messages: %v", i, err)
			}
			// The normal subscriber keeps up batch by batch, so its own buffer stays under
			// the high watermark and nothing of its stream may be dropped.
			for j := i; j < i+batch; j++ {
				p := fast.expectPublish()
				if want := strconv.Itoa(j); string(p.Payload[:len(want)]) != want || len(p.Payload) != size {
					t.Fatalf("normal subscriber: message %d is %q... (%d bytes)", j, p.Payload[:8], len(p.Payload))
				}
			}
			if time.Now().After(limit) {
				t.Fatalf("publisher not done after 20 s (%d of %d messages)", i+batch, total)
			}
		}
		// A PINGREQ round trip proves the publisher's connection is still served.
		_ = pub.send(&packet.Pingreq{})
		expectPacket[*packet.Pingresp](pub)
	})

	t.Run("[DESIGN principle 3] the slow subscriber is disconnected", func(t *testing.T) {
		// The publisher may finish before the write deadline runs out; the subscriber must
		// be cut off once its pending write has made no progress for SendTimeout.
		for deadline := time.Now().Add(waitLong); b.srv.stats.slowClosed.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("the broker never cut off the subscriber that stopped reading")
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, slow)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("slow subscriber still connected after reading %d bytes: %v", n, err)
		}
		if n >= int64(total*size) {
			t.Fatalf("slow subscriber received everything (%d bytes): it was never cut off", n)
		}
		t.Logf("slow subscriber received %d of %d bytes before the broker closed it", n, total*(size+10))
	})
}

func encodeAppend(t testing.TB, dst []byte, p packet.Packet) []byte {
	t.Helper()
	b, err := p.AppendTo(dst, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestE2EIdleSocketsHygiene(t *testing.T) {
	const n = 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read the file descriptor limit: %v", err)
	}
	if need := uint64(2*n + 256); lim.Cur < need {
		if lim.Max < need {
			t.Skipf("file descriptor hard limit %d is below the %d this test needs", lim.Max, need)
		}
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("cannot raise the file descriptor limit to %d: %v", need, err)
		}
	}
	b := startBroker(t, func(o *Options) { o.IdleTimeout = 500 * time.Millisecond })
	runtime.GC()
	baseline := runtime.NumGoroutine()
	heapInuse := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	baseHeap := heapInuse()

	t.Run("[DESIGN bounded] 2000 sockets that never send CONNECT are all closed and leave no goroutine", func(t *testing.T) {
		conns := make([]net.Conn, 0, n)
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for i := range n {
			c, err := net.DialTimeout("tcp", b.addr, waitLong)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		deadline := time.Now().Add(20 * time.Second)
		buf := make([]byte, 1)
		for i, c := range conns {
			_ = c.SetReadDeadline(deadline)
			k, err := c.Read(buf)
			if k != 0 || err == nil {
				t.Fatalf("socket %d: read %d bytes, err %v; want the broker to close it without a word", i, k, err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("socket %d still open 20 s after the others were dialled", i)
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
		conns = nil
		eventually(t, 10*time.Second, fmt.Sprintf("goroutines back to baseline %d", baseline), func() bool {
			return runtime.NumGoroutine() <= baseline+5
		})
		if got := b.srv.LimitStats().ConnectTimeouts; got != n {
			t.Errorf("ConnectTimeouts = %d, want %d", got, n)
		}
		// Memory too: the 2000 sockets leave nothing behind but pooled buffers (a loose
		// bound, in this process's heap, clients included).
		eventually(t, 10*time.Second, fmt.Sprintf("heap back near its baseline %d KB", baseHeap>>10), func() bool {
			return heapInuse() <= baseHeap+16<<20
		})
	})
}

func TestE2EAwaitingRelease(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := startBroker(t, func(o *Options) {
		o.MaxAwaitingRel = 2
		o.AwaitRelTimeout = timeout
	})
	qos2 := func(pid uint16) *packet.Publish {
		return &packet.Publish{QoS: 2, PacketID: pid, Topic: "rel/t", Payload: []byte("x")}
	}

	t.Run("[MQTT-4.9.0-3] [SECURITY] QoS 2 messages never released cannot exceed max_awaiting_rel", func(t *testing.T) {
		c := b.rawV5(t, "rel-flood")
		for pid := uint16(1); pid <= 2; pid++ {
			_ = c.send(qos2(pid))
			if r := expectPacket[*packet.Pubrec](c); r.ReasonCode.IsError() {
				t.Fatalf("PUBREC %d refused: %v", pid, r.ReasonCode)
			}
		}
		_ = c.send(qos2(3))
		c.expectDisconnect(packet.ReceiveMaximumExceeded)
	})

	t.Run("an abandoned exchange frees its slot after await_rel_timeout", func(t *testing.T) {
		c := b.rawV5(t, "rel-abandon")
		for pid := uint16(1); pid <= 2; pid++ {
			_ = c.send(qos2(pid))
			expectPacket[*packet.Pubrec](c)
		}
		time.Sleep(timeout + 100*time.Millisecond) // let both exchanges go stale
		_ = c.send(qos2(3))
		if r := expectPacket[*packet.Pubrec](c); r.ReasonCode.IsError() {
			t.Fatalf("PUBREC 3 refused after the timeout: %v", r.ReasonCode)
		}
		// PUBREL for a forgotten id is answered with PUBCOMP 0x92.
		_ = c.send(&packet.Pubrel{PacketID: 1})
		if pc := expectPacket[*packet.Pubcomp](c); pc.ReasonCode != packet.PacketIdentifierNotFound {
			t.Fatalf("PUBCOMP for a forgotten id: %v, want 0x92", pc.ReasonCode)
		}
	})
}
