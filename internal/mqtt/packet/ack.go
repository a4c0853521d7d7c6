package packet

import "fmt"

// ack is the shape shared by PUBACK, PUBREC, PUBREL and PUBCOMP.
type ack struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5 only; Success otherwise
	Properties Properties // MQTT 5 only
}

// Puback acknowledges a QoS 1 PUBLISH.
type Puback ack

// Pubrec is the first acknowledgement of a QoS 2 PUBLISH.
type Pubrec ack

// Pubrel releases a QoS 2 PUBLISH.
type Pubrel ack

// Pubcomp completes a QoS 2 exchange.
type Pubcomp ack

// Type implements Packet.
func (*Puback) Type() Type { return PUBACK }

// Type implements Packet.
func (*Pubrec) Type() Type { return PUBREC }

// Type implements Packet.
func (*Pubrel) Type() Type { return PUBREL }

// Type implements Packet.
func (*Pubcomp) Type() Type { return PUBCOMP }

// Decode implements Packet.
func (a *Puback) Decode(h FixedHeader, b []byte, v Version) error {
	return (*ack)(a).decode(PUBACK, h, b, v)
}

// Decode implements Packet.
func (a *Pubrec) Decode(h FixedHeader, b []byte, v Version) error {
	return (*ack)(a).decode(PUBREC, h, b, v)
}

// Decode implements Packet.
func (a *Pubrel) Decode(h FixedHeader, b []byte, v Version) error {
	return (*ack)(a).decode(PUBREL, h, b, v)
}

// Decode implements Packet.
func (a *Pubcomp) Decode(h FixedHeader, b []byte, v Version) error {
	return (*ack)(a).decode(PUBCOMP, h, b, v)
}

// AppendTo implements Packet.
func (a *Puback) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(a).appendTo(dst, PUBACK, v)
}

// AppendTo implements Packet.
func (a *Pubrec) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(a).appendTo(dst, PUBREC, v)
}

// AppendTo implements Packet.
func (a *Pubrel) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(a).appendTo(dst, PUBREL, v)
}

// AppendTo implements Packet.
func (a *Pubcomp) AppendTo(dst []byte, v Version) ([]byte, error) {
	return (*ack)(a).appendTo(dst, PUBCOMP, v)
}

func (a *ack) decode(t Type, h FixedHeader, body []byte, v Version) error {
	*a = ack{}
	if h.Type != t {
		return malformed("", "not a "+t.String())
	}
	d := decoder{b: body}
	var err error
	if a.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if err := checkPacketID(t, a.PacketID); err != nil {
		return err
	}
	if v != V5 || d.remaining() == 0 {
		return d.end(t.String())
	}
	rc, _ := d.byte1("reason code")
	a.ReasonCode = ReasonCode(rc)
	if !a.ReasonCode.ValidFor(t) {
		return malformed("", fmt.Sprintf("%v reason code 0x%02X", t, rc))
	}
	if d.remaining() == 0 {
		return nil
	}
	if err := d.properties(&a.Properties, propsAck, t.String()); err != nil {
		return err
	}
	return d.end(t.String())
}

// appendTo writes the shortest form the protocol allows: no reason code when it is
// Success and there are no properties, no property length when there are none.
func (a *ack) appendTo(dst []byte, t Type, v Version) ([]byte, error) {
	if a.PacketID == 0 {
		return dst, protocolErr("MQTT-2.2.1-3", t.String()+" with packet identifier 0")
	}
	flags := requiredFlags(t)
	if v != V5 {
		if a.ReasonCode != Success || !a.Properties.Empty() {
			return dst, fmt.Errorf("mqtt: %v reason codes and properties need MQTT 5", t)
		}
		return append(dst, byte(t)<<4|flags, 2, byte(a.PacketID>>8), byte(a.PacketID)), nil
	}
	if !a.ReasonCode.ValidFor(t) {
		return dst, fmt.Errorf("mqtt: %v cannot carry reason code 0x%02X", t, byte(a.ReasonCode))
	}
	if a.Properties.Empty() {
		if a.ReasonCode == Success {
			return append(dst, byte(t)<<4|flags, 2, byte(a.PacketID>>8), byte(a.PacketID)), nil
		}
		return append(dst, byte(t)<<4|flags, 3, byte(a.PacketID>>8), byte(a.PacketID), byte(a.ReasonCode)), nil
	}
	pl, err := a.Properties.size(propsAck, t.String())
	if err != nil {
		return dst, err
	}
	n := 3 + varintLen(pl) + pl
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, flags, n)
	dst = append(dst, byte(a.PacketID>>8), byte(a.PacketID), byte(a.ReasonCode))
	return a.Properties.appendTo(dst, pl), nil
}
