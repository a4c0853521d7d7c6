// Package redis is Rampart's shared connector to Redis, used by the Redis authenticator
// and authorization source: a bounded connection pool, every command under a deadline,
// optional TLS (required for a server that is not on loopback unless plain text is
// explicitly allowed), credentials read from file: or env: references, and a health state
// that refuses questions at once while a server that could not be reached is left alone
// for a back-off period (see package health).
//
// Three deployments are supported (Config.Mode): a single server; a master found through
// Redis Sentinel, followed when the sentinels fail over to another one; and Redis Cluster,
// each command routed to the node that holds its key.
//
// Commands are sent as separate arguments (RESP arrays), so a value taken from a client
// can never be parsed as more than the one argument it was put in.
//
// One Client may serve an authenticator and an authorization source at once
// (redisauth.NewWith, redissrc.NewWith): they share its connections, its pool size and its
// health state, and whoever made the client closes it.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Defaults.
const (
	DefaultPoolSize       = 16
	DefaultDialTimeout    = 5 * time.Second
	DefaultCommandTimeout = 5 * time.Second
	// maxPoolWait bounds the wait for a free pooled connection: when every connection is
	// busy with a slow server, new questions are refused quickly instead of queueing.
	maxPoolWait = time.Second
	// maxRedirects bounds the MOVED/ASK redirections one cluster command follows.
	maxRedirects = 3
)

// Client is a pooled connection to Redis: one server, a Sentinel-managed master, or a
// cluster. It is safe for concurrent use.
type Client struct {
	rdb      redisDoer
	timeout  time.Duration
	poolWait time.Duration
	poolSize int
	addr     string
	insecure bool
	health   *health.State
}

// redisDoer is what Client needs of go-redis's clients (*goredis.Client for a single
// server or a Sentinel-managed master, *goredis.ClusterClient for a cluster).
type redisDoer interface {
	Do(ctx context.Context, args ...any) *goredis.Cmd
	Close() error
}

// New validates cfg and returns a client. It does not connect: connections are opened on
// demand, so a server that is down at start-up is reported by the first command. Errors
// name the configuration key at fault and never contain a credential.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	pw, err := poolcfg.ReadSecret(cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("redis: password: %w", err)
	}
	spw, err := poolcfg.ReadSecret(cfg.SentinelPassword)
	if err != nil {
		return nil, fmt.Errorf("redis: sentinel_password: %w", err)
	}
	var tc *tls.Config
	if cfg.TLS != nil {
		// The server name verified is, unless configured, the host of each address
		// dialled (go-redis's dialer sets it per connection), so one configuration serves
		// every sentinel or cluster node.
		if tc, err = tlsconf.NewClient(*cfg.TLS); err != nil {
			return nil, fmt.Errorf("redis: ssl: %w", err)
		}
	}
	insecure := false
	if tc == nil {
		for _, a := range cfg.addrs() {
			host, _, _ := net.SplitHostPort(a)
			if httpc.IsLoopbackHost(host) {
				continue
			}
			if !cfg.AllowPlainText {
				return nil, fmt.Errorf("redis: ssl: a connection to %s without TLS sends the password and every command in clear text; configure ssl or set allow_plaintext", host)
			}
			insecure = true
		}
	}
	// Sentinels report the master's address and cluster nodes each other's: without TLS,
	// those learned addresses must be on loopback too, unless plain text is allowed.
	var dial func(ctx context.Context, network, addr string) (net.Conn, error)
	if tc == nil && !cfg.AllowPlainText {
		dial = loopbackDialer(cfg.DialTimeout)
	}
	// The wait for a pooled connection may happen twice (go-redis retries a pool
	// timeout once), and the command needs time after it.
	wait := min(cfg.CommandTimeout/3, maxPoolWait)
	c := &Client{
		timeout:  cfg.CommandTimeout,
		poolWait: wait,
		poolSize: cfg.PoolSize,
		insecure: insecure,
	}
	switch cfg.Mode {
	case ModeSentinel:
		c.addr = "sentinel:" + cfg.MasterName + "@" + strings.Join(cfg.Addrs, ",")
		c.rdb = goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            cfg.MasterName,
			Dialer:                dial,
			SentinelAddrs:         cfg.Addrs,
			SentinelUsername:      cfg.SentinelUsername,
			SentinelPassword:      spw,
			Username:              cfg.Username,
			Password:              pw,
			DB:                    cfg.DB,
			Protocol:              2,
			PoolSize:              cfg.PoolSize,
			MaxActiveConns:        cfg.PoolSize,
			PoolTimeout:           wait,
			DialTimeout:           cfg.DialTimeout,
			DialerRetries:         1,
			ReadTimeout:           cfg.CommandTimeout,
			WriteTimeout:          cfg.CommandTimeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            1,
			ConnMaxIdleTime:       5 * time.Minute,
			TLSConfig:             tc,
			DisableIdentity:       true,
		})
	case ModeCluster:
		c.addr = "cluster:" + strings.Join(cfg.Addrs, ",")
		c.rdb = goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:                 cfg.Addrs,
			Dialer:                dial,
			Username:              cfg.Username,
			Password:              pw,
			Protocol:              2,
			MaxRedirects:          maxRedirects,
			PoolSize:              cfg.PoolSize, // per node
			MaxActiveConns:        cfg.PoolSize,
			PoolTimeout:           wait,
			DialTimeout:           cfg.DialTimeout,
			DialerRetries:         1,
			ReadTimeout:           cfg.CommandTimeout,
			WriteTimeout:          cfg.CommandTimeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            1,
			ConnMaxIdleTime:       5 * time.Minute,
			TLSConfig:             tc,
			DisableIdentity:       true,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		})
	default:
		c.addr = cfg.Addr
		c.rdb = goredis.NewClient(&goredis.Options{
			Addr:                  cfg.Addr,
			Username:              cfg.Username,
			Password:              pw,
			DB:                    cfg.DB,
			Protocol:              2, // RESP2: replies have one shape whatever the server version
			PoolSize:              cfg.PoolSize,
			MaxActiveConns:        cfg.PoolSize,
			PoolTimeout:           wait,
			DialTimeout:           cfg.DialTimeout,
			DialerRetries:         1, // a refused connection fails the command now, not after 5 tries
			ReadTimeout:           cfg.CommandTimeout,
			WriteTimeout:          cfg.CommandTimeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            1, // one retry on a connection broken by a server restart
			ConnMaxIdleTime:       5 * time.Minute,
			TLSConfig:             tc,
			DisableIdentity:       true, // no CLIENT SETINFO: works with servers and ACLs that refuse it
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		})
	}
	c.health = health.New("redis "+c.addr, 0, 0)
	return c, nil
}

// Addr names the configured server for logs: host:port for a single server,
// "sentinel:<master>@<sentinels>" and "cluster:<seed nodes>" otherwise.
func (c *Client) Addr() string { return c.addr }

// Insecure reports whether the client talks plain text to a server that is not on
// loopback (allowed by AllowPlainText); callers log a warning and `rampart doctor` flags it.
func (c *Client) Insecure() bool { return c.insecure }

// Health returns the connector's health: whether the server answered the last question,
// and the last failure to reach it.
func (c *Client) Health() health.Snapshot { return c.health.Snapshot() }

// Do sends one command, each argument as its own RESP bulk string, under the command
// timeout (or ctx's deadline, if sooner). A nil reply is (nil, nil); an error reply from the
// server and a connection failure are errors.
//
// While the back-off after a failure to reach the server runs, Do is refused at once with
// an error wrapping health.ErrBackoff, without a connection attempt. When every pooled
// connection stays busy for the whole wait for one, the error wraps health.ErrBusy.
func (c *Client) Do(ctx context.Context, args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("redis: empty command")
	}
	name := strings.ToUpper(args[0])
	if err := c.health.Allow(); err != nil {
		return nil, fmt.Errorf("redis %s: %w", name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	v, err := c.do(ctx, cctx, a)
	var reply goredis.Error
	switch {
	case err == nil:
		c.health.Success()
		return v, nil
	case err == goredis.Nil: // the reply itself only: go-redis also wraps Nil into dial errors
		c.health.Success()
		return nil, nil
	case errors.As(err, &reply):
		// The server answered, with an error.
		c.health.Success()
		return nil, fmt.Errorf("redis %s on %s: %w", name, c.addr, err)
	case ctx.Err() != nil:
		// The caller gave up first: nothing learnt about the server.
		c.health.Abandon()
		return nil, fmt.Errorf("redis %s on %s: %w", name, c.addr, err)
	case errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrPoolExhausted):
		c.health.Abandon()
		return nil, fmt.Errorf("redis %s on %s: %w: all %d pooled connections stayed busy for %v: %w",
			name, c.addr, health.ErrBusy, c.poolSize, c.poolWait, err)
	case errors.Is(err, goredis.ErrClosed):
		c.health.Abandon()
		return nil, fmt.Errorf("redis %s on %s: %w", name, c.addr, err)
	}
	c.health.Failure(err)
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil, fmt.Errorf("redis %s on %s: no answer within %v: %w", name, c.addr, c.timeout, err)
	}
	return nil, fmt.Errorf("redis %s on %s: %w", name, c.addr, err)
}

// do runs one command under cctx (ctx with the command timeout). go-redis ends a command
// at a deadline but does not notice a cancellation, so when ctx can be cancelled the
// command runs in its own goroutine and do returns as soon as ctx is done; the command
// then finishes (and frees its connection) by its deadline at the latest.
func (c *Client) do(ctx, cctx context.Context, args []any) (any, error) {
	if ctx.Done() == nil {
		return c.rdb.Do(cctx, args...).Result()
	}
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := c.rdb.Do(cctx, args...).Result()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, "PING")
	return err
}

// Close closes the pool's connections.
func (c *Client) Close() error { return c.rdb.Close() }

// loopbackDialer dials plain TCP to loopback addresses only: an address learned from a
// sentinel or a cluster node that is elsewhere is refused before any packet is sent, as
// a configured one is.
func loopbackDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if !httpc.IsLoopbackHost(host) {
			return nil, fmt.Errorf("redis: %s was learned from a sentinel or cluster node, is not on loopback, and ssl is not configured: refusing to send the password and commands in clear text (configure ssl or set allow_plaintext)", addr)
		}
		return d.DialContext(ctx, network, addr)
	}
}

// OnHealthChange registers fn to be called when the server goes down or comes back
// (see health.State.OnChange).
func (c *Client) OnHealthChange(fn func(health.Snapshot)) { c.health.OnChange(fn) }
