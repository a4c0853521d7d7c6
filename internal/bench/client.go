package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

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
}

// connect dials the broker and completes the MQTT handshake.
func (r *runner) connect(ctx context.Context, idx int) (*client, error) {
	o := &r.o
	ctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	d := net.Dialer{}
	if n := len(o.SourceAddrs); n > 0 {
		d.LocalAddr = &net.TCPAddr{IP: o.SourceAddrs[idx%n].AsSlice()}
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
			c.r.stats.received.Add(1)
			if len(p.Payload) >= minPayload {
				sent := int64(binary.BigEndian.Uint64(p.Payload))
				c.r.lat.record(time.Duration(time.Now().UnixNano() - sent))
			}
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
