package guard

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// FlappingConfig configures Flapping (flapping_detect). A zero field takes its default
// (see DefaultFlappingConfig), except Enable.
type FlappingConfig struct {
	// Enable turns detection on; when off, nothing is counted or banned.
	Enable bool
	// MaxCount is how many flaps (see Count) of one identity a window tolerates: the one
	// after them bans the identity. Default 15.
	MaxCount int
	// WindowTime is the span in which flaps are counted, from the first one counted.
	// Default 1m.
	WindowTime time.Duration
	// BanTime is how long a flapping identity stays banned. Default 5m.
	BanTime time.Duration
	// MaxEntries bounds the identities tracked. When it is reached, the one whose state
	// would expire soonest is dropped (bans outlive windows, so they are dropped last).
	// An entry takes about 150 bytes. Default 100000.
	MaxEntries int
	// CountBy lists the identities counted, each separately: BanClientID, BanUsername,
	// BanPeerHost. Default all three.
	CountBy []BanKind
}

// DefaultFlappingConfig returns the defaults, detection off as for a zero value.
func DefaultFlappingConfig() FlappingConfig {
	return FlappingConfig{
		MaxCount:   15,
		WindowTime: time.Minute,
		BanTime:    5 * time.Minute,
		MaxEntries: 100000,
		CountBy:    []BanKind{BanClientID, BanUsername, BanPeerHost},
	}
}

func (c FlappingConfig) withDefaults() FlappingConfig {
	d := DefaultFlappingConfig()
	if c.MaxCount == 0 {
		c.MaxCount = d.MaxCount
	}
	if c.WindowTime == 0 {
		c.WindowTime = d.WindowTime
	}
	if c.BanTime == 0 {
		c.BanTime = d.BanTime
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = d.MaxEntries
	}
	if len(c.CountBy) == 0 {
		c.CountBy = d.CountBy
	} else {
		c.CountBy = slices.Clone(c.CountBy)
	}
	return c
}

// Validate reports every invalid field, named by its configuration key.
func (c *FlappingConfig) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("guard: flapping_detect: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.MaxCount < 0 {
		bad("max_count", "must be positive, got %d", c.MaxCount)
	}
	if c.WindowTime < 0 {
		bad("window_time", "must be positive, got %s", c.WindowTime)
	}
	if c.BanTime < 0 {
		bad("ban_time", "must be positive, got %s", c.BanTime)
	}
	if c.MaxEntries < 0 {
		bad("max_entries", "must be positive, got %d", c.MaxEntries)
	}
	for i, k := range c.CountBy {
		switch {
		case k != BanClientID && k != BanUsername && k != BanPeerHost:
			bad("count_by", "%q: want clientid, username or peerhost", k)
		case slices.Contains(c.CountBy[:i], k):
			bad("count_by", "%q is listed twice", k)
		}
	}
	return errors.Join(errs...)
}

// FlappingBans is where Flapping puts its bans; *Bans is one. Flapping registers with
// OnRemove so that an operator lifting a flapping ban also clears its own record.
type FlappingBans interface {
	Extend(ctx context.Context, b Ban) (Ban, bool, error)
	OnRemove(fn func(Ban))
}

// Flapping detects clients that flap: whose connections end again and again in a way a
// well-behaved client's do not. Its user decides what a flap is and reports each with
// Count; the broker counts connections that end abnormally (closed without DISCONNECT,
// keep-alive timeout, protocol error), are taken over by another connection of the same
// client id, or are refused by authentication. A client that connects, works and
// disconnects cleanly is never counted, however often it does so: connect rates are the
// business of the per-address limits.
//
// Flaps are counted per client id, per username and per peer address (each separately;
// see CountBy), in a window of WindowTime that starts with the first flap counted. The
// flap that takes a count beyond MaxCount bans that identity for BanTime: Flapping
// remembers the ban itself (Banned reports it until it ends) and puts it in the ban list
// (kind clientid, username or peerhost; reason "flapping"; by "flapping_detect"), which
// persists it, shows it to operators and disconnects live sessions it matches. Flapping's
// own record means the ban holds even when the ban list refuses it (full, or the store
// failing); removing the ban from the ban list clears the record.
//
// An empty client id or username, and an unknown peer address, are not counted.
// Identities are kept as 64-bit keyed hashes, never as text. A Flapping is safe for
// concurrent use.
type Flapping struct {
	cfg   FlappingConfig
	bans  FlappingBans
	clock Clock
	log   *slog.Logger
	seed  maphash.Seed

	mu      sync.Mutex // guards tracked and everything in it
	tracked expiringTable[flapKey, *flapEntry]
}

// flapKey identifies a tracked identity: its kind and keyed hash.
type flapKey struct {
	kind BanKind
	hash uint64
}

// flapEntry is the state of one identity.
type flapEntry struct {
	key         flapKey
	count       int       // flaps counted since windowStart
	windowStart time.Time // the first flap counted
	bannedUntil time.Time // zero unless banned
	expires     time.Time // when all of the above is out of date
	index       int       // position in the table's expiry heap; -1 once removed
}

func (e *flapEntry) due() time.Time    { return e.expires }
func (e *flapEntry) slot() *int        { return &e.index }
func (e *flapEntry) tableKey() flapKey { return e.key }

// NewFlapping validates cfg and returns a detector. bans may be nil: bans are then only
// Flapping's own. A nil clock is the system clock; a nil logger discards logs.
func NewFlapping(cfg FlappingConfig, bans FlappingBans, clock Clock, logger *slog.Logger) (*Flapping, error) {
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
	f := &Flapping{
		cfg:     cfg,
		bans:    bans,
		clock:   clock,
		log:     logger,
		seed:    maphash.MakeSeed(),
		tracked: newExpiringTable[flapKey, *flapEntry](cfg.MaxEntries, nil),
	}
	if bans != nil {
		bans.OnRemove(f.forget)
	}
	return f, nil
}

// Config returns the configuration in effect, defaults filled in.
func (f *Flapping) Config() FlappingConfig {
	c := f.cfg
	c.CountBy = slices.Clone(c.CountBy)
	return c
}

// Entries returns the number of identities tracked, for metrics.
func (f *Flapping) Entries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tracked.len()
}

// flapID is one identity of a client.
type flapID struct {
	key   flapKey
	value string // as a ban value
}

// Banned reports whether one of the identities of info (client id, username, peer
// address) is banned for flapping. It counts nothing.
func (f *Flapping) Banned(info *clientinfo.Info) bool {
	if !f.cfg.Enable {
		return false
	}
	var buf [3]flapID
	ids := f.identities(info, buf[:0])
	if len(ids) == 0 {
		return false
	}
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if e := f.tracked.get(id.key); e != nil && now.Before(e.bannedUntil) {
			return true
		}
	}
	return false
}

// Count records one flap of the client info describes, which must carry its client id,
// username and peer address, and reports whether the client is banned for flapping now:
// one of its identities already was (the flap is then not counted), or this flap bans
// one. Putting new bans in the ban list happens within the call and honours ctx; the
// identity is banned whether or not that succeeds.
func (f *Flapping) Count(ctx context.Context, info *clientinfo.Info) (banned bool) {
	if !f.cfg.Enable {
		return false
	}
	var buf [3]flapID
	ids := f.identities(info, buf[:0])
	if len(ids) == 0 {
		return false
	}
	now := f.clock.Now()

	f.mu.Lock()
	f.tracked.purge(now)
	for _, id := range ids {
		if e := f.tracked.get(id.key); e != nil && now.Before(e.bannedUntil) {
			f.mu.Unlock()
			return true
		}
	}
	var tripped [3]flapID
	n := 0
	for _, id := range ids {
		e := f.tracked.get(id.key)
		if e == nil {
			e = &flapEntry{key: id.key}
			f.tracked.insert(e)
		}
		if e.count == 0 || !e.bannedUntil.IsZero() || now.Sub(e.windowStart) >= f.cfg.WindowTime {
			// A new window: the first flap, or the window or the ban has ended.
			e.count, e.windowStart, e.bannedUntil = 0, now, time.Time{}
		}
		e.count++
		if e.count > f.cfg.MaxCount {
			e.bannedUntil = now.Add(f.cfg.BanTime)
			e.expires = e.bannedUntil
			tripped[n] = id
			n++
		} else {
			e.expires = e.windowStart.Add(f.cfg.WindowTime)
		}
		f.tracked.fix(e)
	}
	f.mu.Unlock()

	for _, id := range tripped[:n] {
		f.ban(ctx, id, info, now)
	}
	return n > 0
}

// ban reports a new flapping ban and puts it in the ban list.
func (f *Flapping) ban(ctx context.Context, id flapID, info *clientinfo.Info, now time.Time) {
	until := now.Add(f.cfg.BanTime)
	attrs := []slog.Attr{
		slog.String("kind", string(id.key.kind)),
		slog.Int("max_count", f.cfg.MaxCount),
		slog.Duration("window_time", f.cfg.WindowTime),
		slog.Duration("ban_time", f.cfg.BanTime),
	}
	if id.key.kind != BanUsername { // a username may carry a token
		attrs = append(attrs, slog.String("value", clip(id.value, 128)))
	}
	if host := info.PeerHost(); host != "" {
		attrs = append(attrs, slog.String("peer", host))
	}
	f.log.LogAttrs(ctx, slog.LevelWarn, "flapping client banned", attrs...)
	if f.bans == nil {
		return
	}
	_, _, err := f.bans.Extend(ctx, Ban{
		Kind:      id.key.kind,
		Value:     id.value,
		Reason:    "flapping",
		By:        "flapping_detect",
		CreatedAt: now,
		Until:     until,
	})
	if err != nil {
		f.log.LogAttrs(ctx, slog.LevelError, "flapping ban not put in the ban list; enforced by flapping detection alone",
			append(attrs, slog.String("error", err.Error()))...)
	}
}

// identities appends the counted identities of info to ids.
func (f *Flapping) identities(info *clientinfo.Info, ids []flapID) []flapID {
	for _, kind := range f.cfg.CountBy {
		switch kind {
		case BanClientID:
			if info.ClientID != "" {
				ids = append(ids, flapID{f.textKey(kind, info.ClientID), info.ClientID})
			}
		case BanUsername:
			if info.Username != "" {
				ids = append(ids, flapID{f.textKey(kind, info.Username), info.Username})
			}
		case BanPeerHost:
			if a, ok := peerAddr(info); ok {
				ids = append(ids, flapID{f.addrKey(a), a.String()})
			}
		}
	}
	return ids
}

func (f *Flapping) textKey(kind BanKind, s string) flapKey {
	return flapKey{kind: kind, hash: maphash.String(f.seed, s)}
}

func (f *Flapping) addrKey(a netip.Addr) flapKey {
	b := a.As16()
	return flapKey{kind: BanPeerHost, hash: maphash.Bytes(f.seed, b[:])}
}

// forget clears the record of the identity a removed ban named.
func (f *Flapping) forget(b Ban) {
	var k flapKey
	switch b.Kind {
	case BanClientID, BanUsername:
		k = f.textKey(b.Kind, b.Value)
	case BanPeerHost:
		p, err := controldb.ParseBanPeer(b.Value)
		if err != nil || !p.IsSingleIP() {
			return
		}
		k = f.addrKey(p.Addr())
	default:
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.tracked.get(k); e != nil {
		f.tracked.remove(e)
	}
}
