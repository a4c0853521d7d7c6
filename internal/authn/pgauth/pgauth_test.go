package pgauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

const emqxQuery = "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1"

// sha256Hex is EMQX's sha256 with salt_position prefix.
func sha256Hex(salt, pw string) string {
	sum := sha256.Sum256([]byte(salt + pw))
	return hex.EncodeToString(sum[:])
}

// seed starts a server, creates mqtt_user with two users (alice, and root a superuser)
// and returns the DSN and a connection to inspect the table.
func seed(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec(t, conn, `CREATE TABLE mqtt_user (
		id serial PRIMARY KEY,
		username text UNIQUE NOT NULL,
		password_hash text,
		salt text,
		is_superuser boolean DEFAULT false)`)
	exec(t, conn, `INSERT INTO mqtt_user (username, password_hash, salt, is_superuser) VALUES ($1, $2, $3, false), ($4, $5, $6, true)`,
		"alice", sha256Hex("s4lt", "alice-pw"), "s4lt",
		"root", sha256Hex("r00t", "root-pw"), "r00t")
	return dsn, conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func newAuth(t *testing.T, cfg Config) *Authenticator {
	t.Helper()
	h, err := password.NewHasher(password.Params{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, h, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func login(a *Authenticator, user string, pw *string) authn.Result {
	cred := &authn.Credentials{Username: user}
	if pw != nil {
		cred.Password = []byte(*pw)
	}
	info := &clientinfo.Info{ClientID: "c-" + user, Username: user}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.Authenticate(ctx, info, cred)
}

func ptr(s string) *string { return &s }

func check(t *testing.T, got authn.Result, want authn.Outcome, reason packet.ReasonCode, superuser bool) {
	t.Helper()
	if got.Outcome != want {
		t.Fatalf("outcome %v (%s), want %v", got.Outcome, got.Detail, want)
	}
	if want == authn.Deny && got.DenyReason() != reason {
		t.Errorf("reason %v (%s), want %v", got.DenyReason(), got.Detail, reason)
	}
	if got.Superuser != superuser {
		t.Errorf("superuser %v, want %v", got.Superuser, superuser)
	}
}

func TestAuthenticate(t *testing.T) {
	dsn, conn := seed(t)
	a := newAuth(t, Config{
		Backend:               postgres.Config{DSN: dsn},
		Query:                 emqxQuery,
		PasswordHashAlgorithm: HashAlgorithm{Name: "sha256", SaltPosition: "prefix"},
	})
	tests := []struct {
		name      string
		user      string
		pw        *string
		want      authn.Outcome
		reason    packet.ReasonCode
		superuser bool
	}{
		{"right password", "alice", ptr("alice-pw"), authn.Allow, 0, false},
		{"superuser", "root", ptr("root-pw"), authn.Allow, 0, true},
		{"wrong password", "alice", ptr("root-pw"), authn.Deny, packet.BadUserNameOrPassword, false},
		{"empty password", "alice", ptr(""), authn.Deny, packet.BadUserNameOrPassword, false},
		{"no password", "alice", nil, authn.Ignore, 0, false},
		{"unknown user", "mallory", ptr("alice-pw"), authn.Ignore, 0, false},
		{"injection or true", "' OR '1'='1", ptr("alice-pw"), authn.Ignore, 0, false},
		{"injection or true, no quote", "alice' OR 'x'='x", ptr("x"), authn.Ignore, 0, false},
		{"injection drop table", "x'; DROP TABLE mqtt_user; --", ptr("alice-pw"), authn.Ignore, 0, false},
		{"injection placeholder text", "${password}", ptr("alice-pw"), authn.Ignore, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, login(a, tt.user, tt.pw), tt.want, tt.reason, tt.superuser)
		})
	}
	if n := count(t, conn, "mqtt_user"); n != 2 {
		t.Errorf("mqtt_user has %d rows after the injection attempts, want 2", n)
	}

	// Deleting the row takes effect at the next CONNECT: nothing is cached.
	exec(t, conn, "DELETE FROM mqtt_user WHERE username = 'alice'")
	check(t, login(a, "alice", ptr("alice-pw")), authn.Ignore, 0, false)
}

func TestEncodedHashAndOptionalColumns(t *testing.T) {
	dsn, conn := seed(t)
	h, err := password.NewHasher(password.Params{Algorithm: password.Bcrypt, Cost: 4, AllowWeak: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), []byte("bob-pw"))
	if err != nil {
		t.Fatal(err)
	}
	exec(t, conn, "CREATE TABLE accounts (login text, pw text, admin int)")
	exec(t, conn, "INSERT INTO accounts VALUES ($1, $2, 1), ('broken', 'not-a-hash', 0)", "bob", enc)
	// No salt column; is_superuser from an integer; the user found by client id or user name.
	a := newAuth(t, Config{
		Backend: postgres.Config{DSN: dsn},
		Query:   "SELECT pw AS password_hash, admin AS is_superuser FROM accounts WHERE login = ${username} OR login = ${clientid}",
	})
	check(t, login(a, "bob", ptr("bob-pw")), authn.Allow, 0, true)
	check(t, login(a, "bob", ptr("alice-pw")), authn.Deny, packet.BadUserNameOrPassword, false)
	// A stored hash that does not parse is a data error, not a wrong password.
	check(t, login(a, "broken", ptr("x")), authn.Deny, packet.ServerUnavailable, false)

	// A query without a password_hash column is an error.
	b := newAuth(t, Config{Backend: postgres.Config{DSN: dsn}, Query: "SELECT pw FROM accounts WHERE login = ${username}"})
	check(t, login(b, "bob", ptr("bob-pw")), authn.Deny, packet.ServerUnavailable, false)
}

func TestQueryTimeout(t *testing.T) {
	dsn, _ := seed(t)
	for _, onError := range []string{"", OnErrorIgnore} {
		a := newAuth(t, Config{
			Backend:               postgres.Config{DSN: dsn, QueryTimeout: 200 * time.Millisecond},
			Query:                 "SELECT password_hash, salt FROM mqtt_user, pg_sleep(30) WHERE username = ${username}",
			PasswordHashAlgorithm: HashAlgorithm{Name: "sha256"},
			OnError:               onError,
		})
		want := authn.Deny
		if onError == OnErrorIgnore {
			want = authn.Ignore
		}
		check(t, login(a, "alice", ptr("alice-pw")), want, packet.ServerUnavailable, false)
	}
}

// TestServerDown: nothing listens on the configured port; the client is refused with
// Server unavailable (or ignored), not left waiting.
func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
		a := newAuth(t, Config{
			Backend:               postgres.Config{Server: addr, Database: "db", Username: "u"},
			Query:                 emqxQuery,
			PasswordHashAlgorithm: HashAlgorithm{Name: "sha256"},
			OnError:               onError,
		})
		res := login(a, "alice", ptr("alice-pw"))
		want := authn.Deny
		if onError == OnErrorIgnore {
			want = authn.Ignore
		}
		check(t, res, want, packet.ServerUnavailable, false)
		if strings.Contains(res.Detail, "alice-pw") {
			t.Errorf("detail leaks the password: %s", res.Detail)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Backend: postgres.Config{DSN: "postgres://u@127.0.0.1/db"}, Query: emqxQuery}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"no query", func(c *Config) { c.Query = "" }, "query: required"},
		{"no placeholder", func(c *Config) { c.Query = "SELECT password_hash FROM mqtt_user LIMIT 1" }, "no placeholder"},
		{"quoted placeholder", func(c *Config) { c.Query = "SELECT password_hash FROM t WHERE u = '${username}'" }, "inside quotes"},
		{"unknown placeholder", func(c *Config) { c.Query = "SELECT password_hash FROM t WHERE u = ${nobody}" }, "unknown variable"},
		{"on_error", func(c *Config) { c.OnError = "allow" }, "on_error"},
		{"plain refused", func(c *Config) { c.PasswordHashAlgorithm.Name = "plain" }, "refused"},
		{"pbkdf2 needs iterations", func(c *Config) { c.PasswordHashAlgorithm.Name = "pbkdf2" }, "iterations"},
		{"pbkdf2", func(c *Config) {
			c.PasswordHashAlgorithm = HashAlgorithm{Name: "pbkdf2", MacFun: "sha512", Iterations: 4096}
		}, ""},
		{"salt position", func(c *Config) { c.PasswordHashAlgorithm = HashAlgorithm{Name: "sha512", SaltPosition: "middle"} }, "salt_position"},
		{"unknown algorithm", func(c *Config) { c.PasswordHashAlgorithm.Name = "md4" }, "unknown algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSaltDisable(t *testing.T) {
	dsn, conn := seed(t)
	exec(t, conn, "INSERT INTO mqtt_user (username, password_hash, salt) VALUES ('nosalt', $1, 'ignored')", sha256Hex("", "pw"))
	a := newAuth(t, Config{
		Backend:               postgres.Config{DSN: dsn},
		Query:                 emqxQuery,
		PasswordHashAlgorithm: HashAlgorithm{Name: "sha256", SaltPosition: "disable"},
	})
	check(t, login(a, "nosalt", ptr("pw")), authn.Allow, 0, false)
}
