package listener

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestWSMeta checks what the handler learns about a WebSocket connection: the listener
// name, the peer's address and the upgrade request's headers (for identity).
func TestWSMeta(t *testing.T) {
	checkGoroutines(t)
	l := newWSListener(t, WSOptions{Name: "meta"})
	g := newGate()
	serveListener(t, l, g.handle)
	hdr := http.Header{
		"Authorization":   {"Bearer token-1"},
		"X-Client-Cert":   {"CN=device-7"},
		"X-Forwarded-For": {"203.0.113.9"},
	}
	r := dialWSAttempt(t, l.Addr(), wsDial{header: hdr})
	if r.err != nil {
		t.Fatalf("dial: %v", r.err)
	}
	if got := r.conn.Subprotocol(); got != "mqtt" {
		t.Errorf("negotiated subprotocol %q, want mqtt", got)
	}
	var m Meta
	select {
	case m = <-g.metas:
	case <-time.After(patience):
		t.Fatal("the handler was not called")
	}
	if m.Listener != "ws:meta" {
		t.Errorf("Meta.Listener = %q, want ws:meta", m.Listener)
	}
	if m.Peer != r.local {
		t.Errorf("Meta.Peer = %v, want the client's address %v", m.Peer, r.local)
	}
	for k, v := range hdr {
		if got := m.Header.Values(k); !slices.Equal(got, v) {
			t.Errorf("Meta.Header[%s] = %q, want %q", k, got, v)
		}
	}
	if got := m.Header.Get("Sec-WebSocket-Protocol"); !strings.Contains(got, "mqtt") {
		t.Errorf("Meta.Header lacks the upgrade request's Sec-WebSocket-Protocol: %q", got)
	}
	if got := l.Open(); got != 1 {
		t.Errorf("Open() = %d, want 1", got)
	}
}

// TestWSPath checks that only the configured path upgrades; any other path gets 404 and
// never reaches the handler.
func TestWSPath(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		name   string
		config string // WSOptions.Path
		path   string // requested
		ok     bool
	}{
		{"default path", "", "/mqtt", true},
		{"default path with query", "", "/mqtt?client=1", true},
		{"root", "", "/", false},
		{"other", "", "/other", false},
		{"trailing slash", "", "/mqtt/", false},
		{"below", "", "/mqtt/x", false},
		{"case", "", "/MQTT", false},
		{"dot segments", "", "/mqtt/../other", false},
		{"configured path", "/ws/mqtt", "/ws/mqtt", true},
		{"default path when configured", "/ws/mqtt", "/mqtt", false},
		{"prefix of configured path", "/ws/mqtt", "/ws", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newWSListener(t, WSOptions{Path: tt.config})
			g := newGate()
			serveListener(t, l, g.handle)
			r := dialWSAttempt(t, l.Addr(), wsDial{path: tt.path})
			if tt.ok {
				if r.err != nil {
					t.Fatalf("upgrade on %s: %v", tt.path, r.err)
				}
				waitFor(t, "the handler", func() bool { return g.calls.Load() == 1 })
				return
			}
			if r.err == nil {
				t.Fatalf("upgrade on %s succeeded, want 404", tt.path)
			}
			if got := r.status(); got != http.StatusNotFound {
				t.Errorf("status %d, want 404", got)
			}
			if got := g.calls.Load(); got != 0 {
				t.Errorf("handler called %d times", got)
			}
		})
	}
}

// TestWSSubprotocol checks that a client must offer the mqtt subprotocol: one that does not
// is refused before the upgrade and never reaches the handler.
func TestWSSubprotocol(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		name   string
		protos []string
		none   bool
		ok     bool
	}{
		{name: "none offered", none: true},
		{name: "other", protos: []string{"wamp"}},
		{name: "lookalike", protos: []string{"mqttv3.1"}},
		{name: "prefix", protos: []string{"mqtt5"}},
		{name: "mqtt", protos: []string{"mqtt"}, ok: true},
		{name: "mqtt among others", protos: []string{"wamp", "mqtt"}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newWSListener(t, WSOptions{})
			g := newGate()
			serveListener(t, l, g.handle)
			r := dialWSAttempt(t, l.Addr(), wsDial{protos: tt.protos, noMQTT: tt.none})
			if tt.ok {
				if r.err != nil {
					t.Fatalf("upgrade offering %q: %v", tt.protos, r.err)
				}
				if got := r.conn.Subprotocol(); got != "mqtt" {
					t.Errorf("negotiated %q, want mqtt", got)
				}
				waitFor(t, "the handler", func() bool { return g.calls.Load() == 1 })
				return
			}
			if r.err == nil {
				t.Fatalf("upgrade offering %q succeeded", tt.protos)
			}
			if got := r.status(); got != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (refused before the upgrade)", got)
			}
			if got := g.calls.Load(); got != 0 {
				t.Errorf("handler called %d times", got)
			}
		})
	}
}

// TestWSOrigin checks the origin policy: with CheckOrigin on, a present Origin header must
// name the host the request was sent to or be allowed; anything else gets 403 and never
// reaches the handler.
func TestWSOrigin(t *testing.T) {
	checkGoroutines(t)
	const self = "SELF" // replaced by http://<listener address>
	tests := []struct {
		name    string
		check   bool
		allowed []string
		origin  string // "" sends none
		ok      bool
	}{
		{"check off, foreign origin", false, nil, "https://evil.example", true},
		{"no origin header", true, nil, "", true},
		{"same host", true, nil, self, true},
		{"foreign origin", true, nil, "https://evil.example", false},
		{"same host name, other port", true, nil, "http://127.0.0.1:1", false},
		{"null origin", true, nil, "null", false},
		{"unparsable origin", true, nil, "http://%zz", false},
		{"allowed host", true, []string{"app.example.com"}, "https://app.example.com", true},
		{"allowed host, case", true, []string{"app.example.com"}, "https://APP.example.com", true},
		{"not the allowed host", true, []string{"app.example.com"}, "https://evil.example.com", false},
		{"allowed host as suffix", true, []string{"app.example.com"}, "https://app.example.com.evil.net", false},
		{"allowed origin with scheme", true, []string{"https://app.example.com"}, "https://app.example.com", true},
		{"allowed origin, other scheme", true, []string{"https://app.example.com"}, "http://app.example.com", false},
		{"allowed pattern", true, []string{"*.example.com"}, "https://a.example.com", true},
		{"allowed pattern, other domain", true, []string{"*.example.com"}, "https://example.com.evil.net", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newWSListener(t, WSOptions{CheckOrigin: tt.check, AllowedOrigins: tt.allowed})
			g := newGate()
			serveListener(t, l, g.handle)
			var hdr http.Header
			if tt.origin != "" {
				origin := tt.origin
				if origin == self {
					origin = "http://" + l.Addr().String()
				}
				hdr = http.Header{"Origin": {origin}}
			}
			r := dialWSAttempt(t, l.Addr(), wsDial{header: hdr})
			if tt.ok {
				if r.err != nil {
					t.Fatalf("upgrade with Origin %q: %v", tt.origin, r.err)
				}
				waitFor(t, "the handler", func() bool { return g.calls.Load() == 1 })
				return
			}
			if r.err == nil {
				t.Fatalf("upgrade with Origin %q succeeded", tt.origin)
			}
			if got := r.status(); got != http.StatusForbidden {
				t.Errorf("status %d, want 403", got)
			}
			if got := g.calls.Load(); got != 0 {
				t.Errorf("handler called %d times", got)
			}
		})
	}
}

// countingEcho is a Handler that echoes and records how many bytes it read and whether
// its connection ended with an error.
type countingEcho struct {
	read atomic.Int64
	errs chan error
}

func (e *countingEcho) handle(_ context.Context, c net.Conn, _ Meta) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		e.read.Add(int64(n))
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				e.errs <- werr
				return
			}
		}
		if err != nil {
			e.errs <- err
			return
		}
	}
}

// TestWSReadLimit checks that a WebSocket message larger than ReadLimit ends the
// connection (with close status 1009), whether sent in one frame or in fragments, and
// that messages within the limit pass however many there are.
func TestWSReadLimit(t *testing.T) {
	checkGoroutines(t)
	const limit = 64
	tests := []struct {
		name string
		// msgs are the messages the client sends; each is a list of frame sizes.
		msgs [][]int
		ok   bool
	}{
		{"at the limit", [][]int{{limit}}, true},
		{"many messages within the limit", [][]int{{60}, {60}, {60}, {limit}}, true},
		{"fragments within the limit", [][]int{{20, 20, 24}}, true},
		{"one byte over", [][]int{{limit + 1}}, false},
		{"far over", [][]int{{16 * limit}}, false},
		{"fragments over", [][]int{{30, 30, 30}}, false},
		{"over after good messages", [][]int{{10}, {limit}, {limit + 10}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newWSListener(t, WSOptions{ReadLimit: limit})
			e := &countingEcho{errs: make(chan error, 1)}
			serveListener(t, l, e.handle)
			r := dialWSAttempt(t, l.Addr(), wsDial{})
			if r.err != nil {
				t.Fatalf("dial: %v", r.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			sent := 0
			for _, frames := range tt.msgs {
				w, err := r.conn.Writer(ctx, websocket.MessageBinary)
				if err != nil {
					t.Fatalf("writer: %v", err)
				}
				for _, n := range frames {
					// Each Write on the message writer goes out as one frame.
					if _, err := w.Write(bytes.Repeat([]byte{'m'}, n)); err != nil {
						t.Fatalf("write frame: %v", err)
					}
					sent += n
				}
				if err := w.Close(); err != nil {
					t.Fatalf("end message: %v", err)
				}
			}
			// Read the echo back until it is complete or the connection ends.
			got := 0
			var rerr error
			for i := 0; i < 1000 && (got < sent || !tt.ok); i++ {
				_, b, err := r.conn.Read(ctx)
				if err != nil {
					rerr = err
					break
				}
				got += len(b)
			}
			if tt.ok {
				if rerr != nil || got != sent {
					t.Fatalf("echoed %d of %d bytes: %v", got, sent, rerr)
				}
				if err := r.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
					t.Errorf("close: %v", err)
				}
				waitFor(t, "the handler to end", func() bool { return l.Open() == 0 })
				return
			}
			if rerr == nil {
				t.Fatalf("the connection survived a message over the limit (%d bytes echoed)", got)
			}
			if st := websocket.CloseStatus(rerr); st != websocket.StatusMessageTooBig {
				t.Errorf("closed with %v (%v), want %v", st, rerr, websocket.StatusMessageTooBig)
			}
			select {
			case err := <-e.errs:
				if !errors.Is(err, websocket.ErrMessageTooBig) {
					t.Errorf("handler's read ended with %v, want ErrMessageTooBig", err)
				}
			case <-time.After(patience):
				t.Fatal("the handler's connection did not end")
			}
			// The messages before the last are within the limit. Of the last, the handler
			// may read ReadLimit+1 bytes before the read fails: the WebSocket library
			// reads one byte past the limit to tell a full message from a longer one.
			within := 0
			for _, frames := range tt.msgs[:len(tt.msgs)-1] {
				for _, n := range frames {
					within += n
				}
			}
			if n, most := e.read.Load(), int64(within+limit+1); n > most {
				t.Errorf("the handler read %d bytes, at most %d expected", n, most)
			}
			waitFor(t, "the handler to end", func() bool { return l.Open() == 0 })
		})
	}
}

// mqttPackets are real MQTT 3.1.1 packets: CONNECT, a PUBLISH whose remaining length takes
// two bytes, PINGREQ and DISCONNECT.
func mqttPackets() [][]byte {
	connect := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 'c'}
	payload := bytes.Repeat([]byte("p"), 200)
	body := append([]byte{0, 1, 't'}, payload...)
	publish := append([]byte{0x30, byte(len(body)&0x7f | 0x80), byte(len(body) >> 7)}, body...)
	return [][]byte{connect, publish, {0xc0, 0}, {0xe0, 0}}
}

// packetEcho is a Handler that reads MQTT packets from the byte stream and writes each back
// as one write (one WebSocket message).
func packetEcho(_ context.Context, c net.Conn, _ Meta) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		pkt, _, err := readMQTTPacket(br)
		if err != nil {
			return
		}
		if _, err := c.Write(pkt); err != nil {
			return
		}
	}
}

// TestWSMQTTStream checks that binary messages carry a byte stream: MQTT packets may span
// WebSocket messages, and one message may carry several packets.
func TestWSMQTTStream(t *testing.T) {
	checkGoroutines(t)
	pkts := mqttPackets()
	stream := bytes.Join(pkts, nil)
	// Cut points in the concatenated packets: inside the PUBLISH fixed header (its
	// remaining length spans two messages), inside its body, and one message holding the
	// end of the PUBLISH, the PINGREQ and the DISCONNECT.
	tests := []struct {
		name string
		cuts []int
	}{
		{"all in one message", nil},
		{"one message per packet", []int{len(pkts[0]), len(pkts[0]) + len(pkts[1]), len(pkts[0]) + len(pkts[1]) + 2}},
		{"split remaining length", []int{len(pkts[0]) + 2}},
		{"split body, several in one", []int{len(pkts[0]) + 50}},
		{"one byte per message", func() []int {
			var c []int
			for i := 1; i < len(stream); i++ {
				c = append(c, i)
			}
			return c
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newWSListener(t, WSOptions{ReadLimit: 1024})
			serveListener(t, l, packetEcho)
			r := dialWSAttempt(t, l.Addr(), wsDial{})
			if r.err != nil {
				t.Fatalf("dial: %v", r.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			prev := 0
			for _, cut := range append(tt.cuts, len(stream)) {
				if err := r.conn.Write(ctx, websocket.MessageBinary, stream[prev:cut]); err != nil {
					t.Fatalf("write: %v", err)
				}
				prev = cut
			}
			for i, want := range pkts {
				typ, got, err := r.conn.Read(ctx)
				if err != nil {
					t.Fatalf("read packet %d: %v", i, err)
				}
				if typ != websocket.MessageBinary {
					t.Errorf("packet %d came as %v, want binary", i, typ)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("packet %d: got % x, want % x", i, got, want)
				}
			}
			if err := r.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Errorf("close: %v", err)
			}
			waitFor(t, "the handler to end", func() bool { return l.Open() == 0 })
		})
	}
}

// TestWSTextMessage checks that a text message is not taken as MQTT bytes: the connection
// ends with close status 1003 and the handler reads nothing.
func TestWSTextMessage(t *testing.T) {
	checkGoroutines(t)
	l := newWSListener(t, WSOptions{})
	e := &countingEcho{errs: make(chan error, 1)}
	serveListener(t, l, e.handle)
	r := dialWSAttempt(t, l.Addr(), wsDial{})
	if r.err != nil {
		t.Fatalf("dial: %v", r.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := r.conn.Write(ctx, websocket.MessageText, []byte{0xc0, 0}); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, _, err := r.conn.Read(ctx)
	if st := websocket.CloseStatus(err); st != websocket.StatusUnsupportedData {
		t.Errorf("read after a text message: %v (status %v), want %v", err, st, websocket.StatusUnsupportedData)
	}
	select {
	case <-e.errs:
	case <-time.After(patience):
		t.Fatal("the handler's connection did not end")
	}
	if n := e.read.Load(); n != 0 {
		t.Errorf("the handler read %d bytes of a text message", n)
	}
	waitFor(t, "the handler to end", func() bool { return l.Open() == 0 })
}

// TestWSConcurrentUpgrades fires upgrades at once at a listener with a small limit: the
// number of running handlers never exceeds it.
func TestWSConcurrentUpgrades(t *testing.T) {
	checkGoroutines(t)
	const limit, attempts = 2, 16
	l := newWSListener(t, WSOptions{MaxConnections: limit})
	g := newGate()
	serveListener(t, l, g.handle)
	var (
		wg        sync.WaitGroup
		succeeded atomic.Int64
		start     = make(chan struct{})
	)
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if r := dialWSAttempt(t, l.Addr(), wsDial{}); r.err == nil {
				succeeded.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := succeeded.Load(); n < 1 || n > limit {
		t.Errorf("%d upgrades succeeded, want 1 to %d", n, limit)
	}
	waitFor(t, "the handlers", func() bool { return g.calls.Load() == succeeded.Load() })
	if got := g.peak.Load(); got > limit {
		t.Errorf("%d handlers ran at once, limit %d", got, limit)
	}
	if got := l.Open(); got > limit {
		t.Errorf("Open() = %d, limit %d", got, limit)
	}
}

// TestWSPaho connects a real MQTT client (paho, which offers the mqtt subprotocol) through
// the listener to a handler that plays a minimal MQTT 3.1.1 server.
func TestWSPaho(t *testing.T) {
	l := newWSListener(t, WSOptions{ReadLimit: 1024, CheckOrigin: true})
	serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			pkt, body, err := readMQTTPacket(br)
			if err != nil {
				return
			}
			var reply []byte
			switch pkt[0] >> 4 {
			case 1: // CONNECT
				reply = []byte{0x20, 2, 0, 0}
			case 8: // SUBSCRIBE: grant QoS 0
				reply = []byte{0x90, 3, body[0], body[1], 0}
			case 3: // PUBLISH QoS 0: deliver it back
				reply = pkt
			case 12: // PINGREQ
				reply = []byte{0xd0, 0}
			case 14: // DISCONNECT
				return
			}
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	})
	got := make(chan string, 1)
	opts := mqtt.NewClientOptions().
		AddBroker("ws://" + l.Addr().String() + "/mqtt").
		SetClientID("paho-ws").
		SetAutoReconnect(false).
		SetConnectTimeout(patience).
		SetProtocolVersion(4)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("t", 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := c.Publish("t", 0, false, "over websocket"); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "over websocket" {
			t.Errorf("received %q", p)
		}
	case <-time.After(patience):
		t.Fatal("the message did not come back")
	}
}

// TestNewWSOptions checks that options that could never work are refused when the
// listener is created rather than at the first connection.
func TestNewWSOptions(t *testing.T) {
	tests := []struct {
		name string
		o    WSOptions
		want string
	}{
		{"path without slash", WSOptions{Path: "mqtt"}, "path"},
		{"bad origin pattern", WSOptions{CheckOrigin: true, AllowedOrigins: []string{"[app.example.com"}}, "allowed origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Name, tt.o.Bind = "bad", "127.0.0.1:0"
			l, err := NewWS(context.Background(), tt.o)
			if err == nil {
				_ = l.Close()
				t.Fatal("NewWS succeeded")
			}
			if !strings.Contains(err.Error(), "ws:bad") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want it to name ws:bad and %q", err, tt.want)
			}
		})
	}
}
