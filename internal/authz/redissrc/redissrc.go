// Package redissrc is the "redis" authorization source: it reads a client's rules from a
// Redis hash, the way EMQX does. A configured HGETALL command (for example
// "HGETALL mqtt_acl:${username}") returns field = topic filter, value = action (publish,
// subscribe or all); every entry is an allow rule, so a topic the hash does not cover is
// NoMatch and the next source decides.
//
// The hash is read once per view, lazily, at the client's first authorization question,
// then compiled into an indexed rule set that answers every later question without a round
// trip. The chain makes a new view at CONNECT and when the source's ttl (authz.WithTTL)
// has passed, so a change in Redis applies within the ttl; a failed read is not
// remembered, so the next question tries again.
package redissrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/redis"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the source's name in configuration, logs and metrics.
const Name = "redis"

// DefaultMaxRules bounds the entries read for one client.
const DefaultMaxRules = 1000

// on_error values.
const (
	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"
)

// Config configures the source (proposed YAML keys in parentheses). The Redis connection
// keys sit beside these in the source's YAML map.
type Config struct {
	// Redis is the server to ask (redis_type, server, servers, sentinel, username,
	// password, sentinel_username, sentinel_password, database, pool_size,
	// connect_timeout, command_timeout, ssl, allow_plaintext). New connects with it;
	// NewWith is given a client instead and ignores it.
	Redis redis.Config
	// Cmd is the command template (cmd), e.g. "HGETALL mqtt_acl:${username}". Only
	// HGETALL is allowed; ${password} is refused.
	Cmd string
	// MaxRules bounds the hash entries of one client (max_rules); a larger hash is an
	// error. Default 1000.
	MaxRules int
	// OnError is what a failed read decides: "deny" (default) or "ignore", which is
	// NoMatch (on_error).
	OnError string
}

// Source reads rules from Redis. It is safe for concurrent use.
type Source struct {
	rdb       *redis.Client
	ownsRDB   bool // Close closes rdb (New); false when it is shared (NewWith)
	cmd       *redis.Command
	maxRules  int
	ignoreErr bool
	log       *slog.Logger
}

var _ authz.Source = (*Source)(nil)

// New validates cfg and builds the source with a Redis client of its own, made from
// cfg.Redis. It does not connect; Close releases the connections.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	s, err := build(cfg, log)
	if err != nil {
		return nil, err
	}
	if s.rdb, err = redis.New(cfg.Redis); err != nil {
		return nil, fmt.Errorf("redis authz: %w", err)
	}
	s.ownsRDB = true
	s.ready(cfg.OnError)
	return s, nil
}

// NewWith validates cfg and builds the source on rdb, a client it shares with others (an
// authenticator on the same server, say): cfg.Redis is not used, and Close leaves rdb
// open for whoever made it to close.
func NewWith(cfg Config, rdb *redis.Client, log *slog.Logger) (*Source, error) {
	if rdb == nil {
		return nil, errors.New("redis authz: no Redis client")
	}
	s, err := build(cfg, log)
	if err != nil {
		return nil, err
	}
	s.rdb = rdb
	s.ready(cfg.OnError)
	return s, nil
}

// build checks everything of cfg but the connection.
func build(cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{maxRules: cfg.MaxRules, log: log}
	switch cfg.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		s.ignoreErr = true
	default:
		return nil, fmt.Errorf("redis authz: on_error %q: want deny or ignore", cfg.OnError)
	}
	if s.maxRules < 0 {
		return nil, fmt.Errorf("redis authz: max_rules %d is negative", s.maxRules)
	}
	if s.maxRules == 0 {
		s.maxRules = DefaultMaxRules
	}
	cmd, err := redis.ParseCommand(cfg.Cmd, []string{"HGETALL"}, placeholder.Options{NoPassword: true})
	if err != nil {
		return nil, fmt.Errorf("redis authz: %w", err)
	}
	if len(cmd.Fields()) > 0 {
		return nil, fmt.Errorf("redis authz: cmd %q: HGETALL takes only a key", cfg.Cmd)
	}
	s.cmd = cmd
	return s, nil
}

// ready logs the source's settings once its client is set.
func (s *Source) ready(onError string) {
	if s.rdb.Insecure() {
		s.log.Warn("redis authz: plain-text connection to a non-loopback server; configure ssl", "server", s.rdb.Addr())
	}
	s.log.Info("redis authorization source ready", "server", s.rdb.Addr(), "cmd", s.cmd.String(), "on_error", onError)
}

// Name implements authz.Source.
func (s *Source) Name() string { return Name }

// Close closes the connections to Redis when the client is the source's own (New); a
// shared client (NewWith) stays open.
func (s *Source) Close() error {
	if !s.ownsRDB {
		return nil
	}
	return s.rdb.Close()
}

// ForClient implements authz.Source. It does no I/O: the client's hash is read at its first
// question.
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	args, hasKey := s.cmd.Args(placeholder.Values{Info: info})
	if !hasKey {
		return noRecord{} // no user name (or other key value): no record to read
	}
	return authz.NewLazyRules(info, func(ctx context.Context, info *clientinfo.Info) (*authz.ClientRules, error) {
		return s.read(ctx, info, args)
	}, s.fail)
}

// noRecord is the view of a client whose key has no value: it decides nothing.
type noRecord struct{}

// Authorize implements authz.ClientSource.
func (noRecord) Authorize(context.Context, authz.Action, string) authz.Decision { return authz.NoMatch }

// read runs the command (args) for one client and compiles the hash it returns.
func (s *Source) read(ctx context.Context, info *clientinfo.Info, args []string) (*authz.ClientRules, error) {
	reply, err := s.rdb.Do(ctx, args...)
	if err != nil {
		return nil, err
	}
	rules, err := s.rules(reply)
	if err != nil {
		return nil, err
	}
	rs, err := s.compile(rules)
	if err != nil {
		return nil, err
	}
	return rs.ForClient(info), nil
}

// fail is the decision after an error: Deny, or NoMatch with on_error ignore.
func (s *Source) fail(info *clientinfo.Info, err error) authz.Decision {
	if s.ignoreErr {
		s.log.Warn("redis authz: failed; no match as configured (on_error: ignore)", "clientid", info.ClientID, "err", err)
		return authz.NoMatch
	}
	s.log.Warn("redis authz: failed; denying", "clientid", info.ClientID, "err", err)
	return authz.Deny
}

// rules turns an HGETALL reply into allow rules. An entry whose action is unknown is
// skipped with a warning: it grants nothing.
func (s *Source) rules(reply any) ([]authz.Rule, error) {
	var pairs [][2]string
	switch v := reply.(type) {
	case nil:
	case []any:
		if len(v)%2 != 0 {
			return nil, fmt.Errorf("HGETALL answered an odd number (%d) of values", len(v))
		}
		for i := 0; i < len(v); i += 2 {
			k, ok1 := v[i].(string)
			val, ok2 := v[i+1].(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("HGETALL entry %d: unexpected types %T, %T", i/2, v[i], v[i+1])
			}
			pairs = append(pairs, [2]string{k, val})
		}
	case map[any]any: // RESP3
		for k, val := range v {
			ks, ok1 := k.(string)
			vs, ok2 := val.(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("HGETALL entry: unexpected types %T, %T", k, val)
			}
			pairs = append(pairs, [2]string{ks, vs})
		}
	default:
		return nil, fmt.Errorf("unexpected reply of type %T to HGETALL", reply)
	}
	if len(pairs) > s.maxRules {
		return nil, fmt.Errorf("%d entries exceed max_rules %d", len(pairs), s.maxRules)
	}
	out := make([]authz.Rule, 0, len(pairs))
	for _, p := range pairs {
		var act authz.Actions
		switch strings.ToLower(strings.TrimSpace(p[1])) {
		case "publish":
			act = authz.ActPublish
		case "subscribe":
			act = authz.ActSubscribe
		case "all":
			act = authz.ActAll
		default:
			s.log.Warn("redis authz: entry skipped: action is not publish, subscribe or all", "topic", p[0], "action", p[1])
			continue
		}
		out = append(out, authz.Rule{Permission: authz.PermAllow, Action: act, Topics: []string{p[0]}})
	}
	return out, nil
}

// compile builds the rule set, dropping (with a warning) each entry whose topic does not
// compile, so one bad entry does not take the client's other rules with it.
func (s *Source) compile(rules []authz.Rule) (*authz.RuleSet, error) {
	for range len(rules) + 1 {
		rs, err := authz.Compile(rules)
		if err == nil {
			return rs, nil
		}
		var re *authz.RuleError
		if !errors.As(err, &re) || re.Index < 0 || re.Index >= len(rules) {
			return nil, fmt.Errorf("compiling rules: %w", err)
		}
		s.log.Warn("redis authz: entry skipped", "topic", strings.Join(rules[re.Index].Topics, " "), "err", re.Err)
		rules = append(rules[:re.Index:re.Index], rules[re.Index+1:]...)
	}
	return nil, errors.New("compiling rules: no progress")
}
