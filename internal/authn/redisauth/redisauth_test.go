package redisauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/redis"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

const emqxCmd = "HMGET mqtt_user:${username} password_hash salt is_superuser"

func newHasher(t *testing.T) *password.Hasher {
	t.Helper()
	h, err := password.NewHasher(password.Params{Algorithm: password.Bcrypt, Cost: 4, AllowWeak: true}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sha256Hex(salt, pw string) string {
	d := sha256.Sum256([]byte(salt + pw))
	return hex.EncodeToString(d[:])
}

// fixture is a redis-server holding EMQX-style users, and a client to inspect it.
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
	f.seed(t)
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

func (f *fixture) seed(t *testing.T) {
	t.Helper()
	f.do(t, "HSET", "mqtt_user:alice", "password_hash", sha256Hex("NaCl", "alice-pw"), "salt", "NaCl", "is_superuser", "0")
	f.do(t, "HSET", "mqtt_user:root", "password_hash", sha256Hex("pepper", "root-pw"), "salt", "pepper", "is_superuser", "true")
	f.do(t, "SET", "canary", "still here")
}

func (f *fixture) auth(t *testing.T, extra func(*Config)) *Authenticator {
	t.Helper()
	cfg := Config{
		Redis:                 redis.Config{Addr: f.addr, CommandTimeout: 2e9},
		Cmd:                   emqxCmd,
		PasswordHashAlgorithm: HashAlgorithm{Name: "sha256", SaltPosition: "prefix"},
	}
	if extra != nil {
		extra(&cfg)
	}
	a, err := New(cfg, newHasher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func login(a *Authenticator, user string, pw []byte) authn.Result {
	return a.Authenticate(context.Background(), &clientinfo.Info{ClientID: "c1", Username: user},
		&authn.Credentials{Username: user, Password: pw})
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	a := f.auth(t, nil)
	tests := []struct {
		name   string
		user   string
		pw     []byte
		want   authn.Outcome
		reason packet.ReasonCode
		super  bool
	}{
		{"right password", "alice", []byte("alice-pw"), authn.Allow, 0, false},
		{"superuser", "root", []byte("root-pw"), authn.Allow, 0, true},
		{"wrong password", "alice", []byte("nope"), authn.Deny, packet.BadUserNameOrPassword, false},
		{"empty password", "alice", []byte{}, authn.Deny, packet.BadUserNameOrPassword, false},
		{"no password", "alice", nil, authn.Ignore, 0, false},
		{"unknown user", "mallory", []byte("x"), authn.Ignore, 0, false},
		{"no username", "", []byte("x"), authn.Ignore, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := login(a, tt.user, tt.pw)
			if r.Outcome != tt.want || r.Superuser != tt.super {
				t.Fatalf("got %v superuser=%v (%s), want %v superuser=%v", r.Outcome, r.Superuser, r.Detail, tt.want, tt.super)
			}
			if tt.want == authn.Deny && r.DenyReason() != tt.reason {
				t.Fatalf("reason %v, want %v", r.DenyReason(), tt.reason)
			}
		})
	}
}

func TestHashFormats(t *testing.T) {
	f := newFixture(t)
	bc := newHasher(t)
	bhash, err := bc.Hash(context.Background(), []byte("bob-pw"))
	if err != nil {
		t.Fatal(err)
	}
	f.do(t, "HSET", "mqtt_user:bob", "password_hash", bhash)
	f.do(t, "HSET", "mqtt_user:carol", "password_hash", sha256Hex("", "carol-pw")+"")
	tests := []struct {
		name string
		cfg  func(*Config)
		user string
		pw   string
	}{
		{"native encoding via HGET", func(c *Config) {
			c.Cmd = "HGET mqtt_user:${username} password_hash"
			c.PasswordHashAlgorithm = HashAlgorithm{Name: "rampart"}
		}, "bob", "bob-pw"},
		{"emqx bcrypt", func(c *Config) {
			c.PasswordHashAlgorithm = HashAlgorithm{Name: "bcrypt"}
		}, "bob", "bob-pw"},
		{"sha256 without salt", func(c *Config) {
			c.Cmd = "HMGET mqtt_user:${username} password_hash"
			c.PasswordHashAlgorithm = HashAlgorithm{Name: "sha256", SaltPosition: "disable"}
		}, "carol", "carol-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.auth(t, tt.cfg)
			if r := login(a, tt.user, []byte(tt.pw)); r.Outcome != authn.Allow {
				t.Fatalf("right password: %v (%s)", r.Outcome, r.Detail)
			}
			if r := login(a, tt.user, []byte(tt.pw+"x")); r.Outcome != authn.Deny {
				t.Fatalf("wrong password: %v (%s)", r.Outcome, r.Detail)
			}
		})
	}
}

// TestInjection logs in with user names that would be commands or patterns if they were
// pasted into the command text; each must stay one key argument, and the keyspace must be
// intact afterwards.
func TestInjection(t *testing.T) {
	f := newFixture(t)
	a := f.auth(t, nil)
	names := []string{
		"x\r\nFLUSHALL",
		"x\r\nFLUSHALL\r\n",
		"alice\r\nDEL mqtt_user:root",
		"* ",
		"*",
		"alice password_hash",
		"alice\" \"x",
		"*3\r\n$8\r\nFLUSHALL\r\n",
		"${password}",
		"alice\x00",
	}
	for _, n := range names {
		r := login(a, n, []byte("alice-pw"))
		if r.Outcome != authn.Ignore {
			t.Errorf("user %q: %v (%s), want ignore (no such user)", n, r.Outcome, r.Detail)
		}
	}
	if got := f.do(t, "DBSIZE"); got != int64(3) {
		t.Fatalf("DBSIZE = %v after injection attempts, want 3", got)
	}
	if got := f.do(t, "GET", "canary"); got != "still here" {
		t.Fatalf("canary = %v", got)
	}
	if r := login(a, "root", []byte("root-pw")); r.Outcome != authn.Allow {
		t.Fatalf("root after injection attempts: %v (%s)", r.Outcome, r.Detail)
	}
}

func TestBackendDownAndBack(t *testing.T) {
	f := newFixture(t)
	deny := f.auth(t, nil)
	ignore := f.auth(t, func(c *Config) { c.OnError = OnErrorIgnore })
	if r := login(deny, "alice", []byte("alice-pw")); r.Outcome != authn.Allow {
		t.Fatalf("before stop: %v (%s)", r.Outcome, r.Detail)
	}
	f.stop()
	r := login(deny, "alice", []byte("alice-pw"))
	if r.Outcome != authn.Deny || r.DenyReason() != packet.ServerUnavailable {
		t.Fatalf("server down: %v %v (%s), want deny server unavailable", r.Outcome, r.DenyReason(), r.Detail)
	}
	if r := login(ignore, "alice", []byte("alice-pw")); r.Outcome != authn.Ignore {
		t.Fatalf("server down, on_error ignore: %v (%s)", r.Outcome, r.Detail)
	}
	testsvc.RestartRedis(t, f.addr)
	f.seed(t)
	// The authenticator's connector may still be in its back-off: it recovers shortly.
	recovers(t, deny, "after restart")
}

// recovers polls (for at most 20 seconds) until alice logs in.
func recovers(t *testing.T, a *Authenticator, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := login(a, "alice", []byte("alice-pw"))
		if r.Outcome == authn.Allow {
			return
		}
		if r.Outcome != authn.Deny || r.DenyReason() != packet.ServerUnavailable || time.Now().After(deadline) {
			t.Fatalf("%s: %v %v (%s), want allow", what, r.Outcome, r.DenyReason(), r.Detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUserDeleted(t *testing.T) {
	f := newFixture(t)
	a := f.auth(t, nil)
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Allow {
		t.Fatalf("before delete: %v (%s)", r.Outcome, r.Detail)
	}
	f.do(t, "DEL", "mqtt_user:alice")
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Ignore {
		t.Fatalf("after delete: %v (%s), want ignore", r.Outcome, r.Detail)
	}
	// A record without a hash (salt only) is refused, not ignored.
	f.do(t, "HSET", "mqtt_user:alice", "salt", "NaCl")
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Deny {
		t.Fatalf("record without hash: %v (%s), want deny", r.Outcome, r.Detail)
	}
	// A key of the wrong type is a backend error.
	f.do(t, "DEL", "mqtt_user:alice")
	f.do(t, "SET", "mqtt_user:alice", "x")
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Deny || r.DenyReason() != packet.ServerUnavailable {
		t.Fatalf("wrong key type: %v %v (%s)", r.Outcome, r.DenyReason(), r.Detail)
	}
}

func TestConfigErrors(t *testing.T) {
	h := newHasher(t)
	base := func() Config {
		return Config{Redis: redis.Config{Addr: "127.0.0.1:6379"}, Cmd: emqxCmd,
			PasswordHashAlgorithm: HashAlgorithm{Name: "sha256"}}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"other command", func(c *Config) { c.Cmd = "EVAL mqtt_user:${username} 0" }, "not allowed"},
		{"flushall", func(c *Config) { c.Cmd = "FLUSHALL" }, "not allowed"},
		{"fixed key", func(c *Config) { c.Cmd = "HMGET mqtt_user password_hash" }, "no placeholder"},
		{"placeholder in field", func(c *Config) { c.Cmd = "HMGET u:${username} ${clientid}" }, "only the key"},
		{"password in key", func(c *Config) { c.Cmd = "HMGET u:${password} password_hash" }, "password"},
		{"unknown field", func(c *Config) { c.Cmd = "HMGET u:${username} password_hash acl" }, "unknown field"},
		{"no hash field", func(c *Config) { c.Cmd = "HMGET u:${username} salt" }, "no password_hash"},
		{"hget two fields", func(c *Config) { c.Cmd = "HGET u:${username} password_hash salt" }, "exactly one"},
		{"salt needed", func(c *Config) { c.Cmd = "HGET u:${username} password_hash" }, "salt field"},
		{"plain", func(c *Config) { c.PasswordHashAlgorithm.Name = "plain" }, "plain-text"},
		{"md5", func(c *Config) { c.PasswordHashAlgorithm.Name = "md5" }, "unknown algorithm"},
		{"pbkdf2 iterations", func(c *Config) { c.PasswordHashAlgorithm.Name = "pbkdf2" }, "iterations"},
		{"on_error", func(c *Config) { c.OnError = "allow" }, "on_error"},
		{"inline redis password", func(c *Config) { c.Redis.Password = "secret" }, "inline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(&c)
			_, err := New(c, h, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestSlowBackend pauses the server: the command times out and the client is refused with
// ServerUnavailable rather than waiting for the server.
func TestSlowBackend(t *testing.T) {
	f := newFixture(t)
	a := f.auth(t, func(c *Config) { c.Redis.CommandTimeout = 200e6 })
	f.do(t, "CLIENT", "PAUSE", "3000", "ALL")
	r := login(a, "alice", []byte("alice-pw"))
	if r.Outcome != authn.Deny || r.DenyReason() != packet.ServerUnavailable {
		t.Fatalf("paused server: %v %v (%s), want deny server unavailable", r.Outcome, r.DenyReason(), r.Detail)
	}
	f.do(t, "CLIENT", "UNPAUSE")
	recovers(t, a, "after unpause")
}

// TestBusy takes the authenticator's only pooled connection with a blocking command: a
// login meanwhile is refused with ServerBusy, not ServerUnavailable.
func TestBusy(t *testing.T) {
	f := newFixture(t)
	a := f.auth(t, func(c *Config) {
		c.Redis.PoolSize = 1
		c.Redis.CommandTimeout = 15 * time.Second
	})
	const wake = "rampart:test:wake"
	blocked := make(chan error, 1)
	go func() {
		_, err := a.rdb.Do(context.Background(), "BLPOP", wake, "10")
		blocked <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(fmt.Sprint(f.do(t, "CLIENT", "LIST")), "cmd=blpop") {
		if time.Now().After(deadline) {
			t.Fatal("BLPOP did not block")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := login(a, "alice", []byte("alice-pw"))
	if r.Outcome != authn.Deny || r.DenyReason() != packet.ServerBusy {
		t.Fatalf("pool taken: %v %v (%s), want deny server busy", r.Outcome, r.DenyReason(), r.Detail)
	}
	f.do(t, "LPUSH", wake, "x")
	if err := <-blocked; err != nil {
		t.Fatalf("BLPOP: %v", err)
	}
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Allow {
		t.Fatalf("pool free again: %v (%s)", r.Outcome, r.Detail)
	}
}

// TestSentinel reads the user records from the master a Redis Sentinel names.
func TestSentinel(t *testing.T) {
	sentinel, master := testsvc.StartRedisSentinel(t)
	ctx := context.Background()
	writer, err := redis.New(redis.Config{Mode: redis.ModeSentinel, Addrs: []string{sentinel}, MasterName: master})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.Do(ctx, "HSET", "mqtt_user:alice", "password_hash", sha256Hex("NaCl", "alice-pw"), "salt", "NaCl"); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{
		Redis:                 redis.Config{Mode: redis.ModeSentinel, Addrs: []string{sentinel}, MasterName: master},
		Cmd:                   emqxCmd,
		PasswordHashAlgorithm: HashAlgorithm{Name: "sha256"},
	}, newHasher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Allow {
		t.Fatalf("right password: %v (%s)", r.Outcome, r.Detail)
	}
	if r := login(a, "alice", []byte("nope")); r.Outcome != authn.Deny || r.DenyReason() != packet.BadUserNameOrPassword {
		t.Fatalf("wrong password: %v (%s)", r.Outcome, r.Detail)
	}
}

// TestCluster reads user records spread over the nodes of a Redis Cluster.
func TestCluster(t *testing.T) {
	seeds := testsvc.StartRedisCluster(t)
	ctx := context.Background()
	rc := redis.Config{Mode: redis.ModeCluster, Addrs: seeds}
	writer, err := redis.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	for _, u := range users {
		if _, err := writer.Do(ctx, "HSET", "mqtt_user:"+u, "password_hash", sha256Hex("salt-"+u, u+"-pw"), "salt", "salt-"+u); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(Config{Redis: rc, Cmd: emqxCmd, PasswordHashAlgorithm: HashAlgorithm{Name: "sha256"}}, newHasher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, u := range users {
		if r := login(a, u, []byte(u+"-pw")); r.Outcome != authn.Allow {
			t.Fatalf("%s: %v (%s)", u, r.Outcome, r.Detail)
		}
	}
	if r := login(a, "mallory", []byte("x")); r.Outcome != authn.Ignore {
		t.Fatalf("unknown user: %v (%s)", r.Outcome, r.Detail)
	}
}

// TestNewWith: authenticators on a shared client use it, and their Close leaves it open.
func TestNewWith(t *testing.T) {
	f := newFixture(t)
	rdb, err := redis.New(redis.Config{Addr: f.addr, CommandTimeout: 2e9})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	cfg := Config{Cmd: emqxCmd, PasswordHashAlgorithm: HashAlgorithm{Name: "sha256", SaltPosition: "prefix"}}
	if _, err := NewWith(cfg, nil, newHasher(t), nil); err == nil {
		t.Fatal("NewWith without a client: no error")
	}
	bad := cfg
	bad.Cmd = "GET x"
	if _, err := NewWith(bad, rdb, newHasher(t), nil); err == nil {
		t.Fatal("NewWith with a bad cmd: no error")
	}
	a, err := NewWith(cfg, rdb, newHasher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWith(cfg, rdb, newHasher(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := login(a, "alice", []byte("alice-pw")); r.Outcome != authn.Allow {
		t.Fatalf("first authenticator: %v (%s)", r.Outcome, r.Detail)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if r := login(b, "alice", []byte("alice-pw")); r.Outcome != authn.Allow {
		t.Fatalf("after the other authenticator closed: %v (%s)", r.Outcome, r.Detail)
	}
	if _, err := rdb.Do(context.Background(), "PING"); err != nil {
		t.Fatalf("the shared client after Close: %v", err)
	}
}
