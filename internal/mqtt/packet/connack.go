package packet

import "fmt"

// Connack is the CONNACK packet. For MQTT 3.1 and 3.1.1 ReasonCode holds the return code
// (0 to 5) and Properties must be empty.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Type implements Packet.
func (*Connack) Type() Type { return CONNACK }

// Decode implements Packet.
func (c *Connack) Decode(h FixedHeader, body []byte, v Version) error {
	*c = Connack{}
	d := decoder{b: body}
	flags, err := d.byte1("acknowledge flags")
	if err != nil {
		return err
	}
	if flags&0xfe != 0 {
		return malformed(rule(v, "MQTT-3.2.2-1", "MQTT-3.2.2-1"), "reserved acknowledge flags set")
	}
	c.SessionPresent = flags&1 != 0
	rc, err := d.byte1("reason code")
	if err != nil {
		return err
	}
	c.ReasonCode = ReasonCode(rc)
	if v == V5 {
		if !c.ReasonCode.ValidFor(CONNACK) {
			return malformed("", fmt.Sprintf("CONNACK reason code 0x%02X", rc))
		}
		if err := d.properties(&c.Properties, propsConnack, "CONNACK"); err != nil {
			return err
		}
	} else if rc > 5 {
		return malformed("", fmt.Sprintf("CONNACK return code %d", rc))
	}
	if c.SessionPresent && c.ReasonCode != Success {
		return protocolErr(rule(v, "MQTT-3.2.2-4", "MQTT-3.2.2-6"), "session present with a refusal")
	}
	return d.end("CONNACK")
}

// AppendTo implements Packet.
func (c *Connack) AppendTo(dst []byte, v Version) ([]byte, error) {
	flags := byte(0)
	if c.SessionPresent {
		flags = 1
	}
	if v != V5 {
		if c.ReasonCode > 5 {
			return dst, fmt.Errorf("mqtt: CONNACK return code %d does not exist before MQTT 5; use ConnackV3", c.ReasonCode)
		}
		if !c.Properties.Empty() {
			return dst, fmt.Errorf("mqtt: CONNACK properties need MQTT 5")
		}
		return append(dst, byte(CONNACK)<<4, 2, flags, byte(c.ReasonCode)), nil
	}
	pl, err := c.Properties.size(propsConnack, "CONNACK")
	if err != nil {
		return dst, err
	}
	n := 2 + varintLen(pl) + pl
	if err := checkRemaining(CONNACK, n); err != nil {
		return dst, err
	}
	dst = appendFixedHeader(dst, CONNACK, 0, n)
	dst = append(dst, flags, byte(c.ReasonCode))
	return c.Properties.appendTo(dst, pl), nil
}
