package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// patience bounds every wait in these tests. It only keeps a broken test from hanging;
// no test asserts that anything happens faster than this.
const patience = 10 * time.Second

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkGoroutines fails the test if, once every cleanup registered after it has run, more
// goroutines are alive than when it was called. Call it first so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(patience)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before the test, %d after\n%s", base, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// gate is a Handler that echoes what it reads until the peer leaves or release is closed.
// It records the metadata it is given and the most handlers that ran at once.
type gate struct {
	release   chan struct{}
	releaseMu sync.Once
	calls     atomic.Int64
	running   atomic.Int64
	peak      atomic.Int64
	metas     chan Meta
	ctxDone   chan struct{} // closed by the first handler that sees its ctx end
	ctxOnce   sync.Once
}

func newGate() *gate {
	return &gate{release: make(chan struct{}), metas: make(chan Meta, 256), ctxDone: make(chan struct{})}
}

// open lets every running and future handler return.
func (g *gate) open() { g.releaseMu.Do(func() { close(g.release) }) }

func (g *gate) handle(ctx context.Context, c net.Conn, m Meta) {
	defer c.Close()
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	g.calls.Add(1)
	select {
	case g.metas <- m:
	default:
	}
	echoed := make(chan struct{})
	go func() { defer close(echoed); _, _ = io.Copy(c, c) }()
	ctxDone := ctx.Done()
	for waiting := true; waiting; {
		select {
		case <-g.release:
			waiting = false
		case <-echoed:
			waiting = false
		case <-ctxDone:
			// The connection is the handler's to end: note it and keep echoing.
			g.ctxOnce.Do(func() { close(g.ctxDone) })
			ctxDone = nil
		}
	}
	_ = c.Close()
	<-echoed
}

// served is a Serve call running in its own goroutine.
type served struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Serve's result, once done is closed
}

// returned waits (at most patience) for Serve to return and reports whether it did.
func (s *served) returned() bool {
	select {
	case <-s.done:
		return true
	case <-time.After(patience):
		return false
	}
}

// serveListener runs l.Serve(ctx, h) in a goroutine. Cleanup cancels ctx, closes l and
// checks that Serve returned nil.
func serveListener(t *testing.T, l Listener, h Handler) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(s.done); s.err = l.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		_ = l.Close()
		if !s.returned() {
			t.Errorf("%s: Serve did not return after cancel and Close", l.Name())
		} else if s.err != nil {
			t.Errorf("%s: Serve: %v", l.Name(), s.err)
		}
	})
	return s
}

func newTCPListener(t *testing.T, name string, max int64) *TCP {
	t.Helper()
	l, err := NewTCP(context.Background(), TCPOptions{Name: name, Bind: "127.0.0.1:0", MaxConnections: max})
	if err != nil {
		t.Fatalf("NewTCP: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func newWSListener(t *testing.T, o WSOptions) *WS {
	t.Helper()
	if o.Bind == "" {
		o.Bind = "127.0.0.1:0"
	}
	if o.Name == "" {
		o.Name = "test"
	}
	l, err := NewWS(context.Background(), o)
	if err != nil {
		t.Fatalf("NewWS: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// dialTCP connects to addr; cleanup closes the connection.
func dialTCP(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: patience}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// wsDial is one WebSocket handshake attempt.
type wsDial struct {
	path   string      // default "/mqtt"
	protos []string    // offered subprotocols; nil offers "mqtt"
	header http.Header // extra request headers, e.g. Origin
	noMQTT bool        // offer no subprotocol at all
}

type wsResult struct {
	conn  *websocket.Conn
	resp  *http.Response
	local netip.AddrPort // the client's side of the TCP connection
	err   error
}

// dialWSAttempt performs the handshake with a transport of its own that keeps no idle
// connections. The returned conn, if any, is closed at cleanup.
func dialWSAttempt(t *testing.T, addr net.Addr, d wsDial) wsResult {
	t.Helper()
	var local atomic.Value
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, a)
			if err == nil {
				local.Store(c.LocalAddr().(*net.TCPAddr).AddrPort())
			}
			return c, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	path := d.path
	if path == "" {
		path = "/mqtt"
	}
	protos := d.protos
	if protos == nil && !d.noMQTT {
		protos = []string{"mqtt"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr.String()+path, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   d.header,
		Subprotocols: protos,
	})
	if c != nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	if resp != nil && resp.Body != nil && err != nil {
		_ = resp.Body.Close()
	}
	r := wsResult{conn: c, resp: resp, err: err}
	if ap, ok := local.Load().(netip.AddrPort); ok {
		r.local = ap
	}
	return r
}

// status is the HTTP status of a handshake attempt, 0 when there was no response.
func (r wsResult) status() int {
	if r.resp == nil {
		return 0
	}
	return r.resp.StatusCode
}

// echoOnce writes msg and reads the same bytes back.
func echoOnce(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(patience)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if string(got) != msg {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// closedByPeer reports whether the peer closed c: a read returns EOF or a reset rather
// than data or the (generous) deadline.
func closedByPeer(c net.Conn) error {
	// Half of patience: well below the 10s the WebSocket listener allows for request
	// headers, so that only a listener that closes the socket itself passes.
	if err := c.SetReadDeadline(time.Now().Add(patience / 2)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	var b [1]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("read %d bytes from a connection that should be closed", n)
	case err == nil:
		return errors.New("read returned no error")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil
	case isTimeout(err):
		return fmt.Errorf("connection still open after %v: %w", patience/2, err)
	default:
		return nil // connection reset
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readMQTTPacket reads one MQTT control packet (fixed header, remaining length, body) and
// returns it whole and its body.
func readMQTTPacket(r *bufio.Reader) (pkt, body []byte, err error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, nil, err
	}
	pkt = []byte{first}
	var length, shift int
	for i := 0; ; i++ {
		if i == 4 {
			return nil, nil, errors.New("malformed remaining length")
		}
		b, err := r.ReadByte()
		if err != nil {
			return nil, nil, fmt.Errorf("remaining length: %w", err)
		}
		pkt = append(pkt, b)
		length |= int(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			break
		}
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, nil, fmt.Errorf("body: %w", err)
	}
	return append(pkt, body...), body, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
