package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
)

func TestSentinel(t *testing.T) {
	sentinel, master := testsvc.StartRedisSentinel(t)
	ctx := context.Background()

	// The master's address as the sentinel reports it, for a direct client.
	s, err := New(Config{Addr: sentinel})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", master)
	a, _ := v.([]any)
	if err != nil || len(a) != 2 {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME = %v, %v", v, err)
	}
	direct, err := New(Config{Addr: net.JoinHostPort(fmt.Sprint(a[0]), fmt.Sprint(a[1]))})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.Do(ctx, "HSET", "mqtt_user:alice", "password_hash", "h", "salt", "s"); err != nil {
		t.Fatal(err)
	}

	c, err := New(Config{Mode: ModeSentinel, Addrs: []string{sentinel}, MasterName: master})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr() != "sentinel:"+master+"@"+sentinel {
		t.Errorf("Addr() = %q", c.Addr())
	}
	v, err = c.Do(ctx, "HMGET", "mqtt_user:alice", "password_hash", "salt")
	if err != nil || !slices.Equal(v.([]any), []any{"h", "s"}) {
		t.Fatalf("HMGET through the sentinel = %v, %v", v, err)
	}
	// Writes go to the master too.
	if _, err := c.Do(ctx, "SET", "written", "through sentinel"); err != nil {
		t.Fatal(err)
	}
	if v, err := direct.Do(ctx, "GET", "written"); err != nil || v != "through sentinel" {
		t.Fatalf("GET on the master = %v, %v", v, err)
	}

	unknown, err := New(Config{Mode: ModeSentinel, Addrs: []string{sentinel}, MasterName: "no-such-master"})
	if err != nil {
		t.Fatal(err)
	}
	defer unknown.Close()
	if err := unknown.Ping(ctx); err == nil {
		t.Fatal("ping of a master the sentinel does not know: want an error")
	}
}

func TestCluster(t *testing.T) {
	seeds := testsvc.StartRedisCluster(t)
	ctx := context.Background()
	// One seed is enough: the client learns the other nodes from it.
	c, err := New(Config{Mode: ModeCluster, Addrs: seeds[:1]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	for _, u := range users {
		if _, err := c.Do(ctx, "HSET", "mqtt_acl:"+u, "t/"+u, "publish"); err != nil {
			t.Fatalf("HSET for %s: %v", u, err)
		}
	}
	// The keys are spread over the nodes: each lives on exactly one, and not all on one.
	holders := map[string]bool{}
	for _, u := range users {
		n := 0
		for _, seed := range seeds {
			node, err := New(Config{Addr: seed})
			if err != nil {
				t.Fatal(err)
			}
			// A node that does not hold the key's slot answers MOVED.
			v, err := node.Do(ctx, "EXISTS", "mqtt_acl:"+u)
			node.Close()
			if err == nil && v == int64(1) {
				n++
				holders[seed] = true
			}
		}
		if n != 1 {
			t.Fatalf("mqtt_acl:%s is on %d nodes, want 1", u, n)
		}
	}
	if len(holders) < 2 {
		t.Fatalf("all keys on %v; want them spread over the nodes", holders)
	}
	for _, u := range users {
		v, err := c.Do(ctx, "HGETALL", "mqtt_acl:"+u)
		if err != nil || !slices.Equal(v.([]any), []any{"t/" + u, "publish"}) {
			t.Fatalf("HGETALL mqtt_acl:%s = %v, %v", u, v, err)
		}
	}
	if v, err := c.Do(ctx, "HGETALL", "mqtt_acl:nobody"); err != nil || len(v.([]any)) != 0 {
		t.Fatalf("HGETALL of a missing key = %v, %v", v, err)
	}
}

// TestSentinelPassword: sentinels that require a password are reached with
// SentinelPassword, and refuse a client without it.
func TestSentinelPassword(t *testing.T) {
	const pw = "sentinel-secret-1"
	sentinel, master := testsvc.StartRedisSentinelAuth(t, pw)
	pwFile := filepath.Join(t.TempDir(), "sentinel.pass")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		ref    string
		wantOK bool
	}{
		{"with the sentinel password", "file:" + pwFile, true},
		{"without it", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Mode: ModeSentinel, Addrs: []string{sentinel}, MasterName: master, SentinelPassword: tc.ref})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Do(ctx, "SET", "k", "v")
			if (err == nil) != tc.wantOK {
				t.Fatalf("SET through the sentinel: %v, want success=%v", err, tc.wantOK)
			}
		})
	}
}

// TestLearnedAddressPlainText: without TLS, an address learned from a sentinel or a
// cluster node must be on loopback; one elsewhere is refused without dialing.
func TestLearnedAddressPlainText(t *testing.T) {
	dial := loopbackDialer(time.Second)
	for _, tc := range []struct {
		addr   string
		wantOK bool
	}{
		{"192.0.2.7:6379", false}, // TEST-NET-1: refused before any packet
		{"[2001:db8::7]:6379", false},
		{"db.example:6379", false},
	} {
		c, err := dial(context.Background(), "tcp", tc.addr)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.wantOK || (err != nil && !strings.Contains(err.Error(), "not on loopback")) {
			t.Errorf("%s: %v, want refused for plain text", tc.addr, err)
		}
	}
	// A loopback address is dialled.
	sentinel, _ := testsvc.StartRedisSentinel(t)
	c, err := dial(context.Background(), "tcp", sentinel)
	if err != nil {
		t.Fatalf("loopback %s: %v", sentinel, err)
	}
	c.Close()
}
