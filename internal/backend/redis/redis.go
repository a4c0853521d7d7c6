// Package redis is Rampart's shared connector to a standalone Redis server, used by the
// Redis authenticator and authorization source: a bounded connection pool, every command
// under a deadline, optional TLS, and credentials read from file: or env: references.
// Commands are sent as separate arguments (RESP arrays), so a value taken from a client
// can never be parsed as more than the one argument it was put in.
//
// Redis Sentinel and Redis Cluster are not supported yet; only a single server address.
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

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/secret"
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
)

// Config describes one Redis server (proposed YAML keys in parentheses).
type Config struct {
	// Addr is host:port of the server (server). Required.
	Addr string
	// Username for Redis 6 ACLs (username); empty for the default user.
	Username string
	// Password is a "file:/path" or "env:NAME" reference, or empty for none (password).
	// Inline passwords are refused so they never sit in a configuration file.
	Password string
	// DB is the database number (database).
	DB int
	// PoolSize bounds the open connections (pool_size). Default 16.
	PoolSize int
	// DialTimeout bounds connecting, TLS handshake included (connect_timeout). Default 5s.
	DialTimeout time.Duration
	// CommandTimeout bounds each command, the wait for a pooled connection included
	// (command_timeout). Default 5s.
	CommandTimeout time.Duration
	// TLS, when set, connects with TLS (ssl); nil connects in plain text.
	TLS *tlsconf.ClientOptions
}

// Client is a pooled connection to one Redis server. It is safe for concurrent use.
type Client struct {
	rdb      *goredis.Client
	timeout  time.Duration
	addr     string
	insecure bool
}

// New validates cfg and returns a client. It does not connect: connections are opened on
// demand, so a server that is down at start-up is reported by the first command.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("redis: server address is required")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("redis: server %q: %w", cfg.Addr, err)
	}
	if cfg.DB < 0 {
		return nil, fmt.Errorf("redis: database %d is negative", cfg.DB)
	}
	if cfg.PoolSize < 0 || cfg.DialTimeout < 0 || cfg.CommandTimeout < 0 {
		return nil, errors.New("redis: pool_size and timeouts must not be negative")
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	pw, err := readPassword(cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("redis: password: %w", err)
	}
	var tc *tls.Config
	if cfg.TLS != nil {
		if tc, err = tlsconf.NewClient(*cfg.TLS); err != nil {
			return nil, fmt.Errorf("redis: ssl: %w", err)
		}
	}
	wait := min(cfg.CommandTimeout, maxPoolWait)
	rdb := goredis.NewClient(&goredis.Options{
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
	return &Client{rdb: rdb, timeout: cfg.CommandTimeout, addr: cfg.Addr, insecure: tc == nil && !httpc.IsLoopbackHost(host)}, nil
}

// Addr returns the configured server address.
func (c *Client) Addr() string { return c.addr }

// Insecure reports whether the client talks plain text to a server that is not on
// loopback; callers log a warning and `rampart doctor` flags it.
func (c *Client) Insecure() bool { return c.insecure }

// Do sends one command, each argument as its own RESP bulk string, under the command
// timeout (or ctx's deadline, if sooner). A nil reply is (nil, nil); an error reply from the
// server and a connection failure are errors.
func (c *Client) Do(ctx context.Context, args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("redis: empty command")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	v, err := c.rdb.Do(ctx, a...).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis %s on %s: %w", strings.ToUpper(args[0]), c.addr, err)
	}
	return v, nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, "PING")
	return err
}

// Close closes the pool's connections.
func (c *Client) Close() error { return c.rdb.Close() }

// readPassword reads a "file:/path" or "env:NAME" reference; empty means no password.
func readPassword(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	data, err := secret.Read(ref)
	return string(data), err
}
