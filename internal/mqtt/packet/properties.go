package packet

import (
	"fmt"
	"math/bits"
)

// PropID identifies an MQTT 5 property.
type PropID byte

// Property identifiers (§2.2.2.2).
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

func (id PropID) bit() uint64 { return 1 << uint64(id) }

func (id PropID) String() string {
	switch id {
	case PropPayloadFormat:
		return "payload format indicator"
	case PropMessageExpiry:
		return "message expiry interval"
	case PropContentType:
		return "content type"
	case PropResponseTopic:
		return "response topic"
	case PropCorrelationData:
		return "correlation data"
	case PropSubscriptionID:
		return "subscription identifier"
	case PropSessionExpiry:
		return "session expiry interval"
	case PropAssignedClientID:
		return "assigned client identifier"
	case PropServerKeepAlive:
		return "server keep alive"
	case PropAuthMethod:
		return "authentication method"
	case PropAuthData:
		return "authentication data"
	case PropRequestProblemInfo:
		return "request problem information"
	case PropWillDelay:
		return "will delay interval"
	case PropRequestResponseInfo:
		return "request response information"
	case PropResponseInfo:
		return "response information"
	case PropServerReference:
		return "server reference"
	case PropReasonString:
		return "reason string"
	case PropReceiveMaximum:
		return "receive maximum"
	case PropTopicAliasMaximum:
		return "topic alias maximum"
	case PropTopicAlias:
		return "topic alias"
	case PropMaximumQoS:
		return "maximum QoS"
	case PropRetainAvailable:
		return "retain available"
	case PropUser:
		return "user property"
	case PropMaximumPacketSize:
		return "maximum packet size"
	case PropWildcardSubAvailable:
		return "wildcard subscription available"
	case PropSubIDAvailable:
		return "subscription identifier available"
	case PropSharedSubAvailable:
		return "shared subscription available"
	}
	return fmt.Sprintf("property 0x%02X", byte(id))
}

// propSet is a set of property identifiers: the allow-list of one packet type.
type propSet uint64

// The property allow-list of each packet (§2.2.2.2, table 2-4). PropUser is everywhere.
const (
	propsConnect = propSet(1<<PropSessionExpiry | 1<<PropAuthMethod | 1<<PropAuthData |
		1<<PropRequestProblemInfo | 1<<PropRequestResponseInfo | 1<<PropReceiveMaximum |
		1<<PropTopicAliasMaximum | 1<<PropUser | 1<<PropMaximumPacketSize)
	propsConnack = propSet(1<<PropSessionExpiry | 1<<PropAssignedClientID | 1<<PropServerKeepAlive |
		1<<PropAuthMethod | 1<<PropAuthData | 1<<PropResponseInfo | 1<<PropServerReference |
		1<<PropReasonString | 1<<PropReceiveMaximum | 1<<PropTopicAliasMaximum | 1<<PropMaximumQoS |
		1<<PropRetainAvailable | 1<<PropUser | 1<<PropMaximumPacketSize | 1<<PropWildcardSubAvailable |
		1<<PropSubIDAvailable | 1<<PropSharedSubAvailable)
	propsPublish = propSet(1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropContentType |
		1<<PropResponseTopic | 1<<PropCorrelationData | 1<<PropSubscriptionID | 1<<PropTopicAlias |
		1<<PropUser)
	propsWill = propSet(1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropContentType |
		1<<PropResponseTopic | 1<<PropCorrelationData | 1<<PropWillDelay | 1<<PropUser)
	propsAck         = propSet(1<<PropReasonString | 1<<PropUser) // PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK
	propsSubscribe   = propSet(1<<PropSubscriptionID | 1<<PropUser)
	propsUnsubscribe = propSet(1 << PropUser)
	propsDisconnect  = propSet(1<<PropSessionExpiry | 1<<PropServerReference | 1<<PropReasonString |
		1<<PropUser)
	propsAuth = propSet(1<<PropAuthMethod | 1<<PropAuthData | 1<<PropReasonString | 1<<PropUser)
)

// UserProperty is one name/value pair of the User Property. Order and duplicates are kept.
type UserProperty struct {
	Key   string
	Value string
}

// Properties holds the MQTT 5 properties of a packet. A scalar or string property is present
// when Has reports it (an empty string may be present); SubscriptionIDs and User are present
// when non-empty. Use Set after assigning a field to mark it present.
type Properties struct {
	present uint64

	PayloadFormat        byte
	MessageExpiry        uint32
	ContentType          string
	ResponseTopic        string
	CorrelationData      []byte
	SubscriptionIDs      []int // PUBLISH may carry several; SUBSCRIBE at most one
	SessionExpiry        uint32
	AssignedClientID     string
	ServerKeepAlive      uint16
	AuthMethod           string
	AuthData             []byte
	RequestProblemInfo   byte
	WillDelay            uint32
	RequestResponseInfo  byte
	ResponseInfo         string
	ServerReference      string
	ReasonString         string
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           byte
	RetainAvailable      byte
	User                 []UserProperty
	MaximumPacketSize    uint32
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	case PropUser:
		return len(p.User) > 0
	}
	return p.present&id.bit() != 0
}

// Set marks property id present; assign its field first or after, either way.
// The list properties (subscription identifiers and user properties) are present
// exactly when their slice is non-empty, so Set ignores them.
func (p *Properties) Set(id PropID) {
	if id == PropSubscriptionID || id == PropUser {
		return
	}
	p.present |= id.bit()
}

// Clear marks property id absent and zeroes its field.
func (p *Properties) Clear(id PropID) {
	p.present &^= id.bit()
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = 0
	case PropMessageExpiry:
		p.MessageExpiry = 0
	case PropContentType:
		p.ContentType = ""
	case PropResponseTopic:
		p.ResponseTopic = ""
	case PropCorrelationData:
		p.CorrelationData = nil
	case PropSubscriptionID:
		p.SubscriptionIDs = nil
	case PropSessionExpiry:
		p.SessionExpiry = 0
	case PropAssignedClientID:
		p.AssignedClientID = ""
	case PropServerKeepAlive:
		p.ServerKeepAlive = 0
	case PropAuthMethod:
		p.AuthMethod = ""
	case PropAuthData:
		p.AuthData = nil
	case PropRequestProblemInfo:
		p.RequestProblemInfo = 0
	case PropWillDelay:
		p.WillDelay = 0
	case PropRequestResponseInfo:
		p.RequestResponseInfo = 0
	case PropResponseInfo:
		p.ResponseInfo = ""
	case PropServerReference:
		p.ServerReference = ""
	case PropReasonString:
		p.ReasonString = ""
	case PropReceiveMaximum:
		p.ReceiveMaximum = 0
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = 0
	case PropTopicAlias:
		p.TopicAlias = 0
	case PropMaximumQoS:
		p.MaximumQoS = 0
	case PropRetainAvailable:
		p.RetainAvailable = 0
	case PropUser:
		p.User = nil
	case PropMaximumPacketSize:
		p.MaximumPacketSize = 0
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = 0
	case PropSubIDAvailable:
		p.SubIDAvailable = 0
	case PropSharedSubAvailable:
		p.SharedSubAvailable = 0
	}
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.SubscriptionIDs) == 0 && len(p.User) == 0
}

// decodeProperties reads the property length and the properties of a packet whose
// allow-list is allowed. ctx names the packet for error messages.
func (d *decoder) properties(p *Properties, allowed propSet, ctx string) error {
	n, err := d.varint(ctx + " property length")
	if err != nil {
		return err
	}
	if n > d.remaining() {
		return malformed("", ctx+" property length longer than the packet")
	}
	end := d.i + n
	outer := d.b
	d.b = d.b[:end] // a property cannot read past the property block
	for d.i < end {
		raw, err := d.varint(ctx + " property identifier")
		if err != nil {
			return err
		}
		if raw > 0x7f {
			return malformed("", fmt.Sprintf("%s: unknown property identifier %d", ctx, raw))
		}
		id := PropID(raw)
		if allowed&propSet(id.bit()) == 0 {
			if _, known := propKind(id); !known {
				return malformed("", fmt.Sprintf("%s: unknown property identifier 0x%02X", ctx, raw))
			}
			return malformed("", ctx+" must not carry "+id.String())
		}
		if id != PropUser && id != PropSubscriptionID && p.present&id.bit() != 0 {
			return protocolErr("", ctx+" repeats "+id.String())
		}
		if err := d.property(p, id); err != nil {
			return withContext(err, ctx+" "+id.String())
		}
	}
	d.b = outer
	if id := PropSubscriptionID; allowed == propsSubscribe && len(p.SubscriptionIDs) > 1 {
		return protocolErr("", ctx+" repeats "+id.String())
	}
	if p.present&PropAuthData.bit() != 0 && p.present&PropAuthMethod.bit() == 0 {
		return protocolErr("", ctx+" has authentication data without an authentication method")
	}
	return nil
}

// propType is the wire type of a property value.
type propType byte

const (
	ptByte propType = iota + 1
	ptUint16
	ptUint32
	ptVarint
	ptString
	ptBinary
	ptPair
)

func propKind(id PropID) (propType, bool) {
	switch id {
	case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
		PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
		return ptByte, true
	case PropServerKeepAlive, PropReceiveMaximum, PropTopicAliasMaximum, PropTopicAlias:
		return ptUint16, true
	case PropMessageExpiry, PropSessionExpiry, PropWillDelay, PropMaximumPacketSize:
		return ptUint32, true
	case PropSubscriptionID:
		return ptVarint, true
	case PropContentType, PropResponseTopic, PropAssignedClientID, PropAuthMethod,
		PropResponseInfo, PropServerReference, PropReasonString:
		return ptString, true
	case PropCorrelationData, PropAuthData:
		return ptBinary, true
	case PropUser:
		return ptPair, true
	}
	return 0, false
}

// withContext prefixes the detail of a decoding error; it runs only on the error path, so
// the hot path never builds strings.
func withContext(err error, ctx string) error {
	if e, ok := err.(*Error); ok {
		c := *e
		c.Detail = ctx + ": " + e.Detail
		return &c
	}
	return err
}

// property reads the value of property id. Its error details are completed by the caller.
func (d *decoder) property(p *Properties, id PropID) error {
	const what = "value"
	kind, _ := propKind(id)
	switch kind {
	case ptByte:
		v, err := d.byte1(what)
		if err != nil {
			return err
		}
		if v > 1 {
			return protocolErr("", fmt.Sprintf("must be 0 or 1, got %d", v))
		}
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = v
		case PropRequestProblemInfo:
			p.RequestProblemInfo = v
		case PropRequestResponseInfo:
			p.RequestResponseInfo = v
		case PropMaximumQoS:
			p.MaximumQoS = v
		case PropRetainAvailable:
			p.RetainAvailable = v
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = v
		case PropSubIDAvailable:
			p.SubIDAvailable = v
		case PropSharedSubAvailable:
			p.SharedSubAvailable = v
		}
	case ptUint16:
		v, err := d.uint16(what)
		if err != nil {
			return err
		}
		switch id {
		case PropServerKeepAlive:
			p.ServerKeepAlive = v
		case PropReceiveMaximum:
			if v == 0 {
				return protocolErr("", "is 0")
			}
			p.ReceiveMaximum = v
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = v
		case PropTopicAlias:
			if v == 0 {
				return &Error{Code: TopicAliasInvalid, Rule: "MQTT-3.3.2-8", Detail: "is 0"}
			}
			p.TopicAlias = v
		}
	case ptUint32:
		v, err := d.uint32(what)
		if err != nil {
			return err
		}
		switch id {
		case PropMessageExpiry:
			p.MessageExpiry = v
		case PropSessionExpiry:
			p.SessionExpiry = v
		case PropWillDelay:
			p.WillDelay = v
		case PropMaximumPacketSize:
			if v == 0 {
				return protocolErr("", "is 0")
			}
			p.MaximumPacketSize = v
		}
	case ptVarint:
		v, err := d.varint(what)
		if err != nil {
			return err
		}
		if v == 0 {
			return protocolErr("", "is 0")
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		return nil // presence is len(SubscriptionIDs)
	case ptString:
		v, err := d.str(what)
		if err != nil {
			return err
		}
		switch id {
		case PropContentType:
			p.ContentType = v
		case PropResponseTopic:
			p.ResponseTopic = v
		case PropAssignedClientID:
			p.AssignedClientID = v
		case PropAuthMethod:
			p.AuthMethod = v
		case PropResponseInfo:
			p.ResponseInfo = v
		case PropServerReference:
			p.ServerReference = v
		case PropReasonString:
			p.ReasonString = v
		}
	case ptBinary:
		var v []byte
		var err error
		if d.alias {
			v, err = d.binary(what)
		} else {
			v, err = d.binaryCopy(what)
		}
		if err != nil {
			return err
		}
		if v == nil {
			v = []byte{}
		}
		switch id {
		case PropCorrelationData:
			p.CorrelationData = v
		case PropAuthData:
			p.AuthData = v
		}
	case ptPair:
		k, err := d.str("name")
		if err != nil {
			return err
		}
		v, err := d.str("value")
		if err != nil {
			return err
		}
		p.User = append(p.User, UserProperty{Key: k, Value: v})
		return nil
	}
	p.present |= id.bit()
	return nil
}

// size returns the encoded length of the properties, without the length prefix, and
// checks that every present property is allowed in this packet.
func (p *Properties) size(allowed propSet, ctx string) (int, error) {
	if p == nil {
		return 0, nil
	}
	if bad := propSet(p.present) &^ allowed; bad != 0 {
		id := PropID(bits.TrailingZeros64(uint64(bad)))
		return 0, &Error{Code: ProtocolError, Detail: ctx + " must not carry " + id.String()}
	}
	if len(p.SubscriptionIDs) > 0 && allowed&propSet(PropSubscriptionID.bit()) == 0 {
		return 0, &Error{Code: ProtocolError, Detail: ctx + " must not carry subscription identifier"}
	}
	if len(p.User) > 0 && allowed&propSet(PropUser.bit()) == 0 {
		return 0, &Error{Code: ProtocolError, Detail: ctx + " must not carry user property"}
	}
	n := 0
	for m := p.present; m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		kind, ok := propKind(id)
		if !ok {
			return 0, &Error{Code: ProtocolError, Detail: fmt.Sprintf("unknown property 0x%02X", byte(id))}
		}
		n++ // identifier: every identifier fits in one byte
		switch kind {
		case ptByte:
			n++
		case ptUint16:
			n += 2
		case ptUint32:
			n += 4
		case ptString, ptBinary:
			l := len(p.stringOrBinary(id))
			if err := fieldTooLong(ctx+" "+id.String(), l); err != nil {
				return 0, err
			}
			n += 2 + l
		}
	}
	for _, id := range p.SubscriptionIDs {
		if id <= 0 || id > MaxSubscriptionID {
			return 0, &Error{Code: ProtocolError, Detail: fmt.Sprintf("subscription identifier %d out of range", id)}
		}
		n += 1 + varintLen(id)
	}
	for _, u := range p.User {
		if len(u.Key) > MaxStringLength || len(u.Value) > MaxStringLength {
			return 0, &Error{Code: MalformedPacket, Detail: ctx + " user property longer than 65535 bytes"}
		}
		n += 5 + len(u.Key) + len(u.Value)
	}
	return n, nil
}

// stringOrBinary returns the bytes of a string or binary property.
func (p *Properties) stringOrBinary(id PropID) string {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropCorrelationData:
		return string(p.CorrelationData)
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropAuthData:
		return string(p.AuthData)
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return ""
}

// appendTo writes the property length n (from size) and the properties.
func (p *Properties) appendTo(dst []byte, n int) []byte {
	dst = appendVarint(dst, n)
	if p == nil || n == 0 {
		return dst
	}
	for m := p.present; m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(m))
		dst = append(dst, byte(id))
		switch id {
		case PropPayloadFormat:
			dst = append(dst, p.PayloadFormat)
		case PropRequestProblemInfo:
			dst = append(dst, p.RequestProblemInfo)
		case PropRequestResponseInfo:
			dst = append(dst, p.RequestResponseInfo)
		case PropMaximumQoS:
			dst = append(dst, p.MaximumQoS)
		case PropRetainAvailable:
			dst = append(dst, p.RetainAvailable)
		case PropWildcardSubAvailable:
			dst = append(dst, p.WildcardSubAvailable)
		case PropSubIDAvailable:
			dst = append(dst, p.SubIDAvailable)
		case PropSharedSubAvailable:
			dst = append(dst, p.SharedSubAvailable)
		case PropServerKeepAlive:
			dst = appendUint16(dst, p.ServerKeepAlive)
		case PropReceiveMaximum:
			dst = appendUint16(dst, p.ReceiveMaximum)
		case PropTopicAliasMaximum:
			dst = appendUint16(dst, p.TopicAliasMaximum)
		case PropTopicAlias:
			dst = appendUint16(dst, p.TopicAlias)
		case PropMessageExpiry:
			dst = appendUint32(dst, p.MessageExpiry)
		case PropSessionExpiry:
			dst = appendUint32(dst, p.SessionExpiry)
		case PropWillDelay:
			dst = appendUint32(dst, p.WillDelay)
		case PropMaximumPacketSize:
			dst = appendUint32(dst, p.MaximumPacketSize)
		case PropCorrelationData:
			dst = appendBinary(dst, p.CorrelationData)
		case PropAuthData:
			dst = appendBinary(dst, p.AuthData)
		default:
			dst = appendString(dst, p.stringOrBinary(id))
		}
	}
	for _, id := range p.SubscriptionIDs {
		dst = appendVarint(append(dst, byte(PropSubscriptionID)), id)
	}
	for _, u := range p.User {
		dst = appendString(append(dst, byte(PropUser)), u.Key)
		dst = appendString(dst, u.Value)
	}
	return dst
}
