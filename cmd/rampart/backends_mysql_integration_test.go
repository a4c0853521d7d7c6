package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// TestBackendMySQL: users and rules in a real MariaDB server over verified TLS, through
// the binary.
func TestBackendMySQL(t *testing.T) {
	pki := testsvc.NewPKI(t)
	m := testsvc.StartMariaDB(t, pki)
	db := m.DB(t)
	const salt = "s4lt"
	for _, q := range []string{
		`CREATE TABLE mqtt_user (username varchar(255) COLLATE utf8mb4_bin PRIMARY KEY, password_hash text, salt text, is_superuser boolean)`,
		`CREATE TABLE mqtt_acl (username varchar(255) COLLATE utf8mb4_bin, permission text, action text, topic text, qos int, retain int)`,
		fmt.Sprintf(`INSERT INTO mqtt_user VALUES ('carol', '%s', '%s', false)`, sha256Hex(salt+"carol-pw"), salt),
		`INSERT INTO mqtt_acl VALUES ('carol', 'allow', 'all', 'things/carol/#', NULL, NULL), ('carol', 'deny', 'all', '#', NULL, NULL)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	pw := filepath.Join(t.TempDir(), "mysql.pass")
	if err := os.WriteFile(pw, []byte(m.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf(`server: %q
    database: %q
    username: %q
    password: "file:%s"
    ssl: {enable: true, cacertfile: %q}`, m.Addr, m.Database, m.User, pw, pki.CAFile)
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: mysql
    %s
    query: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1"
    password_hash_algorithm: {name: sha256, salt_position: prefix}
authorization:
  sources:
    - type: mysql
      %s
      query: "SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username}"
`, server, strings.ReplaceAll(server, "\n", "\n  "))
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
	for _, user := range []string{"' OR '1'='1", "x'; DROP TABLE mqtt_user; --", `\' OR 1=1 -- `, "CAROL"} {
		if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "c-bad", user, "carol-pw"); got == packet.Success {
			t.Fatalf("user %q let in", user)
		} else {
			c.close()
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM mqtt_user`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("mqtt_user after the injection attempts: %d rows, %v", n, err)
	}
	if _, err := db.Exec(`DELETE FROM mqtt_user WHERE username = 'carol'`); err != nil {
		t.Fatal(err)
	}
	if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "c-2", "carol", "carol-pw"); got == packet.Success {
		t.Fatal("a deleted user connected")
	} else {
		c.close()
	}
}
