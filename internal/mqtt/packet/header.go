package packet

import (
	"fmt"
	"io"
)

// FixedHeader is the first part of every packet: type, flags and remaining length.
type FixedHeader struct {
	Type      Type
	Flags     byte
	Remaining int // length of the body that follows the header
}

// Dup, QoS and Retain read the PUBLISH flags.
func (h FixedHeader) Dup() bool    { return h.Flags&0x08 != 0 }
func (h FixedHeader) QoS() byte    { return (h.Flags >> 1) & 0x03 }
func (h FixedHeader) Retain() bool { return h.Flags&0x01 != 0 }

// Size is the size of the whole packet: header byte, length bytes and body.
func (h FixedHeader) Size() int { return 1 + varintLen(h.Remaining) + h.Remaining }

// checkFlags validates the first byte [MQTT-2.2.2-1], [MQTT-2.2.2-2], [MQTT-3.3.1-4] and
// the DUP flag of a QoS 0 PUBLISH [MQTT-3.3.1-2].
func (h FixedHeader) checkFlags() error {
	switch h.Type {
	case 0:
		return malformed("", "reserved packet type 0")
	case PUBLISH:
		if h.QoS() == 3 {
			return malformed("MQTT-3.3.1-4", "PUBLISH with QoS 3")
		}
		if h.QoS() == 0 && h.Dup() {
			return malformed("MQTT-3.3.1-2", "PUBLISH with QoS 0 has DUP set")
		}
		return nil
	}
	if h.Flags != requiredFlags(h.Type) {
		return malformed("MQTT-2.2.2-2", fmt.Sprintf("%v with reserved flags 0x%X", h.Type, h.Flags))
	}
	return nil
}

// Reader reads packets from a byte stream and refuses any packet whose declared size is
// larger than its limit before allocating or reading the body. It does no buffering of its
// own: wrap a net.Conn in a bufio.Reader for throughput (the Reader uses io.ByteReader when
// the source has it).
type Reader struct {
	src     io.Reader
	max     int
	scratch [8]byte // header bytes and small bodies that nothing keeps (acks, pings)
}

// NewReader returns a Reader that accepts packets of at most maxPacketSize bytes in total
// (fixed header included, as MQTT 5's Maximum Packet Size counts them). A maxPacketSize of
// zero or less means the protocol maximum.
func NewReader(src io.Reader, maxPacketSize int) *Reader {
	r := &Reader{src: src}
	r.SetMaxPacketSize(maxPacketSize)
	return r
}

// SetMaxPacketSize changes the limit, for example from a small pre-authentication limit to
// the configured one once CONNECT has been accepted.
func (r *Reader) SetMaxPacketSize(n int) {
	if n <= 0 || n > MaxPacketSize {
		n = MaxPacketSize
	}
	r.max = n
}

// MaxPacketSize returns the current limit.
func (r *Reader) MaxPacketSize() int { return r.max }

func (r *Reader) readByte() (byte, error) {
	if br, ok := r.src.(io.ByteReader); ok {
		return br.ReadByte()
	}
	if _, err := io.ReadFull(r.src, r.scratch[:1]); err != nil {
		return 0, err
	}
	return r.scratch[0], nil
}

// ReadFixedHeader reads and validates the fixed header. A declared size over the limit is
// an *Error with code PacketTooLarge, returned as soon as the length bytes read so far prove
// it, and before any body byte is read.
func (r *Reader) ReadFixedHeader() (FixedHeader, error) {
	b, err := r.readByte()
	if err != nil {
		return FixedHeader{}, err
	}
	h := FixedHeader{Type: Type(b >> 4), Flags: b & 0x0f}
	if err := h.checkFlags(); err != nil {
		return h, err
	}
	mult := 1
	for n := 1; ; n++ {
		c, err := r.readByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		h.Remaining += int(c&0x7f) * mult
		if 1+n+h.Remaining > r.max {
			return h, &Error{Code: PacketTooLarge,
				Detail: fmt.Sprintf("%v declares at least %d bytes, limit is %d", h.Type, 1+n+h.Remaining, r.max)}
		}
		if c&0x80 == 0 {
			if c == 0 && n > 1 {
				return h, malformed("MQTT-1.5.5-1", "remaining length not minimally encoded")
			}
			return h, nil
		}
		if n == 4 {
			return h, malformed("", "remaining length longer than four bytes")
		}
		mult <<= 7
	}
}

// ReadBody reads the body of the packet h into buf when it is large enough, or into a new
// slice of exactly h.Remaining bytes.
func (r *Reader) ReadBody(h FixedHeader, buf []byte) ([]byte, error) {
	if h.Remaining == 0 {
		return nil, nil
	}
	if cap(buf) >= h.Remaining {
		buf = buf[:h.Remaining]
	} else {
		buf = make([]byte, h.Remaining)
	}
	if _, err := io.ReadFull(r.src, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// ReadPacket reads and decodes one packet for protocol version v. Use version 0 before
// CONNECT has been read: then only CONNECT is accepted [MQTT-3.1.0-1]. The returned packet
// owns its body, except that small acknowledgements are read through a scratch buffer whose
// contents no decoded field refers to.
func (r *Reader) ReadPacket(v Version) (Packet, error) {
	h, err := r.ReadFixedHeader()
	if err != nil {
		return nil, err
	}
	var buf []byte
	switch h.Type {
	case PUBACK, PUBREC, PUBREL, PUBCOMP, PINGREQ, PINGRESP, DISCONNECT:
		if h.Remaining <= 4 {
			buf = r.scratch[:0]
		}
	}
	body, err := r.ReadBody(h, buf)
	if err != nil {
		return nil, err
	}
	return Decode(h, body, v)
}
