package redis

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func TestNewConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{}, "address is required"},
		{"no port", Config{Addr: "127.0.0.1"}, "server"},
		{"negative db", Config{Addr: "127.0.0.1:6379", DB: -1}, "negative"},
		{"inline password", Config{Addr: "127.0.0.1:6379", Password: "hunter2"}, "inline"},
		{"empty file", Config{Addr: "127.0.0.1:6379", Password: "file:" + empty}, "empty"},
		{"unset env", Config{Addr: "127.0.0.1:6379", Password: "env:RAMPART_TEST_UNSET_VAR"}, "not set"},
		{"bad port", Config{Addr: "127.0.0.1:0"}, "server"},
		{"unknown mode", Config{Mode: "ring", Addr: "127.0.0.1:6379"}, "redis_type"},
		{"servers with single", Config{Addr: "127.0.0.1:6379", Addrs: []string{"127.0.0.1:6380"}}, "servers"},
		{"master name with single", Config{Addr: "127.0.0.1:6379", MasterName: "m"}, "sentinel"},
		{"sentinel without servers", Config{Mode: ModeSentinel, MasterName: "m"}, "servers"},
		{"sentinel with server", Config{Mode: ModeSentinel, Addr: "127.0.0.1:26379", MasterName: "m"}, "server: not used"},
		{"sentinel without master name", Config{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:26379"}}, "sentinel: "},
		{"sentinel bad address", Config{Mode: ModeSentinel, Addrs: []string{"127.0.0.1"}, MasterName: "m"}, "servers"},
		{"inline sentinel password", Config{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:26379"}, MasterName: "m", SentinelPassword: "hunter2"}, "sentinel_password"},
		{"cluster database", Config{Mode: ModeCluster, Addrs: []string{"127.0.0.1:7000"}, DB: 2}, "database"},
		{"cluster master name", Config{Mode: ModeCluster, Addrs: []string{"127.0.0.1:7000"}, MasterName: "m"}, "sentinel"},
		{"cluster sentinel password", Config{Mode: ModeCluster, Addrs: []string{"127.0.0.1:7000"}, SentinelPassword: "env:X"}, "sentinel_password"},
		{"negative pool", Config{Addr: "127.0.0.1:6379", PoolSize: -1}, "pool_size"},
		{"negative timeout", Config{Addr: "127.0.0.1:6379", CommandTimeout: -1}, "command_timeout"},
		{"plain text to a remote server", Config{Addr: "10.0.0.1:6379"}, "allow_plaintext"},
		{"plain text to a remote sentinel", Config{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:26379", "redis.example:26379"}, MasterName: "m"}, "allow_plaintext"},
		{"plain text to a remote cluster node", Config{Mode: ModeCluster, Addrs: []string{"[2001:db8::1]:7000"}}, "allow_plaintext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if err == nil {
				_ = c.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestInsecure(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"ipv4 loopback", Config{Addr: "127.0.0.1:6379"}, false},
		{"localhost", Config{Addr: "localhost:6379"}, false},
		{"ipv6 loopback", Config{Addr: "[::1]:6379"}, false},
		{"remote, plain text allowed", Config{Addr: "10.0.0.1:6379", AllowPlainText: true}, true},
		{"remote with TLS", Config{Addr: "10.0.0.1:6379", TLS: &tlsconf.ClientOptions{}}, false},
		{"sentinels on loopback", Config{Mode: ModeSentinel, Addrs: []string{"127.0.0.1:26379", "localhost:26380"}, MasterName: "m"}, false},
		{"remote cluster node, plain text allowed", Config{Mode: ModeCluster, Addrs: []string{"127.0.0.1:7000", "10.0.0.2:7000"}, AllowPlainText: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Insecure() != tt.want {
				t.Errorf("Insecure() = %v, want %v", c.Insecure(), tt.want)
			}
		})
	}
}

func TestDo(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	c, err := New(Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	// A value with CR LF and spaces stays one argument.
	odd := "a b\r\nFLUSHALL\r\n"
	if _, err := c.Do(ctx, "SET", odd, odd); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(ctx, "GET", odd)
	if err != nil || v != odd {
		t.Fatalf("GET = %q, %v; want %q", v, err, odd)
	}
	if v, err := c.Do(ctx, "GET", "missing"); v != nil || err != nil {
		t.Fatalf("GET missing = %v, %v; want nil, nil", v, err)
	}
	if _, err := c.Do(ctx, "HGET", odd, "f"); err == nil {
		t.Fatal("HGET on a string key: want a WRONGTYPE error")
	}
	if _, err := c.Do(ctx); err == nil {
		t.Fatal("empty command: want an error")
	}
}

func TestPasswordFromFile(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	ctx := context.Background()
	admin, err := New(Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Do(ctx, "ACL", "SETUSER", "svc", "on", ">s3cret pw", "~*", "+@all"); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pf, []byte("s3cret pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Addr: addr, Username: "svc", Password: "file:" + pf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping as svc: %v", err)
	}
	t.Setenv("RAMPART_TEST_REDIS_PW", "wrong")
	bad, err := New(Config{Addr: addr, Username: "svc", Password: "env:RAMPART_TEST_REDIS_PW"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(ctx); err == nil {
		t.Fatal("ping with a wrong password: want an error")
	}
}
