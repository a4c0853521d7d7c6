package packet

import "strconv"

// Type is the MQTT control packet type (the high nibble of the first byte).
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
	"DISCONNECT", "AUTH"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// requiredFlags is the value the low nibble of the fixed header must have for each type
// other than PUBLISH [MQTT-2.2.2-1].
func requiredFlags(t Type) byte {
	switch t {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 0x02
	default:
		return 0
	}
}

// Version is the MQTT protocol level carried in CONNECT.
type Version byte

// Protocol versions.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// Valid reports whether v is a protocol level this package implements.
func (v Version) Valid() bool { return v == V31 || v == V311 || v == V5 }

// QoS levels.
const (
	QoS0 byte = 0
	QoS1 byte = 1
	QoS2 byte = 2
)

// Size limits of the protocol.
const (
	// MaxRemainingLength is the largest value a four-byte variable byte integer holds.
	MaxRemainingLength = 268_435_455
	// MaxPacketSize is the largest complete packet: fixed header byte, four length bytes
	// and the largest remaining length.
	MaxPacketSize = 1 + 4 + MaxRemainingLength
	// MaxSubscriptionID is the largest subscription identifier.
	MaxSubscriptionID = MaxRemainingLength
	// MaxStringLength is the largest UTF-8 string or binary field.
	MaxStringLength = 65535
)
