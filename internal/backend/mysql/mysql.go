// Package mysql is Rampart's connector to MySQL and MariaDB, shared by the mysql
// authenticator and authorization source: a bounded pool of connections (database/sql
// with github.com/go-sql-driver/mysql), TLS from tlsconf with the server verified, every
// question under a deadline, a short wait for a free connection so a saturated server
// refuses new questions quickly (health.ErrBusy), a back-off after the server could not be
// reached (health.State) so a server that is down sees one probe at a time and clients are
// refused at once, and configured statements whose ${...} placeholders are sent as
// arguments of server-side prepared statements, never as SQL text.
//
// One Pool may run several configured statements at once (Pool.Bind), an authenticator's
// and an authorization source's, which then share its connections, its pool size and its
// health state; Open gives a statement a pool of its own.
//
// The driver is set up for safety, whatever its defaults: parameters are never
// interpolated client-side, one statement per query, no LOAD DATA LOCAL INFILE, no
// cleartext or pre-4.1 password methods, no plain-text fallback when TLS is configured,
// and the utf8mb4 character set.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Connection lifetimes in the pool.
const (
	maxIdleTime = 5 * time.Minute
	maxLifetime = time.Hour
)

// Pool is a bounded pool of connections to one server. It is safe for concurrent use.
type Pool struct {
	db             *sql.DB
	slots          chan struct{} // one per connection: a question holds one from start to end
	health         *health.State
	queryTimeout   time.Duration
	acquireTimeout time.Duration
	poolSize       int
	target         string
}

// New validates cfg and builds the pool. It does not connect: connections are made when
// a question needs one (Ping checks the server). Close releases them.
func New(_ context.Context, cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	dc, err := cfg.driverConfig()
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	connector, err := driver.NewConnector(dc)
	if err != nil {
		// The driver's message never holds the password; it is about the settings above.
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.PoolSize)
	db.SetMaxIdleConns(cfg.PoolSize)
	db.SetConnMaxIdleTime(maxIdleTime)
	db.SetConnMaxLifetime(maxLifetime)
	target := dc.Addr + "/" + cfg.Database
	if dc.Net == "unix" {
		target = "unix:" + target
	}
	return &Pool{
		db:             db,
		slots:          make(chan struct{}, cfg.PoolSize),
		health:         health.New("mysql "+target, 0, 0),
		queryTimeout:   cfg.QueryTimeout,
		acquireTimeout: cfg.AcquireTimeout,
		poolSize:       cfg.PoolSize,
		target:         target,
	}, nil
}

// driverConfig turns a validated Config into the driver's, every safety-relevant setting
// spelled out.
func (c Config) driverConfig() (*driver.Config, error) {
	network, addr, host, err := c.address()
	if err != nil {
		return nil, err
	}
	pw, err := poolcfg.ReadSecret(c.Password)
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	dc := driver.NewConfig()
	dc.Net, dc.Addr, dc.DBName, dc.User, dc.Passwd = network, addr, c.Database, c.Username, pw
	switch {
	case c.TLS != nil && network == "unix":
		return nil, errors.New("ssl: a Unix socket does not leave the machine; TLS is not used there (remove ssl or connect over TCP)")
	case c.TLS != nil:
		tc, err := tlsconf.NewClient(*c.TLS)
		if err != nil {
			return nil, fmt.Errorf("ssl: %w", err)
		}
		if tc.ServerName == "" && !tc.InsecureSkipVerify {
			tc.ServerName = host
		}
		dc.TLS = tc
	case network == "tcp": // a Unix socket never leaves the machine
		if err := poolcfg.CheckPlainText(host, c.AllowPlainText, "the login and every query", "ssl"); err != nil {
			return nil, err
		}
	}
	dc.AllowFallbackToPlaintext = false
	dc.InterpolateParams = false // bound parameters: server-side prepared statements
	dc.MultiStatements = false
	dc.AllowAllFiles = false // with no file registered, LOAD DATA LOCAL INFILE is refused
	dc.AllowCleartextPasswords = false
	dc.AllowOldPasswords = false
	dc.AllowNativePasswords = true
	dc.ParseTime = false
	dc.CheckConnLiveness = true
	dc.ClientFoundRows = false
	dc.ColumnsWithAlias = false
	dc.RejectReadOnly = false
	dc.Collation = "utf8mb4_general_ci" // utf8mb4, announced in the handshake
	dc.Timeout = c.ConnectTimeout
	// A question's deadline is the query timeout, through its context. The socket
	// deadlines are a backstop behind it, later so that the context decides first.
	dc.ReadTimeout = c.QueryTimeout + c.ConnectTimeout
	dc.WriteTimeout = c.QueryTimeout + c.ConnectTimeout
	dc.Logger = &driver.NopLogger{} // errors come back to the caller; the default logs to stderr
	dc.Params = nil
	return dc, nil
}

// Target names the server and database for logs: host:port/database (or
// unix:/path/database), no credentials.
func (p *Pool) Target() string { return p.target }

// Health returns the connector's health: whether the server was reachable at the last
// question, and since when.
func (p *Pool) Health() health.Snapshot { return p.health.Snapshot() }

// Close closes the connections; questions in flight fail.
func (p *Pool) Close() { _ = p.db.Close() }

// Ping checks that a connection can be had and the server answers, within the query
// timeout.
func (p *Pool) Ping(ctx context.Context) error {
	return p.do(ctx, func(qctx context.Context, conn *sql.Conn) error {
		return conn.PingContext(qctx)
	})
}

// Query runs q with its placeholders bound to vals and reads at most maxRows rows
// (maxRows < 1 reads one); More says whether there were more. The whole call, waiting for
// a connection included, is bounded by the query timeout and ctx; the wait for a free
// connection by the acquire timeout (then the error wraps health.ErrBusy). During the
// back-off after the server could not be reached, the error wraps health.ErrBackoff and
// nothing is sent.
//
// Values come as the driver decodes them: []byte for text and decimals, int64 or uint64
// for integers, float32/float64, nil for NULL.
func (p *Pool) Query(ctx context.Context, q *Query, vals placeholder.Values, maxRows int) (*sqlrows.Rows, error) {
	if maxRows < 1 {
		maxRows = 1
	}
	var out *sqlrows.Rows
	err := p.do(ctx, func(qctx context.Context, conn *sql.Conn) error {
		rows, err := conn.QueryContext(qctx, q.SQL(), q.Args(vals)...)
		if err != nil {
			return err
		}
		defer rows.Close() // reads and discards what was not wanted, under qctx
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		res := &sqlrows.Rows{Columns: cols}
		for rows.Next() {
			if len(res.Values) == maxRows {
				res.More = true
				break
			}
			row := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range row {
				ptrs[i] = &row[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			res.Values = append(res.Values, row)
		}
		if !res.More {
			if err := rows.Err(); err != nil {
				return err
			}
		}
		out = res
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// do runs one question: the health check, a slot (so at most PoolSize questions are in
// flight and the others are refused after the acquire timeout), a connection (made if
// none is idle), then fn under the query timeout. It records the outcome in the health
// state and returns fn's error described.
func (p *Pool) do(ctx context.Context, fn func(qctx context.Context, conn *sql.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysql %s: no time left: %w", p.target, err)
	}
	if err := p.health.Allow(); err != nil {
		return err // names the target and the last failure
	}
	qctx, cancel := context.WithTimeout(ctx, p.queryTimeout)
	defer cancel()
	if err := p.acquire(ctx, qctx); err != nil {
		p.health.Abandon()
		return err
	}
	defer func() { <-p.slots }()
	conn, err := p.db.Conn(qctx)
	if err != nil {
		// Whatever went wrong while connecting (refused, timed out, TLS, login), the
		// server cannot be used now: back off, unless the caller gave up first.
		return p.failed(ctx, qctx, "connecting", err)
	}
	defer conn.Close()
	err = fn(qctx, conn)
	var serverErr *driver.MySQLError
	switch {
	case err == nil:
		p.health.Success()
		return nil
	case errors.As(err, &serverErr):
		p.health.Success() // the server is up: it answered, with an error
		return fmt.Errorf("mysql %s: %w", p.target, err)
	}
	return p.failed(ctx, qctx, "", err)
}

// failed records an error that says the server could not be reached or did not answer
// in time (a Failure), or nothing when the caller's ctx ended first (Abandon), and
// describes it.
func (p *Pool) failed(ctx, qctx context.Context, doing string, err error) error {
	prefix := "mysql " + p.target + ": "
	if doing != "" {
		prefix += doing + ": "
	}
	switch {
	case ctx.Err() != nil:
		p.health.Abandon()
		return fmt.Errorf("%sgave up: %w", prefix, err)
	case errors.Is(qctx.Err(), context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%sno answer within %v: %w", prefix, p.queryTimeout, err)
	default:
		err = fmt.Errorf("%s%w", prefix, err)
	}
	p.health.Failure(err)
	return err
}

// acquire takes a slot, waiting at most the acquire timeout; its error wraps
// health.ErrBusy when the wait ran out.
func (p *Pool) acquire(ctx, qctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(p.acquireTimeout)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-timer.C:
	case <-qctx.Done():
		if ctx.Err() != nil {
			return fmt.Errorf("mysql %s: gave up waiting for a connection: %w", p.target, ctx.Err())
		}
	}
	return fmt.Errorf("mysql %s: no connection within %v (all %d busy): %w", p.target, p.acquireTimeout, p.poolSize, health.ErrBusy)
}

// OnHealthChange registers fn to be called when the server goes down or comes back
// (see health.State.OnChange).
func (p *Pool) OnHealthChange(fn func(health.Snapshot)) { p.health.OnChange(fn) }
