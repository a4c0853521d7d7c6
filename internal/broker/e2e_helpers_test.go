package broker

// Helpers for the end-to-end tests (e2e_*_test.go): raw MQTT clients built on the packet
// codec, a paho.mqtt.golang (3.1.1) client factory, and bounded waits. Every wait in this
// file has a deadline; nothing here asserts that anything was fast.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Bounds of the waits. They are generous on purpose: the tests run with -race on a small
// shared machine. They bound how long a failing test can hang; they are not assertions.
const (
	waitLong  = 5 * time.Second        // for something that must happen
	waitShort = 400 * time.Millisecond // to conclude that something did not happen
)

// rawFrame is one packet received by a rawClient: its exact bytes and its decoding.
type rawFrame struct {
	raw []byte
	p   packet.Packet
	err error // decoding error: the broker sent something the codec refuses
}

// rawClient is an MQTT client that speaks through the packet codec over a plain socket, so
// that a test controls every byte it sends and sees every byte it receives. A goroutine
// reads packets into a channel; the test reads them with bounded waits.
type rawClient struct {
	t testing.TB // failures are reported here; see in
	*rawConn
}

// rawConn is the connection state shared by every view of a rawClient.
type rawConn struct {
	nc     net.Conn
	v      packet.Version
	frames chan rawFrame
	quit   chan struct{}
	done   chan struct{} // closed when the reader goroutine ends (connection closed)

	mu      sync.Mutex
	readErr error
	closeMu sync.Once
	nextPID uint16
}

// dialRaw opens a socket to the broker and starts reading packets decoded as version v.
func (b *testBroker) dialRaw(t testing.TB, v packet.Version) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, rawConn: &rawConn{nc: nc, v: v, frames: make(chan rawFrame, 4096),
		quit: make(chan struct{}), done: make(chan struct{})}}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

// in returns a view of the client that reports failures to t: use it when a client made
// by a parent test is used in a subtest.
func (c *rawClient) in(t testing.TB) *rawClient { return &rawClient{t: t, rawConn: c.rawConn} }

func (c *rawClient) close() {
	c.closeMu.Do(func() {
		close(c.quit)
		_ = c.nc.Close()
	})
	select {
	case <-c.done:
	case <-time.After(waitLong):
		c.t.Errorf("raw client reader did not stop")
	}
}

func (c *rawConn) readLoop() {
	defer close(c.done)
	rd := packet.NewReader(bufio.NewReader(c.nc), 0)
	for {
		h, err := rd.ReadFixedHeader()
		var body []byte
		if err == nil {
			body, err = rd.ReadBody(h, nil)
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		raw := append([]byte{byte(h.Type)<<4 | h.Flags}, varint(h.Remaining)...)
		raw = append(raw, body...)
		p, derr := packet.Decode(h, body, c.v)
		select {
		case c.frames <- rawFrame{raw: raw, p: p, err: derr}:
		case <-c.quit:
			return
		}
	}
}

func varint(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// pid returns a fresh packet identifier.
func (c *rawConn) pid() uint16 {
	c.nextPID++
	if c.nextPID == 0 {
		c.nextPID = 1
	}
	return c.nextPID
}

// send encodes p for the client's version and writes it. A write error is not fatal: the
// broker may have closed the connection on purpose, which the test then checks.
func (c *rawClient) send(p packet.Packet) error {
	c.t.Helper()
	v := c.v
	if cp, ok := p.(*packet.Connect); ok && cp.Version != 0 {
		v = cp.Version
	}
	b, err := p.AppendTo(nil, v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", p.Type(), err)
	}
	return c.sendBytes(b)
}

func (c *rawClient) sendBytes(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitLong))
	_, err := c.nc.Write(b)
	return err
}

// next returns the next frame, or ok false when none arrived within d or the connection
// closed first.
func (c *rawClient) next(d time.Duration) (rawFrame, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f := <-c.frames:
		return f, true
	case <-c.done:
		// The reader stops after the last frame; drain what is left.
		select {
		case f := <-c.frames:
			return f, true
		default:
			return rawFrame{}, false
		}
	case <-timer.C:
		return rawFrame{}, false
	}
}

// expect returns the next packet, failing the test when none arrives within waitLong or it
// does not decode.
func (c *rawClient) expect() packet.Packet {
	c.t.Helper()
	f, ok := c.next(waitLong)
	if !ok {
		c.t.Fatalf("no packet within %v (connection closed: %v)", waitLong, c.isClosed())
	}
	if f.err != nil {
		c.t.Fatalf("broker sent an undecodable packet % x: %v", f.raw, f.err)
	}
	return f.p
}

// expectPacket returns the next packet as a T, failing otherwise.
func expectPacket[T packet.Packet](c *rawClient) T {
	c.t.Helper()
	p := c.expect()
	v, ok := p.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s, want %T", describe(p), zero)
	}
	return v
}

// expectNone fails when a packet arrives within d.
func (c *rawClient) expectNone(d time.Duration, why string) {
	c.t.Helper()
	if f, ok := c.next(d); ok {
		c.t.Fatalf("%s: got unexpected %s", why, describeFrame(f))
	}
}

func (c *rawClient) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// expectClosed waits until the broker closes the connection and returns the packets it
// sent before closing. It fails when the connection is still open after d.
func (c *rawClient) expectClosed(d time.Duration) []packet.Packet {
	c.t.Helper()
	var got []packet.Packet
	deadline := time.After(d)
	for {
		select {
		case f := <-c.frames:
			if f.err != nil {
				c.t.Fatalf("broker sent an undecodable packet % x: %v", f.raw, f.err)
			}
			got = append(got, f.p)
		case <-c.done:
			for {
				select {
				case f := <-c.frames:
					got = append(got, f.p)
				default:
					return got
				}
			}
		case <-deadline:
			c.t.Fatalf("connection still open after %v; received %s", d, describeAll(got))
			return nil
		}
	}
}

// expectDisconnect waits for the connection to close and checks that the last packet
// before the close is a DISCONNECT with reason code want.
func (c *rawClient) expectDisconnect(want packet.ReasonCode) *packet.Disconnect {
	c.t.Helper()
	got := c.expectClosed(waitLong)
	if len(got) == 0 {
		c.t.Fatalf("connection closed without DISCONNECT, want DISCONNECT 0x%02X", byte(want))
	}
	d, ok := got[len(got)-1].(*packet.Disconnect)
	if !ok || d.ReasonCode != want {
		c.t.Fatalf("connection closed after %s, want DISCONNECT 0x%02X", describeAll(got), byte(want))
	}
	return d
}

// connect sends CONNECT and returns the CONNACK.
func (c *rawClient) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.v
	}
	if err := c.send(cp); err != nil {
		c.t.Fatalf("send CONNECT: %v", err)
	}
	return expectPacket[*packet.Connack](c)
}

// mustConnect connects and fails unless the CONNACK accepts.
func (c *rawClient) mustConnect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	ack := c.connect(cp)
	if ack.ReasonCode != packet.Success {
		c.t.Fatalf("CONNACK 0x%02X, want success", byte(ack.ReasonCode))
	}
	return ack
}

// subscribe sends SUBSCRIBE (with a subscription identifier when subID > 0) and returns
// the SUBACK, failing when the SUBACK does not answer it.
func (c *rawClient) subscribe(subID int, subs ...packet.Subscription) *packet.Suback {
	c.t.Helper()
	s := &packet.Subscribe{PacketID: c.pid(), Subscriptions: subs}
	if subID > 0 {
		s.Properties.SubscriptionIDs = []int{subID}
	}
	if err := c.send(s); err != nil {
		c.t.Fatalf("send SUBSCRIBE: %v", err)
	}
	ack := expectPacket[*packet.Suback](c)
	if ack.PacketID != s.PacketID || len(ack.ReasonCodes) != len(subs) {
		c.t.Fatalf("SUBACK %+v does not answer SUBSCRIBE %d with %d filters", ack, s.PacketID, len(subs))
	}
	return ack
}

// mustSubscribe subscribes to filters at qos and fails unless every one is granted qos.
func (c *rawClient) mustSubscribe(qos byte, filters ...string) {
	c.t.Helper()
	subs := make([]packet.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = packet.Subscription{Filter: f, QoS: qos}
	}
	ack := c.subscribe(0, subs...)
	for i, rc := range ack.ReasonCodes {
		if rc != packet.ReasonCode(qos) {
			c.t.Fatalf("SUBACK code 0x%02X for %q, want granted QoS %d", byte(rc), filters[i], qos)
		}
	}
}

// publish sends a PUBLISH and completes its acknowledgement flow. It returns the reason
// code of the PUBACK or PUBREC (Success for QoS 0). Received PUBLISH packets that arrive
// meanwhile fail the test: use it on publish-only connections.
func (c *rawClient) publish(p *packet.Publish) packet.ReasonCode {
	c.t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.pid()
	}
	if err := c.send(p); err != nil {
		c.t.Fatalf("send PUBLISH: %v", err)
	}
	switch p.QoS {
	case 1:
		a := expectPacket[*packet.Puback](c)
		if a.PacketID != p.PacketID {
			c.t.Fatalf("PUBACK for %d, want %d", a.PacketID, p.PacketID)
		}
		return a.ReasonCode
	case 2:
		r := expectPacket[*packet.Pubrec](c)
		if r.PacketID != p.PacketID {
			c.t.Fatalf("PUBREC for %d, want %d", r.PacketID, p.PacketID)
		}
		if r.ReasonCode.IsError() {
			return r.ReasonCode
		}
		if err := c.send(&packet.Pubrel{PacketID: p.PacketID}); err != nil {
			c.t.Fatalf("send PUBREL: %v", err)
		}
		comp := expectPacket[*packet.Pubcomp](c)
		if comp.PacketID != p.PacketID || comp.ReasonCode != packet.Success {
			c.t.Fatalf("PUBCOMP %+v for %d", comp, p.PacketID)
		}
		return r.ReasonCode
	}
	return packet.Success
}

// ack acknowledges a received PUBLISH as its QoS requires (QoS 2: PUBREC, then PUBCOMP
// after the broker's PUBREL).
func (c *rawClient) ack(p *packet.Publish) {
	c.t.Helper()
	switch p.QoS {
	case 1:
		_ = c.send(&packet.Puback{PacketID: p.PacketID})
	case 2:
		_ = c.send(&packet.Pubrec{PacketID: p.PacketID})
		rel := expectPacket[*packet.Pubrel](c)
		if rel.PacketID != p.PacketID {
			c.t.Fatalf("PUBREL for %d, want %d", rel.PacketID, p.PacketID)
		}
		_ = c.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
}

// expectPublish returns the next packet, which must be a PUBLISH, and acknowledges it
// unless noAck.
func (c *rawClient) expectPublish(noAck ...bool) *packet.Publish {
	c.t.Helper()
	p := expectPacket[*packet.Publish](c)
	if len(noAck) == 0 || !noAck[0] {
		c.ack(p)
	}
	return p
}

// disconnect sends DISCONNECT with reason (MQTT 5) and closes the socket.
func (c *rawClient) disconnect(reason packet.ReasonCode) {
	c.t.Helper()
	_ = c.send(&packet.Disconnect{ReasonCode: reason})
	// Let the broker read the DISCONNECT before the socket goes away: wait for its close.
	c.expectClosed(waitLong)
	c.close()
}

// v5 returns a CONNECT for MQTT 5 with clean start, keep alive 30 s and the given client id.
func v5Connect(id string) *packet.Connect {
	return &packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30}
}

// v311Connect returns a CONNECT for MQTT 3.1.1 with clean session and keep alive 30 s.
func v311Connect(id string) *packet.Connect {
	return &packet.Connect{Version: packet.V311, ClientID: id, CleanStart: true, KeepAlive: 30}
}

// withExpiry sets the session expiry interval and clean start of a v5 CONNECT.
func withExpiry(cp *packet.Connect, expiry uint32, cleanStart bool) *packet.Connect {
	cp.CleanStart = cleanStart
	cp.Properties.SessionExpiry = expiry
	cp.Properties.Set(packet.PropSessionExpiry)
	return cp
}

// rawV5 dials and connects a raw MQTT 5 client with clean start.
func (b *testBroker) rawV5(t testing.TB, id string) *rawClient {
	t.Helper()
	c := b.dialRaw(t, packet.V5)
	c.mustConnect(v5Connect(id))
	return c
}

// probe publishes a QoS 1 message from a raw MQTT 5 client and returns the PUBACK reason:
// 0x10 (no matching subscribers) tells that no session, online or not, subscribes to the
// topic. It is how the tests observe the end of a session without looking inside.
func (c *rawClient) probe(topic string) packet.ReasonCode {
	c.t.Helper()
	return c.publish(&packet.Publish{QoS: 1, Topic: topic, Payload: []byte("probe")})
}

func describe(p packet.Packet) string {
	switch p := p.(type) {
	case nil:
		return "<nil>"
	case *packet.Publish:
		return fmt.Sprintf("PUBLISH{topic=%q qos=%d dup=%v retain=%v pid=%d payload=%q%s}",
			p.Topic, p.QoS, p.Dup, p.Retain, p.PacketID, truncate(p.Payload), describeProps(&p.Properties))
	case *packet.Disconnect:
		return fmt.Sprintf("DISCONNECT{0x%02X %q}", byte(p.ReasonCode), p.Properties.ReasonString)
	case *packet.Connack:
		return fmt.Sprintf("CONNACK{0x%02X sp=%v}", byte(p.ReasonCode), p.SessionPresent)
	}
	return fmt.Sprintf("%v%+v", p.Type(), p)
}

// describeProps lists the properties of a PUBLISH that are present.
func describeProps(p *packet.Properties) string {
	var s []string
	add := func(id packet.PropID, v any) {
		if p.Has(id) {
			s = append(s, fmt.Sprintf("%v=%v", id, v))
		}
	}
	add(packet.PropTopicAlias, p.TopicAlias)
	add(packet.PropMessageExpiry, p.MessageExpiry)
	add(packet.PropSubscriptionID, p.SubscriptionIDs)
	add(packet.PropPayloadFormat, p.PayloadFormat)
	add(packet.PropContentType, p.ContentType)
	add(packet.PropResponseTopic, p.ResponseTopic)
	add(packet.PropCorrelationData, p.CorrelationData)
	add(packet.PropUser, p.User)
	if len(s) == 0 {
		return ""
	}
	return " props{" + strings.Join(s, ", ") + "}"
}

func describeFrame(f rawFrame) string {
	if f.err != nil {
		return fmt.Sprintf("undecodable % x (%v)", f.raw, f.err)
	}
	return describe(f.p)
}

func describeAll(ps []packet.Packet) string {
	if len(ps) == 0 {
		return "nothing"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = describe(p)
	}
	return strings.Join(s, ", ")
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --- paho.golang (MQTT 5) -------------------------------------------------------------

// pahoCtx returns a context bounded by waitLong.
func pahoCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

// v5Sub connects a paho MQTT 5 client that subscribes to filter at qos and returns its
// message channel.
func (b *testBroker) v5Sub(t *testing.T, id, filter string, qos byte) (*paho.Client, chan *paho.Publish) {
	t.Helper()
	c, _, msgs := b.v5Client(t, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if _, err := c.Subscribe(pahoCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		t.Fatal(err)
	}
	return c, msgs
}

// noMessage fails when a message arrives on ch within d.
func noMessage(t testing.TB, ch chan *paho.Publish, d time.Duration, why string) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("%s: got message topic=%q payload=%q retain=%v", why, p.Topic, p.Payload, p.Retain)
	case <-time.After(d):
	}
}

func u32(v uint32) *uint32 { return &v }

// --- paho.mqtt.golang (MQTT 3.1.1) ----------------------------------------------------

// v311Client connects a paho.mqtt.golang client with protocol 3.1.1, no automatic
// reconnect, and bounded timeouts. opts may adjust the options before connecting.
// Messages without a subscription callback (resumed sessions) go to the returned channel.
func (b *testBroker) v311Client(t *testing.T, id string, opts func(*mqtt.ClientOptions)) (mqtt.Client, chan mqtt.Message, bool) {
	t.Helper()
	msgs := make(chan mqtt.Message, 1000)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + b.addr).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitLong).SetWriteTimeout(waitLong).SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
	if opts != nil {
		opts(o)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("3.1.1 connect of %q: no CONNACK within %v", id, waitLong)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("3.1.1 connect of %q: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, msgs, tok.(*mqtt.ConnectToken).SessionPresent()
}

// waitToken waits for a paho.mqtt.golang token and fails on timeout or error.
func waitToken(t testing.TB, tok mqtt.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("%s: not complete within %v", what, waitLong)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// recv311 waits for one 3.1.1 message.
func recv311(t testing.TB, ch chan mqtt.Message) mqtt.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitLong):
		t.Fatalf("no 3.1.1 message within %v", waitLong)
	}
	return nil
}
