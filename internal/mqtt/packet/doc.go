// Package packet encodes and decodes every MQTT control packet of protocol versions 3.1,
// 3.1.1 and 5.0.
//
// The package is written for hostile input. A Reader learns the remaining length from the
// fixed header and refuses a packet larger than its limit before it allocates or reads the
// body. Decoding validates each rule of the specifications that a single packet can break:
// canonical variable byte integers, reserved flag bits, protocol name and level, UTF-8 strings
// (well formed, no U+0000, no surrogates), lengths inside the packet, the MQTT 5 property
// allow-list of each packet type and duplicate properties, packet identifiers, QoS values,
// and the consistency of the CONNECT flags. Every violation is an *Error that carries the
// reason code a server should answer with (0x81 malformed, 0x82 protocol error, 0x95 packet
// too large, ...) and, where the specification has one, the normative statement it breaks.
//
// Rules that need session state (topic aliases in use, receive maximum, authorization) belong
// to the broker, not here.
//
// A decoded PUBLISH does not copy: its topic, payload and string properties alias the body
// buffer, so that buffer must not be modified or reused while the packet is in use. All other
// packets copy what they keep, so a CONNECT password never outlives the packet by accident.
// Encoding appends to a caller-provided slice; the resulting bytes can be shared read-only by
// any number of connections.
package packet
