package guard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when told to; Sleep returns at once, records
// the duration and, unless frozen, moves the time by it. Concurrent sleeps would overlap in
// real time but add up here, so tests with many goroutines freeze the clock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	frozen bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		c.now = c.now.Add(d)
	}
	c.slept = append(c.slept, d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) takeSlept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slept
	c.slept = nil
	return s
}

func newLimiter(t *testing.T, cfg FailureLimiterConfig) (*FailureLimiter, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	l, err := NewFailureLimiter(cfg, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

var ctx = context.Background()

// attempt runs one authentication through the limiter; credOK says whether the credentials
// would be right. It reports whether the attempt reached the credential check.
func attempt(t *testing.T, l *FailureLimiter, ip netip.Addr, user string, credOK bool) (bool, Verdict) {
	t.Helper()
	v, err := l.Check(ctx, ip, user)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if v.Refused {
		return false, v
	}
	if credOK {
		l.Success(ip, user)
	} else {
		l.Failure(ip, user)
	}
	return true, v
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestFailureLimiterConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*FailureLimiterConfig)
		wantErr string
	}{
		{"zero is all defaults", func(*FailureLimiterConfig) {}, ""},
		{"negative delay disables it", func(c *FailureLimiterConfig) { c.Delay = -1 }, ""},
		{"delay equal to max", func(c *FailureLimiterConfig) { c.Delay, c.MaxDelay = time.Second, time.Second }, ""},
		{"full prefixes", func(c *FailureLimiterConfig) { c.IPv4Prefix, c.IPv6Prefix = 32, 128 }, ""},
		{"negative user max", func(c *FailureLimiterConfig) { c.MaxFailuresPerUser = -1 }, "max_failures_per_user"},
		{"negative ip max", func(c *FailureLimiterConfig) { c.MaxFailuresPerIP = -5 }, "max_failures_per_ip"},
		{"negative any-address max", func(c *FailureLimiterConfig) { c.MaxFailuresPerUserAnyAddress = -1 }, "max_failures_per_user_any_address"},
		{"negative window", func(c *FailureLimiterConfig) { c.Window = -time.Second }, "window"},
		{"negative max delay", func(c *FailureLimiterConfig) { c.MaxDelay = -time.Second }, "max_delay"},
		{"delay over max", func(c *FailureLimiterConfig) { c.Delay = 3 * time.Second }, "delay: 3s is longer than max_delay 2s"},
		{"negative cooldown", func(c *FailureLimiterConfig) { c.Cooldown = -time.Minute }, "cooldown"},
		{"negative max entries", func(c *FailureLimiterConfig) { c.MaxEntries = -1 }, "max_entries"},
		{"ipv4 prefix too long", func(c *FailureLimiterConfig) { c.IPv4Prefix = 33 }, "ipv4_prefix"},
		{"ipv6 prefix too long", func(c *FailureLimiterConfig) { c.IPv6Prefix = 129 }, "ipv6_prefix"},
		{"negative ipv6 prefix", func(c *FailureLimiterConfig) { c.IPv6Prefix = -64 }, "ipv6_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg FailureLimiterConfig
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := NewFailureLimiter(cfg, nil, nil); err != nil {
					t.Fatalf("NewFailureLimiter: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if _, err := NewFailureLimiter(cfg, nil, nil); err == nil {
				t.Fatal("NewFailureLimiter accepted an invalid config")
			}
		})
	}
}

func TestFailureLimiterValidateReportsEveryField(t *testing.T) {
	cfg := FailureLimiterConfig{MaxFailuresPerUser: -1, Window: -1, IPv4Prefix: 40}
	err := cfg.Validate()
	for _, k := range []string{"max_failures_per_user", "window", "ipv4_prefix"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
}

func TestFailureLimiterDefaults(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{})
	if got, want := l.Config(), DefaultFailureLimiterConfig(); got != want {
		t.Fatalf("config %+v, want %+v", got, want)
	}
	l, _ = newLimiter(t, FailureLimiterConfig{Delay: -1})
	if l.Config().Delay != 0 {
		t.Fatalf("negative delay gave %s", l.Config().Delay)
	}
}

func TestBruteForceFromOneIP(t *testing.T) {
	tests := []struct {
		name      string
		user      func(i int) string
		wantLimit int
		wantScope Scope
	}{
		{"one username", func(int) string { return "alice" }, 5, ScopeUser},
		{"password spraying over usernames", func(i int) string { return fmt.Sprintf("user%d", i) }, 20, ScopeIP},
		{"no username", func(int) string { return "" }, 20, ScopeIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := newLimiter(t, FailureLimiterConfig{})
			ip := addr("198.51.100.7")
			hashed := 0
			for i := range 50 {
				ok, v := attempt(t, l, ip, tt.user(i), false)
				if ok {
					hashed++
					continue
				}
				if v.Scope != tt.wantScope {
					t.Fatalf("attempt %d refused by %v, want %v", i, v.Scope, tt.wantScope)
				}
				if v.RetryAfter <= 0 || v.RetryAfter > 5*time.Minute {
					t.Fatalf("attempt %d: RetryAfter %s", i, v.RetryAfter)
				}
			}
			if hashed != tt.wantLimit {
				t.Fatalf("%d attempts reached the credential check, want %d", hashed, tt.wantLimit)
			}
			// Even the right password is refused during the cooldown.
			if ok, _ := attempt(t, l, ip, tt.user(0), true); ok {
				t.Fatal("an attempt with the right password reached the check during the cooldown")
			}
			// The cooldown holds until its last instant ...
			clk.Advance(5*time.Minute - time.Second)
			if ok, v := attempt(t, l, ip, tt.user(0), true); ok || v.RetryAfter > 5*time.Minute {
				t.Fatalf("attempt admitted (%v) or RetryAfter %s, with the cooldown nearly over", ok, v.RetryAfter)
			}
			// ... and ends after it.
			clk.Advance(time.Minute)
			if ok, _ := attempt(t, l, ip, tt.user(0), true); !ok {
				t.Fatal("attempt refused after the cooldown")
			}
		})
	}
}

func TestRefusedAttemptsCostNothing(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{})
	ip := addr("198.51.100.7")
	for range 5 {
		attempt(t, l, ip, "alice", false)
	}
	before := l.Entries()
	clk.takeSlept()
	for i := range 1000 {
		v, err := l.Check(ctx, ip, "alice")
		if err != nil || !v.Refused {
			t.Fatalf("attempt %d: %+v, %v", i, v, err)
		}
	}
	if got := clk.takeSlept(); len(got) != 0 {
		t.Fatalf("refused attempts slept %v", got)
	}
	if l.Entries() != before {
		t.Fatalf("refused attempts changed the table: %d entries, was %d", l.Entries(), before)
	}
}

func TestSuccessResetsUserNotIP(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{MaxFailuresPerIP: 10, Delay: -1})
	ip := addr("192.0.2.1")
	for round := range 2 {
		for i := range 4 {
			if ok, _ := attempt(t, l, ip, "alice", false); !ok {
				t.Fatalf("round %d: failure %d refused", round, i)
			}
		}
		if ok, _ := attempt(t, l, ip, "alice", true); !ok {
			t.Fatalf("round %d: success refused", round)
		}
	}
	// The user counter was reset twice, but the address has 8 failures: 2 more reach its limit.
	for i := range 2 {
		if ok, _ := attempt(t, l, ip, "bob", false); !ok {
			t.Fatalf("failure %d from the address refused early", i)
		}
	}
	ok, v := attempt(t, l, ip, "alice", true)
	if ok || v.Scope != ScopeIP {
		t.Fatalf("address not in cooldown after 10 failures: admitted=%v %+v", ok, v)
	}
	// alice from elsewhere is fine: her own counter is clear.
	if ok, _ := attempt(t, l, addr("192.0.2.2"), "alice", true); !ok {
		t.Fatal("alice refused from another address")
	}
}

func TestWindowExpiry(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{Delay: -1})
	ip := addr("192.0.2.1")
	for i := range 4 {
		if ok, _ := attempt(t, l, ip, "alice", false); !ok {
			t.Fatalf("failure %d refused", i)
		}
	}
	clk.Advance(time.Minute) // the window from the first failure has passed
	for i := range 4 {
		if ok, _ := attempt(t, l, ip, "alice", false); !ok {
			t.Fatalf("failure %d after the window refused", i)
		}
	}
	// Within the new window the fifth failure starts the cooldown.
	attempt(t, l, ip, "alice", false)
	if ok, v := attempt(t, l, ip, "alice", true); ok || v.Scope != ScopeUser {
		t.Fatalf("no cooldown after 5 failures in a window: admitted=%v %+v", ok, v)
	}
}

func TestWindowIsAnchoredAtFirstFailure(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{Delay: -1})
	ip := addr("192.0.2.1")
	attempt(t, l, ip, "alice", false)
	clk.Advance(59 * time.Second)
	for range 3 {
		attempt(t, l, ip, "alice", false)
	}
	clk.Advance(2 * time.Second) // past the window of the first failure: the count restarts
	for i := range 4 {
		if ok, _ := attempt(t, l, ip, "alice", false); !ok {
			t.Fatalf("failure %d of the new window refused", i)
		}
	}
}

func TestCredentialStuffingOneAccount(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{})
	hashed := 0
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
		ok, v := attempt(t, l, ip, "admin", false)
		if ok {
			hashed++
		} else if v.Scope != ScopeUserAnyAddress {
			t.Fatalf("attempt %d refused by %v, want user_any_address", i, v.Scope)
		}
	}
	if hashed != 50 {
		t.Fatalf("%d attempts on one account from 200 addresses reached the credential check, want 50", hashed)
	}
	// The account is refused everywhere now, even from an address that never failed.
	if ok, v := attempt(t, l, addr("198.51.100.1"), "admin", true); ok || v.Scope != ScopeUserAnyAddress {
		t.Fatalf("right password from a fresh address: admitted=%v %+v, want refused by user_any_address", ok, v)
	}
	// Case variants are the same account to a case-insensitive backend.
	for _, u := range []string{"Admin", "ADMIN", "aDmIn"} {
		if ok, _ := attempt(t, l, addr("203.1.0.1"), u, true); ok {
			t.Fatalf("%q reached the credential check", u)
		}
	}
	// Other accounts, from a fresh address, are unaffected.
	if ok, _ := attempt(t, l, addr("203.1.0.1"), "operator", true); !ok {
		t.Fatal("another account refused")
	}
}

// TestStrangerCannotLockOutADevice is the lockout attack: wrong passwords for alice from
// another address lock alice out of that address only; alice from her own address still
// gets in with the right password, without any delay the stranger caused.
func TestStrangerCannotLockOutADevice(t *testing.T) {
	tests := []struct {
		name      string
		stranger  []string // the addresses the wrong passwords come from, in turn
		failures  int
		wantScope Scope // what refuses the stranger afterwards
	}{
		{"one address, up to the per-user limit", []string{"198.51.100.7"}, 5, ScopeUser},
		{"one address, far beyond it", []string{"198.51.100.7"}, 100, ScopeUser},
		{"a few addresses, below the any-address limit", []string{"198.51.100.7", "198.51.100.8", "203.0.113.9"}, 15, ScopeUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := newLimiter(t, FailureLimiterConfig{MaxFailuresPerIP: 1000})
			for i := range tt.failures {
				attempt(t, l, addr(tt.stranger[i%len(tt.stranger)]), "alice", false)
			}
			ok, v := attempt(t, l, addr(tt.stranger[0]), "alice", true)
			if ok || v.Scope != tt.wantScope {
				t.Fatalf("the stranger's address: admitted=%v %+v, want refused by %v", ok, v, tt.wantScope)
			}
			clk.takeSlept()
			home := addr("192.0.2.10")
			ok, v = attempt(t, l, home, "alice", true)
			if !ok {
				t.Fatalf("alice from her own address refused by %v after a stranger's failures", v.Scope)
			}
			if v.Delay != 0 {
				t.Fatalf("alice from her own address delayed %s by a stranger's failures", v.Delay)
			}
		})
	}
}

// TestDistributedAttackOnOneAccount: failures for one account from many addresses, each
// below the per-user limit, reach the any-address limit and lock the account everywhere,
// its own address included, until the cooldown ends; a success from the account's own
// address in between does not reset that count.
func TestDistributedAttackOnOneAccount(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{MaxFailuresPerUserAnyAddress: 12, Delay: -1})
	home := addr("192.0.2.10")
	hashed := 0
	for i := range 40 {
		if i == 6 {
			if ok, _ := attempt(t, l, home, "alice", true); !ok {
				t.Fatal("alice refused at home before the any-address limit")
			}
		}
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		if ok, v := attempt(t, l, ip, "alice", false); ok {
			hashed++
		} else if v.Scope != ScopeUserAnyAddress {
			t.Fatalf("attempt %d refused by %v, want user_any_address", i, v.Scope)
		}
	}
	if hashed != 12 {
		t.Fatalf("%d attempts from 40 addresses reached the credential check, want 12", hashed)
	}
	if ok, v := attempt(t, l, home, "alice", true); ok || v.Scope != ScopeUserAnyAddress {
		t.Fatalf("alice at home during the account's cooldown: admitted=%v %+v", ok, v)
	}
	if ok, _ := attempt(t, l, home, "bob", true); !ok {
		t.Fatal("another account refused")
	}
	clk.Advance(5 * time.Minute)
	if ok, _ := attempt(t, l, home, "alice", true); !ok {
		t.Fatal("alice refused after the cooldown")
	}
}

func TestEmptyUsernameCountsOnlyPerIP(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{Delay: -1})
	ip := addr("192.0.2.1")
	for range 19 {
		attempt(t, l, ip, "", false)
	}
	if n := l.Entries(); n != 1 {
		t.Fatalf("%d entries, want only the address", n)
	}
	if ok, _ := attempt(t, l, addr("192.0.2.2"), "", false); !ok {
		t.Fatal("another address refused")
	}
	attempt(t, l, ip, "", false)
	if ok, v := attempt(t, l, ip, "", true); ok || v.Scope != ScopeIP {
		t.Fatalf("address not in cooldown after 20 failures: admitted=%v %+v", ok, v)
	}
}

func TestAddressBuckets(t *testing.T) {
	tests := []struct {
		name     string
		cfg      FailureLimiterConfig
		attacker []string // failures come from these addresses in turn
		probe    string
		refused  bool
	}{
		{"IPv6 rotation within a /64", FailureLimiterConfig{},
			[]string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:abcd:ef01:2345:6789"}, "2001:db8:1:2::dead", true},
		{"IPv6 next /64 is another subscriber", FailureLimiterConfig{},
			[]string{"2001:db8:1:2::1"}, "2001:db8:1:3::1", false},
		{"IPv6 /48 when configured", FailureLimiterConfig{IPv6Prefix: 48},
			[]string{"2001:db8:1:2::1", "2001:db8:1:ffff::1"}, "2001:db8:1:9::1", true},
		{"IPv6 zone ignored", FailureLimiterConfig{},
			[]string{"fe80::1%eth0"}, "fe80::2%eth1", true},
		{"IPv4 /32 by default", FailureLimiterConfig{},
			[]string{"192.0.2.1"}, "192.0.2.2", false},
		{"IPv4 same address", FailureLimiterConfig{},
			[]string{"192.0.2.1"}, "192.0.2.1", true},
		{"IPv4 /24 when configured", FailureLimiterConfig{IPv4Prefix: 24},
			[]string{"192.0.2.1", "192.0.2.200"}, "192.0.2.77", true},
		{"IPv4-mapped IPv6 is the IPv4 address", FailureLimiterConfig{},
			[]string{"::ffff:192.0.2.1"}, "192.0.2.1", true},
		{"IPv4 and IPv6 apart", FailureLimiterConfig{},
			[]string{"192.0.2.1"}, "::c000:201", false},
		{"unknown peers share one counter", FailureLimiterConfig{},
			[]string{""}, "", true},
	}
	parse := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return addr(s)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Delay = -1
			l, _ := newLimiter(t, tt.cfg)
			for i := range 20 {
				ip := parse(tt.attacker[i%len(tt.attacker)])
				if ok, _ := attempt(t, l, ip, fmt.Sprintf("u%d", i), false); !ok {
					t.Fatalf("failure %d refused before the limit", i)
				}
			}
			ok, v := attempt(t, l, parse(tt.probe), "someone", true)
			if ok == tt.refused {
				t.Fatalf("probe from %q admitted=%v (%+v), want refused=%v", tt.probe, ok, v, tt.refused)
			}
		})
	}
}

func TestTarpitDelay(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name string
		cfg  FailureLimiterConfig
		want []time.Duration // delay before each of the attempts, all failing
	}{
		{"defaults, per user", FailureLimiterConfig{},
			[]time.Duration{0, 0, 200 * ms, 400 * ms, 600 * ms}},
		{"capped", FailureLimiterConfig{MaxFailuresPerUser: 30, MaxFailuresPerIP: 30, Delay: 500 * ms, MaxDelay: 1200 * ms},
			[]time.Duration{0, 0, 500 * ms, 1000 * ms, 1200 * ms, 1200 * ms}},
		{"disabled", FailureLimiterConfig{Delay: -1},
			[]time.Duration{0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newLimiter(t, tt.cfg)
			for i, want := range tt.want {
				ok, v := attempt(t, l, addr("192.0.2.1"), "alice", false)
				if !ok {
					t.Fatalf("attempt %d refused", i)
				}
				if v.Delay != want {
					t.Fatalf("attempt %d delayed %s, want %s", i, v.Delay, want)
				}
			}
		})
	}
}

func TestDelayUsesTheWorseCounter(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{Delay: 100 * time.Millisecond})
	ip := addr("192.0.2.1")
	for i := range 4 { // 4 failures from the address over 4 usernames
		attempt(t, l, ip, fmt.Sprintf("u%d", i), false)
	}
	clk.takeSlept()
	if _, v := attempt(t, l, ip, "fresh", true); v.Delay != 300*time.Millisecond {
		t.Fatalf("fresh username from a failing address delayed %s, want 300ms", v.Delay)
	}
	if got := clk.takeSlept(); len(got) != 1 || got[0] != 300*time.Millisecond {
		t.Fatalf("slept %v", got)
	}
}

func TestCheckHonoursContext(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{})
	ip := addr("192.0.2.1")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Check(cctx, ip, "alice"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Check with a cancelled context: %v", err)
	}
	// Also when the cancellation interrupts the delay.
	for range 3 {
		attempt(t, l, ip, "alice", false)
	}
	blocking := &ctxClock{fakeClock: newFakeClock()}
	l.clock = blocking
	cctx, cancel = context.WithCancel(ctx)
	blocking.onSleep = cancel
	v, err := l.Check(cctx, ip, "alice")
	if !errors.Is(err, context.Canceled) || v.Refused {
		t.Fatalf("Check interrupted in its delay: %+v, %v", v, err)
	}
	for _, k := range []key{l.userKeyOf("alice"), l.userAtKeyOf("alice", ip), l.ipKey(ip)} {
		if n := l.pending(k); n != 0 {
			t.Fatalf("an interrupted Check left %d reservations on %+v", n, k)
		}
	}
}

// ctxClock cancels the context when asked to sleep, then sleeps until it is done.
type ctxClock struct {
	*fakeClock
	onSleep func()
}

func (c *ctxClock) Sleep(ctx context.Context, d time.Duration) error {
	c.onSleep()
	<-ctx.Done()
	return ctx.Err()
}

func TestInFlightAttemptsCount(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{Delay: -1})
	ip := addr("192.0.2.1")
	// Five simultaneous attempts are admitted before any resolves ...
	for i := range 5 {
		if v, err := l.Check(ctx, ip, "alice"); err != nil || v.Refused {
			t.Fatalf("attempt %d: %+v, %v", i, v, err)
		}
	}
	// ... the sixth waits for a slot.
	type result struct {
		v   Verdict
		err error
	}
	sixth := make(chan result, 1)
	go func() {
		v, err := l.Check(ctx, ip, "alice")
		sixth <- result{v, err}
	}()
	waitForWaiters(t, l, l.userAtKeyOf("alice", ip), 1)
	// A seventh gives up while waiting.
	cctx, cancel := context.WithCancel(ctx)
	seventh := make(chan error, 1)
	go func() {
		_, err := l.Check(cctx, ip, "alice")
		seventh <- err
	}()
	waitForWaiters(t, l, l.userAtKeyOf("alice", ip), 2)
	cancel()
	if err := <-seventh; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	// A failure uses its slot up; a release frees one: the sixth goes on.
	l.Failure(ip, "alice")
	l.Release(ip, "alice")
	if r := <-sixth; r.err != nil || r.v.Refused {
		t.Fatalf("sixth attempt: %+v, %v", r.v, r.err)
	}
	// Now 1 failure + 4 in flight. When they all fail, a waiter is refused, not admitted.
	eighth := make(chan result, 1)
	go func() {
		v, err := l.Check(ctx, ip, "alice")
		eighth <- result{v, err}
	}()
	waitForWaiters(t, l, l.userAtKeyOf("alice", ip), 1)
	for range 4 {
		l.Failure(ip, "alice")
	}
	if r := <-eighth; r.err != nil || !r.v.Refused || r.v.Scope != ScopeUser {
		t.Fatalf("waiter after the limit: %+v, %v", r.v, r.err)
	}
}

func TestAbandonedReservationsAreForgotten(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{Delay: -1})
	ip := addr("192.0.2.1")
	for range 5 {
		if _, err := l.Check(ctx, ip, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	if ok, _ := attempt(t, l, ip, "alice", true); !ok {
		t.Fatal("attempt refused after the abandoned reservations' window")
	}
	if n := l.Entries(); n != 0 {
		t.Fatalf("%d entries left after a clean success", n)
	}
}

func TestConcurrentBurst(t *testing.T) {
	tests := []struct {
		name  string
		user  func(g int) string
		limit int
	}{
		{"one account", func(int) string { return "alice" }, 5},
		{"many accounts", func(g int) string { return fmt.Sprintf("u%d", g) }, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := newLimiter(t, FailureLimiterConfig{})
			clk.frozen = true
			ip := addr("198.51.100.7")
			var hashed, refused atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range 200 {
				wg.Go(func() {
					<-start
					v, err := l.Check(ctx, ip, tt.user(g))
					if err != nil {
						t.Error(err)
						return
					}
					if v.Refused {
						refused.Add(1)
						return
					}
					hashed.Add(1)
					runtime.Gosched() // the "hash"
					l.Failure(ip, tt.user(g))
				})
			}
			close(start)
			wg.Wait()
			if h := hashed.Load(); h > int32(tt.limit) {
				t.Fatalf("%d simultaneous attempts reached the credential check, limit %d", h, tt.limit)
			}
			if h, r := hashed.Load(), refused.Load(); h+r != 200 {
				t.Fatalf("hashed %d + refused %d != 200", h, r)
			}
		})
	}
}

func TestConcurrentMixedUse(t *testing.T) {
	l, clk := newLimiter(t, FailureLimiterConfig{MaxEntries: 64})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 7)})
				user := fmt.Sprintf("u%d", (g*31+i)%23)
				v, err := l.Check(ctx, ip, user)
				if err != nil {
					t.Error(err)
					return
				}
				if v.Refused {
					if i%50 == 0 {
						clk.Advance(time.Minute)
					}
					continue
				}
				switch i % 3 {
				case 0:
					l.Success(ip, user)
				case 1:
					l.Failure(ip, user)
				default:
					l.Release(ip, user)
				}
				if n := l.Entries(); n > 64 {
					t.Errorf("%d entries, bound 64", n)
					return
				}
			}
		})
	}
	wg.Wait()
	l.checkInvariants(t)
}

func TestMemoryBound(t *testing.T) {
	const max = 100000
	l, clk := newLimiter(t, FailureLimiterConfig{MaxEntries: max, Delay: -1})

	// Before the flood, a victim account (at one address and from anywhere) and an
	// attacking address are cooling down.
	for i := range 50 {
		attempt(t, l, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), "victim", false)
	}
	attacker := addr("198.51.100.7")
	for range 20 {
		attempt(t, l, attacker, "", false)
	}

	// One million distinct keys: each failure comes from a new /64 for a new username.
	const failures = 500_000
	for i := range failures {
		clk.Advance(time.Microsecond)
		ip6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		l.Failure(ip6, "user-"+strconv.Itoa(i))
		if i%50000 == 0 {
			if n := l.Entries(); n > max {
				t.Fatalf("after %d failures: %d entries, bound %d", i, n, max)
			}
		}
	}
	if n := l.Entries(); n != max {
		t.Fatalf("%d entries, want the bound %d", n, max)
	}
	l.checkInvariants(t)

	// The counters expiring soonest went first: the oldest flood keys are gone, the newest
	// are kept, and the cooldowns outlived the flood.
	if l.has(l.userKeyOf("user-0")) {
		t.Error("the oldest flood key survived")
	}
	if !l.has(l.userKeyOf("user-" + strconv.Itoa(failures-1))) {
		t.Error("the newest flood key was dropped")
	}
	if ok, v := attempt(t, l, addr("192.0.2.99"), "victim", true); ok || v.Scope != ScopeUserAnyAddress {
		t.Fatalf("the flood cleared the victim account's cooldown: admitted=%v %+v", ok, v)
	}
	if ok, v := attempt(t, l, attacker, "x", true); ok || v.Scope != ScopeIP {
		t.Fatalf("the flood cleared the attacking address's cooldown: admitted=%v %+v", ok, v)
	}

	// Once everything has expired, the table drains as it is used.
	clk.Advance(10 * time.Minute)
	for range max/maxPurge + 1 {
		attempt(t, l, addr("192.0.2.50"), "", true)
	}
	if n := l.Entries(); n != 0 {
		t.Fatalf("%d entries left after everything expired", n)
	}
}

func TestUsernamesAreNotStored(t *testing.T) {
	l, _ := newLimiter(t, FailureLimiterConfig{})
	l.Failure(addr("192.0.2.1"), strings.Repeat("x", 65535))
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.counters.entries {
		if (k.kind == kindUser || k.kind == kindUserAt) && k.user == 0 {
			t.Fatal("username key not hashed")
		}
	}
}

func TestScopeString(t *testing.T) {
	for s, want := range map[Scope]string{ScopeNone: "none", ScopeUser: "user", ScopeIP: "ip", ScopeUserAnyAddress: "user_any_address"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

func TestSystemClockSleep(t *testing.T) {
	c := SystemClock()
	if err := c.Sleep(ctx, 0); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Sleep(cctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with a cancelled context: %v", err)
	}
}

// Test helpers reading the limiter's state.

func (l *FailureLimiter) userKeyOf(name string) key {
	k, _ := l.userKey(name)
	return k
}

func (l *FailureLimiter) userAtKeyOf(name string, ip netip.Addr) key {
	return l.keysOf(ip, name).userAt
}

func (l *FailureLimiter) has(k key) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.counters.entries[k]
	return ok
}

func (l *FailureLimiter) pending(k key) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.counters.entries[k]; ok {
		return e.pending
	}
	return 0
}

func (l *FailureLimiter) waiting(k key) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.counters.entries[k]; ok && e.waiters != nil {
		return e.waiters.Len()
	}
	return 0
}

// waitForWaiters blocks until n Checks wait on k's counter. It synchronises with goroutines;
// it does not measure time.
func waitForWaiters(t *testing.T, l *FailureLimiter, k key, n int) {
	t.Helper()
	for l.waiting(k) < n {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func (l *FailureLimiter) checkInvariants(t *testing.T) {
	t.Helper()
	checkTable(t, &l.mu, &l.counters)
}
