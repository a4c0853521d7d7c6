package builtin_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	xscram "github.com/xdg-go/scram"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/builtin"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/scram"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// fastArgon2 keeps tests quick; the defaults are covered by package password.
var fastArgon2 = password.Params{Algorithm: password.Argon2id, MemoryKiB: 64, Time: 1, Threads: 1, AllowWeak: true}

// logBuffer collects log output so tests can check that no secret reaches it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type env struct {
	t      *testing.T
	dir    string
	db     *controldb.DB
	hasher *password.Hasher
	logs   *logBuffer
	log    *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), logs: &logBuffer{}}
	e.log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := password.NewHasher(password.Params{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.hasher = h
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := controldb.Open(context.Background(), filepath.Join(e.dir, "control.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.t.Cleanup(func() { _ = db.Close() })
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) auth(cfg builtin.Config) *builtin.Authenticator {
	e.t.Helper()
	a, err := e.new(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) new(cfg builtin.Config) (*builtin.Authenticator, error) {
	if cfg.PasswordHash == (password.Params{}) {
		cfg.PasswordHash = fastArgon2
	}
	a, err := builtin.New(context.Background(), e.db, e.hasher, cfg, e.log)
	if a != nil {
		e.t.Cleanup(func() { _ = a.Close(context.Background()) })
	}
	return a, err
}

func (e *env) file(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// noSecrets fails when any of the secrets appears in the logs.
func (e *env) noSecrets(secrets ...string) {
	e.t.Helper()
	logs := e.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			e.t.Fatalf("logs contain the secret %q:\n%s", s, logs)
		}
	}
}

func login(a *builtin.Authenticator, username, clientID string, pw []byte) authn.Result {
	return a.Authenticate(context.Background(), &clientinfo.Info{Username: username, ClientID: clientID},
		&authn.Credentials{Username: username, Password: pw})
}

func check(t *testing.T, res authn.Result, want authn.Outcome, super bool) {
	t.Helper()
	if res.Outcome != want {
		t.Fatalf("outcome %v (%s), want %v", res.Outcome, res.Detail, want)
	}
	if want == authn.Deny && res.DenyReason() != packet.BadUserNameOrPassword {
		t.Fatalf("deny reason %v, want BadUserNameOrPassword", res.DenyReason())
	}
	if res.Superuser != super {
		t.Fatalf("superuser %v, want %v", res.Superuser, super)
	}
}

func TestName(t *testing.T) {
	e := newEnv(t)
	if got := e.auth(builtin.Config{}).Name(); got != "password_based:built_in_database" {
		t.Fatal(got)
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{})
	ctx := context.Background()
	for _, u := range []builtin.UserSpec{
		{ID: "alice", Password: []byte("alice-pw")},
		{ID: "root", Password: []byte("root-pw"), Superuser: true},
	} {
		if err := a.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		user  string
		pw    []byte
		want  authn.Outcome
		super bool
	}{
		{"right password", "alice", []byte("alice-pw"), authn.Allow, false},
		{"superuser", "root", []byte("root-pw"), authn.Allow, true},
		{"wrong password", "alice", []byte("alice-pW"), authn.Deny, false},
		{"another user's password", "alice", []byte("root-pw"), authn.Deny, false},
		{"password prefix", "alice", []byte("alice-p"), authn.Deny, false},
		{"password plus NUL", "alice", []byte("alice-pw\x00"), authn.Deny, false},
		{"empty password", "alice", []byte{}, authn.Deny, false},
		{"no password", "alice", nil, authn.Ignore, false},
		{"unknown user", "mallory", []byte("alice-pw"), authn.Ignore, false},
		{"user name in other case", "Alice", []byte("alice-pw"), authn.Ignore, false},
		{"no user name", "", []byte("alice-pw"), authn.Ignore, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, login(a, tc.user, "c", tc.pw), tc.want, tc.super)
		})
	}
	if res := a.Authenticate(ctx, &clientinfo.Info{Username: "alice"}, nil); res.Outcome != authn.Ignore {
		t.Fatalf("nil credentials: %v", res.Outcome)
	}
	e.noSecrets("alice-pw", "root-pw", "alice-pW")
}

func TestClientIDType(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{UserIDType: controldb.ClientID})
	if err := a.AddUser(context.Background(), builtin.UserSpec{ID: "dev-1", Password: []byte("dev-pw")}); err != nil {
		t.Fatal(err)
	}
	check(t, login(a, "anyone", "dev-1", []byte("dev-pw")), authn.Allow, false)
	check(t, login(a, "", "dev-1", []byte("dev-pw")), authn.Allow, false)
	check(t, login(a, "dev-1", "dev-2", []byte("dev-pw")), authn.Ignore, false) // the username is not the id
	check(t, login(a, "x", "dev-1", []byte("nope")), authn.Deny, false)

	// A username authenticator on the same database does not see client id users.
	u := e.auth(builtin.Config{})
	check(t, login(u, "dev-1", "x", []byte("dev-pw")), authn.Ignore, false)
}

// The authenticator reads the identity the connection settled on (e.g. a certificate CN
// with peer_cert_as_username), not what CONNECT claimed.
func TestUsesConnectionIdentity(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{})
	if err := a.AddUser(context.Background(), builtin.UserSpec{ID: "cn-device", Password: []byte("pw")}); err != nil {
		t.Fatal(err)
	}
	res := a.Authenticate(context.Background(), &clientinfo.Info{Username: "cn-device"},
		&authn.Credentials{Username: "claimed", Password: []byte("pw")})
	check(t, res, authn.Allow, false)
	res = a.Authenticate(context.Background(), &clientinfo.Info{Username: "claimed"},
		&authn.Credentials{Username: "cn-device", Password: []byte("pw")})
	check(t, res, authn.Ignore, false)
}

func TestUserManagement(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{})
	ctx := context.Background()
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "bob", Password: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "bob", Password: []byte("other")}); !errors.Is(err, builtin.ErrExists) {
		t.Fatalf("duplicate AddUser err = %v", err)
	}
	check(t, login(a, "bob", "", []byte("first")), authn.Allow, false)
	for _, bad := range []builtin.UserSpec{{ID: "", Password: []byte("x")}, {ID: "eve"}, {ID: "eve", Password: []byte{}}} {
		if err := a.AddUser(ctx, bad); err == nil {
			t.Fatalf("AddUser(%+v) accepted", bad)
		}
	}
	if _, ok := a.User("eve"); ok {
		t.Fatal("a refused user was added")
	}

	if err := a.UpdateUser(ctx, "bob", builtin.UserUpdate{Password: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	check(t, login(a, "bob", "", []byte("first")), authn.Deny, false)
	check(t, login(a, "bob", "", []byte("second")), authn.Allow, false)
	yes := true
	if err := a.UpdateUser(ctx, "bob", builtin.UserUpdate{Superuser: &yes}); err != nil {
		t.Fatal(err)
	}
	check(t, login(a, "bob", "", []byte("second")), authn.Allow, true)
	if u, ok := a.User("bob"); !ok || !u.Superuser || !u.HasPassword || u.HasSCRAM {
		t.Fatalf("User(bob) = %+v, %v", u, ok)
	}
	if err := a.UpdateUser(ctx, "nobody", builtin.UserUpdate{Superuser: &yes}); !errors.Is(err, builtin.ErrNotFound) {
		t.Fatalf("UpdateUser(unknown) err = %v", err)
	}
	if err := a.UpdateUser(ctx, "bob", builtin.UserUpdate{Password: []byte{}}); err == nil {
		t.Fatal("update to an empty password accepted")
	}
	check(t, login(a, "bob", "", []byte("second")), authn.Allow, true)

	// The database has what memory has.
	stored, err := e.db.Users().Get(ctx, controldb.Username, "bob")
	if err != nil || !stored.Superuser || !strings.HasPrefix(stored.PasswordHash, "$argon2id$") {
		t.Fatalf("stored %+v, %v", stored, err)
	}

	if err := a.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	check(t, login(a, "bob", "", []byte("second")), authn.Ignore, false)
	if err := a.DeleteUser(ctx, "bob"); !errors.Is(err, builtin.ErrNotFound) {
		t.Fatalf("second DeleteUser err = %v", err)
	}
	if _, err := e.db.Users().Get(ctx, controldb.Username, "bob"); !errors.Is(err, controldb.ErrNotFound) {
		t.Fatalf("deleted user still stored: %v", err)
	}
	if a.Len() != 0 {
		t.Fatalf("Len = %d", a.Len())
	}
	e.noSecrets("first", "second")
}

func TestPersistenceAcrossReopen(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{})
	ctx := context.Background()
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "alice", Password: []byte("pw-a"), Superuser: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "gone", Password: []byte("pw-g")}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteUser(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	b := e.auth(builtin.Config{})
	check(t, login(b, "alice", "", []byte("pw-a")), authn.Allow, true)
	check(t, login(b, "alice", "", []byte("pw-x")), authn.Deny, false)
	check(t, login(b, "gone", "", []byte("pw-g")), authn.Ignore, false)
}

// Changes written by another process show after Reload.
func TestReload(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{})
	b := e.auth(builtin.Config{})
	if err := a.AddUser(context.Background(), builtin.UserSpec{ID: "x", Password: []byte("pw")}); err != nil {
		t.Fatal(err)
	}
	check(t, login(b, "x", "", []byte("pw")), authn.Ignore, false)
	if err := b.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	check(t, login(b, "x", "", []byte("pw")), authn.Allow, false)
}

// A stored hash that cannot be parsed refuses the login (fail closed) and says so in the
// log without the password.
func TestMalformedStoredHash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.db.Users().Put(ctx, controldb.User{IDType: controldb.Username, ID: "broken", PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Users().Put(ctx, controldb.User{IDType: controldb.Username, ID: "plain", PasswordHash: "letmein"}); err != nil {
		t.Fatal(err)
	}
	a := e.auth(builtin.Config{})
	check(t, login(a, "broken", "", []byte("whatever-pw")), authn.Deny, false)
	// A plain-text "hash" is never compared as a password.
	check(t, login(a, "plain", "", []byte("letmein")), authn.Deny, false)
	if !strings.Contains(e.logs.String(), "malformed") {
		t.Fatalf("no log of the malformed hash:\n%s", e.logs.String())
	}
	e.noSecrets("whatever-pw")
}

// A CONNECT whose context ends while waiting for a hashing slot is refused as server busy.
func TestCancelledContext(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{})
	if err := a.AddUser(context.Background(), builtin.UserSpec{ID: "u", Password: []byte("pw")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := a.Authenticate(ctx, &clientinfo.Info{Username: "u"}, &authn.Credentials{Username: "u", Password: []byte("pw")})
	if res.Outcome != authn.Deny || res.DenyReason() != packet.ServerBusy {
		t.Fatalf("result %v %v (%s)", res.Outcome, res.DenyReason(), res.Detail)
	}
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "v", Password: []byte("pw")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddUser with a cancelled context: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  builtin.Config
		ok   bool
	}{
		{"zero", builtin.Config{}, true},
		{"clientid", builtin.Config{UserIDType: controldb.ClientID}, true},
		{"bad id type", builtin.Config{UserIDType: "email"}, false},
		{"weak hash", builtin.Config{PasswordHash: password.Params{Algorithm: password.Bcrypt, Cost: 8}}, false},
		{"sha256 for new users", builtin.Config{PasswordHash: password.Params{Algorithm: password.SHA256}}, false},
		{"bad bootstrap type", builtin.Config{BootstrapType: "yaml"}, false},
		{"hash bootstrap without algorithm", builtin.Config{BootstrapType: builtin.BootstrapHash}, false},
		{"hash bootstrap argon2id", builtin.Config{BootstrapType: builtin.BootstrapHash, BootstrapHashAlgorithm: password.Params{Algorithm: password.Argon2id}}, false},
		{"hash bootstrap pbkdf2 without iterations", builtin.Config{BootstrapType: builtin.BootstrapHash, BootstrapHashAlgorithm: password.Params{Algorithm: password.PBKDF2SHA256}}, false},
		{"hash bootstrap sha256", builtin.Config{BootstrapType: builtin.BootstrapHash, BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA256}}, true},
		{"scram iterations too few", builtin.Config{SCRAM: true, SCRAMIterations: 1000}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	e := newEnv(t)
	if _, err := builtin.New(context.Background(), e.db, e.hasher, builtin.Config{UserIDType: "email"}, nil); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	if _, err := builtin.New(context.Background(), nil, e.hasher, builtin.Config{}, nil); err == nil {
		t.Fatal("New accepted a nil database")
	}
}

// With SCRAM on, users get SCRAM credentials for the enhanced authentication methods, and
// the database still never holds the password.
func TestSCRAM(t *testing.T) {
	e := newEnv(t)
	a := e.auth(builtin.Config{SCRAM: true})
	ctx := context.Background()
	const pw = "scram-secret-password"
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "alice", Password: []byte(pw), Superuser: true}); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.User("alice"); !u.HasSCRAM {
		t.Fatal("no SCRAM credentials")
	}
	for _, h := range []scram.Hash{scram.SHA256, scram.SHA512} {
		m, err := scram.New(scram.Config{Hash: h}, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		gen := xscram.SHA256
		if h == scram.SHA512 {
			gen = xscram.SHA512
		}
		for _, tc := range []struct {
			pw   string
			want authn.Outcome
		}{{pw, authn.Allow}, {pw + "x", authn.Deny}} {
			cl, _ := gen.NewClient("alice", tc.pw, "")
			res := scramLogin(t, m, "alice", cl)
			if res.Outcome != tc.want || (tc.want == authn.Allow && !res.Superuser) {
				t.Fatalf("%s with %q: %+v", h.Method(), tc.pw, res)
			}
		}
	}
	// Password login still works for the same user.
	check(t, login(a, "alice", "", []byte(pw)), authn.Allow, true)
	// A password change replaces the SCRAM credentials too.
	if err := a.UpdateUser(ctx, "alice", builtin.UserUpdate{Password: []byte("new-password")}); err != nil {
		t.Fatal(err)
	}
	m, _ := scram.New(scram.Config{Hash: scram.SHA256}, a, nil)
	cl, _ := xscram.SHA256.NewClient("alice", pw, "")
	if res := scramLogin(t, m, "alice", cl); res.Outcome != authn.Deny {
		t.Fatalf("old password after change: %+v", res)
	}

	// Without SCRAM configured, a user has no SCRAM credentials: SCRAM refuses it.
	b := e.auth(builtin.Config{UserIDType: controldb.ClientID})
	if err := b.AddUser(ctx, builtin.UserSpec{ID: "dev", Password: []byte(pw)}); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := b.LookupSCRAM(ctx, scram.SHA256, "dev"); found {
		t.Fatal("SCRAM credentials without SCRAM configured")
	}

	// The password is in no file of the data directory (database, WAL, anything).
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(e.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(path)
		for _, s := range []string{pw, "new-password"} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains the password %q", path, s)
			}
		}
		return nil
	})
	e.noSecrets(pw, "new-password")
}

func scramLogin(t *testing.T, m *scram.Mechanism, user string, cl *xscram.Client) authn.Result {
	t.Helper()
	ctx := context.Background()
	conv, err := m.Begin(ctx, &clientinfo.Info{Username: user})
	if err != nil {
		t.Fatal(err)
	}
	cc := cl.NewConversation()
	c1, _ := cc.Step("")
	s1, done, res := conv.Step(ctx, []byte(c1))
	if done {
		return res
	}
	c2, err := cc.Step(string(s1))
	if err != nil {
		t.Fatal(err)
	}
	_, _, res = conv.Step(ctx, []byte(c2))
	return res
}
