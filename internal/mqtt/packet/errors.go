package packet

import "errors"

// Error is a violation of the protocol found while reading or decoding a packet. Code is
// the reason code a server sends (in CONNACK or DISCONNECT for MQTT 5; MQTT 3.1.1 servers
// close the connection). Rule names the normative statement, when the specification has one.
type Error struct {
	Code   ReasonCode
	Rule   string // e.g. "MQTT-3.1.2-3"; empty when the spec has no numbered statement
	Detail string // what was wrong, for logs; never contains packet contents
}

func (e *Error) Error() string {
	s := "mqtt: " + e.Code.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Rule != "" {
		s += " [" + e.Rule + "]"
	}
	return s
}

// Is makes errors.Is(err, ErrMalformed) and its siblings match any *Error with that code.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && t.Rule == "" && t.Detail == ""
}

// Sentinels for errors.Is. Each matches every *Error with the same code.
var (
	ErrMalformed            = &Error{Code: MalformedPacket}
	ErrProtocol             = &Error{Code: ProtocolError}
	ErrTooLarge             = &Error{Code: PacketTooLarge}
	ErrPayloadFormatInvalid = &Error{Code: PayloadFormatInvalid}
	ErrUnsupportedVersion   = &Error{Code: UnsupportedProtocolVersion}
	ErrClientIDNotValid     = &Error{Code: ClientIdentifierNotValid}
	ErrTopicNameInvalid     = &Error{Code: TopicNameInvalid}
	ErrTopicAliasInvalid    = &Error{Code: TopicAliasInvalid}
)

// CodeOf returns the reason code carried by err, or UnspecifiedError when err is not an
// *Error (an I/O error, for example).
func CodeOf(err error) ReasonCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}

func malformed(rule, detail string) *Error {
	return &Error{Code: MalformedPacket, Rule: rule, Detail: detail}
}

func protocolErr(rule, detail string) *Error {
	return &Error{Code: ProtocolError, Rule: rule, Detail: detail}
}
