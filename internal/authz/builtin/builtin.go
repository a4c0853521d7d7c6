// Package builtin is the built_in_database authorization source: rule lists kept per
// username, per client id and for all clients in the control database (package
// controldb, table acl_rules) and, for decisions, in an in-memory index loaded at start
// and kept current by the methods that write the database. No decision queries SQLite.
//
// Order for one client: the rules of its client id, then those of its username, then the
// rules for all clients; within each list, in stored order. The first rule that matches
// decides; when none does, the source answers NoMatch and the chain asks the next
// source. Client id rules come first because a client id names one device, a username
// often a fleet. Within a list, rules have the shape and matching of package authz
// (Compile): permission, action, topics ("eq F", "$share/G/F", placeholders), QoS,
// retain; a rule has no who of its own, its list says whom it is for.
//
// Placeholders in topics (${clientid}, ${username}, ${cert_common_name}, ...) are
// expanded when the chain resolves the source for a client (ForClient) and taken
// literally: a topic whose placeholder value is empty or holds '+', '#', '/' or NUL never
// matches, so no client id or username can widen a rule.
//
// Writes (SetRules, DeleteRules, DeleteRule) go to SQLite first, then replace the
// subject's entry in the index, then call the OnChange callbacks, all before they return:
// a caller that reports success knows that new ForClient calls see the change and that
// the chain has dropped every cached decision made under the old rules.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// Name is the source's name in configuration, logs and metrics.
const Name = "built_in_database"

// Scope says whom a rule list is for; it is the store's type.
type Scope = controldb.ACLScope

// Scopes.
const (
	ScopeUsername = controldb.ScopeUsername
	ScopeClientID = controldb.ScopeClientID
	ScopeAll      = controldb.ScopeAll
)

// ErrNotFound is returned (wrapped) when there is nothing to delete.
var ErrNotFound = controldb.ErrNotFound

// Limits of MaxRules.
const (
	DefaultMaxRules = 100
	MaxMaxRules     = controldb.MaxACLRulesPerSubject
)

// Config configures the source. Key names in comments are the YAML keys of an
// authorization source of type built_in_database.
type Config struct {
	// MaxRules bounds the rules one username, one client id or the all list may hold;
	// default 100, at most 10000. Lists stored before the bound was lowered still load.
	// (max_rules)
	MaxRules int
}

func (c *Config) withDefaults() {
	if c.MaxRules == 0 {
		c.MaxRules = DefaultMaxRules
	}
}

// Validate reports whether the configuration is usable; errors name the key.
func (c Config) Validate() error {
	c.withDefaults()
	if c.MaxRules < 0 || c.MaxRules > MaxMaxRules {
		return fmt.Errorf("built_in_database: max_rules: %d: want 1 to %d", c.MaxRules, MaxMaxRules)
	}
	return nil
}

// Source is the built-in database authorization source. It is safe for concurrent use.
type Source struct {
	cfg  Config
	repo *controldb.ACLRules
	log  *slog.Logger

	// writeMu makes the database and the index change in the same order.
	writeMu sync.Mutex

	mu       sync.RWMutex
	byUser   map[string]*authz.RuleSet
	byClient map[string]*authz.RuleSet
	all      *authz.RuleSet // nil: no rules for all
	// withPlaceholders counts the lists whose topics hold placeholders.
	withPlaceholders int

	watchMu  sync.Mutex
	watchers []func()
}

var (
	_ authz.Source   = (*Source)(nil)
	_ authz.Notifier = (*Source)(nil)
)

// New validates cfg and loads every stored rule into memory. A stored list that no longer
// compiles (written by a newer version, or edited by hand) is replaced in memory by a
// rule denying everything, and logged: the source fails closed for those clients instead
// of refusing to start or silently dropping rules.
func New(ctx context.Context, db *controldb.DB, cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		cfg:      cfg,
		repo:     db.ACLRules(),
		log:      log,
		byUser:   make(map[string]*authz.RuleSet),
		byClient: make(map[string]*authz.RuleSet),
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.log.Info("built_in_database authorization source ready", "usernames", len(s.byUser),
		"clientids", len(s.byClient), "all_rules", s.all != nil)
	return s, nil
}

// load reads every stored rule. ForEach delivers the rules of one subject together and
// in order, so a list is complete when the subject changes.
func (s *Source) load(ctx context.Context) error {
	var (
		scope   Scope
		subject string
		rules   []authz.Rule
		bad     error
		started bool
	)
	flush := func() {
		if !started {
			return
		}
		var rs *authz.RuleSet
		if bad == nil {
			rs, bad = compile(rules)
		}
		if bad != nil {
			s.log.Error("built_in_database: stored rules do not compile; denying everything to the clients they are for until they are replaced",
				"scope", scope, "subject", subject, "err", bad)
			rs = denyAll()
		}
		s.put(scope, subject, rs)
	}
	err := s.repo.ForEach(ctx, func(r controldb.ACLRule) error {
		if !started || r.Scope != scope || r.Subject != subject {
			flush()
			scope, subject, rules, bad, started = r.Scope, r.Subject, nil, nil, true
		}
		if bad != nil {
			return nil
		}
		rule, err := fromStored(r)
		if err != nil {
			bad = fmt.Errorf("rule id %d: %w", r.ID, err)
			return nil
		}
		rules = append(rules, rule)
		return nil
	})
	if err != nil {
		return fmt.Errorf("built_in_database: loading rules: %w", err)
	}
	flush()
	return nil
}

// denyAll is the list that stands in for one that does not load.
func denyAll() *authz.RuleSet {
	rs, err := compile([]authz.Rule{{Permission: authz.PermDeny, Action: authz.ActAll}})
	if err != nil {
		panic(err) // a constant rule
	}
	return rs
}

// put replaces (rs != nil) or removes (rs == nil) one subject's list in the index.
// Callers hold writeMu, or are New before the source is shared.
func (s *Source) put(scope Scope, subject string, rs *authz.RuleSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var old *authz.RuleSet
	switch scope {
	case ScopeUsername:
		old = s.byUser[subject]
		setOrDelete(s.byUser, subject, rs)
	case ScopeClientID:
		old = s.byClient[subject]
		setOrDelete(s.byClient, subject, rs)
	case ScopeAll:
		old, s.all = s.all, rs
	}
	if old != nil && old.UsesPlaceholders() {
		s.withPlaceholders--
	}
	if rs != nil && rs.UsesPlaceholders() {
		s.withPlaceholders++
	}
}

func setOrDelete(m map[string]*authz.RuleSet, k string, rs *authz.RuleSet) {
	if rs == nil {
		delete(m, k)
	} else {
		m[k] = rs
	}
}

// Name implements authz.Source.
func (s *Source) Name() string { return Name }

// ForClient implements authz.Source: three map lookups under a read lock, then the
// placeholders of the client's lists expanded; its cost does not grow with the number of
// stored rules of other clients. The answer is a snapshot: later changes reach the
// client through OnChange and a new ForClient call.
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	if info == nil {
		info = &clientinfo.Info{}
	}
	s.mu.RLock()
	var byClient, byUser *authz.RuleSet
	if info.ClientID != "" {
		byClient = s.byClient[info.ClientID]
	}
	if info.Username != "" {
		byUser = s.byUser[info.Username]
	}
	all := s.all
	s.mu.RUnlock()

	var v view
	n := 0
	for _, rs := range [...]*authz.RuleSet{byClient, byUser, all} {
		if rs != nil {
			v.lists[n] = rs.ForClient(info)
			n++
		}
	}
	if n == 0 {
		return noRules{}
	}
	v.n = n
	return &v
}

// view answers for one client: its lists in evaluation order.
type view struct {
	lists [3]*authz.ClientRules
	n     int
}

// Authorize implements authz.ClientSource.
func (v *view) Authorize(_ context.Context, a authz.Action, topic string) authz.Decision {
	for _, l := range v.lists[:v.n] {
		if d := l.Decide(a, topic); d != authz.NoMatch {
			return d
		}
	}
	return authz.NoMatch
}

// noRules is the view of a client no list applies to.
type noRules struct{}

func (noRules) Authorize(context.Context, authz.Action, string) authz.Decision {
	return authz.NoMatch
}

// UsesPlaceholders reports whether any stored list holds a placeholder topic now. Lists
// written later may add some; their expansion stays safe without the chain's identity
// check (see the package comment).
func (s *Source) UsesPlaceholders() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.withPlaceholders > 0
}

// OnChange implements authz.Notifier. fn runs synchronously in the writing call, after
// the change is in the index and before the call returns; it must not write rules.
func (s *Source) OnChange(fn func()) {
	s.watchMu.Lock()
	s.watchers = append(s.watchers, fn)
	s.watchMu.Unlock()
}

func (s *Source) notify() {
	s.watchMu.Lock()
	fns := append([]func(){}, s.watchers...)
	s.watchMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// SetRules makes rules the whole ordered list of one subject (for ScopeAll the subject is
// ""): validated, stored in one transaction, then in effect, then announced. An empty
// list removes the subject's rules. The stored rules are copies; the caller may reuse
// its slice.
func (s *Source) SetRules(ctx context.Context, scope Scope, subject string, rules []authz.Rule) error {
	return s.SetRulesMany(ctx, []RuleList{{Scope: scope, Subject: subject, Rules: rules}})
}

// RuleList is the whole ordered rule list of one subject.
type RuleList struct {
	Scope   Scope
	Subject string // "" for ScopeAll
	Rules   []authz.Rule
}

// SetRulesMany is SetRules for several subjects at once (an import): one transaction,
// one announcement; either every list is replaced or none. A subject named twice ends
// with its last list.
func (s *Source) SetRulesMany(ctx context.Context, lists []RuleList) error {
	sets := make([]*authz.RuleSet, len(lists))
	stored := make([]controldb.ACLList, len(lists))
	for l, list := range lists {
		if err := checkSubject(list.Scope, list.Subject); err != nil {
			return fmt.Errorf("built_in_database: set rules: %w", err)
		}
		if len(list.Rules) > s.cfg.MaxRules {
			return fmt.Errorf("built_in_database: set rules of %s %q: %d rules, max_rules is %d",
				list.Scope, list.Subject, len(list.Rules), s.cfg.MaxRules)
		}
		if len(list.Rules) > 0 {
			var err error
			if sets[l], err = compile(list.Rules); err != nil {
				return fmt.Errorf("built_in_database: set rules of %s %q: %w", list.Scope, list.Subject, err)
			}
		}
		stored[l] = controldb.ACLList{Scope: list.Scope, Subject: list.Subject, Rules: make([]controldb.ACLRule, len(list.Rules))}
		for i, r := range list.Rules {
			stored[l].Rules[i] = toStored(r)
		}
	}

	s.writeMu.Lock()
	if err := s.repo.ReplaceMany(ctx, stored); err != nil {
		s.writeMu.Unlock()
		return fmt.Errorf("built_in_database: %w", err)
	}
	for l, list := range lists {
		s.put(list.Scope, list.Subject, sets[l])
	}
	s.writeMu.Unlock()
	s.notify()
	return nil
}

// DeleteRules removes every rule of one subject, or returns an error wrapping
// ErrNotFound when it has none.
func (s *Source) DeleteRules(ctx context.Context, scope Scope, subject string) error {
	if err := checkSubject(scope, subject); err != nil {
		return fmt.Errorf("built_in_database: delete rules: %w", err)
	}
	s.writeMu.Lock()
	n, err := s.repo.DeleteFor(ctx, scope, subject)
	if err != nil {
		s.writeMu.Unlock()
		return fmt.Errorf("built_in_database: %w", err)
	}
	if n == 0 {
		s.writeMu.Unlock()
		return fmt.Errorf("built_in_database: rules of %s %q: %w", scope, subject, ErrNotFound)
	}
	s.put(scope, subject, nil)
	s.writeMu.Unlock()
	s.notify()
	return nil
}

// StoredRule is a rule as the store keeps it, with the id DeleteRule takes.
type StoredRule struct {
	ID      int64
	Scope   Scope
	Subject string
	Rule    authz.Rule
}

// Rules returns the stored list of one subject, read from the database (for the admin
// API; decisions never read it).
func (s *Source) Rules(ctx context.Context, scope Scope, subject string) ([]StoredRule, error) {
	if err := checkSubject(scope, subject); err != nil {
		return nil, fmt.Errorf("built_in_database: rules: %w", err)
	}
	list, err := s.repo.ListFor(ctx, scope, subject)
	if err != nil {
		return nil, fmt.Errorf("built_in_database: %w", err)
	}
	out := make([]StoredRule, 0, len(list))
	for _, r := range list {
		rule, err := fromStored(r)
		if err != nil {
			return nil, fmt.Errorf("built_in_database: rule id %d: %w", r.ID, err)
		}
		out = append(out, StoredRule{ID: r.ID, Scope: r.Scope, Subject: r.Subject, Rule: rule})
	}
	return out, nil
}

// DeleteRule removes one rule by id from whichever list holds it, or returns an error
// wrapping ErrNotFound.
func (s *Source) DeleteRule(ctx context.Context, id int64) error {
	s.writeMu.Lock()
	gone, err := s.repo.Delete(ctx, id)
	if err != nil {
		s.writeMu.Unlock()
		return fmt.Errorf("built_in_database: %w", err)
	}
	// Rebuild the subject's list from what is stored now. The row is gone whatever
	// happens next, so a failure to reload must not leave the old list (with the deleted
	// rule) in force: deny everything to those clients until the list is rewritten.
	// The reload ignores the caller's cancellation for the same reason.
	rs, rerr := s.reload(context.WithoutCancel(ctx), gone.Scope, gone.Subject)
	if rerr != nil {
		s.log.Error("built_in_database: reloading rules after a delete failed; denying everything to the clients they are for until they are replaced",
			"scope", gone.Scope, "subject", gone.Subject, "err", rerr)
		rs = denyAll()
	}
	s.put(gone.Scope, gone.Subject, rs)
	s.writeMu.Unlock()
	s.notify()
	if rerr != nil {
		return fmt.Errorf("built_in_database: rule %d deleted, but reloading the rules of %s %q failed: %w", id, gone.Scope, gone.Subject, rerr)
	}
	return nil
}

// reload reads and compiles one subject's stored list; nil when it is empty.
func (s *Source) reload(ctx context.Context, scope Scope, subject string) (*authz.RuleSet, error) {
	list, err := s.repo.ListFor(ctx, scope, subject)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}
	rules := make([]authz.Rule, 0, len(list))
	for _, r := range list {
		rule, err := fromStored(r)
		if err != nil {
			return nil, fmt.Errorf("rule id %d: %w", r.ID, err)
		}
		rules = append(rules, rule)
	}
	return compile(rules)
}

func checkSubject(scope Scope, subject string) error {
	switch {
	case !scope.Valid():
		return fmt.Errorf("scope %q: want username, clientid or all", scope)
	case scope == ScopeAll && subject != "":
		return errors.New("scope all takes no subject")
	case scope != ScopeAll && subject == "":
		return fmt.Errorf("scope %s needs a subject", scope)
	}
	return nil
}
