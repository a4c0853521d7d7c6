package pgsrc

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

const emqxQuery = "SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username} ORDER BY id"

var (
	pub    = authz.Action{Kind: authz.ActPublish, QoS: 1}
	pub2   = authz.Action{Kind: authz.ActPublish, QoS: 2}
	pubRet = authz.Action{Kind: authz.ActPublish, QoS: 0, Retain: true}
	sub    = authz.Action{Kind: authz.ActSubscribe, QoS: 1}
)

func seed(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn := testsvc.StartPostgres(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec(t, conn, `CREATE TABLE mqtt_acl (
		id serial PRIMARY KEY,
		username text NOT NULL,
		permission text NOT NULL,
		action text NOT NULL,
		topic text NOT NULL,
		qos text,
		retain boolean)`)
	exec(t, conn, `INSERT INTO mqtt_acl (username, permission, action, topic, qos, retain) VALUES
		('alice', 'deny',  'publish',   'devices/secret',                NULL,  NULL),
		('alice', 'allow', 'publish',   'devices/${clientid}/telemetry', '0,1', false),
		('alice', 'allow', 'subscribe', 'devices/${clientid}/commands',  NULL,  NULL),
		('alice', 'allow', 'all',       'devices/#',                     NULL,  NULL),
		('bob',   'deny',  'all',       '#',                             NULL,  NULL),
		('carl',  'allow', 'publish',   't',                             '0,1', false)`)
	return dsn, conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func decide(s *Source, user string, a authz.Action, topic string) authz.Decision {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.ForClient(&clientinfo.Info{ClientID: "dev1", Username: user}).Authorize(ctx, a, topic)
}

func TestAuthorize(t *testing.T) {
	dsn, conn := seed(t)
	s := newSource(t, Config{Backend: postgres.Config{DSN: dsn}, Query: emqxQuery})
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(s, tt.user, tt.a, tt.topic); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM mqtt_acl").Scan(&n); err != nil || n != 6 {
		t.Errorf("mqtt_acl after the injection attempts: %d rows, %v; want 6", n, err)
	}
}

// TestChangesApplyToNextClient: a client's rules are read once; a row deleted afterwards
// applies to the next ForClient, not to the session already holding its rules.
func TestChangesApplyToNextClient(t *testing.T) {
	dsn, conn := seed(t)
	s := newSource(t, Config{Backend: postgres.Config{DSN: dsn}, Query: emqxQuery})
	ctx := context.Background()
	info := &clientinfo.Info{ClientID: "dev1", Username: "alice"}
	old := s.ForClient(info)
	if got := old.Authorize(ctx, sub, "devices/other/x"); got != authz.Allow {
		t.Fatalf("before: %v, want allow", got)
	}
	exec(t, conn, "DELETE FROM mqtt_acl WHERE username = 'alice' AND topic = 'devices/#'")
	exec(t, conn, "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('bob', 'allow', 'all', 'x')")
	if got := old.Authorize(ctx, sub, "devices/other/x"); got != authz.Allow {
		t.Errorf("existing session: %v, want allow (rules read once per session)", got)
	}
	if got := s.ForClient(info).Authorize(ctx, sub, "devices/other/x"); got != authz.NoMatch {
		t.Errorf("next client: %v, want nomatch after the row was deleted", got)
	}
	if got := decide(s, "bob", pub, "x"); got != authz.Deny {
		t.Errorf("bob: %v, want deny (the earlier deny-all row still comes first)", got)
	}
}

func TestBadRowsFailClosed(t *testing.T) {
	dsn, conn := seed(t)
	exec(t, conn, "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('eve', 'deny', 'publish', 'a/#'), ('eve', 'maybe', 'all', 'b')")
	exec(t, conn, "INSERT INTO mqtt_acl (username, permission, action, topic, qos) VALUES ('zed', 'allow', 'all', 'a', '3')")
	exec(t, conn, "INSERT INTO mqtt_acl (username, permission, action, topic) VALUES ('many', 'allow', 'all', 'a'), ('many', 'allow', 'all', 'b')")
	for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
		s := newSource(t, Config{Backend: postgres.Config{DSN: dsn}, Query: emqxQuery, MaxRules: 1, OnError: onError})
		want := authz.Deny
		if onError == OnErrorIgnore {
			want = authz.NoMatch
		}
		for _, user := range []string{"eve", "zed", "many"} {
			if got := decide(s, user, pub, "c"); got != want {
				t.Errorf("on_error %s, user %s: %v, want %v", onError, user, got, want)
			}
		}
	}
	// Missing required columns.
	s := newSource(t, Config{Backend: postgres.Config{DSN: dsn}, Query: "SELECT permission, topic FROM mqtt_acl WHERE username = ${username}"})
	if got := decide(s, "alice", pub, "devices/x"); got != authz.Deny {
		t.Errorf("missing action column: %v, want deny", got)
	}
}

func TestServerDown(t *testing.T) {
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
		s := newSource(t, Config{Backend: postgres.Config{Server: addr, Database: "db", Username: "u"}, Query: emqxQuery, OnError: tt.onError})
		if got := decide(s, "alice", pub, "devices/x"); got != tt.want {
			t.Errorf("on_error %q: %v, want %v", tt.onError, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Query: emqxQuery}, ""},
		{"no query", Config{}, "query: required"},
		{"password refused", Config{Query: "SELECT permission, action, topic FROM t WHERE p = ${password}"}, "password"},
		{"quoted placeholder", Config{Query: "SELECT permission, action, topic FROM t WHERE u = '${username}'"}, "inside quotes"},
		{"on_error", Config{Query: emqxQuery, OnError: "allow"}, "on_error"},
		{"max_rules", Config{Query: emqxQuery, MaxRules: -1}, "max_rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
