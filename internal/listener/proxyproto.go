package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// ProxyOptions enable the PROXY protocol (HAProxy, versions 1 and 2) on a listener: every
// connection must begin with a PROXY header sent by a trusted load balancer, which names
// the real client. The header is read before anything else, including a TLS handshake.
type ProxyOptions struct {
	// Trusted lists the peers allowed to send a PROXY header; every other peer is closed
	// as soon as it is accepted, before any byte is read from it. It must not be empty.
	Trusted []netip.Prefix
	// Timeout bounds the wait for the header (default 3 s).
	Timeout time.Duration
}

// ProxyInfo is what a PROXY header said.
type ProxyInfo struct {
	// Source is the real client. It is invalid for a v2 LOCAL or v1 UNKNOWN header (sent
	// by the proxy's own health checks) and for a v2 AF_UNSPEC address.
	Source netip.AddrPort
	// Destination is the address the client connected to on the proxy.
	Destination netip.AddrPort
	// SSLCN is the client certificate's common name from a v2 PP2_SUBTYPE_SSL_CN TLV,
	// sent by a proxy that terminated TLS. It is set only when SSLVerified is true: the
	// CN of a certificate the proxy did not verify is dropped. "" when absent.
	SSLCN string
	// SSLVerified reports a v2 PP2_TYPE_SSL TLV saying that the client connected over TLS,
	// presented a certificate and that the proxy verified it (verify field 0).
	SSLVerified bool
}

// ErrProxyHeader is wrapped by every error ReadProxyHeader returns for a header that is
// malformed or not supported (I/O errors, including a short read, are wrapped instead).
var ErrProxyHeader = errors.New("invalid PROXY protocol header")

const (
	proxyV1MaxLen     = 107  // the longest v1 header, CRLF included
	proxyV2MaxPayload = 4096 // our cap on the v2 address and TLV block; the format allows 65535
	proxyDefaultWait  = 3 * time.Second

	pp2TypeCRC32C    = 0x03
	pp2TypeSSL       = 0x20
	pp2SubtypeSSLCN  = 0x22
	pp2ClientSSL     = 0x01
	pp2ClientCertCon = 0x02
	pp2ClientCertSes = 0x04
)

// proxyV2Sig begins every v2 header.
const proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"

func proxyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProxyHeader, fmt.Sprintf(format, args...))
}

// ReadProxyHeader reads exactly one PROXY protocol header, version 1 (text) or 2 (binary),
// from r and not one byte more, so that whatever follows it (a TLS ClientHello, MQTT
// packets) can still be read from r. It never reads more than 107 bytes of a v1 header or
// 16+4096 bytes of a v2 header, refusing a v2 header that announces more. Parsing is
// strict: anything malformed or unsupported (v2 AF_UNIX and datagram addresses, unknown
// commands) is an error wrapping ErrProxyHeader.
func ReadProxyHeader(r io.Reader) (ProxyInfo, error) {
	// Every header is at least 15 bytes ("PROXY UNKNOWN\r\n"), so the first 12 can be
	// read at once without reading past a v1 header.
	var buf [proxyV1MaxLen]byte
	if _, err := io.ReadFull(r, buf[:12]); err != nil {
		return ProxyInfo{}, fmt.Errorf("PROXY header: %w", err)
	}
	switch {
	case string(buf[:12]) == proxyV2Sig:
		return readProxyV2(r)
	case bytes.HasPrefix(buf[:12], []byte("PROXY ")):
		return readProxyV1(r, buf[:])
	}
	return ProxyInfo{}, proxyErr("no PROXY signature")
}

// readProxyV1 reads the rest of a v1 header whose first 12 bytes are in buf, one byte at a
// time so as not to read past its CRLF.
func readProxyV1(r io.Reader, buf []byte) (ProxyInfo, error) {
	n := 12
	for {
		if n >= 2 && buf[n-2] == '\r' && buf[n-1] == '\n' {
			break
		}
		if n == len(buf) {
			return ProxyInfo{}, proxyErr("v1 header longer than %d bytes", proxyV1MaxLen)
		}
		if _, err := io.ReadFull(r, buf[n:n+1]); err != nil {
			return ProxyInfo{}, fmt.Errorf("PROXY v1 header: %w", noEOF(err))
		}
		n++
	}
	return parseProxyV1(buf[:n-2])
}

// parseProxyV1 parses a v1 line without its CRLF.
func parseProxyV1(line []byte) (ProxyInfo, error) {
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			return ProxyInfo{}, proxyErr("v1 header has a control or non-ASCII byte 0x%02x", c)
		}
	}
	f := bytes.Split(line, []byte(" "))
	if string(f[0]) != "PROXY" || len(f) < 2 {
		return ProxyInfo{}, proxyErr("v1 header does not begin with \"PROXY \"")
	}
	if string(f[1]) == "UNKNOWN" {
		// The proxy does not know the client (a health check): the rest of the line
		// must be ignored.
		return ProxyInfo{}, nil
	}
	var want4 bool
	switch string(f[1]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return ProxyInfo{}, proxyErr("v1 protocol %q is none of TCP4, TCP6, UNKNOWN", f[1])
	}
	if len(f) != 6 {
		return ProxyInfo{}, proxyErr("v1 %s header has %d fields, want 6 separated by single spaces", f[1], len(f))
	}
	src, err := parseProxyV1Addr(f[2], want4)
	if err != nil {
		return ProxyInfo{}, fmt.Errorf("source address: %w", err)
	}
	dst, err := parseProxyV1Addr(f[3], want4)
	if err != nil {
		return ProxyInfo{}, fmt.Errorf("destination address: %w", err)
	}
	sport, err := parseProxyV1Port(f[4])
	if err != nil {
		return ProxyInfo{}, fmt.Errorf("source port: %w", err)
	}
	dport, err := parseProxyV1Port(f[5])
	if err != nil {
		return ProxyInfo{}, fmt.Errorf("destination port: %w", err)
	}
	return ProxyInfo{Source: netip.AddrPortFrom(src, sport), Destination: netip.AddrPortFrom(dst, dport)}, nil
}

func parseProxyV1Addr(b []byte, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	switch {
	case err != nil:
		return netip.Addr{}, proxyErr("v1 address %q: %v", b, err)
	case a.Zone() != "":
		return netip.Addr{}, proxyErr("v1 address %q has a zone", b)
	case want4 != a.Is4():
		return netip.Addr{}, proxyErr("v1 address %q does not match the protocol", b)
	}
	return a, nil
}

// parseProxyV1Port parses a decimal port 0..65535 without sign or leading zero.
func parseProxyV1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, proxyErr("v1 port %q", b)
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, proxyErr("v1 port %q", b)
		}
	}
	p, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, proxyErr("v1 port %q out of range", b)
	}
	return uint16(p), nil
}

// readProxyV2 reads the rest of a v2 header after its 12-byte signature.
func readProxyV2(r io.Reader) (ProxyInfo, error) {
	var hdr [16]byte
	copy(hdr[:], proxyV2Sig)
	if _, err := io.ReadFull(r, hdr[12:]); err != nil {
		return ProxyInfo{}, fmt.Errorf("PROXY v2 header: %w", noEOF(err))
	}
	verCmd, fam := hdr[12], hdr[13]
	if verCmd>>4 != 2 {
		return ProxyInfo{}, proxyErr("v2 version %d, want 2", verCmd>>4)
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return ProxyInfo{}, proxyErr("v2 command %d is neither LOCAL nor PROXY", cmd)
	}
	n := int(binary.BigEndian.Uint16(hdr[14:16]))
	if n > proxyV2MaxPayload {
		return ProxyInfo{}, proxyErr("v2 header announces %d bytes, more than the %d accepted", n, proxyV2MaxPayload)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return ProxyInfo{}, fmt.Errorf("PROXY v2 header: %w", noEOF(err))
	}
	if cmd == 0 {
		// LOCAL: the proxy's own connection (a health check); its addresses are to be
		// ignored.
		return ProxyInfo{}, nil
	}
	var info ProxyInfo
	var addrLen int
	switch fam {
	case 0x00: // AF_UNSPEC: the receiver ignores the address block.
	case 0x11: // TCP over IPv4
		addrLen = 12
	case 0x21: // TCP over IPv6
		addrLen = 36
	default:
		return ProxyInfo{}, proxyErr("v2 address family/protocol 0x%02x is not supported (only TCP over IPv4 or IPv6)", fam)
	}
	if n < addrLen {
		return ProxyInfo{}, proxyErr("v2 header of %d bytes is too short for its addresses", n)
	}
	switch addrLen {
	case 12:
		info.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(payload[0:4])), binary.BigEndian.Uint16(payload[8:10]))
		info.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(payload[4:8])), binary.BigEndian.Uint16(payload[10:12]))
	case 36:
		info.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(payload[0:16])), binary.BigEndian.Uint16(payload[32:34]))
		info.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(payload[16:32])), binary.BigEndian.Uint16(payload[34:36]))
	}
	if err := parseProxyV2TLVs(&info, hdr[:], payload, addrLen); err != nil {
		return ProxyInfo{}, err
	}
	return info, nil
}

// parseProxyV2TLVs reads the TLVs that follow the addresses in payload. hdr is the 16-byte
// fixed header, needed to check a CRC32C TLV.
func parseProxyV2TLVs(info *ProxyInfo, hdr, payload []byte, off int) error {
	var seenSSL, seenCRC bool
	for off < len(payload) {
		if len(payload)-off < 3 {
			return proxyErr("v2 TLV header truncated at offset %d", off)
		}
		typ := payload[off]
		l := int(binary.BigEndian.Uint16(payload[off+1 : off+3]))
		off += 3
		if len(payload)-off < l {
			return proxyErr("v2 TLV 0x%02x of %d bytes overruns the header", typ, l)
		}
		val := payload[off : off+l]
		switch typ {
		case pp2TypeCRC32C:
			if seenCRC {
				return proxyErr("v2 header has two CRC32C TLVs")
			}
			seenCRC = true
			if l != 4 {
				return proxyErr("v2 CRC32C TLV of %d bytes, want 4", l)
			}
			want := binary.BigEndian.Uint32(val)
			h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
			_, _ = h.Write(hdr)
			_, _ = h.Write(payload[:off])
			_, _ = h.Write([]byte{0, 0, 0, 0})
			_, _ = h.Write(payload[off+4:])
			if h.Sum32() != want {
				return proxyErr("v2 CRC32C mismatch")
			}
		case pp2TypeSSL:
			if seenSSL {
				return proxyErr("v2 header has two SSL TLVs")
			}
			seenSSL = true
			if err := parseProxyV2SSL(info, val); err != nil {
				return err
			}
		}
		off += l
	}
	return nil
}

// parseProxyV2SSL parses the value of a PP2_TYPE_SSL TLV: client flags, verify result and
// sub-TLVs.
func parseProxyV2SSL(info *ProxyInfo, val []byte) error {
	if len(val) < 5 {
		return proxyErr("v2 SSL TLV of %d bytes, want at least 5", len(val))
	}
	client := val[0]
	verify := binary.BigEndian.Uint32(val[1:5])
	var cn string
	var seenCN bool
	for off := 5; off < len(val); {
		if len(val)-off < 3 {
			return proxyErr("v2 SSL sub-TLV header truncated")
		}
		typ := val[off]
		l := int(binary.BigEndian.Uint16(val[off+1 : off+3]))
		off += 3
		if len(val)-off < l {
			return proxyErr("v2 SSL sub-TLV 0x%02x of %d bytes overruns its TLV", typ, l)
		}
		if typ == pp2SubtypeSSLCN {
			if seenCN {
				return proxyErr("v2 SSL TLV has two CN sub-TLVs")
			}
			seenCN = true
			v := val[off : off+l]
			if !utf8.Valid(v) || bytes.IndexByte(v, 0) >= 0 {
				return proxyErr("v2 SSL CN is not valid UTF-8 text")
			}
			cn = string(v)
		}
		off += l
	}
	info.SSLVerified = client&pp2ClientSSL != 0 && client&(pp2ClientCertCon|pp2ClientCertSes) != 0 && verify == 0
	if info.SSLVerified {
		info.SSLCN = cn
	}
	return nil
}

// noEOF turns the EOF of a header cut short after its first bytes into ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// proxyConfig is a listener's validated ProxyOptions.
type proxyConfig struct {
	trusted []netip.Prefix
	timeout time.Duration
}

// newProxyConfig validates o; nil o gives nil.
func newProxyConfig(o *ProxyOptions) (*proxyConfig, error) {
	if o == nil {
		return nil, nil
	}
	if len(o.Trusted) == 0 {
		return nil, errors.New("proxy protocol: no trusted proxy address")
	}
	pc := &proxyConfig{timeout: o.Timeout}
	for _, p := range o.Trusted {
		if !p.IsValid() {
			return nil, fmt.Errorf("proxy protocol: invalid trusted prefix %v", p)
		}
		pc.trusted = append(pc.trusted, p.Masked())
	}
	if pc.timeout <= 0 {
		pc.timeout = proxyDefaultWait
	}
	return pc, nil
}

// trusts reports whether a PROXY header may come from addr.
func (pc *proxyConfig) trusts(addr netip.Addr) bool {
	u := addr.Unmap()
	for _, p := range pc.trusted {
		if p.Contains(u) || p.Contains(addr) {
			return true
		}
	}
	return false
}

// read reads the PROXY header from conn within the timeout, or until ctx is done. It
// leaves conn with no read deadline.
func (pc *proxyConfig) read(ctx context.Context, conn net.Conn) (ProxyInfo, error) {
	if err := conn.SetReadDeadline(time.Now().Add(pc.timeout)); err != nil {
		return ProxyInfo{}, fmt.Errorf("PROXY header: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	info, err := ReadProxyHeader(conn)
	if !stop() {
		return ProxyInfo{}, fmt.Errorf("PROXY header: %w", context.Cause(ctx))
	}
	if err != nil {
		return ProxyInfo{}, err
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return ProxyInfo{}, fmt.Errorf("PROXY header: %w", err)
	}
	return info, nil
}

// proxyConn is a WebSocket listener's accepted connection while the PROXY protocol is on.
// Accept must not wait for one client's header, so the header is read by the first call
// of Read, Write or RemoteAddr, from the goroutine net/http runs for the connection (its
// first call is RemoteAddr). Until then the connection is only counted; afterwards
// RemoteAddr is the real client, and a missing, malformed or access-denied header fails
// every Read and Write, which ends the connection.
type proxyConn struct {
	net.Conn
	pc     *proxyConfig
	access *AccessRules
	log    *slog.Logger
	name   string

	once sync.Once
	info ProxyInfo
	err  error

	mu    sync.Mutex // guards ready and rd
	ready bool       // header read: deadlines go straight to Conn
	rd    time.Time  // the read deadline set by the user before ready
}

// handshake reads the header once; every caller waits for it.
func (c *proxyConn) handshake() error {
	c.once.Do(func() {
		info, err := c.pc.read(context.Background(), c.Conn)
		switch {
		case err != nil:
			c.log.Debug("PROXY header refused", "listener", c.name, "proxy", c.Conn.RemoteAddr(), "err", err)
		case info.Source.IsValid() && !c.access.Allowed(info.Source.Addr()):
			err = fmt.Errorf("client %v refused by access rules", info.Source)
			c.log.Debug("connection refused by access rules", "listener", c.name, "peer", info.Source, "proxy", c.Conn.RemoteAddr())
		case !info.Source.IsValid() && !c.access.Allowed(peerOf(c.Conn.RemoteAddr()).Addr()):
			err = fmt.Errorf("proxy %v refused by access rules", c.Conn.RemoteAddr())
			c.log.Debug("connection refused by access rules", "listener", c.name, "peer", c.Conn.RemoteAddr())
		default:
			err = c.takeIP(info)
		}
		if err != nil {
			c.err = fmt.Errorf("listener %s: %w", c.name, err)
			_ = c.Conn.Close()
			return
		}
		c.info = info
		c.mu.Lock()
		c.ready = true
		err = c.Conn.SetReadDeadline(c.rd)
		c.mu.Unlock()
		if err != nil {
			c.err = fmt.Errorf("listener %s: %w", c.name, err)
			_ = c.Conn.Close()
		}
	})
	return c.err
}

// takeIP counts the connection against the per-address limits of the client the header
// named (of the proxy, for a LOCAL or UNKNOWN header).
func (c *proxyConn) takeIP(info ProxyInfo) error {
	sc, ok := c.Conn.(*slotConn)
	if !ok {
		return nil
	}
	peer := info.Source
	if !peer.IsValid() {
		peer = peerOf(c.Conn.RemoteAddr())
	}
	ip, why := sc.l.perIP.take(peer.Addr())
	if why != 0 {
		sc.l.refuse(why, peer, c.Conn.RemoteAddr())
		return fmt.Errorf("client %v refused: %s", peer, why)
	}
	sc.attachIP(ip)
	return nil
}

// Read implements net.Conn; the first call reads the PROXY header first.
func (c *proxyConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write implements net.Conn; nothing is written before the PROXY header is accepted.
func (c *proxyConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// RemoteAddr implements net.Conn: it is the real client named by the PROXY header, read
// first if need be; the proxy's address for a LOCAL or UNKNOWN header, or a refused one.
func (c *proxyConn) RemoteAddr() net.Addr {
	if c.handshake() == nil && c.info.Source.IsValid() {
		return net.TCPAddrFromAddrPort(c.info.Source)
	}
	return c.Conn.RemoteAddr()
}

// SetDeadline implements net.Conn. Before the header is read the read deadline is only
// recorded, so that it neither cuts short nor lengthens the header's own deadline.
func (c *proxyConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	if c.ready {
		return c.Conn.SetDeadline(t)
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn; see SetDeadline.
func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	if c.ready {
		return c.Conn.SetReadDeadline(t)
	}
	return nil
}

// CloseWrite half-closes the socket, as net/http does with a *net.TCPConn.
func (c *proxyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// proxyInfoOf returns the PROXY header read on c, a connection from a WebSocket listener
// (possibly inside TLS), or nil when there is none.
func proxyInfoOf(c net.Conn) *ProxyInfo {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	pc, ok := c.(*proxyConn)
	if !ok || pc.handshake() != nil {
		return nil
	}
	info := pc.info
	return &info
}

// slotConnOf returns the slotConn under c, a connection from a WebSocket listener
// (possibly inside TLS and a proxyConn), or nil.
func slotConnOf(c net.Conn) *slotConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if pc, ok := c.(*proxyConn); ok {
		c = pc.Conn
	}
	sc, _ := c.(*slotConn)
	return sc
}
