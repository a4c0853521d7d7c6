package packet

import "fmt"

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // MQTT 5: user properties
	Filters    []string
}

// Type implements Packet.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Decode implements Packet.
func (u *Unsubscribe) Decode(h FixedHeader, body []byte, v Version) error {
	*u = Unsubscribe{}
	if h.Type != UNSUBSCRIBE {
		return malformed("", "not an UNSUBSCRIBE")
	}
	d := decoder{b: body}
	var err error
	if u.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if err := checkPacketID(UNSUBSCRIBE, u.PacketID); err != nil {
		return err
	}
	if v == V5 {
		if err := d.properties(&u.Properties, propsUnsubscribe, "UNSUBSCRIBE"); err != nil {
			return err
		}
	}
	if d.remaining() == 0 {
		return protocolErr(rule(v, "MQTT-3.10.3-2", "MQTT-3.10.3-2"), "UNSUBSCRIBE without topic filters")
	}
	for d.remaining() > 0 {
		f, err := d.str("topic filter")
		if err != nil {
			return err
		}
		if f == "" {
			return malformed("MQTT-4.7.3-1", "empty topic filter")
		}
		u.Filters = append(u.Filters, f)
	}
	return nil
}

// AppendTo implements Packet.
func (u *Unsubscribe) AppendTo(dst []byte, v Version) ([]byte, error) {
	if u.PacketID == 0 {
		return dst, protocolErr("MQTT-2.2.1-3", "UNSUBSCRIBE with packet identifier 0")
	}
	if len(u.Filters) == 0 {
		return dst, protocolErr("", "UNSUBSCRIBE without topic filters")
	}
	n := 2
	pl := 0
	if v == V5 {
		var err error
		if pl, err = u.Properties.size(propsUnsubscribe, "UNSUBSCRIBE"); err != nil {
			return dst, err
		}
		n += varintLen(pl) + pl
	} else if !u.Properties.Empty() {
		return dst, fmt.Errorf("mqtt: UNSUBSCRIBE properties need MQTT 5")
	}
	for _, f := range u.Filters {
		if err := fieldTooLong("topic filter", len(f)); err != nil {
			return dst, err
		}
		n += 2 + len(f)
	}
	if err := checkRemaining(UNSUBSCRIBE, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, UNSUBSCRIBE, requiredFlags(UNSUBSCRIBE), n)
	dst = appendUint16(dst, u.PacketID)
	if v == V5 {
		dst = u.Properties.appendTo(dst, pl)
	}
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst, nil
}

// Unsuback is the UNSUBACK packet. MQTT 3.1.1 has no reason codes.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Type implements Packet.
func (*Unsuback) Type() Type { return UNSUBACK }

// Decode implements Packet.
func (u *Unsuback) Decode(h FixedHeader, body []byte, v Version) error {
	*u = Unsuback{}
	return decodeAckList(UNSUBACK, h, body, v, &u.PacketID, &u.Properties, &u.ReasonCodes)
}

// AppendTo implements Packet.
func (u *Unsuback) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendAckList(dst, UNSUBACK, v, u.PacketID, &u.Properties, u.ReasonCodes)
}
