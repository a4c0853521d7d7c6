package authz

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
)

// Options configure a Chain.
type Options struct {
	// Sources are asked in order; the first Allow or Deny decides.
	Sources []Source
	// NoMatch is the answer when no rule and no source decides: Allow or Deny.
	NoMatch Decision
	// DisconnectOnDeny is deny_action: disconnect.
	DisconnectOnDeny bool
	Cache            CacheOptions
	Log              *slog.Logger
}

// CacheOptions configure the per-client decision cache.
type CacheOptions struct {
	Enable  bool
	MaxSize int           // decisions kept per client
	TTL     time.Duration // how long a decision is kept at most
	// Excludes are topic filters whose decisions are never cached.
	Excludes []string
}

// Chain is the authorization chain: superuser, then the rules the authenticator returned,
// then the cache, then the sources in order, then no_match. A change of any source's rules
// makes every cached decision and every per-client view stale at once (a generation
// counter), before the change is reported as applied; then the change listeners run.
type Chain struct {
	o       Options
	gen     atomic.Uint64
	stats   []*SourceStats // by source index
	cache   CacheStats
	mu      sync.Mutex
	changed []func()
	log     *slog.Logger
	ttl     []time.Duration // by source index: how long a client's view lives; -1 forever
	anyTTL  bool            // some source has a TTL
}

// PlaceholderUser is implemented by sources that know whether their rules use
// placeholders. A source that does not implement it is assumed to use them.
type PlaceholderUser interface {
	UsesPlaceholders() bool
}

// WithTTL wraps a source whose rules live in a server that does not announce changes (a
// database, a directory, an HTTP service): a client's view of it is read again when it is
// older than ttl, and the decisions made from the old view are forgotten, so a rule
// deleted on the server stops applying within ttl. ttl 0 reads the source for every
// question and never caches a decision that it took part in.
func WithTTL(s Source, ttl time.Duration) Source {
	return &ttlSource{Source: s, ttl: max(ttl, 0)}
}

type ttlSource struct {
	Source
	ttl time.Duration
}

// OnChange and UsesPlaceholders pass through to the wrapped source.
func (t *ttlSource) OnChange(fn func()) {
	if n, ok := t.Source.(Notifier); ok {
		n.OnChange(fn)
	}
}

func (t *ttlSource) UsesPlaceholders() bool {
	p, ok := t.Source.(PlaceholderUser)
	return !ok || p.UsesPlaceholders()
}

// New builds the chain and subscribes to the sources' changes.
func New(o Options) *Chain {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.NoMatch == NoMatch {
		o.NoMatch = Deny
	}
	ch := &Chain{o: o, log: o.Log, ttl: make([]time.Duration, len(o.Sources))}
	for i, s := range o.Sources {
		ch.stats = append(ch.stats, &SourceStats{Name: s.Name()})
		if n, ok := s.(Notifier); ok {
			n.OnChange(ch.Changed)
		}
		ch.ttl[i] = -1
		if t, ok := s.(*ttlSource); ok {
			ch.ttl[i], ch.anyTTL = t.ttl, true
		}
	}
	return ch
}

// Changed is called when rules change: cached decisions and per-client views become
// stale before it returns, then the change listeners (the broker's subscription re-check)
// run.
func (ch *Chain) Changed() {
	ch.gen.Add(1)
	ch.mu.Lock()
	fns := append([]func(){}, ch.changed...)
	ch.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// OnChange registers fn to run after every rule change.
func (ch *Chain) OnChange(fn func()) {
	ch.mu.Lock()
	ch.changed = append(ch.changed, fn)
	ch.mu.Unlock()
}

// RecheckInterval reports the shortest ttl of the sources that have one: how long a
// client's view of such a source lives before it is read again. ok is false when no
// source has a ttl (every source announces its changes).
func (ch *Chain) RecheckInterval() (every time.Duration, ok bool) {
	for _, t := range ch.ttl {
		if t >= 0 && (!ok || t < every) {
			every, ok = t, true
		}
	}
	return every, ok
}

// DisconnectOnDeny reports deny_action: disconnect.
func (ch *Chain) DisconnectOnDeny() bool { return ch.o.DisconnectOnDeny }

// ErrUnsafeIdentity is returned by CheckIdentity.
var ErrUnsafeIdentity = errors.New("contains '+', '#', '/' or NUL, which placeholder rules do not allow")

// CheckIdentity refuses a client id or user name that could widen a placeholder rule.
func (ch *Chain) CheckIdentity(info *clientinfo.Info) error {
	if !ch.usesPlaceholders() {
		return nil
	}
	if UnsafeForPlaceholders(info.ClientID) {
		return errors.New("client id " + ErrUnsafeIdentity.Error())
	}
	if info.Username != "" && UnsafeForPlaceholders(info.Username) {
		return errors.New("user name " + ErrUnsafeIdentity.Error())
	}
	return nil
}

// usesPlaceholders asks the sources now: rules with placeholders may be added at run time.
func (ch *Chain) usesPlaceholders() bool {
	for _, s := range ch.o.Sources {
		if p, ok := s.(PlaceholderUser); !ok || p.UsesPlaceholders() {
			return true
		}
	}
	return false
}

// Stats returns the counters of every source and of the cache.
func (ch *Chain) Stats() ([]SourceSnapshot, CacheSnapshot) {
	out := make([]SourceSnapshot, len(ch.stats))
	for i, s := range ch.stats {
		out[i] = s.snapshot()
	}
	return out, ch.cache.snapshot()
}

// ForClient returns the authorizer of one connection. acl are the rules its authenticator
// returned; rules that do not compile deny everything for this client (fail closed).
func (ch *Chain) ForClient(info *clientinfo.Info, acl []Rule) *Client {
	c := &Client{ch: ch, info: info}
	if len(acl) > 0 {
		rs, err := Compile(acl)
		if err != nil {
			ch.log.Warn("rules returned by authentication do not compile: the client is denied everything",
				"client", info.ClientID, "err", err)
			c.aclBroken = true
		} else {
			c.acl = rs.ForClient(info)
		}
	}
	return c
}

// Client answers authorization questions for one connection.
type Client struct {
	ch        *Chain
	info      *clientinfo.Info
	acl       *ClientRules
	aclBroken bool

	mu      sync.Mutex
	gen     uint64
	views   []ClientSource
	expires []time.Time // by source index: when the view must be read again; zero never
	epoch   uint64      // counts the changes of views
	cache   *decisionCache
}

// Authorize decides one action.
func (c *Client) Authorize(ctx context.Context, a Action, t string) bool {
	if c.info.Superuser {
		return true
	}
	if c.aclBroken {
		return false
	}
	if c.acl != nil {
		switch c.acl.Decide(a, t) {
		case Allow:
			return true
		case Deny:
			return false
		}
	}
	ch := c.ch
	gen := ch.gen.Load()
	cacheable := ch.o.Cache.Enable && !ch.excluded(t)
	var now time.Time // read only when something expires: a clock read per publish is not free
	if cacheable || ch.anyTTL {
		now = time.Now()
	}
	c.mu.Lock()
	if c.views == nil || c.gen != gen {
		// First question, or the rules changed: resolve every source for this client
		// again and forget what was cached under the old rules.
		views := make([]ClientSource, 0, len(ch.o.Sources)) // a new slice: readers may hold the old one
		for _, s := range ch.o.Sources {
			views = append(views, s.ForClient(c.info))
		}
		c.views = views
		c.epoch++
		c.expires = ch.expiries(now, c.expires)
		c.gen = gen
		if c.cache != nil {
			c.cache.clear()
		}
	} else if ch.anyTTL && c.expired(now) {
		// A view of a source with a TTL is too old: read that source again; the others
		// keep their views and their deadlines.
		views := append([]ClientSource(nil), c.views...)
		clear := false
		for i, s := range ch.o.Sources {
			if !c.expires[i].IsZero() && !now.Before(c.expires[i]) {
				views[i] = s.ForClient(c.info)
				c.expires[i] = now.Add(ch.ttl[i])
				clear = clear || ch.ttl[i] > 0 // a TTL-0 source's answers are never cached
			}
		}
		c.views = views
		c.epoch++
		if clear && c.cache != nil {
			c.cache.clear()
		}
	}
	views, epoch := c.views, c.epoch
	if cacheable {
		if c.cache == nil {
			c.cache = newDecisionCache(ch.o.Cache.MaxSize)
		}
		if d, ok := c.cache.get(a, t, now); ok {
			c.mu.Unlock()
			ch.cache.hits.Add(1)
			return d
		}
		ch.cache.misses.Add(1)
	}
	c.mu.Unlock()

	d := ch.o.NoMatch
	for i, v := range views {
		got := v.Authorize(ctx, a, t)
		ch.stats[i].record(got)
		if ch.ttl[i] == 0 {
			cacheable = false // a source read at every question: its answer may change at once
		}
		if got != NoMatch {
			d = got
			break
		}
	}
	allowed := d == Allow
	if cacheable {
		c.mu.Lock()
		// Cache only what was decided from the views still in force (no rule change, no
		// view read again meanwhile), and no longer than they live.
		if c.epoch == epoch && ch.gen.Load() == gen {
			until := now.Add(ch.o.Cache.TTL)
			for i, e := range c.expires {
				if ch.ttl[i] > 0 && e.Before(until) {
					until = e
				}
			}
			c.cache.put(a, t, allowed, until)
		}
		c.mu.Unlock()
	}
	return allowed
}

// expiries returns when each source's view read at now must be read again (zero: never),
// reusing buf.
func (ch *Chain) expiries(now time.Time, buf []time.Time) []time.Time {
	buf = buf[:0]
	for _, ttl := range ch.ttl {
		var e time.Time
		if ttl >= 0 {
			e = now.Add(ttl)
		}
		buf = append(buf, e)
	}
	return buf
}

// expired reports whether any view with a TTL is due; c.mu is held.
func (c *Client) expired(now time.Time) bool {
	for _, e := range c.expires {
		if !e.IsZero() && !now.Before(e) {
			return true
		}
	}
	return false
}

func (ch *Chain) excluded(t string) bool {
	for _, f := range ch.o.Cache.Excludes {
		if topic.Match(f, t) {
			return true
		}
	}
	return false
}

// SourceStats counts one source's answers.
type SourceStats struct {
	Name                 string
	allow, deny, nomatch atomic.Uint64
}

func (s *SourceStats) record(d Decision) {
	switch d {
	case Allow:
		s.allow.Add(1)
	case Deny:
		s.deny.Add(1)
	default:
		s.nomatch.Add(1)
	}
}

// SourceSnapshot is a copy of one source's counters.
type SourceSnapshot struct {
	Name                 string
	Allow, Deny, NoMatch uint64
}

func (s *SourceStats) snapshot() SourceSnapshot {
	return SourceSnapshot{Name: s.Name, Allow: s.allow.Load(), Deny: s.deny.Load(), NoMatch: s.nomatch.Load()}
}

// CacheStats counts cache hits and misses over every client.
type CacheStats struct{ hits, misses atomic.Uint64 }

// CacheSnapshot is a copy of the cache counters.
type CacheSnapshot struct{ Hits, Misses uint64 }

func (c *CacheStats) snapshot() CacheSnapshot {
	return CacheSnapshot{Hits: c.hits.Load(), Misses: c.misses.Load()}
}
