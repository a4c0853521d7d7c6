package guard

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// FailureLimiterConfig configures a FailureLimiter. A zero field takes its default (see
// DefaultFailureLimiterConfig); a negative Delay turns the tarpit delay off.
type FailureLimiterConfig struct {
	// MaxFailuresPerUser is how many failed authentications one username may have from one
	// client address block (see IPv4Prefix and IPv6Prefix) within Window before every
	// attempt for it from that block is refused for Cooldown. Failures from other blocks do
	// not count, so a stranger cannot lock a device out of its own address. Default 5.
	MaxFailuresPerUser int
	// MaxFailuresPerUserAnyAddress is how many failed authentications one username may have
	// from all addresses together within Window before every attempt for it, from
	// anywhere, is refused for Cooldown: it bounds a guessing attack on one account spread
	// over many addresses. Default 50.
	MaxFailuresPerUserAnyAddress int
	// MaxFailuresPerIP is the same for one client address block (see IPv4Prefix and
	// IPv6Prefix). Default 20.
	MaxFailuresPerIP int
	// Window is the span within which failures are counted, from the first failure of a
	// counter. Default 1m.
	Window time.Duration
	// Delay is added before an attempt for each failure of its user or address beyond the
	// first, up to MaxDelay. Default 200ms; negative disables it.
	Delay time.Duration
	// MaxDelay caps the delay. Default 2s.
	MaxDelay time.Duration
	// Cooldown is how long every attempt for a user or from an address block is refused,
	// without checking any credentials, once its counter reached its maximum. Default 5m.
	Cooldown time.Duration
	// MaxEntries bounds the number of counters kept (users and address blocks together).
	// When it is reached, the counter that would expire soonest is dropped. A counter takes
	// about 300 bytes. Default 100000.
	MaxEntries int
	// IPv4Prefix and IPv6Prefix are the prefix lengths by which client addresses are
	// grouped into one counter, so an attacker holding a whole block (an IPv6 /64 is a
	// single subscriber's) cannot rotate through it. Defaults 32 and 64.
	IPv4Prefix int
	IPv6Prefix int
}

// DefaultFailureLimiterConfig returns the defaults.
func DefaultFailureLimiterConfig() FailureLimiterConfig {
	return FailureLimiterConfig{
		MaxFailuresPerUser:           5,
		MaxFailuresPerUserAnyAddress: 50,
		MaxFailuresPerIP:             20,
		Window:                       time.Minute,
		Delay:                        200 * time.Millisecond,
		MaxDelay:                     2 * time.Second,
		Cooldown:                     5 * time.Minute,
		MaxEntries:                   100000,
		IPv4Prefix:                   32,
		IPv6Prefix:                   64,
	}
}

// withDefaults fills zero fields with their defaults and turns a negative Delay into 0.
func (c FailureLimiterConfig) withDefaults() FailureLimiterConfig {
	d := DefaultFailureLimiterConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxFailuresPerUser, d.MaxFailuresPerUser)
	setInt(&c.MaxFailuresPerUserAnyAddress, d.MaxFailuresPerUserAnyAddress)
	setInt(&c.MaxFailuresPerIP, d.MaxFailuresPerIP)
	setDur(&c.Window, d.Window)
	setDur(&c.Delay, d.Delay)
	setDur(&c.MaxDelay, d.MaxDelay)
	setDur(&c.Cooldown, d.Cooldown)
	setInt(&c.MaxEntries, d.MaxEntries)
	setInt(&c.IPv4Prefix, d.IPv4Prefix)
	setInt(&c.IPv6Prefix, d.IPv6Prefix)
	if c.Delay < 0 {
		c.Delay = 0
	}
	return c
}

// Validate reports every invalid field, named by its configuration key.
func (c *FailureLimiterConfig) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("guard: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.MaxFailuresPerUser < 0 {
		bad("max_failures_per_user", "must be positive, got %d", c.MaxFailuresPerUser)
	}
	if c.MaxFailuresPerUserAnyAddress < 0 {
		bad("max_failures_per_user_any_address", "must be positive, got %d", c.MaxFailuresPerUserAnyAddress)
	}
	if c.MaxFailuresPerIP < 0 {
		bad("max_failures_per_ip", "must be positive, got %d", c.MaxFailuresPerIP)
	}
	if c.Window < 0 {
		bad("window", "must be positive, got %s", c.Window)
	}
	if c.MaxDelay < 0 {
		bad("max_delay", "must be positive, got %s", c.MaxDelay)
	}
	if c.Cooldown < 0 {
		bad("cooldown", "must be positive, got %s", c.Cooldown)
	}
	if c.MaxEntries < 0 {
		bad("max_entries", "must be positive, got %d", c.MaxEntries)
	}
	if c.IPv4Prefix < 0 || c.IPv4Prefix > 32 {
		bad("ipv4_prefix", "must be between 1 and 32, got %d", c.IPv4Prefix)
	}
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		bad("ipv6_prefix", "must be between 1 and 128, got %d", c.IPv6Prefix)
	}
	if len(errs) == 0 {
		if v := c.withDefaults(); v.Delay > v.MaxDelay {
			bad("delay", "%s is longer than max_delay %s", v.Delay, v.MaxDelay)
		}
	}
	return errors.Join(errs...)
}

// Scope says which counter refused an attempt.
type Scope int

// The counters.
const (
	ScopeNone           Scope = iota
	ScopeUser                 // the username's counter for the client's address block
	ScopeIP                   // the client address block's counter
	ScopeUserAnyAddress       // the username's counter over all addresses
)

func (s Scope) String() string {
	switch s {
	case ScopeUser:
		return "user"
	case ScopeIP:
		return "ip"
	case ScopeUserAnyAddress:
		return "user_any_address"
	}
	return "none"
}

// Verdict is what Check decided.
type Verdict struct {
	// Refused means the attempt must be refused without checking its credentials.
	Refused bool
	// Scope is the counter in cooldown when Refused.
	Scope Scope
	// RetryAfter is how much of the cooldown is left when Refused.
	RetryAfter time.Duration
	// Delay is how long Check waited before deciding.
	Delay time.Duration
}

// FailureLimiter throttles password guessing and credential stuffing before any password
// hash or backend call. It keeps three counters of failed authentications for an attempt:
//
//   - the username (case-folded, so "Admin" and "admin" share a counter whatever the
//     backend's collation) from the client's address block, limit MaxFailuresPerUser;
//   - the username from any address, limit MaxFailuresPerUserAnyAddress (higher);
//   - the client's address block, limit MaxFailuresPerIP.
//
// Once a counter reaches its maximum within Window, every attempt it covers is refused for
// Cooldown: the username from that block, the username from anywhere, or anything from that
// block. So a stranger's wrong passwords lock the username out of the stranger's block only,
// and a device logging in from its usual address is not locked out unless an attack on its
// account from many addresses reaches the higher limit. Before a cooldown, each failure of
// the username at the block, or of the block, beyond the first adds Delay to the next
// attempt; the any-address counter adds no delay, so strangers cannot slow a device down.
//
// Attempts in flight count against the maximum: Check admits an attempt only while the
// failures of its counters plus their admitted, unresolved attempts stay below the maximum,
// and otherwise waits (honouring ctx) until one resolves. So even a burst of simultaneous
// connections cannot reach the credential check more than MaxFailuresPerUser times per
// username and block (MaxFailuresPerUserAnyAddress per username, MaxFailuresPerIP per
// block) before a cooldown starts. The cost is that one username has at most
// MaxFailuresPerUser credential checks in flight at a time from one block; a large fleet
// sharing one username behind one address reconnects at that concurrency.
//
// Protocol: every Check that admits an attempt must be followed by exactly one of Failure
// (wrong credentials), Success (authenticated) or Release (the attempt ended without a
// verdict on the credentials, e.g. the connection dropped or a backend failed), with the
// same address and username. A reservation never resolved is forgotten after Window.
//
// Usernames are kept as 64-bit keyed hashes, never as text. An empty username counts only
// against the address. MaxEntries bounds all three kinds of counters together. An invalid address (unknown peer) shares one counter with every
// other unknown peer. A FailureLimiter is safe for concurrent use.
type FailureLimiter struct {
	cfg   FailureLimiterConfig
	clock Clock
	log   *slog.Logger
	seed  maphash.Seed

	mu       sync.Mutex // guards counters and everything in it
	counters expiringTable[key, *entry]
}

// NewFailureLimiter validates cfg and returns a limiter. A nil clock is the system clock; a
// nil logger discards logs.
func NewFailureLimiter(cfg FailureLimiterConfig, clock Clock, logger *slog.Logger) (*FailureLimiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = SystemClock()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &FailureLimiter{
		cfg:   cfg,
		clock: clock,
		log:   logger,
		seed:  maphash.MakeSeed(),
		// A dropped counter's waiters look again.
		counters: newExpiringTable(cfg.MaxEntries, func(e *entry) { e.wake(math.MaxInt) }),
	}, nil
}

// Config returns the configuration in effect, defaults filled in.
func (l *FailureLimiter) Config() FailureLimiterConfig { return l.cfg }

// Entries returns the number of counters held, for metrics.
func (l *FailureLimiter) Entries() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counters.len()
}

// Check decides whether an authentication attempt from ip for username may go on to the
// credential check. It first waits the tarpit delay its counters call for, then, if in-flight
// attempts fill the counters, until one resolves. It returns an error only when ctx ends
// while waiting; the attempt is then neither admitted nor refused and must not proceed.
func (l *FailureLimiter) Check(ctx context.Context, ip netip.Addr, username string) (Verdict, error) {
	ks := l.keysOf(ip, username)
	var waited time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return Verdict{Delay: waited}, err
		}
		l.mu.Lock()
		now := l.clock.Now()
		l.counters.purge(now)
		ipE := l.lookup(ks.ip, now)
		var userE, anyE *entry
		if ks.hasUser {
			userE = l.lookup(ks.userAt, now)
			anyE = l.lookup(ks.user, now)
		}

		if v := refusal(now, counted{ipE, ScopeIP}, counted{userE, ScopeUser}, counted{anyE, ScopeUserAnyAddress}); v.Refused {
			l.mu.Unlock()
			v.Delay = waited
			return v, nil
		}

		if d := max(l.delayFor(ipE), l.delayFor(userE)); d > waited {
			l.mu.Unlock()
			if err := l.clock.Sleep(ctx, d-waited); err != nil {
				return Verdict{Delay: waited}, err
			}
			waited = d
			continue // the world may have changed while we slept
		}

		var full *entry
		switch {
		case ipE != nil && ipE.failures+ipE.pending >= l.cfg.MaxFailuresPerIP:
			full = ipE
		case userE != nil && userE.failures+userE.pending >= l.cfg.MaxFailuresPerUser:
			full = userE
		case anyE != nil && anyE.failures+anyE.pending >= l.cfg.MaxFailuresPerUserAnyAddress:
			full = anyE
		}
		if full != nil {
			if err := l.waitForSlot(ctx, full); err != nil {
				return Verdict{Delay: waited}, err
			}
			continue
		}

		l.reserve(ks.ip, now)
		if ks.hasUser {
			l.reserve(ks.userAt, now)
			l.reserve(ks.user, now)
		}
		l.mu.Unlock()
		return Verdict{Delay: waited}, nil
	}
}

// Failure records a failed authentication: it resolves the attempt Check admitted and counts
// one failure for the address block and, when username is not empty, for the username at
// that block and for the username from any address.
func (l *FailureLimiter) Failure(ip netip.Addr, username string) {
	ks := l.keysOf(ip, username)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.counters.purge(now)
	l.fail(ks.ip, now, l.cfg.MaxFailuresPerIP, ip, "")
	if ks.hasUser {
		l.fail(ks.userAt, now, l.cfg.MaxFailuresPerUser, ip, username)
		l.fail(ks.user, now, l.cfg.MaxFailuresPerUserAnyAddress, ip, username)
	}
}

// Success records a successful authentication: it resolves the attempt Check admitted and
// clears the counter of the username at the address block. The address block's failures
// stay counted, so an attacker who owns one account cannot use it to reset the counter of
// the address they guess from; and so do the username's failures from any address, so a
// device that logs in often cannot reset, again and again, the bound on an attack on its
// account from elsewhere.
func (l *FailureLimiter) Success(ip netip.Addr, username string) {
	ks := l.keysOf(ip, username)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.releaseKey(ks.ip, now)
	if !ks.hasUser {
		return
	}
	if e := l.lookup(ks.userAt, now); e != nil {
		l.update(e, now, func(e *entry) {
			e.release()
			e.failures = 0
			e.cooldownUntil = time.Time{}
		})
	}
	l.releaseKey(ks.user, now)
}

// Release resolves an admitted attempt that ended without a verdict on its credentials,
// counting nothing.
func (l *FailureLimiter) Release(ip netip.Addr, username string) {
	ks := l.keysOf(ip, username)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.releaseKey(ks.ip, now)
	if ks.hasUser {
		l.releaseKey(ks.userAt, now)
		l.releaseKey(ks.user, now)
	}
}

// releaseKey resolves one admitted attempt on k's counter, if it still exists.
func (l *FailureLimiter) releaseKey(k key, now time.Time) {
	if e := l.lookup(k, now); e != nil {
		l.update(e, now, func(e *entry) { e.release() })
	}
}

// keySet is the counters of one attempt.
type keySet struct {
	ip      key // the address block
	userAt  key // the username at the address block
	user    key // the username from any address
	hasUser bool
}

func (l *FailureLimiter) keysOf(ip netip.Addr, username string) keySet {
	ks := keySet{ip: l.ipKey(ip)}
	ks.user, ks.hasUser = l.userKey(username)
	if ks.hasUser {
		ks.userAt = key{kind: kindUserAt, prefix: ks.ip.prefix, user: ks.user.user}
	}
	return ks
}

// ipKey groups ip into its counter's address block.
func (l *FailureLimiter) ipKey(ip netip.Addr) key {
	if !ip.IsValid() {
		return key{kind: kindIP}
	}
	ip = ip.Unmap().WithZone("")
	bits := l.cfg.IPv6Prefix
	if ip.Is4() {
		bits = l.cfg.IPv4Prefix
	}
	p, err := ip.Prefix(bits)
	if err != nil { // cannot happen: bits is validated for the family
		return key{kind: kindIP}
	}
	return key{kind: kindIP, prefix: p}
}

// userKey hashes the case-folded username; ok is false for an empty one.
func (l *FailureLimiter) userKey(username string) (k key, ok bool) {
	if username == "" {
		return key{}, false
	}
	return key{kind: kindUser, user: maphash.String(l.seed, strings.ToLower(username))}, true
}

// counted is a counter with the scope it stands for; e may be nil.
type counted struct {
	e     *entry
	scope Scope
}

// refusal returns a refused verdict when any counter is cooling down, naming the one with
// the most time left.
func refusal(now time.Time, counters ...counted) Verdict {
	var v Verdict
	for _, c := range counters {
		if c.e == nil || c.e.cooldownUntil.IsZero() {
			continue
		}
		if left := c.e.cooldownUntil.Sub(now); left > v.RetryAfter {
			v = Verdict{Refused: true, Scope: c.scope, RetryAfter: left}
		}
	}
	return v
}

// delayFor is the tarpit delay a counter calls for: Delay per failure beyond the first,
// capped at MaxDelay.
func (l *FailureLimiter) delayFor(e *entry) time.Duration {
	if e == nil || e.failures < 2 || l.cfg.Delay == 0 {
		return 0
	}
	n := time.Duration(e.failures - 1)
	if n > l.cfg.MaxDelay/l.cfg.Delay {
		return l.cfg.MaxDelay
	}
	return min(n*l.cfg.Delay, l.cfg.MaxDelay)
}

// waitForSlot waits, with l.mu held on entry and released on return, until e frees an
// in-flight slot, changes state or goes away, or ctx ends.
func (l *FailureLimiter) waitForSlot(ctx context.Context, e *entry) error {
	w := &waiter{ch: make(chan struct{})}
	elem := e.addWaiter(w)
	l.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		if w.woken {
			e.wake(1) // pass the slot we were given on to the next waiter
		} else {
			e.dropWaiter(elem)
		}
		l.mu.Unlock()
		return ctx.Err()
	}
}

// reserve counts one admitted attempt in flight on k's counter.
func (l *FailureLimiter) reserve(k key, now time.Time) {
	e := l.lookup(k, now)
	if e == nil {
		e = l.insert(k)
	}
	l.update(e, now, func(e *entry) {
		e.pending++
		e.lastAdmit = now
	})
}

// fail resolves one attempt on k's counter and counts a failure, starting the cooldown when
// the counter reaches limit.
func (l *FailureLimiter) fail(k key, now time.Time, limit int, ip netip.Addr, username string) {
	e := l.lookup(k, now)
	if e == nil {
		e = l.insert(k)
	}
	l.update(e, now, func(e *entry) {
		e.release()
		if e.cooling() {
			return // already refused; a late result does not extend the cooldown
		}
		if e.failures == 0 {
			e.windowStart = now
		}
		e.failures++
		if e.failures >= limit {
			e.cooldownUntil = now.Add(l.cfg.Cooldown)
			l.logCooldown(k, ip, username, e.failures)
		}
	})
}

func (l *FailureLimiter) logCooldown(k key, ip netip.Addr, username string, failures int) {
	attrs := []slog.Attr{
		slog.Int("failures", failures),
		slog.Duration("cooldown", l.cfg.Cooldown),
	}
	switch k.kind {
	case kindUser:
		attrs = append(attrs, slog.String("scope", ScopeUserAnyAddress.String()), slog.String("username", clip(username, 64)))
	case kindUserAt:
		attrs = append(attrs, slog.String("scope", ScopeUser.String()), slog.String("username", clip(username, 64)),
			slog.String("block", k.prefix.String()))
	default:
		attrs = append(attrs, slog.String("scope", ScopeIP.String()), slog.String("block", k.prefix.String()))
	}
	if ip.IsValid() {
		attrs = append(attrs, slog.String("last_peer", ip.String()))
	}
	l.log.LogAttrs(context.Background(), slog.LevelWarn,
		"authentication failures reached the limit; refusing attempts until the cooldown ends", attrs...)
}

// lookup returns k's counter brought up to date at now, or nil when there is none.
func (l *FailureLimiter) lookup(k key, now time.Time) *entry {
	e := l.counters.get(k)
	if e == nil {
		return nil
	}
	l.update(e, now, func(*entry) {})
	if e.index < 0 { // update removed it: nothing left to count
		return nil
	}
	return e
}

// update applies change to e, then expires what is out of date at now, wakes the waiters
// the change concerns, and files e again by expiry or removes it when it holds nothing.
func (l *FailureLimiter) update(e *entry, now time.Time, change func(*entry)) {
	load, cooling := e.load(), e.cooling()
	change(e)
	if e.cooling() && !now.Before(e.cooldownUntil) {
		e.cooldownUntil = time.Time{}
		e.failures = 0
	}
	if !e.cooling() && e.failures > 0 && now.Sub(e.windowStart) >= l.cfg.Window {
		e.failures = 0
	}
	if e.pending > 0 && now.Sub(e.lastAdmit) >= l.cfg.Window {
		e.pending = 0 // reservations nobody resolved
	}
	switch {
	case e.empty():
		l.counters.remove(e)
		return
	case e.cooling() && !cooling:
		e.wake(math.MaxInt) // to be refused
	case e.load() < load:
		e.wake(load - e.load())
	}
	e.expires = e.expiry(l.cfg.Window)
	l.counters.fix(e)
}

// insert adds an empty counter for k, dropping the soonest-expiring one when the table is
// full. The caller must give it something to count.
func (l *FailureLimiter) insert(k key) *entry {
	e := &entry{key: k}
	l.counters.insert(e)
	return e
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
