package packet

import (
	"bytes"
	"strings"
	"testing"
)

func TestEncodeShortestForms(t *testing.T) {
	withReason := func(p *Properties) Properties {
		p.ReasonString = "why"
		p.Set(PropReasonString)
		return *p
	}
	cases := []struct {
		name string
		p    Packet
		v    Version
		want []byte
	}{
		{"3.1.1 PUBACK", &Puback{PacketID: 1}, V311, raw(0x40, 2, 0, 1)},
		{"5.0 PUBACK success has no reason code", &Puback{PacketID: 1}, V5, raw(0x40, 2, 0, 1)},
		{"5.0 PUBREC with reason and no properties", &Pubrec{PacketID: 1, ReasonCode: NoMatchingSubscribers}, V5, raw(0x50, 3, 0, 1, 0x10)},
		{"5.0 PUBREL success", &Pubrel{PacketID: 2}, V5, raw(0x62, 2, 0, 2)},
		{"5.0 PUBCOMP with reason string", &Pubcomp{PacketID: 2, Properties: withReason(&Properties{})}, V5,
			raw(0x70, 10, 0, 2, 0, 6, 0x1F, 0, 3, 'w', 'h', 'y')},
		{"5.0 DISCONNECT normal", &Disconnect{}, V5, raw(0xE0, 0)},
		{"5.0 DISCONNECT with reason", &Disconnect{ReasonCode: ServerShuttingDown}, V5, raw(0xE0, 1, 0x8B)},
		{"3.1.1 DISCONNECT", &Disconnect{}, V311, raw(0xE0, 0)},
		{"5.0 AUTH success", &Auth{}, V5, raw(0xF0, 0)},
		{"PINGREQ", &Pingreq{}, V311, raw(0xC0, 0)},
		{"PINGRESP", &Pingresp{}, V5, raw(0xD0, 0)},
		{"3.1.1 CONNACK", &Connack{SessionPresent: true}, V311, raw(0x20, 2, 1, 0)},
		{"5.0 CONNACK", &Connack{ReasonCode: NotAuthorized}, V5, raw(0x20, 3, 0, 0x87, 0)},
		{"3.1.1 UNSUBACK", &Unsuback{PacketID: 3}, V311, raw(0xB0, 2, 0, 3)},
		{"3.1.1 SUBACK", &Suback{PacketID: 3, ReasonCodes: []ReasonCode{GrantedQoS1, SubackFailure}}, V311, raw(0x90, 4, 0, 3, 1, 0x80)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.AppendTo(nil, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got % x, want % x", got, tc.want)
			}
		})
	}
}

func TestEncodeRefusesWhatCannotBeSent(t *testing.T) {
	long := strings.Repeat("x", MaxStringLength+1)
	var alias Properties
	alias.TopicAlias = 1
	alias.Set(PropTopicAlias)
	cases := []struct {
		name string
		p    Packet
		v    Version
	}{
		{"AUTH in 3.1.1", &Auth{}, V311},
		{"3.1.1 CONNACK with an MQTT 5 code", &Connack{ReasonCode: NotAuthorized}, V311},
		{"3.1.1 PUBACK with a reason code", &Puback{PacketID: 1, ReasonCode: NoMatchingSubscribers}, V311},
		{"PUBACK with packet identifier 0", &Puback{}, V5},
		{"5.0 PUBREL with a PUBACK reason", &Pubrel{PacketID: 1, ReasonCode: NoMatchingSubscribers}, V5},
		{"PUBLISH QoS 1 without packet identifier", &Publish{QoS: 1, Topic: "a"}, V311},
		{"PUBLISH QoS 3", &Publish{QoS: 3, Topic: "a", PacketID: 1}, V311},
		{"PUBLISH QoS 0 with DUP", &Publish{Dup: true, Topic: "a"}, V311},
		{"PUBLISH topic over 65535 bytes", &Publish{Topic: long}, V311},
		{"3.1.1 PUBLISH with properties", &Publish{Topic: "a", Properties: alias}, V311},
		{"5.0 SUBSCRIBE with a PUBLISH property", &Subscribe{PacketID: 1, Properties: alias, Subscriptions: []Subscription{{Filter: "a"}}}, V5},
		{"SUBSCRIBE without filters", &Subscribe{PacketID: 1}, V5},
		{"3.1.1 SUBSCRIBE with no local", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", NoLocal: true}}}, V311},
		{"UNSUBSCRIBE without filters", &Unsubscribe{PacketID: 1}, V311},
		{"3.1.1 UNSUBACK with reason codes", &Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{Success}}, V311},
		{"5.0 SUBACK with a PUBACK code", &Suback{PacketID: 1, ReasonCodes: []ReasonCode{NoMatchingSubscribers}}, V5},
		{"3.1.1 CONNECT password without user name", &Connect{Version: V311, ClientID: "c", HasPassword: true}, V311},
		{"CONNECT encoded for another version", &Connect{Version: V311, ClientID: "c"}, V5},
		{"CONNECT client id over 65535 bytes", &Connect{Version: V5, ClientID: long}, V5},
		{"3.1.1 DISCONNECT with a reason code", &Disconnect{ReasonCode: ServerShuttingDown}, V311},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := tc.p.AppendTo(dst, tc.v)
			if err == nil {
				t.Fatalf("encoded % x", out)
			}
			if string(out) != "keep" {
				t.Fatalf("failed encoding changed dst: %q", out)
			}
		})
	}
}

func TestPublishPacketIDOffset(t *testing.T) {
	for _, v := range []Version{V311, V5} {
		p := &Publish{QoS: 1, PacketID: 0xFFFF, Topic: "devices/42/telemetry", Payload: bytes.Repeat([]byte{'x'}, 300)}
		if v == V5 {
			p.Properties.MessageExpiry = 10
			p.Properties.Set(PropMessageExpiry)
		}
		enc, err := p.AppendTo(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		off := p.PacketIDOffset(v)
		shared := append([]byte(nil), enc...)
		shared[off], shared[off+1] = 0x12, 0x34
		h, body := splitFrame(t, shared)
		var got Publish
		if err := got.Decode(h, body, v); err != nil {
			t.Fatal(err)
		}
		if got.PacketID != 0x1234 || got.Topic != p.Topic {
			t.Fatalf("%v: patched packet id %#x topic %q", v, got.PacketID, got.Topic)
		}
		size, err := p.Size(v)
		if err != nil || size != len(enc) {
			t.Fatalf("%v: Size %d, encoded %d (%v)", v, size, len(enc), err)
		}
	}
	if (&Publish{Topic: "a"}).PacketIDOffset(V5) != -1 {
		t.Fatal("QoS 0 has no packet identifier")
	}
}

func TestConnackV3Mapping(t *testing.T) {
	for in, want := range map[ReasonCode]ReasonCode{
		Success:                    ConnAccepted,
		UnsupportedProtocolVersion: ConnRefusedProtocolVersion,
		ClientIdentifierNotValid:   ConnRefusedIdentifierRejected,
		BadUserNameOrPassword:      ConnRefusedBadUsernamePassword,
		NotAuthorized:              ConnRefusedNotAuthorized,
		Banned:                     ConnRefusedNotAuthorized,
		ServerBusy:                 ConnRefusedServerUnavailable,
		QuotaExceeded:              ConnRefusedServerUnavailable,
	} {
		if got := in.ConnackV3(); got != want {
			t.Errorf("%v: got %v want %v", in, got, want)
		}
	}
}

func TestNamesAreDefined(t *testing.T) {
	for ty := Type(0); ty <= 16; ty++ {
		if ty.String() == "" {
			t.Errorf("type %d has no name", ty)
		}
	}
	for c := 0; c < 256; c++ {
		if ReasonCode(c).String() == "" {
			t.Errorf("code %d has no name", c)
		}
	}
	for id := 0; id < 0x30; id++ {
		if _, ok := propKind(PropID(id)); ok && strings.HasPrefix(PropID(id).String(), "property 0x") {
			t.Errorf("property 0x%02X has no name", id)
		}
	}
}
