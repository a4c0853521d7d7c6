package ldapauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/ldap"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// passwords of the seeded users, to check that no user name reaches another's entry.
var passwords = []string{"alice-pw", "root-pw", "x-pw", "star-pw"}

// seed starts a server with alice, root (a superuser), "*" (a user whose name is a
// wildcard) and uid=a under ou=x,ou=users, the entry a DN built without escaping from
// the user name "a,ou=x" would name.
func seed(t *testing.T, pki *testsvc.PKI) *testsvc.Slapd {
	t.Helper()
	s := testsvc.StartSlapd(t, pki)
	s.AddUser(t, "alice", "alice-pw", false, nil, nil, nil)
	s.AddUser(t, "root", "root-pw", true, nil, nil, nil)
	s.AddUser(t, "*", "star-pw", false, nil, nil, nil)
	c := s.Conn(t)
	defer c.Close()
	add := func(dn string, attrs map[string][]string) {
		t.Helper()
		req := goldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			req.Attribute(k, v)
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("add %s: %v", dn, err)
		}
	}
	add("ou=x,"+s.UsersDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"x"}})
	add("uid=a,ou=x,"+s.UsersDN, map[string][]string{"objectClass": {"inetOrgPerson", "mqttUser"},
		"uid": {"a"}, "cn": {"a"}, "sn": {"a"}, "userPassword": {"x-pw"}})
	return s
}

func backend(s *testsvc.Slapd) ldap.Config {
	return ldap.Config{Server: s.Addr, BindDN: s.ServiceDN, BindPassword: "file:" + s.ServicePasswordFile, BaseDN: s.UsersDN}
}

// logBuffer collects the authenticator's log to check that it never holds a password.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newAuth(t *testing.T, cfg Config) (*Authenticator, *logBuffer) {
	t.Helper()
	h, err := password.NewHasher(password.Params{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	a, err := New(cfg, h, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a, logs
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

func noPasswordIn(t *testing.T, logs *logBuffer, res authn.Result) {
	t.Helper()
	for _, pw := range passwords {
		if strings.Contains(res.Detail, pw) || strings.Contains(logs.String(), pw) {
			t.Fatalf("a password leaks into the detail or the log:\n%s\n%s", res.Detail, logs.String())
		}
	}
}

// TestBind runs the bind method with the user found both ways.
func TestBind(t *testing.T) {
	s := seed(t, nil)
	byDN := Config{Backend: backend(s), BindDN: "uid=${username}," + s.UsersDN}
	byFilter := Config{Backend: backend(s), Filter: "(&(objectClass=mqttUser)(uid=${username}))"}
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
		{"unknown user", "mallory", ptr("alice-pw"), authn.Deny, packet.BadUserNameOrPassword, false},
		{"no user name", "", ptr("alice-pw"), authn.Deny, packet.BadUserNameOrPassword, false},
		{"no password", "alice", nil, authn.Ignore, 0, false},
		{"empty password", "alice", ptr(""), authn.Deny, packet.BadUserNameOrPassword, false},
		{"empty password, superuser", "root", ptr(""), authn.Deny, packet.BadUserNameOrPassword, false},
	}
	for _, cfg := range []struct {
		name string
		cfg  Config
	}{{"bind_dn", byDN}, {"filter", byFilter}} {
		a, logs := newAuth(t, cfg.cfg)
		for _, tt := range tests {
			t.Run(cfg.name+"/"+tt.name, func(t *testing.T) {
				res := login(a, tt.user, tt.pw)
				check(t, res, tt.want, tt.reason, tt.superuser)
				noPasswordIn(t, logs, res)
			})
		}
	}
}

// TestEmptyPasswordAttack: the test directory accepts an unauthenticated bind (a DN with
// an empty password) as success, which is what a naive authenticator would take for a
// right password. The authenticator refuses the empty password before binding.
func TestEmptyPasswordAttack(t *testing.T) {
	s := seed(t, nil)
	c, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.UnauthenticatedBind(s.UserDN("root")); err != nil {
		t.Fatalf("the test server should accept an unauthenticated bind, to make the attack real: %v", err)
	}
	for _, cfg := range []Config{
		{Backend: backend(s), BindDN: "uid=${username}," + s.UsersDN},
		{Backend: backend(s), Filter: "(uid=${username})"},
		{Backend: backend(s), Filter: "(uid=${username})", Method: MethodHash},
	} {
		a, _ := newAuth(t, cfg)
		res := login(a, "root", ptr(""))
		check(t, res, authn.Deny, packet.BadUserNameOrPassword, false)
		if !strings.Contains(res.Detail, "empty password") {
			t.Errorf("detail %q", res.Detail)
		}
	}
}

// TestInjection: user names that are filter or DN syntax find no entry (and do not widen
// a search to several entries), whatever password comes with them.
func TestInjection(t *testing.T) {
	s := seed(t, nil)
	users := []string{
		"*", "*)(uid=*", "admin)(|(uid=*", "alice)(uid=*", "*)(|(objectClass=*", `\2a`, `\2A`,
		"a,ou=x", "uid=a,ou=x", "uid=a,ou=users", "alice,ou=users", "alice+cn=alice", "alice;x", "alice\\", "(alice)",
		"#alice", "${username}", "😀\u202e日本語", "ǅ\u0301\u05d0",
	}
	configs := []struct {
		name string
		cfg  Config
	}{
		{"bind_dn", Config{Backend: backend(s), BindDN: "uid=${username}," + s.UsersDN}},
		{"filter", Config{Backend: backend(s), Filter: "(&(objectClass=mqttUser)(uid=${username}))"}},
		{"filter hash", Config{Backend: backend(s), Filter: "(uid=${username})", Method: MethodHash}},
	}
	for _, c := range configs {
		a, logs := newAuth(t, c.cfg)
		for _, user := range users {
			for _, pw := range passwords {
				if user == "*" && (pw == "star-pw" || c.cfg.Method == MethodHash) {
					// The user really called "*": with its own password, or with a
					// clear-text userPassword that method hash refuses.
					continue
				}
				res := login(a, user, ptr(pw))
				if res.Outcome != authn.Deny || res.DenyReason() != packet.BadUserNameOrPassword {
					t.Errorf("%s: user %q with %s: %v %v (%s)", c.name, user, pw, res.Outcome, res.DenyReason(), res.Detail)
				}
				if strings.Contains(res.Detail, "more than one") {
					t.Errorf("%s: user %q widened the search: %s", c.name, user, res.Detail)
				}
				noPasswordIn(t, logs, res)
			}
		}
	}
	// The user named "*" logs in as itself, and only with its own password.
	a, _ := newAuth(t, configs[1].cfg)
	check(t, login(a, "*", ptr("star-pw")), authn.Allow, 0, false)
	b, _ := newAuth(t, configs[0].cfg)
	check(t, login(b, "*", ptr("star-pw")), authn.Allow, 0, false)
}

// fullWidth spells an ASCII name with the full-width forms (U+FF01...), which RFC 4518's
// compatibility normalization folds to ASCII.
func fullWidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		if '!' <= r && r <= '~' {
			r += 'ａ' - 'a'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestDirectoryEquivalence: uid uses caseIgnoreMatch with RFC 4518 string preparation
// (case folding, insignificant spaces, Unicode compatibility forms), so the directory
// finds alice's entry for "ALICE", " alice", "alice " and "ａｌｉｃｅ". The authenticator
// compares the entry's uid with the user name byte for byte and refuses those names as
// no such user, even with alice's right password, with both ways of naming the entry and
// both methods; "alice" still logs in. A name stored with capitals logs in only as
// stored.
func TestDirectoryEquivalence(t *testing.T) {
	s := seed(t, nil)
	s.AddUser(t, "Hashed", "{SSHA256}"+b64(sum(sha256.New, "hashed-pw", "s4lt")), false, nil, nil, nil)
	s.AddUser(t, "Bob", "bob-pw", false, nil, nil, nil)
	byDN := "uid=${username}," + s.UsersDN
	configs := []struct {
		name       string
		cfg        Config
		user, pw   string // who logs in
		foldedOnly []string
	}{
		{"bind_dn", Config{Backend: backend(s), BindDN: byDN}, "alice", "alice-pw", nil},
		{"filter", Config{Backend: backend(s), Filter: "(&(objectClass=mqttUser)(uid=${username}))"}, "alice", "alice-pw", nil},
		{"filter or", Config{Backend: backend(s), Filter: "(|(uid=${username})(cn=${username}))"}, "alice", "alice-pw", nil},
		{"filter hash", Config{Backend: backend(s), Filter: "(uid=${username})", Method: MethodHash}, "Hashed", "hashed-pw", nil},
		{"bind_dn hash", Config{Backend: backend(s), BindDN: byDN, Method: MethodHash}, "Hashed", "hashed-pw", nil},
		{"stored with a capital", Config{Backend: backend(s), Filter: "(uid=${username})"}, "Bob", "bob-pw", []string{"bob"}},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			a, logs := newAuth(t, c.cfg)
			check(t, login(a, c.user, ptr(c.pw)), authn.Allow, 0, false)
			folded := append([]string{
				strings.ToUpper(c.user), strings.ToLower(c.user), " " + c.user, c.user + " ", "  " + c.user + "  ",
				fullWidth(c.user),
			}, c.foldedOnly...)
			for _, user := range folded {
				if user == c.user {
					continue
				}
				for _, pw := range append([]string{c.pw}, passwords...) {
					res := login(a, user, ptr(pw))
					check(t, res, authn.Deny, packet.BadUserNameOrPassword, false)
					if pw == c.pw && !strings.Contains(res.Detail, "matching rules") {
						t.Errorf("%q with the right password: %s, want the entry refused for matching only under the directory's rules", user, res.Detail)
					}
					if strings.Contains(res.Detail, pw) {
						t.Errorf("%q: the password is in the detail: %s", user, res.Detail)
					}
				}
			}
			noPasswordIn(t, logs, authn.Result{})
			if strings.Contains(logs.String(), "hashed-pw") || strings.Contains(logs.String(), "bob-pw") {
				t.Errorf("a password leaks into the log:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), "only under the directory's matching rules") {
				t.Errorf("the refusal is not logged:\n%s", logs.String())
			}
		})
	}
}

func sum(h func() hash.Hash, pw, salt string) []byte {
	d := h()
	d.Write([]byte(pw + salt))
	return append(d.Sum(nil), salt...)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestHash(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	h, err := password.NewHasher(password.Params{Algorithm: password.Bcrypt, Cost: 4, AllowWeak: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	bcryptHash, err := h.Hash(context.Background(), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := password.NewHasher(password.Params{Algorithm: password.Argon2id, MemoryKiB: 64, Time: 1, AllowWeak: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	argonHash, err := h2.Hash(context.Background(), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{
		"ssha256":   "{SSHA256}" + b64(sum(sha256.New, "pw", "s4lt-s4lt")),
		"ssha512":   "{SSHA512}" + b64(sum(sha512.New, "pw", "salt")),
		"lower":     "{ssha512}" + b64(sum(sha512.New, "pw", "salt")),
		"sha256":    "{SHA256}" + b64(sum(sha256.New, "pw", "")),
		"sha512":    "{SHA512}" + b64(sum(sha512.New, "pw", "")),
		"bcrypt":    bcryptHash,
		"argon2":    "{ARGON2}" + argonHash,
		"ssha":      "{SSHA}" + b64([]byte("0123456789abcdefghij-salt")),
		"sha":       "{SHA}" + b64([]byte("0123456789abcdefghij")),
		"md5":       "{MD5}" + b64([]byte("0123456789abcdef")),
		"smd5":      "{SMD5}" + b64([]byte("0123456789abcdef-salt")),
		"crypt":     "{CRYPT}$6$salt$abc",
		"argon2i":   "{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"clear":     "pw",
		"short":     "{SSHA256}" + b64([]byte("short")),
		"malformed": "$argon2id$nonsense",
		// Two values: both are compared, and a refused one fails the user.
		"mixed": "",
	}
	for uid, v := range stored {
		s.AddUser(t, uid, v, uid == "ssha512", nil, nil, nil)
	}
	// A second value of userPassword for "mixed": one accepted, one refused.
	c := s.Conn(t)
	mod := goldap.NewModifyRequest(s.UserDN("mixed"), nil)
	mod.Add("userPassword", []string{stored["ssha256"], stored["ssha"]})
	if err := c.Modify(mod); err != nil {
		t.Fatal(err)
	}
	c.Close()

	for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
		a, logs := newAuth(t, Config{Backend: backend(s), Method: MethodHash, Filter: "(uid=${username})", OnError: onError})
		failed := authn.Deny
		if onError == OnErrorIgnore {
			failed = authn.Ignore
		}
		tests := []struct {
			user      string
			pw        string
			want      authn.Outcome
			reason    packet.ReasonCode
			superuser bool
			logs      string
		}{
			{"ssha256", "pw", authn.Allow, 0, false, ""},
			{"ssha256", "pw2", authn.Deny, packet.BadUserNameOrPassword, false, ""},
			{"ssha512", "pw", authn.Allow, 0, true, ""},
			{"ssha512", "wrong", authn.Deny, packet.BadUserNameOrPassword, false, ""},
			{"lower", "pw", authn.Allow, 0, false, ""},
			{"sha256", "pw", authn.Allow, 0, false, ""},
			{"sha256", "p", authn.Deny, packet.BadUserNameOrPassword, false, ""},
			{"sha512", "pw", authn.Allow, 0, false, ""},
			{"bcrypt", "pw", authn.Allow, 0, false, ""},
			{"bcrypt", "wrong", authn.Deny, packet.BadUserNameOrPassword, false, ""},
			{"argon2", "pw", authn.Allow, 0, false, ""},
			{"argon2", "wrong", authn.Deny, packet.BadUserNameOrPassword, false, ""},
			{"ssha", "pw", failed, packet.ServerUnavailable, false, "{SSHA} (salted SHA-1)"},
			{"sha", "pw", failed, packet.ServerUnavailable, false, "{SHA}"},
			{"md5", "pw", failed, packet.ServerUnavailable, false, "{MD5}"},
			{"smd5", "pw", failed, packet.ServerUnavailable, false, "{SMD5}"},
			{"crypt", "pw", failed, packet.ServerUnavailable, false, "{CRYPT}"},
			{"argon2i", "pw", failed, packet.ServerUnavailable, false, "{ARGON2}"},
			{"clear", "pw", failed, packet.ServerUnavailable, false, "clear text"},
			{"short", "pw", failed, packet.ServerUnavailable, false, "digest"},
			{"malformed", "pw", failed, packet.ServerUnavailable, false, "malformed"},
			{"mixed", "pw", failed, packet.ServerUnavailable, false, "{SSHA}"},
			{"nobody", "pw", authn.Deny, packet.BadUserNameOrPassword, false, ""},
		}
		for _, tt := range tests {
			t.Run(onError+"/"+tt.user+"/"+tt.pw, func(t *testing.T) {
				res := login(a, tt.user, ptr(tt.pw))
				check(t, res, tt.want, tt.reason, tt.superuser)
				if tt.logs != "" && !strings.Contains(logs.String(), tt.logs) {
					t.Errorf("log does not say %q:\n%s", tt.logs, logs.String())
				}
			})
		}
	}

	// bind_dn names the entry; the hash is read from it.
	a, _ := newAuth(t, Config{Backend: backend(s), Method: MethodHash, BindDN: "uid=${username}," + s.UsersDN})
	check(t, login(a, "ssha512", ptr("pw")), authn.Allow, 0, true)
	check(t, login(a, "ssha512", ptr("x")), authn.Deny, packet.BadUserNameOrPassword, false)
	check(t, login(a, "nobody", ptr("pw")), authn.Deny, packet.BadUserNameOrPassword, false)

	// An anonymous pool may not read userPassword: an error, not a wrong password.
	anon := backend(s)
	anon.BindDN, anon.BindPassword = "", ""
	b, logs := newAuth(t, Config{Backend: anon, Method: MethodHash, Filter: "(uid=${username})"})
	check(t, login(b, "ssha256", ptr("pw")), authn.Deny, packet.ServerUnavailable, false)
	if !strings.Contains(logs.String(), "may not read") {
		t.Errorf("log: %s", logs.String())
	}
}

// TestDeleteUser: nothing is cached; a deleted user's next CONNECT is refused.
func TestDeleteUser(t *testing.T) {
	s := seed(t, nil)
	a, _ := newAuth(t, Config{Backend: backend(s), Filter: "(uid=${username})"})
	check(t, login(a, "alice", ptr("alice-pw")), authn.Allow, 0, false)
	s.DeleteUser(t, "alice")
	check(t, login(a, "alice", ptr("alice-pw")), authn.Deny, packet.BadUserNameOrPassword, false)
}

func TestTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	s := seed(t, pki)
	ldaps := backend(s)
	ldaps.Server, ldaps.TLS = s.LDAPSAddr, &tlsconf.ClientOptions{CACertFile: pki.CAFile}
	a, _ := newAuth(t, Config{Backend: ldaps, BindDN: "uid=${username}," + s.UsersDN})
	check(t, login(a, "root", ptr("root-pw")), authn.Allow, 0, true)

	startTLS := backend(s)
	startTLS.TLS, startTLS.StartTLS = &tlsconf.ClientOptions{CACertFile: pki.CAFile}, true
	b, _ := newAuth(t, Config{Backend: startTLS, Filter: "(uid=${username})"})
	check(t, login(b, "alice", ptr("alice-pw")), authn.Allow, 0, false)

	wrong := ldaps
	wrong.TLS = &tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}
	c, _ := newAuth(t, Config{Backend: wrong, BindDN: "uid=${username}," + s.UsersDN})
	res := login(c, "alice", ptr("alice-pw"))
	check(t, res, authn.Deny, packet.ServerUnavailable, false)
	if !strings.Contains(res.Detail, "certificate") {
		t.Errorf("detail %q does not mention the certificate", res.Detail)
	}
}

// TestServerDown: the directory stops; the client is refused with Server unavailable (or
// ignored), the next one at once by the back-off, and all is well once it is back.
func TestServerDown(t *testing.T) {
	s := seed(t, nil)
	for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
		t.Run(onError, func(t *testing.T) {
			a, logs := newAuth(t, Config{Backend: backend(s), Filter: "(uid=${username})", OnError: onError})
			check(t, login(a, "alice", ptr("alice-pw")), authn.Allow, 0, false)
			s.Stop()
			want := authn.Deny
			if onError == OnErrorIgnore {
				want = authn.Ignore
			}
			check(t, login(a, "alice", ptr("alice-pw")), want, packet.ServerUnavailable, false)
			// The next question meets the back-off (on a machine so loaded that the
			// first back-off ran out in between, a later one: each failed probe doubles
			// it).
			var res authn.Result
			for range 4 {
				res = login(a, "alice", ptr("alice-pw"))
				check(t, res, want, packet.ServerUnavailable, false)
				if strings.Contains(res.Detail, "waiting before the next attempt") {
					break
				}
			}
			if !strings.Contains(res.Detail, "waiting before the next attempt") {
				t.Errorf("next question: %s, want the back-off", res.Detail)
			}
			noPasswordIn(t, logs, res)
			s.Restart(t)
			for range 100 {
				if res = login(a, "alice", ptr("alice-pw")); res.Outcome == authn.Allow {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			check(t, res, authn.Allow, 0, false)
		})
	}
}

// TestBusy: with the only connection taken by a question the server never answers,
// the next client is refused with Server busy (or ignored) instead of queueing.
func TestBusy(t *testing.T) {
	addr, got := silentServer(t)
	for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
		t.Run(onError, func(t *testing.T) {
			a, _ := newAuth(t, Config{
				Backend: ldap.Config{Server: addr, BaseDN: "dc=x", PoolSize: 1,
					QueryTimeout: 20 * time.Second, AcquireTimeout: 50 * time.Millisecond},
				Filter:  "(uid=${username})",
				OnError: onError,
			})
			for len(got) > 0 {
				<-got // what the previous run sent
			}
			ctx, cancel := context.WithCancel(context.Background())
			first := make(chan authn.Result, 1)
			go func() {
				first <- a.Authenticate(ctx, &clientinfo.Info{Username: "alice"},
					&authn.Credentials{Username: "alice", Password: []byte("alice-pw")})
			}()
			<-got // the first question's search reached the server and holds the connection
			want := authn.Deny
			if onError == OnErrorIgnore {
				want = authn.Ignore
			}
			res := login(a, "bob", ptr("bob-pw"))
			check(t, res, want, packet.ServerBusy, false)
			cancel()
			<-first
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Backend: ldap.Config{Server: "127.0.0.1", BaseDN: "dc=example,dc=com"}, Filter: "(uid=${username})"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"bind_dn", func(c *Config) { c.Filter, c.BindDN = "", "uid=${username},dc=example,dc=com" }, ""},
		{"hash", func(c *Config) { c.Method, c.PasswordAttribute = "hash", "mqttPassword" }, ""},
		{"neither", func(c *Config) { c.Filter = "" }, "bind_dn or filter: required"},
		{"both", func(c *Config) { c.BindDN = "uid=${username},dc=x" }, "give one"},
		{"filter without base_dn", func(c *Config) { c.Backend.BaseDN = "" }, "base_dn"},
		{"filter without placeholder", func(c *Config) { c.Filter = "(uid=alice)" }, "no placeholder"},
		{"bind_dn without placeholder", func(c *Config) { c.Filter, c.BindDN = "", "uid=alice,dc=x" }, "no placeholder"},
		{"password placeholder", func(c *Config) { c.Filter = "(&(uid=${username})(userPassword=${password}))" }, "password"},
		{"placeholder in attribute", func(c *Config) { c.Filter = "(${username}=x)" }, "attribute description"},
		{"placeholder in dn type", func(c *Config) { c.Filter, c.BindDN = "", "${username}=x,dc=x" }, "attribute type"},
		{"bad filter", func(c *Config) { c.Filter = "(uid=${username}" }, "does not parse"},
		{"method", func(c *Config) { c.Method = "compare" }, "method"},
		{"password_attribute with bind", func(c *Config) { c.PasswordAttribute = "userPassword" }, "only used by method hash"},
		{"bad attribute", func(c *Config) { c.Method, c.PasswordAttribute = "hash", "user)(password" }, "password_attribute"},
		{"bad superuser attribute", func(c *Config) { c.IsSuperuserAttribute = "is superuser" }, "is_superuser_attribute"},
		{"on_error", func(c *Config) { c.OnError = "allow" }, "on_error"},
		{"plain to remote", func(c *Config) { c.Backend.Server = "ldap.example" }, "clear text"},
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

// silentServer listens on a loopback port, accepts connections, reads what they send
// and never answers. It returns the address and a channel that gets a value each time
// something was read.
func silentServer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	got := make(chan struct{}, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					select {
					case got <- struct{}{}:
					default:
					}
				}
			}()
		}
	}()
	return l.Addr().String(), got
}

// TestNewWith: authenticators on a shared pool use it (a filter searches under the pool's
// base DN), and their Close leaves it open.
func TestNewWith(t *testing.T) {
	s := seed(t, nil)
	pool, err := ldap.New(backend(s))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	h, err := password.NewHasher(password.Params{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	byFilter := Config{Filter: "(&(objectClass=mqttUser)(uid=${username}))"}
	if _, err := NewWith(byFilter, nil, h, nil); err == nil {
		t.Fatal("NewWith without a pool: no error")
	}
	noBase := backend(s)
	noBase.BaseDN = ""
	noBasePool, err := ldap.New(noBase)
	if err != nil {
		t.Fatal(err)
	}
	defer noBasePool.Close()
	if _, err := NewWith(byFilter, noBasePool, h, nil); err == nil || !strings.Contains(err.Error(), "base_dn") {
		t.Fatalf("filter on a pool without a base DN: %v, want a base_dn error", err)
	}
	a, err := NewWith(byFilter, pool, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWith(Config{BindDN: "uid=${username}," + s.UsersDN}, pool, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, login(a, "alice", ptr("alice-pw")), authn.Allow, 0, false)
	a.Close()
	check(t, login(b, "root", ptr("root-pw")), authn.Allow, 0, true)
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("the shared pool after Close: %v", err)
	}
}

// TestTooManyPasswordValues: an entry with more password values than are compared is a
// data error (fail closed), not a search through all of them.
func TestTooManyPasswordValues(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	dn := s.AddUser(t, "many", "{SSHA256}"+b64(sum(sha256.New, "pw-0", "s4lt")), false, nil, nil, nil)
	var extra []string
	for i := 1; i <= maxPasswordValues; i++ { // maxPasswordValues+1 values in all
		extra = append(extra, "{SSHA256}"+b64(sum(sha256.New, fmt.Sprintf("pw-%d", i), "s4lt")))
	}
	admin := s.Conn(t)
	mod := goldap.NewModifyRequest(dn, nil)
	mod.Add("userPassword", extra)
	if err := admin.Modify(mod); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	a, _ := newAuth(t, Config{Backend: backend(s), Filter: "(uid=${username})", Method: MethodHash})
	res := login(a, "many", ptr("pw-0"))
	if res.Outcome != authn.Deny || res.DenyReason() != packet.ServerUnavailable {
		t.Fatalf("%d password values: %v %v (%s), want Deny with Server unavailable", maxPasswordValues+1, res.Outcome, res.DenyReason(), res.Detail)
	}
}
