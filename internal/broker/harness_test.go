package broker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/rampart-mqtt/rampart/internal/listener"
)

// testBroker runs a Server on a loopback TCP listener for one test.
type testBroker struct {
	srv  *Server
	addr string
	lis  listener.Listener
}

func startBroker(t testing.TB, mutate func(*Options)) *testBroker {
	t.Helper()
	return startBrokerOn(t, mutate, nil)
}

// startBrokerOn is startBroker with the listener's options changed by listen.
func startBrokerOn(t testing.TB, mutate func(*Options), listen func(*listener.TCPOptions)) *testBroker {
	t.Helper()
	o := Defaults()
	o.SysInterval = 0
	// Park idle connections almost at once, so every test also drives the parking paths
	// (park, wake on data, wake on close, keep alive while parked).
	o.ParkAfter = 5 * time.Millisecond
	if mutate != nil {
		mutate(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lo := listener.TCPOptions{Name: "test", Bind: "127.0.0.1:0"}
	if listen != nil {
		listen(&lo)
	}
	l, err := listener.NewTCP(ctx, lo)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(o)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, []listener.Listener{l}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &testBroker{srv: srv, addr: l.Addr().String(), lis: l}
}

// v5Client connects a paho.golang client; received publishes go to the returned channel.
func (b *testBroker) v5Client(t *testing.T, cp *paho.Connect) (*paho.Client, *paho.Connack, chan *paho.Publish) {
	t.Helper()
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *paho.Publish, 1000)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("connect: %v (connack %+v)", err, ack)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ack, msgs
}

func recv(t *testing.T, ch chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return nil
}

func TestSmokePubSubV5(t *testing.T) {
	b := startBroker(t, nil)
	ctx := context.Background()
	sub, _, msgs := b.v5Client(t, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30})
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "a/+", QoS: 2}}}); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := b.v5Client(t, &paho.Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	for qos := byte(0); qos <= 2; qos++ {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "a/b", QoS: qos, Payload: []byte{'0' + qos}}); err != nil {
			t.Fatal(err)
		}
		got := recv(t, msgs)
		if got.Topic != "a/b" || got.QoS != qos || string(got.Payload) != string([]byte{'0' + qos}) {
			t.Fatalf("got %+v", got)
		}
	}
}
