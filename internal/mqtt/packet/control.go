package packet

import "fmt"

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Type implements Packet.
func (*Pingreq) Type() Type { return PINGREQ }

// Type implements Packet.
func (*Pingresp) Type() Type { return PINGRESP }

// Decode implements Packet.
func (*Pingreq) Decode(h FixedHeader, body []byte, _ Version) error {
	return decodeEmpty(PINGREQ, h, body)
}

// Decode implements Packet.
func (*Pingresp) Decode(h FixedHeader, body []byte, _ Version) error {
	return decodeEmpty(PINGRESP, h, body)
}

// AppendTo implements Packet.
func (*Pingreq) AppendTo(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// AppendTo implements Packet.
func (*Pingresp) AppendTo(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

func decodeEmpty(t Type, h FixedHeader, body []byte) error {
	if h.Type != t {
		return malformed("", "not a "+t.String())
	}
	if len(body) != 0 {
		return malformed("", t.String()+" with a body")
	}
	return nil
}

// Disconnect is the DISCONNECT packet. Reason code and properties exist only in MQTT 5.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type implements Packet.
func (*Disconnect) Type() Type { return DISCONNECT }

// Decode implements Packet.
func (p *Disconnect) Decode(h FixedHeader, body []byte, v Version) error {
	*p = Disconnect{}
	if h.Type != DISCONNECT {
		return malformed("", "not a DISCONNECT")
	}
	if v != V5 {
		return decodeEmpty(DISCONNECT, h, body)
	}
	return decodeReasonAndProps(DISCONNECT, body, &p.ReasonCode, &p.Properties, propsDisconnect)
}

// AppendTo implements Packet.
func (p *Disconnect) AppendTo(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		if p.ReasonCode != NormalDisconnection || !p.Properties.Empty() {
			return dst, fmt.Errorf("mqtt: DISCONNECT reason codes and properties need MQTT 5")
		}
		return append(dst, byte(DISCONNECT)<<4, 0), nil
	}
	return appendReasonAndProps(dst, DISCONNECT, p.ReasonCode, &p.Properties, propsDisconnect)
}

// Auth is the MQTT 5 AUTH packet of enhanced authentication.
type Auth struct {
	ReasonCode ReasonCode // Success, ContinueAuthentication or ReAuthenticate
	Properties Properties // authentication method and data, reason string, user properties
}

// Type implements Packet.
func (*Auth) Type() Type { return AUTH }

// Decode implements Packet. AUTH does not exist before MQTT 5: type 15 is reserved there.
func (p *Auth) Decode(h FixedHeader, body []byte, v Version) error {
	*p = Auth{}
	if h.Type != AUTH {
		return malformed("", "not an AUTH")
	}
	if v != V5 {
		return malformed("", "packet type 15 is reserved before MQTT 5")
	}
	return decodeReasonAndProps(AUTH, body, &p.ReasonCode, &p.Properties, propsAuth)
}

// AppendTo implements Packet.
func (p *Auth) AppendTo(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, fmt.Errorf("mqtt: AUTH needs MQTT 5")
	}
	return appendReasonAndProps(dst, AUTH, p.ReasonCode, &p.Properties, propsAuth)
}

// decodeReasonAndProps reads the body of an MQTT 5 DISCONNECT or AUTH: an optional reason
// code (absent = success) and optional properties.
func decodeReasonAndProps(t Type, body []byte, rc *ReasonCode, props *Properties, allowed propSet) error {
	if len(body) == 0 {
		return nil
	}
	d := decoder{b: body}
	c, _ := d.byte1("reason code")
	*rc = ReasonCode(c)
	if !rc.ValidFor(t) {
		return malformed("", fmt.Sprintf("%v reason code 0x%02X", t, c))
	}
	if d.remaining() == 0 {
		return nil
	}
	if err := d.properties(props, allowed, t.String()); err != nil {
		return err
	}
	return d.end(t.String())
}

// appendReasonAndProps writes the shortest form: nothing for success without properties,
// the reason code alone when there are no properties.
func appendReasonAndProps(dst []byte, t Type, rc ReasonCode, props *Properties, allowed propSet) ([]byte, error) {
	if !rc.ValidFor(t) {
		return dst, fmt.Errorf("mqtt: %v cannot carry reason code 0x%02X", t, byte(rc))
	}
	if props.Empty() {
		if rc == Success {
			return append(dst, byte(t)<<4, 0), nil
		}
		return append(dst, byte(t)<<4, 1, byte(rc)), nil
	}
	pl, err := props.size(allowed, t.String())
	if err != nil {
		return dst, err
	}
	n := 1 + varintLen(pl) + pl
	if err := checkRemaining(t, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, t, 0, n)
	dst = append(dst, byte(rc))
	return props.appendTo(dst, pl), nil
}
