package packet

import (
	"fmt"
	"strings"
)

// Subscription is one topic filter of a SUBSCRIBE with its options. NoLocal,
// RetainAsPublished and RetainHandling exist only in MQTT 5.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained, 1 only for a new subscription, 2 never
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // MQTT 5: at most one subscription identifier, user properties
	Subscriptions []Subscription
}

// Type implements Packet.
func (*Subscribe) Type() Type { return SUBSCRIBE }

const sharedPrefix = "$share/"

// Decode implements Packet. Topic filter syntax (wildcard placement, shared subscription
// form) is left to the broker, which answers a bad filter per filter in SUBACK.
func (s *Subscribe) Decode(h FixedHeader, body []byte, v Version) error {
	*s = Subscribe{}
	if h.Type != SUBSCRIBE {
		return malformed("", "not a SUBSCRIBE")
	}
	d := decoder{b: body}
	var err error
	if s.PacketID, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if err := checkPacketID(SUBSCRIBE, s.PacketID); err != nil {
		return err
	}
	if v == V5 {
		if err := d.properties(&s.Properties, propsSubscribe, "SUBSCRIBE"); err != nil {
			return err
		}
	}
	if d.remaining() == 0 {
		return protocolErr(rule(v, "MQTT-3.8.3-3", "MQTT-3.8.3-2"), "SUBSCRIBE without topic filters")
	}
	for d.remaining() > 0 {
		var sub Subscription
		if sub.Filter, err = d.str("topic filter"); err != nil {
			return err
		}
		if sub.Filter == "" {
			return malformed("MQTT-4.7.3-1", "empty topic filter")
		}
		opts, err := d.byte1("subscription options")
		if err != nil {
			return err
		}
		sub.QoS = opts & 0x03
		if sub.QoS == 3 {
			return malformed(rule(v, "MQTT-3.8.3-4", "MQTT-3.8.3-5"), "requested QoS 3")
		}
		if v == V5 {
			if opts&0xc0 != 0 {
				return malformed("MQTT-3.8.3-5", "reserved subscription option bits set")
			}
			sub.NoLocal = opts&0x04 != 0
			sub.RetainAsPublished = opts&0x08 != 0
			sub.RetainHandling = (opts >> 4) & 0x03
			if sub.RetainHandling == 3 {
				return protocolErr("", "retain handling 3")
			}
			if sub.NoLocal && strings.HasPrefix(sub.Filter, sharedPrefix) {
				return protocolErr("MQTT-3.8.3-4", "no local on a shared subscription")
			}
		} else if opts&0xfc != 0 {
			return malformed("MQTT-3.8.3-4", "reserved bits of the requested QoS byte set")
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	return nil
}

// AppendTo implements Packet.
func (s *Subscribe) AppendTo(dst []byte, v Version) ([]byte, error) {
	if s.PacketID == 0 {
		return dst, protocolErr("MQTT-2.2.1-3", "SUBSCRIBE with packet identifier 0")
	}
	if len(s.Subscriptions) == 0 {
		return dst, protocolErr("", "SUBSCRIBE without topic filters")
	}
	n := 2
	pl := 0
	var err error
	if v == V5 {
		if len(s.Properties.SubscriptionIDs) > 1 {
			return dst, protocolErr("", "SUBSCRIBE with more than one subscription identifier")
		}
		if pl, err = s.Properties.size(propsSubscribe, "SUBSCRIBE"); err != nil {
			return dst, err
		}
		n += varintLen(pl) + pl
	} else if !s.Properties.Empty() {
		return dst, fmt.Errorf("mqtt: SUBSCRIBE properties need MQTT 5")
	}
	for _, sub := range s.Subscriptions {
		if err := fieldTooLong("topic filter", len(sub.Filter)); err != nil {
			return dst, err
		}
		if sub.QoS > 2 || sub.RetainHandling > 2 {
			return dst, malformed("", "subscription QoS or retain handling out of range")
		}
		if v != V5 && (sub.NoLocal || sub.RetainAsPublished || sub.RetainHandling != 0) {
			return dst, fmt.Errorf("mqtt: subscription options need MQTT 5")
		}
		n += 3 + len(sub.Filter)
	}
	if err := checkRemaining(SUBSCRIBE, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, SUBSCRIBE, requiredFlags(SUBSCRIBE), n)
	dst = appendUint16(dst, s.PacketID)
	if v == V5 {
		dst = s.Properties.appendTo(dst, pl)
	}
	for _, sub := range s.Subscriptions {
		dst = appendString(dst, sub.Filter)
		opts := sub.QoS | sub.RetainHandling<<4
		if sub.NoLocal {
			opts |= 0x04
		}
		if sub.RetainAsPublished {
			opts |= 0x08
		}
		dst = append(dst, opts)
	}
	return dst, nil
}

// Suback is the SUBACK packet: one reason code per requested filter, in order.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Type implements Packet.
func (*Suback) Type() Type { return SUBACK }

// Decode implements Packet.
func (s *Suback) Decode(h FixedHeader, body []byte, v Version) error {
	*s = Suback{}
	return decodeAckList(SUBACK, h, body, v, &s.PacketID, &s.Properties, &s.ReasonCodes)
}

// AppendTo implements Packet.
func (s *Suback) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendAckList(dst, SUBACK, v, s.PacketID, &s.Properties, s.ReasonCodes)
}

// validV3 reports whether code is a return code of an MQTT 3.1.1 packet of type t.
func validV3(t Type, code ReasonCode) bool {
	if t == SUBACK {
		return code <= GrantedQoS2 || code == SubackFailure
	}
	return false
}

// decodeAckList decodes SUBACK and UNSUBACK: packet identifier, MQTT 5 properties, and a
// list of reason codes (none in a 3.1.1 UNSUBACK).
func decodeAckList(t Type, h FixedHeader, body []byte, v Version, id *uint16, props *Properties, codes *[]ReasonCode) error {
	if h.Type != t {
		return malformed("", "not a "+t.String())
	}
	d := decoder{b: body}
	var err error
	if *id, err = d.uint16("packet identifier"); err != nil {
		return err
	}
	if err := checkPacketID(t, *id); err != nil {
		return err
	}
	if v == V5 {
		if err := d.properties(props, propsAck, t.String()); err != nil {
			return err
		}
	} else if t == UNSUBACK {
		return d.end(t.String())
	}
	if d.remaining() == 0 {
		return protocolErr("", t.String()+" without reason codes")
	}
	list := make([]ReasonCode, 0, d.remaining())
	for _, c := range d.b[d.i:] {
		rc := ReasonCode(c)
		if (v == V5 && !rc.ValidFor(t)) || (v != V5 && !validV3(t, rc)) {
			return malformed("", fmt.Sprintf("%v reason code 0x%02X", t, c))
		}
		list = append(list, rc)
	}
	*codes = list
	return nil
}

func appendAckList(dst []byte, t Type, v Version, id uint16, props *Properties, codes []ReasonCode) ([]byte, error) {
	if id == 0 {
		return dst, protocolErr("MQTT-2.2.1-3", t.String()+" with packet identifier 0")
	}
	n := 2
	pl := 0
	if v == V5 {
		var err error
		if pl, err = props.size(propsAck, t.String()); err != nil {
			return dst, err
		}
		n += varintLen(pl) + pl
	} else if !props.Empty() {
		return dst, fmt.Errorf("mqtt: %v properties need MQTT 5", t)
	}
	if v != V5 && t == UNSUBACK {
		if len(codes) > 0 {
			return dst, fmt.Errorf("mqtt: UNSUBACK reason codes need MQTT 5")
		}
		return append(dst, byte(UNSUBACK)<<4, 2, byte(id>>8), byte(id)), nil
	}
	if len(codes) == 0 {
		return dst, protocolErr("", t.String()+" without reason codes")
	}
	for _, rc := range codes {
		if (v == V5 && !rc.ValidFor(t)) || (v != V5 && !validV3(t, rc)) {
			return dst, fmt.Errorf("mqtt: %v cannot carry reason code 0x%02X in %v", t, byte(rc), v)
		}
	}
	n += len(codes)
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, 0, n)
	dst = appendUint16(dst, id)
	if v == V5 {
		dst = props.appendTo(dst, pl)
	}
	for _, rc := range codes {
		dst = append(dst, byte(rc))
	}
	return dst, nil
}
