package authn

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// Entry is one configured authenticator in a chain.
type Entry struct {
	Authenticator Authenticator
	// Precondition, when set, decides per client whether this authenticator runs at all;
	// false counts as Ignore (e.g. run only on listener "ssl:default").
	Precondition func(*clientinfo.Info) bool
}

// Chain runs authenticators in order: the first Allow or Deny decides, Ignore asks the next
// one, and a chain where every authenticator ignored the client answers Ignore.
type Chain struct {
	entries  []chainEntry
	enhanced map[string]Enhanced
	log      *slog.Logger
}

type chainEntry struct {
	Entry
	stats *Stats
}

// NewChain builds a chain from entries in order. Enhanced methods (SCRAM) are offered on
// the listeners that use this chain; a method named twice is the caller's error to avoid
// (the later one wins). stats, when not nil, collects per-authenticator counters by name.
func NewChain(entries []Entry, enhanced []Enhanced, stats *Registry, log *slog.Logger) *Chain {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := &Chain{log: log, enhanced: map[string]Enhanced{}}
	for _, e := range entries {
		ce := chainEntry{Entry: e}
		if stats != nil {
			ce.stats = stats.For(e.Authenticator.Name())
		}
		ch.entries = append(ch.entries, ce)
	}
	for _, m := range enhanced {
		ch.enhanced[m.Method()] = m
	}
	return ch
}

// Len reports how many credential authenticators and enhanced methods the chain holds.
func (ch *Chain) Len() int { return len(ch.entries) + len(ch.enhanced) }

// Enhanced returns the chain's enhanced authentication method by name, or nil.
func (ch *Chain) Enhanced(method string) Enhanced { return ch.enhanced[method] }

// Authenticate runs the chain for one client.
func (ch *Chain) Authenticate(ctx context.Context, info *clientinfo.Info, cred *Credentials) Result {
	for _, e := range ch.entries {
		if e.Precondition != nil && !e.Precondition(info) {
			continue
		}
		res := e.Authenticator.Authenticate(ctx, info, cred)
		if e.stats != nil {
			e.stats.record(res.Outcome)
		}
		// The user name is not logged: with a JWT taken from the user name field it is
		// the token itself.
		switch res.Outcome {
		case Allow:
			if res.Principal == "" {
				// The authenticator checked the credentials of this user name.
				res.Principal = e.Authenticator.Name() + ":" + info.Username
			}
			ch.log.Debug("authenticated", "authenticator", e.Authenticator.Name(), "client", info.ClientID,
				"peer", info.PeerHost(), "listener", info.Listener)
			return res
		case Deny:
			ch.log.Info("authentication failed", "authenticator", e.Authenticator.Name(), "client", info.ClientID,
				"peer", info.PeerHost(), "listener", info.Listener,
				"reason", res.DenyReason().String(), "detail", res.Detail)
			return res
		}
	}
	return Ignored("no authenticator knows the client")
}

// Registry holds the counters of every authenticator by name, for the metrics and the
// admin API.
type Registry struct {
	mu    sync.Mutex
	stats map[string]*Stats
	now   func() time.Time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{stats: map[string]*Stats{}, now: time.Now} }

// For returns the counters of the authenticator with this name, creating them.
func (r *Registry) For(name string) *Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.stats[name]
	if !ok {
		s = &Stats{now: r.now}
		r.stats[name] = s
	}
	return s
}

// Snapshot returns every authenticator's counters by name.
func (r *Registry) Snapshot() map[string]Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Snapshot, len(r.stats))
	for name, s := range r.stats {
		out[name] = s.Snapshot()
	}
	return out
}

// Stats counts one authenticator's answers.
type Stats struct {
	total, success, failed, nomatch atomic.Uint64

	now    func() time.Time
	mu     sync.Mutex
	window [rateWindow]uint64 // answers per second, ring indexed by unix second
	last   int64              // unix second of the newest ring slot
}

const rateWindow = 10 // seconds over which the current rate is averaged

func (s *Stats) record(o Outcome) {
	s.total.Add(1)
	switch o {
	case Allow:
		s.success.Add(1)
	case Deny:
		s.failed.Add(1)
	default:
		s.nomatch.Add(1)
	}
	sec := s.now().Unix()
	s.mu.Lock()
	s.advance(sec)
	s.window[sec%rateWindow]++
	s.mu.Unlock()
}

// advance clears the ring slots of the seconds between the last answer and sec.
func (s *Stats) advance(sec int64) {
	if sec <= s.last {
		return
	}
	for t := max(s.last+1, sec-rateWindow+1); t <= sec; t++ {
		s.window[t%rateWindow] = 0
	}
	s.last = sec
}

// Snapshot is a copy of the counters. Rate is answers per second over the last ten
// seconds.
type Snapshot struct {
	Total, Success, Failed, NoMatch uint64
	Rate                            float64
}

// Snapshot returns the current counters.
func (s *Stats) Snapshot() Snapshot {
	snap := Snapshot{Total: s.total.Load(), Success: s.success.Load(), Failed: s.failed.Load(), NoMatch: s.nomatch.Load()}
	s.mu.Lock()
	s.advance(s.now().Unix())
	var n uint64
	for _, v := range s.window {
		n += v
	}
	s.mu.Unlock()
	snap.Rate = float64(n) / rateWindow
	return snap
}
