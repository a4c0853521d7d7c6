package main

// Flapping detection as a device meets it, on the built binary with the default
// flapping_detect (max_count 15 in 1m, ban 5m, counted by client id): clients that connect,
// work and disconnect cleanly are never banned, however often; takeover loops and
// connections that die are.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// flapBroker starts the binary on the test configuration, whose flapping_detect is the
// default, and returns the address of its TCP listener.
func flapBroker(t *testing.T) *brokerProc {
	t.Helper()
	cfg := writeConfig(t, testConfig(filepath.Join(t.TempDir(), "data"), "sync"))
	return startBroker(t, cfg, "tcp:default")
}

// requireProgram skips the test when prog is not installed, or fails it when
// REQUIRE_TEST_SERVICES is set (as in CI).
func requireProgram(t *testing.T, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		msg := prog + " not on PATH (scripts/test-services.sh install)"
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatal(msg + "; REQUIRE_TEST_SERVICES is set")
		}
		t.Skip(msg)
	}
}

// connackOf sends a CONNECT of id and returns the CONNACK's reason code and the client.
func connackOf(t *testing.T, addr string, v packet.Version, id string) (packet.ReasonCode, *rawClient) {
	t.Helper()
	c := dialRaw(t, addr, v)
	c.send(&packet.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 60})
	return expect[*packet.Connack](c).ReasonCode, c
}

// wantAdmitted fails unless a client of id connects, and disconnects it cleanly.
func wantAdmitted(t *testing.T, addr, id string) {
	t.Helper()
	got, c := connackOf(t, addr, packet.V5, id)
	if got != packet.Success {
		t.Fatalf("%s: CONNACK 0x%02X, want success", id, byte(got))
	}
	c.disconnect()
}

func TestFlappingCleanClientsNotBanned(t *testing.T) {
	b := flapBroker(t)
	addr := b.addr("tcp:default")
	const cycles = 30 // twice max_count
	tests := []struct {
		name  string
		cycle func(t *testing.T, id string, i int)
	}{
		{"paho.golang, DISCONNECT 0x00", func(t *testing.T, id string, i int) {
			c := dialPahoV5(t, addr, id, func(*paho.Publish) {})
			ctx, cancel := context.WithTimeout(context.Background(), waitPacket)
			defer cancel()
			if _, err := c.Publish(ctx, &paho.Publish{Topic: "clean/" + id, QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatalf("cycle %d: publish: %v", i, err)
			}
			if err := c.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
				t.Fatalf("cycle %d: disconnect: %v", i, err)
			}
		}},
		{"MQTT 5, DISCONNECT 0x04 with a will", func(t *testing.T, id string, i int) {
			c := dialRaw(t, addr, packet.V5)
			c.connect(&packet.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
				Will: &packet.Will{Topic: "will/" + id, Payload: []byte("gone")}})
			c.publish1("clean/"+id, []byte(strconv.Itoa(i)), false, true)
			c.send(&packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage})
			select {
			case <-c.done:
			case <-time.After(waitPacket):
				t.Fatalf("cycle %d: still open after DISCONNECT", i)
			}
			c.close()
		}},
		{"MQTT 3.1.1, DISCONNECT", func(t *testing.T, id string, i int) {
			c := dialRaw(t, addr, packet.V311)
			c.connect(&packet.Connect{ClientID: id, CleanStart: true, KeepAlive: 60})
			c.publish1("clean/"+id, []byte(strconv.Itoa(i)), false, true)
			c.disconnect()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("clean-%d", len(tc.name))
			for i := 1; i <= cycles; i++ {
				tc.cycle(t, id, i)
			}
			wantAdmitted(t, addr, id)
		})
	}

	t.Run("mosquitto_pub -i sensor-1", func(t *testing.T) {
		requireProgram(t, "mosquitto_pub")
		for _, version := range []string{"mqttv311", "mqttv5"} {
			for i := 1; i <= cycles; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
				out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", b.port("tcp:default"),
					"-V", version, "-i", "sensor-1", "-q", "1", "-t", "sensors/1", "-m", strconv.Itoa(i)).CombinedOutput()
				cancel()
				if err != nil {
					t.Fatalf("mosquitto_pub -V %s run %d: %v\n%s", version, i, err, out)
				}
			}
		}
		wantAdmitted(t, addr, "sensor-1")
	})
}

// Two devices sharing one client id take it over from each other: every takeover is a
// flap, whichever device lost, and the 16th bans the client id.
func TestFlappingTakeoverLoopBanned(t *testing.T) {
	b := flapBroker(t)
	addr := b.addr("tcp:default")
	const id = "shared-1"
	var prev *rawClient
	for i := 1; ; i++ {
		got, c := connackOf(t, addr, packet.V5, id)
		if got == packet.Banned {
			// 17 connects made 16 takeovers.
			if i != 18 {
				t.Fatalf("refused at connect %d, want 18 (16 takeovers, max_count 15)", i)
			}
			break
		}
		if got != packet.Success {
			t.Fatalf("connect %d: CONNACK 0x%02X", i, byte(got))
		}
		if i > 18 {
			t.Fatal("never banned")
		}
		if prev != nil {
			if p, ok := prev.next(waitPacket); ok {
				if d, isD := p.(*packet.Disconnect); !isD || d.ReasonCode != packet.SessionTakenOver {
					t.Fatalf("connect %d: the previous device got %s, want DISCONNECT 0x8E", i, describe(p))
				}
			}
			prev.close()
		}
		prev = c
	}
	// The ban is the client id's; another device is not affected.
	wantAdmitted(t, addr, "shared-2")
}

// A device whose connections die without DISCONNECT, in any of the ways that happens, is
// banned after the 16th. Its clean connections meanwhile are not counted.
func TestFlappingDyingConnectionsBanned(t *testing.T) {
	b := flapBroker(t)
	addr := b.addr("tcp:default")
	tests := []struct {
		name string
		die  func(c *rawClient)
	}{
		{"socket closed", func(c *rawClient) {}},
		{"protocol error (a second CONNECT)", func(c *rawClient) {
			c.send(&packet.Connect{Version: packet.V5, ClientID: "again", CleanStart: true})
			c.next(waitPacket) // DISCONNECT 0x82, or the closed socket
		}},
		{"DISCONNECT with an error reason", func(c *rawClient) {
			c.send(&packet.Disconnect{ReasonCode: packet.UnspecifiedError})
			c.next(waitPacket) // the closed socket
		}},
	}
	for n, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("dying-%d", n)
			for i := 1; i <= 16; i++ {
				got, c := connackOf(t, addr, packet.V5, id)
				if got != packet.Success {
					t.Fatalf("connect %d: CONNACK 0x%02X, want success", i, byte(got))
				}
				tc.die(c)
				c.close()
			}
			// The broker counts the 16th death once it has seen it; until then a clean
			// connection is admitted, and it is not counted.
			deadline := time.Now().Add(waitPacket)
			for {
				got, c := connackOf(t, addr, packet.V5, id)
				if got == packet.Banned {
					c.close()
					break
				}
				if got != packet.Success {
					t.Fatalf("CONNACK 0x%02X, want success or 0x8A", byte(got))
				}
				c.disconnect()
				if time.Now().After(deadline) {
					t.Fatalf("not banned %v after 16 dead connections", waitPacket)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wantAdmitted(t, addr, "steady")
}
