package controldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ACLScope says whom a stored authorization rule applies to.
type ACLScope string

// The scopes of stored authorization rules.
const (
	ScopeUsername ACLScope = "username" // clients connecting with this username
	ScopeClientID ACLScope = "clientid" // the client with this client id
	ScopeAll      ACLScope = "all"      // every client; the subject is ""
)

// Valid reports whether s is one of the scopes.
func (s ACLScope) Valid() bool { return s == ScopeUsername || s == ScopeClientID || s == ScopeAll }

// Permissions and actions of a stored rule, as the acl_rules table spells them.
const (
	PermissionAllow = "allow"
	PermissionDeny  = "deny"

	ActionPublish   = "publish"
	ActionSubscribe = "subscribe"
	ActionAll       = "all"
)

// Limits on what one subject may store. The authorization source that writes the rules
// usually sets a tighter bound of its own.
const (
	MaxACLRulesPerSubject = 10000
	MaxTopicsPerACLRule   = 1000
	maxTopicLen           = 65535 // the longest MQTT string
)

// ACLRule is one stored authorization rule. The rules of one (Scope, Subject) form an
// ordered list; the store numbers them.
type ACLRule struct {
	// ID identifies the rule; set by the store.
	ID int64
	// Scope and Subject say whom the rule is for: a username, a client id, or every
	// client (ScopeAll, Subject "").
	Scope   ACLScope
	Subject string
	// Position orders the rules of one subject, lowest first; set by the store. Positions
	// of a subject are increasing but not necessarily contiguous (Delete leaves a gap).
	Position int
	// Permission is PermissionAllow or PermissionDeny.
	Permission string
	// Action is ActionPublish, ActionSubscribe or ActionAll.
	Action string
	// Topics are topic filters, stored as given (placeholders included); empty means
	// every topic.
	Topics []string
	// QoS narrows the rule to these QoS levels; nil means any.
	QoS []byte
	// Retain narrows a publish rule to retained (true) or non-retained (false) messages;
	// nil means either.
	Retain *bool
	// CreatedAt is set by the store (millisecond precision).
	CreatedAt time.Time
}

// validSubject checks a (scope, subject) pair.
func validSubject(scope ACLScope, subject string) error {
	switch {
	case !scope.Valid():
		return fmt.Errorf("scope %q: want username, clientid or all", scope)
	case scope == ScopeAll && subject != "":
		return errors.New("scope all takes no subject")
	case scope != ScopeAll && (subject == "" || len(subject) > maxUserIDLen || !utf8.ValidString(subject)):
		return fmt.Errorf("%s must be 1 to 65535 bytes of UTF-8", scope)
	}
	return nil
}

func (r *ACLRule) validate() error {
	switch r.Permission {
	case PermissionAllow, PermissionDeny:
	default:
		return fmt.Errorf("permission %q: want allow or deny", r.Permission)
	}
	switch r.Action {
	case ActionPublish, ActionSubscribe, ActionAll:
	default:
		return fmt.Errorf("action %q: want publish, subscribe or all", r.Action)
	}
	if len(r.Topics) > MaxTopicsPerACLRule {
		return fmt.Errorf("%d topics: at most %d", len(r.Topics), MaxTopicsPerACLRule)
	}
	for _, t := range r.Topics {
		if t == "" || len(t) > maxTopicLen || !utf8.ValidString(t) || strings.IndexByte(t, 0) >= 0 {
			return fmt.Errorf("topic %.64q: want 1 to 65535 bytes of UTF-8 without NUL", t)
		}
	}
	for _, q := range r.QoS {
		if q > 2 {
			return fmt.Errorf("qos %d: want 0, 1 or 2", q)
		}
	}
	return nil
}

// ACLRules is the repository of the built-in database's authorization rules. It is safe
// for concurrent use.
type ACLRules struct {
	db *DB
}

// ACLRules returns the authorization rules repository.
func (db *DB) ACLRules() *ACLRules { return &ACLRules{db: db} }

const aclColumns = `id, scope, subject, position, permission, action, topics, qos, retain, created_at`

func scanACLRule(s scanner) (ACLRule, error) {
	var (
		r       ACLRule
		topics  string
		qos     sql.NullString
		retain  sql.NullInt64
		created int64
	)
	if err := s.Scan(&r.ID, &r.Scope, &r.Subject, &r.Position, &r.Permission, &r.Action,
		&topics, &qos, &retain, &created); err != nil {
		return ACLRule{}, err
	}
	if err := json.Unmarshal([]byte(topics), &r.Topics); err != nil {
		return ACLRule{}, fmt.Errorf("rule %d: topics: %w", r.ID, err)
	}
	if len(r.Topics) == 0 {
		r.Topics = nil
	}
	if qos.Valid {
		// Decoded as numbers: a []byte would expect base64 text.
		var levels []int
		if err := json.Unmarshal([]byte(qos.String), &levels); err != nil {
			return ACLRule{}, fmt.Errorf("rule %d: qos: %w", r.ID, err)
		}
		r.QoS = make([]byte, 0, len(levels))
		for _, q := range levels {
			if q < 0 || q > 2 {
				return ACLRule{}, fmt.Errorf("rule %d: qos %d out of range", r.ID, q)
			}
			r.QoS = append(r.QoS, byte(q))
		}
	}
	if retain.Valid {
		b := retain.Int64 != 0
		r.Retain = &b
	}
	r.CreatedAt = time.UnixMilli(created)
	return r, nil
}

// aclArgs returns the column values of r after id, in aclColumns order.
func aclArgs(r *ACLRule, now int64) ([]any, error) {
	topics := r.Topics
	if topics == nil {
		topics = []string{}
	}
	tj, err := json.Marshal(topics)
	if err != nil {
		return nil, err
	}
	var qos any // NULL
	if r.QoS != nil {
		levels := make([]int, len(r.QoS))
		for i, q := range r.QoS {
			levels[i] = int(q)
		}
		qj, err := json.Marshal(levels)
		if err != nil {
			return nil, err
		}
		qos = string(qj)
	}
	var retain any // NULL
	if r.Retain != nil {
		retain = int64(0)
		if *r.Retain {
			retain = int64(1)
		}
	}
	return []any{string(r.Scope), r.Subject, int64(r.Position), r.Permission, r.Action,
		string(tj), qos, retain, now}, nil
}

// ListFor returns the rules of one subject in order (none: an empty list, no error).
// For ScopeAll the subject is "".
func (r *ACLRules) ListFor(ctx context.Context, scope ACLScope, subject string) ([]ACLRule, error) {
	if err := validSubject(scope, subject); err != nil {
		return nil, fmt.Errorf("controldb: list acl rules: %w", err)
	}
	rows, err := r.db.sql.QueryContext(ctx, `SELECT `+aclColumns+` FROM acl_rules
		WHERE scope = ? AND subject = ? ORDER BY position`, string(scope), subject)
	if err != nil {
		return nil, fmt.Errorf("controldb: list acl rules of %s %q: %w", scope, subject, err)
	}
	rules, err := collectACLRules(rows)
	if err != nil {
		return nil, fmt.Errorf("controldb: list acl rules of %s %q: %w", scope, subject, err)
	}
	return rules, nil
}

func collectACLRules(rows *sql.Rows) ([]ACLRule, error) {
	defer rows.Close()
	var rules []ACLRule
	for rows.Next() {
		rule, err := scanACLRule(rows)
		if err != nil {
			return nil, err
		}
		rules = append(rules, rule)
	}
	return rules, rows.Err()
}

// forEachACLPage is how many rules ForEach reads per query; no read transaction stays
// open while fn runs.
const forEachACLPage = 1000

// ForEach calls fn for every stored rule, ordered by scope, subject and position (so the
// rules of one subject arrive together and in order), stopping at fn's first error, which
// it returns. Rules written while ForEach runs may or may not be seen.
func (r *ACLRules) ForEach(ctx context.Context, fn func(ACLRule) error) error {
	var (
		scope, subject string
		position       int64 = -1
	)
	for {
		rows, err := r.db.sql.QueryContext(ctx, `SELECT `+aclColumns+` FROM acl_rules
			WHERE (scope, subject, position) > (?, ?, ?)
			ORDER BY scope, subject, position LIMIT ?`, scope, subject, position, forEachACLPage)
		if err != nil {
			return fmt.Errorf("controldb: iterate acl rules: %w", err)
		}
		page, err := collectACLRules(rows)
		if err != nil {
			return fmt.Errorf("controldb: iterate acl rules: %w", err)
		}
		for _, rule := range page {
			if err := fn(rule); err != nil {
				return err
			}
		}
		if len(page) < forEachACLPage {
			return nil
		}
		last := page[len(page)-1]
		scope, subject, position = string(last.Scope), last.Subject, int64(last.Position)
	}
}

// Replace makes rules the whole ordered list of one subject, in one transaction: the
// subject's previous rules are gone and the new ones are numbered in slice order, or, on
// error, nothing changed. The ID, Scope, Subject, Position and CreatedAt fields of rules
// are ignored; Replace returns the stored rules with them set. An empty list deletes the
// subject's rules.
func (r *ACLRules) Replace(ctx context.Context, scope ACLScope, subject string, rules []ACLRule) ([]ACLRule, error) {
	lists := []ACLList{{Scope: scope, Subject: subject, Rules: rules}}
	if err := r.ReplaceMany(ctx, lists); err != nil {
		return nil, err
	}
	return lists[0].Rules, nil
}

// ACLList is the whole ordered rule list of one subject.
type ACLList struct {
	Scope   ACLScope
	Subject string
	Rules   []ACLRule
}

// ReplaceMany is Replace for several subjects in one transaction (an import): either
// every list is replaced or, on error, none. On success each list's Rules is replaced by
// a copy with ID, Scope, Subject, Position and CreatedAt set; the caller's rules are not
// modified. A subject named twice ends with its last list.
func (r *ACLRules) ReplaceMany(ctx context.Context, lists []ACLList) error {
	stored := make([][]ACLRule, len(lists))
	for l, list := range lists {
		scope, subject, rules := list.Scope, list.Subject, list.Rules
		if err := validSubject(scope, subject); err != nil {
			return fmt.Errorf("controldb: replace acl rules: %w", err)
		}
		if len(rules) > MaxACLRulesPerSubject {
			return fmt.Errorf("controldb: replace acl rules of %s %q: %d rules: at most %d", scope, subject, len(rules), MaxACLRulesPerSubject)
		}
		stored[l] = make([]ACLRule, len(rules))
		for i := range rules {
			if err := rules[i].validate(); err != nil {
				return fmt.Errorf("controldb: replace acl rules of %s %q: rule %d: %w", scope, subject, i, err)
			}
			c := rules[i]
			c.ID, c.Scope, c.Subject, c.Position, c.CreatedAt = 0, scope, subject, i, time.Time{}
			c.Topics, c.QoS = cloneSlice(c.Topics), cloneSlice(c.QoS)
			if c.Retain != nil {
				b := *c.Retain
				c.Retain = &b
			}
			stored[l][i] = c
		}
	}
	now := time.Now().UnixMilli()
	err := r.db.inTx(ctx, func(tx *sql.Tx) error {
		del, err := tx.PrepareContext(ctx, `DELETE FROM acl_rules WHERE scope = ? AND subject = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		ins, err := tx.PrepareContext(ctx, `INSERT INTO acl_rules (`+aclColumns+`)
			VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for l, list := range lists {
			if _, err := del.ExecContext(ctx, string(list.Scope), list.Subject); err != nil {
				return fmt.Errorf("%s %q: %w", list.Scope, list.Subject, err)
			}
			for i := range stored[l] {
				args, err := aclArgs(&stored[l][i], now)
				if err != nil {
					return fmt.Errorf("%s %q: rule %d: %w", list.Scope, list.Subject, i, err)
				}
				res, err := ins.ExecContext(ctx, args...)
				if err != nil {
					return fmt.Errorf("%s %q: rule %d: %w", list.Scope, list.Subject, i, err)
				}
				if stored[l][i].ID, err = res.LastInsertId(); err != nil {
					return fmt.Errorf("%s %q: rule %d: %w", list.Scope, list.Subject, i, err)
				}
				stored[l][i].CreatedAt = time.UnixMilli(now)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("controldb: replace acl rules: %w", err)
	}
	for l := range lists {
		lists[l].Rules = stored[l]
	}
	return nil
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// DeleteFor deletes every rule of one subject and returns how many there were.
func (r *ACLRules) DeleteFor(ctx context.Context, scope ACLScope, subject string) (int, error) {
	if err := validSubject(scope, subject); err != nil {
		return 0, fmt.Errorf("controldb: delete acl rules: %w", err)
	}
	res, err := r.db.sql.ExecContext(ctx, `DELETE FROM acl_rules WHERE scope = ? AND subject = ?`, string(scope), subject)
	if err != nil {
		return 0, fmt.Errorf("controldb: delete acl rules of %s %q: %w", scope, subject, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("controldb: delete acl rules of %s %q: %w", scope, subject, err)
	}
	return int(n), nil
}

// Delete deletes one rule by id and returns it (so the caller knows whose list changed),
// or returns an error wrapping ErrNotFound.
func (r *ACLRules) Delete(ctx context.Context, id int64) (ACLRule, error) {
	row := r.db.sql.QueryRowContext(ctx, `DELETE FROM acl_rules WHERE id = ? RETURNING `+aclColumns, id)
	rule, err := scanACLRule(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ACLRule{}, fmt.Errorf("controldb: acl rule %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return ACLRule{}, fmt.Errorf("controldb: delete acl rule %d: %w", id, err)
	}
	return rule, nil
}

// Get returns one rule by id, or an error wrapping ErrNotFound.
func (r *ACLRules) Get(ctx context.Context, id int64) (ACLRule, error) {
	row := r.db.sql.QueryRowContext(ctx, `SELECT `+aclColumns+` FROM acl_rules WHERE id = ?`, id)
	rule, err := scanACLRule(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ACLRule{}, fmt.Errorf("controldb: acl rule %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return ACLRule{}, fmt.Errorf("controldb: get acl rule %d: %w", id, err)
	}
	return rule, nil
}

// Count returns the number of stored rules of every scope and subject.
func (r *ACLRules) Count(ctx context.Context) (int, error) {
	var n int
	if err := r.db.sql.QueryRowContext(ctx, `SELECT count(*) FROM acl_rules`).Scan(&n); err != nil {
		return 0, fmt.Errorf("controldb: count acl rules: %w", err)
	}
	return n, nil
}
