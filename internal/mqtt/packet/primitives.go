package packet

import (
	"bytes"
	"unicode/utf8"
	"unsafe"
)

// decoder walks a packet body. Every read checks the remaining length first, so a length
// field can never reach outside the body. When alias is set, strings share the body's
// memory instead of being copied (PUBLISH only, see the package comment).
type decoder struct {
	b     []byte
	i     int
	alias bool
}

func (d *decoder) remaining() int { return len(d.b) - d.i }

func (d *decoder) byte1(what string) (byte, error) {
	if d.i >= len(d.b) {
		return 0, malformed("", what+" missing")
	}
	v := d.b[d.i]
	d.i++
	return v, nil
}

func (d *decoder) uint16(what string) (uint16, error) {
	if len(d.b)-d.i < 2 {
		return 0, malformed("", what+" truncated")
	}
	v := uint16(d.b[d.i])<<8 | uint16(d.b[d.i+1])
	d.i += 2
	return v, nil
}

func (d *decoder) uint32(what string) (uint32, error) {
	if len(d.b)-d.i < 4 {
		return 0, malformed("", what+" truncated")
	}
	v := uint32(d.b[d.i])<<24 | uint32(d.b[d.i+1])<<16 | uint32(d.b[d.i+2])<<8 | uint32(d.b[d.i+3])
	d.i += 4
	return v, nil
}

// varint reads a variable byte integer: at most four bytes, minimal encoding [MQTT-1.5.5-1].
func (d *decoder) varint(what string) (int, error) {
	v, n, err := decodeVarint(d.b[d.i:])
	if err != nil {
		return 0, err
	}
	d.i += n
	return v, nil
}

// decodeVarint decodes a variable byte integer from the start of b and reports how many
// bytes it used.
func decodeVarint(b []byte) (value, n int, err error) {
	mult := 1
	for n < 4 {
		if n >= len(b) {
			return 0, 0, malformed("", "variable byte integer truncated")
		}
		c := b[n]
		n++
		value += int(c&0x7f) * mult
		if c&0x80 == 0 {
			if c == 0 && n > 1 {
				return 0, 0, malformed("MQTT-1.5.5-1", "variable byte integer not minimally encoded")
			}
			return value, n, nil
		}
		mult <<= 7
	}
	return 0, 0, malformed("", "variable byte integer longer than four bytes")
}

// binary reads a two-byte length followed by that many bytes. The result aliases the body.
func (d *decoder) binary(what string) ([]byte, error) {
	if len(d.b)-d.i < 2 {
		return nil, malformed("", what+" length truncated")
	}
	n := int(d.b[d.i])<<8 | int(d.b[d.i+1])
	d.i += 2
	if n > len(d.b)-d.i {
		return nil, malformed("", what+" longer than the packet")
	}
	v := d.b[d.i : d.i+n : d.i+n]
	d.i += n
	return v, nil
}

// binaryCopy reads binary data into memory of its own.
func (d *decoder) binaryCopy(what string) ([]byte, error) {
	v, err := d.binary(what)
	if err != nil || v == nil {
		return v, err
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// str reads a UTF-8 encoded string and validates it [MQTT-1.5.4-1], [MQTT-1.5.4-2].
func (d *decoder) str(what string) (string, error) {
	b, err := d.binary(what)
	if err != nil {
		return "", err
	}
	if err := checkUTF8(b, what); err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", nil
	}
	if d.alias {
		return unsafe.String(&b[0], len(b)), nil
	}
	return string(b), nil
}

// checkUTF8 enforces the rules for MQTT UTF-8 strings: well-formed UTF-8, no surrogate code
// points (Go's decoder rejects encoded surrogates) [MQTT-1.5.4-1], and no U+0000 [MQTT-1.5.4-2].
func checkUTF8(b []byte, what string) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return malformed("MQTT-1.5.4-2", what+" contains U+0000")
	}
	if !utf8.Valid(b) {
		return malformed("MQTT-1.5.4-1", what+" is not well-formed UTF-8")
	}
	return nil
}

// end fails when bytes are left over after the last field of a packet.
func (d *decoder) end(what string) error {
	if d.i != len(d.b) {
		return malformed("", what+" has unexpected trailing bytes")
	}
	return nil
}

// Encoding helpers. They append and never fail: callers check lengths beforehand.

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendVarint(dst []byte, v int) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if v == 0 {
			return dst
		}
	}
}

func varintLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16384:
		return 2
	case v < 2097152:
		return 3
	default:
		return 4
	}
}

func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// appendFixedHeader writes the first byte and the remaining length.
func appendFixedHeader(dst []byte, t Type, flags byte, remaining int) []byte {
	return appendVarint(append(dst, byte(t)<<4|flags), remaining)
}

// fieldTooLong reports a string or binary field that cannot be encoded.
func fieldTooLong(what string, n int) error {
	if n > MaxStringLength {
		return &Error{Code: MalformedPacket, Detail: what + " longer than 65535 bytes"}
	}
	return nil
}
