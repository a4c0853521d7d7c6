package main

import (
	"fmt"
	"strconv"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/backend/postgres"
	"github.com/rampart-mqtt/rampart/internal/backend/redis"
	"github.com/rampart-mqtt/rampart/internal/config"
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
	return redis.Config{Addr: c.Server, Username: c.Username, Password: c.Password, DB: db, PoolSize: c.PoolSize,
		DialTimeout: c.ConnectTimeout.Duration(), CommandTimeout: timeout.Duration(), TLS: serverTLS(ssl)}, nil
}

// pgConfig maps an entry's server keys onto the PostgreSQL connector.
func pgConfig(c config.ServerConn, ssl config.ClientSSL, timeout config.Duration) postgres.Config {
	return postgres.Config{Server: c.Server, Database: c.Database, Username: c.Username, Password: c.Password,
		PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout.Duration(), QueryTimeout: timeout.Duration(),
		TLS: serverTLS(ssl), AllowPlainText: c.AllowPlaintext}
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
