package builtin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

func openDB(t testing.TB, path string) *controldb.DB {
	t.Helper()
	db, err := controldb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newSource(t testing.TB, db *controldb.DB, cfg Config) *Source {
	t.Helper()
	s, err := New(context.Background(), db, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tempSource(t testing.TB) *Source {
	t.Helper()
	return newSource(t, openDB(t, filepath.Join(t.TempDir(), "control.db")), Config{})
}

func allow(action authz.Actions, topics ...string) authz.Rule {
	return authz.Rule{Permission: authz.PermAllow, Action: action, Topics: topics}
}

func deny(action authz.Actions, topics ...string) authz.Rule {
	return authz.Rule{Permission: authz.PermDeny, Action: action, Topics: topics}
}

func pub(qos byte, retain bool) authz.Action {
	return authz.Action{Kind: authz.ActPublish, QoS: qos, Retain: retain}
}

func sub(qos byte) authz.Action { return authz.Action{Kind: authz.ActSubscribe, QoS: qos} }

func set(t testing.TB, s *Source, scope Scope, subject string, rules ...authz.Rule) {
	t.Helper()
	if err := s.SetRules(context.Background(), scope, subject, rules); err != nil {
		t.Fatal(err)
	}
}

func decide(s *Source, info *clientinfo.Info, a authz.Action, topic string) authz.Decision {
	return s.ForClient(info).Authorize(context.Background(), a, topic)
}

type check struct {
	name   string
	info   *clientinfo.Info
	action authz.Action
	topic  string
	want   authz.Decision
}

func runChecks(t *testing.T, s *Source, checks []check) {
	t.Helper()
	for _, c := range checks {
		if got := decide(s, c.info, c.action, c.topic); got != c.want {
			t.Errorf("%s: %s %q by %+v: %v, want %v", c.name, kindName(c.action), c.topic, *c.info, got, c.want)
		}
	}
}

func kindName(a authz.Action) string {
	if a.Kind == authz.ActSubscribe {
		return "subscribe"
	}
	return "publish"
}

// Client id rules come before username rules, which come before the rules for all; the
// first matching rule of the first list that has one decides.
func TestOrderOfScopes(t *testing.T) {
	s := tempSource(t)
	set(t, s, ScopeClientID, "dev-1", deny(authz.ActPublish, "shared/secret"), allow(authz.ActPublish, "dev/only"))
	set(t, s, ScopeUsername, "alice", allow(authz.ActPublish, "shared/#"), deny(authz.ActAll, "dev/#"))
	set(t, s, ScopeAll, "", deny(authz.ActPublish, "shared/#"), allow(authz.ActSubscribe, "public/#"))

	dev1 := &clientinfo.Info{ClientID: "dev-1", Username: "alice"}
	dev2 := &clientinfo.Info{ClientID: "dev-2", Username: "alice"}
	anon := &clientinfo.Info{ClientID: "dev-3"}
	bob := &clientinfo.Info{ClientID: "dev-1x", Username: "bob"}
	runChecks(t, s, []check{
		{"client id rule before username rule", dev1, pub(0, false), "shared/secret", authz.Deny},
		{"client id allow before username deny", dev1, pub(0, false), "dev/only", authz.Allow},
		{"username rule for another client of alice", dev2, pub(0, false), "shared/secret", authz.Allow},
		{"username deny", dev2, pub(0, false), "dev/only", authz.Deny},
		{"username rule before all rule", dev1, pub(0, false), "shared/x", authz.Allow},
		{"all rule when no own rule", anon, pub(0, false), "shared/x", authz.Deny},
		{"all rule, subscribe", anon, sub(0), "public/a/#", authz.Allow},
		{"all rule, subscribe, through alice's lists", dev1, sub(0), "public/a", authz.Allow},
		{"no rule matches", anon, pub(0, false), "other", authz.NoMatch},
		{"no prefix matching of subjects", bob, pub(0, false), "dev/only", authz.NoMatch},
		{"empty username is not a subject", &clientinfo.Info{}, pub(0, false), "shared/x", authz.Deny},
	})
}

func TestRuleMatching(t *testing.T) {
	yes, no := true, false
	s := tempSource(t)
	set(t, s, ScopeAll, "",
		authz.Rule{Permission: authz.PermDeny, Action: authz.ActPublish, Topics: []string{"r/#"}, Retain: &yes},
		authz.Rule{Permission: authz.PermAllow, Action: authz.ActAll, Topics: []string{"r/#"}, Retain: &no},
		authz.Rule{Permission: authz.PermAllow, Action: authz.ActAll, Topics: []string{"q/#"}, QoS: []byte{0, 1}},
		deny(authz.ActSubscribe, "eq #", "eq +/#"),
		allow(authz.ActSubscribe, "#"),
		deny(authz.ActPublish, "$SYS/#"),
		allow(authz.ActPublish, "a/+/c", "x"),
		deny(authz.ActAll),
	)
	c := &clientinfo.Info{ClientID: "c"}
	runChecks(t, s, []check{
		{"retained publish denied", c, pub(0, true), "r/1", authz.Deny},
		{"plain publish allowed", c, pub(0, false), "r/1", authz.Allow},
		{"retain is no condition for subscribe", c, sub(0), "r/1", authz.Allow},
		{"qos 1 in list", c, pub(1, false), "q/1", authz.Allow},
		{"qos 2 not in list, next rules", c, pub(2, false), "q/1", authz.Deny},
		{"qos 2 subscribe not in list, # rule", c, sub(2), "q/1", authz.Allow},
		{"eq #", c, sub(0), "#", authz.Deny},
		{"eq +/#", c, sub(0), "+/#", authz.Deny},
		{"# covers other wide filters", c, sub(0), "+/+/#", authz.Allow},
		{"# covers no $ filter", c, sub(0), "$SYS/x", authz.Deny},
		{"$SYS publish", c, pub(0, false), "$SYS/x", authz.Deny},
		{"+ matches one level", c, pub(0, false), "a/b/c", authz.Allow},
		{"+ does not match two", c, pub(0, false), "a/b/b/c", authz.Deny},
		{"literal", c, pub(0, false), "x", authz.Allow},
		{"catch-all without topics", c, pub(0, false), "anything/at/all", authz.Deny},
		{"shared subscription is checked as its filter", c, authz.Action{Kind: authz.ActSubscribe, Group: "g"}, "z/1", authz.Allow},
	})
}

// A placeholder is replaced by the client's value taken literally; a value that is empty
// or holds a wildcard, a level separator or NUL never matches, so a crafted client id or
// username cannot widen a rule.
func TestPlaceholdersLiteral(t *testing.T) {
	s := tempSource(t)
	set(t, s, ScopeAll, "",
		allow(authz.ActAll, "devices/${clientid}/#"),
		allow(authz.ActPublish, "users/${username}/out"),
		allow(authz.ActSubscribe, "attrs/${client_attrs.site}/+"),
		allow(authz.ActPublish, "certs/${cert_common_name}"),
	)
	runChecks(t, s, []check{
		{"own subtree", &clientinfo.Info{ClientID: "d1"}, pub(0, false), "devices/d1/up", authz.Allow},
		{"own subtree, subscribe", &clientinfo.Info{ClientID: "d1"}, sub(0), "devices/d1/#", authz.Allow},
		{"another's subtree", &clientinfo.Info{ClientID: "d1"}, pub(0, false), "devices/d2/up", authz.NoMatch},
		{"client id +", &clientinfo.Info{ClientID: "+"}, sub(0), "devices/+/#", authz.NoMatch},
		{"client id #", &clientinfo.Info{ClientID: "#"}, sub(0), "devices/#", authz.NoMatch},
		{"client id with /", &clientinfo.Info{ClientID: "d2/up"}, pub(0, false), "devices/d2/up/x", authz.NoMatch},
		{"client id with NUL", &clientinfo.Info{ClientID: "d\x00"}, pub(0, false), "devices/d\x00/x", authz.NoMatch},
		{"username", &clientinfo.Info{ClientID: "c", Username: "al"}, pub(0, false), "users/al/out", authz.Allow},
		{"empty username", &clientinfo.Info{ClientID: "c"}, pub(0, false), "users//out", authz.NoMatch},
		{"username +", &clientinfo.Info{ClientID: "c", Username: "+"}, pub(0, false), "users/+/out", authz.NoMatch},
		{"value ${...} stays literal", &clientinfo.Info{ClientID: "${username}", Username: "x"}, pub(0, false), "devices/x/1", authz.NoMatch},
		{"attribute", &clientinfo.Info{ClientID: "c", Attrs: map[string]string{"site": "s1"}}, sub(1), "attrs/s1/t", authz.Allow},
		{"missing attribute", &clientinfo.Info{ClientID: "c"}, sub(1), "attrs//t", authz.NoMatch},
		{"no certificate", &clientinfo.Info{ClientID: "c"}, pub(0, false), "certs/", authz.NoMatch},
		{"certificate CN", &clientinfo.Info{ClientID: "c", Cert: &clientinfo.Cert{CN: "cn1"}}, pub(0, false), "certs/cn1", authz.Allow},
	})
	if !s.UsesPlaceholders() {
		t.Fatal("UsesPlaceholders = false with placeholder rules stored")
	}
	set(t, s, ScopeAll, "", allow(authz.ActAll, "x"))
	if s.UsesPlaceholders() {
		t.Fatal("UsesPlaceholders = true after the placeholder rules were replaced")
	}
}

// A rule whose only topics hold unusable placeholder values matches nothing: it must not
// become a rule for every topic.
func TestDeadRuleDoesNotWiden(t *testing.T) {
	s := tempSource(t)
	set(t, s, ScopeAll, "", allow(authz.ActAll, "u/${username}"), deny(authz.ActAll))
	if got := decide(s, &clientinfo.Info{ClientID: "c"}, pub(0, false), "anything"); got != authz.Deny {
		t.Fatalf("client without username: %v, want the catch-all deny", got)
	}
}

func TestSetRulesValidation(t *testing.T) {
	s := newSource(t, openDB(t, filepath.Join(t.TempDir(), "control.db")), Config{MaxRules: 2})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		scope   Scope
		subject string
		rules   []authz.Rule
		want    string
	}{
		{"bad scope", "ipaddr", "x", []authz.Rule{allow(authz.ActAll, "t")}, "scope"},
		{"all with subject", ScopeAll, "x", []authz.Rule{allow(authz.ActAll, "t")}, "no subject"},
		{"username without subject", ScopeUsername, "", []authz.Rule{allow(authz.ActAll, "t")}, "needs a subject"},
		{"over max_rules", ScopeAll, "", []authz.Rule{allow(authz.ActAll), allow(authz.ActAll), allow(authz.ActAll)}, "max_rules"},
		{"no permission", ScopeAll, "", []authz.Rule{{Action: authz.ActAll}}, "permission"},
		{"unknown action bits", ScopeAll, "", []authz.Rule{{Permission: authz.PermAllow, Action: 8}}, "action"},
		{"who of its own", ScopeAll, "", []authz.Rule{{Permission: authz.PermAllow, Who: &authz.Who{Kind: authz.WhoUsername, Value: "x"}}}, "who"},
		{"eq with placeholder", ScopeAll, "", []authz.Rule{allow(authz.ActAll, "eq a/${clientid}")}, "eq"},
		{"qos 3", ScopeAll, "", []authz.Rule{{Permission: authz.PermAllow, Action: authz.ActAll, QoS: []byte{3}}}, "qos"},
		{"bad filter", ScopeAll, "", []authz.Rule{allow(authz.ActAll, "a/#/b")}, "a/#/b"},
		{"placeholder beside a wildcard", ScopeAll, "", []authz.Rule{allow(authz.ActAll, "a/${clientid}#")}, "clientid"},
		{"shared filter in a publish rule", ScopeAll, "", []authz.Rule{allow(authz.ActPublish, "$share/g/t")}, "shared"},
		{"unknown placeholder", ScopeAll, "", []authz.Rule{allow(authz.ActAll, "a/${nope}")}, "nope"},
		{"password placeholder", ScopeAll, "", []authz.Rule{allow(authz.ActAll, "a/${password}")}, "password"},
		{"empty topic", ScopeAll, "", []authz.Rule{allow(authz.ActAll, "")}, "topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetRules(ctx, tc.scope, tc.subject, tc.rules)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetRules err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if n, _ := s.repo.Count(ctx); n != 0 {
		t.Fatalf("%d rules stored by refused calls", n)
	}
	if err := (Config{MaxRules: MaxMaxRules + 1}).Validate(); err == nil {
		t.Fatal("Validate accepted max_rules above the limit")
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.db")
	ctx := context.Background()
	yes := true
	db, err := controldb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s := newSource(t, db, Config{})
	set(t, s, ScopeClientID, "d1", deny(authz.ActPublish, "t/secret"))
	set(t, s, ScopeUsername, "alice", allow(authz.ActAll, "t/#", "eq x/#"), deny(authz.ActAll))
	set(t, s, ScopeAll, "",
		authz.Rule{Permission: authz.PermAllow, Action: authz.ActPublish, Topics: []string{"p/${clientid}"}, QoS: []byte{1}, Retain: &yes})
	set(t, s, ScopeUsername, "gone", allow(authz.ActAll))
	if err := s.DeleteRules(ctx, ScopeUsername, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := newSource(t, openDB(t, path), Config{})
	d1 := &clientinfo.Info{ClientID: "d1", Username: "alice"}
	runChecks(t, s2, []check{
		{"client id rule", d1, pub(0, false), "t/secret", authz.Deny},
		{"username rule", d1, pub(0, false), "t/other", authz.Allow},
		{"username eq", d1, sub(0), "x/#", authz.Allow},
		{"username catch-all", d1, sub(0), "x/y", authz.Deny},
		{"all rule with qos and retain", &clientinfo.Info{ClientID: "d2"}, pub(1, true), "p/d2", authz.Allow},
		{"all rule, wrong qos", &clientinfo.Info{ClientID: "d2"}, pub(0, true), "p/d2", authz.NoMatch},
		{"all rule, not retained", &clientinfo.Info{ClientID: "d2"}, pub(1, false), "p/d2", authz.NoMatch},
		{"deleted subject", &clientinfo.Info{ClientID: "c", Username: "gone"}, pub(0, false), "z", authz.NoMatch},
	})
	stored, err := s2.Rules(ctx, ScopeUsername, "alice")
	if err != nil || len(stored) != 2 || stored[0].Rule.Topics[1] != "eq x/#" || stored[1].Rule.Permission != authz.PermDeny {
		t.Fatalf("Rules = %+v, %v", stored, err)
	}
}

// A list stored by something other than this source (a newer version, a hand edit) that
// does not compile denies everything to its clients; the others are unaffected.
func TestUncompilableStoredListFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.db")
	db := openDB(t, path)
	ctx := context.Background()
	_, err := db.ACLRules().Replace(ctx, ScopeUsername, "broken", []controldb.ACLRule{
		{Permission: controldb.PermissionAllow, Action: controldb.ActionAll, Topics: []string{"ok/#"}},
		{Permission: controldb.PermissionAllow, Action: controldb.ActionAll, Topics: []string{"a/#/b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ACLRules().Replace(ctx, ScopeUsername, "fine", []controldb.ACLRule{
		{Permission: controldb.PermissionAllow, Action: controldb.ActionAll, Topics: []string{"ok/#"}},
	}); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, db, Config{})
	runChecks(t, s, []check{
		{"broken list", &clientinfo.Info{ClientID: "c", Username: "broken"}, pub(0, false), "ok/1", authz.Deny},
		{"other list", &clientinfo.Info{ClientID: "c", Username: "fine"}, pub(0, false), "ok/1", authz.Allow},
	})
	// Rewriting the list through the source repairs it.
	set(t, s, ScopeUsername, "broken", allow(authz.ActAll, "ok/#"))
	if got := decide(s, &clientinfo.Info{ClientID: "c", Username: "broken"}, pub(0, false), "ok/1"); got != authz.Allow {
		t.Fatalf("after rewrite: %v", got)
	}
}

// OnChange callbacks run before SetRules, SetRulesMany, DeleteRules and DeleteRule
// return, and by then a new ForClient sees the change.
func TestOnChangeBeforeReturn(t *testing.T) {
	s := tempSource(t)
	ctx := context.Background()
	info := &clientinfo.Info{ClientID: "c", Username: "u"}
	var calls atomic.Int64
	var seen atomic.Int64 // the decision a callback saw, as a Decision
	s.OnChange(func() {
		calls.Add(1)
		seen.Store(int64(decide(s, info, pub(0, false), "t")))
	})
	second := 0
	s.OnChange(func() { second++ })

	steps := []struct {
		name string
		do   func() error
		want authz.Decision
	}{
		{"SetRules", func() error { return s.SetRules(ctx, ScopeUsername, "u", []authz.Rule{allow(authz.ActAll, "t")}) }, authz.Allow},
		{"SetRulesMany", func() error {
			return s.SetRulesMany(ctx, []RuleList{{Scope: ScopeClientID, Subject: "c", Rules: []authz.Rule{deny(authz.ActAll, "t")}}})
		}, authz.Deny},
		{"DeleteRules", func() error { return s.DeleteRules(ctx, ScopeClientID, "c") }, authz.Allow},
		{"DeleteRule", func() error {
			stored, err := s.Rules(ctx, ScopeUsername, "u")
			if err != nil || len(stored) != 1 {
				return fmt.Errorf("Rules = %v, %v", stored, err)
			}
			return s.DeleteRule(ctx, stored[0].ID)
		}, authz.NoMatch},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if calls.Load() != int64(i+1) || second != i+1 {
			t.Fatalf("%s returned after %d/%d callbacks, want %d", st.name, calls.Load(), second, i+1)
		}
		if got := authz.Decision(seen.Load()); got != st.want {
			t.Fatalf("%s: the callback saw %v, want %v", st.name, got, st.want)
		}
	}

	// Refused writes change nothing and announce nothing.
	if err := s.DeleteRules(ctx, ScopeUsername, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteRules(nobody) err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteRule(ctx, 12345); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteRule(12345) err = %v, want ErrNotFound", err)
	}
	if err := s.SetRules(ctx, ScopeAll, "", []authz.Rule{allow(authz.ActAll, "a/#/b")}); err == nil {
		t.Fatal("SetRules accepted a bad filter")
	}
	if calls.Load() != int64(len(steps)) {
		t.Fatalf("%d callbacks after refused writes, want %d", calls.Load(), len(steps))
	}
}

// A failed database write leaves the index as it was.
func TestWriteFailureKeepsIndex(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "control.db"))
	s := newSource(t, db, Config{})
	set(t, s, ScopeAll, "", allow(authz.ActAll, "t"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SetRules(ctx, ScopeAll, "", []authz.Rule{deny(authz.ActAll, "t")}); err == nil {
		t.Fatal("SetRules with a cancelled context succeeded")
	}
	if got := decide(s, &clientinfo.Info{ClientID: "c"}, pub(0, false), "t"); got != authz.Allow {
		t.Fatalf("after a failed write: %v, want the old rule's allow", got)
	}
}

// The ClientSource is a snapshot: a change reaches a client through a new ForClient.
func TestForClientSnapshot(t *testing.T) {
	s := tempSource(t)
	info := &clientinfo.Info{ClientID: "c"}
	set(t, s, ScopeClientID, "c", allow(authz.ActAll, "t"))
	before := s.ForClient(info)
	set(t, s, ScopeClientID, "c", deny(authz.ActAll, "t"))
	if got := before.Authorize(context.Background(), pub(0, false), "t"); got != authz.Allow {
		t.Fatalf("old view: %v", got)
	}
	if got := decide(s, info, pub(0, false), "t"); got != authz.Deny {
		t.Fatalf("new view: %v", got)
	}
}

// Rules the caller keeps using after SetRules do not change the stored ones.
func TestSetRulesCopies(t *testing.T) {
	s := tempSource(t)
	yes := true
	rules := []authz.Rule{{Permission: authz.PermAllow, Action: authz.ActPublish, Topics: []string{"t"}, Retain: &yes}}
	set(t, s, ScopeAll, "", rules...)
	rules[0].Topics[0] = "other"
	yes = false
	if got := decide(s, &clientinfo.Info{ClientID: "c"}, pub(0, true), "t"); got != authz.Allow {
		t.Fatalf("after the caller changed its slice: %v", got)
	}
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	s := tempSource(t)
	ctx := context.Background()
	var changes atomic.Int64
	s.OnChange(func() { changes.Add(1) })
	const writers, readers, rounds = 3, 4, 20
	var wg, writing sync.WaitGroup
	errs := make(chan error, writers+readers)
	done := make(chan struct{})
	for w := range writers {
		writing.Add(1)
		go func() {
			defer writing.Done()
			user := fmt.Sprintf("user-%d", w)
			for i := range rounds {
				rules := []authz.Rule{allow(authz.ActPublish, fmt.Sprintf("t/%d/#", i)), deny(authz.ActAll, "t/#")}
				if err := s.SetRules(ctx, ScopeUsername, user, rules); err != nil {
					errs <- err
					return
				}
				if err := s.SetRules(ctx, ScopeAll, "", []authz.Rule{allow(authz.ActSubscribe, "${username}/#")}); err != nil {
					errs <- err
					return
				}
			}
			if err := s.DeleteRules(ctx, ScopeUsername, user); err != nil {
				errs <- err
			}
		}()
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				info := &clientinfo.Info{ClientID: fmt.Sprintf("c%d", r), Username: fmt.Sprintf("user-%d", i%writers)}
				d := decide(s, info, pub(0, false), "t/x/y")
				if d == authz.Allow {
					// Only a rule t/x/# could allow this, and no writer writes one.
					errs <- fmt.Errorf("t/x/y allowed")
					return
				}
				_ = decide(s, info, sub(0), info.Username+"/a")
				_ = s.UsesPlaceholders()
			}
		}()
	}
	writing.Wait()
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := changes.Load(); got != writers*(2*rounds+1) {
		t.Errorf("%d change announcements, want %d", got, writers*(2*rounds+1))
	}
	for w := range writers {
		info := &clientinfo.Info{ClientID: "c", Username: fmt.Sprintf("user-%d", w)}
		if got := decide(s, info, pub(0, false), "t/0/a"); got != authz.NoMatch {
			t.Errorf("user-%d after DeleteRules: %v", w, got)
		}
		if got := decide(s, info, sub(0), info.Username+"/a"); got != authz.Allow {
			t.Errorf("user-%d all rule: %v", w, got)
		}
	}
}

// fill stores n username lists (and one all list) in one transaction and returns a source
// loaded from the database.
func fill(t testing.TB, n int) *Source {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "control.db"))
	lists := make([]controldb.ACLList, 0, n+1)
	for i := range n {
		lists = append(lists, controldb.ACLList{Scope: ScopeUsername, Subject: fmt.Sprintf("user-%06d", i), Rules: []controldb.ACLRule{
			{Permission: controldb.PermissionAllow, Action: controldb.ActionPublish, Topics: []string{fmt.Sprintf("users/%06d/#", i)}},
			{Permission: controldb.PermissionDeny, Action: controldb.ActionAll, Topics: []string{"users/#"}},
		}})
	}
	lists = append(lists, controldb.ACLList{Scope: ScopeAll, Rules: []controldb.ACLRule{
		{Permission: controldb.PermissionAllow, Action: controldb.ActionAll, Topics: []string{"devices/${clientid}/#"}},
	}})
	if err := db.ACLRules().ReplaceMany(context.Background(), lists); err != nil {
		t.Fatal(err)
	}
	return newSource(t, db, Config{})
}

// 100k usernames with rules load, and each client gets exactly its own.
func TestManyUsersLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100k lists")
	}
	n := 100_000
	if raceEnabled {
		n = 10_000 // the race detector makes the load ten times slower
	}
	s := fill(t, n)
	if len(s.byUser) != n {
		t.Fatalf("%d username lists loaded, want %d", len(s.byUser), n)
	}
	for _, i := range []int{0, 4242, n - 1} {
		info := &clientinfo.Info{ClientID: fmt.Sprintf("dev-%d", i), Username: fmt.Sprintf("user-%06d", i)}
		runChecks(t, s, []check{
			{"own", info, pub(0, false), fmt.Sprintf("users/%06d/x", i), authz.Allow},
			{"another's", info, pub(0, false), fmt.Sprintf("users/%06d/x", (i+1)%n), authz.Deny},
			{"all rule", info, pub(0, false), fmt.Sprintf("devices/dev-%d/x", i), authz.Allow},
		})
	}
}

// ForClient costs map lookups plus the client's own lists: compare the ns/op of the two
// sizes (a benchmark, not a timed test).
func BenchmarkForClient(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			s := fill(b, n)
			info := &clientinfo.Info{ClientID: "dev-7", Username: fmt.Sprintf("user-%06d", n/2)}
			topic := fmt.Sprintf("users/%06d/x", n/2)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if s.ForClient(info).Authorize(ctx, pub(0, false), topic) != authz.Allow {
					b.Fatal("not allowed")
				}
			}
		})
	}
}

func BenchmarkAuthorize(b *testing.B) {
	s := fill(b, 1000)
	info := &clientinfo.Info{ClientID: "dev-7", Username: "user-000500"}
	cs := s.ForClient(info)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if cs.Authorize(ctx, pub(0, false), "users/000500/a/b") != authz.Allow {
			b.Fatal("not allowed")
		}
	}
}
