package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// TestBackendRedis: users and rules in a real Redis server, through the binary.
func TestBackendRedis(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	ctx := context.Background()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	const salt = "nacl"
	seed := []struct {
		key    string
		fields []any
	}{
		{"mqtt_user:alice", []any{"password_hash", sha256Hex(salt + "alice-pw"), "salt", salt, "is_superuser", "0"}},
		{"mqtt_acl:alice", []any{"things/alice/#", "all", "news/#", "subscribe"}},
	}
	for _, s := range seed {
		if err := rdb.HSet(ctx, s.key, s.fields...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: redis
    server: %q
    cmd: "HMGET mqtt_user:${username} password_hash salt is_superuser"
    password_hash_algorithm: {name: sha256, salt_position: prefix}
authorization:
  sources:
    - type: redis
      server: %q
      cmd: "HGETALL mqtt_acl:${username}"
`, addr, addr)
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "a-1", "alice", "alice-pw")
	if got != packet.Success {
		t.Fatalf("CONNACK 0x%02X", byte(got))
	}
	if code := pubCode(c, "things/alice/temp", false); code.IsError() {
		t.Fatalf("publish to an allowed topic: 0x%02X", byte(code))
	}
	if code := pubCode(c, "things/bob/temp", false); code != packet.NotAuthorized {
		t.Fatalf("publish to another's topic: 0x%02X, want 0x87", byte(code))
	}
	if code := subCode(c, "news/today", 0); code.IsError() {
		t.Fatalf("subscribe: 0x%02X", byte(code))
	}
	c.close()
	for _, tc := range []struct{ user, pw string }{{"alice", "wrong"}, {"alice\r\nFLUSHALL", "x"}, {"*", "x"}} {
		if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "a-bad", tc.user, tc.pw); got == packet.Success {
			t.Fatalf("user %q password %q let in", tc.user, tc.pw)
		} else {
			c.close()
		}
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 2 {
		t.Fatalf("keyspace after the injection attempts: %d keys, %v", n, err)
	}
	// Revocation: delete the user, the next connect is refused.
	if err := rdb.Del(ctx, "mqtt_user:alice").Err(); err != nil {
		t.Fatal(err)
	}
	if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "a-2", "alice", "alice-pw"); got == packet.Success {
		t.Fatal("a deleted user connected")
	} else {
		c.close()
	}
}

// TestBackendPostgreSQL: users and rules in a real PostgreSQL server, through the binary.
func TestBackendPostgreSQL(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const salt = "s4lt"
	for _, q := range []string{
		`CREATE TABLE mqtt_user (username text PRIMARY KEY, password_hash text, salt text, is_superuser boolean)`,
		`CREATE TABLE mqtt_acl (username text, permission text, action text, topic text, qos int, retain int)`,
		fmt.Sprintf(`INSERT INTO mqtt_user VALUES ('carol', '%s', '%s', false)`, sha256Hex(salt+"carol-pw"), salt),
		`INSERT INTO mqtt_acl VALUES ('carol', 'allow', 'all', 'things/carol/#', NULL, NULL), ('carol', 'deny', 'all', '#', NULL, NULL)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: postgresql
    server: "127.0.0.1:%d"
    database: %q
    username: %q
    query: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1"
    password_hash_algorithm: {name: sha256, salt_position: prefix}
authorization:
  sources:
    - type: postgresql
      server: "127.0.0.1:%d"
      database: %q
      username: %q
      query: "SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username}"
`, port, u.Path[1:], u.User.Username(), port, u.Path[1:], u.User.Username())
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "c-1", "carol", "carol-pw")
	if got != packet.Success {
		t.Fatalf("CONNACK 0x%02X", byte(got))
	}
	if code := pubCode(c, "things/carol/x", false); code.IsError() {
		t.Fatalf("allowed publish: 0x%02X", byte(code))
	}
	if code := pubCode(c, "things/dave/x", false); code != packet.NotAuthorized {
		t.Fatalf("publish to another's topic: 0x%02X, want 0x87", byte(code))
	}
	c.close()
	for _, user := range []string{"' OR '1'='1", "x'; DROP TABLE mqtt_user; --"} {
		if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "c-bad", user, "x"); got == packet.Success {
			t.Fatalf("user %q let in", user)
		} else {
			c.close()
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM mqtt_user`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("mqtt_user after the injection attempts: %d rows, %v", n, err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM mqtt_user WHERE username = 'carol'`); err != nil {
		t.Fatal(err)
	}
	if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "c-2", "carol", "carol-pw"); got == packet.Success {
		t.Fatal("a deleted user connected")
	} else {
		c.close()
	}
}
