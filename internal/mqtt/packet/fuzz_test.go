package packet

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Fuzz targets of the codec. The seed corpora live in testdata/fuzz/<Target>/ and run as
// ordinary tests with `go test`; `go test -fuzz` mutates them. Every target checks the same
// contract:
//
//   - nothing panics, whatever the input;
//   - a failure is io.EOF or io.ErrUnexpectedEOF from the source, or an *Error whose code is
//     one the codec documents (see fuzzReadCodes);
//   - a packet that decodes can be encoded again for the same version, that encoding decodes
//     to a deeply equal packet, and encoding that packet gives the same bytes (the encoder is
//     canonical).
//
// Helpers here are prefixed fuzz so that they do not collide with the other test files of
// the package.

const (
	// fuzzSessionLimit is the packet size limit of the stream targets once CONNECT is in.
	fuzzSessionLimit = 64 << 10
	// fuzzPreAuthLimit is the small limit the stream targets also try on the first packet,
	// the way a broker bounds what an unauthenticated client may send.
	fuzzPreAuthLimit = 64
)

// fuzzReadCodes is the exact set of reason codes that reading and decoding can report: a
// Reader adds PacketTooLarge to what Decode reports.
var fuzzReadCodes = map[ReasonCode]bool{
	MalformedPacket:            true,
	ProtocolError:              true,
	UnsupportedProtocolVersion: true, // CONNECT protocol level
	ClientIdentifierNotValid:   true, // CONNECT client identifier
	TopicNameInvalid:           true, // PUBLISH and will topic
	TopicAliasInvalid:          true, // PUBLISH topic alias 0
	PacketTooLarge:             true, // Reader limit, before the body is read
	PayloadFormatInvalid:       true, // payload format indicator 1 on a non-UTF-8 payload
}

// fuzzDecodeCodes is the set Decode alone can report: size limits belong to the Reader.
var fuzzDecodeCodes = map[ReasonCode]bool{
	MalformedPacket:            true,
	ProtocolError:              true,
	UnsupportedProtocolVersion: true,
	ClientIdentifierNotValid:   true,
	TopicNameInvalid:           true,
	TopicAliasInvalid:          true,
	PayloadFormatInvalid:       true,
}

// FuzzReadV31 reads an MQTT 3.1 session: a CONNECT, then packets until the first error.
func FuzzReadV31(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSession(t, data, V31) })
}

// FuzzReadV311 reads an MQTT 3.1.1 session.
func FuzzReadV311(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSession(t, data, V311) })
}

// FuzzReadV5 reads an MQTT 5.0 session.
func FuzzReadV5(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSession(t, data, V5) })
}

// fuzzSession reads data as the byte stream of one connection of protocol version v: the
// first packet with version 0 (so it must be a CONNECT), every later one with v, until the
// first error. It does so twice: with the session limit throughout, and with a small limit on
// the first packet only, which must change nothing but turn a first packet larger than that
// limit into PacketTooLarge.
func fuzzSession(t *testing.T, data []byte, v Version) {
	src := bytes.NewReader(data)
	r := NewReader(src, fuzzSessionLimit)
	var first Packet
	var firstSize int
	type kept struct {
		p   Packet
		enc []byte
	}
	var session []kept
	var endErr error // the error that ended the session
	for i := 0; ; i++ {
		want := v
		if i == 0 {
			want = 0
		}
		before := src.Len()
		p, err := r.ReadPacket(want)
		used := before - src.Len()
		if err != nil {
			fuzzCheckReadError(t, err, used, r.MaxPacketSize())
			endErr = err
			break
		}
		if used > r.MaxPacketSize() {
			t.Fatalf("packet %d: %v of %d bytes accepted with a limit of %d", i, p.Type(), used, r.MaxPacketSize())
		}
		if i == 0 {
			if _, ok := p.(*Connect); !ok {
				t.Fatalf("first packet decoded with version 0 is %v, not CONNECT", p.Type())
			}
			first, firstSize = p, used
		}
		session = append(session, kept{p, fuzzRoundTrip(t, p, v, used)})
	}
	// A packet owns its memory: reading the packets after it (through the Reader's scratch
	// buffer, for small ones) must not have changed it.
	for i, k := range session {
		encV := v
		if c, ok := k.p.(*Connect); ok {
			encV = c.Version
		}
		if enc, err := k.p.AppendTo(nil, encV); err != nil || !bytes.Equal(enc, k.enc) {
			t.Fatalf("packet %d (%v) changed while later packets were read:\nbefore % X\nafter  % X (%v)", i, k.p.Type(), k.enc, enc, err)
		}
	}

	// Second pass: the first packet under the pre-authentication limit.
	src = bytes.NewReader(data)
	r = NewReader(src, fuzzPreAuthLimit)
	p, err := r.ReadPacket(0)
	used := len(data) - src.Len()
	if err != nil {
		fuzzCheckReadError(t, err, used, fuzzPreAuthLimit)
	}
	switch {
	case first == nil:
		// The first packet failed with the large limit; the small one cannot make it pass.
		if err == nil {
			t.Fatalf("first packet fails with limit %d but decodes with limit %d", fuzzSessionLimit, fuzzPreAuthLimit)
		}
		return
	case firstSize > fuzzPreAuthLimit:
		if CodeOf(err) != PacketTooLarge {
			t.Fatalf("first packet of %d bytes with limit %d: got %v, want packet too large", firstSize, fuzzPreAuthLimit, err)
		}
		return
	case err != nil:
		t.Fatalf("first packet of %d bytes fits limit %d but fails: %v", firstSize, fuzzPreAuthLimit, err)
	case !reflect.DeepEqual(p, first):
		t.Fatalf("first packet differs between limits:\n%#v\n%#v", first, p)
	}
	// Once CONNECT is accepted the broker raises the limit; the next packet must then read
	// as it did in the first pass.
	r.SetMaxPacketSize(fuzzSessionLimit)
	if r.MaxPacketSize() != fuzzSessionLimit {
		t.Fatalf("MaxPacketSize = %d after SetMaxPacketSize(%d)", r.MaxPacketSize(), fuzzSessionLimit)
	}
	p, err = r.ReadPacket(v)
	switch {
	case len(session) > 1:
		if err != nil || !reflect.DeepEqual(p, session[1].p) {
			t.Fatalf("second packet differs after raising the limit: %#v, %v; want %#v", p, err, session[1].p)
		}
	case err == nil:
		t.Fatalf("second packet decodes after raising the limit, but failed before: %v", endErr)
	case err != endErr && (CodeOf(err) != CodeOf(endErr) || CodeOf(err) == UnspecifiedError):
		t.Fatalf("second packet fails with %v after raising the limit, but with %v before", err, endErr)
	}
}

// FuzzDecodeBody decodes one packet body directly, so that every packet type meets every
// protocol version without having to follow a CONNECT. The version byte is reduced to 3, 4
// or 5 (values 3, 4 and 5 map to themselves).
func FuzzDecodeBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, typeAndFlags, version byte, body []byte) {
		v := Version(version%3 + 3)
		h := FixedHeader{Type: Type(typeAndFlags >> 4), Flags: typeAndFlags & 0x0f, Remaining: len(body)}
		orig := bytes.Clone(body)
		p, err := Decode(h, body, v)
		if !bytes.Equal(body, orig) {
			t.Fatalf("Decode of %v modified its input", h.Type)
		}
		if h.Type == AUTH && v != V5 && err == nil {
			t.Fatalf("AUTH decoded for MQTT %v, where packet type 15 is reserved", v)
		}

		// The same packet framed and read through a Reader must give the same outcome.
		wire := append(appendFixedHeader(nil, h.Type, h.Flags, len(body)), body...)
		rp, rerr := NewReader(bytes.NewReader(wire), 0).ReadPacket(v)
		if (err == nil) != (rerr == nil) || CodeOf(err) != CodeOf(rerr) {
			t.Fatalf("Decode and Reader disagree on %v for %v: %v / %v", h.Type, v, err, rerr)
		}

		if err != nil {
			fuzzCheckError(t, err, fuzzDecodeCodes)
			return
		}
		if p == nil || p.Type() != h.Type {
			t.Fatalf("Decode of a %v header returned %#v", h.Type, p)
		}
		if !reflect.DeepEqual(p, rp) {
			t.Fatalf("Decode and Reader decode %v differently:\n%#v\n%#v", h.Type, p, rp)
		}
		enc := fuzzRoundTrip(t, p, v, len(wire))
		if enc[0] != typeAndFlags {
			t.Fatalf("%v re-encoded with first byte 0x%02X, decoded from 0x%02X", h.Type, enc[0], typeAndFlags)
		}
	})
}

// FuzzFixedHeader reads one fixed header under an arbitrary limit (0 or less means the
// protocol maximum), through a source with ReadByte and through one without, and compares
// the outcome with a small independent parser.
func FuzzFixedHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		type outcome struct {
			h    FixedHeader
			err  error
			used int
		}
		var got [2]outcome
		for i, byteReader := range []bool{true, false} {
			src := bytes.NewReader(data)
			var in io.Reader = src
			if !byteReader {
				in = fuzzPlainReader{src}
			}
			r := NewReader(in, limit)
			eff, want := r.MaxPacketSize(), limit
			if limit <= 0 || limit > MaxPacketSize {
				want = MaxPacketSize
			}
			if eff != want {
				t.Fatalf("NewReader(%d) has limit %d, want %d", limit, eff, want)
			}
			h, err := r.ReadFixedHeader()
			used := len(data) - src.Len()
			got[i] = outcome{h, err, used}
			if used > 5 {
				t.Fatalf("ReadFixedHeader consumed %d bytes", used)
			}
			ref := fuzzParseHeader(data, eff)
			if err != nil {
				fuzzCheckReadError(t, err, used, eff)
				if ref.ok {
					t.Fatalf("valid header % X (limit %d) refused: %v", data[:ref.n], eff, err)
				}
				if CodeOf(err) == PacketTooLarge && ref.minSize(used) <= eff {
					t.Fatalf("header % X refused as too large for limit %d, but it may describe %d bytes", data[:used], eff, ref.minSize(used))
				}
				continue
			}
			if !ref.ok {
				t.Fatalf("header % X (limit %d) accepted as %+v, want refusal (%s)", data[:used], eff, h, ref.why)
			}
			if h != ref.h || used != ref.n {
				t.Fatalf("header % X read as %+v using %d bytes, want %+v using %d", data[:used], h, used, ref.h, ref.n)
			}
			if h.Remaining < 0 || h.Remaining > MaxRemainingLength || h.Size() > eff {
				t.Fatalf("header %+v (size %d) accepted with limit %d", h, h.Size(), eff)
			}
			if enc := appendFixedHeader(nil, h.Type, h.Flags, h.Remaining); !bytes.Equal(enc, data[:used]) {
				t.Fatalf("header % X re-encodes as % X", data[:used], enc)
			}
		}
		a, b := got[0], got[1]
		if a.h != b.h || a.used != b.used || CodeOf(a.err) != CodeOf(b.err) || (a.err == nil) != (b.err == nil) {
			t.Fatalf("byte reader and plain reader disagree: %+v / %+v", a, b)
		}
	})
}

// fuzzPlainReader hides the io.ByteReader of its source.
type fuzzPlainReader struct{ r io.Reader }

func (p fuzzPlainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// fuzzHeader is the outcome of fuzzParseHeader.
type fuzzHeader struct {
	h        FixedHeader
	n        int  // header length in bytes
	ok       bool // valid, complete and within the limit
	why      string
	lenBytes []byte // the remaining-length bytes present in the input, at most 4
}

// minSize is the smallest packet the first used bytes of a header can start: the bytes read
// so far count with their value, and a continuation bit promises one more length byte.
func (f fuzzHeader) minSize(used int) int {
	size, mult := 1, 1
	for i := 0; i < used-1 && i < len(f.lenBytes); i++ {
		c := f.lenBytes[i]
		size += 1 + int(c&0x7f)*mult
		mult *= 128
	}
	if used-1 > 0 && used-1 <= len(f.lenBytes) && f.lenBytes[used-2]&0x80 != 0 {
		size++ // the next length byte exists
	}
	return size
}

// fuzzParseHeader is a deliberately plain reading of §2.1 of the specifications, written
// from the text rather than from header.go.
func fuzzParseHeader(data []byte, limit int) fuzzHeader {
	var r fuzzHeader
	if len(data) == 0 {
		r.why = "empty"
		return r
	}
	typ, flags := Type(data[0]>>4), data[0]&0x0f
	r.h = FixedHeader{Type: typ, Flags: flags}
	for i := 1; i < len(data) && i <= 4; i++ {
		r.lenBytes = append(r.lenBytes, data[i])
	}
	switch {
	case typ == 0:
		r.why = "type 0"
		return r
	case typ == PUBLISH:
		qos := flags >> 1 & 3
		if qos == 3 || qos == 0 && flags&8 != 0 {
			r.why = "PUBLISH flags"
			return r
		}
	case typ == PUBREL || typ == SUBSCRIBE || typ == UNSUBSCRIBE:
		if flags != 2 {
			r.why = "flags must be 2"
			return r
		}
	default:
		if flags != 0 {
			r.why = "flags must be 0"
			return r
		}
	}
	value, mult := 0, 1
	for i, c := range r.lenBytes {
		value += int(c&0x7f) * mult
		mult *= 128
		if c&0x80 != 0 {
			continue
		}
		if c == 0 && i > 0 {
			r.why = "not minimal"
			return r
		}
		r.h.Remaining = value
		r.n = 2 + i
		if 1+(i+1)+value > limit {
			r.why = "over the limit"
			return r
		}
		r.ok = true
		return r
	}
	r.why = "length truncated or longer than four bytes"
	return r
}

// fuzzCheckReadError checks an error of a Reader that had consumed used bytes of its source
// under the given limit.
func fuzzCheckReadError(t *testing.T, err error, used, limit int) {
	t.Helper()
	switch {
	case err == io.EOF:
		if used != 0 {
			t.Fatalf("io.EOF after %d bytes of a packet; want io.ErrUnexpectedEOF", used)
		}
		return
	case err == io.ErrUnexpectedEOF:
		if used == 0 {
			t.Fatal("io.ErrUnexpectedEOF before any byte of a packet; want io.EOF")
		}
		return
	}
	fuzzCheckError(t, err, fuzzReadCodes)
	if CodeOf(err) == PacketTooLarge && used > 5 {
		t.Fatalf("packet too large (limit %d) reported after reading %d bytes: the body was read", limit, used)
	}
}

// fuzzCheckError checks that err is an *Error with a code of the allowed set.
func fuzzCheckError(t *testing.T, err error, allowed map[ReasonCode]bool) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !allowed[e.Code] {
		t.Fatalf("error %q has unexpected reason code 0x%02X", err, byte(e.Code))
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "mqtt: ") {
		t.Fatalf("error text %q lacks the package prefix", msg)
	}
	if e.Detail == "" {
		t.Fatalf("error with code 0x%02X has no detail", byte(e.Code))
	}
	if e.Rule != "" && !strings.HasPrefix(e.Rule, "MQTT-") {
		t.Fatalf("error %q names rule %q", err, e.Rule)
	}
	if !errors.Is(err, &Error{Code: e.Code}) {
		t.Fatalf("errors.Is does not match %q with its own code", err)
	}
}

// fuzzRoundTrip checks that p, decoded for version v from wireSize bytes (header included),
// encodes again for v, decodes from that encoding to an equal packet and re-encodes to the
// same bytes. A CONNECT is encoded for the version it carries and read back with version 0.
// It returns the encoding.
func fuzzRoundTrip(t *testing.T, p Packet, v Version, wireSize int) []byte {
	t.Helper()
	encV, readV := v, v
	if c, ok := p.(*Connect); ok {
		encV, readV = c.Version, 0
	}
	enc, err := p.AppendTo(nil, encV)
	if err != nil {
		t.Fatalf("%v decoded for %v does not encode: %v\n%#v", p.Type(), v, err, p)
	}
	// The encoder only drops optional parts (an ack's Success reason code, an empty property
	// list), so it never needs more bytes than were read.
	if len(enc) > wireSize {
		t.Fatalf("%v read from %d bytes encodes to %d", p.Type(), wireSize, len(enc))
	}
	// AppendTo appends: what is already in dst stays.
	prefix := []byte("prefix")
	withPrefix, err := p.AppendTo(prefix[:len(prefix):len(prefix)], encV)
	if err != nil || !bytes.Equal(withPrefix[:len(prefix)], prefix) || !bytes.Equal(withPrefix[len(prefix):], enc) {
		t.Fatalf("%v: AppendTo to a non-empty slice gives % X, %v; want prefix then % X", p.Type(), withPrefix, err, enc)
	}
	if pub, ok := p.(*Publish); ok {
		fuzzCheckPublishLayout(t, pub, encV, enc)
	}

	src := bytes.NewReader(enc)
	p2, err := NewReader(src, 0).ReadPacket(readV)
	if err != nil {
		t.Fatalf("%v re-encoded for %v does not decode: %v\nencoding % X\n%#v", p.Type(), encV, err, enc, p)
	}
	if src.Len() != 0 {
		t.Fatalf("%v re-encoded for %v has %d trailing bytes", p.Type(), encV, src.Len())
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("%v changes across encode and decode for %v:\nfirst  %#v\nsecond %#v\nencoding % X", p.Type(), encV, p, p2, enc)
	}
	enc2, err := p2.AppendTo(nil, encV)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("%v encoding is not canonical for %v:\n% X\n% X (%v)", p.Type(), encV, enc, enc2, err)
	}
	return enc
}

// fuzzCheckPublishLayout checks Size and PacketIDOffset against an actual encoding.
func fuzzCheckPublishLayout(t *testing.T, p *Publish, v Version, enc []byte) {
	t.Helper()
	if n, err := p.Size(v); err != nil || n != len(enc) {
		t.Fatalf("PUBLISH Size = %d, %v; encoding has %d bytes", n, err, len(enc))
	}
	off := p.PacketIDOffset(v)
	if p.QoS == 0 {
		if off != -1 {
			t.Fatalf("QoS 0 PUBLISH has packet identifier offset %d", off)
		}
		return
	}
	if off < 0 || off+2 > len(enc) || uint16(enc[off])<<8|uint16(enc[off+1]) != p.PacketID {
		t.Fatalf("PUBLISH packet identifier %d not at offset %d of % X", p.PacketID, off, enc)
	}
}
