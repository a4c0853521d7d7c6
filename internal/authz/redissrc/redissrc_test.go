package redissrc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/redis"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

var (
	pub = authz.Action{Kind: authz.ActPublish}
	sub = authz.Action{Kind: authz.ActSubscribe}
)

type fixture struct {
	addr  string
	stop  func()
	admin *redis.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr, stop := testsvc.StartRedis(t)
	admin, err := redis.New(redis.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	f := &fixture{addr: addr, stop: stop, admin: admin}
	f.do(t, "HSET", "mqtt_acl:alice",
		"t/pub", "publish",
		"t/sub/#", "subscribe",
		"t/both/+", "all",
		"devices/${clientid}/cmd", "subscribe",
		"t/bogus", "delete",
		"t/bad/#/x", "all")
	f.do(t, "SET", "canary", "still here")
	return f
}

func (f *fixture) do(t *testing.T, args ...string) any {
	t.Helper()
	v, err := f.admin.Do(context.Background(), args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

func (f *fixture) source(t *testing.T, onError string) *Source {
	t.Helper()
	s, err := New(Config{Redis: redis.Config{Addr: f.addr, CommandTimeout: 2e9}, Cmd: "HGETALL mqtt_acl:${username}", OnError: onError}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ask(s *Source, user string, a authz.Action, topic string) authz.Decision {
	return s.ForClient(&clientinfo.Info{ClientID: "dev1", Username: user}).Authorize(context.Background(), a, topic)
}

func TestAuthorize(t *testing.T) {
	f := newFixture(t)
	s := f.source(t, "")
	tests := []struct {
		name  string
		user  string
		act   authz.Action
		topic string
		want  authz.Decision
	}{
		{"publish allowed", "alice", pub, "t/pub", authz.Allow},
		{"subscribe on a publish rule", "alice", sub, "t/pub", authz.NoMatch},
		{"subscribe allowed", "alice", sub, "t/sub/a/b", authz.Allow},
		{"publish on a subscribe rule", "alice", pub, "t/sub/a", authz.NoMatch},
		{"all: publish", "alice", pub, "t/both/x", authz.Allow},
		{"all: subscribe", "alice", sub, "t/both/y", authz.Allow},
		{"all: too deep", "alice", pub, "t/both/x/y", authz.NoMatch},
		{"placeholder topic", "alice", sub, "devices/dev1/cmd", authz.Allow},
		{"placeholder topic, other client", "alice", sub, "devices/dev2/cmd", authz.NoMatch},
		{"unknown action grants nothing", "alice", pub, "t/bogus", authz.NoMatch},
		{"other topic", "alice", pub, "other", authz.NoMatch},
		{"other user", "bob", pub, "t/pub", authz.NoMatch},
		{"no user name", "", pub, "t/pub", authz.NoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ask(s, tt.user, tt.act, tt.topic); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInjection(t *testing.T) {
	f := newFixture(t)
	s := f.source(t, "")
	for _, n := range []string{"x\r\nFLUSHALL", "alice\r\nDEL mqtt_acl:alice", "* ", "*", "alice extra", "*2\r\n$8\r\nFLUSHALL\r\n"} {
		if got := ask(s, n, pub, "t/pub"); got != authz.NoMatch {
			t.Errorf("user %q: %v, want nomatch", n, got)
		}
	}
	if got := f.do(t, "DBSIZE"); got != int64(2) {
		t.Fatalf("DBSIZE = %v, want 2", got)
	}
	if got := ask(s, "alice", pub, "t/pub"); got != authz.Allow {
		t.Fatalf("alice after injection attempts: %v", got)
	}
}

func TestCachedPerSession(t *testing.T) {
	f := newFixture(t)
	s := f.source(t, "")
	old := s.ForClient(&clientinfo.Info{ClientID: "dev1", Username: "alice"})
	if got := old.Authorize(context.Background(), pub, "t/pub"); got != authz.Allow {
		t.Fatalf("before delete: %v", got)
	}
	f.do(t, "DEL", "mqtt_acl:alice")
	// The running session keeps what it read; a new session reads again.
	if got := old.Authorize(context.Background(), pub, "t/pub"); got != authz.Allow {
		t.Fatalf("same session after delete: %v, want allow (read once per session)", got)
	}
	if got := ask(s, "alice", pub, "t/pub"); got != authz.NoMatch {
		t.Fatalf("new session after delete: %v, want nomatch", got)
	}
}

func TestBackendFailure(t *testing.T) {
	f := newFixture(t)
	deny := f.source(t, "")
	ignore := f.source(t, OnErrorIgnore)
	sess := deny.ForClient(&clientinfo.Info{ClientID: "dev1", Username: "alice"})
	f.do(t, "SET", "mqtt_acl:mallory", "not a hash")
	if got := ask(deny, "mallory", pub, "t/pub"); got != authz.Deny {
		t.Fatalf("wrong key type: %v, want deny", got)
	}
	f.stop()
	if got := sess.Authorize(context.Background(), pub, "t/pub"); got != authz.Deny {
		t.Fatalf("server down: %v, want deny", got)
	}
	if got := ask(ignore, "alice", pub, "t/pub"); got != authz.NoMatch {
		t.Fatalf("server down, on_error ignore: %v, want nomatch", got)
	}
	testsvc.RestartRedis(t, f.addr)
	f.do(t, "HSET", "mqtt_acl:alice", "t/pub", "publish")
	// The failure was not remembered: the same session reads again, once the
	// connector's back-off after the failure has run out.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := sess.Authorize(context.Background(), pub, "t/pub")
		if got == authz.Allow {
			break
		}
		if got != authz.Deny || time.Now().After(deadline) {
			t.Fatalf("after restart: %v, want allow", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCluster reads the rules of clients whose hashes sit on different nodes of a Redis
// Cluster.
func TestCluster(t *testing.T) {
	seeds := testsvc.StartRedisCluster(t)
	rc := redis.Config{Mode: redis.ModeCluster, Addrs: seeds[:1]}
	writer, err := redis.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	for _, u := range users {
		if _, err := writer.Do(context.Background(), "HSET", "mqtt_acl:"+u, "t/"+u+"/#", "publish", "cmd/"+u, "subscribe"); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Redis: rc, Cmd: "HGETALL mqtt_acl:${username}"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, u := range users {
		if got := ask(s, u, pub, "t/"+u+"/x"); got != authz.Allow {
			t.Errorf("%s publish: %v, want allow", u, got)
		}
		if got := ask(s, u, sub, "cmd/"+u); got != authz.Allow {
			t.Errorf("%s subscribe: %v, want allow", u, got)
		}
		if got := ask(s, u, pub, "t/other/x"); got != authz.NoMatch {
			t.Errorf("%s publish elsewhere: %v, want nomatch", u, got)
		}
	}
	if got := ask(s, "mallory", pub, "t/mallory/x"); got != authz.NoMatch {
		t.Errorf("no hash: %v, want nomatch", got)
	}
}

func TestMaxRules(t *testing.T) {
	f := newFixture(t)
	s, err := New(Config{Redis: redis.Config{Addr: f.addr}, Cmd: "HGETALL mqtt_acl:${username}", MaxRules: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := ask(s, "alice", pub, "t/pub"); got != authz.Deny {
		t.Fatalf("hash larger than max_rules: %v, want deny", got)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"hmget", Config{Cmd: "HMGET mqtt_acl:${username} a"}, "not allowed"},
		{"eval", Config{Cmd: "EVAL x 0"}, "not allowed"},
		{"fields", Config{Cmd: "HGETALL mqtt_acl:${username} extra"}, "only a key"},
		{"fixed key", Config{Cmd: "HGETALL mqtt_acl"}, "no placeholder"},
		{"password", Config{Cmd: "HGETALL mqtt_acl:${password}"}, "password"},
		{"on_error", Config{Cmd: "HGETALL a:${username}", OnError: "allow"}, "on_error"},
		{"max_rules", Config{Cmd: "HGETALL a:${username}", MaxRules: -1}, "max_rules"},
		{"no server", Config{Cmd: "HGETALL a:${username}"}, "address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestNewWith: sources on a shared client use it, and their Close leaves it open.
func TestNewWith(t *testing.T) {
	f := newFixture(t)
	rdb, err := redis.New(redis.Config{Addr: f.addr, CommandTimeout: 2e9})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	cfg := Config{Cmd: "HGETALL mqtt_acl:${username}"}
	if _, err := NewWith(cfg, nil, nil); err == nil {
		t.Fatal("NewWith without a client: no error")
	}
	if _, err := NewWith(Config{Cmd: "HGET mqtt_acl:${username} x"}, rdb, nil); err == nil {
		t.Fatal("NewWith with a bad cmd: no error")
	}
	a, err := NewWith(cfg, rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWith(cfg, rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ask(a, "alice", pub, "t/pub"); got != authz.Allow {
		t.Fatalf("first source: %v", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ask(b, "alice", pub, "t/pub"); got != authz.Allow {
		t.Fatalf("after the other source closed: %v", got)
	}
	if _, err := rdb.Do(context.Background(), "PING"); err != nil {
		t.Fatalf("the shared client after Close: %v", err)
	}
}
