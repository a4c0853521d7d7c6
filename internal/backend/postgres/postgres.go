// Package postgres is Rampart's connector to PostgreSQL, shared by the postgresql
// authenticator and authorization source: a bounded pool of connections (pgx), TLS from
// tlsconf with the server verified, every query under a deadline, a short wait for a free
// connection so an overloaded or slow server refuses new questions quickly, and
// configured statements whose ${...} placeholders are sent as bound arguments.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Pool is a bounded pool of connections to one server. It is safe for concurrent use.
type Pool struct {
	pool           *pgxpool.Pool
	queryTimeout   time.Duration
	acquireTimeout time.Duration
	poolSize       int
	target         string
}

// New validates cfg and builds the pool. It does not connect: connections are made when
// a query needs one (Ping checks the server). Close releases them.
func New(_ context.Context, cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("postgresql: %w", err)
	}
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, fmt.Errorf("postgresql: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgresql: %w", err)
	}
	cc := pc.ConnConfig
	return &Pool{
		pool:           pool,
		queryTimeout:   cfg.QueryTimeout,
		acquireTimeout: cfg.AcquireTimeout,
		poolSize:       cfg.PoolSize,
		target:         net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database,
	}, nil
}

// poolConfig turns a validated Config into pgxpool's configuration.
func (c Config) poolConfig() (*pgxpool.Config, error) {
	dsn := ""
	if c.DSN != "" {
		if err := checkDSN(c.DSN); err != nil {
			return nil, err
		}
		dsn = c.DSN
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the connection string; say only where it failed.
		return nil, errors.New("dsn: not a valid connection string or URL")
	}
	cc := pc.ConnConfig
	if c.DSN == "" {
		host, port, err := c.hostPort()
		if err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("server: port %q: want 1 to 65535", port)
		}
		pw, err := resolveSecret(c.Password)
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		cc.Host, cc.Port, cc.Database, cc.User, cc.Password = host, uint16(p), c.Database, c.Username, pw
	}
	// TLS comes from the ssl key only; sslmode=prefer's unverified attempt and its
	// plain-text fallback are never used.
	cc.Fallbacks = nil
	cc.TLSConfig = nil
	if c.TLS != nil {
		tc, err := tlsconf.NewClient(*c.TLS)
		if err != nil {
			return nil, fmt.Errorf("ssl: %w", err)
		}
		if tc.ServerName == "" && !tc.InsecureSkipVerify {
			tc.ServerName = cc.Host
		}
		cc.TLSConfig = tc
	} else if !c.AllowPlainText && !isLoopback(cc.Host) {
		return nil, fmt.Errorf("ssl: a connection to %s without TLS sends the password and every query in clear text; configure ssl or set allow_plaintext", cc.Host)
	}
	cc.ConnectTimeout = c.ConnectTimeout
	pc.MaxConns = int32(c.PoolSize)
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.MaxConnLifetime = time.Hour
	pc.HealthCheckPeriod = time.Minute
	return pc, nil
}

var (
	kwPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=`)
	kwSSL      = regexp.MustCompile(`(?i)(^|\s)ssl(mode|cert|key|rootcert|password)\s*=\s*'?([^'\s]*)`)
)

// checkDSN refuses a password written into the DSN and TLS settings there (the ssl key
// configures TLS); sslmode=disable is accepted, it says what happens anyway without ssl.
func checkDSN(dsn string) error {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return errors.New("dsn: not a valid URL")
		}
		if _, set := u.User.Password(); set {
			return errors.New("dsn: a password in the DSN is refused; use the password key with file:/path or env:NAME")
		}
		for k, v := range u.Query() {
			lk := strings.ToLower(k)
			if lk == "password" {
				return errors.New("dsn: a password in the DSN is refused; use the password key with file:/path or env:NAME")
			}
			if strings.HasPrefix(lk, "ssl") && !(lk == "sslmode" && len(v) == 1 && v[0] == "disable") {
				return fmt.Errorf("dsn: %s: configure TLS with the ssl key", k)
			}
		}
		return nil
	}
	if kwPassword.MatchString(dsn) {
		return errors.New("dsn: a password in the DSN is refused; use the password key with file:/path or env:NAME")
	}
	for _, m := range kwSSL.FindAllStringSubmatch(dsn, -1) {
		if !(strings.EqualFold(m[2], "mode") && m[3] == "disable") {
			return fmt.Errorf("dsn: ssl%s: configure TLS with the ssl key", m[2])
		}
	}
	return nil
}

// Target names the server and database for logs: host:port/database, no credentials.
func (p *Pool) Target() string { return p.target }

// QueryTimeout is the bound on one query.
func (p *Pool) QueryTimeout() time.Duration { return p.queryTimeout }

// Close closes every connection; queries in flight finish first.
func (p *Pool) Close() { p.pool.Close() }

// Ping checks that a connection can be had and the server answers, within the query
// timeout.
func (p *Pool) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.queryTimeout)
	defer cancel()
	conn, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.Ping(ctx); err != nil {
		return p.describe(ctx, err)
	}
	return nil
}

// Rows is the answer to one query: its column names as the server sent them and at most
// the asked number of rows, each value decoded by pgx (string, bool, int16/32/64,
// []byte, nil for NULL, ...).
type Rows struct {
	Columns []string
	Values  [][]any
	// More is true when the server had more rows than were read.
	More bool
}

// Column returns the index of the column named name (case-insensitively), or -1.
func (r *Rows) Column(name string) int {
	for i, c := range r.Columns {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

// Query runs q with its placeholders bound to vals and reads at most maxRows rows
// (maxRows < 1 reads one). The whole call, waiting for a connection included, is bounded
// by the query timeout and ctx; the wait for a connection by the acquire timeout.
func (p *Pool) Query(ctx context.Context, q *Query, vals placeholder.Values, maxRows int) (*Rows, error) {
	if maxRows < 1 {
		maxRows = 1
	}
	ctx, cancel := context.WithTimeout(ctx, p.queryTimeout)
	defer cancel()
	conn, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, q.SQL(), q.Args(vals)...)
	if err != nil {
		return nil, p.describe(ctx, err)
	}
	defer rows.Close()
	out := &Rows{}
	for _, fd := range rows.FieldDescriptions() {
		out.Columns = append(out.Columns, fd.Name)
	}
	for rows.Next() {
		if len(out.Values) == maxRows {
			out.More = true
			cancel() // the rest is not wanted; stop reading it
			break
		}
		v, err := rows.Values()
		if err != nil {
			return nil, p.describe(ctx, err)
		}
		out.Values = append(out.Values, v)
	}
	if err := rows.Err(); err != nil && !out.More {
		return nil, p.describe(ctx, err)
	}
	return out, nil
}

// acquire takes a pooled connection, waiting at most the acquire timeout.
func (p *Pool) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgresql %s: no time left: %w", p.target, err)
	}
	actx, cancel := context.WithTimeout(ctx, p.acquireTimeout)
	defer cancel()
	conn, err := p.pool.Acquire(actx)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("postgresql %s: no connection within %v (all %d busy or the server is slow to accept): %w",
				p.target, p.acquireTimeout, p.poolSize, err)
		}
		return nil, p.describe(ctx, err)
	}
	return conn, nil
}

// describe wraps a query error with the target and, for a deadline, the timeout.
func (p *Pool) describe(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("postgresql %s: no answer within %v: %w", p.target, p.queryTimeout, err)
	}
	return fmt.Errorf("postgresql %s: %w", p.target, err)
}

// Text returns a column value as text: strings and []byte as they are, integers and
// booleans in decimal and "true"/"false". ok is false for NULL and other types.
func Text(v any) (s string, ok bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	}
	return "", false
}
