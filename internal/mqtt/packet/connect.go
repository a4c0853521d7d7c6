package packet

import (
	"fmt"
	"unicode/utf8"
)

// Connect is the CONNECT packet.
type Connect struct {
	ProtocolName string  // "MQTT", or "MQIsdp" for 3.1; set from Version when empty on encode
	Version      Version // protocol level: 3, 4 or 5
	CleanStart   bool    // Clean Session in 3.1 and 3.1.1
	KeepAlive    uint16  // seconds
	ClientID     string
	Will         *Will // nil when the will flag is clear
	HasUsername  bool
	Username     string
	HasPassword  bool
	Password     []byte
	Properties   Properties
}

// Will is the will message of a CONNECT.
type Will struct {
	QoS        byte
	Retain     bool
	Topic      string
	Payload    []byte
	Properties Properties // MQTT 5 will properties
}

// Type implements Packet.
func (*Connect) Type() Type { return CONNECT }

const (
	connFlagReserved = 0x01
	connFlagClean    = 0x02
	connFlagWill     = 0x04
	connFlagWillQoS  = 0x18
	connFlagRetain   = 0x20
	connFlagPassword = 0x40
	connFlagUsername = 0x80
)

// rule picks the normative statement's number for the version: several CONNECT rules are
// numbered differently in 3.1.1 and 5.0.
func rule(v Version, v3, v5 string) string {
	if v == V5 {
		return v5
	}
	return v3
}

// Decode implements Packet. The version argument is ignored: CONNECT carries its own. On
// error, the fields decoded so far are kept, so that the caller knows the protocol version
// to answer with.
func (c *Connect) Decode(h FixedHeader, body []byte, _ Version) error {
	*c = Connect{}
	if h.Type != CONNECT {
		return malformed("", "not a CONNECT")
	}
	d := decoder{b: body}
	name, err := d.str("protocol name")
	if err != nil {
		return err
	}
	level, err := d.byte1("protocol level")
	if err != nil {
		return err
	}
	c.ProtocolName = name
	switch {
	case name == "MQTT" && (level == byte(V311) || level == byte(V5)),
		name == "MQIsdp" && level == byte(V31):
		c.Version = Version(level)
	case name == "MQTT" || name == "MQIsdp":
		return &Error{Code: UnsupportedProtocolVersion, Rule: "MQTT-3.1.2-2",
			Detail: fmt.Sprintf("protocol level %d", level)}
	default:
		// The name is client-controlled: keep it out of the error text (and logs).
		return protocolErr("MQTT-3.1.2-1", "unknown protocol name")
	}
	v := c.Version
	flags, err := d.byte1("connect flags")
	if err != nil {
		return err
	}
	if flags&connFlagReserved != 0 {
		return malformed("MQTT-3.1.2-3", "reserved connect flag set")
	}
	c.CleanStart = flags&connFlagClean != 0
	willQoS := (flags & connFlagWillQoS) >> 3
	hasWill := flags&connFlagWill != 0
	if !hasWill {
		if willQoS != 0 {
			return malformed(rule(v, "MQTT-3.1.2-13", "MQTT-3.1.2-11"), "will QoS set without will flag")
		}
		if flags&connFlagRetain != 0 {
			return malformed(rule(v, "MQTT-3.1.2-15", "MQTT-3.1.2-13"), "will retain set without will flag")
		}
	} else if willQoS == 3 {
		return malformed(rule(v, "MQTT-3.1.2-14", "MQTT-3.1.2-12"), "will QoS 3")
	}
	c.HasUsername = flags&connFlagUsername != 0
	c.HasPassword = flags&connFlagPassword != 0
	if v != V5 && c.HasPassword && !c.HasUsername {
		return malformed("MQTT-3.1.2-22", "password flag set without user name flag")
	}
	if c.KeepAlive, err = d.uint16("keep alive"); err != nil {
		return err
	}
	if v == V5 {
		if err := d.properties(&c.Properties, propsConnect, "CONNECT"); err != nil {
			return err
		}
	}
	if c.ClientID, err = d.str("client identifier"); err != nil {
		return err
	}
	if c.ClientID == "" {
		switch {
		case v == V31:
			return &Error{Code: ClientIdentifierNotValid, Detail: "MQTT 3.1 requires a client identifier"}
		case v == V311 && !c.CleanStart:
			return &Error{Code: ClientIdentifierNotValid, Rule: "MQTT-3.1.3-8",
				Detail: "empty client identifier with clean session 0"}
		}
	}
	if hasWill {
		w := &Will{QoS: willQoS, Retain: flags&connFlagRetain != 0}
		c.Will = w
		if v == V5 {
			if err := d.properties(&w.Properties, propsWill, "will"); err != nil {
				return err
			}
		}
		if w.Topic, err = d.str("will topic"); err != nil {
			return err
		}
		if err := checkTopicName(w.Topic, "will topic"); err != nil {
			return err
		}
		if w.Payload, err = d.binaryCopy("will payload"); err != nil {
			return err
		}
		if w.Payload == nil {
			w.Payload = []byte{}
		}
		if w.Properties.Has(PropPayloadFormat) && w.Properties.PayloadFormat == 1 && !utf8.Valid(w.Payload) {
			return &Error{Code: PayloadFormatInvalid, Detail: "will payload is not UTF-8"}
		}
	}
	if c.HasUsername {
		if c.Username, err = d.str("user name"); err != nil {
			return err
		}
	}
	if c.HasPassword {
		if c.Password, err = d.binaryCopy("password"); err != nil {
			return err
		}
		if c.Password == nil {
			c.Password = []byte{}
		}
	}
	return d.end("CONNECT")
}

// AppendTo implements Packet. The version used is c.Version; v must match it or be 0.
func (c *Connect) AppendTo(dst []byte, v Version) ([]byte, error) {
	if v == 0 {
		v = c.Version
	}
	if !v.Valid() || (c.Version != 0 && c.Version != v) {
		return dst, &Error{Code: UnsupportedProtocolVersion, Detail: fmt.Sprintf("CONNECT version %v encoded as %v", c.Version, v)}
	}
	name := c.ProtocolName
	if name == "" {
		name = "MQTT"
		if v == V31 {
			name = "MQIsdp"
		}
	}
	if c.HasPassword && !c.HasUsername && v != V5 {
		return dst, malformed("MQTT-3.1.2-22", "password without user name")
	}
	if v != V5 && (!c.Properties.Empty() || (c.Will != nil && !c.Will.Properties.Empty())) {
		return dst, protocolErr("", "CONNECT properties need MQTT 5")
	}
	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(c.ClientID)
	var propLen, willPropLen int
	var err error
	if v == V5 {
		if propLen, err = c.Properties.size(propsConnect, "CONNECT"); err != nil {
			return dst, err
		}
		n += varintLen(propLen) + propLen
	}
	flags := byte(0)
	if c.CleanStart {
		flags |= connFlagClean
	}
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return dst, malformed("", "will QoS 3")
		}
		flags |= connFlagWill | w.QoS<<3
		if w.Retain {
			flags |= connFlagRetain
		}
		if v == V5 {
			if willPropLen, err = w.Properties.size(propsWill, "will"); err != nil {
				return dst, err
			}
			n += varintLen(willPropLen) + willPropLen
		}
		for _, f := range []struct {
			what string
			n    int
		}{{"will topic", len(w.Topic)}, {"will payload", len(w.Payload)}} {
			if err := fieldTooLong(f.what, f.n); err != nil {
				return dst, err
			}
		}
		n += 4 + len(w.Topic) + len(w.Payload)
	}
	if c.HasUsername {
		flags |= connFlagUsername
		n += 2 + len(c.Username)
	}
	if c.HasPassword {
		flags |= connFlagPassword
		n += 2 + len(c.Password)
	}
	for _, f := range []struct {
		what string
		n    int
	}{{"client identifier", len(c.ClientID)}, {"user name", len(c.Username)}, {"password", len(c.Password)}} {
		if err := fieldTooLong(f.what, f.n); err != nil {
			return dst, err
		}
	}
	if err := checkRemaining(CONNECT, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, CONNECT, 0, n)
	dst = appendString(dst, name)
	dst = append(dst, byte(v), flags)
	dst = appendUint16(dst, c.KeepAlive)
	if v == V5 {
		dst = c.Properties.appendTo(dst, propLen)
	}
	dst = appendString(dst, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			dst = w.Properties.appendTo(dst, willPropLen)
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if c.HasUsername {
		dst = appendString(dst, c.Username)
	}
	if c.HasPassword {
		dst = appendBinary(dst, c.Password)
	}
	return dst, nil
}

// checkTopicName enforces the rules a single packet can break for a topic name: no
// wildcard characters [MQTT-3.3.2-2] and at least one character [MQTT-4.7.3-1].
// Level and length limits are the broker's configuration, checked elsewhere.
func checkTopicName(t, what string) error {
	if t == "" {
		return &Error{Code: TopicNameInvalid, Rule: "MQTT-4.7.3-1", Detail: what + " is empty"}
	}
	for i := 0; i < len(t); i++ {
		if t[i] == '+' || t[i] == '#' {
			return &Error{Code: TopicNameInvalid, Rule: "MQTT-3.3.2-2", Detail: what + " contains a wildcard"}
		}
	}
	return nil
}
