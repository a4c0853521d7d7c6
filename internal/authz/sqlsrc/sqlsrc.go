// Package sqlsrc is the SQL authorization source (type postgresql or mysql): a
// configured query returns a client's rules as rows (permission, action, topic, and optionally qos and retain), which
// are compiled into an authz.RuleSet and then decide every publish and subscribe of that
// client. The query's ${...} placeholders are sent as bound parameters, never as SQL text;
// rule topics may hold placeholders such as ${clientid}, expanded as authz.Compile
// describes. The package knows no database: a connector (internal/backend/postgres,
// internal/backend/mysql) compiles the query and runs it, as a Querier.
//
// The rules are read once per view: at the client's first authorization question after
// ForClient, which the chain calls at CONNECT, after any source announces a rule change,
// and when the source's ttl (authz.WithTTL) has passed. A row inserted or deleted
// afterwards therefore takes effect within the ttl; this source does not watch the
// table. A failed or timed-out query, too many rows, or a row that does not parse decides
// Deny for that question (no match with on_error: ignore), and the query is tried again at
// the next question: a half-read or partly understood rule list is never used, so a
// broken deny row cannot turn into an allow.
package sqlsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Config configures the source. Key names in comments are the proposed YAML keys of an
// authorization source of type postgresql or mysql (EMQX's where EMQX has one). The
// connector's keys (server, database, username, password, pool_size, connect_timeout,
// request_timeout (as QueryTimeout), ssl, allow_plaintext) and the query (query) sit at the
// source's top level; the connector compiles the query (see QueryOptions) and hands it over
// as a Querier.
type Config struct {
	// Backend is the source's name in configuration, logs and metrics: PostgreSQL or
	// MySQL. (type)
	Backend string
	// MaxRules bounds the rows read for one client; more is an error. Default 1000, at
	// most 100000. (max_rules)
	MaxRules int
	// OnError is what a failed query or an unusable row decides: "deny" (default) or
	// "ignore" (no match: the next source decides). (on_error)
	OnError string
}

// Statement is a configured query as a connector compiled it (postgres.Query,
// mysql.Query), every ${...} placeholder a bound parameter. It returns the client's rules,
// e.g. SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username =
// ${username}. Columns are found by name: permission (allow|deny), action
// (publish|subscribe|all) and topic are required; qos (a number or a list such as "0,1";
// NULL: any) and retain (boolean, 0/1 or true/false; NULL: either) are optional. Rows are
// tried in the order returned: add an ORDER BY.
type Statement interface {
	// String returns the query as configured.
	String() string
}

// Querier is a compiled query bound to a connection pool (postgres.Statement,
// mysql.Statement).
type Querier interface {
	Statement
	// Query runs the query with its placeholders bound to vals and reads at most maxRows
	// rows, setting More when there were more.
	Query(ctx context.Context, vals placeholder.Values, maxRows int) (*sqlrows.Rows, error)
	// Target names the server and database for logs, without credentials.
	Target() string
	// Close releases the pool when the querier has its own (postgres.Open, mysql.Open);
	// a querier on a shared pool (Pool.Bind) leaves it open.
	Close()
}

// QueryOptions are the placeholder rules a connector compiles the query with: ${password}
// is refused (rules must not depend on the password, nor carry it to the server again).
func QueryOptions() placeholder.Options { return placeholder.Options{NoPassword: true} }

// Values and limits.
const (
	PostgreSQL = "postgresql"
	MySQL      = "mysql"

	OnErrorDeny     = "deny"
	OnErrorIgnore   = "ignore"
	DefaultMaxRules = 1000
	MaxMaxRules     = 100000
)

// Source reads rules from a SQL table. It is safe for concurrent use.
type Source struct {
	backend  string
	q        Querier
	maxRules int
	ignore   bool
	log      *slog.Logger
}

var _ authz.Source = (*Source)(nil)

// Validate checks the configuration and the compiled query without connecting; errors
// name the key. q nil means no query was configured.
func (c Config) Validate(q Statement) error {
	_, err := c.check(q)
	return err
}

func (c Config) check(q Statement) (int, error) {
	if c.Backend != PostgreSQL && c.Backend != MySQL {
		return 0, fmt.Errorf("type: %q: want %s or %s", c.Backend, PostgreSQL, MySQL)
	}
	switch c.OnError {
	case "", OnErrorDeny, OnErrorIgnore:
	default:
		return 0, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	maxRules := c.MaxRules
	switch {
	case maxRules == 0:
		maxRules = DefaultMaxRules
	case maxRules < 0 || maxRules > MaxMaxRules:
		return 0, fmt.Errorf("max_rules: %d: want 1 to %d", c.MaxRules, MaxMaxRules)
	}
	if q == nil || strings.TrimSpace(q.String()) == "" {
		return 0, errors.New("query: required, e.g. SELECT permission, action, topic, qos, retain FROM mqtt_acl WHERE username = ${username}")
	}
	return maxRules, nil
}

// New validates cfg and builds the source on q, which it takes over: Close closes it, and
// so does New when it fails.
func New(cfg Config, q Querier, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if q == nil {
		return nil, fmt.Errorf("%s authz: query: required", cfg.Backend)
	}
	maxRules, err := cfg.check(q)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("%s authz: %w", cfg.Backend, err)
	}
	s := &Source{backend: cfg.Backend, q: q, maxRules: maxRules, ignore: cfg.OnError == OnErrorIgnore, log: log}
	log.Info(s.backend+" authorization source ready", "server", q.Target(), "query", q.String(),
		"max_rules", maxRules, "on_error", s.onError())
	return s, nil
}

func (s *Source) onError() string {
	if s.ignore {
		return OnErrorIgnore
	}
	return OnErrorDeny
}

// Name implements authz.Source: postgresql or mysql.
func (s *Source) Name() string { return s.backend }

// Close closes the connections to the server.
func (s *Source) Close() { s.q.Close() }

// ForClient implements authz.Source. It does not block: the rules are read at the first
// Authorize, under that call's context. The answer keeps a copy of info (its Attrs map is
// shared and must not be modified afterwards).
//
// The source does not implement authz.PlaceholderUser: its rules are not known before
// they are read, so the chain treats it as using placeholders.
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	return authz.NewLazyRules(info, s.read, s.fail)
}

// read runs the query for one client and compiles its rows.
func (s *Source) read(ctx context.Context, info *clientinfo.Info) (*authz.ClientRules, error) {
	rows, err := s.q.Query(ctx, placeholder.Values{Info: info}, s.maxRules)
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
func toRules(rows *sqlrows.Rows) ([]authz.Rule, error) {
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
	p, _ := sqlrows.Text(row[perm])
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "allow":
		r.Permission = authz.PermAllow
	case "deny":
		r.Permission = authz.PermDeny
	default:
		return r, fmt.Errorf("permission %q: want allow or deny", p)
	}
	a, _ := sqlrows.Text(row[act])
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
	t, ok := sqlrows.Text(row[top])
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
	s, ok := sqlrows.Text(v)
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
	if b, ok := sqlrows.Bool(v); ok {
		return b, nil
	}
	return false, fmt.Errorf("retain %v: want true or false", v)
}

// fail is the decision after an error: Deny, or NoMatch with on_error ignore.
func (s *Source) fail(info *clientinfo.Info, err error) authz.Decision {
	s.log.Warn(s.backend+" authorization failed", "client", info.ClientID,
		"err", err.Error(), "on_error", s.onError())
	if s.ignore {
		return authz.NoMatch
	}
	return authz.Deny
}
