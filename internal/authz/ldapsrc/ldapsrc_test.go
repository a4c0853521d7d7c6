package ldapsrc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/ldap"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

const filter = "(&(objectClass=mqttUser)(uid=${username}))"

var (
	pub    = authz.Action{Kind: authz.ActPublish, QoS: 1}
	pubRet = authz.Action{Kind: authz.ActPublish, QoS: 0, Retain: true}
	sub    = authz.Action{Kind: authz.ActSubscribe, QoS: 1}
)

// seed starts a server with alice (rules in all three attributes), bob (an entry
// without rules), carl (an invalid topic filter), many (six values), and two entries
// named dup.
func seed(t *testing.T, pki *testsvc.PKI) *testsvc.Slapd {
	t.Helper()
	s := testsvc.StartSlapd(t, pki)
	s.AddUser(t, "alice", "alice-pw", false,
		[]string{"devices/${clientid}/telemetry", "eq raw/+"},
		[]string{"devices/${clientid}/commands", "$share/g1/jobs/#"},
		[]string{"shared/#"})
	s.AddUser(t, "bob", "bob-pw", false, nil, nil, nil)
	s.AddUser(t, "carl", "carl-pw", false, []string{"ok/topic", "a/#/b"}, nil, nil)
	s.AddUser(t, "many", "many-pw", false, []string{"a", "b", "c", "d"}, []string{"e", "f"}, nil)
	s.AddUser(t, "dup", "dup-pw", false, []string{"dup/1"}, nil, nil)
	c := s.Conn(t)
	defer c.Close()
	for _, req := range []*goldap.AddRequest{
		func() *goldap.AddRequest {
			r := goldap.NewAddRequest("ou=other,"+s.UsersDN, nil)
			r.Attribute("objectClass", []string{"organizationalUnit"})
			r.Attribute("ou", []string{"other"})
			return r
		}(),
		func() *goldap.AddRequest {
			r := goldap.NewAddRequest("uid=dup,ou=other,"+s.UsersDN, nil)
			r.Attribute("objectClass", []string{"inetOrgPerson", "mqttUser"})
			r.Attribute("uid", []string{"dup"})
			r.Attribute("cn", []string{"dup"})
			r.Attribute("sn", []string{"dup"})
			r.Attribute("mqttPubSubTopic", []string{"#"})
			return r
		}(),
	} {
		if err := c.Add(req); err != nil {
			t.Fatalf("add %s: %v", req.DN, err)
		}
	}
	return s
}

func backend(s *testsvc.Slapd) ldap.Config {
	return ldap.Config{Server: s.Addr, BindDN: s.ServiceDN, BindPassword: "file:" + s.ServicePasswordFile, BaseDN: s.UsersDN}
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	src, err := New(cfg, nil)
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
	s := seed(t, nil)
	src := newSource(t, Config{Backend: backend(s), Filter: filter})
	tests := []struct {
		name  string
		user  string
		a     authz.Action
		topic string
		want  authz.Decision
	}{
		{"publish to own telemetry", "alice", pub, "devices/dev1/telemetry", authz.Allow},
		{"retained publish", "alice", pubRet, "devices/dev1/telemetry", authz.Allow},
		{"publish to another device's telemetry", "alice", pub, "devices/dev2/telemetry", authz.NoMatch},
		{"subscribe to a publish topic", "alice", sub, "devices/dev1/telemetry", authz.NoMatch},
		{"subscribe to own commands", "alice", sub, "devices/dev1/commands", authz.Allow},
		{"publish to a subscribe topic", "alice", pub, "devices/dev1/commands", authz.NoMatch},
		{"eq topic: the filter itself", "alice", pub, "raw/+", authz.Allow},
		{"eq topic: not what it matches", "alice", pub, "raw/x", authz.NoMatch},
		{"shared subscription of its group", "alice", authz.Action{Kind: authz.ActSubscribe, Group: "g1"}, "jobs/a", authz.Allow},
		{"shared subscription of another group", "alice", authz.Action{Kind: authz.ActSubscribe, Group: "g2"}, "jobs/a", authz.NoMatch},
		{"all: publish", "alice", pub, "shared/x/y", authz.Allow},
		{"all: subscribe", "alice", sub, "shared/#", authz.Allow},
		{"all: subscribe wider", "alice", sub, "#", authz.NoMatch},
		{"entry without rules", "bob", pub, "shared/x", authz.NoMatch},
		{"unknown user", "mallory", pub, "shared/x", authz.NoMatch},
		{"no user name", "", pub, "shared/x", authz.NoMatch},
		{"injection star", "*", sub, "shared/#", authz.NoMatch},
		{"injection close and reopen", "*)(uid=*", sub, "shared/#", authz.NoMatch},
		{"injection or", "admin)(|(uid=*", sub, "shared/#", authz.NoMatch},
		{"injection escaped star", `\2a`, sub, "shared/#", authz.NoMatch},
		{"injection dn", "uid=alice,ou=users", sub, "shared/#", authz.NoMatch},
		{"injection unicode", "😀\u202eali\u0301ce", sub, "shared/#", authz.NoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(src, tt.user, tt.a, tt.topic); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDirectoryEquivalence: uid's caseIgnoreMatch (RFC 4518 preparation) finds alice's
// entry for "ALICE", " alice", "alice " and "ａｌｉｃｅ"; the source compares the entry's
// uid with the user name byte for byte, so those names get none of alice's rules (no
// match: the next source decides), while "alice" gets them. With "|", one branch holding
// exactly is enough.
func TestDirectoryEquivalence(t *testing.T) {
	s := seed(t, nil)
	for _, f := range []string{filter, "(|(uid=${username})(cn=${username}))"} {
		t.Run(f, func(t *testing.T) {
			logs := &syncBuffer{}
			src, err := New(Config{Backend: backend(s), Filter: f},
				slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(src.Close)
			for _, a := range []authz.Action{pub, sub} {
				if got := decide(src, "alice", a, "shared/x"); got != authz.Allow {
					t.Fatalf("alice, %v: %v, want allow", a.Kind, got)
				}
			}
			for _, user := range []string{"ALICE", "Alice", " alice", "alice ", "  alice  ", "ａｌｉｃｅ", "ＡＬＩＣＥ"} {
				for _, tc := range []struct {
					a     authz.Action
					topic string
				}{{pub, "shared/x"}, {sub, "shared/#"}, {pub, "devices/dev1/telemetry"}, {sub, "devices/dev1/commands"}} {
					if got := decide(src, user, tc.a, tc.topic); got != authz.NoMatch {
						t.Errorf("%q, %v %s: %v, want no match", user, tc.a.Kind, tc.topic, got)
					}
				}
			}
			// The entry was found and refused, not missed.
			if n := strings.Count(logs.String(), "only under the directory's matching rules"); n < 7 {
				t.Errorf("%d refusals logged, want one per folded name at least:\n%s", n, logs.String())
			}
		})
	}
}

func TestFailClosed(t *testing.T) {
	s := seed(t, nil)
	for _, onError := range []string{OnErrorDeny, OnErrorIgnore} {
		src := newSource(t, Config{Backend: backend(s), Filter: filter, MaxRules: 5, OnError: onError})
		want := authz.Deny
		if onError == OnErrorIgnore {
			want = authz.NoMatch
		}
		for _, tt := range []struct {
			user, why string
			a         authz.Action
			topic     string
		}{
			{"carl", "an invalid topic filter fails the valid ones too", pub, "ok/topic"},
			{"many", "more values than max_rules", pub, "a"},
			{"dup", "the filter matches two entries", pub, "dup/1"},
		} {
			if got := decide(src, tt.user, tt.a, tt.topic); got != want {
				t.Errorf("on_error %s, %s (%s): %v, want %v", onError, tt.user, tt.why, got, want)
			}
		}
		// A user whose entry is fine (five values) is not affected.
		if got := decide(src, "alice", pub, "shared/x"); got != authz.Allow {
			t.Errorf("alice: %v", got)
		}
	}
}

// TestChangesApplyToNextClient: rules are read once per session; a value removed
// afterwards applies to the next ForClient, and a deleted entry leaves no rules.
func TestChangesApplyToNextClient(t *testing.T) {
	s := seed(t, nil)
	src := newSource(t, Config{Backend: backend(s), Filter: filter})
	ctx := context.Background()
	info := &clientinfo.Info{ClientID: "dev1", Username: "alice"}
	old := src.ForClient(info)
	if got := old.Authorize(ctx, sub, "shared/x"); got != authz.Allow {
		t.Fatalf("before: %v", got)
	}
	c := s.Conn(t)
	mod := goldap.NewModifyRequest(s.UserDN("alice"), nil)
	mod.Delete("mqttPubSubTopic", []string{"shared/#"})
	if err := c.Modify(mod); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := old.Authorize(ctx, sub, "shared/x"); got != authz.Allow {
		t.Errorf("existing session: %v, want allow (rules read once per session)", got)
	}
	if got := src.ForClient(info).Authorize(ctx, sub, "shared/x"); got != authz.NoMatch {
		t.Errorf("next session: %v, want nomatch after the value was removed", got)
	}
	s.DeleteUser(t, "alice")
	if got := src.ForClient(info).Authorize(ctx, sub, "devices/dev1/commands"); got != authz.NoMatch {
		t.Errorf("deleted entry: %v, want nomatch", got)
	}
}

func TestServerDown(t *testing.T) {
	s := seed(t, nil)
	for _, tt := range []struct {
		onError string
		want    authz.Decision
	}{{"", authz.Deny}, {OnErrorIgnore, authz.NoMatch}} {
		t.Run(fmt.Sprintf("on_error %q", tt.onError), func(t *testing.T) {
			src := newSource(t, Config{Backend: backend(s), Filter: filter, OnError: tt.onError})
			if got := decide(src, "alice", pub, "shared/x"); got != authz.Allow {
				t.Fatalf("up: %v", got)
			}
			s.Stop()
			for range 2 { // the second question meets the back-off
				if got := decide(src, "alice", pub, "shared/x"); got != tt.want {
					t.Errorf("down: %v, want %v", got, tt.want)
				}
			}
			if src.Health().Up {
				t.Errorf("health while down: %+v", src.Health())
			}
			s.Restart(t)
			got := authz.NoMatch
			for range 100 {
				if got = decide(src, "alice", pub, "shared/x"); got == authz.Allow {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got != authz.Allow {
				t.Fatalf("after restart: %v", got)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	s := seed(t, pki)
	b := backend(s)
	b.Server, b.TLS = s.LDAPSAddr, &tlsconf.ClientOptions{CACertFile: pki.CAFile}
	src := newSource(t, Config{Backend: b, Filter: filter})
	if got := decide(src, "alice", pub, "shared/x"); got != authz.Allow {
		t.Errorf("ldaps: %v", got)
	}
	b.TLS = &tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}
	bad := newSource(t, Config{Backend: b, Filter: filter})
	if got := decide(bad, "alice", pub, "shared/x"); got != authz.Deny {
		t.Errorf("ldaps with the wrong CA: %v, want deny", got)
	}
}

func TestCustomAttributes(t *testing.T) {
	s := seed(t, nil)
	// The both-ways topics for publish only, the publish topics for subscribe only, and
	// an attribute alice has no value of for both.
	src := newSource(t, Config{Backend: backend(s), Filter: "(uid=${username})",
		PublishAttribute: "mqttPubSubTopic", SubscribeAttribute: "mqttPublishTopic", AllAttribute: "description"})
	for _, tt := range []struct {
		a     authz.Action
		topic string
		want  authz.Decision
	}{
		{sub, "devices/dev1/telemetry", authz.Allow},
		{pub, "devices/dev1/telemetry", authz.NoMatch},
		{pub, "shared/x", authz.Allow},
		{sub, "shared/x", authz.NoMatch},
		{sub, "devices/dev1/commands", authz.NoMatch},
	} {
		if got := decide(src, "alice", tt.a, tt.topic); got != tt.want {
			t.Errorf("%v %s: %v, want %v", tt.a, tt.topic, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	b := ldap.Config{Server: "127.0.0.1", BaseDN: "dc=example,dc=com"}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Backend: b, Filter: filter}, ""},
		{"no filter", Config{Backend: b}, "filter: required"},
		{"no placeholder", Config{Backend: b, Filter: "(uid=alice)"}, "no placeholder"},
		{"password refused", Config{Backend: b, Filter: "(userPassword=${password})"}, "password"},
		{"placeholder in attribute", Config{Backend: b, Filter: "(${username}=x)"}, "attribute description"},
		{"bad filter", Config{Backend: b, Filter: "(uid=${username}"}, "does not parse"},
		{"no base_dn", Config{Backend: ldap.Config{Server: "127.0.0.1"}, Filter: filter}, "base_dn"},
		{"bad attribute", Config{Backend: b, Filter: filter, AllAttribute: "a b"}, "all_attribute"},
		{"on_error", Config{Backend: b, Filter: filter, OnError: "allow"}, "on_error"},
		{"max_rules", Config{Backend: b, Filter: filter, MaxRules: -1}, "max_rules"},
		{"max_rules above the bound", Config{Backend: b, Filter: filter, MaxRules: MaxMaxRules + 1}, "max_rules"},
		{"plain to remote", Config{Backend: ldap.Config{Server: "ldap.example", BaseDN: "dc=x"}, Filter: filter}, "clear text"},
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

// TestNewWith: sources on a shared pool search under its base DN, and their Close leaves
// it open.
func TestNewWith(t *testing.T) {
	s := seed(t, nil)
	pool, err := ldap.New(backend(s))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := NewWith(Config{Filter: filter}, nil, nil); err == nil {
		t.Fatal("NewWith without a pool: no error")
	}
	noBase := backend(s)
	noBase.BaseDN = ""
	noBasePool, err := ldap.New(noBase)
	if err != nil {
		t.Fatal(err)
	}
	defer noBasePool.Close()
	if _, err := NewWith(Config{Filter: filter}, noBasePool, nil); err == nil || !strings.Contains(err.Error(), "base_dn") {
		t.Fatalf("a pool without a base DN: %v, want a base_dn error", err)
	}
	a, err := NewWith(Config{Filter: filter}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWith(Config{Filter: filter}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := decide(a, "alice", pub, "devices/dev1/telemetry"); got != authz.Allow {
		t.Fatalf("first source: %v", got)
	}
	a.Close()
	if got := decide(b, "alice", pub, "devices/dev1/telemetry"); got != authz.Allow {
		t.Fatalf("after the other source closed: %v", got)
	}
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("the shared pool after Close: %v", err)
	}
}
