package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/sqlauth"
	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/ldap"
	"github.com/rampart-mqtt/rampart/internal/backend/mysql"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/backend/redis"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// serverTLS returns the TLS options of a Redis or PostgreSQL connection, nil without TLS.
func serverTLS(s config.ClientSSL) *tlsconf.ClientOptions {
	if !s.Enable {
		return nil
	}
	o := clientTLS(s)
	return &o
}

// redisConfig maps an entry's server keys onto the Redis connector.
func redisConfig(c config.ServerConn, ssl config.ClientSSL, timeout config.Duration) (redis.Config, error) {
	db := 0
	if c.Database != "" {
		n, err := strconv.Atoi(c.Database)
		if err != nil || n < 0 {
			return redis.Config{}, fmt.Errorf("database: want a Redis database number, got %q", c.Database)
		}
		db = n
	}
	return redis.Config{Mode: c.RedisType, Addr: c.Server, Addrs: c.Servers, MasterName: c.Sentinel,
		SentinelUsername: c.SentinelUsername, SentinelPassword: c.SentinelPassword,
		Username: c.Username, Password: c.Password, DB: db, PoolSize: c.PoolSize,
		DialTimeout: c.ConnectTimeout.Duration(), CommandTimeout: timeout.Duration(), TLS: serverTLS(ssl),
		AllowPlainText: c.AllowPlaintext}, nil
}

// ldapConfig maps an entry's server keys onto the LDAP connector.
func ldapConfig(c config.ServerConn, ssl config.ClientSSL, timeout config.Duration) ldap.Config {
	return ldap.Config{Server: c.Server, BindDN: c.Username, BindPassword: c.Password, BaseDN: c.BaseDN,
		PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout.Duration(), QueryTimeout: timeout.Duration(),
		TLS: serverTLS(ssl), StartTLS: ssl.StartTLS, AllowPlainText: c.AllowPlaintext}
}

// pgConfig maps an entry's server keys onto the PostgreSQL connector.
func pgConfig(c config.ServerConn, ssl config.ClientSSL, timeout config.Duration) postgres.Config {
	return postgres.Config{Server: c.Server, Database: c.Database, Username: c.Username, Password: c.Password,
		PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout.Duration(), QueryTimeout: timeout.Duration(),
		TLS: serverTLS(ssl), AllowPlainText: c.AllowPlaintext}
}

// mysqlConfig maps an entry's server keys onto the MySQL/MariaDB connector.
func mysqlConfig(c config.ServerConn, ssl config.ClientSSL, timeout config.Duration) mysql.Config {
	return mysql.Config{Server: c.Server, Database: c.Database, Username: c.Username, Password: c.Password,
		PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout.Duration(), QueryTimeout: timeout.Duration(),
		TLS: serverTLS(ssl), AllowPlainText: c.AllowPlaintext}
}

// compileSQL compiles an entry's query with the rules of its backend (postgresql or
// mysql), without connecting.
func compileSQL(backend, query string, o placeholder.Options) (sqlauth.Statement, error) {
	var q sqlauth.Statement
	var err error
	switch backend {
	case config.BackendPG:
		q, err = postgres.CompileQuery(query, o)
	case config.BackendMySQL:
		q, err = mysql.CompileQuery(query, o)
	default:
		return nil, fmt.Errorf("backend %q is not a SQL database", backend)
	}
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return q, nil
}

// connectors holds the connectors (connection pools) to the configured Redis,
// PostgreSQL, MySQL/MariaDB and LDAP servers, for authentication and authorization
// alike: authentication entries (global or per listener) and authorization sources whose
// connection keys are all equal (see connKey) share one connector, so their pool_size
// bounds the connections to that server for all of them together and one health state
// (back-off after failures, one probe at a time) governs them. Entries that differ in
// any connection key, even only in pool_size or request_timeout, get connectors of their
// own; the keys that only concern one entry (cmd, query, filter) may differ freely.
//
// The authenticators and sources built on a connector leave it open: Close closes every
// connector once, after them. A connectors is used while the broker is built, from one
// goroutine; nothing connects until the first question.
type connectors struct {
	open    map[connKey]any // *redis.Client, *postgres.Pool, *mysql.Pool or *ldap.Pool by kind
	closers []func()
	log     *slog.Logger
}

func newConnectors(log *slog.Logger) *connectors {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &connectors{open: map[connKey]any{}, log: log}
}

// watchHealth logs when the server of a new connector goes down or comes back.
func (c *connectors) watchHealth(k connKey, h interface {
	OnHealthChange(func(health.Snapshot))
}) {
	server := k.server
	if server == "" {
		server = k.servers
	}
	h.OnHealthChange(func(s health.Snapshot) {
		if s.Up {
			c.log.Info("backend reachable again: clients are served", "backend", k.kind, "server", server)
			return
		}
		c.log.Warn("backend unreachable: clients that need it are refused (server unavailable) while reconnection backs off",
			"backend", k.kind, "server", server, "err", s.LastErr)
	})
}

// connKey describes one connection as configured: the kind of server and every key that
// shapes its connector. password is the reference (file:... or env:...), not the secret.
type connKey struct {
	kind           string // redis, postgresql, mysql or ldap
	server         string
	redisType      string
	servers        string // the list, quoted
	sentinel       string
	sentinelUser   string
	sentinelPass   string // the reference, not the secret
	username       string
	password       string
	database       string
	poolSize       int
	connectTimeout config.Duration
	requestTimeout config.Duration
	allowPlaintext bool
	baseDN         string
	ssl            config.ClientSSL
}

// connKeyOf returns the connection key of an entry of kind.
func connKeyOf(kind string, c config.ServerConn, ssl config.ClientSSL, timeout config.Duration) connKey {
	return connKey{kind: kind, server: c.Server, redisType: c.RedisType, servers: fmt.Sprintf("%q", c.Servers),
		sentinel: c.Sentinel, sentinelUser: c.SentinelUsername, sentinelPass: c.SentinelPassword, username: c.Username, password: c.Password, database: c.Database,
		poolSize: c.PoolSize, connectTimeout: c.ConnectTimeout, requestTimeout: timeout,
		allowPlaintext: c.AllowPlaintext, baseDN: c.BaseDN, ssl: ssl}
}

// shared returns the connector of k, opening it the first time k is asked for.
func shared[T any](c *connectors, k connKey, open func() (T, error), closeFn func(T)) (T, error) {
	if v, ok := c.open[k]; ok {
		return v.(T), nil
	}
	v, err := open()
	if err != nil {
		var zero T
		return zero, err
	}
	c.open[k] = v
	c.closers = append(c.closers, func() { closeFn(v) })
	if h, ok := any(v).(interface {
		OnHealthChange(func(health.Snapshot))
	}); ok {
		c.watchHealth(k, h)
	}
	return v, nil
}

// Close closes every connector, in the reverse order of opening.
func (c *connectors) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers, c.open = nil, map[connKey]any{}
}

// redisClient returns the shared Redis client of an entry's connection.
func (c *connectors) redisClient(sc config.ServerConn, ssl config.ClientSSL, timeout config.Duration) (*redis.Client, error) {
	return shared(c, connKeyOf(config.BackendRedis, sc, ssl, timeout), func() (*redis.Client, error) {
		rc, err := redisConfig(sc, ssl, timeout)
		if err != nil {
			return nil, err
		}
		return redis.New(rc)
	}, func(r *redis.Client) { _ = r.Close() })
}

// ldapPool returns the shared LDAP pool of an entry's connection.
func (c *connectors) ldapPool(sc config.ServerConn, ssl config.ClientSSL, timeout config.Duration) (*ldap.Pool, error) {
	return shared(c, connKeyOf(config.BackendLDAP, sc, ssl, timeout), func() (*ldap.Pool, error) {
		return ldap.New(ldapConfig(sc, ssl, timeout))
	}, (*ldap.Pool).Close)
}

// sqlStatement compiles an entry's query and binds it to the shared pool of the entry's
// connection (backend postgresql or mysql). The statement's Close leaves the pool open.
func (c *connectors) sqlStatement(ctx context.Context, backend string, sc config.ServerConn, ssl config.ClientSSL, timeout config.Duration, query string, o placeholder.Options) (sqlauth.Querier, error) {
	switch backend {
	case config.BackendPG:
		q, err := postgres.CompileQuery(query, o)
		if err != nil {
			return nil, err
		}
		p, err := shared(c, connKeyOf(backend, sc, ssl, timeout), func() (*postgres.Pool, error) {
			return postgres.New(ctx, pgConfig(sc, ssl, timeout))
		}, (*postgres.Pool).Close)
		if err != nil {
			return nil, err
		}
		return p.Bind(q), nil
	case config.BackendMySQL:
		q, err := mysql.CompileQuery(query, o)
		if err != nil {
			return nil, err
		}
		p, err := shared(c, connKeyOf(backend, sc, ssl, timeout), func() (*mysql.Pool, error) {
			return mysql.New(ctx, mysqlConfig(sc, ssl, timeout))
		}, (*mysql.Pool).Close)
		if err != nil {
			return nil, err
		}
		return p.Bind(q), nil
	}
	return nil, fmt.Errorf("backend %q is not a SQL database", backend)
}

// sharedHasher returns the password hasher of the built-in database, or a new one with
// the configured concurrency bound, shared by every backend that verifies hashes.
func (b *chainBuilder) sharedHasher() (*password.Hasher, error) {
	if b.hasher != nil {
		return b.hasher, nil
	}
	h, err := password.NewHasher(password.Params{}, b.cfg.AuthenticationSettings.HashConcurrency)
	if err != nil {
		return nil, err
	}
	b.hasher = h
	return h, nil
}
