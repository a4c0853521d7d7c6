package redis

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestInsecure(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:6379": false, "localhost:6379": false, "[::1]:6379": false, "10.0.0.1:6379": true} {
		c, err := New(Config{Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		if c.Insecure() != want {
			t.Errorf("%s: Insecure() = %v, want %v", addr, c.Insecure(), want)
		}
		_ = c.Close()
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
