package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/mysql"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// testConn is a connection on loopback: every connector accepts it without TLS, and
// none connects before its first question.
func testConn(t *testing.T) config.ServerConn {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.ServerConn{Server: "127.0.0.1:1", RedisType: "single", Database: "1", Username: "cn=u",
		Password: "file:" + pw, PoolSize: 4, ConnectTimeout: config.Duration(time.Second), BaseDN: "dc=example,dc=com"}
}

// TestBackendConnectorsShare: entries with the same connection keys get one connector,
// whatever their cmd, query or filter; a difference in any other key gets another.
func TestBackendConnectorsShare(t *testing.T) {
	ctx := context.Background()
	conns := newConnectors(nil)
	defer conns.Close()
	timeout := config.Duration(5 * time.Second)
	ssl := config.ClientSSL{}
	opts := placeholder.Options{}

	pgPool := func(sc config.ServerConn, ssl config.ClientSSL, timeout config.Duration, query string) *postgres.Pool {
		t.Helper()
		q, err := conns.sqlStatement(ctx, config.BackendPG, sc, ssl, timeout, query, opts)
		if err != nil {
			t.Fatal(err)
		}
		return q.(*postgres.Statement).Pool()
	}
	base := testConn(t)
	authn, authz := base, base
	authn.Query, authz.Query = "SELECT password_hash FROM u WHERE n = ${username}", "SELECT topic FROM a WHERE n = ${username}"
	p := pgPool(authn, ssl, timeout, authn.Query)
	if pgPool(authz, ssl, timeout, authz.Query) != p {
		t.Fatal("postgresql: two entries with the same connection keys got two pools")
	}
	otherDB, otherSize := base, base
	otherDB.Database, otherSize.PoolSize = "other", 8
	for name, got := range map[string]*postgres.Pool{
		"database":        pgPool(otherDB, ssl, timeout, authz.Query),
		"pool_size":       pgPool(otherSize, ssl, timeout, authz.Query),
		"request_timeout": pgPool(base, ssl, config.Duration(time.Second), authz.Query),
		"ssl":             pgPool(base, config.ClientSSL{Enable: true}, timeout, authz.Query),
	} {
		if got == p {
			t.Errorf("postgresql: a different %s shares the pool", name)
		}
	}
	if pgPool(otherDB, ssl, timeout, authn.Query) != pgPool(otherDB, ssl, timeout, authz.Query) {
		t.Error("postgresql: the second database's entries do not share their pool")
	}

	// The same keys for another kind of server: another connector, of its own type.
	q, err := conns.sqlStatement(ctx, config.BackendMySQL, base, ssl, timeout, authn.Query, opts)
	if err != nil {
		t.Fatal(err)
	}
	my := q.(*mysql.Statement).Pool()
	if q, err = conns.sqlStatement(ctx, config.BackendMySQL, base, ssl, timeout, authz.Query, opts); err != nil || q.(*mysql.Statement).Pool() != my {
		t.Fatalf("mysql: two entries with the same connection keys got two pools (%v)", err)
	}
	// Closing a statement leaves the shared pool to the other entries.
	q.Close()

	r1, err := conns.redisClient(base, ssl, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := conns.redisClient(base, ssl, timeout); err != nil || r2 != r1 {
		t.Fatalf("redis: two entries with the same connection keys got two clients (%v)", err)
	}
	if r3, err := conns.redisClient(otherSize, ssl, timeout); err != nil || r3 == r1 {
		t.Fatalf("redis: a different pool_size shares the client (%v)", err)
	}

	l1, err := conns.ldapPool(base, ssl, timeout)
	if err != nil {
		t.Fatal(err)
	}
	withFilter := base
	withFilter.Filter = "(uid=${username})"
	if l2, err := conns.ldapPool(withFilter, ssl, timeout); err != nil || l2 != l1 {
		t.Fatalf("ldap: two entries differing only in filter got two pools (%v)", err)
	}
	otherBase := base
	otherBase.BaseDN = "dc=other"
	if l3, err := conns.ldapPool(otherBase, ssl, timeout); err != nil || l3 == l1 {
		t.Fatalf("ldap: a different base_dn shares the pool (%v)", err)
	}

	// An unusable connection opens nothing and is not remembered.
	badDB := base
	badDB.Database = "not-a-number"
	n := len(conns.closers)
	if _, err := conns.redisClient(badDB, ssl, timeout); err == nil {
		t.Fatal("redis: a database that is not a number was accepted")
	}
	if len(conns.closers) != n {
		t.Fatal("a connector that failed to open is to be closed")
	}
}

// TestBackendConnectorKey: every key of a server connection but cmd, query and filter
// (which belong to one entry) is part of the connection key, so a key added to
// config.ServerConn later cannot silently merge two different connections.
func TestBackendConnectorKey(t *testing.T) {
	entryOnly := map[string]bool{"Cmd": true, "Query": true, "Filter": true}
	base := testConn(t)
	timeout := config.Duration(time.Second)
	want := connKeyOf(config.BackendPG, base, config.ClientSSL{}, timeout)
	typ := reflect.TypeFor[config.ServerConn]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		changed := base
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "-changed")
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"127.0.0.1:2", "127.0.0.1:3"}))
		default:
			t.Fatalf("ServerConn.%s: kind %s: teach this test to change it", f.Name, v.Kind())
		}
		got := connKeyOf(config.BackendPG, changed, config.ClientSSL{}, timeout)
		if same := got == want; same != entryOnly[f.Name] {
			t.Errorf("ServerConn.%s changed: same connection key %v, want %v", f.Name, same, entryOnly[f.Name])
		}
	}
	for name, k := range map[string]connKey{
		"kind":            connKeyOf(config.BackendMySQL, base, config.ClientSSL{}, timeout),
		"request_timeout": connKeyOf(config.BackendPG, base, config.ClientSSL{}, 2*timeout),
		"ssl.cacertfile":  connKeyOf(config.BackendPG, base, config.ClientSSL{CACertFile: "/ca.pem"}, timeout),
	} {
		if k == want {
			t.Errorf("a different %s gives the same connection key", name)
		}
	}
}

// TestBackendConnectorsClose: a connector is opened once per key and closed once, in the
// reverse order of opening.
func TestBackendConnectorsClose(t *testing.T) {
	conns := newConnectors(nil)
	var opened, closed []string
	open := func(k connKey) {
		t.Helper()
		name := k.server
		got, err := shared(conns, k, func() (*string, error) {
			opened = append(opened, name)
			return &name, nil
		}, func(s *string) { closed = append(closed, *s) })
		if err != nil || *got != name {
			t.Fatalf("%s: %v, %v", name, got, err)
		}
	}
	a, b := connKey{kind: "x", server: "a"}, connKey{kind: "x", server: "b"}
	open(a)
	open(b)
	open(a)
	if !reflect.DeepEqual(opened, []string{"a", "b"}) {
		t.Fatalf("opened %v, want [a b]", opened)
	}
	conns.Close()
	conns.Close()
	if !reflect.DeepEqual(closed, []string{"b", "a"}) {
		t.Fatalf("closed %v, want [b a]", closed)
	}
}
