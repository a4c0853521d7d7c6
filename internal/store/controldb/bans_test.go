package controldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBansPutGetDelete(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	repo := db.Bans()
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond)

	in := []Ban{
		{Kind: BanClientID, Value: "dev-1", Reason: "stolen", By: "admin"},
		{Kind: BanUsername, Value: "mallory", Until: until},
		{Kind: BanPeerHost, Value: "192.0.2.0/24"},
		{Kind: BanClientIDRe, Value: "^bot-[0-9]+$"},
		{Kind: BanUsernameRe, Value: "(?i)^root$"},
		// The same value under another kind is another ban.
		{Kind: BanUsername, Value: "dev-1"},
	}
	ids := map[int64]bool{}
	for _, b := range in {
		stored, err := repo.Put(ctx, b)
		if err != nil {
			t.Fatalf("Put %+v: %v", b, err)
		}
		if stored.ID == 0 || ids[stored.ID] || stored.CreatedAt.IsZero() {
			t.Fatalf("Put %+v returned %+v", b, stored)
		}
		ids[stored.ID] = true
		got, err := repo.Get(ctx, b.Kind, b.Value)
		if err != nil {
			t.Fatal(err)
		}
		if got != stored {
			t.Fatalf("Get = %+v, Put returned %+v", got, stored)
		}
		if got.Reason != b.Reason || got.By != b.By || !got.Until.Equal(b.Until) {
			t.Fatalf("Get = %+v, want the fields of %+v", got, b)
		}
	}
	if n, err := repo.Count(ctx); err != nil || n != len(in) {
		t.Fatalf("Count = %d, %v", n, err)
	}

	// Put replaces by kind and value: the ID stays, every other field is the new one's.
	first, _ := repo.Get(ctx, BanClientID, "dev-1")
	created := first.CreatedAt.Add(time.Minute)
	repl, err := repo.Put(ctx, Ban{Kind: BanClientID, Value: "dev-1", Reason: "again", By: "ops", CreatedAt: created, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if repl.ID != first.ID || repl.Reason != "again" || repl.By != "ops" || !repl.CreatedAt.Equal(created) || !repl.Until.Equal(until) {
		t.Fatalf("replaced %+v with %+v", first, repl)
	}
	if got, _ := repo.Get(ctx, BanClientID, "dev-1"); got != repl {
		t.Fatalf("after replace Get = %+v, want %+v", got, repl)
	}
	// And back to forever.
	if b, err := repo.Put(ctx, Ban{Kind: BanClientID, Value: "dev-1"}); err != nil || !b.Until.IsZero() {
		t.Fatalf("Put forever = %+v, %v", b, err)
	}
	if got, _ := repo.Get(ctx, BanClientID, "dev-1"); !got.Until.IsZero() || got.Reason != "" {
		t.Fatalf("forever ban stored as %+v", got)
	}
	if n, _ := repo.Count(ctx); n != len(in) {
		t.Fatalf("replacing added rows: %d", n)
	}

	del, err := repo.Delete(ctx, BanUsername, "mallory")
	if err != nil || del.Value != "mallory" || !del.Until.Equal(until) {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := repo.Delete(ctx, BanUsername, "mallory"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	if _, err := repo.Get(ctx, BanUsername, "mallory"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := repo.Get(ctx, BanUsername, "dev-1"); err != nil {
		t.Fatalf("Delete of one kind removed another: %v", err)
	}
}

func TestBanPeerHostCanonicalForm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"192.0.2.7/32", "192.0.2.7"},
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"2001:DB8:0:0::1", "2001:db8::1"},
		{"2001:db8::1/128", "2001:db8::1"},
		{"2001:DB8::/32", "2001:db8::/32"},
	}
	db := openTemp(t)
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CanonicalBanValue(BanPeerHost, tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("CanonicalBanValue(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			stored, err := db.Bans().Put(ctx, Ban{Kind: BanPeerHost, Value: tc.in})
			if err != nil || stored.Value != tc.want {
				t.Fatalf("Put(%q) stored %q, %v", tc.in, stored.Value, err)
			}
			// Any spelling finds and deletes the one row.
			if _, err := db.Bans().Get(ctx, BanPeerHost, tc.in); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Bans().Delete(ctx, BanPeerHost, tc.in); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Two spellings of one address are one ban.
	if _, err := db.Bans().Put(ctx, Ban{Kind: BanPeerHost, Value: "192.0.2.9/32"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Bans().Put(ctx, Ban{Kind: BanPeerHost, Value: "::ffff:192.0.2.9"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Bans().Count(ctx); n != 1 {
		t.Fatalf("%d rows for one address", n)
	}
}

// Bans that could never match, or could not be loaded back, are refused by the Go checks
// or the table's constraints, and nothing is written.
func TestBanValidation(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		name string
		b    Ban
		want string // in the error
	}{
		{"no kind", Ban{Value: "x"}, "kind"},
		{"unknown kind", Ban{Kind: "ipaddr", Value: "x"}, "kind"},
		{"empty value", Ban{Kind: BanClientID}, "1 to 65535"},
		{"NUL", Ban{Kind: BanUsername, Value: "a\x00b"}, "NUL"},
		{"invalid UTF-8", Ban{Kind: BanUsername, Value: "a\xff"}, "UTF-8"},
		{"over-long value", Ban{Kind: BanClientID, Value: strings.Repeat("a", 65536)}, "1 to 65535"},
		{"pattern over 1 KiB", Ban{Kind: BanClientIDRe, Value: strings.Repeat("a", MaxBanPatternLen+1)}, "at most 1024"},
		{"bad pattern", Ban{Kind: BanUsernameRe, Value: "(unclosed"}, "pattern"},
		{"backreference", Ban{Kind: BanUsernameRe, Value: `(a)\1`}, "pattern"},
		{"not an address", Ban{Kind: BanPeerHost, Value: "example.com"}, "peerhost"},
		{"zone", Ban{Kind: BanPeerHost, Value: "fe80::1%eth0"}, "zone"},
		{"host bits", Ban{Kind: BanPeerHost, Value: "192.0.2.7/8"}, "did you mean 192.0.0.0/8"},
		{"prefix too long", Ban{Kind: BanPeerHost, Value: "192.0.2.0/33"}, "peerhost"},
		{"short mapped block", Ban{Kind: BanPeerHost, Value: "::ffff:0:0/95"}, "did you mean"},
		{"reason too long", Ban{Kind: BanClientID, Value: "x", Reason: strings.Repeat("r", MaxBanReasonLen+1)}, "reason"},
		{"by too long", Ban{Kind: BanClientID, Value: "x", By: strings.Repeat("b", MaxBanByLen+1)}, "by"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Bans().Put(ctx, tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Put: %v; want an error saying %q", err, tc.want)
			}
		})
	}
	if n, _ := db.Bans().Count(ctx); n != 0 {
		t.Fatalf("%d invalid bans written", n)
	}
	// The table refuses what the Go checks would, for writers that bypass them.
	for _, stmt := range []string{
		`INSERT INTO bans (kind, value, created_at) VALUES ('ipaddr', 'x', 1)`,
		`INSERT INTO bans (kind, value, created_at) VALUES ('clientid', '', 1)`,
		`INSERT INTO bans (kind, value, created_at) VALUES ('clientid', 'x', 'yesterday')`,
	} {
		if _, err := db.sql.ExecContext(ctx, stmt); err == nil {
			t.Errorf("table accepted %s", stmt)
		}
	}
}

func TestBanUntilRoundsUp(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	until := time.Date(2030, 1, 1, 0, 0, 0, 1500, time.UTC) // 1.5 µs past the second
	b, err := db.Bans().Put(ctx, Ban{Kind: BanClientID, Value: "x", Until: until})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2030, 1, 1, 0, 0, 0, int(time.Millisecond), time.UTC)
	if !b.Until.Equal(want) {
		t.Fatalf("Until stored as %v, want %v", b.Until, want)
	}
	if got, _ := db.Bans().Get(ctx, BanClientID, "x"); !got.Until.Equal(want) {
		t.Fatalf("Until read back as %v, want %v", got.Until, want)
	}
	if !b.ActiveAt(until) || b.ActiveAt(want) || !(Ban{}).ActiveAt(until) {
		t.Fatal("ActiveAt: a ban is in effect strictly before Until, forever when Until is zero")
	}
}

func TestBansDeleteExpired(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, b := range []Ban{
		{Kind: BanClientID, Value: "ended", Until: now.Add(-time.Hour)},
		{Kind: BanUsername, Value: "ends-now", Until: now},
		{Kind: BanPeerHost, Value: "192.0.2.1", Until: now.Add(-time.Millisecond)},
		{Kind: BanClientID, Value: "later", Until: now.Add(time.Millisecond)},
		{Kind: BanClientID, Value: "forever"},
	} {
		if _, err := db.Bans().Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.Bans().DeleteExpired(ctx, now)
	if err != nil || n != 3 {
		t.Fatalf("DeleteExpired = %d, %v; want 3", n, err)
	}
	var left []string
	if err := db.Bans().ForEach(ctx, func(b Ban) error { left = append(left, b.Value); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "later,forever" {
		t.Fatalf("left %v", left)
	}
	if n, err := db.Bans().DeleteExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("second DeleteExpired = %d, %v", n, err)
	}
}

func TestBansListAndForEach(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	const n = 1234 // more than one ForEach page
	for i := range n {
		kind := BanClientID
		if i%3 == 0 {
			kind = BanUsername
		}
		if _, err := db.Bans().Put(ctx, Ban{Kind: kind, Value: fmt.Sprintf("v%05d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		kind  BanKind
		limit int
		want  int
	}{
		{"", 100, n},
		{"", 0, n}, // the default page size
		{BanUsername, 50, (n + 2) / 3},
		{BanClientID, 5000, n - (n+2)/3}, // capped at MaxPageSize
		{BanPeerHost, 10, 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.kind, tc.limit), func(t *testing.T) {
			var after, last int64
			seen := 0
			for {
				page, next, err := db.Bans().List(ctx, tc.kind, after, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > MaxPageSize {
					t.Fatalf("page of %d", len(page))
				}
				for _, b := range page {
					if b.ID <= last || (tc.kind != "" && b.Kind != tc.kind) {
						t.Fatalf("List returned %+v after id %d", b, last)
					}
					last = b.ID
					seen++
				}
				if next == 0 {
					break
				}
				after = next
			}
			if seen != tc.want {
				t.Fatalf("listed %d bans, want %d", seen, tc.want)
			}
		})
	}
	if _, _, err := db.Bans().List(ctx, "ipaddr", 0, 10); err == nil {
		t.Fatal("List accepted an unknown kind")
	}

	count, last := 0, int64(0)
	err := db.Bans().ForEach(ctx, func(b Ban) error {
		if b.ID <= last {
			t.Fatalf("ForEach out of order: %d after %d", b.ID, last)
		}
		last = b.ID
		count++
		return nil
	})
	if err != nil || count != n {
		t.Fatalf("ForEach: %d bans, %v", count, err)
	}
	stop := errors.New("stop")
	calls := 0
	if err := db.Bans().ForEach(ctx, func(Ban) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ForEach did not stop at the first error: %v after %d calls", err, calls)
	}
}

// A database written by schema version 2 (users and acl_rules) gains the bans table when
// opened, keeps its data, and records the migration once; a ban written then survives
// the next open.
func TestBansMigrationOnVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "control.db")
	old, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`,
		migrations[0],
		migrations[1],
		`INSERT INTO schema_migrations VALUES (1, 1), (2, 2)`,
		`INSERT INTO users (user_id_type, user_id, password_hash, created_at, updated_at) VALUES ('username', 'old', 'h', 1, 1)`,
		`INSERT INTO acl_rules (scope, subject, position, permission, action, topics, created_at) VALUES ('all', '', 0, 'deny', 'all', '[]', 1)`,
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
		if v, err := db.Version(ctx); err != nil || v != SchemaVersion || SchemaVersion < 3 {
			t.Fatalf("open %d: version %d, %v; want %d", round, v, err, SchemaVersion)
		}
		var rows, v3 int
		if err := db.sql.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE version = 3) FROM schema_migrations`).Scan(&rows, &v3); err != nil {
			t.Fatal(err)
		}
		if rows != SchemaVersion || v3 != 1 {
			t.Fatalf("open %d: %d migration rows (%d of version 3)", round, rows, v3)
		}
		if _, err := db.Users().Get(ctx, Username, "old"); err != nil {
			t.Fatalf("open %d: the version 2 user: %v", round, err)
		}
		if c, err := db.ACLRules().Count(ctx); err != nil || c != 1 {
			t.Fatalf("open %d: %d rules, %v", round, c, err)
		}
		var idx int
		if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'bans_until'`).Scan(&idx); err != nil || idx != 1 {
			t.Fatalf("open %d: bans_until index %d, %v", round, idx, err)
		}
		if round == 0 {
			if _, err := db.Bans().Put(ctx, Ban{Kind: BanPeerHost, Value: "2001:db8::/48", Reason: "abuse"}); err != nil {
				t.Fatal(err)
			}
		} else if b, err := db.Bans().Get(ctx, BanPeerHost, "2001:db8::/48"); err != nil || b.Reason != "abuse" {
			t.Fatalf("reopened: ban %+v, %v", b, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBansCancelledContext(t *testing.T) {
	db := openTemp(t)
	repo := db.Bans()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := repo.Put(ctx, Ban{Kind: BanClientID, Value: "x"}); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	if _, err := repo.Delete(ctx, BanClientID, "x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete with a cancelled context: %v", err)
	}
	if _, _, err := repo.List(ctx, "", 0, 10); err == nil {
		t.Fatal("List with a cancelled context succeeded")
	}
	if err := repo.ForEach(ctx, func(Ban) error { return nil }); err == nil {
		t.Fatal("ForEach with a cancelled context succeeded")
	}
	if _, err := repo.DeleteExpired(ctx, time.Now()); err == nil {
		t.Fatal("DeleteExpired with a cancelled context succeeded")
	}
	if n, err := repo.Count(context.Background()); err != nil || n != 0 {
		t.Fatalf("Count = %d, %v; want 0", n, err)
	}
}
