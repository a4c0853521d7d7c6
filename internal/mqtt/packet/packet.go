package packet

import (
	"fmt"
	"io"
)

// Packet is any MQTT control packet.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// AppendTo appends the packet encoded for protocol version v to dst. It fails when the
	// packet cannot be expressed in v (an AUTH packet for 3.1.1, a field too long).
	AppendTo(dst []byte, v Version) ([]byte, error)
	// Decode replaces the packet with the one in body, whose fixed header is h.
	Decode(h FixedHeader, body []byte, v Version) error
}

// New returns an empty packet of type t, or nil for a reserved type.
func New(t Type) Packet {
	switch t {
	case CONNECT:
		return new(Connect)
	case CONNACK:
		return new(Connack)
	case PUBLISH:
		return new(Publish)
	case PUBACK:
		return new(Puback)
	case PUBREC:
		return new(Pubrec)
	case PUBREL:
		return new(Pubrel)
	case PUBCOMP:
		return new(Pubcomp)
	case SUBSCRIBE:
		return new(Subscribe)
	case SUBACK:
		return new(Suback)
	case UNSUBSCRIBE:
		return new(Unsubscribe)
	case UNSUBACK:
		return new(Unsuback)
	case PINGREQ:
		return new(Pingreq)
	case PINGRESP:
		return new(Pingresp)
	case DISCONNECT:
		return new(Disconnect)
	case AUTH:
		return new(Auth)
	}
	return nil
}

// Decode decodes the body of a packet whose fixed header is h, for protocol version v. With
// v == 0 (nothing negotiated yet) only CONNECT is accepted [MQTT-3.1.0-1].
func Decode(h FixedHeader, body []byte, v Version) (Packet, error) {
	if err := h.checkFlags(); err != nil {
		return nil, err
	}
	if len(body) != h.Remaining {
		return nil, malformed("", "body length differs from the remaining length")
	}
	if v == 0 && h.Type != CONNECT {
		return nil, protocolErr("MQTT-3.1.0-1", fmt.Sprintf("first packet is %v, not CONNECT", h.Type))
	}
	if v != 0 && !v.Valid() {
		return nil, &Error{Code: UnsupportedProtocolVersion, Detail: fmt.Sprintf("protocol level %d", v)}
	}
	p := New(h.Type)
	if p == nil {
		return nil, malformed("", fmt.Sprintf("reserved packet type %d", h.Type))
	}
	if err := p.Decode(h, body, v); err != nil {
		return p, err
	}
	return p, nil
}

// Encode returns p encoded for protocol version v in a new slice.
func Encode(p Packet, v Version) ([]byte, error) {
	return p.AppendTo(nil, v)
}

// Write encodes p for version v and writes it to w in one call.
func Write(w io.Writer, p Packet, v Version) error {
	b, err := p.AppendTo(nil, v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// checkRemaining fails when a body does not fit the protocol's remaining length.
func checkRemaining(t Type, n int) error {
	if n > MaxRemainingLength {
		return &Error{Code: PacketTooLarge, Detail: fmt.Sprintf("%v body of %d bytes exceeds the protocol maximum", t, n)}
	}
	return nil
}

// checkPacketID enforces non-zero packet identifiers [MQTT-2.2.1-3] (MQTT-2.3.1-1 in 3.1.1).
func checkPacketID(t Type, id uint16) error {
	if id == 0 {
		return protocolErr("MQTT-2.2.1-3", t.String()+" with packet identifier 0")
	}
	return nil
}
