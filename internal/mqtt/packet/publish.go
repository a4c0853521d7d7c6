package packet

import (
	"fmt"
	"unicode/utf8"
)

// Publish is the PUBLISH packet. After Decode, Topic, Payload and the string and binary
// properties alias the body: keep the body unmodified while the packet is in use.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string // empty in MQTT 5 when a topic alias stands for it
	PacketID   uint16 // QoS 1 and 2 only
	Properties Properties
	Payload    []byte
}

// Type implements Packet.
func (*Publish) Type() Type { return PUBLISH }

// Decode implements Packet. It allocates nothing unless the packet carries user properties
// or subscription identifiers.
func (p *Publish) Decode(h FixedHeader, body []byte, v Version) error {
	*p = Publish{Dup: h.Dup(), QoS: h.QoS(), Retain: h.Retain()}
	if h.Type != PUBLISH {
		return malformed("", "not a PUBLISH")
	}
	if p.QoS == 3 {
		return malformed("MQTT-3.3.1-4", "PUBLISH with QoS 3")
	}
	d := decoder{b: body, alias: true}
	var err error
	if p.Topic, err = d.str("topic name"); err != nil {
		return err
	}
	for i := 0; i < len(p.Topic); i++ {
		if c := p.Topic[i]; c == '+' || c == '#' {
			return &Error{Code: TopicNameInvalid, Rule: "MQTT-3.3.2-2", Detail: "topic name contains a wildcard"}
		}
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.uint16("packet identifier"); err != nil {
			return err
		}
		if err := checkPacketID(PUBLISH, p.PacketID); err != nil {
			return err
		}
	}
	if v == V5 {
		if err := d.properties(&p.Properties, propsPublish, "PUBLISH"); err != nil {
			return err
		}
	}
	if p.Topic == "" && !p.Properties.Has(PropTopicAlias) {
		if v == V5 {
			return protocolErr("", "empty topic name without a topic alias")
		}
		return &Error{Code: TopicNameInvalid, Rule: "MQTT-4.7.3-1", Detail: "empty topic name"}
	}
	p.Payload = body[d.i:len(body):len(body)]
	if p.Properties.present&PropPayloadFormat.bit() != 0 && p.Properties.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		return &Error{Code: PayloadFormatInvalid, Detail: "payload is not UTF-8 but its payload format indicator says it is"}
	}
	return nil
}

// flags returns the low nibble of the fixed header.
func (p *Publish) flags() byte {
	f := p.QoS << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// Size returns the encoded size of the whole packet for version v.
func (p *Publish) Size(v Version) (int, error) {
	n, _, err := p.bodyLen(v)
	if err != nil {
		return 0, err
	}
	return 1 + varintLen(n) + n, nil
}

func (p *Publish) bodyLen(v Version) (n, propLen int, err error) {
	if p.QoS > 2 {
		return 0, 0, malformed("MQTT-3.3.1-4", "PUBLISH with QoS 3")
	}
	if p.QoS == 0 && p.Dup {
		return 0, 0, malformed("MQTT-3.3.1-2", "PUBLISH with QoS 0 has DUP set")
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return 0, 0, protocolErr("MQTT-2.2.1-3", "PUBLISH with packet identifier 0")
	}
	if err := fieldTooLong("topic name", len(p.Topic)); err != nil {
		return 0, 0, err
	}
	n = 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == V5 {
		if propLen, err = p.Properties.size(propsPublish, "PUBLISH"); err != nil {
			return 0, 0, err
		}
		n += varintLen(propLen) + propLen
	} else if !p.Properties.Empty() {
		return 0, 0, fmt.Errorf("mqtt: PUBLISH properties need MQTT 5")
	}
	if err := checkRemaining(PUBLISH, n); err != nil {
		return 0, 0, err
	}
	return n, propLen, nil
}

// AppendTo implements Packet.
func (p *Publish) AppendTo(dst []byte, v Version) ([]byte, error) {
	n, pl, err := p.bodyLen(v)
	if err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, PUBLISH, p.flags(), n)
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.appendTo(dst, pl)
	}
	return append(dst, p.Payload...), nil
}

// PacketIDOffset returns where the packet identifier starts in p's encoding for version v,
// so that a packet encoded once can be copied and given each receiver's identifier. It
// returns -1 for QoS 0.
func (p *Publish) PacketIDOffset(v Version) int {
	if p.QoS == 0 {
		return -1
	}
	n, _, err := p.bodyLen(v)
	if err != nil {
		return -1
	}
	return 1 + varintLen(n) + 2 + len(p.Topic)
}
