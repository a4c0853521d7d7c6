package sqlsrc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/mysql"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

const emqxQuery = "SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username} ORDER BY id"

var (
	pub    = authz.Action{Kind: authz.ActPublish, QoS: 1}
	pub2   = authz.Action{Kind: authz.ActPublish, QoS: 2}
	pubRet = authz.Action{Kind: authz.ActPublish, QoS: 0, Retain: true}
	sub    = authz.Action{Kind: authz.ActSubscribe, QoS: 1}
)

// conn are the connector settings a test varies; the zero value is the test server's.
type conn struct {
	Server string // another server (database "db", user "u"): for servers that are down
	TLS    *tlsconf.ClientOptions
}

// server is one database server under test, with what the tests do differently on each.
type server struct {
	backend string
	// exec runs a statement of the test's own; ? marks its arguments.
	exec func(t *testing.T, sql string, args ...any)
	// count returns a table's row count.
	count func(t *testing.T, table string) int
	// open compiles query for the backend and binds it to a pool for c.
	open func(query string, c conn) (Querier, error)
	// maria is the MariaDB server, nil for PostgreSQL.
	maria *testsvc.MariaDB
}

type backendCase struct {
	name  string
	start func(t *testing.T, pki *testsvc.PKI) *server
}

var backends = []backendCase{{PostgreSQL, startPostgres}, {MySQL, startMySQL}}

// eachBackend runs f once per backend, each with a seeded server of its own.
func eachBackend(t *testing.T, f func(t *testing.T, s *server)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.start(t, nil)
			seed(t, s)
			f(t, s)
		})
	}
}

func startPostgres(t *testing.T, pki *testsvc.PKI) *server {
	t.Helper()
	if pki != nil {
		t.Fatal("the PostgreSQL test server here is plain")
	}
	dsn := testsvc.StartPostgres(t)
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return &server{
		backend: PostgreSQL,
		exec: func(t *testing.T, sql string, args ...any) {
			t.Helper()
			for i := 1; strings.Contains(sql, "?"); i++ {
				sql = strings.Replace(sql, "?", fmt.Sprintf("$%d", i), 1)
			}
			if _, err := c.Exec(context.Background(), sql, args...); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		},
		count: func(t *testing.T, table string) int {
			t.Helper()
			var n int
			if err := c.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				t.Fatalf("count %s: %v", table, err)
			}
			return n
		},
		open: func(query string, o conn) (Querier, error) {
			cfg := postgres.Config{DSN: dsn}
			if o.Server != "" {
				cfg = postgres.Config{Server: o.Server, Database: "db", Username: "u"}
			}
			cfg.TLS = o.TLS
			st, err := postgres.Open(context.Background(), cfg, query, QueryOptions())
			if err != nil {
				return nil, err
			}
			return st, nil
		},
	}
}

func startMySQL(t *testing.T, pki *testsvc.PKI) *server {
	t.Helper()
	m := testsvc.StartMariaDB(t, pki)
	pw := filepath.Join(t.TempDir(), "mysql.pass")
	if err := os.WriteFile(pw, []byte(m.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	db := m.DB(t)
	return &server{
		backend: MySQL,
		maria:   m,
		exec: func(t *testing.T, sql string, args ...any) {
			t.Helper()
			if _, err := db.Exec(sql, args...); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		},
		count: func(t *testing.T, table string) int {
			t.Helper()
			var n int
			if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
				t.Fatalf("count %s: %v", table, err)
			}
			return n
		},
		open: func(query string, o conn) (Querier, error) {
			cfg := mysql.Config{Server: m.Addr, Database: m.Database, Username: m.User, Password: "file:" + pw}
			if o.Server != "" {
				cfg = mysql.Config{Server: o.Server, Database: "db", Username: "u"}
			}
			cfg.TLS = o.TLS
			st, err := mysql.Open(context.Background(), cfg, query, QueryOptions())
			if err != nil {
				return nil, err
			}
			return st, nil
		},
	}
}

// seed creates mqtt_acl with the rules of alice, bob and carl.
func seed(t *testing.T, s *server) {
	t.Helper()
	s.exec(t, `CREATE TABLE mqtt_acl (
		id serial PRIMARY KEY,
		username varchar(255) NOT NULL,
		permission varchar(16) NOT NULL,
		action varchar(16) NOT NULL,
		topic varchar(255) NOT NULL,
		qos varchar(16),
		retain boolean)`)
	s.exec(t, `INSERT INTO mqtt_acl (username, permission, action, topic, qos, retain) VALUES
		('alice', 'deny',  'publish',   'devices/secret',                NULL,  NULL),
		('alice', 'allow', 'publish',   'devices/${clientid}/telemetry', '0,1', false),
		('alice', 'allow', 'subscribe', 'devices/${clientid}/commands',  NULL,  NULL),
		('alice', 'allow', 'all',       'devices/#',                     NULL,  NULL),
		('bob',   'deny',  'all',       '#',                             NULL,  NULL),
		('carl',  'allow', 'publish',   't',                             '0,1', false)`)
}

func newSource(t *testing.T, s *server, cfg Config, query string, c conn) *Source {
	t.Helper()
	q, err := s.open(query, c)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	cfg.Backend = s.backend
	src, err := New(cfg, q, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(src.Close)
	return src
}

func decide(s *Source, user string, a authz.Action, topic string) authz.Decision {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.ForClient(&clientinfo.Info{ClientID: "dev1", Username: user}).Authorize(ctx, a, topic)
}

func TestAuthorize(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *server) {
		src := newSource(t, s, Config{}, emqxQuery, conn{})
		if src.Name() != s.backend {
			t.Errorf("Name %q", src.Name())
		}
		tests := []struct {
			name  string
			user  string
			a     authz.Action
			topic string
			want  authz.Decision
		}{
			{"placeholder topic allowed", "alice", pub, "devices/dev1/telemetry", authz.Allow},
			{"qos outside the rule's list falls to the next rule", "alice", pub2, "devices/dev1/telemetry", authz.Allow},
			{"first matching rule decides", "alice", pub, "devices/secret", authz.Deny},
			{"subscribe to own commands", "alice", sub, "devices/dev1/commands", authz.Allow},
			{"wildcard allow", "alice", sub, "devices/other/x", authz.Allow},
			{"retain on all-rule", "alice", pubRet, "devices/x", authz.Allow},
			{"no rule matches", "alice", pub, "elsewhere", authz.NoMatch},
			{"deny all", "bob", sub, "devices/dev1/commands", authz.Deny},
			{"qos and retain narrow a rule: match", "carl", pub, "t", authz.Allow},
			{"qos and retain narrow a rule: qos 2", "carl", pub2, "t", authz.NoMatch},
			{"qos and retain narrow a rule: retained", "carl", pubRet, "t", authz.NoMatch},
			{"unknown user: no rows", "carol", pub, "devices/dev1/telemetry", authz.NoMatch},
			{"injection or true", "' OR '1'='1", pub, "devices/dev1/telemetry", authz.NoMatch},
			{"injection drop table", "x'; DROP TABLE mqtt_acl; --", pub, "devices/x", authz.NoMatch},
			{"injection backslash quote", `\' OR 1=1 -- `, pub, "devices/x", authz.NoMatch},
			{"injection backslash quote, hash comment", `alice\' OR 1=1 #`, pub, "devices/x", authz.NoMatch},
			{"injection double backslash", `\\' OR '1'='1`, pub, "devices/x", authz.NoMatch},
			{"injection union", "' UNION SELECT 'allow', 'all', '#', NULL, NULL -- ", pub, "devices/x", authz.NoMatch},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := decide(src, tt.user, tt.a, tt.topic); got != tt.want {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
		if n := s.count(t, "mqtt_acl"); n != 6 {
			t.Errorf("mqtt_acl after the injection attempts: %d rows, want 6", n)
		}
	})
}

// TestChangesApplyToNextClient: a client's rules are read once; a row deleted afterwards
// applies to the next ForClient, not to the session already holding its rules.
func TestChangesApplyToNextClient(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *server) {
		src := newSource(t, s, Config{}, emqxQuery, conn{})
		ctx := context.Background()
		info := &clientinfo.Info{ClientID: "dev1", Username: "alice"}
		old := src.ForClient(info)
		if got := old.Authorize(ctx, sub, "devices/other/x"); got != authz.Allow {
			t.Fatalf("before: %v, want allow", got)
		}
		s.exec(t, "DELETE FROM mqtt_acl WHERE username = 'alice' AND topic = 'devices/#'")
		s.exec(t, "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('bob', 'allow', 'all', 'x')")
		if got := old.Authorize(ctx, sub, "devices/other/x"); got != authz.Allow {
			t.Errorf("existing session: %v, want allow (rules read once per session)", got)
		}
		if got := src.ForClient(info).Authorize(ctx, sub, "devices/other/x"); got != authz.NoMatch {
			t.Errorf("next client: %v, want nomatch after the row was deleted", got)
		}
		if got := decide(src, "bob", pub, "x"); got != authz.Deny {
			t.Errorf("bob: %v, want deny (the earlier deny-all row still comes first)", got)
		}
	})
}

func TestBadRowsFailClosed(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *server) {
		s.exec(t, "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('eve', 'deny', 'publish', 'a/#'), ('eve', 'maybe', 'all', 'b')")
		s.exec(t, "INSERT INTO mqtt_acl (username, permission, action, topic, qos) VALUES ('zed', 'allow', 'all', 'a', '3')")
		s.exec(t, "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('many', 'allow', 'all', 'a'), ('many', 'allow', 'all', 'b')")
		for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
			src := newSource(t, s, Config{MaxRules: 1, OnError: onError}, emqxQuery, conn{})
			want := authz.Deny
			if onError == OnErrorIgnore {
				want = authz.NoMatch
			}
			for _, user := range []string{"eve", "zed", "many"} {
				if got := decide(src, user, pub, "c"); got != want {
					t.Errorf("on_error %s, user %s: %v, want %v", onError, user, got, want)
				}
			}
		}
		// Missing required columns.
		src := newSource(t, s, Config{}, "SELECT permission, topic FROM mqtt_acl WHERE username = ${username}", conn{})
		if got := decide(src, "alice", pub, "devices/x"); got != authz.Deny {
			t.Errorf("missing action column: %v, want deny", got)
		}
	})
}

func TestServerDown(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := &server{backend: b.name}
			switch b.name {
			case PostgreSQL:
				s.open = func(query string, c conn) (Querier, error) {
					return postgres.Open(context.Background(), postgres.Config{Server: c.Server, Database: "db", Username: "u"}, query, QueryOptions())
				}
			case MySQL:
				s.open = func(query string, c conn) (Querier, error) {
					return mysql.Open(context.Background(), mysql.Config{Server: c.Server, Database: "db", Username: "u"}, query, QueryOptions())
				}
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			for _, tt := range []struct {
				onError string
				want    authz.Decision
			}{{"", authz.Deny}, {OnErrorIgnore, authz.NoMatch}} {
				src := newSource(t, s, Config{OnError: tt.onError}, emqxQuery, conn{Server: addr})
				for range 2 { // the second at once: refused by the back-off where there is one
					if got := decide(src, "alice", pub, "devices/x"); got != tt.want {
						t.Errorf("on_error %q: %v, want %v", tt.onError, got, tt.want)
					}
				}
			}
		})
	}
}

// TestMySQLServerRestart: while the server is down every question is denied (the rules
// are tried again at the next question, never half-used); once it is back, the same
// session reads its rules.
func TestMySQLServerRestart(t *testing.T) {
	s := startMySQL(t, nil)
	seed(t, s)
	src := newSource(t, s, Config{}, emqxQuery, conn{})
	s.maria.Stop()
	c := src.ForClient(&clientinfo.Info{ClientID: "dev1", Username: "alice"})
	ctx := context.Background()
	for range 2 {
		if got := c.Authorize(ctx, sub, "devices/other/x"); got != authz.Deny {
			t.Fatalf("server down: %v, want deny", got)
		}
	}
	s.maria.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for c.Authorize(ctx, sub, "devices/other/x") != authz.Allow {
		if time.Now().After(deadline) {
			t.Fatal("not recovered after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.Authorize(ctx, pub, "devices/secret"); got != authz.Deny {
		t.Errorf("after recovery: %v, want deny", got)
	}
}

// TestMySQLTLS: rules are read over TLS with the server verified; with a wrong CA every
// question is denied.
func TestMySQLTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	s := startMySQL(t, pki)
	seed(t, s)
	good := newSource(t, s, Config{}, emqxQuery, conn{TLS: &tlsconf.ClientOptions{CACertFile: pki.CAFile}})
	if got := decide(good, "alice", sub, "devices/dev1/commands"); got != authz.Allow {
		t.Errorf("verified TLS: %v, want allow", got)
	}
	bad := newSource(t, s, Config{OnError: OnErrorIgnore}, emqxQuery, conn{TLS: &tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}})
	if got := decide(bad, "alice", sub, "devices/dev1/commands"); got != authz.NoMatch {
		t.Errorf("wrong CA with on_error ignore: %v, want nomatch", got)
	}
}

// fakeQuerier answers every query with err.
type fakeQuerier struct {
	err    error
	closed bool
}

func (f *fakeQuerier) Query(context.Context, placeholder.Values, int) (*sqlrows.Rows, error) {
	return nil, f.err
}
func (f *fakeQuerier) String() string { return emqxQuery }
func (f *fakeQuerier) Target() string { return "fake:1/db" }
func (f *fakeQuerier) Close()         { f.closed = true }

// TestBusyDenies: a saturated pool is a failed question like any other: Deny (no match
// with on_error ignore), and the next question tries again.
func TestBusyDenies(t *testing.T) {
	f := &fakeQuerier{err: fmt.Errorf("no connection: %w", health.ErrBusy)}
	src, err := New(Config{Backend: MySQL}, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := src.ForClient(&clientinfo.Info{Username: "alice"})
	if got := c.Authorize(context.Background(), pub, "t"); got != authz.Deny {
		t.Fatalf("busy: %v, want deny", got)
	}
	f.err = errors.New("still failing")
	if got := c.Authorize(context.Background(), pub, "t"); got != authz.Deny {
		t.Fatalf("second question: %v, want deny", got)
	}
	src.Close()
	if !f.closed {
		t.Error("Close did not close the querier")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		query   string
		wantErr string
	}{
		{"ok", Config{}, emqxQuery, ""},
		{"no query", Config{}, "", "query: required"},
		{"password refused", Config{}, "SELECT permission, action, topic FROM t WHERE p = ${password}", "password"},
		{"quoted placeholder", Config{}, "SELECT permission, action, topic FROM t WHERE u = '${username}'", "inside quotes"},
		{"on_error", Config{OnError: "allow"}, emqxQuery, "on_error"},
		{"max_rules", Config{MaxRules: -1}, emqxQuery, "max_rules"},
		{"max_rules too big", Config{MaxRules: MaxMaxRules + 1}, emqxQuery, "max_rules"},
		{"unknown type", Config{Backend: "oracle"}, emqxQuery, "type"},
	}
	compilers := map[string]func(string) (Statement, error){
		PostgreSQL: func(q string) (Statement, error) { return postgres.CompileQuery(q, QueryOptions()) },
		MySQL:      func(q string) (Statement, error) { return mysql.CompileQuery(q, QueryOptions()) },
	}
	for backend, compile := range compilers {
		for _, tt := range tests {
			t.Run(backend+"/"+tt.name, func(t *testing.T) {
				c := tt.cfg
				if c.Backend == "" {
					c.Backend = backend
				}
				var err error
				if tt.query != "" {
					var q Statement
					if q, err = compile(tt.query); err == nil {
						err = c.Validate(q)
					}
				} else {
					err = c.Validate(nil)
				}
				switch {
				case tt.wantErr == "" && err != nil:
					t.Fatalf("Validate: %v", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
				}
			})
		}
	}
}
