package bench

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestSeqSeen(t *testing.T) {
	a, b := origin{run: 7, pub: 0}, origin{run: 7, pub: 1}
	type arrival struct {
		from origin
		seq  uint64
	}
	for _, tc := range []struct {
		name          string
		arrivals      []arrival
		missing, dups int64
	}{
		{"none", nil, 0, 0},
		{"in order", []arrival{{a, 1}, {a, 2}, {a, 3}}, 0, 0},
		{"out of order", []arrival{{a, 2}, {a, 1}, {a, 3}}, 0, 0},
		{"a gap", []arrival{{a, 1}, {a, 2}, {a, 4}}, 1, 0},
		{"the first lost", []arrival{{a, 2}, {a, 3}}, 1, 0},
		{"a duplicate", []arrival{{a, 1}, {a, 1}, {a, 2}}, 0, 1},
		{"per publisher", []arrival{{a, 1}, {b, 1}, {b, 3}, {a, 2}, {b, 3}}, 1, 1},
		{"word boundaries", []arrival{{a, 63}, {a, 64}, {a, 65}, {a, 64}}, 62, 1},
		{"zero and huge numbers are not tracked", []arrival{{a, 0}, {a, maxTrackedSeq + 1}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSeqSeen()
			for _, x := range tc.arrivals {
				s.add(x.from, x.seq)
			}
			if m, d := s.counts(); m != tc.missing || d != tc.dups {
				t.Fatalf("counts() = %d missing, %d duplicates; want %d, %d", m, d, tc.missing, tc.dups)
			}
		})
	}
}

func TestRatesAreOverTheFlow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name     string
		mode     Mode
		n        int64
		spans    [][2]time.Time // first and last of each client; zero = nothing flowed
		flow     float64
		wantRate float64
	}{
		// 201 messages from 0 s to 2 s in a 10 s window: 100/s, not 20/s.
		{"sub waited for its publishers", ModeSub, 201, [][2]time.Time{{at(3000), at(5000)}}, 2, 100},
		{"pub over several clients", ModePub, 301, [][2]time.Time{{at(0), at(2000)}, {at(500), at(3000)}, {}}, 3, 100},
		{"one message has no rate", ModeSub, 1, [][2]time.Time{{at(1), at(1)}}, 0, 0},
		{"nothing flowed", ModePub, 0, [][2]time.Time{{}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{o: Defaults(), mode: tc.mode}
			var clients []*client
			for _, sp := range tc.spans {
				clients = append(clients, &client{first: sp[0], last: sp[1]})
			}
			r.stats.published.Store(tc.n)
			r.stats.received.Store(tc.n)
			s := r.summary(0, 10, clients)
			rate := s.ReceivePerSec
			if tc.mode == ModePub {
				rate = s.PublishPerSec
			}
			if s.FlowSeconds != tc.flow || rate != tc.wantRate || s.Seconds != 10 {
				t.Fatalf("flow %vs rate %v/s (window %vs); want flow %vs rate %v/s", s.FlowSeconds, rate, s.Seconds, tc.flow, tc.wantRate)
			}
		})
	}
}

// rawPublisher publishes at QoS 1 with the project's codec, so that a test can send what
// no bench publisher would: gaps and repeats in the sequence numbers.
func rawPublisher(t *testing.T, addr string) func(topic string, payload []byte) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	rd := packet.NewReader(nc, 1<<20)
	send := func(p packet.Packet) {
		t.Helper()
		b, err := p.AppendTo(nil, packet.V5)
		if err == nil {
			_, err = nc.Write(b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	send(&packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 60, ClientID: "raw-pub"})
	if p, err := rd.ReadPacket(packet.V5); err != nil || p.(*packet.Connack).ReasonCode != packet.Success {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	var id uint16
	return func(topic string, payload []byte) {
		t.Helper()
		id++
		send(&packet.Publish{QoS: 1, PacketID: id, Topic: topic, Payload: payload})
		if p, err := rd.ReadPacket(packet.V5); err != nil {
			t.Fatalf("PUBACK: %v", err)
		} else if _, ok := p.(*packet.Puback); !ok {
			t.Fatalf("got %v, want PUBACK", p.Type())
		}
	}
}

// TestSubscriberCountsLossAndDuplicates runs a QoS 1 subscriber against a real broker and
// publishes, by hand, two publishers' sequences with gaps and repeats.
func TestSubscriberCountsLossAndDuplicates(t *testing.T) {
	b := startBroker(t)
	type msg struct {
		from origin
		seq  uint64
	}
	p0, p1 := origin{run: 42, pub: 0}, origin{run: 42, pub: 1}
	msgs := []msg{{p0, 1}, {p0, 2}, {p0, 2}, {p0, 4}, {p1, 1}, {p1, 3}, {p1, 3}, {p1, 3}}
	const wantMissing, wantDups = 2, 3 // p0: 3; p1: 2 | p0: one 2; p1: two 3s

	so := Defaults()
	so.Addr, so.QoS, so.Progress, so.Topic = b.tcp, 1, 0, "loss/#"
	so.Count, so.Duration = int64(len(msgs)), 20*time.Second
	ready := make(chan struct{})
	so.Ready = func(int) { close(ready) }
	type result struct {
		s   *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Run(context.Background(), ModeSub, so, nil)
		done <- result{s, err}
	}()
	<-ready
	pub := rawPublisher(t, b.tcp)
	for _, m := range msgs {
		payload := make([]byte, 32)
		stamp(payload, time.Now(), m.seq, m.from)
		pub("loss/x", payload)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	s := res.s
	if s.Received != int64(len(msgs)) || s.Missing != wantMissing || s.Duplicates != wantDups {
		t.Fatalf("received %d, missing %d, duplicates %d; want %d, %d, %d", s.Received, s.Missing, s.Duplicates, len(msgs), wantMissing, wantDups)
	}
}

// TestTargetMissed checks that a run which ends before its count says so in its summary
// and its error.
func TestTargetMissed(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []struct {
		name   string
		mode   Mode
		mutate func(*Options)
	}{
		// Nobody publishes: the subscriber's window ends with nothing received.
		{"sub without publishers", ModeSub, func(o *Options) { o.Count = 10 }},
		// One message per second cannot reach 1000 in a short window.
		{"pub too slow for its count", ModePub, func(o *Options) { o.Count, o.Rate, o.Clients = 1000, 1, 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Defaults()
			o.Addr, o.Progress, o.Duration, o.Topic = b.tcp, 0, 300*time.Millisecond, "missed/%i"
			tc.mutate(&o)
			s, err := Run(context.Background(), tc.mode, o, nil)
			if !errors.Is(err, ErrTargetMissed) {
				t.Fatalf("Run() = %v, want ErrTargetMissed", err)
			}
			if s == nil || s.TargetReached || s.Target == 0 {
				t.Fatalf("summary %+v", s)
			}
		})
	}
}

func TestValidateWebSocketAddr(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		tls     bool
		wantErr bool
	}{
		{"ws://127.0.0.1:8083/mqtt", false, false},
		{"ws://127.0.0.1:8083", false, false},
		{"wss://127.0.0.1:8084/mqtt", true, false},
		{"ws:///mqtt", false, true},
		{"ws://user@127.0.0.1:8083/mqtt", false, true},
		{"ws://127.0.0.1:8083/mqtt", true, true},
	} {
		o := Defaults()
		o.Addr = tc.addr
		if tc.tls {
			o.TLS, _ = TLSFiles("", "", "", "127.0.0.1")
		}
		if err := o.Validate(); (err != nil) != tc.wantErr {
			t.Errorf("Validate(%q, tls %v) = %v, want error %v", tc.addr, tc.tls, err, tc.wantErr)
		}
	}
	if u, _ := wsURL("ws://127.0.0.1:8083"); u.Path != "/mqtt" {
		t.Errorf("a ws:// URL without a path goes to %q, want /mqtt", u.Path)
	}
}
