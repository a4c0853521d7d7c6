package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/coder/websocket"
)

// ppTLV encodes one v2 TLV.
func ppTLV(typ byte, val []byte) []byte {
	b := []byte{typ, 0, 0}
	binary.BigEndian.PutUint16(b[1:], uint16(len(val)))
	return append(b, val...)
}

// ppSSL encodes the value of a PP2_TYPE_SSL TLV.
func ppSSL(client byte, verify uint32, subs ...[]byte) []byte {
	b := []byte{client, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], verify)
	for _, s := range subs {
		b = append(b, s...)
	}
	return b
}

// ppV2 encodes a v2 header: verCmd (0x20 LOCAL, 0x21 PROXY), fam, then body (addresses
// and TLVs) with its length.
func ppV2(verCmd, fam byte, body ...[]byte) []byte {
	b := []byte(proxyV2Sig)
	b = append(b, verCmd, fam, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-16))
	return b
}

// ppAddr4 is an IPv4 address block.
func ppAddr4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// ppAddr6 is an IPv6 address block.
func ppAddr6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

// withCRC appends a correct CRC32C TLV to a v2 header.
func withCRC(h []byte) []byte {
	h = append(bytes.Clone(h), ppTLV(pp2TypeCRC32C, []byte{0, 0, 0, 0})...)
	binary.BigEndian.PutUint16(h[14:16], uint16(len(h)-16))
	sum := crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(h[len(h)-4:], sum)
	return h
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

const ppMaxV1 = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"

func validProxyHeaders() []struct {
	name string
	in   []byte
	want ProxyInfo
} {
	verifiedCN := ppTLV(pp2TypeSSL, ppSSL(pp2ClientSSL|pp2ClientCertCon, 0, ppTLV(0x21, []byte("TLSv1.3")), ppTLV(pp2SubtypeSSLCN, []byte("sensor-42"))))
	return []struct {
		name string
		in   []byte
		want ProxyInfo
	}{
		{"v1 TCP4", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 1883\r\n"),
			ProxyInfo{Source: ap("203.0.113.7:5555"), Destination: ap("192.0.2.1:1883")}},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n"),
			ProxyInfo{Source: ap("[2001:db8::1]:65535"), Destination: ap("[2001:db8::2]:0")}},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), ProxyInfo{}},
		{"v1 UNKNOWN of the longest length", []byte(ppMaxV1), ProxyInfo{}},
		{"v2 PROXY IPv4", ppV2(0x21, 0x11, ppAddr4("203.0.113.7", "192.0.2.1", 5555, 1883)),
			ProxyInfo{Source: ap("203.0.113.7:5555"), Destination: ap("192.0.2.1:1883")}},
		{"v2 PROXY IPv6 with a verified SSL CN", ppV2(0x21, 0x21, ppAddr6("2001:db8::7", "2001:db8::1", 40000, 8883), verifiedCN),
			ProxyInfo{Source: ap("[2001:db8::7]:40000"), Destination: ap("[2001:db8::1]:8883"), SSLCN: "sensor-42", SSLVerified: true}},
		{"v2 SSL CN of an unverified certificate is dropped", ppV2(0x21, 0x11, ppAddr4("203.0.113.7", "192.0.2.1", 1, 2),
			ppTLV(pp2TypeSSL, ppSSL(pp2ClientSSL|pp2ClientCertCon, 1, ppTLV(pp2SubtypeSSLCN, []byte("mallory"))))),
			ProxyInfo{Source: ap("203.0.113.7:1"), Destination: ap("192.0.2.1:2")}},
		{"v2 SSL without a client certificate is not verified", ppV2(0x21, 0x11, ppAddr4("203.0.113.7", "192.0.2.1", 1, 2),
			ppTLV(pp2TypeSSL, ppSSL(pp2ClientSSL, 0, ppTLV(pp2SubtypeSSLCN, []byte("x"))))),
			ProxyInfo{Source: ap("203.0.113.7:1"), Destination: ap("192.0.2.1:2")}},
		{"v2 unknown TLVs are skipped", ppV2(0x21, 0x11, ppAddr4("10.1.2.3", "10.0.0.1", 9, 10), ppTLV(0x01, []byte("mqtt")), ppTLV(0xEE, nil)),
			ProxyInfo{Source: ap("10.1.2.3:9"), Destination: ap("10.0.0.1:10")}},
		{"v2 with a correct CRC32C", withCRC(ppV2(0x21, 0x11, ppAddr4("10.1.2.3", "10.0.0.1", 9, 10))),
			ProxyInfo{Source: ap("10.1.2.3:9"), Destination: ap("10.0.0.1:10")}},
		{"v2 LOCAL ignores its addresses", ppV2(0x20, 0x11, ppAddr4("10.1.2.3", "10.0.0.1", 9, 10), verifiedCN), ProxyInfo{}},
		{"v2 LOCAL without addresses", ppV2(0x20, 0x00), ProxyInfo{}},
		{"v2 PROXY AF_UNSPEC", ppV2(0x21, 0x00), ProxyInfo{}},
	}
}

func TestReadProxyHeaderValid(t *testing.T) {
	const tail = "\x16\x03\x01 after the header"
	for _, tc := range validProxyHeaders() {
		readers := map[string]func(io.Reader) io.Reader{
			"whole":    func(r io.Reader) io.Reader { return r },
			"one byte": iotest.OneByteReader,
			"half":     iotest.HalfReader,
		}
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				src := bytes.NewReader(append(bytes.Clone(tc.in), tail...))
				got, err := ReadProxyHeader(wrap(src))
				if err != nil {
					t.Fatalf("ReadProxyHeader: %v", err)
				}
				if got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				rest, _ := io.ReadAll(src)
				if string(rest) != tail {
					t.Fatalf("the bytes after the header: got %q, want %q", rest, tail)
				}
			})
		}
	}
}

func TestReadProxyHeaderInvalid(t *testing.T) {
	v4 := ppAddr4("203.0.113.7", "192.0.2.1", 5555, 1883)
	badCRC := withCRC(ppV2(0x21, 0x11, v4))
	badCRC[20] ^= 1
	over := ppV2(0x21, 0x11, v4)
	binary.BigEndian.PutUint16(over[14:16], proxyV2MaxPayload+1)
	over = append(over, make([]byte, proxyV2MaxPayload+1)...)
	cases := []struct {
		name string
		in   []byte
		// consumed, when not -1, is how many bytes the failed read may have taken at most.
		consumed int
		header   bool // the error wraps ErrProxyHeader (rather than an I/O error)
	}{
		{"empty", nil, -1, false},
		{"HTTP instead of PROXY", []byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"), 12, true},
		{"MQTT CONNECT instead of PROXY", []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0, 0, 0}, 12, true},
		{"lower case proxy", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), 12, true},
		{"v1 without CRLF within 107 bytes", []byte("PROXY TCP4 " + strings.Repeat("1", 300) + "\r\n"), proxyV1MaxLen, true},
		{"v1 truncated", []byte("PROXY TCP4 203.0.113.7 192"), -1, false},
		{"v1 LF only", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 1883\n\r\n"), -1, true},
		{"v1 bare CR", []byte("PROXY TCP4 203.0.113.7\r192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 port 65536", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 65536 1883\r\n"), -1, true},
		{"v1 port with leading zero", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 05555 1883\r\n"), -1, true},
		{"v1 negative port", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 -1 1883\r\n"), -1, true},
		{"v1 signed port", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 +1 1883\r\n"), -1, true},
		{"v1 empty port", []byte("PROXY TCP4 203.0.113.7 192.0.2.1  1883\r\n"), -1, true},
		{"v1 hex port", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 0x10 1883\r\n"), -1, true},
		{"v1 double space", []byte("PROXY TCP4  203.0.113.7 192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 extra field", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 1883 x\r\n"), -1, true},
		{"v1 missing field", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n"), -1, true},
		{"v1 trailing space", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 1883 \r\n"), -1, true},
		{"v1 TCP4 with IPv6", []byte("PROXY TCP4 2001:db8::1 192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 TCP6 with IPv4", []byte("PROXY TCP6 203.0.113.7 192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 IPv4 with leading zeros", []byte("PROXY TCP4 203.0.113.007 192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 IPv6 with a zone", []byte("PROXY TCP6 fe80::1%eth0 fe80::2 5555 1883\r\n"), -1, true},
		{"v1 host name", []byte("PROXY TCP4 example.com 192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 UDP4", []byte("PROXY UDP4 203.0.113.7 192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 NUL byte", []byte("PROXY TCP4 203.0.113.7\x00192.0.2.1 5555 1883\r\n"), -1, true},
		{"v1 non-ASCII", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 1883\xff\r\n"), -1, true},
		{"v2 truncated fixed header", []byte(proxyV2Sig + "\x21\x11"), -1, false},
		{"v2 truncated addresses", ppV2(0x21, 0x11, v4)[:20], -1, false},
		{"v2 version 1", append([]byte(proxyV2Sig), 0x11, 0x11, 0, 12), 16, true},
		{"v2 version 3", append([]byte(proxyV2Sig), 0x31, 0x11, 0, 12), 16, true},
		{"v2 command 2", append([]byte(proxyV2Sig), 0x22, 0x11, 0, 12), 16, true},
		{"v2 length beyond the cap", over, 16, true},
		{"v2 AF_UNIX", ppV2(0x21, 0x31, make([]byte, 216)), -1, true},
		{"v2 UDP over IPv4", ppV2(0x21, 0x12, v4), -1, true},
		{"v2 IPv4 family unspecified protocol", ppV2(0x21, 0x10, v4), -1, true},
		{"v2 IPv4 block too short", ppV2(0x21, 0x11, v4[:8]), -1, true},
		{"v2 IPv6 block too short", ppV2(0x21, 0x21, v4), -1, true},
		{"v2 truncated TLV", ppV2(0x21, 0x11, v4, ppTLV(0x01, []byte("mqtt"))[:5]), -1, true},
		{"v2 truncated TLV header", ppV2(0x21, 0x11, v4, []byte{0x01, 0}), -1, true},
		{"v2 SSL TLV too short", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeSSL, []byte{7, 0, 0})), -1, true},
		{"v2 SSL sub-TLV overruns", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeSSL, ppSSL(7, 0, ppTLV(pp2SubtypeSSLCN, []byte("abcdef"))[:6]))), -1, true},
		{"v2 two SSL TLVs", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeSSL, ppSSL(7, 0)), ppTLV(pp2TypeSSL, ppSSL(7, 0))), -1, true},
		{"v2 two CNs", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeSSL, ppSSL(7, 0, ppTLV(pp2SubtypeSSLCN, []byte("a")), ppTLV(pp2SubtypeSSLCN, []byte("b"))))), -1, true},
		{"v2 CN with NUL", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeSSL, ppSSL(7, 0, ppTLV(pp2SubtypeSSLCN, []byte("admin\x00.evil"))))), -1, true},
		{"v2 CN not UTF-8", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeSSL, ppSSL(7, 0, ppTLV(pp2SubtypeSSLCN, []byte{0xff, 0xfe})))), -1, true},
		{"v2 CRC32C mismatch", badCRC, -1, true},
		{"v2 CRC32C of the wrong size", ppV2(0x21, 0x11, v4, ppTLV(pp2TypeCRC32C, []byte{1, 2})), -1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := bytes.NewReader(tc.in)
			info, err := ReadProxyHeader(src)
			if err == nil {
				t.Fatalf("no error; got %+v", info)
			}
			if tc.header != errors.Is(err, ErrProxyHeader) {
				t.Errorf("errors.Is(%v, ErrProxyHeader) = %v, want %v", err, !tc.header, tc.header)
			}
			if info != (ProxyInfo{}) {
				t.Errorf("an error came with %+v", info)
			}
			if consumed := len(tc.in) - src.Len(); tc.consumed >= 0 && consumed > tc.consumed {
				t.Errorf("read %d bytes, want at most %d", consumed, tc.consumed)
			}
		})
	}
}

// FuzzReadProxyHeader checks that no input makes ReadProxyHeader panic, read more than
// its bounds, or answer differently when the input arrives one byte at a time.
func FuzzReadProxyHeader(f *testing.F) {
	for _, tc := range validProxyHeaders() {
		f.Add(tc.in)
	}
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nrest"))
	f.Add(ppV2(0x21, 0x11, ppAddr4("1.2.3.4", "5.6.7.8", 1, 2), ppTLV(pp2TypeSSL, ppSSL(7, 0, ppTLV(pp2SubtypeSSLCN, []byte("cn"))))))
	f.Add([]byte(proxyV2Sig + "\x21\x11\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		src := bytes.NewReader(in)
		info, err := ReadProxyHeader(src)
		consumed := len(in) - src.Len()
		if consumed > 16+proxyV2MaxPayload {
			t.Fatalf("read %d bytes", consumed)
		}
		if !bytes.HasPrefix(in, []byte(proxyV2Sig)) && consumed > proxyV1MaxLen {
			t.Fatalf("read %d bytes of a v1 header", consumed)
		}
		slow := bytes.NewReader(in)
		info2, err2 := ReadProxyHeader(iotest.OneByteReader(slow))
		if info != info2 || (err == nil) != (err2 == nil) || slow.Len() != src.Len() {
			t.Fatalf("whole: %+v, %v, %d left; byte by byte: %+v, %v, %d left", info, err, src.Len(), info2, err2, slow.Len())
		}
		if err != nil {
			if info != (ProxyInfo{}) {
				t.Fatalf("an error came with %+v", info)
			}
			return
		}
		if info.Source.IsValid() != info.Destination.IsValid() {
			t.Fatalf("half an address pair: %+v", info)
		}
		if info.SSLCN != "" && !info.SSLVerified {
			t.Fatalf("an unverified CN: %+v", info)
		}
	})
}

// The proxy tests dial from 127.0.0.2 (trusted) or 127.0.0.1 (not trusted); on Linux the
// whole of 127.0.0.0/8 is on the loopback interface.
const (
	proxyAddr     = "127.0.0.2"
	realClient    = "203.0.113.7:5555"
	realClientHdr = "PROXY TCP4 203.0.113.7 127.0.0.1 5555 1883\r\n"
)

func trustedProxy() *ProxyOptions {
	return &ProxyOptions{Trusted: []netip.Prefix{netip.MustParsePrefix(proxyAddr + "/32")}, Timeout: 300 * time.Millisecond}
}

func newProxyTCP(t *testing.T, o TCPOptions) *TCP {
	t.Helper()
	o.Name, o.Bind = "proxied", "127.0.0.1:0"
	if o.Proxy == nil {
		o.Proxy = trustedProxy()
	}
	l, err := NewTCP(context.Background(), o)
	if err != nil {
		t.Fatalf("NewTCP: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func nextMeta(t *testing.T, g *gate) Meta {
	t.Helper()
	select {
	case m := <-g.metas:
		return m
	case <-time.After(patience):
		t.Fatal("the handler was not called")
		return Meta{}
	}
}

func TestTCPProxyProtocol(t *testing.T) {
	checkGoroutines(t)
	access, err := ParseAccessRules([]string{"deny 203.0.113.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	l := newProxyTCP(t, TCPOptions{Access: access})
	g := newGate()
	serveListener(t, l, g.handle)
	t.Cleanup(g.open)

	refused := func(t *testing.T, c net.Conn) {
		t.Helper()
		before := g.calls.Load()
		if err := closedByPeer(c); err != nil {
			t.Fatal(err)
		}
		if g.calls.Load() != before {
			t.Fatal("the handler saw the connection")
		}
		waitFor(t, "the listener counts no connection", func() bool { return l.Open() == 0 })
	}

	t.Run("[SECURITY] an untrusted peer is closed even with a valid header", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", l.Addr())
		_, _ = c.Write([]byte("PROXY TCP4 198.51.100.1 127.0.0.1 5555 1883\r\n"))
		refused(t, c)
	})

	cases := []struct {
		name   string
		header []byte
		peer   func(c net.Conn) netip.AddrPort
		source netip.AddrPort
	}{
		{"v1 TCP4", []byte("PROXY TCP4 198.51.100.1 127.0.0.1 5555 1883\r\n"), nil, ap("198.51.100.1:5555")},
		{"v2 IPv6 with SSL CN", ppV2(0x21, 0x21, ppAddr6("2001:db8::7", "2001:db8::1", 40000, 1883),
			ppTLV(pp2TypeSSL, ppSSL(7, 0, ppTLV(pp2SubtypeSSLCN, []byte("sensor-42"))))), nil, ap("[2001:db8::7]:40000")},
		{"v2 LOCAL keeps the proxy as peer", ppV2(0x20, 0x00), func(c net.Conn) netip.AddrPort {
			return c.LocalAddr().(*net.TCPAddr).AddrPort()
		}, netip.AddrPort{}},
		{"v1 UNKNOWN keeps the proxy as peer", []byte("PROXY UNKNOWN\r\n"), func(c net.Conn) netip.AddrPort {
			return c.LocalAddr().(*net.TCPAddr).AddrPort()
		}, netip.AddrPort{}},
	}
	for _, tc := range cases {
		t.Run("a trusted proxy's client: "+tc.name, func(t *testing.T) {
			c := dialFrom(t, proxyAddr, l.Addr())
			// Header and payload in one segment: nothing after the header may be lost.
			const payload = "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
			if _, err := c.Write(append(bytes.Clone(tc.header), payload...)); err != nil {
				t.Fatal(err)
			}
			m := nextMeta(t, g)
			want := tc.source
			if tc.peer != nil {
				want = tc.peer(c)
			}
			if m.Peer != want {
				t.Errorf("Meta.Peer = %v, want %v", m.Peer, want)
			}
			if m.Proxy == nil || m.Proxy.Source != tc.source {
				t.Errorf("Meta.Proxy = %+v, want Source %v", m.Proxy, tc.source)
			}
			if m.Detach == nil {
				t.Error("a plain proxied connection should still offer Detach")
			}
			_ = c.SetReadDeadline(time.Now().Add(patience))
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != payload {
				t.Fatalf("echo of the bytes after the header: %q, %v", got, err)
			}
			if err := echoOnce(c, "more"); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("[SECURITY] access rules apply to the real client", func(t *testing.T) {
		c := dialFrom(t, proxyAddr, l.Addr())
		_, _ = c.Write([]byte(realClientHdr))
		refused(t, c)
	})
	t.Run("[SECURITY] a trusted peer sending garbage is closed", func(t *testing.T) {
		c := dialFrom(t, proxyAddr, l.Addr())
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		refused(t, c)
	})
	t.Run("[SECURITY] a trusted peer sending a v1 header without end is closed", func(t *testing.T) {
		c := dialFrom(t, proxyAddr, l.Addr())
		_, _ = c.Write([]byte("PROXY TCP4 " + strings.Repeat("9", 200)))
		refused(t, c)
	})
	t.Run("[SECURITY] a trusted peer sending nothing is closed after the timeout", func(t *testing.T) {
		c := dialFrom(t, proxyAddr, l.Addr())
		refused(t, c)
	})
	t.Run("[SECURITY] a trusted peer sending half a header is closed after the timeout", func(t *testing.T) {
		c := dialFrom(t, proxyAddr, l.Addr())
		_, _ = c.Write([]byte("PROXY TCP4 198.51.100.1"))
		refused(t, c)
	})
}

func TestProxyOptionsValidation(t *testing.T) {
	for _, o := range []*ProxyOptions{{}, {Trusted: []netip.Prefix{{}}}} {
		if _, err := NewTCP(context.Background(), TCPOptions{Name: "x", Bind: "127.0.0.1:0", Proxy: o}); err == nil {
			t.Errorf("NewTCP accepted %+v", o)
		}
		if _, err := NewWS(context.Background(), WSOptions{Name: "x", Bind: "127.0.0.1:0", Proxy: o}); err == nil {
			t.Errorf("NewWS accepted %+v", o)
		}
	}
}

func TestSSLProxyProtocol(t *testing.T) {
	cert, pool := selfSigned(t)
	l := newProxyTCP(t, TCPOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, HandshakeTimeout: patience})
	metas := make(chan Meta, 1)
	serveListener(t, l, func(_ context.Context, c net.Conn, m Meta) {
		metas <- m
		_, _ = c.Write([]byte{'k'})
		_ = c.Close()
	})
	raw := dialFrom(t, proxyAddr, l.Addr())
	if _, err := raw.Write([]byte(realClientHdr)); err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	_ = c.SetDeadline(time.Now().Add(patience))
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake after the PROXY header: %v", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'k' {
		t.Fatalf("read %q, %v", b, err)
	}
	var m Meta
	select {
	case m = <-metas:
	case <-time.After(patience):
		t.Fatal("the handler was not called")
	}
	if m.TLS == nil || !m.TLS.HandshakeComplete || m.Peer != ap(realClient) || m.Proxy == nil {
		t.Fatalf("meta %+v", m)
	}
}

// proxyWSDial performs a WebSocket handshake over a connection from 127.0.0.2 that first
// sends header.
func proxyWSDial(t *testing.T, addr net.Addr, header string) (*websocket.Conn, error) {
	t.Helper()
	return proxyWSDialTLS(t, addr, header, nil)
}

// proxyWSDialTLS is proxyWSDial over TLS (wss) when tc is not nil.
func proxyWSDialTLS(t *testing.T, addr net.Addr, header string, tc *tls.Config) (*websocket.Conn, error) {
	t.Helper()
	scheme := "ws://"
	if tc != nil {
		scheme = "wss://"
	}
	tr := &http.Transport{
		TLSClientConfig:   tc,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(proxyAddr)}}
			c, err := d.DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			if _, err := io.WriteString(c, header); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, scheme+addr.String()+"/mqtt", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{"mqtt"},
	})
	if resp != nil && resp.Body != nil && err != nil {
		_ = resp.Body.Close()
	}
	if c != nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, err
}

func TestWSProxyProtocol(t *testing.T) {
	checkGoroutines(t)
	access, err := ParseAccessRules([]string{"deny 198.51.100.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	proxy := trustedProxy()
	proxy.Timeout = time.Minute // the slow client below must still be waiting when another is served
	l := newWSListener(t, WSOptions{Proxy: proxy, Access: access, Logger: discardLogger()})
	g := newGate()
	serveListener(t, l, g.handle)
	t.Cleanup(g.open)

	t.Run("the handler sees the real client while another one is slow", func(t *testing.T) {
		slow := dialFrom(t, proxyAddr, l.Addr())
		_, _ = slow.Write([]byte("PROXY TCP4 203.0.113"))
		c, err := proxyWSDial(t, l.Addr(), realClientHdr)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		m := nextMeta(t, g)
		if m.Peer != ap(realClient) || m.Proxy == nil || m.Proxy.Source != ap(realClient) || m.Header == nil {
			t.Fatalf("meta %+v, proxy %+v", m, m.Proxy)
		}
		nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
		if err := echoOnce(nc, "hello"); err != nil {
			t.Fatal(err)
		}
		// Accept did not wait for the slow client's header: it is still pending.
		_ = slow.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var b [1]byte
		if _, err := slow.Read(b[:]); !isTimeout(err) {
			t.Fatalf("the slow client's connection: %v, want it still open", err)
		}
		_ = slow.Close()
	})
	t.Run("[SECURITY] an untrusted peer is closed", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", l.Addr())
		_, _ = io.WriteString(c, realClientHdr+"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
		if err := closedByPeer(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("[SECURITY] a trusted peer sending garbage is closed", func(t *testing.T) {
		c := dialFrom(t, proxyAddr, l.Addr())
		_, _ = io.WriteString(c, "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
		if err := closedByPeer(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("[SECURITY] access rules apply to the real client", func(t *testing.T) {
		before := g.calls.Load()
		if _, err := proxyWSDial(t, l.Addr(), "PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"); err == nil {
			t.Fatal("a denied client was upgraded")
		}
		if g.calls.Load() != before {
			t.Fatal("the handler saw a denied client")
		}
	})
}

func TestWSSProxyProtocol(t *testing.T) {
	cert, pool := selfSigned(t)
	l := newWSListener(t, WSOptions{Proxy: trustedProxy(), Logger: discardLogger(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	g := newGate()
	serveListener(t, l, g.handle)
	t.Cleanup(g.open)
	c, err := proxyWSDialTLS(t, l.Addr(), realClientHdr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("upgrade over TLS after the PROXY header: %v", err)
	}
	m := nextMeta(t, g)
	if m.Peer != ap(realClient) || m.TLS == nil || m.Proxy == nil || m.Proxy.Source != ap(realClient) {
		t.Fatalf("meta %+v, proxy %+v", m, m.Proxy)
	}
	if err := echoOnce(websocket.NetConn(context.Background(), c, websocket.MessageBinary), "hello"); err != nil {
		t.Fatal(err)
	}
}
