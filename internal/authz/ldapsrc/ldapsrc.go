// Package ldapsrc is the ldap authorization source: the client's entry, found by a
// search under base_dn with a configured filter, lists the topic filters the client may
// use in three attributes (by default those of Rampart's schema, etc/ldap/rampart.schema):
// mqttPublishTopic (publish), mqttSubscriptionTopic (subscribe) and mqttPubSubTopic
// (both). Every value becomes one allow rule, compiled into an authz.RuleSet; a value may
// hold placeholders such as ${clientid}, expanded as authz.Compile describes. The filter's
// placeholder values are escaped as RFC 4515 filter values, so a user name cannot widen
// the search.
//
// Rules are read once per view, at the client's first authorization question after
// ForClient (which the chain calls at CONNECT, after any source announces a rule change,
// and when the source's ttl, authz.WithTTL, has passed); a value added or removed
// afterwards applies within the ttl.
// No entry (or no value for a placeholder of the filter, such as a client without a user
// name) means no rules: no match, and the next source decides. A failed or timed-out
// search, a filter that matches more than one entry, more values than max_rules, or a
// value that is not a valid topic filter decides Deny for that question (no match with
// on_error: ignore), and the entry is read again at the next question: a partly read or
// partly understood rule list is never used.
//
// The directory's matching rules may fold case, spaces and Unicode forms (uid's
// caseIgnoreMatch finds alice's entry for "ALICE", " alice" or "ａｌｉｃｅ"), so the entry
// found must also hold, byte for byte, the value of each placeholder that is the whole
// value of an equality assertion of the filter, such as (uid=${username}) (under "|", one
// branch must hold). An entry that matches only under the directory's folding is no
// entry: no rules.
package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/ldap"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the source's name in configuration, logs and metrics.
const Name = "ldap"

// Config configures the source. Key names in comments are the proposed YAML keys of an
// authorization source of type ldap (EMQX's where EMQX has one).
type Config struct {
	// Backend is the server and pool; its keys (server, username, password, base_dn,
	// pool_size, connect_timeout, request_timeout (as QueryTimeout), ssl, ssl.start_tls,
	// allow_plaintext) sit at the source's top level. base_dn is required: the search
	// starts there. New builds its pool from it; NewWith is given a pool instead and
	// ignores it.
	Backend ldap.Config
	// Filter finds the client's entry by a subtree search under base_dn, e.g.
	// (&(objectClass=mqttUser)(uid=${username})); at most one entry may match.
	// Placeholders may stand in assertion values only; ${password} is refused. An
	// equality assertion whose whole value is one placeholder must hold byte for byte in
	// the entry found. (filter)
	Filter string
	// PublishAttribute holds the topic filters the client may publish to; default
	// mqttPublishTopic. (publish_attribute)
	PublishAttribute string
	// SubscribeAttribute holds the topic filters the client may subscribe to; default
	// mqttSubscriptionTopic. (subscribe_attribute)
	SubscribeAttribute string
	// AllAttribute holds the topic filters the client may publish to and subscribe to;
	// default mqttPubSubTopic. (all_attribute)
	AllAttribute string
	// MaxRules bounds the values read for one client, the three attributes together; more
	// is an error. Default 1000, at most 100000. (max_rules)
	MaxRules int
	// OnError is what a failed search or an unusable value decides: "deny" (default) or
	// "ignore" (no match: the next source decides). (on_error)
	OnError string
}

// Values, defaults and limits.
const (
	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"

	DefaultPublishAttribute   = "mqttPublishTopic"
	DefaultSubscribeAttribute = "mqttSubscriptionTopic"
	DefaultAllAttribute       = "mqttPubSubTopic"

	DefaultMaxRules = 1000
	MaxMaxRules     = 100000
)

// attrName is an attribute description: a name or numeric OID, with options.
var attrName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

// settings is a validated configuration.
type settings struct {
	filter   *ldap.Filter
	attrs    [3]string // publish, subscribe, all
	search   []string  // attrs and the filter's ExactAttrs: what a search asks for
	maxRules int
	ignore   bool
}

// Validate checks the configuration without connecting or reading secrets; errors name
// the key.
func (c Config) Validate() error {
	if _, err := c.settings(c.Backend.BaseDN); err != nil {
		return err
	}
	return c.Backend.Validate()
}

// settings validates everything but the connection; baseDN is the base DN of the pool
// the source will search.
func (c Config) settings(baseDN string) (*settings, error) {
	s := &settings{}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		s.ignore = true
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	s.maxRules = c.MaxRules
	switch {
	case s.maxRules == 0:
		s.maxRules = DefaultMaxRules
	case s.maxRules < 0 || s.maxRules > MaxMaxRules:
		return nil, fmt.Errorf("max_rules: %d: want 1 to %d", c.MaxRules, MaxMaxRules)
	}
	keys := [3]string{"publish_attribute", "subscribe_attribute", "all_attribute"}
	defaults := [3]string{DefaultPublishAttribute, DefaultSubscribeAttribute, DefaultAllAttribute}
	for i, v := range [3]string{c.PublishAttribute, c.SubscribeAttribute, c.AllAttribute} {
		if v == "" {
			v = defaults[i]
		}
		if !attrName.MatchString(v) {
			return nil, fmt.Errorf("%s: %q is not an attribute name", keys[i], v)
		}
		s.attrs[i] = v
	}
	if c.Filter == "" {
		return nil, errors.New("filter: required, e.g. (&(objectClass=mqttUser)(uid=${username}))")
	}
	f, err := ldap.CompileFilter(c.Filter, placeholder.Options{NoPassword: true})
	if err != nil {
		return nil, err
	}
	if !f.HasVars() {
		return nil, errors.New("filter: no placeholder: every client would get the same entry; use ${username} or ${clientid}")
	}
	if baseDN == "" {
		return nil, errors.New("base_dn: required (where the search starts)")
	}
	s.filter = f
	s.search = append([]string(nil), s.attrs[:]...)
next:
	for _, a := range f.ExactAttrs() {
		for _, b := range s.search {
			if strings.EqualFold(a, b) {
				continue next
			}
		}
		s.search = append(s.search, a)
	}
	return s, nil
}

// Source reads rules from an LDAP directory. It is safe for concurrent use.
type Source struct {
	s        *settings
	pool     *ldap.Pool
	ownsPool bool // Close closes pool (New); false when it is shared (NewWith)
	log      *slog.Logger
}

var _ authz.Source = (*Source)(nil)

// New validates cfg and builds the source with its own connection pool, made from
// cfg.Backend (which connects on first use). Close releases the pool.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	src, err := build(cfg, cfg.Backend.BaseDN, log)
	if err != nil {
		return nil, err
	}
	if src.pool, err = ldap.New(cfg.Backend); err != nil {
		return nil, fmt.Errorf("ldap authz: %w", err)
	}
	src.ownsPool = true
	src.ready()
	return src, nil
}

// NewWith validates cfg and builds the source on pool, which it shares with others (an
// authenticator on the same directory, say): cfg.Backend is not used (the search starts
// at the pool's base DN), and Close leaves the pool open for whoever made it to close.
func NewWith(cfg Config, pool *ldap.Pool, log *slog.Logger) (*Source, error) {
	if pool == nil {
		return nil, errors.New("ldap authz: no connection pool")
	}
	src, err := build(cfg, pool.BaseDN(), log)
	if err != nil {
		return nil, err
	}
	src.pool = pool
	src.ready()
	return src, nil
}

// build checks everything of cfg but the connection.
func build(cfg Config, baseDN string, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := cfg.settings(baseDN)
	if err != nil {
		return nil, fmt.Errorf("ldap authz: %w", err)
	}
	return &Source{s: s, log: log}, nil
}

// ready logs the source's settings once its pool is set.
func (s *Source) ready() {
	s.log.Info("ldap authorization source ready", "server", s.pool.Target(), "base_dn", s.pool.BaseDN(),
		"filter", s.s.filter.String(), "max_rules", s.s.maxRules, "request_timeout", s.pool.QueryTimeout(),
		"on_error", s.onError())
}

func (s *Source) onError() string {
	if s.s.ignore {
		return OnErrorIgnore
	}
	return OnErrorDeny
}

// Name implements authz.Source.
func (s *Source) Name() string { return Name }

// Close closes the connections to the server when the pool is the source's own (New); a
// shared pool (NewWith) stays open.
func (s *Source) Close() {
	if s.ownsPool {
		s.pool.Close()
	}
}

// Health returns the health of the connection to the directory.
func (s *Source) Health() health.Snapshot { return s.pool.Health() }

// ForClient implements authz.Source. It does not block: the rules are read at the first
// Authorize, under that call's context. The answer keeps a copy of info (its Attrs map is
// shared and must not be modified afterwards).
//
// The source does not implement authz.PlaceholderUser: its rules are not known before
// they are read, so the chain treats it as using placeholders.
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	return authz.NewLazyRules(info, s.read, s.fail)
}

// read searches the client's entry and compiles its topic values.
func (s *Source) read(ctx context.Context, info *clientinfo.Info) (*authz.ClientRules, error) {
	var (
		rules  []authz.Rule
		origin []string // where each rule came from, for errors
	)
	filter, err := s.s.filter.Expand(placeholder.Values{Info: info})
	switch {
	case errors.Is(err, ldap.ErrEmptyValue):
		// Nothing to look the client up by: no entry, no rules.
	case err != nil:
		return nil, err
	default:
		res, err := s.pool.Search(ctx, "", filter, s.s.search, 1)
		if err != nil {
			return nil, err
		}
		if res.More {
			return nil, fmt.Errorf("the filter %s matches more than one entry", s.s.filter.String())
		}
		if len(res.Entries) == 1 {
			if err := s.s.filter.Exact(placeholder.Values{Info: info}, res.Entries[0]); err != nil {
				// No entry, no rules. The error names attributes and variables, never a
				// value (the user name may be a token).
				s.log.Debug("ldap authorization: the entry matches the client only under the directory's matching rules; no rules",
					"client", info.ClientID, "err", err.Error())
			} else if rules, origin, err = s.toRules(res.Entries[0]); err != nil {
				return nil, err
			}
		}
	}
	rs, err := authz.Compile(rules)
	if err != nil {
		var re *authz.RuleError
		if errors.As(err, &re) && re.Index >= 0 && re.Index < len(origin) {
			return nil, fmt.Errorf("%s: %w", origin[re.Index], re.Err)
		}
		return nil, err
	}
	return rs.ForClient(info), nil
}

// toRules turns the entry's topic values into allow rules, and says where each came
// from.
func (s *Source) toRules(e *ldap.Entry) ([]authz.Rule, []string, error) {
	n := 0
	for _, attr := range s.s.attrs {
		n += len(e.Values(attr))
	}
	if n > s.s.maxRules {
		return nil, nil, fmt.Errorf("%s has %d topic values, more than max_rules (%d)", e.DN, n, s.s.maxRules)
	}
	rules := make([]authz.Rule, 0, n)
	origin := make([]string, 0, n)
	actions := [3]authz.Actions{authz.ActPublish, authz.ActSubscribe, authz.ActAll} // as s.s.attrs
	for i, attr := range s.s.attrs {
		for _, topic := range e.Values(attr) {
			rules = append(rules, authz.Rule{Permission: authz.PermAllow, Action: actions[i], Topics: []string{topic}})
			origin = append(origin, fmt.Sprintf("%s of %s, value %q", attr, e.DN, topic))
		}
	}
	return rules, origin, nil
}

// fail is the decision after an error: Deny, or NoMatch with on_error ignore.
func (s *Source) fail(info *clientinfo.Info, err error) authz.Decision {
	s.log.Warn("ldap authorization failed", "client", info.ClientID,
		"err", err.Error(), "on_error", s.onError())
	if s.s.ignore {
		return authz.NoMatch
	}
	return authz.Deny
}
