package guard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

func openControlDB(t *testing.T, path string) *controldb.DB {
	t.Helper()
	db, err := controldb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// newBans returns a ban list over a fresh control database and a fake clock.
func newBans(t *testing.T, cfg BansConfig) (*Bans, *fakeClock, *controldb.DB) {
	t.Helper()
	db := openControlDB(t, filepath.Join(t.TempDir(), "control.db"))
	clk := newFakeClock()
	b, err := NewBans(ctx, cfg, db.Bans(), clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk, db
}

// client builds the Info of a connecting client; peer is an address without a port, or "".
func client(clientID, username, peer string) *clientinfo.Info {
	info := &clientinfo.Info{ClientID: clientID, Username: username}
	if peer != "" {
		info.Peer = netip.AddrPortFrom(netip.MustParseAddr(peer), 51234)
	}
	return info
}

func mustAdd(t *testing.T, b *Bans, ban Ban) Ban {
	t.Helper()
	stored, err := b.Add(ctx, ban)
	if err != nil {
		t.Fatalf("Add %+v: %v", ban, err)
	}
	return stored
}

func TestBanKindsMatch(t *testing.T) {
	tests := []struct {
		name    string
		ban     Ban
		match   []*clientinfo.Info
		noMatch []*clientinfo.Info
	}{
		{"clientid", Ban{Kind: BanClientID, Value: "dev-1"},
			[]*clientinfo.Info{client("dev-1", "", ""), client("dev-1", "alice", "192.0.2.1")},
			[]*clientinfo.Info{client("dev-10", "", ""), client("DEV-1", "", ""), client("x", "dev-1", ""), client("", "", "")}},
		{"username", Ban{Kind: BanUsername, Value: "mallory"},
			[]*clientinfo.Info{client("c", "mallory", ""), client("", "mallory", "2001:db8::1")},
			[]*clientinfo.Info{client("mallory", "", ""), client("c", "mallory2", ""), client("c", "Mallory", "")}},
		{"single IPv4 address", Ban{Kind: BanPeerHost, Value: "192.0.2.7"},
			[]*clientinfo.Info{client("c", "", "192.0.2.7"), client("c", "", "::ffff:192.0.2.7")},
			[]*clientinfo.Info{client("c", "", "192.0.2.8"), client("c", "", "::192.0.2.7"), client("192.0.2.7", "192.0.2.7", "")}},
		{"IPv4 block", Ban{Kind: BanPeerHost, Value: "198.51.100.0/22"},
			[]*clientinfo.Info{client("c", "", "198.51.100.0"), client("c", "", "198.51.103.255"), client("c", "", "::ffff:198.51.101.9")},
			[]*clientinfo.Info{client("c", "", "198.51.104.0"), client("c", "", "198.51.99.255"), client("c", "", "2001:db8::1")}},
		{"IPv6 block", Ban{Kind: BanPeerHost, Value: "2001:db8:aa::/48"},
			[]*clientinfo.Info{client("c", "", "2001:db8:aa::1"), client("c", "", "2001:db8:aa:ffff:ffff:ffff:ffff:ffff"), client("c", "", "2001:db8:aa::5%eth0")},
			[]*clientinfo.Info{client("c", "", "2001:db8:ab::1"), client("c", "", "192.0.2.1")}},
		{"single IPv6 address", Ban{Kind: BanPeerHost, Value: "2001:db8::42"},
			[]*clientinfo.Info{client("c", "", "2001:db8::42")},
			[]*clientinfo.Info{client("c", "", "2001:db8::43")}},
		{"everything IPv4", Ban{Kind: BanPeerHost, Value: "0.0.0.0/0"},
			[]*clientinfo.Info{client("c", "", "203.0.113.9"), client("c", "", "10.0.0.1")},
			[]*clientinfo.Info{client("c", "", "::1"), client("c", "", "")}},
		{"clientid pattern, unanchored", Ban{Kind: BanClientIDRe, Value: "bot"},
			[]*clientinfo.Info{client("bot", "", ""), client("robot-7", "", "")},
			[]*clientinfo.Info{client("BOT", "", ""), client("c", "bot", "")}},
		{"clientid pattern, anchored", Ban{Kind: BanClientIDRe, Value: "^bot-[0-9]+$"},
			[]*clientinfo.Info{client("bot-1", "", ""), client("bot-123456", "", "")},
			[]*clientinfo.Info{client("bot-", "", ""), client("xbot-1", "", ""), client("bot-1x", "", "")}},
		{"username pattern", Ban{Kind: BanUsernameRe, Value: "(?i)^admin$"},
			[]*clientinfo.Info{client("c", "admin", ""), client("c", "ADMIN", "")},
			[]*clientinfo.Info{client("admin", "", ""), client("c", "administrator", "")}},
		{"patterns skip an absent field", Ban{Kind: BanUsernameRe, Value: ".*"},
			[]*clientinfo.Info{client("c", "anyone", "")},
			[]*clientinfo.Info{client("c", "", "192.0.2.1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _, _ := newBans(t, BansConfig{})
			// Another ban of every kind that matches none of the clients above.
			for _, other := range []Ban{
				{Kind: BanClientID, Value: "unrelated"}, {Kind: BanUsername, Value: "unrelated"},
				{Kind: BanPeerHost, Value: "203.0.113.0/24"}, {Kind: BanPeerHost, Value: "2001:db8:ffff::/48"},
				{Kind: BanClientIDRe, Value: "^unrelated$"}, {Kind: BanUsernameRe, Value: "^unrelated$"},
			} {
				if other.Value == "203.0.113.0/24" && tc.ban.Value == "0.0.0.0/0" {
					continue
				}
				mustAdd(t, b, other)
			}
			stored := mustAdd(t, b, tc.ban)
			for _, info := range tc.match {
				got, ok := b.Match(info)
				if !ok || got.ID != stored.ID {
					t.Errorf("Match(%+v) = %+v, %v; want the %s ban", *info, got, ok, tc.ban.Kind)
				}
				if !b.MatchesLive(stored, info) {
					t.Errorf("MatchesLive(%+v) = false", *info)
				}
			}
			for _, info := range tc.noMatch {
				if got, ok := b.Match(info); ok {
					t.Errorf("Match(%+v) = %+v; want no ban", *info, got)
				}
				if b.MatchesLive(stored, info) {
					t.Errorf("MatchesLive(%+v) = true", *info)
				}
			}
		})
	}
}

func TestBanMatchReportsTheLongestBlock(t *testing.T) {
	b, _, _ := newBans(t, BansConfig{})
	wide := mustAdd(t, b, Ban{Kind: BanPeerHost, Value: "10.0.0.0/8"})
	mid := mustAdd(t, b, Ban{Kind: BanPeerHost, Value: "10.1.0.0/16"})
	one := mustAdd(t, b, Ban{Kind: BanPeerHost, Value: "10.1.2.3"})
	for _, want := range []Ban{one, mid, wide} {
		got, ok := b.Match(client("c", "", "10.1.2.3"))
		if !ok || got.ID != want.ID {
			t.Fatalf("Match = %+v, %v; want %s", got, ok, want.Value)
		}
		if _, err := b.Remove(ctx, BanPeerHost, want.Value); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := b.Match(client("c", "", "10.1.2.3")); ok {
		t.Fatal("match after every block was removed")
	}
}

// Many blocks of every length: the index answers as a linear scan over them would.
func TestBanBlocksAgreeWithLinearScan(t *testing.T) {
	b, _, _ := newBans(t, BansConfig{})
	var blocks []netip.Prefix
	for i := range 300 {
		var p netip.Prefix
		if i%2 == 0 {
			a := netip.AddrFrom4([4]byte{byte(i * 7), byte(i * 13), byte(i), 1})
			p, _ = a.Prefix(8 + i%25)
		} else {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i), byte(i * 3), 15: byte(i)})
			p, _ = a.Prefix(24 + i%105)
		}
		if _, err := b.Add(ctx, Ban{Kind: BanPeerHost, Value: controldb.FormatBanPeer(p)}); err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, p)
	}
	for i := range 3000 {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{byte(i * 7), byte(i * 13), byte(i / 3), byte(i)})
		} else {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i), byte(i * 3), 7: byte(i / 5), 15: byte(i)})
		}
		want := false
		for _, p := range blocks {
			want = want || p.Contains(a)
		}
		if _, got := b.Match(client("c", "", a.String())); got != want {
			t.Fatalf("Match(%s) = %v, linear scan says %v", a, got, want)
		}
	}
}

func TestBanExpiry(t *testing.T) {
	b, clk, db := newBans(t, BansConfig{})
	now := clk.Now()
	temp := mustAdd(t, b, Ban{Kind: BanClientID, Value: "temp", Until: now.Add(time.Minute)})
	forever := mustAdd(t, b, Ban{Kind: BanPeerHost, Value: "192.0.2.0/24"})
	mustAdd(t, b, Ban{Kind: BanClientIDRe, Value: "^tmp-", Until: now.Add(2 * time.Minute)})

	c := client("temp", "", "192.0.2.1")
	if got, ok := b.Match(c); !ok || got.ID != temp.ID {
		t.Fatalf("Match = %+v, %v; want the client id ban first", got, ok)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if got, _ := b.Match(c); got.ID != temp.ID {
		t.Fatal("the ban ended early")
	}
	clk.Advance(time.Nanosecond)
	// Ended: it stops matching at once, before any purge; the address ban still applies.
	if got, ok := b.Match(c); !ok || got.ID != forever.ID {
		t.Fatalf("Match after the end = %+v, %v; want the address ban", got, ok)
	}
	if got, ok := b.Match(client("temp", "", "")); ok {
		t.Fatalf("ended ban matched: %+v", got)
	}
	if b.MatchesLive(temp, c) {
		t.Fatal("MatchesLive on an ended ban")
	}
	if _, ok := b.Match(client("tmp-1", "", "")); !ok {
		t.Fatal("the pattern ban ended with the other")
	}
	if n := b.Len(); n != 3 {
		t.Fatalf("Len = %d before the purge", n)
	}
	n, err := b.Purge(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	if n := b.Len(); n != 2 {
		t.Fatalf("Len = %d after the purge", n)
	}
	if _, err := db.Bans().Get(ctx, BanClientID, "temp"); !errors.Is(err, controldb.ErrNotFound) {
		t.Fatalf("ended ban still stored: %v", err)
	}
	clk.Advance(time.Minute)
	if _, ok := b.Match(client("tmp-1", "", "")); ok {
		t.Fatal("ended pattern ban matched")
	}
	if n, err := b.Purge(ctx); err != nil || n != 1 || b.Len() != 1 {
		t.Fatalf("second Purge = %d, %v; Len %d", n, err, b.Len())
	}
	// Adding a ban that has already ended is a mistake.
	if _, err := b.Add(ctx, Ban{Kind: BanClientID, Value: "late", Until: clk.Now()}); err == nil {
		t.Fatal("Add accepted a ban that has ended")
	}
}

// Bans survive a restart: a new Bans over the reopened database enforces them, except
// those that have ended meanwhile.
func TestBansSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.db")
	clk := newFakeClock()
	db, err := controldb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBans(ctx, BansConfig{}, db.Bans(), clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	added := []Ban{
		{Kind: BanClientID, Value: "dev-1", Reason: "stolen", By: "admin"},
		{Kind: BanUsername, Value: "mallory", Until: clk.Now().Add(time.Hour)},
		{Kind: BanPeerHost, Value: "2001:db8::/32"},
		{Kind: BanClientIDRe, Value: "^bot-"},
		{Kind: BanUsernameRe, Value: "^guest[0-9]*$", Until: clk.Now().Add(time.Minute)},
	}
	for _, ban := range added {
		mustAdd(t, b, ban)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(30 * time.Minute) // the username_re ban ends while the broker is down
	db = openControlDB(t, path)
	b, err = NewBans(ctx, BansConfig{}, db.Bans(), clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.Len(); n != 4 {
		t.Fatalf("%d bans loaded, want 4", n)
	}
	for _, tc := range []struct {
		info *clientinfo.Info
		want string
	}{
		{client("dev-1", "", ""), "dev-1"},
		{client("c", "mallory", ""), "mallory"},
		{client("c", "", "2001:db8:1::1"), "2001:db8::/32"},
		{client("bot-9", "", ""), "^bot-"},
		{client("c", "guest1", ""), ""},
	} {
		got, ok := b.Match(tc.info)
		if ok != (tc.want != "") || got.Value != tc.want {
			t.Errorf("after restart Match(%+v) = %+v, %v; want %q", *tc.info, got, ok, tc.want)
		}
	}
	if got, _ := b.Match(client("dev-1", "", "")); got.Reason != "stolen" || got.By != "admin" || got.ID == 0 {
		t.Errorf("loaded ban lost its fields: %+v", got)
	}
}

func TestBansBounded(t *testing.T) {
	b, clk, db := newBans(t, BansConfig{MaxEntries: 3, MaxPatterns: 1})
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "a"})
	mustAdd(t, b, Ban{Kind: BanClientIDRe, Value: "^p"})
	if _, err := b.Add(ctx, Ban{Kind: BanUsernameRe, Value: "^q"}); !errors.Is(err, ErrTooManyBans) {
		t.Fatalf("pattern beyond max_patterns: %v", err)
	}
	mustAdd(t, b, Ban{Kind: BanPeerHost, Value: "192.0.2.1", Until: clk.Now().Add(time.Minute)})
	if _, err := b.Add(ctx, Ban{Kind: BanClientID, Value: "d"}); !errors.Is(err, ErrTooManyBans) || !strings.Contains(err.Error(), "max_entries") {
		t.Fatalf("ban beyond max_entries: %v", err)
	}
	// Nothing was stored for the refused bans.
	if n, _ := db.Bans().Count(ctx); n != 3 {
		t.Fatalf("%d bans stored", n)
	}
	// Replacing one in effect is not growth.
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "a", Reason: "again"})
	mustAdd(t, b, Ban{Kind: BanClientIDRe, Value: "^p", Reason: "again"})
	// An ended ban makes room, purged or not.
	clk.Advance(time.Minute)
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "d"})
	if n := b.Len(); n != 3 {
		t.Fatalf("Len = %d", n)
	}
	// Removing makes room too.
	if _, err := b.Remove(ctx, BanClientID, "a"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "e"})
}

func TestBansLoadRefusesMoreThanTheBound(t *testing.T) {
	tests := []struct {
		name string
		cfg  BansConfig
		want string
	}{
		{"entries", BansConfig{MaxEntries: 3}, "max_entries"},
		{"patterns", BansConfig{MaxPatterns: 1}, "max_patterns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openControlDB(t, filepath.Join(t.TempDir(), "control.db"))
			for i := range 4 {
				if _, err := db.Bans().Put(ctx, Ban{Kind: BanClientIDRe, Value: fmt.Sprintf("^x%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			_, err := NewBans(ctx, tc.cfg, db.Bans(), newFakeClock(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewBans: %v; want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestBanHooks(t *testing.T) {
	b, _, _ := newBans(t, BansConfig{})
	live := client("dev-1", "alice", "192.0.2.1")
	var added, removed []Ban
	b.OnAdd(func(ban Ban) {
		// The ban is in effect by the time subscribers hear of it.
		if got, ok := b.Match(live); !ok || got.ID != ban.ID {
			t.Errorf("OnAdd(%+v): Match = %+v, %v", ban, got, ok)
		}
		if !b.MatchesLive(ban, live) {
			t.Errorf("OnAdd(%+v): MatchesLive = false", ban)
		}
		added = append(added, ban)
	})
	b.OnRemove(func(ban Ban) {
		if _, ok := b.Match(live); ok {
			t.Errorf("OnRemove(%+v): still matching", ban)
		}
		removed = append(removed, ban)
	})
	stored := mustAdd(t, b, Ban{Kind: BanPeerHost, Value: "192.0.2.0/24", Reason: "r"})
	if len(added) != 1 || added[0] != stored {
		t.Fatalf("OnAdd calls %+v, want [%+v]", added, stored)
	}
	if _, err := b.Add(ctx, Ban{Kind: BanPeerHost, Value: "192.0.2.0/33"}); err == nil || len(added) != 1 {
		t.Fatalf("a refused ban: %v, %d OnAdd calls", err, len(added))
	}
	if _, err := b.Remove(ctx, BanPeerHost, "::ffff:192.0.2.0/120"); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].ID != stored.ID {
		t.Fatalf("OnRemove calls %+v", removed)
	}
	if _, err := b.Remove(ctx, BanPeerHost, "192.0.2.0/24"); !errors.Is(err, controldb.ErrNotFound) || len(removed) != 1 {
		t.Fatalf("second Remove: %v, %d OnRemove calls", err, len(removed))
	}
}

func TestBanExtend(t *testing.T) {
	b, clk, _ := newBans(t, BansConfig{})
	var hooks int
	b.OnAdd(func(Ban) { hooks++ })
	now := clk.Now()
	auto := func(value string, d time.Duration) Ban {
		return Ban{Kind: BanClientID, Value: value, Reason: "flapping", By: "flapping_detect", Until: now.Add(d)}
	}
	tests := []struct {
		name      string
		existing  *Ban
		extend    Ban
		wantAdded bool
		wantUntil time.Time
	}{
		{"new", nil, auto("a", 5*time.Minute), true, now.Add(5 * time.Minute)},
		{"forever stays", &Ban{Kind: BanClientID, Value: "b"}, auto("b", 5*time.Minute), false, time.Time{}},
		{"longer stays", &Ban{Kind: BanClientID, Value: "c", Until: now.Add(time.Hour)}, auto("c", 5*time.Minute), false, now.Add(time.Hour)},
		{"shorter is lengthened", &Ban{Kind: BanClientID, Value: "d", Until: now.Add(time.Minute)}, auto("d", 5*time.Minute), true, now.Add(5 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.existing != nil {
				mustAdd(t, b, *tc.existing)
			}
			before := hooks
			got, added, err := b.Extend(ctx, tc.extend)
			if err != nil || added != tc.wantAdded || !got.Until.Equal(tc.wantUntil) {
				t.Fatalf("Extend = %+v, %v, %v; want added %v until %v", got, added, err, tc.wantAdded, tc.wantUntil)
			}
			if m, _ := b.Match(client(tc.extend.Value, "", "")); !m.Until.Equal(tc.wantUntil) {
				t.Fatalf("ban in effect until %v, want %v", m.Until, tc.wantUntil)
			}
			if (hooks > before) != tc.wantAdded {
				t.Fatalf("OnAdd called %d times", hooks-before)
			}
		})
	}
}

// failingStore fails the operations named in fail, and otherwise passes them on.
type failingStore struct {
	BanStore
	fail string
}

var errStore = errors.New("disk on fire")

func (s *failingStore) Put(ctx context.Context, b Ban) (Ban, error) {
	if s.fail == "put" {
		return Ban{}, errStore
	}
	return s.BanStore.Put(ctx, b)
}

func (s *failingStore) Delete(ctx context.Context, k BanKind, v string) (Ban, error) {
	if s.fail == "delete" {
		return Ban{}, errStore
	}
	return s.BanStore.Delete(ctx, k, v)
}

func (s *failingStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	if s.fail == "purge" {
		return 0, errStore
	}
	return s.BanStore.DeleteExpired(ctx, now)
}

// Writes go to the store first: when it fails, the index does not change.
func TestBanWriteThrough(t *testing.T) {
	db := openControlDB(t, filepath.Join(t.TempDir(), "control.db"))
	store := &failingStore{BanStore: db.Bans()}
	clk := newFakeClock()
	b, err := NewBans(ctx, BansConfig{}, store, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client("dev-1", "", "")

	store.fail = "put"
	if _, err := b.Add(ctx, Ban{Kind: BanClientID, Value: "dev-1"}); !errors.Is(err, errStore) {
		t.Fatalf("Add with a failing store: %v", err)
	}
	if _, ok := b.Match(c); ok || b.Len() != 0 {
		t.Fatal("a ban the store refused is in effect")
	}

	store.fail = ""
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "dev-1", Until: clk.Now().Add(time.Minute)})
	store.fail = "delete"
	if _, err := b.Remove(ctx, BanClientID, "dev-1"); !errors.Is(err, errStore) {
		t.Fatalf("Remove with a failing store: %v", err)
	}
	if _, ok := b.Match(c); !ok {
		t.Fatal("a ban still stored stopped matching")
	}

	store.fail = "purge"
	clk.Advance(time.Minute)
	if _, err := b.Purge(ctx); !errors.Is(err, errStore) {
		t.Fatalf("Purge with a failing store: %v", err)
	}
	if b.Len() != 0 {
		t.Fatal("the index was not purged when the store failed")
	}
	if n, _ := db.Bans().Count(ctx); n != 1 {
		t.Fatalf("%d stored", n)
	}
}

func TestBanAddValidation(t *testing.T) {
	b, clk, _ := newBans(t, BansConfig{})
	tests := []struct {
		name string
		ban  Ban
	}{
		{"unknown kind", Ban{Kind: "ipaddr", Value: "192.0.2.1"}},
		{"empty value", Ban{Kind: BanClientID}},
		{"bad pattern", Ban{Kind: BanClientIDRe, Value: "("}},
		{"pattern over 1 KiB", Ban{Kind: BanUsernameRe, Value: strings.Repeat("x", 1025)}},
		{"pattern too large once compiled", Ban{Kind: BanUsernameRe, Value: "((((a{1000}){1000}){1000}){1000})"}},
		{"hostname", Ban{Kind: BanPeerHost, Value: "broker.example"}},
		{"host bits", Ban{Kind: BanPeerHost, Value: "192.0.2.1/24"}},
		{"ended", Ban{Kind: BanClientID, Value: "x", Until: clk.Now().Add(-time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Add(ctx, tc.ban); err == nil {
				t.Fatal("Add accepted")
			}
		})
	}
	if b.Len() != 0 {
		t.Fatalf("%d invalid bans indexed", b.Len())
	}
	if _, err := b.Remove(ctx, BanClientID, "never-banned"); !errors.Is(err, controldb.ErrNotFound) {
		t.Fatalf("Remove of a missing ban: %v", err)
	}
}

func TestBansConfigValidate(t *testing.T) {
	bad := BansConfig{MaxEntries: -1, MaxPatterns: -1, PurgeInterval: -time.Second}
	err := bad.Validate()
	for _, key := range []string{"max_entries", "max_patterns", "purge_interval"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate does not name %s: %v", key, err)
		}
	}
	if _, err := NewBans(ctx, bad, nil, nil, nil); err == nil {
		t.Fatal("NewBans accepted an invalid config")
	}
	b, _, _ := newBans(t, BansConfig{})
	if b.Config() != DefaultBansConfig() {
		t.Fatalf("defaults %+v", b.Config())
	}
}

// stepClock is a fake clock whose Sleep reports the duration and waits for a step.
type stepClock struct {
	*fakeClock
	sleeping chan time.Duration
	step     chan struct{}
}

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case c.sleeping <- d:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c.step:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestBansRunPurges(t *testing.T) {
	db := openControlDB(t, filepath.Join(t.TempDir(), "control.db"))
	clk := &stepClock{fakeClock: newFakeClock(), sleeping: make(chan time.Duration), step: make(chan struct{})}
	b, err := NewBans(ctx, BansConfig{PurgeInterval: 30 * time.Second}, db.Bans(), clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "a", Until: clk.Now().Add(time.Minute)})
	mustAdd(t, b, Ban{Kind: BanClientID, Value: "b"})

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		b.Run(rctx, 0)
		close(done)
	}()
	if d := <-clk.sleeping; d != 30*time.Second {
		t.Fatalf("Run sleeps %s, want the purge interval", d)
	}
	clk.Advance(time.Minute)
	clk.step <- struct{}{}
	<-clk.sleeping // the purge is done
	if n, _ := db.Bans().Count(ctx); n != 1 || b.Len() != 1 {
		t.Fatalf("after a purge: %d stored, %d indexed; want 1", n, b.Len())
	}
	cancel()
	<-done
}

func TestBansConcurrentUse(t *testing.T) {
	b, clk, _ := newBans(t, BansConfig{MaxEntries: 200})
	var wg sync.WaitGroup
	for g := range 4 { // writers
		wg.Go(func() {
			for i := range 60 {
				v := fmt.Sprintf("10.%d.%d.0/24", g, i%20)
				switch i % 3 {
				case 0, 1:
					if _, err := b.Add(ctx, Ban{Kind: BanPeerHost, Value: v, Until: clk.Now().Add(time.Duration(i) * time.Second)}); err != nil &&
						!strings.Contains(err.Error(), "ended") {
						t.Error(err)
					}
				default:
					if _, err := b.Remove(ctx, BanPeerHost, v); err != nil && !errors.Is(err, controldb.ErrNotFound) {
						t.Error(err)
					}
				}
				if i%10 == 0 {
					if _, err := b.Purge(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	for g := range 8 { // readers
		wg.Go(func() {
			for i := range 2000 {
				info := client(fmt.Sprint("c", i%50), "u", fmt.Sprintf("10.%d.%d.9", g%4, i%20))
				if ban, ok := b.Match(info); ok {
					_ = b.MatchesLive(ban, info)
				}
				if i%500 == 0 {
					clk.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if n := b.Len(); n > 200 {
		t.Fatalf("%d bans indexed, bound 200", n)
	}
}

func BenchmarkBansMatch(b *testing.B) {
	db, err := controldb.Open(ctx, filepath.Join(b.TempDir(), "control.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	bans, err := NewBans(ctx, BansConfig{}, db.Bans(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		kinds := []Ban{
			{Kind: BanClientID, Value: fmt.Sprint("banned-", i)},
			{Kind: BanPeerHost, Value: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)},
			{Kind: BanPeerHost, Value: fmt.Sprintf("2001:db8:%x::/48", i)},
		}
		for _, ban := range kinds {
			if _, err := bans.Add(ctx, ban); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, p := range []string{"^bot-[0-9]+$", "^test-", "(?i)^admin$"} {
		if _, err := bans.Add(ctx, Ban{Kind: BanClientIDRe, Value: p}); err != nil {
			b.Fatal(err)
		}
	}
	info := client("device-12345", "fleet", "198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := bans.Match(info); ok {
			b.Fatal("matched")
		}
	}
}
