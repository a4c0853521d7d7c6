package main

// Integration tests of `rampart serve`: the binary built by TestMain runs as a child
// process on ephemeral loopback ports with its data in a temporary directory, and real
// clients (the packet codec over a socket, paho.golang, paho.mqtt.golang, the mosquitto
// command-line clients) talk to it.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// TestServeDurabilityKill9 checks the durability promise of node.durability: sync: once a
// publisher has its PUBACK, every matching persistent session gets the message, even when
// the broker is killed with SIGKILL right after the last PUBACK and restarted on the same
// data directory. The persistent session is either offline during the publishing, or
// online and acknowledging only its first deliveries, so that at the kill it has
// messages in flight, unacknowledged, and queued; those in flight must come again with
// DUP set [MQTT-4.4.0-1]. Retained messages survive the same way. The last case stops
// the broker gracefully instead, for comparison.
func TestServeDurabilityKill9(t *testing.T) {
	for _, tc := range []struct {
		name     string
		online   bool
		ackFirst int  // online: how many deliveries the subscriber acknowledges
		sigterm  bool // stop with SIGTERM (and expect exit 0) instead of SIGKILL
	}{
		{name: "offline subscriber"},
		{name: "online subscriber with unacknowledged messages", online: true, ackFirst: 100},
		{name: "online subscriber, graceful restart", online: true, ackFirst: 100, sigterm: true},
	} {
		t.Run(tc.name, func(t *testing.T) { testDurabilityKill9(t, tc.online, tc.ackFirst, tc.sigterm) })
	}
}

func testDurabilityKill9(t *testing.T, online bool, ackFirst int, sigterm bool) {
	const (
		n        = 500
		topic    = "dur/k9"
		retTopic = "ret/k9" // outside dur/#, so the retained messages are not queued
		subID    = "dur-sub"
		expiry   = 3600
	)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, testConfig(dataDir, "sync"))

	b := startBroker(t, cfg, "tcp:default")
	addr := b.addr("tcp:default")

	// The persistent session subscribes, then goes offline or stays to take deliveries.
	sub := dialRaw(t, addr, packet.V5)
	if ack := sub.connect(v5Connect(subID, false, expiry)); ack.SessionPresent {
		t.Fatalf("first CONNACK of %s has session present", subID)
	}
	sub.subscribe("dur/#", 1)
	var before *subscriberLoop
	if online {
		before = startSubscriberLoop(sub, ackFirst)
	} else {
		sub.disconnect()
	}

	// The publisher pipelines n QoS 1 messages up to the broker's receive maximum. A
	// retained message is replaced in the middle of the stream: the second must survive.
	pub := dialRaw(t, addr, packet.V5)
	ack := pub.connect(v5Connect("dur-pub", true, 0))
	window := 64
	if ack.Properties.Has(packet.PropReceiveMaximum) && int(ack.Properties.ReceiveMaximum) < window {
		window = int(ack.Properties.ReceiveMaximum)
	}
	pub.publish1(retTopic, []byte("old"), true, true) // nobody subscribes to it: 0x10 is fine
	inflight := map[uint16]string{}                   // packet id -> what it carries
	sent := 0
	for sent < n || len(inflight) > 0 {
		for sent < n && len(inflight) < window {
			p := &packet.Publish{QoS: 1, Topic: topic, PacketID: pub.pid(), Payload: []byte(strconv.Itoa(sent))}
			if sent == n/2 {
				p.Topic, p.Retain, p.Payload = retTopic, true, []byte("new")
				inflight[p.PacketID] = "retained"
			} else {
				inflight[p.PacketID] = "seq " + strconv.Itoa(sent)
			}
			pub.send(p)
			sent++
		}
		a := expect[*packet.Puback](pub)
		what, ok := inflight[a.PacketID]
		if !ok {
			t.Fatalf("PUBACK for packet id %d, which is not in flight", a.PacketID)
		}
		// 0x10 (no matching subscribers) on a dur/ message would mean the session was lost
		// already; the retained message on ret/ has no subscriber.
		if a.ReasonCode != packet.Success && !(what == "retained" && a.ReasonCode == packet.NoMatchingSubscribers) {
			t.Fatalf("PUBACK 0x%02X for %s, want success", byte(a.ReasonCode), what)
		}
		delete(inflight, a.PacketID)
	}
	// Every PUBACK is in: stop the broker now (kill -9 unless the case is graceful).
	if sigterm {
		b.signal(syscall.SIGTERM)
		if code := b.wait(exitTimeout); code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0", code)
		}
	} else {
		b.kill9()
	}
	pub.close()

	var got []delivery
	if online {
		var err error
		got, err = before.wait()
		if err != nil {
			t.Fatalf("subscriber before the kill: %v", err)
		}
		t.Logf("the subscriber received %d messages before the stop and acknowledged %d", len(got), min(len(got), ackFirst))
	}

	b2 := startBroker(t, cfg, "tcp:default")
	addr = b2.addr("tcp:default")

	sub = dialRaw(t, addr, packet.V5)
	if ack := sub.connect(v5Connect(subID, false, expiry)); !ack.SessionPresent {
		t.Fatalf("CONNACK after the restart has session present false: the persistent session was lost")
	}
	// The published sequence numbers are 0..n-1 except n/2, which carried the retained
	// message on another topic.
	var want []int
	for i := range n {
		if i != n/2 {
			want = append(want, i)
		}
	}
	got = receiveSeqs(t, sub, topic, got, want)

	// The subscription itself survived: a message published after the restart arrives.
	pub = dialRaw(t, addr, packet.V5)
	pub.connect(v5Connect("dur-pub", true, 0))
	pub.publish1(topic, []byte(strconv.Itoa(n)), false, false)
	want = append(want, n)
	got = receiveSeqs(t, sub, topic, got, want)
	checkSeqs(t, got, want) // over both connections of the subscriber, when it was online

	// The retained message published before the kill, in its latest version.
	ret := dialRaw(t, addr, packet.V5)
	ret.connect(v5Connect("dur-ret", true, 0))
	ret.subscribe(retTopic, 1)
	p := expect[*packet.Publish](ret)
	if p.Topic != retTopic || !p.Retain || string(p.Payload) != "new" {
		t.Fatalf("got %s, want the retained message %q on %s", describe(p), "new", retTopic)
	}
	if p.QoS == 1 {
		ret.send(&packet.Puback{PacketID: p.PacketID})
	}
	sub.disconnect()
}

// delivery is one PUBLISH of a sequence number received by a subscriber.
type delivery struct {
	seq int
	pid uint16
	dup bool
}

// parseDelivery checks that p is a QoS 1 PUBLISH on topic with a sequence number as its
// payload.
func parseDelivery(p packet.Packet, topic string) (delivery, error) {
	pub, ok := p.(*packet.Publish)
	if !ok || pub.Topic != topic || pub.QoS != 1 {
		return delivery{}, fmt.Errorf("got %s, want a QoS 1 PUBLISH on %s", describe(p), topic)
	}
	seq, err := strconv.Atoi(string(pub.Payload))
	if err != nil {
		return delivery{}, fmt.Errorf("got %s, want a sequence number as payload", describe(p))
	}
	return delivery{seq: seq, pid: pub.PacketID, dup: pub.Dup}, nil
}

// subscriberLoop reads the deliveries of an online subscriber in the background while the
// test publishes, acknowledging only the first ackFirst of them, until the connection ends.
type subscriberLoop struct {
	done       chan struct{}
	deliveries []delivery // read after done
	err        error      // read after done
}

func startSubscriberLoop(c *rawClient, ackFirst int) *subscriberLoop {
	l := &subscriberLoop{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			var f rawFrame
			select {
			case f = <-c.frames:
			case <-c.done:
				select {
				case f = <-c.frames:
				default:
					return
				}
			}
			if f.err != nil {
				l.err = fmt.Errorf("broker sent an undecodable packet: %v", f.err)
				return
			}
			if d, ok := f.p.(*packet.Disconnect); ok && d.ReasonCode == packet.ServerShuttingDown {
				continue // a graceful stop; the connection closes next
			}
			d, err := parseDelivery(f.p, "dur/k9")
			if err != nil {
				l.err = err
				return
			}
			l.deliveries = append(l.deliveries, d)
			if len(l.deliveries) <= ackFirst {
				b, err := packet.Encode(&packet.Puback{PacketID: f.p.(*packet.Publish).PacketID}, c.v)
				if err != nil {
					l.err = err
					return
				}
				_ = c.nc.SetWriteDeadline(time.Now().Add(waitPacket))
				_, _ = c.nc.Write(b) // fails once the broker is killed: that is fine
			}
		}
	}()
	return l
}

// wait waits for the loop to end (its connection closed) and returns what it received.
func (l *subscriberLoop) wait() ([]delivery, error) {
	select {
	case <-l.done:
		return l.deliveries, l.err
	case <-time.After(exitTimeout):
		return nil, fmt.Errorf("still reading %v after the connection should have closed", exitTimeout)
	}
}

// receiveSeqs acknowledges PUBLISH packets on topic and appends them to got until every
// sequence number in want has been delivered at least once, and returns got.
func receiveSeqs(t *testing.T, c *rawClient, topic string, got []delivery, want []int) []delivery {
	t.Helper()
	seen := map[int]bool{}
	for _, d := range got {
		seen[d.seq] = true
	}
	missing := 0
	for _, w := range want {
		if !seen[w] {
			missing++
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for missing > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages still missing at the deadline", missing, len(want))
		}
		p := expect[*packet.Publish](c)
		d, err := parseDelivery(p, topic)
		if err != nil {
			t.Fatal(err)
		}
		c.send(&packet.Puback{PacketID: p.PacketID})
		got = append(got, d)
		if !seen[d.seq] && slices.Contains(want, d.seq) {
			missing--
		}
		seen[d.seq] = true
	}
	return got
}

// checkSeqs checks that the first occurrences in got are exactly want, in order, and that
// every repeated delivery is flagged DUP (a resend, [MQTT-3.3.1-1], [MQTT-4.4.0-1]).
func checkSeqs(t *testing.T, got []delivery, want []int) {
	t.Helper()
	firstPID := map[int]uint16{}
	var first, noDup, newPID []int
	for _, d := range got {
		if pid, ok := firstPID[d.seq]; ok {
			if !d.dup {
				noDup = append(noDup, d.seq)
			}
			if d.pid != pid {
				newPID = append(newPID, d.seq)
			}
			continue
		}
		firstPID[d.seq] = d.pid
		first = append(first, d.seq)
	}
	if len(noDup) > 0 {
		t.Errorf("%d messages delivered again without the DUP flag (of %d deliveries); sequences %v",
			len(noDup), len(got), noDup[:min(len(noDup), 40)])
	}
	if len(newPID) > 0 {
		t.Errorf("%d messages delivered again with another packet identifier than the first time; sequences %v",
			len(newPID), newPID[:min(len(newPID), 40)])
	}
	if len(first) != len(want) {
		t.Fatalf("received %d distinct messages, want %d", len(first), len(want))
	}
	for i := range want {
		if first[i] != want[i] {
			t.Fatalf("message %d is sequence %d, want %d (out of order or unexpected); first occurrences around it: %v",
				i, first[i], want[i], first[max(0, i-3):min(len(first), i+4)])
		}
	}
}

// TestServeSIGTERM checks a graceful stop: on SIGTERM (and SIGINT, which main treats the
// same) an MQTT 5 client gets DISCONNECT 0x8B (server shutting down), an MQTT 3.1.1 client
// has its connection closed without a DISCONNECT (3.1.1 has no server DISCONNECT), and
// the process exits with status 0.
func TestServeSIGTERM(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sig        os.Signal
		durability string
	}{
		{"SIGTERM", syscall.SIGTERM, "sync"},
		{"SIGINT", syscall.SIGINT, "sync"},
		{"SIGTERM durability none", syscall.SIGTERM, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, testConfig(filepath.Join(t.TempDir(), "data"), tc.durability))
			b := startBroker(t, cfg, "tcp:default")
			addr := b.addr("tcp:default")

			v5 := dialRaw(t, addr, packet.V5)
			v5.connect(v5Connect("term-v5", true, 0))
			v5.subscribe("term/#", 1)
			v311 := dialRaw(t, addr, packet.V311)
			v311.connect(&packet.Connect{ClientID: "term-v311", CleanStart: true, KeepAlive: 60})

			b.signal(tc.sig)

			p, ok := v5.next(waitPacket)
			if !ok {
				t.Fatal("MQTT 5 connection closed without DISCONNECT, want DISCONNECT 0x8B")
			}
			d, isDisc := p.(*packet.Disconnect)
			if !isDisc || d.ReasonCode != packet.ServerShuttingDown {
				t.Fatalf("MQTT 5 client got %s, want DISCONNECT 0x8B (server shutting down)", describe(p))
			}
			if p, ok := v5.next(waitPacket); ok {
				t.Fatalf("MQTT 5 client got %s after DISCONNECT, want the connection closed", describe(p))
			}
			if p, ok := v311.next(waitPacket); ok {
				t.Fatalf("MQTT 3.1.1 client got %s, want the connection closed without a packet", describe(p))
			}
			if code := b.wait(exitTimeout); code != 0 {
				t.Fatalf("exit status %d after %v, want 0", code, tc.sig)
			}
			if !strings.Contains(b.stderr.String(), "rampart stopped") {
				t.Errorf("log has no %q line", "rampart stopped")
			}
		})
	}
}

// TestServeMosquittoClients checks interoperability with the mosquitto command-line
// clients: mosquitto_sub over MQTT 3.1.1 and MQTT 5 receives what mosquitto_pub publishes
// at QoS 0, 1 and 2, the retained message first and flagged retained.
func TestServeMosquittoClients(t *testing.T) {
	for _, prog := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(prog); err != nil {
			msg := prog + " not on PATH (install mosquitto-clients: scripts/test-services.sh install)"
			if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
				t.Fatal(msg + "; REQUIRE_TEST_SERVICES is set")
			}
			t.Skip(msg)
		}
	}
	cfg := writeConfig(t, testConfig(filepath.Join(t.TempDir(), "data"), "sync"))
	b := startBroker(t, cfg, "tcp:default")
	port := b.port("tcp:default")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	mosquittoPub := func(version, topic, payload string, qos int, retain bool) {
		t.Helper()
		args := []string{"-h", "127.0.0.1", "-p", port, "-V", version, "-t", topic, "-m", payload, "-q", strconv.Itoa(qos)}
		if retain {
			args = append(args, "-r")
		}
		pctx, pcancel := context.WithTimeout(ctx, runTimeout)
		defer pcancel()
		out, err := exec.CommandContext(pctx, "mosquitto_pub", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
		}
	}

	// The retained QoS 2 message goes first: a subscriber prints it as soon as its
	// subscription is in place, which tells the test when to publish the others.
	mosquittoPub("mqttv5", "mq/retained", "r-qos2", 2, true)

	type subProc struct {
		version string
		cmd     *exec.Cmd
		lines   chan string // closed at the end of its output
		stderr  *syncBuffer
		exited  chan struct{} // closed when the process has exited and err is set
		err     error
	}
	var subs []*subProc
	for _, version := range []string{"mqttv311", "mqttv5"} {
		s := &subProc{version: version, lines: make(chan string, 16), stderr: &syncBuffer{}, exited: make(chan struct{})}
		// -W bounds the client itself too.
		s.cmd = exec.CommandContext(ctx, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "mq/#",
			"-C", "3", "-V", version, "-q", "1", "-W", "90", "-F", "%t|%q|%r|%p")
		s.cmd.Stderr = s.stderr
		stdout, err := s.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("start mosquitto_sub -V %s: %v", version, err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				s.lines <- sc.Text()
			}
			_, _ = io.Copy(io.Discard, stdout)
			close(s.lines)
			s.err = s.cmd.Wait()
			close(s.exited)
		}()
		t.Cleanup(func() {
			select {
			case <-s.exited:
			default:
				_ = s.cmd.Process.Kill()
				select {
				case <-s.exited:
				case <-time.After(exitTimeout):
					t.Errorf("mosquitto_sub -V %s (pid %d) did not die", version, s.cmd.Process.Pid)
				}
			}
			if t.Failed() {
				t.Logf("mosquitto_sub -V %s stderr:\n%s", version, s.stderr.String())
			}
		})
		subs = append(subs, s)
	}

	nextLine := func(s *subProc) string {
		t.Helper()
		select {
		case l, ok := <-s.lines:
			if !ok {
				<-s.exited
				t.Fatalf("mosquitto_sub -V %s exited early: %v", s.version, s.err)
			}
			return l
		case <-time.After(3 * waitPacket):
			t.Fatalf("mosquitto_sub -V %s printed nothing within %v", s.version, 3*waitPacket)
		}
		return ""
	}
	// Format: topic|qos|retain|payload; the subscription is QoS 1, so QoS 2 arrives at 1.
	want := []string{"mq/retained|1|1|r-qos2", "mq/zero|0|0|m-qos0", "mq/one|1|0|m-qos1"}
	for _, s := range subs {
		if l := nextLine(s); l != want[0] {
			t.Fatalf("mosquitto_sub -V %s printed %q, want %q", s.version, l, want[0])
		}
	}
	mosquittoPub("mqttv311", "mq/zero", "m-qos0", 0, false)
	mosquittoPub("mqttv5", "mq/one", "m-qos1", 1, false)
	for _, s := range subs {
		for _, w := range want[1:] {
			if l := nextLine(s); l != w {
				t.Errorf("mosquitto_sub -V %s printed %q, want %q", s.version, l, w)
			}
		}
		// -C 3: it disconnects and exits by itself now.
		select {
		case l, ok := <-s.lines:
			if ok {
				t.Errorf("mosquitto_sub -V %s printed an extra line %q", s.version, l)
			}
		case <-time.After(waitPacket):
			t.Errorf("mosquitto_sub -V %s still running after its 3 messages", s.version)
			continue
		}
		select {
		case <-s.exited:
			if s.err != nil {
				t.Errorf("mosquitto_sub -V %s: %v", s.version, s.err)
			}
		case <-time.After(waitPacket):
			t.Errorf("mosquitto_sub -V %s still running after its output ended", s.version)
		}
	}
}

// TestServeCheckConfig checks that a configuration problem stops `rampart serve
// --check-config` and `rampart serve` alike, before anything is bound or written, with a
// message naming the key and where it came from; and that a valid configuration passes.
func TestServeCheckConfig(t *testing.T) {
	// Each case is the configuration after the common head below; line numbers in the
	// wanted messages count from the top of the whole file.
	const head = `node:
  data_dir: data
log:
  format: text
listeners:
  ws:
    default:
      enable: false
`
	const loopbackTCP = `  tcp:
    default:
      bind: 127.0.0.1:0
`
	for _, tc := range []struct {
		name  string
		body  string
		env   []string
		serve bool // also run plain `rampart serve`, which must fail the same way
		ok    bool
		want  []string // substrings of stderr; FILE stands for the configuration path
	}{
		{
			name: "valid",
			body: loopbackTCP + "mqtt:\n  idle_timeout: 15s\n  max_packet_size: 256KB\n",
			ok:   true,
		},
		{
			name:  "unknown key",
			body:  "  tcp:\n    default:\n      bnd: 127.0.0.1:0\n",
			serve: true,
			want:  []string{`FILE:11: unknown key "listeners.tcp.default.bnd"`},
		},
		{
			name:  "unknown key in the environment",
			body:  loopbackTCP,
			env:   []string{"RAMPART_MQTT__MAX_PACKT_SIZE=1MB"},
			serve: true,
			want:  []string{`environment RAMPART_MQTT__MAX_PACKT_SIZE: unknown key "mqtt.max_packt_size"`},
		},
		{
			name:  "duration without unit",
			body:  loopbackTCP + "mqtt:\n  idle_timeout: 10\n",
			serve: true,
			want:  []string{"FILE:13: mqtt.idle_timeout:"},
		},
		{
			name: "duration out of range",
			body: loopbackTCP + "mqtt:\n  idle_timeout: 1h\n",
			want: []string{"FILE:13: mqtt.idle_timeout: must be between"},
		},
		{
			name:  "fractional size",
			body:  loopbackTCP + "mqtt:\n  max_packet_size: 1.5MB\n",
			serve: true,
			want:  []string{"FILE:13: mqtt.max_packet_size:"},
		},
		{
			name: "size with an unknown unit",
			body: loopbackTCP + "    extra:\n      bind: 127.0.0.2:0\n      tcp_options:\n        high_watermark: 1MiB\n",
			want: []string{"FILE:15: listeners.tcp.extra.tcp_options.high_watermark:"},
		},
		{
			name: "size from the environment",
			body: loopbackTCP,
			env:  []string{"RAMPART_MQTT__MAX_PACKET_SIZE=lots"},
			want: []string{"environment RAMPART_MQTT__MAX_PACKET_SIZE: mqtt.max_packet_size:"},
		},
		{
			name: "every interface without authentication",
			body: loopbackTCP + "    public:\n      bind: 0.0.0.0:0\n",
			want: []string{"FILE:13: listeners.tcp.public.bind: binds 0.0.0.0:0 (not loopback) with no authenticator"},
		},
		{
			// Plain serve uses an address of TEST-NET-1 (RFC 5737): should validation let
			// it through, the bind fails instead of serving beyond loopback, and the
			// message then lacks "not loopback".
			name:  "non-loopback address without authentication",
			body:  loopbackTCP + "    public:\n      bind: 192.0.2.1:0\n",
			serve: true,
			want:  []string{"FILE:13: listeners.tcp.public.bind: binds 192.0.2.1:0 (not loopback) with no authenticator"},
		},
		{
			// The body goes on with the ws mapping the head ends in.
			name: "non-loopback websocket without authentication",
			body: "    public:\n      bind: '[::]:0'\n" + loopbackTCP,
			want: []string{"FILE:10: listeners.ws.public.bind: binds [::]:0 (not loopback) with no authenticator"},
		},
		{
			name: "non-loopback from the environment without authentication",
			body: loopbackTCP,
			env:  []string{"RAMPART_LISTENERS__TCP__DEFAULT__BIND=0.0.0.0:0"},
			want: []string{"listeners.tcp.default.bind: binds 0.0.0.0:0 (not loopback) with no authenticator"},
		},
		{
			// docs/configuration.md: each message names the file and line, or the
			// environment variable. The bind came from the variable, not from line 10.
			name: "non-loopback bind from the environment names the variable",
			body: loopbackTCP,
			env:  []string{"RAMPART_LISTENERS__TCP__DEFAULT__BIND=0.0.0.0:0"},
			want: []string{"config: environment RAMPART_LISTENERS__TCP__DEFAULT__BIND: listeners.tcp.default"},
		},
		{
			// Valid, and only checked: the test never serves beyond loopback.
			name: "every interface with allow_anonymous",
			body: loopbackTCP + "    public:\n      bind: 0.0.0.0:0\n      allow_anonymous: true\nauthorization: {no_match: allow}\n",
			ok:   true,
		},
		{
			name: "every interface without an authorization source",
			body: loopbackTCP + "    public:\n      bind: 0.0.0.0:0\n      allow_anonymous: true\n",
			want: []string{"authorization.sources: a listener is not on loopback but no authorization source is configured"},
		},
		{
			name: "an ACL file that cannot be read",
			body: loopbackTCP + "authorization:\n  sources: [{type: file, path: /nonexistent/acl.yaml}]\n",
			want: []string{"authorization.sources[0] (file)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "rampart.yaml")
			if err := os.WriteFile(cfg, []byte(head+tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			modes := [][]string{{"serve", "--check-config", "--config", cfg}}
			if tc.serve {
				modes = append(modes, []string{"serve", "--config", cfg})
			}
			for _, args := range modes {
				r := runRampart(t, dir, tc.env, args...)
				var problems []string
				if tc.ok {
					if r.code != 0 || !strings.Contains(r.stdout, "configuration is valid") {
						problems = append(problems, fmt.Sprintf("exit %d, want 0 and %q", r.code, "configuration is valid"))
					}
				} else {
					if r.code == 0 {
						problems = append(problems, "exit 0, want a refused configuration")
					}
					for _, w := range tc.want {
						if w = strings.ReplaceAll(w, "FILE", cfg); !strings.Contains(r.stderr, w) {
							problems = append(problems, fmt.Sprintf("stderr does not contain %q", w))
						}
					}
					if strings.Contains(r.stderr, "msg=listening") || strings.Contains(r.stderr, "rampart starting") {
						problems = append(problems, "the broker started")
					}
				}
				// Neither checking nor refusing a configuration touches the store.
				if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
					problems = append(problems, fmt.Sprintf("the data directory exists afterwards (%v)", err))
				}
				if len(problems) > 0 {
					t.Errorf("rampart %v:\n  %s\nexit %d\nstdout:\n%s\nstderr:\n%s",
						args, strings.Join(problems, "\n  "), r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}

// TestServeWebSocket checks MQTT over WebSocket end to end: a paho.mqtt.golang client on
// ws://.../mqtt and a paho.golang MQTT 5 client on TCP exchange messages at every QoS, in
// both directions; a WebSocket client on another path is refused.
func TestServeWebSocket(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, fmt.Sprintf(`node:
  data_dir: %s
  durability: none
log:
  format: text
listeners:
  tcp:
    default:
      bind: 127.0.0.1:0
  ws:
    default:
      bind: 127.0.0.1:0
      path: /mqtt
sys_topics:
  sys_msg_interval: 0
`, strconv.Quote(dataDir)))
	b := startBroker(t, cfg, "tcp:default", "ws:default")
	wsURL := "ws://" + b.addr("ws:default") + "/mqtt"
	tcpAddr := b.addr("tcp:default")

	for _, tc := range []struct {
		name     string
		wsToTCP  bool // the WebSocket client publishes and the TCP client subscribes
		clientID string
	}{
		{"ws publishes, tcp subscribes", true, "ws2tcp"},
		{"tcp publishes, ws subscribes", false, "tcp2ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "wst/" + tc.clientID
			type msg struct {
				topic   string
				qos     byte
				payload string
			}
			got := make(chan msg, 16)

			wsc := dialWS311(t, wsURL, tc.clientID+"-ws")
			tcpc := dialPahoV5(t, tcpAddr, tc.clientID+"-tcp", func(p *paho.Publish) {
				got <- msg{p.Topic, p.QoS, string(p.Payload)}
			})
			ctx, cancel := context.WithTimeout(context.Background(), waitPacket)
			defer cancel()

			if tc.wsToTCP {
				if _, err := tcpc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic + "/#", QoS: 2}}}); err != nil {
					t.Fatalf("tcp subscribe: %v", err)
				}
			} else {
				waitToken(t, wsc.Subscribe(topic+"/#", 2, func(_ mqtt.Client, m mqtt.Message) {
					got <- msg{m.Topic(), m.Qos(), string(m.Payload())}
				}), "ws subscribe")
			}
			var want []msg
			for qos := byte(0); qos <= 2; qos++ {
				m := msg{fmt.Sprintf("%s/q%d", topic, qos), qos, fmt.Sprintf("%s qos %d", tc.name, qos)}
				want = append(want, m)
				if tc.wsToTCP {
					waitToken(t, wsc.Publish(m.topic, qos, false, m.payload), "ws publish")
				} else if _, err := tcpc.Publish(ctx, &paho.Publish{Topic: m.topic, QoS: qos, Payload: []byte(m.payload)}); err != nil {
					t.Fatalf("tcp publish: %v", err)
				}
			}
			for _, w := range want {
				select {
				case m := <-got:
					if m != w {
						t.Fatalf("received %+v, want %+v", m, w)
					}
				case <-time.After(waitPacket):
					t.Fatalf("no message within %v, want %+v", waitPacket, w)
				}
			}
		})
	}

	t.Run("wrong path refused", func(t *testing.T) {
		o := mqtt.NewClientOptions().AddBroker("ws://" + b.addr("ws:default") + "/other").SetClientID("ws-wrong-path").
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitPacket).SetProtocolVersion(4)
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(2 * waitPacket) {
			t.Fatal("connect on the wrong path neither succeeded nor failed in time")
		}
		if tok.Error() == nil {
			c.Disconnect(100)
			t.Fatal("connected on path /other, want the upgrade refused")
		}
	})
}

// dialWS311 connects a paho.mqtt.golang (MQTT 3.1.1) client to a ws:// URL.
func dialWS311(t *testing.T, url, id string) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitPacket).
		SetProtocolVersion(4).SetOrderMatters(true).SetKeepAlive(60 * time.Second)
	c := mqtt.NewClient(o)
	waitToken(t, c.Connect(), "ws connect")
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

func waitToken(t *testing.T, tok mqtt.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(waitPacket) {
		t.Fatalf("%s: no answer within %v", what, waitPacket)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// dialPahoV5 connects a paho.golang MQTT 5 client over TCP; onPublish sees every message.
func dialPahoV5(t *testing.T, addr, id string, onPublish func(*paho.Publish)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitPacket)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onPublish(pr.Packet)
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitPacket)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60}); err != nil {
		_ = conn.Close()
		t.Fatalf("paho.golang connect: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		_ = conn.Close()
	})
	return c
}
