package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// Ban is one ban; see controldb.Ban. Its Until is when it ends (zero: never).
type Ban = controldb.Ban

// BanKind says which client field a ban matches; see controldb.BanKind.
type BanKind = controldb.BanKind

// The kinds of ban.
const (
	BanClientID   = controldb.BanClientID   // the client id, exactly
	BanUsername   = controldb.BanUsername   // the username, exactly
	BanPeerHost   = controldb.BanPeerHost   // the peer address: an IP address or a CIDR block
	BanClientIDRe = controldb.BanClientIDRe // the client id, by an unanchored RE2 pattern
	BanUsernameRe = controldb.BanUsernameRe // the username, by an unanchored RE2 pattern
)

// ErrTooManyBans is returned by Add when the ban list is full.
var ErrTooManyBans = errors.New("too many bans")

// BanStore is where Bans keeps its bans; *controldb.Bans is one.
type BanStore interface {
	Put(ctx context.Context, b Ban) (Ban, error)
	Delete(ctx context.Context, kind BanKind, value string) (Ban, error)
	ForEach(ctx context.Context, fn func(Ban) error) error
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// BansConfig configures Bans. A zero field takes its default (see DefaultBansConfig).
type BansConfig struct {
	// MaxEntries bounds the bans in effect, of every kind. Adding one more is an error
	// (ErrTooManyBans); so is starting with more stored. An entry takes about 200 bytes
	// plus its value. Default 100000.
	MaxEntries int
	// MaxPatterns bounds the clientid_re and username_re bans together (they count
	// against MaxEntries too). Every connecting client is matched against each of them, so
	// they cost CPU on every CONNECT. Default 100.
	MaxPatterns int
	// PurgeInterval is how often Run deletes ended bans from the store and the index.
	// Ended bans stop matching at once whatever it is. Default 1m.
	PurgeInterval time.Duration
}

// DefaultBansConfig returns the defaults.
func DefaultBansConfig() BansConfig {
	return BansConfig{MaxEntries: 100000, MaxPatterns: 100, PurgeInterval: time.Minute}
}

func (c BansConfig) withDefaults() BansConfig {
	d := DefaultBansConfig()
	if c.MaxEntries == 0 {
		c.MaxEntries = d.MaxEntries
	}
	if c.MaxPatterns == 0 {
		c.MaxPatterns = d.MaxPatterns
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = d.PurgeInterval
	}
	return c
}

// Validate reports every invalid field, named by its configuration key.
func (c *BansConfig) Validate() error {
	var errs []error
	if c.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("guard: banned: max_entries: must be positive, got %d", c.MaxEntries))
	}
	if c.MaxPatterns < 0 {
		errs = append(errs, fmt.Errorf("guard: banned: max_patterns: must be positive, got %d", c.MaxPatterns))
	}
	if c.PurgeInterval < 0 {
		errs = append(errs, fmt.Errorf("guard: banned: purge_interval: must be positive, got %s", c.PurgeInterval))
	}
	return errors.Join(errs...)
}

// Bans is the ban list in force: an in-memory index of the stored bans, loaded at start
// and written through (the store first, then the index), so matching a connecting client
// never touches the store. Exact client id and username bans cost one map lookup each, an
// address costs one lookup per banned prefix length, and each pattern one RE2 match
// (linear in the input). A ban stops matching the moment its Until passes; Run deletes
// ended bans from the store and the index periodically. Bans is safe for concurrent use.
type Bans struct {
	cfg   BansConfig
	store BanStore
	clock Clock
	log   *slog.Logger

	// wmu serialises writers (Add, Extend, Remove, Purge), so the store and the index
	// change in the same order and the capacity check holds.
	wmu sync.Mutex

	mu       sync.RWMutex
	idx      banIndex
	onAdd    []func(Ban)
	onRemove []func(Ban)
}

// NewBans validates cfg and loads the bans in effect from store. It fails, rather than
// enforce part of the list, when a stored ban cannot be indexed or there are more than
// the configured maximums. A nil clock is the system clock; a nil logger discards logs.
func NewBans(ctx context.Context, cfg BansConfig, store BanStore, clock Clock, logger *slog.Logger) (*Bans, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("guard: bans: no store")
	}
	if clock == nil {
		clock = SystemClock()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Bans{cfg: cfg.withDefaults(), store: store, clock: clock, log: logger, idx: newBanIndex()}
	if err := b.load(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Bans) load(ctx context.Context) error {
	now := b.clock.Now()
	ended := 0
	err := b.store.ForEach(ctx, func(ban Ban) error {
		if !ban.ActiveAt(now) {
			ended++
			return nil
		}
		c, err := controldb.CanonicalBan(ban)
		if err != nil {
			return fmt.Errorf("stored ban %d: %w", ban.ID, err)
		}
		e, err := newBanEntry(c)
		if err != nil {
			return fmt.Errorf("stored ban %d: %w", ban.ID, err)
		}
		if e.re != nil && b.idx.patternCount() >= b.cfg.MaxPatterns {
			return fmt.Errorf("more pattern bans stored than max_patterns (%d): raise it or delete some", b.cfg.MaxPatterns)
		}
		if b.idx.put(e) == nil && b.idx.len() > b.cfg.MaxEntries {
			return fmt.Errorf("more bans stored than max_entries (%d): raise it or delete some", b.cfg.MaxEntries)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("guard: load bans: %w", err)
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, "bans loaded",
		slog.Int("in_effect", b.idx.len()), slog.Int("ended", ended))
	return nil
}

// Config returns the configuration in effect, defaults filled in.
func (b *Bans) Config() BansConfig { return b.cfg }

// Len returns the number of bans in the index (those ended but not purged yet included),
// for metrics.
func (b *Bans) Len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.idx.len()
}

// OnAdd registers fn to be called with every ban Add or Extend puts in effect, after the
// index has it (so Match and MatchesLive see it), from the goroutine that added it, with
// no lock held. The broker uses it to disconnect the live sessions the ban matches; Add
// returns only when every fn has.
func (b *Bans) OnAdd(fn func(Ban)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onAdd = append(b.onAdd, fn)
}

// OnRemove registers fn to be called with every ban Remove deletes, after the index has
// dropped it, from the goroutine that removed it, with no lock held. Bans that end by
// time are not reported.
func (b *Bans) OnRemove(fn func(Ban)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onRemove = append(b.onRemove, fn)
}

// Match returns the ban in effect that refuses info, if any. Exact client id, exact
// username and address bans are tried first (the longest banned block containing the
// address wins), then patterns on the client id, then on the username.
func (b *Bans) Match(info *clientinfo.Info) (Ban, bool) {
	now := b.clock.Now()
	b.mu.RLock()
	if e := b.idx.matchExact(info, now); e != nil {
		b.mu.RUnlock()
		return e.ban, true
	}
	patterns := b.idx.patterns // copy-on-write: safe to read after unlocking
	b.mu.RUnlock()
	for _, list := range patterns {
		for _, e := range list {
			if e.ban.ActiveAt(now) && e.matches(info) {
				return e.ban, true
			}
		}
	}
	return Ban{}, false
}

// MatchesLive reports whether ban is in effect (in the index, not ended) and matches
// info. It is for the scan of live sessions after OnAdd: a ban removed or ended since
// matches nothing, and a pattern is not compiled again per session. ban's Kind and Value
// must be as Add returned them (canonical).
func (b *Bans) MatchesLive(ban Ban, info *clientinfo.Info) bool {
	now := b.clock.Now()
	b.mu.RLock()
	e := b.idx.get(banKey{ban.Kind, ban.Value})
	b.mu.RUnlock()
	return e != nil && e.ban.ActiveAt(now) && e.matches(info)
}

// Add puts ban in effect, replacing any ban of the same kind and value, and returns it
// as stored (value in canonical form, ID set). CreatedAt defaults to now; Until zero means
// forever, and an Until already past is an error. The ban is written to the store before
// the index; when the store fails, nothing changes. Adding a new ban when MaxEntries are
// in effect (or a pattern beyond MaxPatterns) fails with ErrTooManyBans.
func (b *Bans) Add(ctx context.Context, ban Ban) (Ban, error) {
	stored, _, err := b.add(ctx, ban, false)
	return stored, err
}

// Extend is Add for automatic bans: it never shortens a ban. When a ban of the same kind
// and value is in effect until ban.Until or later (or forever), it leaves it as it is and
// returns it with added false; otherwise it adds ban and returns it with added true.
func (b *Bans) Extend(ctx context.Context, ban Ban) (Ban, bool, error) {
	return b.add(ctx, ban, true)
}

func (b *Bans) add(ctx context.Context, ban Ban, extend bool) (Ban, bool, error) {
	now := b.clock.Now()
	if ban.CreatedAt.IsZero() {
		ban.CreatedAt = now
	}
	ban, err := controldb.CanonicalBan(ban)
	if err != nil {
		return Ban{}, false, fmt.Errorf("guard: add ban: %w", err)
	}
	if !ban.ActiveAt(now) {
		return Ban{}, false, fmt.Errorf("guard: add %s ban: it ended at %s", ban.Kind, ban.Until.Format(time.RFC3339))
	}
	e, err := newBanEntry(ban) // compile before touching the store
	if err != nil {
		return Ban{}, false, fmt.Errorf("guard: add ban: %w", err)
	}
	k := e.key()

	b.wmu.Lock()
	b.mu.RLock()
	old := b.idx.get(k)
	full := old == nil && b.idx.len() >= b.cfg.MaxEntries
	patternsFull := e.re != nil && old == nil && b.idx.patternCount() >= b.cfg.MaxPatterns
	b.mu.RUnlock()
	if old != nil && !old.ban.ActiveAt(now) {
		old = nil // ended: replaced whatever the new one says
	}
	if extend && old != nil && (old.ban.Until.IsZero() || (!ban.Until.IsZero() && !old.ban.Until.Before(ban.Until))) {
		b.wmu.Unlock()
		return old.ban, false, nil
	}
	if full || patternsFull {
		// Ended bans still indexed make room before anything is refused.
		b.mu.Lock()
		b.idx.dropExpired(now, b.idx.len())
		full = b.idx.get(k) == nil && b.idx.len() >= b.cfg.MaxEntries
		patternsFull = e.re != nil && b.idx.get(k) == nil && b.idx.patternCount() >= b.cfg.MaxPatterns
		b.mu.Unlock()
		if full {
			b.wmu.Unlock()
			return Ban{}, false, fmt.Errorf("guard: add %s ban: %d bans in effect, the max_entries: %w", ban.Kind, b.cfg.MaxEntries, ErrTooManyBans)
		}
		if patternsFull {
			b.wmu.Unlock()
			return Ban{}, false, fmt.Errorf("guard: add %s ban: %d pattern bans in effect, the max_patterns: %w", ban.Kind, b.cfg.MaxPatterns, ErrTooManyBans)
		}
	}

	stored, err := b.store.Put(ctx, ban)
	if err != nil {
		b.wmu.Unlock()
		return Ban{}, false, fmt.Errorf("guard: add ban: %w", err)
	}
	e.ban = stored // the store's ID and millisecond times
	b.mu.Lock()
	b.idx.put(e)
	subs := b.onAdd
	b.mu.Unlock()
	b.wmu.Unlock()

	b.log.LogAttrs(ctx, slog.LevelInfo, "ban added", banAttrs(stored)...)
	for _, fn := range subs {
		fn(stored)
	}
	return stored, true, nil
}

// Remove deletes the ban of kind and value (a peerhost value in any form
// controldb.ParseBanPeer takes) from the store, then from the index, and returns it. It
// returns an error wrapping controldb.ErrNotFound when there is no such ban; when the
// store fails otherwise, the ban stays in effect.
func (b *Bans) Remove(ctx context.Context, kind BanKind, value string) (Ban, error) {
	v, err := controldb.CanonicalBanValue(kind, value)
	if err != nil {
		return Ban{}, fmt.Errorf("guard: remove ban: %w", err)
	}
	b.wmu.Lock()
	removed, err := b.store.Delete(ctx, kind, v)
	if err != nil && !errors.Is(err, controldb.ErrNotFound) {
		b.wmu.Unlock()
		return Ban{}, fmt.Errorf("guard: remove ban: %w", err)
	}
	b.mu.Lock()
	stale := b.idx.remove(banKey{kind, v})
	subs := b.onRemove
	b.mu.Unlock()
	b.wmu.Unlock()
	if err != nil {
		if stale != nil {
			b.log.LogAttrs(ctx, slog.LevelWarn, "ban was indexed but not stored; dropped it", banAttrs(stale.ban)...)
		}
		return Ban{}, fmt.Errorf("guard: remove ban: %w", err)
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, "ban removed", banAttrs(removed)...)
	for _, fn := range subs {
		fn(removed)
	}
	return removed, nil
}

// purgeBatch bounds how many index entries one lock hold drops, so a large batch ending
// together does not stall Match.
const purgeBatch = 1024

// Purge deletes the bans that have ended from the store and drops them from the index.
// It returns how many the store deleted. The index is purged even when the store fails.
func (b *Bans) Purge(ctx context.Context) (int, error) {
	now := b.clock.Now()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	n, err := b.store.DeleteExpired(ctx, now)
	dropped := 0
	for {
		b.mu.Lock()
		d := b.idx.dropExpired(now, purgeBatch)
		b.mu.Unlock()
		dropped += d
		if d < purgeBatch {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("guard: purge bans: %w", err)
	}
	if n > 0 || dropped > 0 {
		b.log.LogAttrs(ctx, slog.LevelInfo, "ended bans purged", slog.Int("stored", n), slog.Int("indexed", dropped))
	}
	return n, nil
}

// Run purges ended bans every interval (Config().PurgeInterval when interval <= 0) until
// ctx is done. Purge errors are logged and retried at the next interval.
func (b *Bans) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = b.cfg.PurgeInterval
	}
	for b.clock.Sleep(ctx, interval) == nil {
		if _, err := b.Purge(ctx); err != nil && ctx.Err() == nil {
			b.log.LogAttrs(ctx, slog.LevelError, "purging ended bans failed", slog.String("error", err.Error()))
		}
	}
}

// banAttrs describes a ban for the log. A username ban's value is left out: some
// deployments carry tokens in the username.
func banAttrs(ban Ban) []slog.Attr {
	attrs := []slog.Attr{slog.Int64("id", ban.ID), slog.String("kind", string(ban.Kind))}
	if ban.Kind != BanUsername {
		attrs = append(attrs, slog.String("value", clip(ban.Value, 128)))
	}
	attrs = append(attrs, slog.String("reason", clip(ban.Reason, 128)), slog.String("by", ban.By))
	if ban.Until.IsZero() {
		attrs = append(attrs, slog.String("until", "forever"))
	} else {
		attrs = append(attrs, slog.Time("until", ban.Until))
	}
	return attrs
}
