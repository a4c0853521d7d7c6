package controldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// BanKind says which client field a ban is matched against, and how.
type BanKind string

// The kinds of ban (EMQX's "as" of a banned entry, with peerhost taking CIDR blocks too).
const (
	BanClientID   BanKind = "clientid"    // the client id, exactly
	BanUsername   BanKind = "username"    // the username, exactly
	BanPeerHost   BanKind = "peerhost"    // the peer address: one IP address or a CIDR block
	BanClientIDRe BanKind = "clientid_re" // the client id, by an RE2 pattern
	BanUsernameRe BanKind = "username_re" // the username, by an RE2 pattern
)

// Valid reports whether k is one of the kinds.
func (k BanKind) Valid() bool {
	switch k {
	case BanClientID, BanUsername, BanPeerHost, BanClientIDRe, BanUsernameRe:
		return true
	}
	return false
}

// IsPattern reports whether k's value is a regular expression.
func (k BanKind) IsPattern() bool { return k == BanClientIDRe || k == BanUsernameRe }

// Limits on what one ban may hold.
const (
	// MaxBanPatternLen bounds a pattern (clientid_re, username_re). RE2 matches in time
	// linear in the input, but its program, and so the cost of every match, grows with
	// the pattern.
	MaxBanPatternLen = 1024
	// MaxBanReasonLen and MaxBanByLen bound the free-text fields.
	MaxBanReasonLen = 1024
	MaxBanByLen     = 256
)

// Ban is one stored ban.
type Ban struct {
	// ID identifies the ban; set by the store. Replacing a ban (same kind and value)
	// keeps its ID.
	ID int64
	// Kind and Value say whom the ban refuses. A peerhost value is an IP address or a
	// CIDR block in canonical form (see CanonicalBan); a pattern is an unanchored RE2
	// expression (use ^ and $ to match a whole field).
	Kind  BanKind
	Value string
	// Reason and By are free text for operators: why, and who or what banned.
	Reason string
	By     string
	// CreatedAt is when the ban was made; the store sets it to the current time when it
	// is zero. Times are stored with millisecond precision.
	CreatedAt time.Time
	// Until is when the ban ends (it is in effect strictly before Until); zero means
	// never. The store rounds it up to the millisecond.
	Until time.Time
}

// ActiveAt reports whether the ban is in effect at t.
func (b Ban) ActiveAt(t time.Time) bool { return b.Until.IsZero() || t.Before(b.Until) }

// CanonicalBan checks b's kind and fields and returns b with its value in canonical form:
// a peerhost value is parsed by ParseBanPeer and written back by FormatBanPeer, a pattern
// must compile; other values are kept as given.
func CanonicalBan(b Ban) (Ban, error) {
	v, err := CanonicalBanValue(b.Kind, b.Value)
	if err != nil {
		return Ban{}, err
	}
	b.Value = v
	if len(b.Reason) > MaxBanReasonLen || !utf8.ValidString(b.Reason) {
		return Ban{}, fmt.Errorf("ban reason: want at most %d bytes of UTF-8", MaxBanReasonLen)
	}
	if len(b.By) > MaxBanByLen || !utf8.ValidString(b.By) {
		return Ban{}, fmt.Errorf("ban by: want at most %d bytes of UTF-8", MaxBanByLen)
	}
	return b, nil
}

// CanonicalBanValue checks a ban's kind and value and returns the value in canonical form
// (see CanonicalBan).
func CanonicalBanValue(kind BanKind, value string) (string, error) {
	if !kind.Valid() {
		return "", fmt.Errorf("ban kind %q: want clientid, username, peerhost, clientid_re or username_re", kind)
	}
	if value == "" || len(value) > maxUserIDLen || !utf8.ValidString(value) || strings.IndexByte(value, 0) >= 0 {
		return "", fmt.Errorf("%s ban value %.64q: want 1 to 65535 bytes of UTF-8 without NUL", kind, value)
	}
	switch {
	case kind == BanPeerHost:
		p, err := ParseBanPeer(value)
		if err != nil {
			return "", err
		}
		return FormatBanPeer(p), nil
	case kind.IsPattern():
		if len(value) > MaxBanPatternLen {
			return "", fmt.Errorf("%s ban pattern of %d bytes: at most %d", kind, len(value), MaxBanPatternLen)
		}
		if _, err := regexp.Compile(value); err != nil {
			return "", fmt.Errorf("%s ban pattern: %w", kind, err)
		}
	}
	return value, nil
}

// ParseBanPeer parses a peerhost ban value: an IP address ("192.0.2.7", "2001:db8::1") or
// a CIDR block ("192.0.2.0/24", "2001:db8::/32"). An address stands for its single-address
// block. IPv4-mapped IPv6 forms are turned into IPv4, since clients are matched by their
// unmapped address. A zone, or a block with bits set beyond its prefix length (likely a
// typing error that would ban far more than meant), is refused.
func ParseBanPeer(value string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(value, "/") {
		var err error
		if p, err = netip.ParsePrefix(value); err != nil {
			return netip.Prefix{}, fmt.Errorf("peerhost ban %.64q: %w", value, err)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("peerhost ban %q has bits set beyond /%d: did you mean %s?", value, p.Bits(), p.Masked())
		}
	} else {
		a, err := netip.ParseAddr(value)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("peerhost ban %.64q: %w", value, err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("peerhost ban %q: an address zone is not allowed", value)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	// A block shorter than /96 with no bits beyond its length is never IPv4-mapped.
	if a := p.Addr(); a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// FormatBanPeer writes a block in the canonical form of a peerhost ban value: a single
// address without its prefix length, any other block in CIDR notation.
func FormatBanPeer(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Bans is the repository of bans. It is safe for concurrent use.
type Bans struct {
	db *DB
}

// Bans returns the bans repository.
func (db *DB) Bans() *Bans { return &Bans{db: db} }

const banColumns = `id, kind, value, reason, created_by, created_at, until`

func scanBan(s scanner) (Ban, error) {
	var (
		b       Ban
		created int64
		until   sql.NullInt64
	)
	if err := s.Scan(&b.ID, &b.Kind, &b.Value, &b.Reason, &b.By, &created, &until); err != nil {
		return Ban{}, err
	}
	b.CreatedAt = time.UnixMilli(created)
	if until.Valid {
		b.Until = time.UnixMilli(until.Int64)
	}
	return b, nil
}

// ceilMilli rounds t up to the millisecond, so a stored ban lasts at least as long as asked.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// Put stores b, replacing the ban of the same kind and value if there is one (its ID
// stays; every other field takes b's). It returns the stored ban: value canonical, ID set,
// times at millisecond precision.
func (r *Bans) Put(ctx context.Context, b Ban) (Ban, error) {
	b, err := CanonicalBan(b)
	if err != nil {
		return Ban{}, fmt.Errorf("controldb: put ban: %w", err)
	}
	if b.CreatedAt.IsZero() {
		b.CreatedAt = time.Now()
	}
	b.CreatedAt = time.UnixMilli(b.CreatedAt.UnixMilli())
	var until any // NULL: forever
	if !b.Until.IsZero() {
		ms := ceilMilli(b.Until)
		until, b.Until = ms, time.UnixMilli(ms)
	}
	err = r.db.sql.QueryRowContext(ctx, `INSERT INTO bans (kind, value, reason, created_by, created_at, until)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason, created_by = excluded.created_by,
			created_at = excluded.created_at, until = excluded.until
		RETURNING id`,
		string(b.Kind), b.Value, b.Reason, b.By, b.CreatedAt.UnixMilli(), until).Scan(&b.ID)
	if err != nil {
		return Ban{}, fmt.Errorf("controldb: put %s ban %.64q: %w", b.Kind, b.Value, err)
	}
	return b, nil
}

// Get returns the ban of kind and value (a peerhost value in any form ParseBanPeer
// takes), or an error wrapping ErrNotFound. An expired ban not deleted yet is returned.
func (r *Bans) Get(ctx context.Context, kind BanKind, value string) (Ban, error) {
	v, err := CanonicalBanValue(kind, value)
	if err != nil {
		return Ban{}, fmt.Errorf("controldb: get ban: %w", err)
	}
	row := r.db.sql.QueryRowContext(ctx, `SELECT `+banColumns+` FROM bans WHERE kind = ? AND value = ?`, string(kind), v)
	b, err := scanBan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Ban{}, fmt.Errorf("controldb: %s ban %.64q: %w", kind, v, ErrNotFound)
	}
	if err != nil {
		return Ban{}, fmt.Errorf("controldb: get %s ban %.64q: %w", kind, v, err)
	}
	return b, nil
}

// Delete deletes the ban of kind and value (a peerhost value in any form ParseBanPeer
// takes) and returns it, or returns an error wrapping ErrNotFound.
func (r *Bans) Delete(ctx context.Context, kind BanKind, value string) (Ban, error) {
	v, err := CanonicalBanValue(kind, value)
	if err != nil {
		return Ban{}, fmt.Errorf("controldb: delete ban: %w", err)
	}
	row := r.db.sql.QueryRowContext(ctx, `DELETE FROM bans WHERE kind = ? AND value = ? RETURNING `+banColumns, string(kind), v)
	b, err := scanBan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Ban{}, fmt.Errorf("controldb: %s ban %.64q: %w", kind, v, ErrNotFound)
	}
	if err != nil {
		return Ban{}, fmt.Errorf("controldb: delete %s ban %.64q: %w", kind, v, err)
	}
	return b, nil
}

// DeleteExpired deletes the bans that have ended at now and returns how many it deleted.
func (r *Bans) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	res, err := r.db.sql.ExecContext(ctx, `DELETE FROM bans WHERE until IS NOT NULL AND until <= ?`, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("controldb: delete expired bans: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("controldb: delete expired bans: %w", err)
	}
	return int(n), nil
}

// List returns up to limit bans whose ID is greater than the cursor after (0 for the first
// page), in ID order, and the cursor of the next page (0 after the last). kind "" lists
// every kind. limit <= 0 means DefaultPageSize; more than MaxPageSize is capped. Expired
// bans not deleted yet are listed.
func (r *Bans) List(ctx context.Context, kind BanKind, after int64, limit int) (bans []Ban, next int64, err error) {
	if kind != "" && !kind.Valid() {
		return nil, 0, fmt.Errorf("controldb: list bans: kind %q: want clientid, username, peerhost, clientid_re or username_re", kind)
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	bans, err = r.page(ctx, kind, after, limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("controldb: list bans: %w", err)
	}
	if len(bans) > limit {
		bans = bans[:limit]
		next = bans[limit-1].ID
	}
	return bans, next, nil
}

func (r *Bans) page(ctx context.Context, kind BanKind, after int64, limit int) ([]Ban, error) {
	rows, err := r.db.sql.QueryContext(ctx, `SELECT `+banColumns+` FROM bans
		WHERE (? = '' OR kind = ?) AND id > ? ORDER BY id LIMIT ?`, string(kind), string(kind), after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var bans []Ban
	for rows.Next() {
		b, err := scanBan(rows)
		if err != nil {
			return nil, err
		}
		bans = append(bans, b)
	}
	return bans, rows.Err()
}

// forEachBanPage is how many bans ForEach reads per query; no read transaction stays open
// while fn runs.
const forEachBanPage = 1000

// ForEach calls fn for every stored ban, expired or not, in ID order, stopping at fn's
// first error, which it returns. Bans written while ForEach runs may or may not be seen.
func (r *Bans) ForEach(ctx context.Context, fn func(Ban) error) error {
	var after int64
	for {
		page, err := r.page(ctx, "", after, forEachBanPage)
		if err != nil {
			return fmt.Errorf("controldb: iterate bans: %w", err)
		}
		for _, b := range page {
			if err := fn(b); err != nil {
				return err
			}
		}
		if len(page) < forEachBanPage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// Count returns the number of stored bans, expired ones not deleted yet included.
func (r *Bans) Count(ctx context.Context) (int, error) {
	var n int
	if err := r.db.sql.QueryRowContext(ctx, `SELECT count(*) FROM bans`).Scan(&n); err != nil {
		return 0, fmt.Errorf("controldb: count bans: %w", err)
	}
	return n, nil
}
