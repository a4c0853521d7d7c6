package broker

import (
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// The outgoing side of a connection. Producers encode into c.wbuf under c.wmu; a flusher
// goroutine runs only while wbuf is not empty and gives its buffers back when done, so an
// idle connection holds no write buffer and no writer goroutine.

// send queues a control packet. It reports false when the connection is closed or the
// packet could not be encoded.
func (c *conn) send(p packet.Packet) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed || c.closeAfter {
		return false
	}
	b, err := p.AppendTo(c.wbuf, c.version)
	if err != nil {
		c.srv.log.Error("encode failed", "client", c.info.ClientID, "type", p.Type(), "err", err)
		return false
	}
	c.wbuf = b
	c.kickWriterLocked()
	return true
}

// sendFirst queues p in front of anything held back, and releases the output.
func (c *conn) sendFirst(p packet.Packet) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.held = false
	if c.wclosed || c.closeAfter {
		return false
	}
	b, err := p.AppendTo(nil, c.version)
	if err != nil {
		c.srv.log.Error("encode failed", "client", c.info.ClientID, "type", p.Type(), "err", err)
		return false
	}
	c.wbuf = append(b, c.wbuf...)
	// Called on the connection's own goroutine: its read loop (or the refusal's close)
	// writes it, with no flusher goroutine.
	c.deferFlush = true
	return true
}

// sendMessage encodes one delivery. A QoS 0 message to a connection whose pending bytes are
// over the high watermark is dropped. A message larger than the client's Maximum Packet
// Size is never sent [MQTT-3.1.2-25]: sendMessage then reports tooLarge, and the caller
// treats the message as delivered, as the specification asks.
func (c *conn) sendMessage(om *outMsg, now time.Time) (tooLarge bool) {
	return c.encodeMessage(om, false, now)
}

// resendMessage sends an unacknowledged message again with DUP set [MQTT-3.3.1-1].
func (c *conn) resendMessage(om *outMsg, now time.Time) (tooLarge bool) {
	return c.encodeMessage(om, true, now)
}

func (c *conn) encodeMessage(om *outMsg, dup bool, now time.Time) (tooLarge bool) {
	m := om.msg
	if m.expired(now) && om.state == stateQueued {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed || c.closeAfter {
		return false
	}
	if om.qos == 0 && len(c.wbuf) > c.highWatermark {
		c.srv.stats.dropped.Add(1)
		return false
	}
	p := packet.Publish{Dup: dup && om.qos > 0, QoS: om.qos, Retain: om.retain, Topic: m.Topic, PacketID: om.pid, Payload: m.Payload}
	var newAlias uint16
	if c.version == packet.V5 {
		p.Properties = m.deliveryProps(now, om.subIDs)
		newAlias = c.applyOutAlias(&p)
	}
	if c.maxPacket > 0 {
		if size, err := p.Size(c.version); err != nil || size > int(c.maxPacket) {
			c.srv.stats.dropped.Add(1)
			return true // and the alias it would have taught stays unassigned
		}
	}
	b, err := p.AppendTo(c.wbuf, c.version)
	if err != nil {
		c.srv.log.Error("encode publish failed", "client", c.info.ClientID, "err", err)
		return false
	}
	if newAlias != 0 {
		if c.outAlias == nil {
			c.outAlias = make(map[string]uint16)
		}
		c.outAlias[m.Topic] = newAlias
	}
	c.wbuf = b
	c.srv.stats.msgsOut.Add(1)
	c.kickWriterLocked()
	return false
}

// applyOutAlias replaces the topic by an alias the client already knows, or picks a new
// one while the client's Topic Alias Maximum allows. A new alias is returned, not yet
// recorded: it is learned by the client only if this packet is actually sent.
func (c *conn) applyOutAlias(p *packet.Publish) (newAlias uint16) {
	if c.aliasMax == 0 {
		return 0
	}
	if a, ok := c.outAlias[p.Topic]; ok {
		p.Topic = ""
		p.Properties.TopicAlias = a
		p.Properties.Set(packet.PropTopicAlias)
		return 0
	}
	if len(c.outAlias) >= int(c.aliasMax) {
		return 0
	}
	a := uint16(len(c.outAlias) + 1)
	p.Properties.TopicAlias = a
	p.Properties.Set(packet.PropTopicAlias)
	return a
}

func (c *conn) kickWriterLocked() {
	if len(c.wbuf) > 8*c.highWatermark {
		// Even acknowledgements pile up: the peer is not reading at all.
		c.wclosed = true
		c.signalClosingLocked()
		c.srv.stats.slowClosed.Add(1)
		go c.closeSocket()
		return
	}
	if c.flushing || c.held || c.deferFlush {
		return // a flusher runs, CONNACK is not out yet, or the read loop flushes soon
	}
	c.flushing = true
	go c.flush()
}

// deferFlushes is called by the read loop when more packets are already buffered: their
// answers are collected and written together once the buffer is drained (flushOwn).
func (c *conn) deferFlushes() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.deferFlush = true
}

// flushOwn is called by the read loop before it waits for input: it writes what is pending
// itself, one write bounded by the send timeout, sparing a flusher goroutine and its
// wake-up. What producers add meanwhile goes to a flusher.
func (c *conn) flushOwn() {
	c.wmu.Lock()
	c.deferFlush = false
	if c.flushing || c.held || c.wclosed || c.closeAfter || len(c.wbuf) == 0 {
		c.wmu.Unlock()
		return
	}
	if len(c.wbuf) > 8*c.highWatermark {
		c.kickWriterLocked() // closes the connection
		c.wmu.Unlock()
		return
	}
	c.flushing = true
	buf := c.wbuf
	c.wbuf = nil
	c.wmu.Unlock()

	if err := c.writeOut(buf, c.sendTimeout); err != nil {
		c.writeFailed()
		return
	}
	c.wmu.Lock()
	if len(c.wbuf) > 0 || c.closeAfter {
		c.wmu.Unlock()
		go c.flush() // still flushing: new bytes came, or a close waits for them
		return
	}
	c.flushing = false
	if cap(buf) <= 4096 {
		c.wbuf = buf[:0] // reuse while active; released when the connection parks
	}
	c.wmu.Unlock()
}

// writeOut writes buf to the socket within timeout, after syncing the store when buf may
// carry acknowledgements of lazily written messages.
func (c *conn) writeOut(buf []byte, timeout time.Duration) error {
	if err := c.syncBeforeAcks(); err != nil {
		return err
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	n, err := c.nc.Write(buf)
	c.srv.stats.bytesOut.Add(int64(n))
	return err
}

// writeFailed ends a connection whose write failed or timed out: nothing more is written.
func (c *conn) writeFailed() {
	c.wmu.Lock()
	c.wclosed = true
	c.signalClosingLocked()
	c.flushing = false
	c.wbuf = nil
	c.wmu.Unlock()
	c.srv.stats.slowClosed.Add(1)
	c.closeSocket()
}

// syncBeforeAcks makes the messages this connection wrote lazily durable before their
// acknowledgements, which are in the bytes about to be written, leave. Every write of
// the connection calls it after taking the bytes it writes: an acknowledgement is queued
// only after syncPending is set for its message, so a write that finds the flag clear
// carries only acknowledgements whose messages an earlier write already synced. On
// failure nothing is written and the connection is closed: the client sends again.
func (c *conn) syncBeforeAcks() error {
	if !c.syncPending.Swap(false) {
		return nil
	}
	if err := c.srv.syncStore(); err != nil {
		c.srv.log.Error("store sync failed: closing the connection without acknowledging", "client", c.info.ClientID, "err", err)
		return err
	}
	return nil
}

// releaseWriteBuf drops the write buffer of a connection that has nothing pending.
func (c *conn) releaseWriteBuf() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.wbuf) == 0 && !c.flushing {
		c.wbuf = nil
	}
}

// flush writes pending bytes until there are none, then exits; it closes the socket at
// that point when a close was requested.
func (c *conn) flush() {
	var spare []byte
	for {
		c.wmu.Lock()
		if c.wclosed {
			c.flushing = false
			c.wbuf = nil
			c.wmu.Unlock()
			return
		}
		if len(c.wbuf) == 0 {
			c.flushing = false
			c.wbuf = nil
			closeNow := c.closeAfter
			if closeNow {
				c.wclosed = true
			}
			c.wmu.Unlock()
			if closeNow {
				c.closeSocket()
			}
			return
		}
		buf := c.wbuf
		c.wbuf = spare[:0]
		deadline := c.sendTimeout
		if c.closeAfter {
			deadline = min(deadline, time.Second)
		}
		c.wmu.Unlock()

		if err := c.writeOut(buf, deadline); err != nil {
			c.writeFailed()
			return
		}
		if cap(buf) <= 64<<10 {
			spare = buf
		} else {
			spare = nil
		}
	}
}

// flushAndClose writes what is pending (with a short deadline) and then closes the
// socket. Nothing can be queued after it.
func (c *conn) flushAndClose() {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		c.closeSocket()
		return
	}
	c.closeAfter = true
	c.signalClosingLocked()
	if c.flushing {
		c.wmu.Unlock()
		return
	}
	c.flushing = true
	c.wmu.Unlock()
	c.flush()
}
