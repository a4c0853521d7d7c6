package guard

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// recordingBans is a FlappingBans that records what it is given.
type recordingBans struct {
	mu       sync.Mutex
	added    []Ban
	onRemove []func(Ban)
	err      error
}

func (r *recordingBans) Extend(_ context.Context, b Ban) (Ban, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return Ban{}, false, r.err
	}
	r.added = append(r.added, b)
	return b, true, nil
}

func (r *recordingBans) OnRemove(fn func(Ban)) { r.onRemove = append(r.onRemove, fn) }

func (r *recordingBans) take() []Ban {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.added
	r.added = nil
	return a
}

func newFlapping(t *testing.T, cfg FlappingConfig) (*Flapping, *recordingBans, *fakeClock) {
	t.Helper()
	cfg.Enable = true
	rec := &recordingBans{}
	clk := newFakeClock()
	f, err := NewFlapping(cfg, rec, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, rec, clk
}

// flaps counts n flaps of info, step apart, and returns the 1-based numbers of those after
// which the client was banned.
func flaps(f *Flapping, clk *fakeClock, info *clientinfo.Info, n int, step time.Duration) []int {
	var refused []int
	for i := 1; i <= n; i++ {
		if f.Count(ctx, info) {
			refused = append(refused, i)
		}
		clk.Advance(step)
	}
	return refused
}

func TestFlappingTrips(t *testing.T) {
	f, rec, clk := newFlapping(t, FlappingConfig{})
	info := client("dev-1", "alice", "192.0.2.7")
	start := clk.Now()
	// 20 flaps in 10 s: the 16th bans, and every one after it finds the ban.
	refused := flaps(f, clk, info, 20, 500*time.Millisecond)
	if want := []int{16, 17, 18, 19, 20}; !slices.Equal(refused, want) {
		t.Fatalf("refused attempts %v, want %v", refused, want)
	}
	bans := rec.take()
	tripped := start.Add(15 * 500 * time.Millisecond)
	var kinds []string
	for _, b := range bans {
		kinds = append(kinds, string(b.Kind)+"="+b.Value)
		if b.Reason != "flapping" || b.By != "flapping_detect" || !b.CreatedAt.Equal(tripped) || !b.Until.Equal(tripped.Add(5*time.Minute)) {
			t.Errorf("ban %+v", b)
		}
	}
	if got := strings.Join(kinds, " "); got != "clientid=dev-1 username=alice peerhost=192.0.2.7" {
		t.Fatalf("bans %s", got)
	}
}

func TestFlappingWindowExpiryResets(t *testing.T) {
	f, rec, clk := newFlapping(t, FlappingConfig{MaxCount: 5, WindowTime: 10 * time.Second})
	info := client("dev-1", "", "192.0.2.7")
	// 5 flaps in the first window, 5 in the next: each window tolerates them all.
	if r := flaps(f, clk, info, 5, time.Second); r != nil {
		t.Fatalf("refused %v in the first window", r)
	}
	clk.Advance(5 * time.Second) // the window, from the first flap, has ended
	if r := flaps(f, clk, info, 5, time.Second); r != nil {
		t.Fatalf("refused %v in the second window", r)
	}
	// The window starts at its first flap, not at the latest.
	if !f.Count(ctx, info) {
		t.Fatal("the 6th flap of the second window did not ban")
	}
	if n := len(rec.take()); n != 2 {
		t.Fatalf("%d bans, want client id and address", n)
	}
}

func TestFlappingBanTimeExpiry(t *testing.T) {
	f, _, clk := newFlapping(t, FlappingConfig{MaxCount: 3, BanTime: time.Minute})
	info := client("dev-1", "", "")
	if r := flaps(f, clk, info, 4, 0); !slices.Equal(r, []int{4}) {
		t.Fatalf("refused %v", r)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if !f.Count(ctx, info) {
		t.Fatal("admitted before the ban ended")
	}
	clk.Advance(time.Nanosecond)
	// The ban has ended and counting starts afresh.
	if r := flaps(f, clk, info, 4, 0); !slices.Equal(r, []int{4}) {
		t.Fatalf("after the ban: refused %v", r)
	}
}

func TestFlappingIdentitiesCountedSeparately(t *testing.T) {
	tests := []struct {
		name    string
		countBy []BanKind
		info    func(i int) *clientinfo.Info
		refused []int
		banned  []string
	}{
		{"one address, new client ids", nil,
			func(i int) *clientinfo.Info { return client(fmt.Sprint("c", i), "", "192.0.2.7") },
			[]int{4, 5}, []string{"peerhost=192.0.2.7"}},
		{"one client id, new addresses", nil,
			func(i int) *clientinfo.Info { return client("dev-1", "", fmt.Sprint("192.0.2.", i)) },
			[]int{4, 5}, []string{"clientid=dev-1"}},
		{"one username", nil,
			func(i int) *clientinfo.Info { return client(fmt.Sprint("c", i), "fleet", fmt.Sprint("192.0.2.", i)) },
			[]int{4, 5}, []string{"username=fleet"}},
		{"an IPv4-mapped address is the IPv4 one", nil,
			func(i int) *clientinfo.Info {
				if i%2 == 0 {
					return client(fmt.Sprint("c", i), "", "::ffff:192.0.2.7")
				}
				return client(fmt.Sprint("c", i), "", "192.0.2.7")
			},
			[]int{4, 5}, []string{"peerhost=192.0.2.7"}},
		{"addresses not counted", []BanKind{BanClientID},
			func(i int) *clientinfo.Info { return client(fmt.Sprint("c", i), "", "192.0.2.7") },
			nil, nil},
		{"usernames not counted", []BanKind{BanClientID, BanPeerHost},
			func(i int) *clientinfo.Info { return client(fmt.Sprint("c", i), "fleet", fmt.Sprint("192.0.2.", i)) },
			nil, nil},
		{"empty fields are not identities", nil,
			func(i int) *clientinfo.Info { return client("", "", "") },
			nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, rec, _ := newFlapping(t, FlappingConfig{MaxCount: 3, CountBy: tc.countBy})
			var refused []int
			for i := 1; i <= 5; i++ {
				if f.Count(ctx, tc.info(i)) {
					refused = append(refused, i)
				}
			}
			if !slices.Equal(refused, tc.refused) {
				t.Fatalf("refused %v, want %v", refused, tc.refused)
			}
			var banned []string
			for _, b := range rec.take() {
				banned = append(banned, string(b.Kind)+"="+b.Value)
			}
			if !slices.Equal(banned, tc.banned) {
				t.Fatalf("banned %v, want %v", banned, tc.banned)
			}
		})
	}
}

// Banned tells the ban without counting: a client checked any number of times is not
// banned, and one banned stays so, for all its identities, until the ban time ends.
func TestFlappingBanned(t *testing.T) {
	f, rec, clk := newFlapping(t, FlappingConfig{MaxCount: 2, BanTime: time.Minute})
	info := client("dev-1", "alice", "192.0.2.7")
	for range 100 {
		if f.Banned(info) {
			t.Fatal("Banned before any flap")
		}
	}
	if f.Entries() != 0 {
		t.Fatalf("Banned tracks %d identities", f.Entries())
	}
	if r := flaps(f, clk, info, 3, time.Second); !slices.Equal(r, []int{3}) {
		t.Fatalf("banned after flaps %v", r)
	}
	tests := []struct {
		name string
		info *clientinfo.Info
		want bool
	}{
		{"the client", info, true},
		{"its client id from elsewhere", client("dev-1", "", "192.0.2.99"), true},
		{"its username", client("other", "alice", ""), true},
		{"its address", client("other", "", "192.0.2.7"), true},
		{"another client", client("dev-2", "bob", "192.0.2.8"), false},
	}
	for _, tc := range tests {
		if got := f.Banned(tc.info); got != tc.want {
			t.Errorf("%s: Banned %v, want %v", tc.name, got, tc.want)
		}
	}
	if n := len(rec.take()); n != 3 {
		t.Fatalf("%d bans, want client id, username and address", n)
	}
	// Banned at the third flap, 2 s after the first; the clock is 1 s past it.
	clk.Advance(time.Minute - time.Second - time.Nanosecond)
	if !f.Banned(info) {
		t.Fatal("not banned any more before the ban time ended")
	}
	clk.Advance(time.Nanosecond)
	if f.Banned(info) {
		t.Fatal("still banned when the ban time ended")
	}
}

func TestFlappingDisabled(t *testing.T) {
	f, err := NewFlapping(FlappingConfig{MaxCount: 1}, nil, newFakeClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if f.Count(ctx, client("c", "u", "192.0.2.1")) || f.Banned(client("c", "u", "192.0.2.1")) {
			t.Fatal("a disabled detector banned")
		}
	}
	if f.Entries() != 0 {
		t.Fatal("a disabled detector tracks clients")
	}
}

// With the real ban list: the flapping ban is stored, matched, and lifting it clears
// Flapping's record of the identity.
func TestFlappingWithBans(t *testing.T) {
	db := openControlDB(t, filepath.Join(t.TempDir(), "control.db"))
	clk := newFakeClock()
	bans, err := NewBans(ctx, BansConfig{}, db.Bans(), clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	var live []Ban
	bans.OnAdd(func(b Ban) { live = append(live, b) })
	f, err := NewFlapping(FlappingConfig{Enable: true, MaxCount: 2, CountBy: []BanKind{BanClientID}}, bans, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	info := client("dev-1", "", "192.0.2.7")
	if r := flaps(f, clk, info, 3, time.Second); !slices.Equal(r, []int{3}) {
		t.Fatalf("refused %v", r)
	}
	got, ok := bans.Match(info)
	if !ok || got.Kind != BanClientID || got.Value != "dev-1" || got.By != "flapping_detect" {
		t.Fatalf("ban list: %+v, %v", got, ok)
	}
	if len(live) != 1 {
		t.Fatalf("%d OnAdd calls", len(live))
	}
	if stored, err := db.Bans().Get(ctx, BanClientID, "dev-1"); err != nil || stored.Reason != "flapping" {
		t.Fatalf("stored: %+v, %v", stored, err)
	}
	// An operator lifts the ban: the client is admitted again, its count fresh.
	if _, err := bans.Remove(ctx, BanClientID, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if r := flaps(f, clk, info, 3, time.Second); !slices.Equal(r, []int{3}) {
		t.Fatalf("after the ban was lifted: refused %v", r)
	}
	// An operator's longer ban is not shortened by flapping.
	if _, err := bans.Add(ctx, Ban{Kind: BanClientID, Value: "dev-2", Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	flaps(f, clk, client("dev-2", "", ""), 3, 0)
	if got, _ := bans.Match(client("dev-2", "", "")); got.Reason != "manual" || !got.Until.IsZero() {
		t.Fatalf("flapping replaced an operator's ban: %+v", got)
	}
}

// When the ban list refuses the ban (full here), Flapping still enforces it.
func TestFlappingBanListRefuses(t *testing.T) {
	db := openControlDB(t, filepath.Join(t.TempDir(), "control.db"))
	clk := newFakeClock()
	bans, err := NewBans(ctx, BansConfig{MaxEntries: 1}, db.Bans(), clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bans.Add(ctx, Ban{Kind: BanClientID, Value: "other"}); err != nil {
		t.Fatal(err)
	}
	f, err := NewFlapping(FlappingConfig{Enable: true, MaxCount: 2, BanTime: time.Minute}, bans, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	info := client("dev-1", "", "")
	if r := flaps(f, clk, info, 5, time.Second); !slices.Equal(r, []int{3, 4, 5}) {
		t.Fatalf("refused %v", r)
	}
	if _, ok := bans.Match(info); ok {
		t.Fatal("the full ban list took the ban")
	}
	clk.Advance(time.Minute)
	if f.Count(ctx, info) {
		t.Fatal("refused after the ban time")
	}
}

func TestFlappingMemoryBound(t *testing.T) {
	const max = 100000
	f, rec, clk := newFlapping(t, FlappingConfig{MaxEntries: max})
	// Before the flood, one client is banned.
	victim := client("flapper", "", "")
	if r := flaps(f, clk, victim, 16, 0); !slices.Equal(r, []int{16}) {
		t.Fatalf("refused %v", r)
	}
	// Half a million identities: each flap has a new client id from a new address.
	const n = 500_000
	for i := range n {
		clk.Advance(time.Microsecond)
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		info := &clientinfo.Info{ClientID: "c-" + strconv.Itoa(i), Peer: netip.AddrPortFrom(a, 1)}
		if f.Count(ctx, info) {
			t.Fatalf("flap %d banned", i)
		}
		if i%50000 == 0 && f.Entries() > max {
			t.Fatalf("after %d flaps: %d entries, bound %d", i, f.Entries(), max)
		}
	}
	if e := f.Entries(); e != max {
		t.Fatalf("%d entries, want the bound %d", e, max)
	}
	f.checkInvariants(t)
	// The ban outlived the flood; the oldest windows went first.
	if !f.Count(ctx, victim) {
		t.Fatal("the flood cleared a ban")
	}
	if f.tracks(BanClientID, "c-0") || !f.tracks(BanClientID, "c-"+strconv.Itoa(n-1)) {
		t.Fatal("eviction did not take the soonest-expiring entries")
	}
	if n := len(rec.take()); n != 1 {
		t.Fatalf("%d bans, want the victim's", n)
	}
	// Once everything has expired, the table drains as it is used.
	clk.Advance(10 * time.Minute)
	for range max/maxPurge + 1 {
		f.Count(ctx, client("", "", "192.0.2.50"))
	}
	if e := f.Entries(); e > 1 {
		t.Fatalf("%d entries left after everything expired", e)
	}
}

func TestFlappingConcurrent(t *testing.T) {
	f, rec, clk := newFlapping(t, FlappingConfig{})
	clk.frozen = true
	// 200 simultaneous flaps of one client id: exactly MaxCount are tolerated.
	var admitted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 200 {
		wg.Go(func() {
			<-start
			if !f.Count(ctx, client("dev-1", "", fmt.Sprint("10.0.0.", g))) {
				admitted.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if a := admitted.Load(); a != 15 {
		t.Fatalf("%d of 200 simultaneous flaps tolerated, want 15", a)
	}
	if n := len(rec.take()); n != 1 {
		t.Fatalf("%d bans, want 1", n)
	}
	// Mixed use with a small table, and bans being lifted meanwhile.
	f, _, clk = newFlapping(t, FlappingConfig{MaxEntries: 64, MaxCount: 5})
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				info := client(fmt.Sprint("c", (g*7+i)%97), fmt.Sprint("u", i%13), fmt.Sprint("10.1.", g, ".", i%31))
				f.Count(ctx, info)
				if i%300 == 0 {
					clk.Advance(time.Minute)
					f.forget(Ban{Kind: BanUsername, Value: fmt.Sprint("u", i%13)})
				}
				if e := f.Entries(); e > 64 {
					t.Errorf("%d entries, bound 64", e)
					return
				}
			}
		})
	}
	wg.Wait()
	f.checkInvariants(t)
}

func TestFlappingConfig(t *testing.T) {
	bad := FlappingConfig{MaxCount: -1, WindowTime: -1, BanTime: -1, MaxEntries: -1,
		CountBy: []BanKind{BanClientID, BanPeerHost, BanClientID, BanClientIDRe}}
	err := bad.Validate()
	for _, want := range []string{"max_count", "window_time", "ban_time", "max_entries", `"clientid" is listed twice`, `"clientid_re"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not say %s: %v", want, err)
		}
	}
	if _, err := NewFlapping(bad, nil, nil, nil); err == nil {
		t.Fatal("NewFlapping accepted an invalid config")
	}
	f, err := NewFlapping(FlappingConfig{Enable: true}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, d := f.Config(), DefaultFlappingConfig()
	if !c.Enable || c.MaxCount != d.MaxCount || c.WindowTime != d.WindowTime || c.BanTime != d.BanTime ||
		c.MaxEntries != d.MaxEntries || !slices.Equal(c.CountBy, d.CountBy) {
		t.Fatalf("defaults %+v", c)
	}
	if d.MaxCount != 15 || d.WindowTime != time.Minute || d.BanTime != 5*time.Minute || d.MaxEntries != 100000 {
		t.Fatalf("DefaultFlappingConfig %+v", d)
	}
}

// Test helpers reading the detector's state.

func (f *Flapping) tracks(kind BanKind, value string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.tracked.entries[f.textKey(kind, value)]
	return ok
}

func (f *Flapping) checkInvariants(t *testing.T) {
	t.Helper()
	checkTable(t, &f.mu, &f.tracked)
}
