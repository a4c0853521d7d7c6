package controldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func boolPtr(b bool) *bool { return &b }

// sameContent compares what a caller gives (permission, action, topics, qos, retain).
func sameContent(a, b ACLRule) bool {
	return a.Permission == b.Permission && a.Action == b.Action &&
		slices.Equal(a.Topics, b.Topics) && slices.Equal(a.QoS, b.QoS) &&
		(a.QoS == nil) == (b.QoS == nil) && reflect.DeepEqual(a.Retain, b.Retain)
}

func TestACLRulesCRUD(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.ACLRules()

	in := []ACLRule{
		{Permission: PermissionAllow, Action: ActionPublish, Topics: []string{"devices/${clientid}/up", "t/#"},
			QoS: []byte{0, 1}, Retain: boolPtr(false)},
		{Permission: PermissionDeny, Action: ActionSubscribe, Topics: []string{"eq #"}, QoS: []byte{}},
		{Permission: PermissionDeny, Action: ActionAll}, // no topics: every topic
	}
	stored, err := repo.Replace(ctx, ScopeUsername, "alice", in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := repo.ListFor(ctx, ScopeUsername, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("ListFor: %d rules, want %d", len(got), len(in))
	}
	for i := range in {
		if !sameContent(got[i], in[i]) {
			t.Errorf("rule %d: got %+v, want %+v", i, got[i], in[i])
		}
		if got[i].ID != stored[i].ID || got[i].ID == 0 || got[i].Position != i ||
			got[i].Scope != ScopeUsername || got[i].Subject != "alice" ||
			got[i].CreatedAt.IsZero() || !got[i].CreatedAt.Equal(stored[i].CreatedAt) {
			t.Errorf("rule %d: stored fields %+v, returned by Replace %+v", i, got[i], stored[i])
		}
	}
	if got[2].Topics != nil || got[0].QoS == nil || got[1].QoS == nil || len(got[1].QoS) != 0 || got[2].QoS != nil || got[1].Retain != nil {
		t.Errorf("nil and empty lists not kept apart: %+v", got)
	}

	// The same name in another scope is another subject.
	if rules, err := repo.ListFor(ctx, ScopeClientID, "alice"); err != nil || len(rules) != 0 {
		t.Fatalf("ListFor(clientid alice) = %v, %v; want none", rules, err)
	}

	one, err := repo.Get(ctx, stored[1].ID)
	if err != nil || !sameContent(one, in[1]) {
		t.Fatalf("Get = %+v, %v", one, err)
	}
	del, err := repo.Delete(ctx, stored[1].ID)
	if err != nil || del.ID != stored[1].ID || del.Scope != ScopeUsername || del.Subject != "alice" || !sameContent(del, in[1]) {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := repo.Delete(ctx, stored[1].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete err = %v, want ErrNotFound", err)
	}
	if _, err := repo.Get(ctx, stored[1].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get deleted err = %v, want ErrNotFound", err)
	}
	got, _ = repo.ListFor(ctx, ScopeUsername, "alice")
	if len(got) != 2 || got[0].ID != stored[0].ID || got[1].ID != stored[2].ID {
		t.Fatalf("after Delete: %+v", got)
	}

	n, err := repo.DeleteFor(ctx, ScopeUsername, "alice")
	if err != nil || n != 2 {
		t.Fatalf("DeleteFor = %d, %v; want 2", n, err)
	}
	if n, err := repo.DeleteFor(ctx, ScopeUsername, "alice"); err != nil || n != 0 {
		t.Fatalf("second DeleteFor = %d, %v; want 0", n, err)
	}
	if c, err := repo.Count(ctx); err != nil || c != 0 {
		t.Fatalf("Count = %d, %v; want 0", c, err)
	}
}

func TestACLRulesValidation(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.ACLRules()
	ok := ACLRule{Permission: PermissionAllow, Action: ActionAll, Topics: []string{"t"}}
	for _, tc := range []struct {
		name    string
		scope   ACLScope
		subject string
		rule    ACLRule
		want    string
	}{
		{"bad scope", "ipaddr", "x", ok, "scope"},
		{"all with subject", ScopeAll, "x", ok, "no subject"},
		{"username empty", ScopeUsername, "", ok, "1 to 65535"},
		{"clientid not utf8", ScopeClientID, "\xff", ok, "1 to 65535"},
		{"clientid too long", ScopeClientID, strings.Repeat("c", 65536), ok, "1 to 65535"},
		{"permission", ScopeAll, "", ACLRule{Permission: "maybe", Action: ActionAll}, "permission"},
		{"action", ScopeAll, "", ACLRule{Permission: PermissionAllow, Action: "pub"}, "action"},
		{"empty topic", ScopeAll, "", ACLRule{Permission: PermissionAllow, Action: ActionAll, Topics: []string{""}}, "topic"},
		{"NUL in topic", ScopeAll, "", ACLRule{Permission: PermissionAllow, Action: ActionAll, Topics: []string{"a\x00b"}}, "topic"},
		{"qos 3", ScopeAll, "", ACLRule{Permission: PermissionAllow, Action: ActionAll, QoS: []byte{3}}, "qos"},
		{"too many topics", ScopeAll, "", ACLRule{Permission: PermissionAllow, Action: ActionAll,
			Topics: slices.Repeat([]string{"t"}, MaxTopicsPerACLRule+1)}, "topics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := repo.Replace(ctx, tc.scope, tc.subject, []ACLRule{tc.rule})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Replace err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := repo.Replace(ctx, ScopeAll, "", slices.Repeat([]ACLRule{ok}, MaxACLRulesPerSubject+1)); err == nil {
		t.Fatal("Replace accepted more than MaxACLRulesPerSubject rules")
	}
	if _, err := repo.ListFor(ctx, ScopeAll, "x"); err == nil {
		t.Fatal("ListFor accepted a subject for scope all")
	}
	if _, err := repo.DeleteFor(ctx, "nobody", "x"); err == nil {
		t.Fatal("DeleteFor accepted an unknown scope")
	}
	// The table refuses what validation would, should a bug ever skip it.
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO acl_rules (scope, subject, position, permission, action, topics, created_at)
		VALUES ('all', 'x', 0, 'allow', 'all', '[]', 0)`); err == nil {
		t.Fatal("the table accepted a subject for scope all")
	}
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO acl_rules (scope, subject, position, permission, action, topics, created_at)
		VALUES ('all', '', 0, 'allow', 'all', '{"a":1}', 0)`); err == nil {
		t.Fatal("the table accepted topics that are not a JSON array")
	}
	if c, _ := repo.Count(ctx); c != 0 {
		t.Fatalf("%d rules stored by refused calls", c)
	}
}

// Replace is all or nothing: a list with one bad rule leaves the previous list in place.
func TestACLRulesReplaceAtomic(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.ACLRules()
	first := []ACLRule{
		{Permission: PermissionAllow, Action: ActionPublish, Topics: []string{"a"}},
		{Permission: PermissionDeny, Action: ActionAll},
	}
	if _, err := repo.Replace(ctx, ScopeClientID, "dev-1", first); err != nil {
		t.Fatal(err)
	}

	// Refused by validation before the transaction.
	bad := []ACLRule{{Permission: PermissionAllow, Action: ActionAll, Topics: []string{"b"}}, {Permission: "x", Action: ActionAll}}
	if _, err := repo.Replace(ctx, ScopeClientID, "dev-1", bad); err == nil {
		t.Fatal("Replace accepted a bad rule")
	}
	// Refused inside the transaction, after the old list was deleted and the first new
	// rule inserted: a trigger fails the second insert.
	if _, err := db.sql.ExecContext(ctx, `CREATE TRIGGER fail_second BEFORE INSERT ON acl_rules
		WHEN NEW.position = 1 BEGIN SELECT RAISE(ABORT, 'refused by test'); END`); err != nil {
		t.Fatal(err)
	}
	two := []ACLRule{{Permission: PermissionAllow, Action: ActionAll, Topics: []string{"b"}}, {Permission: PermissionAllow, Action: ActionAll, Topics: []string{"c"}}}
	if _, err := repo.Replace(ctx, ScopeClientID, "dev-1", two); err == nil || !strings.Contains(err.Error(), "refused by test") {
		t.Fatalf("Replace err = %v, want the trigger's refusal", err)
	}
	if _, err := db.sql.ExecContext(ctx, `DROP TRIGGER fail_second`); err != nil {
		t.Fatal(err)
	}
	got, err := repo.ListFor(ctx, ScopeClientID, "dev-1")
	if err != nil || len(got) != 2 || !sameContent(got[0], first[0]) || !sameContent(got[1], first[1]) {
		t.Fatalf("after refused replacements: %+v, %v; want the first list", got, err)
	}

	second := []ACLRule{{Permission: PermissionDeny, Action: ActionSubscribe, Topics: []string{"x/#"}}}
	if _, err := repo.Replace(ctx, ScopeClientID, "dev-1", second); err != nil {
		t.Fatal(err)
	}
	got, _ = repo.ListFor(ctx, ScopeClientID, "dev-1")
	if len(got) != 1 || !sameContent(got[0], second[0]) || got[0].Position != 0 {
		t.Fatalf("after Replace: %+v", got)
	}
	// An empty list clears the subject.
	if _, err := repo.Replace(ctx, ScopeClientID, "dev-1", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := repo.ListFor(ctx, ScopeClientID, "dev-1"); len(got) != 0 {
		t.Fatalf("after empty Replace: %+v", got)
	}
}

// Concurrent replacements of one subject never interleave: every reader sees one whole
// list, never a mix of two or a half-written one.
func TestACLRulesConcurrentReplace(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.ACLRules()
	const writers, rounds, size = 4, 10, 5
	list := func(w int) []ACLRule {
		rules := make([]ACLRule, size)
		for i := range rules {
			rules[i] = ACLRule{Permission: PermissionAllow, Action: ActionAll, Topics: []string{fmt.Sprintf("w%d", w)}}
		}
		return rules
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if _, err := repo.Replace(ctx, ScopeAll, "", list(w)); err != nil {
					errs <- err
					return
				}
				got, err := repo.ListFor(ctx, ScopeAll, "")
				if err != nil {
					errs <- err
					return
				}
				if len(got) != size {
					errs <- fmt.Errorf("read %d rules, want %d", len(got), size)
					return
				}
				for _, r := range got {
					if r.Topics[0] != got[0].Topics[0] {
						errs <- fmt.Errorf("read a mix of two lists: %v and %v", got[0].Topics, r.Topics)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestACLRulesForEachOrder(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.ACLRules()
	rule := func(topic string) ACLRule {
		return ACLRule{Permission: PermissionAllow, Action: ActionAll, Topics: []string{topic}}
	}
	// More rules than one ForEach page, spread over subjects written out of order.
	const subjects, per = 7, 200
	for s := subjects - 1; s >= 0; s-- {
		var rules []ACLRule
		for i := range per {
			rules = append(rules, rule(fmt.Sprintf("s%d/%d", s, i)))
		}
		if _, err := repo.Replace(ctx, ScopeUsername, fmt.Sprintf("user-%d", s), rules); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.Replace(ctx, ScopeAll, "", []ACLRule{rule("all/0"), rule("all/1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Replace(ctx, ScopeClientID, "c", []ACLRule{rule("c/0")}); err != nil {
		t.Fatal(err)
	}

	var seen []string
	err := repo.ForEach(ctx, func(r ACLRule) error {
		seen = append(seen, string(r.Scope)+" "+r.Subject+" "+r.Topics[0])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"all  all/0", "all  all/1", "clientid c c/0"}
	for s := range subjects {
		for i := range per {
			want = append(want, fmt.Sprintf("username user-%d s%d/%d", s, s, i))
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("ForEach saw %d rules, want %d in scope, subject, position order", len(seen), len(want))
	}

	stop := errors.New("stop")
	calls := 0
	err = repo.ForEach(ctx, func(ACLRule) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ForEach stopped after %d calls with %v; want 1 and the callback's error", calls, err)
	}
}

// A database written by schema version 1 (users only) gains acl_rules when opened, keeps
// its users, and the migration is recorded once: opening again applies nothing.
func TestACLRulesMigrationOnVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "control.db")
	old, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`,
		migrations[0],
		`INSERT INTO schema_migrations VALUES (1, 1)`,
		`INSERT INTO users (user_id_type, user_id, password_hash, created_at, updated_at) VALUES ('username', 'old', 'h', 1, 1)`,
	} {
		if _, err := old.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		if v, err := db.Version(ctx); err != nil || v != SchemaVersion {
			t.Fatalf("open %d: version %d, %v; want %d", round, v, err, SchemaVersion)
		}
		var rows, v2 int
		if err := db.sql.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE version = 2) FROM schema_migrations`).Scan(&rows, &v2); err != nil {
			t.Fatal(err)
		}
		if rows != SchemaVersion || v2 != 1 {
			t.Fatalf("open %d: %d migration rows (%d of version 2), want %d (1)", round, rows, v2, SchemaVersion)
		}
		if _, err := db.Users().Get(ctx, Username, "old"); err != nil {
			t.Fatalf("open %d: the version 1 user: %v", round, err)
		}
		if round == 0 {
			if _, err := db.ACLRules().Replace(ctx, ScopeAll, "", []ACLRule{{Permission: PermissionDeny, Action: ActionAll}}); err != nil {
				t.Fatal(err)
			}
		} else if c, err := db.ACLRules().Count(ctx); err != nil || c != 1 {
			t.Fatalf("reopened: %d rules, %v; want the 1 written before", c, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestACLRulesCancelledContext(t *testing.T) {
	db := openTemp(t)
	repo := db.ACLRules()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := repo.Replace(ctx, ScopeAll, "", []ACLRule{{Permission: PermissionDeny, Action: ActionAll}}); err == nil {
		t.Fatal("Replace with a cancelled context succeeded")
	}
	if _, err := repo.ListFor(ctx, ScopeAll, ""); err == nil {
		t.Fatal("ListFor with a cancelled context succeeded")
	}
	if err := repo.ForEach(ctx, func(ACLRule) error { return nil }); err == nil {
		t.Fatal("ForEach with a cancelled context succeeded")
	}
	if c, err := repo.Count(context.Background()); err != nil || c != 0 {
		t.Fatalf("Count = %d, %v; want 0", c, err)
	}
}

func TestACLRulesReplaceMany(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.ACLRules()
	rule := func(topic string) ACLRule {
		return ACLRule{Permission: PermissionAllow, Action: ActionAll, Topics: []string{topic}}
	}
	if _, err := repo.Replace(ctx, ScopeUsername, "old", []ACLRule{rule("old")}); err != nil {
		t.Fatal(err)
	}
	in := []ACLRule{rule("a"), rule("b")}
	lists := []ACLList{
		{Scope: ScopeUsername, Subject: "old", Rules: in},
		{Scope: ScopeClientID, Subject: "c1", Rules: []ACLRule{rule("c")}},
		{Scope: ScopeAll, Rules: nil},
	}
	if err := repo.ReplaceMany(ctx, lists); err != nil {
		t.Fatal(err)
	}
	if in[0].ID != 0 || in[0].Scope != "" {
		t.Fatalf("ReplaceMany modified the caller's rules: %+v", in[0])
	}
	if lists[0].Rules[1].ID == 0 || lists[0].Rules[1].Position != 1 || lists[1].Rules[0].Subject != "c1" {
		t.Fatalf("stored lists not returned: %+v", lists)
	}
	got, _ := repo.ListFor(ctx, ScopeUsername, "old")
	if len(got) != 2 || got[0].Topics[0] != "a" || got[1].Topics[0] != "b" {
		t.Fatalf("username old: %+v", got)
	}

	// One bad list refuses them all.
	err := repo.ReplaceMany(ctx, []ACLList{
		{Scope: ScopeClientID, Subject: "c1", Rules: nil},
		{Scope: ScopeAll, Subject: "x", Rules: []ACLRule{rule("z")}},
	})
	if err == nil {
		t.Fatal("ReplaceMany accepted a bad list")
	}
	if got, _ := repo.ListFor(ctx, ScopeClientID, "c1"); len(got) != 1 {
		t.Fatalf("a refused ReplaceMany changed clientid c1: %+v", got)
	}
}
