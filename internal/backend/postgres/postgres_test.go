package postgres

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func TestCompileQuery(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		opts    placeholder.Options
		sql     string
		vars    []string
		wantErr string
	}{
		{name: "emqx authn", src: "SELECT password_hash FROM mqtt_user WHERE username = ${username} LIMIT 1",
			sql: "SELECT password_hash FROM mqtt_user WHERE username = $1 LIMIT 1", vars: []string{"username"}},
		{name: "repeat shares a parameter", src: "SELECT 1 WHERE a = ${clientid} OR b = ${username} OR c = ${clientid}",
			sql: "SELECT 1 WHERE a = $1 OR b = $2 OR c = $1", vars: []string{"clientid", "username"}},
		{name: "attrs and cert", src: "SELECT 1 WHERE a = ${client_attrs.site} AND b = ${cert_common_name}",
			sql: "SELECT 1 WHERE a = $1 AND b = $2", vars: []string{"client_attrs.site", "cert_common_name"}},
		{name: "literals kept", src: `SELECT 'it''s', "we""ird", E'a\'b' FROM t WHERE u = ${username}`,
			sql: `SELECT 'it''s', "we""ird", E'a\'b' FROM t WHERE u = $1`, vars: []string{"username"}},
		{name: "comments kept", src: "SELECT 1 -- ${clientid} here\n/* ${username} /* nested */ */ WHERE u = ${username}",
			sql: "SELECT 1 -- ${clientid} here\n/* ${username} /* nested */ */ WHERE u = $1", vars: []string{"username"}},
		{name: "dollar inside identifier", src: "SELECT a$b FROM t WHERE u = ${username}",
			sql: "SELECT a$b FROM t WHERE u = $1", vars: []string{"username"}},
		{name: "no placeholder", src: "SELECT 1", sql: "SELECT 1"},
		{name: "empty", src: "  ", wantErr: "empty"},
		{name: "quoted placeholder", src: "SELECT 1 WHERE u = '${username}'", wantErr: "inside quotes"},
		{name: "quoted identifier placeholder", src: `SELECT "${username}"`, wantErr: "inside quotes"},
		{name: "E string placeholder", src: `SELECT E'\'${username}'`, wantErr: "inside quotes"},
		{name: "positional", src: "SELECT 1 WHERE u = $1", wantErr: "positional"},
		{name: "dollar quote", src: "SELECT $$x$$", wantErr: "dollar-quoted"},
		{name: "unknown variable", src: "SELECT ${nope}", wantErr: "unknown variable"},
		{name: "password refused", src: "SELECT ${password}", opts: placeholder.Options{NoPassword: true}, wantErr: "password"},
		{name: "unclosed placeholder", src: "SELECT ${username", wantErr: "no closing"},
		{name: "unterminated string", src: "SELECT 'x", wantErr: "unterminated quoted string"},
		{name: "unterminated comment", src: "SELECT /* x", wantErr: "unterminated comment"},
		{name: "glued before", src: "SELECT 1 WHERE u = a${username}", wantErr: "glued to the word before"},
		{name: "glued after", src: "SELECT 1 WHERE u = ${username}x", wantErr: "glued to the word after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := CompileQuery(tt.src, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.SQL() != tt.sql {
				t.Errorf("SQL\n got %q\nwant %q", q.SQL(), tt.sql)
			}
			if !slices.Equal(q.Vars(), tt.vars) {
				t.Errorf("vars %q, want %q", q.Vars(), tt.vars)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"server form", Config{Server: "127.0.0.1", Database: "d", Username: "u", Password: "file:" + pwFile}, ""},
		{"dsn url", Config{DSN: "postgres://u@localhost:5433/d?sslmode=disable"}, ""},
		{"dsn keywords", Config{DSN: "host=127.0.0.1 user=u dbname=d"}, ""},
		{"tls to remote host", Config{Server: "db.example:5432", Database: "d", Username: "u", TLS: &tlsconf.ClientOptions{}}, ""},
		{"plain to remote host with opt-in", Config{Server: "db.example", Database: "d", Username: "u", AllowPlainText: true}, ""},
		{"plain to remote host", Config{Server: "db.example", Database: "d", Username: "u"}, "clear text"},
		{"inline password", Config{Server: "127.0.0.1", Database: "d", Username: "u", Password: "hunter2"}, "refused"},
		{"env password unset", Config{Server: "127.0.0.1", Database: "d", Username: "u", Password: "env:RAMPART_TEST_SURELY_UNSET"}, "not set"},
		{"password in dsn url", Config{DSN: "postgres://u:hunter2@127.0.0.1/d"}, "password in the DSN"},
		{"password in dsn keywords", Config{DSN: "host=127.0.0.1 user=u password=hunter2"}, "password in the DSN"},
		{"sslmode in dsn", Config{DSN: "postgres://u@127.0.0.1/d?sslmode=require"}, "ssl key"},
		{"sslmode keyword", Config{DSN: "host=127.0.0.1 sslmode=verify-full"}, "ssl key"},
		{"both forms", Config{DSN: "host=127.0.0.1", Server: "127.0.0.1"}, "not both"},
		{"no server", Config{Database: "d", Username: "u"}, "server: required"},
		{"no database", Config{Server: "127.0.0.1", Username: "u"}, "database: required"},
		{"bad port", Config{Server: "127.0.0.1:0", Database: "d", Username: "u"}, "port"},
		{"pool size", Config{Server: "127.0.0.1", Database: "d", Username: "u", PoolSize: -1}, "pool_size"},
		{"query timeout", Config{Server: "127.0.0.1", Database: "d", Username: "u", QueryTimeout: 2 * time.Hour}, "query_timeout"},
		{"verify none without opt-in", Config{Server: "db.example", Database: "d", Username: "u", TLS: &tlsconf.ClientOptions{Verify: "verify_none"}}, "allow_verify_none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(context.Background(), tt.cfg)
			if err == nil {
				p.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	p, err := New(ctx, Config{DSN: dsn, PoolSize: 1, AcquireTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	q, err := CompileQuery("SELECT ${username}::text AS u, ${clientid}::text AS c, g AS n, true AS b FROM generate_series(1, 3) g", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vals := placeholder.Values{Info: &clientinfo.Info{Username: "x'; DROP TABLE t; --", ClientID: "${username}"}}
	rows, err := p.Query(ctx, q, vals, 2)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if !slices.Equal(rows.Columns, []string{"u", "c", "n", "b"}) || len(rows.Values) != 2 || !rows.More {
		t.Fatalf("rows: %+v", rows)
	}
	// Rows past the limit are read and dropped, not paid for with the connection: the
	// same over-limit question again reuses it.
	if _, err := p.Query(ctx, q, vals, 2); err != nil {
		t.Fatalf("second Query: %v", err)
	}
	if n := p.pool.Stat().NewConnsCount(); n != 1 {
		t.Errorf("%d connections made for two over-limit queries on a pool of 1, want 1", n)
	}
	row := rows.Values[0]
	for i, want := range []string{"x'; DROP TABLE t; --", "${username}", "1", "true"} {
		if got, ok := sqlrows.Text(row[i]); !ok || got != want {
			t.Errorf("column %s = %q (%T), want %q", rows.Columns[i], got, row[i], want)
		}
	}
	if rows.Column("N") != 2 || rows.Column("missing") != -1 {
		t.Errorf("Column lookup is wrong")
	}
	// The pool is still usable after a read that stopped early.
	if rows, err = p.Query(ctx, q, vals, 10); err != nil || len(rows.Values) != 3 || rows.More {
		t.Fatalf("second query: %+v, %v", rows, err)
	}

	// With the only connection taken, a query gives up after the acquire timeout instead
	// of queueing.
	held, err := p.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Query(ctx, q, vals, 1)
	held.Release()
	if err == nil || !strings.Contains(err.Error(), "no connection within") {
		t.Fatalf("query with the pool exhausted: %v, want a refusal", err)
	}
	if _, err := p.Query(ctx, q, vals, 1); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestBind: statements bound to one pool share its connections; closing one leaves the
// pool to the others, and only the pool's own Close ends them. A statement from Open
// owns its pool.
func TestBind(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	p, err := New(ctx, Config{DSN: dsn, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	compile := func(src string) *Query {
		t.Helper()
		q, err := CompileQuery(src, placeholder.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	a, b := p.Bind(compile("SELECT 1 AS n")), p.Bind(compile("SELECT 2 AS n"))
	if a.Pool() != p || b.Pool() != p {
		t.Fatal("a bound statement does not run on the pool it was bound to")
	}
	for _, s := range []*Statement{a, b} {
		if _, err := s.Query(ctx, placeholder.Values{}, 1); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if n := p.pool.Stat().TotalConns(); n != 1 {
		t.Fatalf("%d connections for two statements on a pool of 1", n)
	}
	a.Close()
	if _, err := b.Query(ctx, placeholder.Values{}, 1); err != nil {
		t.Fatalf("after closing the other statement: %v", err)
	}
	p.Close()
	if _, err := b.Query(ctx, placeholder.Values{}, 1); err == nil {
		t.Fatal("a query on a closed pool succeeded")
	}

	owned, err := Open(ctx, Config{DSN: dsn, PoolSize: 1}, "SELECT 1 AS n", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owned.Query(ctx, placeholder.Values{}, 1); err != nil {
		t.Fatal(err)
	}
	owned.Close()
	if _, err := owned.Pool().Query(ctx, compile("SELECT 1"), placeholder.Values{}, 1); err == nil {
		t.Fatal("Close of a statement from Open left its pool open")
	}
}
