package packet

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// Builders for hand-made wire bytes. They do no validation, so tests can say exactly
// which byte is wrong.

// frame prefixes a body with a first byte and a correct remaining length.
func frame(first byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	return append(appendVarint([]byte{first}, len(b)), b...)
}

func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// str encodes a length-prefixed string or binary.
func str(s string) []byte { return append(u16(uint16(len(s))), s...) }

func raw(b ...byte) []byte { return b }

// props encodes an MQTT 5 property block.
func props(p ...[]byte) []byte {
	b := bytes.Join(p, nil)
	return append(appendVarint(nil, len(b)), b...)
}

func prop(id PropID, value ...[]byte) []byte {
	return append([]byte{byte(id)}, bytes.Join(value, nil)...)
}

var noProps = []byte{0}

// connect builds a CONNECT: protocol name, level, flags, keep alive, then the rest.
func connect(name string, level, flags byte, rest ...[]byte) []byte {
	head := [][]byte{str(name), raw(level, flags), u16(60)}
	return frame(0x10, append(head, rest...)...)
}

type decodeCase struct {
	name    string
	version Version // version the stream is read with; 0 = first packet
	wire    []byte
	code    ReasonCode // expected error code; Success means the packet must decode
	rule    string     // expected normative statement in the error, if any
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.wire), 0)
			p, err := r.ReadPacket(tc.version)
			if tc.code == Success {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				if p == nil {
					t.Fatal("nil packet")
				}
				return
			}
			if err == nil {
				t.Fatalf("want error %v, decoded %#v", tc.code, p)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error with %v, got %T %v", tc.code, err, err)
			}
			if e.Code != tc.code {
				t.Fatalf("want code %v (0x%02X), got %v (0x%02X): %v", tc.code, byte(tc.code), e.Code, byte(e.Code), err)
			}
			if !errors.Is(err, &Error{Code: tc.code}) || CodeOf(err) != tc.code {
				t.Fatalf("errors.Is / CodeOf disagree with code %v", tc.code)
			}
			if tc.rule != "" && e.Rule != tc.rule {
				t.Fatalf("want rule %s, got %q (%v)", tc.rule, e.Rule, err)
			}
		})
	}
}

func TestDecodeFixedHeader(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"[MQTT-2.2.2-2] CONNECT with flags 0001", 0, frame(0x11, str("MQTT"), raw(4, 2), u16(0), str("c")), MalformedPacket, "MQTT-2.2.2-2"},
		{"[MQTT-2.2.2-2] PUBREL with flags 0000", V311, frame(0x60, u16(1)), MalformedPacket, "MQTT-2.2.2-2"},
		{"[MQTT-3.8.1-1] SUBSCRIBE with flags 0000", V311, frame(0x80, u16(1), str("a"), raw(0)), MalformedPacket, "MQTT-2.2.2-2"},
		{"[MQTT-3.10.1-1] UNSUBSCRIBE with flags 0000", V311, frame(0xA0, u16(1), str("a")), MalformedPacket, "MQTT-2.2.2-2"},
		{"[MQTT-2.2.2-2] PINGREQ with flags 0001", V311, frame(0xC1), MalformedPacket, "MQTT-2.2.2-2"},
		{"[MQTT-2.2.2-2] DISCONNECT with flags 1000", V5, frame(0xE8), MalformedPacket, "MQTT-2.2.2-2"},
		{"reserved packet type 0", V311, frame(0x00), MalformedPacket, ""},
		{"[MQTT-3.3.1-4] PUBLISH with QoS 3", V311, frame(0x36, str("a"), u16(1)), MalformedPacket, "MQTT-3.3.1-4"},
		{"[MQTT-3.3.1-2] PUBLISH QoS 0 with DUP", V311, frame(0x38, str("a")), MalformedPacket, "MQTT-3.3.1-2"},
		{"[MQTT-1.5.5-1] remaining length 0 in two bytes", V311, raw(0xC0, 0x80, 0x00), MalformedPacket, "MQTT-1.5.5-1"},
		{"[MQTT-1.5.5-1] remaining length 1 in three bytes", V311, raw(0xD0, 0x81, 0x80, 0x00), MalformedPacket, "MQTT-1.5.5-1"},
		{"remaining length in five bytes", V311, raw(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), MalformedPacket, ""},
		{"[MQTT-3.1.0-1] first packet is not CONNECT", 0, frame(0xC0), ProtocolError, "MQTT-3.1.0-1"},
		{"[MQTT-3.1.0-1] PUBLISH before CONNECT", 0, frame(0x30, str("a"), raw('x')), ProtocolError, "MQTT-3.1.0-1"},
	})
}

func TestDecodeConnect(t *testing.T) {
	user := 0x80 | 0x02
	runDecodeCases(t, []decodeCase{
		{"3.1 minimal", 0, connect("MQIsdp", 3, 0x02, str("c")), Success, ""},
		{"3.1.1 minimal", 0, connect("MQTT", 4, 0x02, str("c")), Success, ""},
		{"5.0 minimal", 0, connect("MQTT", 5, 0x02, noProps, str("c")), Success, ""},
		{"[MQTT-3.1.2-1] unknown protocol name", 0, connect("MQTX", 4, 0x02, str("c")), ProtocolError, "MQTT-3.1.2-1"},
		{"[MQTT-3.1.2-1] protocol name in lower case", 0, connect("mqtt", 4, 0x02, str("c")), ProtocolError, "MQTT-3.1.2-1"},
		{"[MQTT-3.1.2-2] protocol level 6", 0, connect("MQTT", 6, 0x02, str("c")), UnsupportedProtocolVersion, "MQTT-3.1.2-2"},
		{"[MQTT-3.1.2-2] MQTT with level 3", 0, connect("MQTT", 3, 0x02, str("c")), UnsupportedProtocolVersion, "MQTT-3.1.2-2"},
		{"[MQTT-3.1.2-2] MQIsdp with level 4", 0, connect("MQIsdp", 4, 0x02, str("c")), UnsupportedProtocolVersion, "MQTT-3.1.2-2"},
		{"[MQTT-3.1.2-3] reserved connect flag", 0, connect("MQTT", 4, 0x03, str("c")), MalformedPacket, "MQTT-3.1.2-3"},
		{"[MQTT-3.1.2-3] 5.0 reserved connect flag", 0, connect("MQTT", 5, 0x03, noProps, str("c")), MalformedPacket, "MQTT-3.1.2-3"},
		{"[MQTT-3.1.2-13] 3.1.1 will QoS without will flag", 0, connect("MQTT", 4, 0x0A, str("c")), MalformedPacket, "MQTT-3.1.2-13"},
		{"[MQTT-3.1.2-11] 5.0 will QoS without will flag", 0, connect("MQTT", 5, 0x12, noProps, str("c")), MalformedPacket, "MQTT-3.1.2-11"},
		{"[MQTT-3.1.2-15] 3.1.1 will retain without will flag", 0, connect("MQTT", 4, 0x22, str("c")), MalformedPacket, "MQTT-3.1.2-15"},
		{"[MQTT-3.1.2-13] 5.0 will retain without will flag", 0, connect("MQTT", 5, 0x22, noProps, str("c")), MalformedPacket, "MQTT-3.1.2-13"},
		{"[MQTT-3.1.2-14] 3.1.1 will QoS 3", 0, connect("MQTT", 4, 0x1E, str("c"), str("w"), str("x")), MalformedPacket, "MQTT-3.1.2-14"},
		{"[MQTT-3.1.2-12] 5.0 will QoS 3", 0, connect("MQTT", 5, 0x1E, noProps, str("c"), noProps, str("w"), str("x")), MalformedPacket, "MQTT-3.1.2-12"},
		{"3.1.1 will QoS 2 retained", 0, connect("MQTT", 4, 0x36, str("c"), str("w"), str("x")), Success, ""},
		{"[MQTT-3.1.2-22] 3.1.1 password without user name", 0, connect("MQTT", 4, 0x42, str("c"), str("pw")), MalformedPacket, "MQTT-3.1.2-22"},
		{"[MQTT-3.1.2-22] 3.1 password without user name", 0, connect("MQIsdp", 3, 0x42, str("c"), str("pw")), MalformedPacket, "MQTT-3.1.2-22"},
		{"5.0 password without user name is allowed", 0, connect("MQTT", 5, 0x42, noProps, str("c"), str("pw")), Success, ""},
		{"3.1.1 user name and password", 0, connect("MQTT", 4, byte(user)|0x40, str("c"), str("u"), str("pw")), Success, ""},
		{"user name flag without user name", 0, connect("MQTT", 4, byte(user), str("c")), MalformedPacket, ""},
		{"[MQTT-3.1.3-8] 3.1.1 empty client id with clean session 0", 0, connect("MQTT", 4, 0x00, str("")), ClientIdentifierNotValid, "MQTT-3.1.3-8"},
		{"[MQTT-3.1.3-6] 3.1.1 empty client id with clean session 1", 0, connect("MQTT", 4, 0x02, str("")), Success, ""},
		{"5.0 empty client id with clean start 0 is assigned one", 0, connect("MQTT", 5, 0x00, noProps, str("")), Success, ""},
		{"3.1 empty client id", 0, connect("MQIsdp", 3, 0x02, str("")), ClientIdentifierNotValid, ""},
		{"[MQTT-1.5.4-2] client id with U+0000", 0, connect("MQTT", 4, 0x02, str("a\x00b")), MalformedPacket, "MQTT-1.5.4-2"},
		{"[MQTT-1.5.4-1] client id not UTF-8", 0, connect("MQTT", 4, 0x02, str("a\xffb")), MalformedPacket, "MQTT-1.5.4-1"},
		{"[MQTT-1.5.4-1] client id with an encoded surrogate", 0, connect("MQTT", 4, 0x02, str("a\xed\xa0\x80")), MalformedPacket, "MQTT-1.5.4-1"},
		{"[MQTT-1.5.4-1] overlong UTF-8", 0, connect("MQTT", 4, 0x02, str("\xc0\xaf")), MalformedPacket, "MQTT-1.5.4-1"},
		{"client id with multi-byte UTF-8", 0, connect("MQTT", 4, 0x02, str("capteur-é-温度")), Success, ""},
		{"client id length beyond the packet", 0, connect("MQTT", 4, 0x02, u16(50), raw('a')), MalformedPacket, ""},
		{"protocol name truncated", 0, frame(0x10, raw(0, 4, 'M')), MalformedPacket, ""},
		{"keep alive truncated", 0, frame(0x10, str("MQTT"), raw(4, 2, 0)), MalformedPacket, ""},
		{"trailing bytes", 0, connect("MQTT", 4, 0x02, str("c"), raw(0)), MalformedPacket, ""},
		{"will topic with a wildcard", 0, connect("MQTT", 4, 0x06, str("c"), str("a/#"), str("x")), TopicNameInvalid, "MQTT-3.3.2-2"},
		{"empty will topic", 0, connect("MQTT", 4, 0x06, str("c"), str(""), str("x")), TopicNameInvalid, "MQTT-4.7.3-1"},
		{"will payload missing", 0, connect("MQTT", 4, 0x06, str("c"), str("w")), MalformedPacket, ""},
		{"5.0 will payload not UTF-8 though its format says so", 0,
			connect("MQTT", 5, 0x06, noProps, str("c"), props(prop(PropPayloadFormat, raw(1))), str("w"), str("\xff")), PayloadFormatInvalid, ""},
		{"5.0 will properties", 0,
			connect("MQTT", 5, 0x06, noProps, str("c"), props(prop(PropWillDelay, u32(5)), prop(PropPayloadFormat, raw(1)),
				prop(PropContentType, str("text/plain")), prop(PropUser, str("k"), str("v"))), str("w"), str("hello")), Success, ""},
		{"5.0 will with a CONNECT-only property", 0,
			connect("MQTT", 5, 0x06, noProps, str("c"), props(prop(PropSessionExpiry, u32(5))), str("w"), str("x")), MalformedPacket, ""},
		{"5.0 all CONNECT properties", 0, connect("MQTT", 5, 0x02, props(
			prop(PropSessionExpiry, u32(60)), prop(PropReceiveMaximum, u16(10)), prop(PropMaximumPacketSize, u32(1024)),
			prop(PropTopicAliasMaximum, u16(5)), prop(PropRequestResponseInfo, raw(1)), prop(PropRequestProblemInfo, raw(0)),
			prop(PropUser, str("a"), str("b")), prop(PropUser, str("a"), str("c")),
			prop(PropAuthMethod, str("SCRAM-SHA-256")), prop(PropAuthData, str("n,,n=user"))), str("c")), Success, ""},
		{"5.0 property not allowed in CONNECT", 0, connect("MQTT", 5, 0x02, props(prop(PropTopicAlias, u16(1))), str("c")), MalformedPacket, ""},
		{"5.0 unknown property identifier", 0, connect("MQTT", 5, 0x02, props(raw(0x7f, 0)), str("c")), MalformedPacket, ""},
		{"5.0 property identifier as a two-byte integer", 0, connect("MQTT", 5, 0x02, props(raw(0x91, 0x00, 0, 0, 0, 1)), str("c")), MalformedPacket, ""},
		{"5.0 session expiry twice", 0, connect("MQTT", 5, 0x02, props(prop(PropSessionExpiry, u32(1)), prop(PropSessionExpiry, u32(2))), str("c")), ProtocolError, ""},
		{"5.0 receive maximum 0", 0, connect("MQTT", 5, 0x02, props(prop(PropReceiveMaximum, u16(0))), str("c")), ProtocolError, ""},
		{"5.0 maximum packet size 0", 0, connect("MQTT", 5, 0x02, props(prop(PropMaximumPacketSize, u32(0))), str("c")), ProtocolError, ""},
		{"5.0 request problem information 2", 0, connect("MQTT", 5, 0x02, props(prop(PropRequestProblemInfo, raw(2))), str("c")), ProtocolError, ""},
		{"5.0 request response information 2", 0, connect("MQTT", 5, 0x02, props(prop(PropRequestResponseInfo, raw(2))), str("c")), ProtocolError, ""},
		{"5.0 authentication data without method", 0, connect("MQTT", 5, 0x02, props(prop(PropAuthData, str("x"))), str("c")), ProtocolError, ""},
		{"5.0 property length beyond the packet", 0, connect("MQTT", 5, 0x02, raw(20), str("c")), MalformedPacket, ""},
		{"5.0 property value beyond the property block", 0,
			connect("MQTT", 5, 0x02, raw(3), prop(PropSessionExpiry, u16(0)), str("c")), MalformedPacket, ""},
		{"5.0 user property with U+0000 in the name", 0, connect("MQTT", 5, 0x02, props(prop(PropUser, str("a\x00"), str("b"))), str("c")), MalformedPacket, "MQTT-1.5.4-2"},
	})
}

func TestDecodeConnectKeepsVersionOnError(t *testing.T) {
	var c Connect
	wire := connect("MQTT", 5, 0x02, props(prop(PropReceiveMaximum, u16(0))), str("c"))
	h, body := splitFrame(t, wire)
	if err := c.Decode(h, body, 0); err == nil {
		t.Fatal("receive maximum 0 accepted")
	}
	if c.Version != V5 {
		t.Fatalf("version lost on error: %v", c.Version)
	}
}

// splitFrame reads the fixed header of wire and returns it with the body.
func splitFrame(t *testing.T, wire []byte) (FixedHeader, []byte) {
	t.Helper()
	r := NewReader(bytes.NewReader(wire), 0)
	h, err := r.ReadFixedHeader()
	if err != nil {
		t.Fatal(err)
	}
	body, err := r.ReadBody(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h, body
}

func TestDecodeConnack(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"3.1.1 accepted", V311, frame(0x20, raw(0, 0)), Success, ""},
		{"3.1.1 session present", V311, frame(0x20, raw(1, 0)), Success, ""},
		{"[MQTT-3.2.2-1] reserved acknowledge flags", V311, frame(0x20, raw(2, 0)), MalformedPacket, "MQTT-3.2.2-1"},
		{"3.1.1 return code 6", V311, frame(0x20, raw(0, 6)), MalformedPacket, ""},
		{"[MQTT-3.2.2-4] 3.1.1 session present with a refusal", V311, frame(0x20, raw(1, 5)), ProtocolError, "MQTT-3.2.2-4"},
		{"[MQTT-3.2.2-6] 5.0 session present with a refusal", V5, frame(0x20, raw(1, 0x87), noProps), ProtocolError, "MQTT-3.2.2-6"},
		{"3.1.1 trailing byte", V311, frame(0x20, raw(0, 0, 0)), MalformedPacket, ""},
		{"5.0 reason code not for CONNACK", V5, frame(0x20, raw(0, 0x10), noProps), MalformedPacket, ""},
		{"5.0 all CONNACK properties", V5, frame(0x20, raw(0, 0), props(
			prop(PropSessionExpiry, u32(60)), prop(PropAssignedClientID, str("auto-1")), prop(PropServerKeepAlive, u16(30)),
			prop(PropResponseInfo, str("r")), prop(PropServerReference, str("s")), prop(PropReasonString, str("ok")),
			prop(PropReceiveMaximum, u16(100)), prop(PropTopicAliasMaximum, u16(10)), prop(PropMaximumQoS, raw(1)),
			prop(PropRetainAvailable, raw(1)), prop(PropMaximumPacketSize, u32(1<<20)), prop(PropWildcardSubAvailable, raw(1)),
			prop(PropSubIDAvailable, raw(1)), prop(PropSharedSubAvailable, raw(0)), prop(PropUser, str("k"), str("v")))), Success, ""},
		{"5.0 maximum QoS 2", V5, frame(0x20, raw(0, 0), props(prop(PropMaximumQoS, raw(2)))), ProtocolError, ""},
		{"5.0 property not allowed in CONNACK", V5, frame(0x20, raw(0, 0), props(prop(PropWillDelay, u32(1)))), MalformedPacket, ""},
		{"5.0 missing property length", V5, frame(0x20, raw(0, 0)), MalformedPacket, ""},
	})
}

func TestDecodePublish(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"3.1.1 QoS 0", V311, frame(0x30, str("a/b"), raw('x')), Success, ""},
		{"3.1.1 QoS 2 retained duplicate", V311, frame(0x3D, str("a/b"), u16(7), raw('x')), Success, ""},
		{"3.1.1 empty payload", V311, frame(0x31, str("a/b")), Success, ""},
		{"[MQTT-3.3.2-2] topic name with +", V311, frame(0x30, str("a/+"), raw('x')), TopicNameInvalid, "MQTT-3.3.2-2"},
		{"[MQTT-3.3.2-2] topic name with #", V5, frame(0x30, str("#"), noProps), TopicNameInvalid, "MQTT-3.3.2-2"},
		{"[MQTT-4.7.3-1] 3.1.1 empty topic name", V311, frame(0x30, str("")), TopicNameInvalid, "MQTT-4.7.3-1"},
		{"5.0 empty topic name without topic alias", V5, frame(0x30, str(""), noProps), ProtocolError, ""},
		{"5.0 empty topic name with topic alias", V5, frame(0x30, str(""), props(prop(PropTopicAlias, u16(3)))), Success, ""},
		{"[MQTT-3.3.2-8] 5.0 topic alias 0", V5, frame(0x30, str("a"), props(prop(PropTopicAlias, u16(0)))), TopicAliasInvalid, "MQTT-3.3.2-8"},
		{"[MQTT-4.7.3-2] topic name with U+0000", V311, frame(0x30, str("a\x00"), raw('x')), MalformedPacket, "MQTT-1.5.4-2"},
		{"[MQTT-1.5.4-1] topic name with a surrogate", V5, frame(0x30, str("\xed\xbf\xbf"), noProps), MalformedPacket, "MQTT-1.5.4-1"},
		{"[MQTT-2.2.1-3] QoS 1 with packet identifier 0", V311, frame(0x32, str("a"), u16(0)), ProtocolError, "MQTT-2.2.1-3"},
		{"[MQTT-2.2.1-3] QoS 2 with packet identifier 0", V5, frame(0x34, str("a"), u16(0), noProps), ProtocolError, "MQTT-2.2.1-3"},
		{"QoS 1 without packet identifier", V311, frame(0x32, str("a")), MalformedPacket, ""},
		{"topic length beyond the packet", V311, frame(0x30, u16(9), raw('a')), MalformedPacket, ""},
		{"5.0 payload format 1 and valid UTF-8", V5, frame(0x30, str("a"), props(prop(PropPayloadFormat, raw(1))), []byte("héllo")), Success, ""},
		{"5.0 payload format 1 and invalid UTF-8", V5, frame(0x30, str("a"), props(prop(PropPayloadFormat, raw(1))), raw(0xff, 0xfe)), PayloadFormatInvalid, ""},
		{"5.0 payload format 0 and binary payload", V5, frame(0x30, str("a"), props(prop(PropPayloadFormat, raw(0))), raw(0xff, 0)), Success, ""},
		{"5.0 payload format 2", V5, frame(0x30, str("a"), props(prop(PropPayloadFormat, raw(2)))), ProtocolError, ""},
		{"5.0 subscription identifier 0", V5, frame(0x30, str("a"), props(prop(PropSubscriptionID, raw(0)))), ProtocolError, ""},
		{"5.0 several subscription identifiers", V5, frame(0x30, str("a"), props(prop(PropSubscriptionID, raw(1)), prop(PropSubscriptionID, raw(0xff, 0xff, 0xff, 0x7f)))), Success, ""},
		{"[MQTT-1.5.5-1] 5.0 subscription identifier not minimal", V5, frame(0x30, str("a"), props(prop(PropSubscriptionID, raw(0x81, 0x00)))), MalformedPacket, "MQTT-1.5.5-1"},
		{"5.0 message expiry twice", V5, frame(0x30, str("a"), props(prop(PropMessageExpiry, u32(1)), prop(PropMessageExpiry, u32(1)))), ProtocolError, ""},
		{"5.0 topic alias twice", V5, frame(0x30, str("a"), props(prop(PropTopicAlias, u16(1)), prop(PropTopicAlias, u16(1)))), ProtocolError, ""},
		{"5.0 session expiry in PUBLISH", V5, frame(0x30, str("a"), props(prop(PropSessionExpiry, u32(1)))), MalformedPacket, ""},
		{"5.0 missing property length", V5, frame(0x30, str("a")), MalformedPacket, ""},
		{"5.0 response topic, correlation data, content type, user properties", V5, frame(0x32, str("req"), u16(9), props(
			prop(PropResponseTopic, str("resp/1")), prop(PropCorrelationData, str("\x00\x01")), prop(PropContentType, str("application/json")),
			prop(PropMessageExpiry, u32(30)), prop(PropUser, str("a"), str("1")), prop(PropUser, str("a"), str("2"))), []byte(`{}`)), Success, ""},
	})
}

func TestDecodePublishAliasesBody(t *testing.T) {
	wire := frame(0x32, str("a/b"), u16(1), []byte("payload"))
	h, body := splitFrame(t, wire)
	var p Publish
	if err := p.Decode(h, body, V311); err != nil {
		t.Fatal(err)
	}
	if &p.Payload[0] != &body[len(body)-len("payload")] {
		t.Fatal("payload was copied")
	}
	if cap(p.Payload) != len(p.Payload) {
		t.Fatal("payload capacity reaches beyond the packet: an append could overwrite shared memory")
	}
}

func TestDecodeAcks(t *testing.T) {
	cases := []decodeCase{}
	for _, tf := range []struct {
		first byte
		name  string
		bad   ReasonCode // a reason code that exists but not for this packet
	}{{0x40, "PUBACK", PacketIdentifierNotFound}, {0x50, "PUBREC", PacketIdentifierNotFound}, {0x62, "PUBREL", NoMatchingSubscribers}, {0x70, "PUBCOMP", QuotaExceeded}} {
		n := tf.name
		cases = append(cases,
			decodeCase{"3.1.1 " + n, V311, frame(tf.first, u16(5)), Success, ""},
			decodeCase{"[MQTT-2.2.1-3] 3.1.1 " + n + " packet identifier 0", V311, frame(tf.first, u16(0)), ProtocolError, "MQTT-2.2.1-3"},
			decodeCase{"3.1.1 " + n + " with a reason code", V311, frame(tf.first, u16(5), raw(0)), MalformedPacket, ""},
			decodeCase{"3.1.1 " + n + " truncated", V311, frame(tf.first, raw(5)), MalformedPacket, ""},
			decodeCase{"5.0 " + n + " short form", V5, frame(tf.first, u16(5)), Success, ""},
			decodeCase{"5.0 " + n + " reason code only", V5, frame(tf.first, u16(5), raw(0)), Success, ""},
			decodeCase{"5.0 " + n + " empty properties", V5, frame(tf.first, u16(5), raw(0), noProps), Success, ""},
			decodeCase{"5.0 " + n + " reason string", V5, frame(tf.first, u16(5), raw(0), props(prop(PropReasonString, str("why")), prop(PropUser, str("k"), str("v")))), Success, ""},
			decodeCase{"5.0 " + n + " reason code not for this packet", V5, frame(tf.first, u16(5), raw(byte(tf.bad))), MalformedPacket, ""},
			decodeCase{"5.0 " + n + " property not allowed", V5, frame(tf.first, u16(5), raw(0), props(prop(PropTopicAlias, u16(1)))), MalformedPacket, ""},
			decodeCase{"5.0 " + n + " reason string twice", V5, frame(tf.first, u16(5), raw(0), props(prop(PropReasonString, str("a")), prop(PropReasonString, str("b")))), ProtocolError, ""},
			decodeCase{"5.0 " + n + " trailing bytes", V5, frame(tf.first, u16(5), raw(0), noProps, raw(0)), MalformedPacket, ""},
		)
	}
	runDecodeCases(t, cases)
}

func TestDecodeSubscribe(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"3.1.1 two filters", V311, frame(0x82, u16(1), str("a/+"), raw(1), str("b/#"), raw(2)), Success, ""},
		{"3.1 filter", V31, frame(0x82, u16(1), str("a"), raw(0)), Success, ""},
		{"[MQTT-3.8.3-3] 3.1.1 no filters", V311, frame(0x82, u16(1)), ProtocolError, "MQTT-3.8.3-3"},
		{"[MQTT-3.8.3-2] 5.0 no filters", V5, frame(0x82, u16(1), noProps), ProtocolError, "MQTT-3.8.3-2"},
		{"[MQTT-2.2.1-3] packet identifier 0", V311, frame(0x82, u16(0), str("a"), raw(0)), ProtocolError, "MQTT-2.2.1-3"},
		{"[MQTT-3.8.3-4] 3.1.1 reserved bits in requested QoS", V311, frame(0x82, u16(1), str("a"), raw(0x04)), MalformedPacket, "MQTT-3.8.3-4"},
		{"[MQTT-3.8.3-4] 3.1.1 requested QoS 3", V311, frame(0x82, u16(1), str("a"), raw(3)), MalformedPacket, "MQTT-3.8.3-4"},
		{"[MQTT-3.8.3-5] 5.0 requested QoS 3", V5, frame(0x82, u16(1), noProps, str("a"), raw(3)), MalformedPacket, "MQTT-3.8.3-5"},
		{"[MQTT-3.8.3-5] 5.0 reserved option bits", V5, frame(0x82, u16(1), noProps, str("a"), raw(0x40)), MalformedPacket, "MQTT-3.8.3-5"},
		{"5.0 retain handling 3", V5, frame(0x82, u16(1), noProps, str("a"), raw(0x30)), ProtocolError, ""},
		{"5.0 all options", V5, frame(0x82, u16(1), noProps, str("a"), raw(0x2e)), Success, ""},
		{"[MQTT-3.8.3-4] 5.0 no local on a shared subscription", V5, frame(0x82, u16(1), noProps, str("$share/g/a"), raw(0x04)), ProtocolError, "MQTT-3.8.3-4"},
		{"5.0 shared subscription", V5, frame(0x82, u16(1), noProps, str("$share/g/a"), raw(0x01)), Success, ""},
		{"5.0 subscription identifier", V5, frame(0x82, u16(1), props(prop(PropSubscriptionID, raw(0x80, 0x01))), str("a"), raw(0)), Success, ""},
		{"5.0 two subscription identifiers", V5, frame(0x82, u16(1), props(prop(PropSubscriptionID, raw(1)), prop(PropSubscriptionID, raw(2))), str("a"), raw(0)), ProtocolError, ""},
		{"5.0 subscription identifier 0", V5, frame(0x82, u16(1), props(prop(PropSubscriptionID, raw(0))), str("a"), raw(0)), ProtocolError, ""},
		{"5.0 reason string in SUBSCRIBE", V5, frame(0x82, u16(1), props(prop(PropReasonString, str("x"))), str("a"), raw(0)), MalformedPacket, ""},
		{"[MQTT-4.7.3-1] empty filter", V311, frame(0x82, u16(1), str(""), raw(0)), MalformedPacket, "MQTT-4.7.3-1"},
		{"filter without options byte", V311, frame(0x82, u16(1), str("a")), MalformedPacket, ""},
		{"[MQTT-1.5.4-2] filter with U+0000", V311, frame(0x82, u16(1), str("a\x00"), raw(0)), MalformedPacket, "MQTT-1.5.4-2"},
		{"3.1.1 SUBACK", V311, frame(0x90, u16(1), raw(0, 1, 2, 0x80)), Success, ""},
		{"3.1.1 SUBACK return code 3", V311, frame(0x90, u16(1), raw(3)), MalformedPacket, ""},
		{"3.1.1 SUBACK without return codes", V311, frame(0x90, u16(1)), ProtocolError, ""},
		{"5.0 SUBACK", V5, frame(0x90, u16(1), props(prop(PropReasonString, str("r"))), raw(0, 1, 2, 0x87, 0x8F, 0x9E, 0xA1, 0xA2)), Success, ""},
		{"5.0 SUBACK reason code not for SUBACK", V5, frame(0x90, u16(1), noProps, raw(0x10)), MalformedPacket, ""},
	})
}

func TestDecodeUnsubscribe(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"3.1.1 two filters", V311, frame(0xA2, u16(1), str("a"), str("b/#")), Success, ""},
		{"[MQTT-3.10.3-2] 3.1.1 no filters", V311, frame(0xA2, u16(1)), ProtocolError, "MQTT-3.10.3-2"},
		{"[MQTT-3.10.3-2] 5.0 no filters", V5, frame(0xA2, u16(1), noProps), ProtocolError, "MQTT-3.10.3-2"},
		{"[MQTT-2.2.1-3] packet identifier 0", V5, frame(0xA2, u16(0), noProps, str("a")), ProtocolError, "MQTT-2.2.1-3"},
		{"5.0 user property", V5, frame(0xA2, u16(1), props(prop(PropUser, str("k"), str("v"))), str("a")), Success, ""},
		{"5.0 subscription identifier in UNSUBSCRIBE", V5, frame(0xA2, u16(1), props(prop(PropSubscriptionID, raw(1))), str("a")), MalformedPacket, ""},
		{"filter length beyond the packet", V311, frame(0xA2, u16(1), u16(4), raw('a')), MalformedPacket, ""},
		{"3.1.1 UNSUBACK", V311, frame(0xB0, u16(1)), Success, ""},
		{"3.1.1 UNSUBACK with a reason code", V311, frame(0xB0, u16(1), raw(0)), MalformedPacket, ""},
		{"5.0 UNSUBACK", V5, frame(0xB0, u16(1), noProps, raw(0, 0x11, 0x87)), Success, ""},
		{"5.0 UNSUBACK without reason codes", V5, frame(0xB0, u16(1), noProps), ProtocolError, ""},
		{"5.0 UNSUBACK reason code not for UNSUBACK", V5, frame(0xB0, u16(1), noProps, raw(0x01)), MalformedPacket, ""},
	})
}

func TestDecodeControl(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"PINGREQ", V311, frame(0xC0), Success, ""},
		{"PINGRESP", V5, frame(0xD0), Success, ""},
		{"PINGREQ with a body", V311, frame(0xC0, raw(0)), MalformedPacket, ""},
		{"3.1.1 DISCONNECT", V311, frame(0xE0), Success, ""},
		{"3.1.1 DISCONNECT with a body", V311, frame(0xE0, raw(0)), MalformedPacket, ""},
		{"5.0 DISCONNECT short", V5, frame(0xE0), Success, ""},
		{"5.0 DISCONNECT with will", V5, frame(0xE0, raw(0x04)), Success, ""},
		{"5.0 DISCONNECT with properties", V5, frame(0xE0, raw(0x00), props(prop(PropSessionExpiry, u32(0)), prop(PropReasonString, str("bye")))), Success, ""},
		{"5.0 DISCONNECT reason code not for DISCONNECT", V5, frame(0xE0, raw(0x01)), MalformedPacket, ""},
		{"5.0 DISCONNECT property not allowed", V5, frame(0xE0, raw(0x00), props(prop(PropReceiveMaximum, u16(1)))), MalformedPacket, ""},
		{"5.0 AUTH", V5, frame(0xF0, raw(0x18), props(prop(PropAuthMethod, str("SCRAM-SHA-256")), prop(PropAuthData, str("c=biws")))), Success, ""},
		{"5.0 AUTH short", V5, frame(0xF0), Success, ""},
		{"5.0 AUTH reason code not for AUTH", V5, frame(0xF0, raw(0x87)), MalformedPacket, ""},
		{"5.0 AUTH data without method", V5, frame(0xF0, raw(0x18), props(prop(PropAuthData, str("x")))), ProtocolError, ""},
		{"3.1.1 AUTH is a reserved type", V311, frame(0xF0), MalformedPacket, ""},
		{"3.1 AUTH is a reserved type", V31, frame(0xF0, raw(0x18), noProps), MalformedPacket, ""},
	})
}

// countingReader counts the bytes taken from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReaderRefusesLargePacketBeforeBody(t *testing.T) {
	// A PUBLISH that declares 200 MB; only the header is behind it.
	header := appendVarint([]byte{0x30}, 200<<20)
	for _, limit := range []int{64, 1 << 20, MaxPacketSize} {
		src := &countingReader{r: bytes.NewReader(header)}
		r := NewReader(src, limit)
		_, err := r.ReadPacket(V311)
		if limit == MaxPacketSize {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("limit %d: want unexpected EOF, got %v", limit, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("limit %d: want ErrTooLarge, got %v", limit, err)
		}
		if src.n > len(header) {
			t.Fatalf("limit %d: read %d bytes, more than the header", limit, src.n)
		}
	}
}

func TestReaderLimitIsInclusive(t *testing.T) {
	pkt := frame(0x30, str("a/b"), bytes.Repeat([]byte{'x'}, 100))
	for _, tc := range []struct {
		limit int
		ok    bool
	}{{len(pkt), true}, {len(pkt) - 1, false}, {0, true}} {
		_, err := NewReader(bytes.NewReader(pkt), tc.limit).ReadPacket(V311)
		if tc.ok && err != nil {
			t.Errorf("limit %d: %v", tc.limit, err)
		}
		if !tc.ok && !errors.Is(err, ErrTooLarge) {
			t.Errorf("limit %d: want ErrTooLarge, got %v", tc.limit, err)
		}
	}
}

func TestReaderFirstPacketLimitThenRaise(t *testing.T) {
	conn := connect("MQTT", 4, 0x02, str("dev-1"))
	big := frame(0x30, str("t"), bytes.Repeat([]byte{'x'}, 4000))
	r := NewReader(bytes.NewReader(append(conn, big...)), 256)
	if _, err := r.ReadPacket(0); err != nil {
		t.Fatal(err)
	}
	r.SetMaxPacketSize(8192)
	if _, err := r.ReadPacket(V311); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
}

func TestReaderTruncated(t *testing.T) {
	full := frame(0x30, str("a"), []byte("payload"))
	for i := 1; i < len(full); i++ {
		_, err := NewReader(bytes.NewReader(full[:i]), 0).ReadPacket(V311)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: want unexpected EOF, got %v", i, err)
		}
	}
	if _, err := NewReader(bytes.NewReader(nil), 0).ReadPacket(V311); err != io.EOF {
		t.Fatalf("empty stream: want io.EOF, got %v", err)
	}
}

func TestErrorText(t *testing.T) {
	wire := connect("MQTT", 4, 0x03, str("c"))
	_, err := NewReader(bytes.NewReader(wire), 0).ReadPacket(0)
	if err == nil || !strings.Contains(err.Error(), "MQTT-3.1.2-3") || !strings.Contains(err.Error(), "malformed packet") {
		t.Fatalf("error text lacks code or rule: %v", err)
	}
	if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrProtocol) {
		t.Fatal("sentinel matching is wrong")
	}
	if CodeOf(io.EOF) != UnspecifiedError {
		t.Fatal("CodeOf of a non-protocol error")
	}
}
