package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// shippedACL is the default ACL file of the repository.
const shippedACL = "../../etc/acl.yaml"

// subCode subscribes to one filter and returns the SUBACK reason code.
func subCode(c *rawClient, filter string, qos byte) packet.ReasonCode {
	c.t.Helper()
	s := &packet.Subscribe{PacketID: c.pid(), Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}
	c.send(s)
	ack := expect[*packet.Suback](c)
	if len(ack.ReasonCodes) != 1 {
		c.t.Fatalf("SUBACK with %d codes", len(ack.ReasonCodes))
	}
	return ack.ReasonCodes[0]
}

// pubCode publishes at QoS 1 and returns the PUBACK reason code.
func pubCode(c *rawClient, topic string, retain bool) packet.ReasonCode {
	c.t.Helper()
	p := &packet.Publish{QoS: 1, Topic: topic, Retain: retain, PacketID: c.pid(), Payload: []byte("x")}
	c.send(p)
	return expect[*packet.Puback](c).ReasonCode
}

// aclBroker starts a broker with password users and a file ACL source at aclPath.
func aclBroker(t *testing.T, aclPath string, extra string) *brokerProc {
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nadmin,admin-pw,false\nalice,alice-pw,false\nbob,bob-pw,false\n")
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authorization:
  sources:
    - {type: file, path: %s}
%s`, strconv.Quote(users), strconv.Quote(aclPath), extra)
	return startBroker(t, writeConfig(t, cfg), "tcp:default")
}

func login(t *testing.T, b *brokerProc, id, user string) *rawClient {
	t.Helper()
	got, c := authConnect(t, b.addr("tcp:default"), packet.V5, id, user, user+"-pw")
	if got != packet.Success {
		t.Fatalf("%s as %s: CONNACK 0x%02X", id, user, byte(got))
	}
	return c
}

// TestAuthzShippedACL drives the least-privilege layout of etc/acl.yaml with real
// clients: each device owns its own namespace and nothing else.
func TestAuthzShippedACL(t *testing.T) {
	abs, err := filepath.Abs(shippedACL)
	if err != nil {
		t.Fatal(err)
	}
	b := aclBroker(t, abs, "")
	devA := login(t, b, "dev-a", "alice")
	devB := login(t, b, "dev-b", "bob")

	if got := subCode(devA, "devices/dev-a/commands", 1); got.IsError() {
		t.Fatalf("a device cannot subscribe to its own commands: 0x%02X", byte(got))
	}
	for _, tc := range []struct {
		name, filter string
	}{
		{"another device's commands", "devices/dev-b/commands"},
		{"every device's commands", "devices/+/commands"},
		{"everything", "#"},
		{"everything below one level", "+/#"},
		{"the broker's statistics", "$SYS/#"},
		{"its own telemetry (publish only)", "devices/dev-a/telemetry"},
	} {
		t.Run("subscribe "+tc.name+" is refused", func(t *testing.T) {
			if got := subCode(devA, tc.filter, 1); got != packet.NotAuthorized {
				t.Fatalf("SUBACK 0x%02X for %s, want 0x87", byte(got), tc.filter)
			}
		})
	}
	if got := pubCode(devA, "devices/dev-a/telemetry", false); got.IsError() {
		t.Fatalf("a device cannot publish its own telemetry: 0x%02X", byte(got))
	}
	if got := pubCode(devA, "devices/dev-b/telemetry", false); got != packet.NotAuthorized {
		t.Fatalf("publish to another device's telemetry: PUBACK 0x%02X, want 0x87", byte(got))
	}
	if got := pubCode(devA, "devices/dev-b/commands", false); got != packet.NotAuthorized {
		t.Fatalf("publish a command to another device: PUBACK 0x%02X, want 0x87", byte(got))
	}
	// Nothing devA tried reached devB's subscription.
	if got := subCode(devB, "devices/dev-b/commands", 1); got.IsError() {
		t.Fatalf("0x%02X", byte(got))
	}
	devB.expectNothing(300 * time.Millisecond)

	admin := login(t, b, "ops-console", "admin")
	for _, f := range []string{"#", "$SYS/#", "+/#"} {
		if got := subCode(admin, f, 0); got.IsError() {
			t.Fatalf("admin subscribe %s: 0x%02X", f, byte(got))
		}
	}
}

func TestAuthzWildcardClientIDsRefused(t *testing.T) {
	abs, _ := filepath.Abs(shippedACL)
	b := aclBroker(t, abs, "")
	for _, id := range []string{"#", "a/+", "dev/x", "+"} {
		t.Run(id, func(t *testing.T) {
			got, c := authConnect(t, b.addr("tcp:default"), packet.V5, id, "alice", "alice-pw")
			c.close()
			if got != packet.ClientIdentifierNotValid {
				t.Fatalf("client id %q: CONNACK 0x%02X, want 0x85", id, byte(got))
			}
		})
	}
}

const testACL = `rules:
  - {permission: allow, who: {username: admin}}
  - {permission: deny, who: all, action: subscribe, topics: ["retained/secret/#"]}
  - {permission: allow, who: all, action: subscribe, topics: ["retained/#", "news/#"]}
  - {permission: allow, who: all, action: publish, topics: ["news/#", "last-words/${clientid}"]}
  - {permission: deny, who: all}
`

func TestAuthzRulesAndChanges(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(acl, []byte(testACL), 0o600); err != nil {
		t.Fatal(err)
	}
	b := aclBroker(t, acl, "")

	t.Run("a retained message on a forbidden topic is not delivered", func(t *testing.T) {
		admin := login(t, b, "admin-1", "admin")
		admin.publish1("retained/secret/key", []byte("s3cret"), true, true)
		admin.publish1("retained/public/news", []byte("hello"), true, true)
		alice := login(t, b, "alice-r", "alice")
		// The wide filter overlaps the denied area: refused as a whole.
		if got := subCode(alice, "retained/#", 1); got != packet.NotAuthorized {
			t.Fatalf("SUBACK 0x%02X for retained/#, want 0x87", byte(got))
		}
		alice.expectNothing(300 * time.Millisecond)
		if got := subCode(alice, "retained/public/+", 1); got.IsError() {
			t.Fatalf("0x%02X", byte(got))
		}
		p := expect[*packet.Publish](alice)
		if p.Topic != "retained/public/news" {
			t.Fatalf("got %s", p.Topic)
		}
	})

	t.Run("a will to a forbidden topic is refused at CONNECT", func(t *testing.T) {
		c := dialRaw(t, b.addr("tcp:default"), packet.V5)
		cp := &packet.Connect{Version: packet.V5, ClientID: "willy", CleanStart: true, KeepAlive: 60,
			HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("alice-pw"),
			Will: &packet.Will{Topic: "devices/other/status", Payload: []byte("gone")}}
		c.send(cp)
		if ack := expect[*packet.Connack](c); ack.ReasonCode != packet.NotAuthorized {
			t.Fatalf("CONNACK 0x%02X, want 0x87", byte(ack.ReasonCode))
		}
	})

	t.Run("rule removed: the next publish is denied and the subscription removed at once", func(t *testing.T) {
		sub := login(t, b, "alice-news", "alice")
		if got := subCode(sub, "news/#", 1); got.IsError() {
			t.Fatalf("0x%02X", byte(got))
		}
		pub := login(t, b, "bob-news", "bob")
		if got := pubCode(pub, "news/1", false); got.IsError() {
			t.Fatalf("0x%02X", byte(got))
		}
		expect[*packet.Publish](sub)
		// A client with a will that the new rules forbid.
		w := dialRaw(t, b.addr("tcp:default"), packet.V5)
		w.send(&packet.Connect{Version: packet.V5, ClientID: "bob-will", CleanStart: true, KeepAlive: 60,
			HasUsername: true, Username: "bob", HasPassword: true, Password: []byte("bob-pw"),
			Will: &packet.Will{Topic: "last-words/bob-will", Payload: []byte("bye")}})
		if ack := expect[*packet.Connack](w); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
		}
		watcher := login(t, b, "watch", "admin")
		watcher.subscribe("last-words/#", 0)

		changed := strings.ReplaceAll(testACL, `"news/#", "last-words/${clientid}"`, `"elsewhere/#"`)
		changed = strings.ReplaceAll(changed, `["retained/#", "news/#"]`, `["retained/#"]`)
		if err := os.WriteFile(acl, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		b.signal(syscall.SIGHUP)
		// No TTL to wait out: the first publish after the reload is refused.
		deadline := time.Now().Add(waitPacket)
		for pubCode(pub, "news/2", false) != packet.NotAuthorized {
			if time.Now().After(deadline) {
				t.Fatal("publish still allowed after the rule was removed")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// What was published before the reload took effect may still arrive; then the
		// subscription the new rules deny is gone: admin's message does not arrive.
		sub.drain(200 * time.Millisecond)
		admin := login(t, b, "admin-news", "admin")
		admin.publish1("news/3", []byte("x"), false, true)
		sub.expectNothing(300 * time.Millisecond)
		// The will is checked again when it fires: the new rules forbid it.
		w.close()
		watcher.expectNothing(500 * time.Millisecond)
	})

	t.Run("a broken file keeps the old rules and says why", func(t *testing.T) {
		if err := os.WriteFile(acl, []byte("rules:\n  - {permission: allow, who: all, topics: [\"a/#/b\"]}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		b.signal(syscall.SIGHUP)
		deadline := time.Now().Add(waitPacket)
		for !strings.Contains(b.stderr.String(), "ACL file not reloaded") {
			if time.Now().After(deadline) {
				t.Fatal("no log line about the broken ACL file")
			}
			time.Sleep(20 * time.Millisecond)
		}
		c := login(t, b, "alice-after", "alice")
		if got := pubCode(c, "news/4", false); got != packet.NotAuthorized {
			t.Fatalf("publish under the kept rules: 0x%02X, want 0x87", byte(got))
		}
		if got := subCode(c, "retained/public/+", 0); got.IsError() {
			t.Fatalf("the kept rules no longer allow retained/public/+: 0x%02X", byte(got))
		}
	})
}

// expectNothing fails when a packet arrives within d (the connection may stay open).
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f := <-c.frames:
		c.t.Fatalf("unexpected %s", describe(f.p))
	case <-timer.C:
	}
}

// drain reads and drops packets until none arrives within d.
func (c *rawClient) drain(d time.Duration) {
	for {
		select {
		case <-c.frames:
		case <-time.After(d):
			return
		}
	}
}

func TestAuthzDenyActionsAndMQTT311(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(acl, []byte(testACL), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("MQTT 3.1.1: SUBACK 0x80 and a silently dropped publish", func(t *testing.T) {
		b := aclBroker(t, acl, "")
		got, c := authConnect(t, b.addr("tcp:default"), packet.V311, "old-client", "alice", "alice-pw")
		if got != packet.Success {
			t.Fatalf("CONNACK 0x%02X", byte(got))
		}
		if code := subCode(c, "secret/#", 1); code != packet.SubackFailure {
			t.Fatalf("SUBACK 0x%02X, want 0x80", byte(code))
		}
		// The refused publish is acknowledged (3.1.1 has no reason codes) and goes nowhere.
		watcher := login(t, b, "admin-watch", "admin")
		watcher.subscribe("secret/#", 0)
		c.send(&packet.Publish{QoS: 1, Topic: "secret/x", PacketID: c.pid(), Payload: []byte("x")})
		expect[*packet.Puback](c)
		watcher.expectNothing(300 * time.Millisecond)
	})
	t.Run("deny_action disconnect", func(t *testing.T) {
		b := aclBroker(t, acl, "  deny_action: disconnect\n")
		c := login(t, b, "alice-dis", "alice")
		c.send(&packet.Publish{QoS: 1, Topic: "secret/x", PacketID: c.pid(), Payload: []byte("x")})
		p, ok := c.next(waitPacket)
		if d, isD := p.(*packet.Disconnect); !ok || !isD || d.ReasonCode != packet.NotAuthorized {
			t.Fatalf("got %s (open %v), want DISCONNECT 0x87", describe(p), ok)
		}
	})
}
