// Package pgsrc is the postgresql authorization source: a configured query returns a
// client's rules as rows (permission, action, topic, and optionally qos and retain), which
// are compiled into an authz.RuleSet and then decide every publish and subscribe of that
// client. The query's ${...} placeholders are sent as bound parameters, never as SQL text;
// rule topics may hold placeholders such as ${clientid}, expanded as authz.Compile
// describes.
//
// The rules are read once per session: at the client's first authorization question after
// ForClient (which the chain calls at CONNECT and again after any source announces a rule
// change). A row inserted or deleted afterwards takes effect at the client's next
// connection or at the next rule change notification; this source does not watch the
// table. A failed or timed-out query, too many rows, or a row that does not parse decides
// Deny for that question (no match with on_error: ignore), and the query is tried again at
// the next question: a half-read or partly understood rule list is never used, so a
// broken deny row cannot turn into an allow.
package pgsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the source's name in configuration, logs and metrics.
const Name = "postgresql"

// Config configures the source. Key names in comments are the proposed YAML keys of an
// authorization source of type postgresql (EMQX's where EMQX has one).
type Config struct {
	// Backend is the server and pool; its keys (server, database, username, password,
	// pool_size, connect_timeout, query_timeout, acquire_timeout, ssl, allow_plaintext, or
	// dsn) sit at the source's top level.
	Backend postgres.Config
	// Query returns the client's rules, e.g. SELECT permission, action, topic, qos, retain
	// FROM mqtt_acl WHERE username = ${username}. Columns are found by name: permission
	// (allow|deny), action (publish|subscribe|all) and topic are required; qos (a number
	// or a list such as "0,1"; NULL: any) and retain (boolean, 0/1 or true/false; NULL:
	// either) are optional. Rows are tried in the order returned: add an ORDER BY. ${password}
	// is refused. (query)
	Query string
	// MaxRules bounds the rows read for one client; more is an error. Default 1000, at
	// most 100000. (max_rules)
	MaxRules int
	// OnError is what a failed query or an unusable row decides: "deny" (default) or
	// "ignore" (no match: the next source decides). (on_error)
	OnError string
}

// Values and limits.
const (
	OnErrorDeny     = "deny"
	OnErrorIgnore   = "ignore"
	DefaultMaxRules = 1000
	MaxMaxRules     = 100000
)

// Source reads rules from PostgreSQL. It is safe for concurrent use.
type Source struct {
	query    *postgres.Query
	pool     *postgres.Pool
	maxRules int
	ignore   bool
	log      *slog.Logger
}

var _ authz.Source = (*Source)(nil)

// Validate checks the configuration without connecting; errors name the key.
func (c Config) Validate() error {
	_, _, err := c.check()
	return err
}

func (c Config) check() (*postgres.Query, int, error) {
	switch c.OnError {
	case "", OnErrorDeny, OnErrorIgnore:
	default:
		return nil, 0, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	maxRules := c.MaxRules
	switch {
	case maxRules == 0:
		maxRules = DefaultMaxRules
	case maxRules < 0 || maxRules > MaxMaxRules:
		return nil, 0, fmt.Errorf("max_rules: %d: want 1 to %d", c.MaxRules, MaxMaxRules)
	}
	if c.Query == "" {
		return nil, 0, errors.New("query: required, e.g. SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username}")
	}
	q, err := postgres.CompileQuery(c.Query, placeholder.Options{NoPassword: true})
	if err != nil {
		return nil, 0, err
	}
	return q, maxRules, nil
}

// New validates cfg and builds the source with its own connection pool (which connects
// on first use). Close releases the pool.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q, maxRules, err := cfg.check()
	if err != nil {
		return nil, fmt.Errorf("postgresql authz: %w", err)
	}
	pool, err := postgres.New(ctx, cfg.Backend)
	if err != nil {
		return nil, fmt.Errorf("postgresql authz: %w", err)
	}
	s := &Source{query: q, pool: pool, maxRules: maxRules, ignore: cfg.OnError == OnErrorIgnore, log: log}
	log.Info("postgresql authorization source ready", "server", pool.Target(), "query", q.String(),
		"max_rules", maxRules, "query_timeout", pool.QueryTimeout(), "on_error", s.onError())
	return s, nil
}

func (s *Source) onError() string {
	if s.ignore {
		return OnErrorIgnore
	}
	return OnErrorDeny
}

// Name implements authz.Source.
func (s *Source) Name() string { return Name }

// Close closes the connections to the server.
func (s *Source) Close() { s.pool.Close() }

// ForClient implements authz.Source. It does not block: the rules are read at the first
// Authorize, under that call's context. The answer keeps a copy of info (its Attrs map is
// shared and must not be modified afterwards).
//
// The source does not implement authz.PlaceholderUser: its rules are not known before
// they are read, so the chain treats it as using placeholders.
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	c := &client{s: s, load: make(chan struct{}, 1)}
	if info != nil {
		c.info = *info
	}
	return c
}

type client struct {
	s    *Source
	info clientinfo.Info
	load chan struct{} // held while reading the rules, so one question reads them at a time

	rules *authz.ClientRules // set once read; guarded by load
}

// Authorize implements authz.ClientSource.
func (c *client) Authorize(ctx context.Context, a authz.Action, topic string) authz.Decision {
	select {
	case c.load <- struct{}{}:
	case <-ctx.Done():
		return c.s.fail(&c.info, "waiting for the rules to be read: %v", ctx.Err())
	}
	rules := c.rules
	if rules == nil {
		var err error
		if rules, err = c.s.read(ctx, &c.info); err != nil {
			<-c.load
			return c.s.fail(&c.info, "%v", err)
		}
		c.rules = rules
	}
	<-c.load
	return rules.Decide(a, topic)
}

// read runs the query for one client and compiles its rows.
func (s *Source) read(ctx context.Context, info *clientinfo.Info) (*authz.ClientRules, error) {
	rows, err := s.pool.Query(ctx, s.query, placeholder.Values{Info: info}, s.maxRules)
	if err != nil {
		return nil, err
	}
	if rows.More {
		return nil, fmt.Errorf("the query returned more than max_rules (%d) rows", s.maxRules)
	}
	rules, err := toRules(rows)
	if err != nil {
		return nil, err
	}
	rs, err := authz.Compile(rules)
	if err != nil {
		return nil, err
	}
	return rs.ForClient(info), nil
}

// toRules turns the rows into rules; the first row that does not parse fails them all.
func toRules(rows *postgres.Rows) ([]authz.Rule, error) {
	perm, act, top := rows.Column("permission"), rows.Column("action"), rows.Column("topic")
	qos, ret := rows.Column("qos"), rows.Column("retain")
	if perm < 0 || act < 0 || top < 0 {
		return nil, fmt.Errorf("the query must return the columns permission, action and topic (it returns: %s)", strings.Join(rows.Columns, ", "))
	}
	out := make([]authz.Rule, 0, len(rows.Values))
	for i, row := range rows.Values {
		r, err := toRule(row, perm, act, top, qos, ret)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func toRule(row []any, perm, act, top, qos, ret int) (authz.Rule, error) {
	var r authz.Rule
	p, _ := postgres.Text(row[perm])
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "allow":
		r.Permission = authz.PermAllow
	case "deny":
		r.Permission = authz.PermDeny
	default:
		return r, fmt.Errorf("permission %q: want allow or deny", p)
	}
	a, _ := postgres.Text(row[act])
	switch strings.ToLower(strings.TrimSpace(a)) {
	case "publish":
		r.Action = authz.ActPublish
	case "subscribe":
		r.Action = authz.ActSubscribe
	case "all":
		r.Action = authz.ActAll
	default:
		return r, fmt.Errorf("action %q: want publish, subscribe or all", a)
	}
	t, ok := postgres.Text(row[top])
	if !ok || t == "" {
		return r, errors.New("topic: NULL or empty")
	}
	r.Topics = []string{t}
	if qos >= 0 && row[qos] != nil {
		q, err := qosList(row[qos])
		if err != nil {
			return r, err
		}
		r.QoS = q
	}
	if ret >= 0 && row[ret] != nil {
		b, err := boolean(row[ret])
		if err != nil {
			return r, err
		}
		r.Retain = &b
	}
	return r, nil
}

// qosList reads a qos value: a number 0..2, or a comma-separated list of them.
func qosList(v any) ([]byte, error) {
	s, ok := postgres.Text(v)
	if !ok {
		return nil, fmt.Errorf("qos: %T: want a number or a list such as \"0,1\"", v)
	}
	var out []byte
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 2 {
			return nil, fmt.Errorf("qos %q: want 0, 1, 2 or a list of them", s)
		}
		out = append(out, byte(n))
	}
	return out, nil
}

// boolean reads a retain value.
func boolean(v any) (bool, error) {
	s, ok := postgres.Text(v)
	if ok {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "t", "1":
			return true, nil
		case "false", "f", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("retain %v: want true or false", v)
}

// fail is the decision after an error: Deny, or NoMatch with on_error ignore.
func (s *Source) fail(info *clientinfo.Info, format string, args ...any) authz.Decision {
	s.log.Warn("postgresql authorization failed", "client", info.ClientID,
		"err", fmt.Sprintf(format, args...), "on_error", s.onError())
	if s.ignore {
		return authz.NoMatch
	}
	return authz.Deny
}
