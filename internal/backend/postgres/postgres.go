// Package postgres is Rampart's connector to PostgreSQL, shared by the postgresql
// authenticator and authorization source: a bounded pool of connections (pgx), TLS from
// tlsconf with the server verified, every query under a deadline, a short wait for a free
// connection so an overloaded or slow server refuses new questions quickly (an error
// wrapping health.ErrBusy), a health state that refuses questions at once while a server
// that could not be reached is left alone for a back-off period (health.ErrBackoff), and
// configured statements whose ${...} placeholders are sent as bound arguments.
//
// One Pool may run several configured statements at once (Pool.Bind), an authenticator's
// and an authorization source's, which then share its connections, its pool size and its
// health state; Open gives a statement a pool of its own.
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

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
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
	health         *health.State
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
	target := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database
	return &Pool{
		pool:           pool,
		queryTimeout:   cfg.QueryTimeout,
		acquireTimeout: cfg.AcquireTimeout,
		poolSize:       cfg.PoolSize,
		target:         target,
		health:         health.New("postgresql "+target, 0, 0),
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
		pw, err := poolcfg.ReadSecret(c.Password)
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
	} else if !strings.HasPrefix(cc.Host, "/") { // a Unix socket directory never leaves the machine
		if err := poolcfg.CheckPlainText(cc.Host, c.AllowPlainText, "the password and every query", "ssl"); err != nil {
			return nil, err
		}
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

// Close closes every connection; queries in flight finish first.
func (p *Pool) Close() { p.pool.Close() }

// Ping checks that a connection can be had and the server answers, within the query
// timeout.
func (p *Pool) Ping(ctx context.Context) error {
	if err := p.allow(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, p.queryTimeout, errQueryTimeout)
	defer cancel()
	conn, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.Ping(ctx); err != nil {
		return p.describe(ctx, err)
	}
	p.health.Success()
	return nil
}

// Query runs q with its placeholders bound to vals and reads at most maxRows rows
// (maxRows < 1 reads one). The whole call, waiting for a connection included, is bounded
// by the query timeout and ctx; the wait for a connection by the acquire timeout.
//
// While the back-off after a failure to reach the server runs, Query is refused at once
// with an error wrapping health.ErrBackoff, without a connection attempt. When every
// pooled connection stays in use for the whole acquire timeout, the error wraps
// health.ErrBusy.
func (p *Pool) Query(ctx context.Context, q *Query, vals placeholder.Values, maxRows int) (*sqlrows.Rows, error) {
	if maxRows < 1 {
		maxRows = 1
	}
	if err := p.allow(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, p.queryTimeout, errQueryTimeout)
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
	out := &sqlrows.Rows{}
	for _, fd := range rows.FieldDescriptions() {
		out.Columns = append(out.Columns, fd.Name)
	}
	for rows.Next() {
		if len(out.Values) == maxRows {
			out.More = true
			break // rows.Close reads and drops the rest, under the query deadline
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
	p.health.Success()
	return out, nil
}

// acquire takes a pooled connection, waiting at most the acquire timeout. When every
// connection stayed in use for the whole wait, the error wraps health.ErrBusy; an error
// goes to the health state (see describe).
func (p *Pool) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if err := ctx.Err(); err != nil {
		p.health.Abandon()
		return nil, fmt.Errorf("postgresql %s: no time left: %w", p.target, err)
	}
	// The short acquire wait applies when every connection is in use; a new connection
	// gets the whole query deadline (its dial is bounded by connect_timeout).
	actx := ctx
	if st := p.pool.Stat(); st.AcquiredConns() >= st.MaxConns() {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, p.acquireTimeout)
		defer cancel()
	}
	conn, err := p.pool.Acquire(actx)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			if st := p.pool.Stat(); st.AcquiredConns() >= st.MaxConns() {
				p.health.Abandon()
				return nil, fmt.Errorf("postgresql %s: no connection within %v, all %d in use: %w: %w",
					p.target, p.acquireTimeout, p.poolSize, health.ErrBusy, err)
			}
			// Not all in use: the wait was for a new connection (or a check of an idle
			// one) that the server did not complete in time.
			err = fmt.Errorf("postgresql %s: no connection within %v, the server is slow to accept: %w",
				p.target, p.acquireTimeout, err)
			p.health.Failure(err)
			return nil, err
		}
		return nil, p.describe(ctx, err)
	}
	return conn, nil
}

// describe records the outcome of a failed question in the health state and wraps its
// error with the target and, for the query timeout, the timeout.
func (p *Pool) describe(ctx context.Context, err error) error {
	p.record(ctx, err)
	if errors.Is(context.Cause(ctx), errQueryTimeout) {
		return fmt.Errorf("postgresql %s: no answer within %v: %w", p.target, p.queryTimeout, err)
	}
	return fmt.Errorf("postgresql %s: %w", p.target, err)
}

// OnHealthChange registers fn to be called when the server goes down or comes back
// (see health.State.OnChange).
func (p *Pool) OnHealthChange(fn func(health.Snapshot)) { p.health.OnChange(fn) }
