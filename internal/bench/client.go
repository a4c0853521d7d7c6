package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// client is one MQTT connection of a run.
type client struct {
	r   *runner
	idx int
	id  string
	nc  net.Conn
	rd  *packet.Reader
	br  *bufio.Reader

	wmu sync.Mutex
	w   *bufio.Writer
	buf []byte

	window  chan struct{} // QoS 1/2 publish slots; nil for QoS 0
	recvMax int           // the broker's Receive Maximum (MQTT 5), 0 when not announced
	done    chan struct{} // closed when the read loop ends

	// Each written by one goroutine (the publisher, or the read loop of a subscriber) and
	// read once the run has ended.
	first, last time.Time // first and last message sent (pub) or received (sub)
	seen        *seqSeen  // sub at QoS 1/2: the sequence numbers seen per publisher
}

// connect dials the broker and completes the MQTT handshake. ctx bounds the life of the
// connection (a WebSocket connection ends with it); the handshake has its own timeout.
func (r *runner) connect(ctx context.Context, idx int) (*client, error) {
	o := &r.o
	life := ctx
	ctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	nc, err := r.dial(ctx, life, idx)
	if err != nil {
		return nil, err
	}
	c := &client{r: r, idx: idx, id: expand(o.ClientID, idx), nc: nc, done: make(chan struct{})}
	c.br = bufio.NewReaderSize(nc, 4096)
	c.rd = packet.NewReader(c.br, 256<<20)
	c.w = bufio.NewWriterSize(nc, 4096)
	cp := &packet.Connect{Version: o.Version, CleanStart: o.CleanStart, KeepAlive: o.KeepAlive, ClientID: c.id}
	if o.Username != "" {
		cp.HasUsername, cp.Username = true, expand(o.Username, idx)
	}
	switch {
	case o.JWTSecret != "":
		sub := cp.Username
		if sub == "" {
			sub = c.id
		}
		cp.HasPassword, cp.Password = true, []byte(hs256([]byte(o.JWTSecret), sub, time.Now().Add(o.JWTTTL)))
	case o.Password != "":
		cp.HasPassword, cp.Password = true, []byte(expand(o.Password, idx))
	}
	if o.Version == packet.V5 && o.SessionExpiry > 0 {
		cp.Properties.SessionExpiry = o.SessionExpiry
		cp.Properties.Set(packet.PropSessionExpiry)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if err := c.write(cp, true); err != nil {
		_ = nc.Close()
		return nil, classify("send CONNECT", err)
	}
	p, err := c.rd.ReadPacket(o.Version)
	if err != nil {
		_ = nc.Close()
		return nil, classify("read CONNACK", err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("expected CONNACK, got %v", p.Type())
	}
	if ack.ReasonCode != packet.Success {
		_ = nc.Close()
		return nil, fmt.Errorf("CONNACK %s", ack.ReasonCode.String())
	}
	if ack.Properties.Has(packet.PropReceiveMaximum) {
		c.recvMax = int(ack.Properties.ReceiveMaximum)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// dial opens the transport of client idx: TCP, TLS over TCP, or a WebSocket (ws:// or
// wss://) whose binary messages carry the MQTT packets.
func (r *runner) dial(ctx, life context.Context, idx int) (net.Conn, error) {
	o := &r.o
	d := &net.Dialer{}
	if n := len(o.SourceAddrs); n > 0 {
		d.LocalAddr = &net.TCPAddr{IP: o.SourceAddrs[idx%n].AsSlice()}
	}
	if r.ws != nil {
		return r.dialWS(ctx, life, d)
	}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, classify("dial", err)
	}
	if o.TLS != nil {
		tc := tls.Client(nc, o.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, classify("tls handshake", err)
		}
		nc = tc
	}
	return nc, nil
}

// dialWS opens a WebSocket with the "mqtt" subprotocol and returns it as a stream of
// binary messages. The connection lives until it is closed or life ends.
func (r *runner) dialWS(ctx, life context.Context, d *net.Dialer) (net.Conn, error) {
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: r.o.TLS, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	wc, resp, err := websocket.Dial(ctx, r.ws.String(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{"mqtt"},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: HTTP %d", resp.StatusCode)
		}
		return nil, classify("websocket handshake", err)
	}
	if wc.Subprotocol() != "mqtt" {
		_ = wc.CloseNow()
		return nil, errors.New("websocket handshake: the server did not accept the mqtt subprotocol")
	}
	return websocket.NetConn(life, wc, websocket.MessageBinary), nil
}

// classify turns a network error into a short reason for the error table.
func classify(stage string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: timeout", stage)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: connection refused", stage)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: connection reset", stage)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s: no free local port (use --source-addrs)", stage)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return fmt.Errorf("%s: too many open files (raise ulimit -n)", stage)
	case errors.Is(err, os.ErrClosed), errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%s: closed", stage)
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// write encodes p into the write buffer, and flushes when flush is set.
func (c *client) write(p packet.Packet, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	c.buf, err = p.AppendTo(c.buf[:0], c.r.o.Version)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return err
	}
	if flush {
		return c.w.Flush()
	}
	return nil
}

func (c *client) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
}

// readLoop handles what the broker sends until the connection ends.
func (c *client) readLoop(sub bool) {
	defer close(c.done)
	o := &c.r.o
	var body []byte
	for {
		h, err := c.rd.ReadFixedHeader()
		if err == nil {
			body, err = c.rd.ReadBody(h, body[:0])
		}
		var p packet.Packet
		if err == nil {
			p, err = packet.Decode(h, body, o.Version)
		}
		if err != nil {
			if !c.r.stopping() {
				c.r.stats.addError(classify("read", err).Error())
			}
			return
		}
		switch p := p.(type) {
		case *packet.Publish:
			if !sub {
				continue
			}
			now := time.Now()
			if c.first.IsZero() {
				c.first = now
			}
			c.last = now
			if len(p.Payload) >= minPayload {
				sent, seq, from := unstamp(p.Payload)
				c.r.lat.record(now.Sub(sent))
				if c.seen != nil {
					c.seen.add(from, seq)
				}
			}
			c.r.stats.received.Add(1)
			var ack packet.Packet
			switch p.QoS {
			case 1:
				ack = &packet.Puback{PacketID: p.PacketID}
			case 2:
				ack = &packet.Pubrec{PacketID: p.PacketID}
			}
			if ack != nil {
				_ = c.write(ack, c.br.Buffered() == 0)
			}
		case *packet.Pubrel:
			_ = c.write(&packet.Pubcomp{PacketID: p.PacketID}, c.br.Buffered() == 0)
		case *packet.Puback:
			c.acked()
		case *packet.Pubrec:
			if p.ReasonCode.IsError() {
				c.r.stats.addError("PUBREC " + p.ReasonCode.String())
				c.release()
				continue
			}
			_ = c.write(&packet.Pubrel{PacketID: p.PacketID}, c.br.Buffered() == 0)
		case *packet.Pubcomp:
			c.acked()
		case *packet.Disconnect:
			c.r.stats.addError("DISCONNECT from broker: " + p.ReasonCode.String())
		}
		if c.br.Buffered() == 0 {
			_ = c.flush()
		}
	}
}

func (c *client) acked() {
	c.r.stats.acked.Add(1)
	c.release()
}

func (c *client) release() {
	if c.window != nil {
		select {
		case <-c.window:
		default:
		}
	}
}

// close says goodbye and closes the socket.
func (c *client) close() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write(&packet.Disconnect{}, true)
	_ = c.nc.Close()
	<-c.done
}
