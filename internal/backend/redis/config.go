package redis

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Deployments (Config.Mode, YAML redis_type; EMQX's names).
const (
	ModeSingle   = "single"
	ModeSentinel = "sentinel"
	ModeCluster  = "cluster"
)

// Config describes how to reach Redis (proposed YAML keys in parentheses).
type Config struct {
	// Mode is the deployment (redis_type): "single" (default) for one server at Addr,
	// "sentinel" for the master MasterName found through the sentinels at Addrs, or
	// "cluster" for a Redis Cluster reached through the seed nodes at Addrs.
	Mode string
	// Addr is host:port of the server (server). Required with Mode single; not used
	// otherwise.
	Addr string
	// Addrs are host:port addresses (servers): the sentinels with Mode sentinel, the seed
	// nodes with Mode cluster (the client learns the other nodes from them). Not used with
	// Mode single.
	Addrs []string
	// MasterName is the name under which the sentinels monitor the master (sentinel).
	// Required with Mode sentinel.
	MasterName string
	// Username for Redis 6 ACLs (username); empty for the default user.
	Username string
	// Password is a "file:/path" or "env:NAME" reference, or empty for none (password).
	// Inline passwords are refused so they never sit in a configuration file.
	Password string
	// SentinelUsername and SentinelPassword authenticate to the sentinels when they need
	// it (sentinel_username, sentinel_password; a file: or env: reference like Password).
	// Mode sentinel only.
	SentinelUsername string
	SentinelPassword string
	// DB is the database number (database). A cluster has only database 0.
	DB int
	// PoolSize bounds the open connections (pool_size), per node with Mode cluster.
	// Default 16.
	PoolSize int
	// DialTimeout bounds connecting, TLS handshake included (connect_timeout). Default 5s.
	DialTimeout time.Duration
	// CommandTimeout bounds each command, the wait for a pooled connection included
	// (command_timeout). Default 5s.
	CommandTimeout time.Duration
	// TLS, when set, connects with TLS (ssl), to the sentinels and the master alike; nil
	// connects in plain text.
	TLS *tlsconf.ClientOptions
	// AllowPlainText permits a connection without TLS to a server that is not on loopback
	// (allow_plaintext): the password and every command then cross the network in clear
	// text. Without it such a configuration is refused.
	AllowPlainText bool
}

// validate checks c and returns it with defaults filled in; errors name the YAML key.
func (c Config) validate() (Config, error) {
	switch c.Mode {
	case "", ModeSingle:
		c.Mode = ModeSingle
		if c.Addr == "" {
			return c, errors.New("server: an address is required")
		}
		if len(c.Addrs) > 0 {
			return c, errors.New("servers: only with redis_type sentinel or cluster; give the one server in server")
		}
		if err := checkAddr(c.Addr); err != nil {
			return c, fmt.Errorf("server: %w", err)
		}
	case ModeSentinel, ModeCluster:
		if c.Addr != "" {
			return c, fmt.Errorf("server: not used with redis_type %s; list the addresses in servers", c.Mode)
		}
		if len(c.Addrs) == 0 {
			return c, fmt.Errorf("servers: redis_type %s needs at least one address", c.Mode)
		}
		for _, a := range c.Addrs {
			if err := checkAddr(a); err != nil {
				return c, fmt.Errorf("servers: %w", err)
			}
		}
	default:
		return c, fmt.Errorf("redis_type: %q: want single, sentinel or cluster", c.Mode)
	}
	if c.Mode == ModeSentinel {
		if c.MasterName == "" {
			return c, errors.New("sentinel: redis_type sentinel needs the name of the master the sentinels monitor")
		}
	} else {
		if c.MasterName != "" {
			return c, errors.New("sentinel: only with redis_type sentinel")
		}
		if c.SentinelUsername != "" || c.SentinelPassword != "" {
			return c, errors.New("sentinel_username, sentinel_password: only with redis_type sentinel")
		}
	}
	if c.DB < 0 {
		return c, fmt.Errorf("database: %d is negative", c.DB)
	}
	if c.Mode == ModeCluster && c.DB != 0 {
		return c, fmt.Errorf("database: %d: a Redis Cluster has only database 0", c.DB)
	}
	if c.PoolSize < 0 {
		return c, fmt.Errorf("pool_size: %d is negative", c.PoolSize)
	}
	if c.DialTimeout < 0 {
		return c, fmt.Errorf("connect_timeout: %v is negative", c.DialTimeout)
	}
	if c.CommandTimeout < 0 {
		return c, fmt.Errorf("command_timeout: %v is negative", c.CommandTimeout)
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	return c, nil
}

// addrs are the addresses the client dials first (with Mode cluster, more are learnt
// from the nodes).
func (c Config) addrs() []string {
	if c.Mode == ModeSingle {
		return []string{c.Addr}
	}
	return c.Addrs
}

// checkAddr checks a host:port address.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: %w", a, err)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", a)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: port %q: want 1 to 65535", a, port)
	}
	return nil
}
