package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// useBoth connects as user, which authenticates it, and publishes to an allowed and a
// denied topic, which asks the authorization source: both have used their connector.
func useBoth(t *testing.T, b *brokerProc, user, pw, allowed, denied string) {
	t.Helper()
	got, c := authConnect(t, b.addr("tcp:default"), packet.V5, user+"-1", user, pw)
	if got != packet.Success {
		t.Fatalf("CONNACK 0x%02X", byte(got))
	}
	defer c.close()
	if code := pubCode(c, allowed, false); code.IsError() {
		t.Fatalf("publish to %s: 0x%02X", allowed, byte(code))
	}
	if code := pubCode(c, denied, false); code != packet.NotAuthorized {
		t.Fatalf("publish to %s: 0x%02X, want 0x87", denied, byte(code))
	}
}

// TestBackendSharedPostgreSQL: an authentication entry and an authorization source with
// the same connection keys share one pool, so pool_size 1 means one connection to the
// server for both; when a key differs (here pool_size) each has its own pool. The
// connections are counted on the server, per role.
func TestBackendSharedPostgreSQL(t *testing.T) {
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
		// One role per broker, so that each one's connections can be told apart.
		`CREATE ROLE rampart_shared LOGIN`,
		`CREATE ROLE rampart_apart LOGIN`,
		`GRANT SELECT ON mqtt_user, mqtt_acl TO rampart_shared, rampart_apart`,
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
	cfgFor := func(role string, authzPoolSize int) string {
		return testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: postgresql
    server: "127.0.0.1:%[1]d"
    database: %[2]q
    username: %[3]q
    pool_size: 1
    query: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1"
    password_hash_algorithm: {name: sha256, salt_position: prefix}
authorization:
  sources:
    - type: postgresql
      server: "127.0.0.1:%[1]d"
      database: %[2]q
      username: %[3]q
      pool_size: %[4]d
      query: "SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username}"
`, port, u.Path[1:], role, authzPoolSize)
	}
	connections := func(role string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1`, role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	shared := startBroker(t, writeConfig(t, cfgFor("rampart_shared", 1)), "tcp:default")
	useBoth(t, shared, "carol", "carol-pw", "things/carol/x", "things/dave/x")
	if n := connections("rampart_shared"); n != 1 {
		t.Fatalf("%d connections from the authenticator and the source sharing a pool of 1, want 1", n)
	}

	// The same entries with pool_size 2 for the source: two pools, whose connections
	// the same count sees.
	apart := startBroker(t, writeConfig(t, cfgFor("rampart_apart", 2)), "tcp:default")
	useBoth(t, apart, "carol", "carol-pw", "things/carol/x", "things/dave/x")
	if n := connections("rampart_apart"); n != 2 {
		t.Fatalf("%d connections from an authenticator and a source with different pool_size, want 2 (one pool each)", n)
	}
	if n := connections("rampart_shared"); n != 1 {
		t.Fatalf("%d connections from the first broker, want still 1", n)
	}
}

// TestBackendSharedRedis: a Redis authenticator and source with the same connection keys
// share one client, so pool_size 1 means one connection to the server for both.
func TestBackendSharedRedis(t *testing.T) {
	addr, _ := testsvc.StartRedis(t)
	ctx := context.Background()
	const adminName = "test-admin"
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, ClientName: adminName})
	defer rdb.Close()
	const salt = "nacl"
	if err := rdb.HSet(ctx, "mqtt_user:alice", "password_hash", sha256Hex(salt+"alice-pw"), "salt", salt).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "mqtt_acl:alice", "things/alice/#", "all").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: redis
    server: %[1]q
    pool_size: 1
    cmd: "HMGET mqtt_user:${username} password_hash salt"
    password_hash_algorithm: {name: sha256, salt_position: prefix}
authorization:
  sources:
    - type: redis
      server: %[1]q
      pool_size: 1
      cmd: "HGETALL mqtt_acl:${username}"
`, addr)
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	useBoth(t, b, "alice", "alice-pw", "things/alice/x", "things/bob/x")
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var broker []string
	for line := range strings.Lines(list) {
		if !strings.Contains(line, " name="+adminName+" ") {
			broker = append(broker, line)
		}
	}
	if len(broker) != 1 {
		t.Fatalf("%d connections from the authenticator and the source sharing a pool of 1, want 1:\n%s", len(broker), list)
	}
}
