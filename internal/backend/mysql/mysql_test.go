package mysql

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
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
		{name: "emqx authn", src: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1",
			sql: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ? LIMIT 1", vars: []string{"username"}},
		{name: "each use is an argument", src: "SELECT 1 WHERE a = ${clientid} OR b = ${username} OR c = ${clientid}",
			sql: "SELECT 1 WHERE a = ? OR b = ? OR c = ?", vars: []string{"clientid", "username", "clientid"}},
		{name: "attrs and cert", src: "SELECT 1 WHERE a = ${client_attrs.site} AND b = ${cert_common_name}",
			sql: "SELECT 1 WHERE a = ? AND b = ?", vars: []string{"client_attrs.site", "cert_common_name"}},
		{name: "parenthesised and compared", src: "SELECT 1 FROM t WHERE u IN (${username},${clientid}) AND x=${peerhost}",
			sql: "SELECT 1 FROM t WHERE u IN (?,?) AND x=?", vars: []string{"username", "clientid", "peerhost"}},
		{name: "literals kept", src: `SELECT 'it''s', 'a\'b', "say ""hi""", "c\"d", ` + "`we``ird`" + `, 'a?b', "$" FROM t WHERE u = ${username}`,
			sql: `SELECT 'it''s', 'a\'b', "say ""hi""", "c\"d", ` + "`we``ird`" + `, 'a?b', "$" FROM t WHERE u = ?`, vars: []string{"username"}},
		{name: "escaped backslash ends the string", src: `SELECT '\\' AS b, ${username} AS u`,
			sql: `SELECT '\\' AS b, ? AS u`, vars: []string{"username"}},
		{name: "comments kept", src: "SELECT 1 -- what? ok\n# and? this\n/* and? that */ FROM t WHERE u = ${username}",
			sql: "SELECT 1 -- what? ok\n# and? this\n/* and? that */ FROM t WHERE u = ?", vars: []string{"username"}},
		{name: "double dash without space is minus", src: "SELECT 1--1 AS two, ${username} AS u",
			sql: "SELECT 1--1 AS two, ? AS u", vars: []string{"username"}},
		{name: "dollar inside identifier", src: "SELECT a$b FROM t WHERE u = ${username}",
			sql: "SELECT a$b FROM t WHERE u = ?", vars: []string{"username"}},
		{name: "optimizer hint is a comment", src: "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1 FROM t WHERE u = ${username}",
			sql: "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1 FROM t WHERE u = ?", vars: []string{"username"}},
		{name: "final semicolon dropped", src: "SELECT 1 FROM t WHERE u = ${username};  -- done\n",
			sql: "SELECT 1 FROM t WHERE u = ?  -- done", vars: []string{"username"}},
		{name: "no placeholder", src: "SELECT 1", sql: "SELECT 1"},
		{name: "empty", src: "  ", wantErr: "empty"},
		{name: "only a semicolon", src: " ; ", wantErr: "empty"},
		{name: "single-quoted placeholder", src: "SELECT 1 WHERE u = '${username}'", wantErr: "inside quotes"},
		{name: "double-quoted placeholder", src: `SELECT 1 WHERE u = "${username}"`, wantErr: "inside quotes"},
		{name: "backtick placeholder", src: "SELECT `${username}` FROM t", wantErr: "inside quotes"},
		{name: "placeholder after escaped quote", src: `SELECT 'a\' ${username} '`, wantErr: "inside quotes"},
		{name: "placeholder in line comment", src: "SELECT 1 -- ${username}\nFROM t", wantErr: "inside a comment"},
		{name: "placeholder in hash comment", src: "SELECT 1 # ${username}\nFROM t", wantErr: "inside a comment"},
		{name: "placeholder in block comment", src: "SELECT 1 /* ${username} */ FROM t", wantErr: "inside a comment"},
		{name: "executable comment", src: "SELECT 1 /*!50000 FROM t */", wantErr: "executable comment"},
		{name: "mariadb executable comment", src: "SELECT 1 /*M! FROM t */", wantErr: "executable comment"},
		{name: "hand-written parameter", src: "SELECT 1 FROM t WHERE u = ?", wantErr: "written by hand"},
		{name: "second statement", src: "SELECT 1 FROM t WHERE u = ${username}; DROP TABLE t", wantErr: "second statement"},
		{name: "glued before", src: "SELECT a${username} FROM t", wantErr: "glued"},
		{name: "glued after", src: "SELECT ${username}a FROM t", wantErr: "glued"},
		{name: "unknown variable", src: "SELECT ${nope}", wantErr: "unknown variable"},
		{name: "password refused", src: "SELECT ${password}", opts: placeholder.Options{NoPassword: true}, wantErr: "password"},
		{name: "unclosed placeholder", src: "SELECT ${username", wantErr: "no closing"},
		{name: "unterminated single", src: "SELECT 'x", wantErr: "unterminated quoted string"},
		{name: "unterminated by escape", src: `SELECT 'x\'`, wantErr: "unterminated quoted string"},
		{name: "unterminated double", src: `SELECT "x`, wantErr: "unterminated quoted string"},
		{name: "unterminated backtick", src: "SELECT `x", wantErr: "unterminated quoted identifier"},
		{name: "unterminated comment", src: "SELECT /* x", wantErr: "unterminated comment"},
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
			if q.String() != tt.src || q.HasVars() != (len(tt.vars) > 0) {
				t.Errorf("String %q, HasVars %v", q.String(), q.HasVars())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cr3t-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Config{Server: "127.0.0.1", Database: "d", Username: "u", Password: "file:" + pwFile}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"loopback plain", func(*Config) {}, ""},
		{"localhost plain", func(c *Config) { c.Server = "localhost:3307" }, ""},
		{"ipv6 loopback plain", func(c *Config) { c.Server = "[::1]:3306" }, ""},
		{"unix socket", func(c *Config) { c.Server = "/run/mysqld/mysqld.sock" }, ""},
		{"tls to remote host", func(c *Config) { c.Server, c.TLS = "db.example:3306", &tlsconf.ClientOptions{} }, ""},
		{"plain to remote host with opt-in", func(c *Config) { c.Server, c.AllowPlainText = "db.example", true }, ""},
		{"no password", func(c *Config) { c.Password = "" }, ""},
		{"plain to remote host", func(c *Config) { c.Server = "db.example" }, "ssl: a connection to db.example without TLS"},
		{"plain to remote address", func(c *Config) { c.Server = "192.0.2.1:3306" }, "clear text"},
		{"tls over a socket", func(c *Config) { c.Server, c.TLS = "/run/mysqld/mysqld.sock", &tlsconf.ClientOptions{} }, "ssl: a Unix socket"},
		{"inline password", func(c *Config) { c.Password = "hunter2" }, "password: must be file:/path or env:NAME"},
		{"env password unset", func(c *Config) { c.Password = "env:RAMPART_TEST_SURELY_UNSET" }, "not set"},
		{"password file missing", func(c *Config) { c.Password = "file:" + filepath.Join(dir, "nope") }, "password: secret file"},
		{"no server", func(c *Config) { c.Server = "" }, "server: required"},
		{"no database", func(c *Config) { c.Database = "" }, "database: required"},
		{"no username", func(c *Config) { c.Username = "" }, "username: required"},
		{"port zero", func(c *Config) { c.Server = "127.0.0.1:0" }, "server: port"},
		{"port too big", func(c *Config) { c.Server = "127.0.0.1:70000" }, "server: port"},
		{"no host", func(c *Config) { c.Server = ":3306" }, "server:"},
		{"relative socket", func(c *Config) { c.Server = "run/mysqld.sock" }, "server:"},
		{"pool size negative", func(c *Config) { c.PoolSize = -1 }, "pool_size"},
		{"pool size too big", func(c *Config) { c.PoolSize = MaxPoolSize + 1 }, "pool_size"},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = -time.Second }, "connect_timeout"},
		{"query timeout", func(c *Config) { c.QueryTimeout = 2 * time.Hour }, "query_timeout"},
		{"acquire timeout", func(c *Config) { c.AcquireTimeout = -time.Second }, "acquire_timeout"},
		{"verify none without opt-in", func(c *Config) {
			c.Server, c.TLS = "db.example", &tlsconf.ClientOptions{Verify: "verify_none"}
		}, "ssl: verify"},
		{"missing CA file", func(c *Config) { c.TLS = &tlsconf.ClientOptions{CACertFile: filepath.Join(dir, "nope.pem")} }, "ssl:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			p, err := New(context.Background(), c)
			if err == nil {
				p.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cr3t-pw")) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := Config{Server: "127.0.0.1", Database: "d", Username: "u", QueryTimeout: 300 * time.Millisecond}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.PoolSize != DefaultPoolSize || c.ConnectTimeout != DefaultConnectTimeout || c.AcquireTimeout != 300*time.Millisecond {
		t.Errorf("defaults: %+v", c)
	}
	dc, err := Config{Server: "db.example", Database: "d", Username: "u", TLS: &tlsconf.ClientOptions{}}.driverConfig()
	if err != nil {
		t.Fatal(err)
	}
	if dc.Addr != "db.example:3306" || dc.TLS == nil || dc.TLS.ServerName != "db.example" || dc.InterpolateParams ||
		dc.MultiStatements || dc.AllowAllFiles || dc.AllowCleartextPasswords || dc.AllowOldPasswords ||
		dc.AllowFallbackToPlaintext || dc.ParseTime || dc.Collation != "utf8mb4_general_ci" {
		t.Errorf("driver config: %+v", dc)
	}
}

// server starts MariaDB and returns it with a Config for its rampart account, the
// password given as a file: reference.
func server(t *testing.T, pki *testsvc.PKI) (*testsvc.MariaDB, Config) {
	t.Helper()
	m := testsvc.StartMariaDB(t, pki)
	pw := filepath.Join(t.TempDir(), "mysql.pass")
	if err := os.WriteFile(pw, []byte(m.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return m, Config{Server: m.Addr, Database: m.Database, Username: m.User, Password: "file:" + pw}
}

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func compile(t *testing.T, src string) *Query {
	t.Helper()
	q, err := CompileQuery(src, placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func globalStatus(t *testing.T, m *testsvc.MariaDB, name string) int {
	t.Helper()
	var n string
	var v int
	if err := m.DB(t).QueryRow("SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&n, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestQuery(t *testing.T) {
	m, cfg := server(t, nil)
	ctx := context.Background()
	db := m.DB(t)
	for _, s := range []string{
		"CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, n BIGINT UNSIGNED, flag TINYINT(1), note TEXT)",
		"INSERT INTO t (name, n, flag, note) VALUES ('a', 1, 1, NULL), ('b', 2, 0, 'x'), ('c', 3, NULL, 'y')",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	cfg.PoolSize = 2
	p := newPool(t, cfg)
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if p.Target() != m.Addr+"/"+m.Database {
		t.Errorf("target %q", p.Target())
	}
	evil := []string{"' OR '1'='1", "x'; DROP TABLE t; --", `\' OR 1=1 -- `, `\\' OR 1=1 #`, "${username}", "?", `"; DROP TABLE t; #`}
	q := compile(t, "SELECT ${username} AS u, ${clientid} AS c, ${username} AS again, CHAR_LENGTH(${username}) AS len")
	prepares := globalStatus(t, m, "Com_stmt_prepare")
	for _, v := range evil {
		rows, err := p.Query(ctx, q, placeholder.Values{Info: &clientinfo.Info{Username: v, ClientID: "c1"}}, 5)
		if err != nil {
			t.Fatalf("Query(%q): %v", v, err)
		}
		if !slices.Equal(rows.Columns, []string{"u", "c", "again", "len"}) || len(rows.Values) != 1 || rows.More {
			t.Fatalf("rows for %q: %+v", v, rows)
		}
		row := rows.Values[0]
		for i, want := range []string{v, "c1", v, strings.Repeat("x", len([]rune(v)))} {
			got, ok := sqlrows.Text(row[i])
			if i == 3 {
				got = strings.Repeat("x", int(row[i].(int64)))
			}
			if !ok || got != want {
				t.Errorf("value %q: column %s = %q (%T), want %q", v, rows.Columns[i], got, row[i], want)
			}
		}
	}
	// Every question was a server-side prepared statement: the values never were SQL.
	if n := globalStatus(t, m, "Com_stmt_prepare") - prepares; n < len(evil) {
		t.Errorf("%d prepared statements for %d questions: parameters were interpolated", n, len(evil))
	}
	var count int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&count); err != nil || count != 3 {
		t.Fatalf("table t after the injection attempts: %d rows, %v", count, err)
	}

	// Types, NULL, a row limit.
	q = compile(t, "SELECT name, n, flag, note FROM t WHERE name <> ${username} ORDER BY id")
	rows, err := p.Query(ctx, q, placeholder.Values{Info: &clientinfo.Info{Username: "zzz"}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows.Values) != 2 || !rows.More {
		t.Fatalf("rows: %+v", rows)
	}
	if s, _ := sqlrows.Text(rows.Values[0][0]); s != "a" || !sqlrows.Truthy(rows.Values[0][2]) || sqlrows.Truthy(rows.Values[1][2]) || rows.Values[0][3] != nil {
		t.Errorf("values: %#v", rows.Values)
	}
	if s, _ := sqlrows.Text(rows.Values[1][1]); s != "2" {
		t.Errorf("unsigned column: %#v", rows.Values[1][1])
	}
	// The connection is still usable after a read that stopped early.
	if rows, err = p.Query(ctx, q, placeholder.Values{Info: &clientinfo.Info{Username: "zzz"}}, 10); err != nil || len(rows.Values) != 3 || rows.More {
		t.Fatalf("second query: %+v, %v", rows, err)
	}

	// An error the server answers with says the server is up: no back-off.
	_, err = p.Query(ctx, compile(t, "SELECT * FROM missing WHERE u = ${username}"), placeholder.Values{Info: &clientinfo.Info{}}, 1)
	if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), m.Addr) {
		t.Fatalf("missing table: %v", err)
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Errorf("health after an SQL error: %+v", h)
	}
	if err := p.Ping(ctx); err != nil {
		t.Errorf("after an SQL error: %v", err)
	}
	// Multiple statements are refused by the server too, not only by CompileQuery.
	if _, err := p.Query(ctx, &Query{src: "x", sql: "SELECT 1; SELECT 2"}, placeholder.Values{}, 1); err == nil {
		t.Error("two statements in one query were run")
	}
}

func TestUnixSocket(t *testing.T) {
	m, cfg := server(t, nil)
	cfg.Server = m.Socket
	p := newPool(t, cfg)
	rows, err := p.Query(context.Background(), compile(t, "SELECT CURRENT_USER() AS who, ${username} AS u"), placeholder.Values{Info: &clientinfo.Info{Username: "x"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if who, _ := sqlrows.Text(rows.Values[0][0]); who != "rampart@localhost" {
		t.Errorf("logged in as %q", who)
	}
	if p.Target() != "unix:"+m.Socket+"/"+m.Database {
		t.Errorf("target %q", p.Target())
	}
}

func TestTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	m, base := server(t, pki)
	q := compile(t, "SELECT CURRENT_USER() AS who, @@ssl_cipher AS server_cipher, ${username} AS u")
	sessionCipher := compile(t, "SELECT VARIABLE_VALUE AS cipher FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher' AND ${username} = ${username}")
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"verified with the CA", func(c *Config) { c.TLS = &tlsconf.ClientOptions{CACertFile: pki.CAFile} }, ""},
		{"verified, server name localhost", func(c *Config) {
			c.Server = strings.Replace(c.Server, "127.0.0.1", "localhost", 1)
			c.TLS = &tlsconf.ClientOptions{CACertFile: pki.CAFile}
		}, ""},
		{"client certificate", func(c *Config) {
			c.Username = m.CertUser
			c.TLS = &tlsconf.ClientOptions{CACertFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
		}, ""},
		{"wrong CA", func(c *Config) { c.TLS = &tlsconf.ClientOptions{CACertFile: pki.WrongCAFile} }, "certificate"},
		{"system roots do not know the test CA", func(c *Config) { c.TLS = &tlsconf.ClientOptions{} }, "certificate"},
		{"wrong server name", func(c *Config) {
			c.TLS = &tlsconf.ClientOptions{CACertFile: pki.CAFile, ServerName: "db.example"}
		}, "certificate"},
		{"certificate required but not sent", func(c *Config) {
			c.Username = m.CertUser
			c.TLS = &tlsconf.ClientOptions{CACertFile: pki.CAFile}
		}, "Access denied"},
		// MariaDB answers a plain login to a server with require_secure_transport with
		// Access denied (MySQL: "Connections using insecure transport are prohibited").
		{"plain text to a TLS-only server", func(*Config) {}, "Access denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			p := newPool(t, cfg)
			ctx := context.Background()
			vals := placeholder.Values{Info: &clientinfo.Info{Username: "x"}}
			rows, err := p.Query(ctx, q, vals, 1)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query: %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), m.Password) {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if who, _ := sqlrows.Text(rows.Values[0][0]); !strings.HasPrefix(who, cfg.Username+"@") {
				t.Errorf("logged in as %q", who)
			}
			rows, err = p.Query(ctx, sessionCipher, vals, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows.Values) != 1 {
				t.Fatalf("no Ssl_cipher: %+v", rows)
			}
			if c, _ := sqlrows.Text(rows.Values[0][0]); c == "" {
				t.Errorf("the session is not encrypted (Ssl_cipher empty)")
			}
		})
	}
}

// TestServerDownAndBack: with the server stopped, the first question fails to connect
// and the next is refused at once by the back-off (health.ErrBackoff) without trying;
// after a restart the connector recovers by itself.
func TestServerDownAndBack(t *testing.T) {
	m, cfg := server(t, nil)
	cfg.ConnectTimeout = 2 * time.Second
	p := newPool(t, cfg)
	ctx := context.Background()
	q := compile(t, "SELECT ${username} AS u")
	vals := placeholder.Values{Info: &clientinfo.Info{Username: "x"}}
	if _, err := p.Query(ctx, q, vals, 1); err != nil {
		t.Fatalf("before: %v", err)
	}
	m.Stop()
	_, err := p.Query(ctx, q, vals, 1)
	if err == nil || errors.Is(err, health.ErrBackoff) || errors.Is(err, health.ErrBusy) {
		t.Fatalf("first question with the server down: %v, want a connection error", err)
	}
	if !strings.Contains(err.Error(), m.Addr) {
		t.Errorf("error does not name the server: %v", err)
	}
	_, err = p.Query(ctx, q, vals, 1)
	if !errors.Is(err, health.ErrBackoff) {
		t.Fatalf("second question: %v, want health.ErrBackoff", err)
	}
	if h := p.Health(); h.Up || h.Failures == 0 || h.LastErr == "" {
		t.Errorf("health while down: %+v", h)
	}

	m.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = p.Query(ctx, q, vals, 1)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Errorf("health after recovery: %+v", h)
	}
}

// TestSaturatedPool: with every connection busy, a question is refused with
// health.ErrBusy after the acquire timeout, and the server is not marked down.
func TestSaturatedPool(t *testing.T) {
	_, cfg := server(t, nil)
	cfg.PoolSize = 1
	cfg.AcquireTimeout = 100 * time.Millisecond
	p := newPool(t, cfg)
	ctx := context.Background()
	slow := compile(t, "SELECT SLEEP(${username}) AS s")
	fast := compile(t, "SELECT ${username} AS u")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := p.Query(ctx, slow, placeholder.Values{Info: &clientinfo.Info{Username: "2"}}, 1); err != nil {
			t.Errorf("slow query: %v", err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); len(p.slots) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the slow query never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err := p.Query(ctx, fast, placeholder.Values{Info: &clientinfo.Info{Username: "x"}}, 1)
	if !errors.Is(err, health.ErrBusy) {
		t.Fatalf("question with the pool saturated: %v, want health.ErrBusy", err)
	}
	if h := p.Health(); !h.Up {
		t.Errorf("a saturated pool marked the server down: %+v", h)
	}
	wg.Wait()
	if _, err := p.Query(ctx, fast, placeholder.Values{Info: &clientinfo.Info{Username: "x"}}, 1); err != nil {
		t.Fatalf("after the slow query: %v", err)
	}
}

// TestTimeouts: a query that outlives the query timeout fails and counts as the server
// not answering; one whose caller gives up first says nothing about the server.
func TestTimeouts(t *testing.T) {
	_, cfg := server(t, nil)
	cfg.QueryTimeout = 300 * time.Millisecond
	p := newPool(t, cfg)
	slow := compile(t, "SELECT SLEEP(${username}) AS s")
	fast := compile(t, "SELECT ${username} AS u")
	vals := placeholder.Values{Info: &clientinfo.Info{Username: "5"}}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := p.Query(ctx, slow, vals, 1)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("caller gave up: %v", err)
	}
	if h := p.Health(); !h.Up {
		t.Fatalf("the caller giving up marked the server down: %+v", h)
	}
	if _, err := p.Query(context.Background(), fast, vals, 1); err != nil {
		t.Fatalf("after the caller gave up: %v", err)
	}

	_, err = p.Query(context.Background(), slow, vals, 1)
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("query timeout: %v", err)
	}
	if h := p.Health(); h.Up {
		t.Errorf("a server that did not answer in time is still up: %+v", h)
	}
}

// TestBind: statements bound to one pool share its connections; closing one leaves the
// pool to the others, and only the pool's own Close ends them. A statement from Open
// owns its pool.
func TestBind(t *testing.T) {
	_, cfg := server(t, nil)
	cfg.PoolSize = 1
	ctx := context.Background()
	p := newPool(t, cfg)
	a, b := p.Bind(compile(t, "SELECT 1 AS n")), p.Bind(compile(t, "SELECT 2 AS n"))
	if a.Pool() != p || b.Pool() != p {
		t.Fatal("a bound statement does not run on the pool it was bound to")
	}
	for _, s := range []*Statement{a, b} {
		if _, err := s.Query(ctx, placeholder.Values{}, 1); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if n := p.db.Stats().OpenConnections; n != 1 {
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

	owned, err := Open(ctx, cfg, "SELECT 1 AS n", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owned.Query(ctx, placeholder.Values{}, 1); err != nil {
		t.Fatal(err)
	}
	owned.Close()
	if _, err := owned.Pool().Query(ctx, compile(t, "SELECT 1"), placeholder.Values{}, 1); err == nil {
		t.Fatal("Close of a statement from Open left its pool open")
	}
}
