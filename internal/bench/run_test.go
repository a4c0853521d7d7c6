package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/broker"
	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// testBroker is a broker on loopback with an MQTT listener and a WebSocket listener.
type testBroker struct {
	tcp string // host:port
	ws  string // ws://host:port/mqtt
}

func startBroker(t *testing.T) testBroker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := listener.NewTCP(ctx, listener.TCPOptions{Name: "bench", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := listener.NewWS(ctx, listener.WSOptions{Name: "bench", Bind: "127.0.0.1:0", Path: "/mqtt"})
	if err != nil {
		t.Fatal(err)
	}
	o := broker.Defaults()
	o.SysInterval = 0
	srv := broker.New(o)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, []listener.Listener{l, wl}) }()
	t.Cleanup(func() { cancel(); <-done })
	return testBroker{tcp: l.Addr().String(), ws: "ws://" + wl.Addr().String() + "/mqtt"}
}

func TestPubSubCountsEveryMessage(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []struct {
		name    string
		version packet.Version
		qos     byte
		ws      bool // over the WebSocket listener
	}{
		{"v5 qos0", packet.V5, 0, false},
		{"v311 qos1", packet.V311, 1, false},
		{"v5 qos2", packet.V5, 2, false},
		{"ws v5 qos1", packet.V5, 1, true},
		{"ws v311 qos2", packet.V311, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := b.tcp
			if tc.ws {
				addr = b.ws
			}
			const pubs, perPub = 4, 200
			filter := "t/" + strings.ReplaceAll(tc.name, " ", "-") + "/#"
			so := Defaults()
			so.Addr, so.Version, so.QoS, so.Progress = addr, tc.version, tc.qos, 0
			so.ClientID, so.Topic, so.Count, so.Duration = "sub-"+tc.name+"-%i", filter, pubs*perPub, 20*time.Second
			subDone := make(chan *Summary, 1)
			subReady := make(chan struct{})
			so.Ready = func(int) { close(subReady) }
			go func() {
				s, err := Run(context.Background(), ModeSub, so, nil)
				if err != nil {
					t.Error(err)
				}
				subDone <- s
			}()
			<-subReady // subscribed: the publishers may start

			po := so
			po.Ready = nil
			po.ClientID, po.Clients, po.Count, po.Rate = "pub-"+tc.name+"-%i", pubs, perPub, 2000
			po.Topic = strings.TrimSuffix(filter, "#") + "%i"
			ps, err := Run(context.Background(), ModePub, po, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ps.Published != pubs*perPub || len(ps.Errors) > 0 || !ps.TargetReached || ps.Target != pubs*perPub {
				t.Fatalf("publisher summary %+v", ps)
			}
			if tc.qos > 0 && ps.Acked != ps.Published {
				t.Fatalf("acknowledged %d of %d", ps.Acked, ps.Published)
			}
			ss := <-subDone
			if ss == nil || ss.Received != pubs*perPub || !ss.TargetReached {
				t.Fatalf("subscriber summary %+v", ss)
			}
			if ss.Missing != 0 || ss.Duplicates != 0 {
				t.Fatalf("%d missing and %d duplicates on a broker that delivers every message once", ss.Missing, ss.Duplicates)
			}
			// The rates are over the time the messages flowed, which lies inside the window.
			for _, s := range []*Summary{ps, ss} {
				n := s.Published + s.Received
				rate := s.PublishPerSec + s.ReceivePerSec
				if s.FlowSeconds <= 0 || s.FlowSeconds > s.Seconds || rate != float64(n-1)/s.FlowSeconds {
					t.Fatalf("%s: %d messages, flow %vs in a window of %vs, rate %v", s.Mode, n, s.FlowSeconds, s.Seconds, rate)
				}
			}
			if ss.LatencyP50us <= 0 || ss.LatencyP99us < ss.LatencyP50us {
				t.Fatalf("latency percentiles not measured: %+v", ss)
			}
		})
	}
}

func TestConnModeReportsRefusals(t *testing.T) {
	o := Defaults()
	o.Addr, o.Clients, o.Duration, o.Progress = "127.0.0.1:1", 3, time.Second, 0 // nothing listens on port 1
	s, err := Run(context.Background(), ModeConn, o, nil)
	if err == nil {
		t.Fatal("a run where no client connects must fail")
	}
	if s.ConnectFailed != 3 || s.Errors["dial: connection refused"] != 3 {
		t.Fatalf("summary %+v", s)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"defaults", func(*Options) {}, ""},
		{"no clients", func(o *Options) { o.Clients = 0 }, "clients 0"},
		{"bad version", func(o *Options) { o.Version = 3 }, "protocol version"},
		{"qos 3", func(o *Options) { o.QoS = 3 }, "QoS 3"},
		{"payload too small for the timestamp", func(o *Options) { o.Size = 8 }, "payload size 8"},
		{"payload too small for the publisher", func(o *Options) { o.Size = 23 }, "payload size 23"},
		{"unbounded", func(o *Options) { o.Duration = 0 }, "duration"},
		{"zero window", func(o *Options) { o.Inflight = 0 }, "inflight 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Defaults()
			tc.mutate(&o)
			err := o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseSourceAddrs(t *testing.T) {
	got, err := ParseSourceAddrs("127.0.0.1-127.0.0.4")
	if err != nil || len(got) != 4 || got[3].String() != "127.0.0.4" {
		t.Fatalf("range: %v %v", got, err)
	}
	if _, err := ParseSourceAddrs("127.0.0.9-127.0.0.1"); err == nil {
		t.Fatal("a range that ends before it starts must fail")
	}
	if got, err := ParseSourceAddrs("127.0.0.1, 127.0.0.2"); err != nil || len(got) != 2 {
		t.Fatalf("list: %v %v", got, err)
	}
}

func TestJWTShape(t *testing.T) {
	tok := hs256([]byte("k"), "dev-1", time.Unix(2e9, 0))
	if parts := strings.Split(tok, "."); len(parts) != 3 || parts[0] != "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" {
		t.Fatalf("token %q", tok)
	}
}
