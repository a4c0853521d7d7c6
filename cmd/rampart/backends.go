package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/sqlauth"
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

// openSQL compiles an entry's query and binds it to a new pool of its backend
// (postgresql or mysql); nothing connects until the first question.
func openSQL(ctx context.Context, backend string, c config.ServerConn, ssl config.ClientSSL, timeout config.Duration, query string, o placeholder.Options) (sqlauth.Querier, error) {
	var q sqlauth.Querier
	var err error
	switch backend {
	case config.BackendPG:
		q, err = postgres.Open(ctx, pgConfig(c, ssl, timeout), query, o)
	case config.BackendMySQL:
		q, err = mysql.Open(ctx, mysqlConfig(c, ssl, timeout), query, o)
	default:
		return nil, fmt.Errorf("backend %q is not a SQL database", backend)
	}
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return q, nil
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
