package packet

import "fmt"

// ReasonCode is an MQTT 5 reason code. For MQTT 3.1 and 3.1.1 the CONNACK return code and
// the SUBACK return codes share this type.
type ReasonCode byte

// MQTT 5.0 reason codes (§2.4). Several codes share a value; the names follow the packet
// they are used in.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWillMessage           ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1 / 3.1.1 CONNACK return codes and the SUBACK failure code.
const (
	ConnAccepted                   ReasonCode = 0x00
	ConnRefusedProtocolVersion     ReasonCode = 0x01
	ConnRefusedIdentifierRejected  ReasonCode = 0x02
	ConnRefusedServerUnavailable   ReasonCode = 0x03
	ConnRefusedBadUsernamePassword ReasonCode = 0x04
	ConnRefusedNotAuthorized       ReasonCode = 0x05
	SubackFailure                  ReasonCode = 0x80
)

// String names the MQTT 5 meaning of the code.
func (c ReasonCode) String() string {
	switch c {
	case Success:
		return "success"
	case GrantedQoS1:
		return "granted QoS 1"
	case GrantedQoS2:
		return "granted QoS 2"
	case 0x03:
		return "0x03"
	case DisconnectWithWillMessage:
		return "disconnect with will message"
	case NoMatchingSubscribers:
		return "no matching subscribers"
	case NoSubscriptionExisted:
		return "no subscription existed"
	case ContinueAuthentication:
		return "continue authentication"
	case ReAuthenticate:
		return "re-authenticate"
	case UnspecifiedError:
		return "unspecified error"
	case MalformedPacket:
		return "malformed packet"
	case ProtocolError:
		return "protocol error"
	case ImplementationSpecificError:
		return "implementation specific error"
	case UnsupportedProtocolVersion:
		return "unsupported protocol version"
	case ClientIdentifierNotValid:
		return "client identifier not valid"
	case BadUserNameOrPassword:
		return "bad user name or password"
	case NotAuthorized:
		return "not authorized"
	case ServerUnavailable:
		return "server unavailable"
	case ServerBusy:
		return "server busy"
	case Banned:
		return "banned"
	case ServerShuttingDown:
		return "server shutting down"
	case BadAuthenticationMethod:
		return "bad authentication method"
	case KeepAliveTimeout:
		return "keep alive timeout"
	case SessionTakenOver:
		return "session taken over"
	case TopicFilterInvalid:
		return "topic filter invalid"
	case TopicNameInvalid:
		return "topic name invalid"
	case PacketIdentifierInUse:
		return "packet identifier in use"
	case PacketIdentifierNotFound:
		return "packet identifier not found"
	case ReceiveMaximumExceeded:
		return "receive maximum exceeded"
	case TopicAliasInvalid:
		return "topic alias invalid"
	case PacketTooLarge:
		return "packet too large"
	case MessageRateTooHigh:
		return "message rate too high"
	case QuotaExceeded:
		return "quota exceeded"
	case AdministrativeAction:
		return "administrative action"
	case PayloadFormatInvalid:
		return "payload format invalid"
	case RetainNotSupported:
		return "retain not supported"
	case QoSNotSupported:
		return "QoS not supported"
	case UseAnotherServer:
		return "use another server"
	case ServerMoved:
		return "server moved"
	case SharedSubscriptionsNotSupported:
		return "shared subscriptions not supported"
	case ConnectionRateExceeded:
		return "connection rate exceeded"
	case MaximumConnectTime:
		return "maximum connect time"
	case SubscriptionIdentifiersNotSupported:
		return "subscription identifiers not supported"
	case WildcardSubscriptionsNotSupported:
		return "wildcard subscriptions not supported"
	}
	return fmt.Sprintf("reason code 0x%02X", byte(c))
}

// IsError reports whether the code signals failure (0x80 and above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// ValidFor reports whether an MQTT 5 packet of type t may carry reason code c (§2.4 table 2-6).
func (c ReasonCode) ValidFor(t Type) bool {
	switch t {
	case CONNACK:
		switch c {
		case Success, UnspecifiedError, MalformedPacket, ProtocolError, ImplementationSpecificError,
			UnsupportedProtocolVersion, ClientIdentifierNotValid, BadUserNameOrPassword,
			NotAuthorized, ServerUnavailable, ServerBusy, Banned, BadAuthenticationMethod,
			TopicNameInvalid, PacketTooLarge, QuotaExceeded, PayloadFormatInvalid,
			RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
			ConnectionRateExceeded:
			return true
		}
	case PUBACK, PUBREC:
		switch c {
		case Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
			NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded,
			PayloadFormatInvalid:
			return true
		}
	case PUBREL, PUBCOMP:
		return c == Success || c == PacketIdentifierNotFound
	case SUBACK:
		switch c {
		case GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError, ImplementationSpecificError,
			NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse, QuotaExceeded,
			SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
			WildcardSubscriptionsNotSupported:
			return true
		}
	case UNSUBACK:
		switch c {
		case Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError,
			NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse:
			return true
		}
	case DISCONNECT:
		switch c {
		case NormalDisconnection, DisconnectWithWillMessage, UnspecifiedError, MalformedPacket,
			ProtocolError, ImplementationSpecificError, NotAuthorized, ServerBusy,
			ServerShuttingDown, KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid,
			TopicNameInvalid, ReceiveMaximumExceeded, TopicAliasInvalid, PacketTooLarge,
			MessageRateTooHigh, QuotaExceeded, AdministrativeAction, PayloadFormatInvalid,
			RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
			SharedSubscriptionsNotSupported, ConnectionRateExceeded, MaximumConnectTime,
			SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported:
			return true
		}
	case AUTH:
		return c == Success || c == ContinueAuthentication || c == ReAuthenticate
	}
	return false
}

// ConnackV3 maps an MQTT 5 CONNACK reason code to the closest MQTT 3.1/3.1.1 return code.
func (c ReasonCode) ConnackV3() ReasonCode {
	switch c {
	case Success:
		return ConnAccepted
	case UnsupportedProtocolVersion:
		return ConnRefusedProtocolVersion
	case ClientIdentifierNotValid:
		return ConnRefusedIdentifierRejected
	case BadUserNameOrPassword, BadAuthenticationMethod:
		return ConnRefusedBadUsernamePassword
	case NotAuthorized, Banned:
		return ConnRefusedNotAuthorized
	default:
		return ConnRefusedServerUnavailable
	}
}
