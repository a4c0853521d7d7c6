package packet

import (
	"bufio"
	"bytes"
	"testing"
)

// Benchmarks of the hot paths of a broker: decoding and encoding PUBLISH, reading a stream
// of PUBLISH packets, decoding CONNECT and encoding the acknowledgement of a QoS 1 message.
// Helpers are prefixed bench so that they do not collide with the other test files.
//
//	go test -run='^$' -bench=. -benchmem ./internal/mqtt/packet/

var benchVersions = []struct {
	name string
	v    Version
}{{"v311", V311}, {"v5", V5}}

var benchPayloads = []struct {
	name string
	n    int
}{{"16B", 16}, {"64KB", 64 << 10}}

// benchPublish returns a QoS 1 PUBLISH with a payload of n ASCII bytes. For MQTT 5 it
// carries two typical properties and no user property.
func benchPublish(v Version, n int) *Publish {
	p := &Publish{
		QoS:      1,
		Topic:    "site/berlin/building-7/floor-3/room-12/temperature",
		PacketID: 4242,
		Payload:  bytes.Repeat([]byte("0123456789abcdef"), n/16),
	}
	if v == V5 {
		p.Properties.MessageExpiry = 3600
		p.Properties.Set(PropMessageExpiry)
		p.Properties.ContentType = "application/json"
		p.Properties.Set(PropContentType)
	}
	return p
}

// benchEncode encodes p for v and splits the result into fixed header and body.
func benchEncode(tb testing.TB, p Packet, v Version) (wire []byte, h FixedHeader, body []byte) {
	tb.Helper()
	wire, err := p.AppendTo(nil, v)
	if err != nil {
		tb.Fatal(err)
	}
	src := bytes.NewReader(wire)
	if h, err = NewReader(src, 0).ReadFixedHeader(); err != nil {
		tb.Fatal(err)
	}
	return wire, h, wire[len(wire)-src.Len():]
}

func BenchmarkDecodePublish(b *testing.B) {
	for _, ver := range benchVersions {
		b.Run(ver.name, func(b *testing.B) {
			for _, size := range benchPayloads {
				b.Run(size.name, func(b *testing.B) {
					_, h, body := benchEncode(b, benchPublish(ver.v, size.n), ver.v)
					var p Publish
					// No SetBytes: the payload is aliased, not read, so the cost does not
					// grow with it and a MB/s figure would say nothing.
					b.ReportAllocs()
					for b.Loop() {
						if err := p.Decode(h, body, ver.v); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, ver := range benchVersions {
		b.Run(ver.name, func(b *testing.B) {
			for _, size := range benchPayloads {
				b.Run(size.name, func(b *testing.B) {
					p := benchPublish(ver.v, size.n)
					buf, err := p.AppendTo(nil, ver.v)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(buf)))
					for b.Loop() {
						if buf, err = p.AppendTo(buf[:0], ver.v); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// benchConnect returns a CONNECT as clients send it: MQTT 3.1.1 with user name and
// password, MQTT 5 also with properties and a will that has properties of its own.
func benchConnect(v Version) *Connect {
	c := &Connect{
		Version:     v,
		CleanStart:  true,
		KeepAlive:   60,
		ClientID:    "sensor-berlin-7-3-12",
		HasUsername: true,
		Username:    "building-7",
		HasPassword: true,
		Password:    []byte("correct horse battery staple"),
	}
	if v == V5 {
		c.Properties.SessionExpiry = 3600
		c.Properties.Set(PropSessionExpiry)
		c.Properties.ReceiveMaximum = 32
		c.Properties.Set(PropReceiveMaximum)
		c.Properties.MaximumPacketSize = 1 << 20
		c.Properties.Set(PropMaximumPacketSize)
		c.Properties.TopicAliasMaximum = 16
		c.Properties.Set(PropTopicAliasMaximum)
		c.Will = &Will{QoS: 1, Retain: true, Topic: "site/berlin/building-7/status", Payload: []byte("offline")}
		c.Will.Properties.WillDelay = 10
		c.Will.Properties.Set(PropWillDelay)
		c.Will.Properties.PayloadFormat = 1
		c.Will.Properties.Set(PropPayloadFormat)
		c.Will.Properties.ContentType = "text/plain"
		c.Will.Properties.Set(PropContentType)
	}
	return c
}

func BenchmarkDecodeConnect(b *testing.B) {
	for _, ver := range benchVersions {
		b.Run(ver.name, func(b *testing.B) {
			wire, h, body := benchEncode(b, benchConnect(ver.v), ver.v)
			var c Connect
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if err := c.Decode(h, body, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchRepeatReader serves the same bytes over and over, as an endless connection.
type benchRepeatReader struct {
	data []byte
	off  int
}

func (r *benchRepeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// BenchmarkReadPacketPublish reads PUBLISH packets through a Reader over a bufio.Reader, as
// a connection does. Each packet allocates its body and its Publish.
func BenchmarkReadPacketPublish(b *testing.B) {
	for _, ver := range benchVersions {
		b.Run(ver.name, func(b *testing.B) {
			for _, size := range benchPayloads {
				b.Run(size.name, func(b *testing.B) {
					wire, _, _ := benchEncode(b, benchPublish(ver.v, size.n), ver.v)
					r := NewReader(bufio.NewReader(&benchRepeatReader{data: wire}), 1<<20)
					b.ReportAllocs()
					b.SetBytes(int64(len(wire)))
					for b.Loop() {
						p, err := r.ReadPacket(ver.v)
						if err != nil {
							b.Fatal(err)
						}
						if pub, ok := p.(*Publish); !ok || len(pub.Payload) != size.n {
							b.Fatalf("read %#v", p)
						}
					}
				})
			}
		})
	}
}

// BenchmarkEncodeAck encodes the MQTT 5 PUBACK of a successful QoS 1 delivery: the short
// form without reason code or properties.
func BenchmarkEncodeAck(b *testing.B) {
	a := &Puback{PacketID: 4242}
	buf := make([]byte, 0, 16)
	var err error
	b.ReportAllocs()
	b.SetBytes(4)
	for b.Loop() {
		if buf, err = a.AppendTo(buf[:0], V5); err != nil {
			b.Fatal(err)
		}
	}
	if len(buf) != 4 {
		b.Fatalf("PUBACK encoded as % X, want the 4-byte short form", buf)
	}
}

// TestZeroAllocDecodePublish checks the promise of Publish.Decode: no allocation for a
// packet without user properties or subscription identifiers.
func TestZeroAllocDecodePublish(t *testing.T) {
	in := &Publish{QoS: 1, Topic: "site/berlin/building-7/floor-3/room-12/temperature", PacketID: 7,
		Payload: []byte(`{"celsius":21.5,"sensor":"bme280"}`)}
	in.Properties.MessageExpiry = 300
	in.Properties.Set(PropMessageExpiry)
	in.Properties.ContentType = "application/json"
	in.Properties.Set(PropContentType)
	in.Properties.PayloadFormat = 1
	in.Properties.Set(PropPayloadFormat)
	_, h, body := benchEncode(t, in, V5)

	var p Publish
	var err error
	allocs := testing.AllocsPerRun(100, func() { err = p.Decode(h, body, V5) })
	if err != nil {
		t.Fatal(err)
	}
	if p.Topic != in.Topic || p.PacketID != in.PacketID || !bytes.Equal(p.Payload, in.Payload) ||
		p.Properties.MessageExpiry != 300 || p.Properties.ContentType != "application/json" ||
		!p.Properties.Has(PropPayloadFormat) || p.Properties.PayloadFormat != 1 {
		t.Fatalf("decoded %+v", p)
	}
	if allocs != 0 {
		t.Fatalf("Publish.Decode allocates %v times per call, want 0", allocs)
	}
}
