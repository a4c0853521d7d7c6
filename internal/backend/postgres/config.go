package postgres

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
	"github.com/rampart-mqtt/rampart/internal/secret"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config is how to reach one PostgreSQL server. Key names in comments are the proposed
// YAML keys (EMQX's where EMQX has one); the authenticator and the authorization source
// embed them at the level of their other keys.
type Config struct {
	// DSN is a libpq connection string or postgres:// URL. It is the alternative to
	// Server/Database/Username/Password and must not carry a password (use Password) nor
	// TLS settings (use TLS). (dsn)
	DSN string
	// Server is host[:port]; the port defaults to 5432. (server)
	Server string
	// Database is the database name. (database)
	Database string
	// Username is the role to log in as. (username)
	Username string
	// Password is a reference to the role's password: file:/path or env:NAME. A password
	// written in the configuration is refused. (password)
	Password string
	// PoolSize (pool_size), ConnectTimeout (connect_timeout: TCP, TLS, login), QueryTimeout
	// (query_timeout: one query) and AcquireTimeout (acquire_timeout) bound the pool and
	// the waits, with the defaults and limits poolcfg.Limits documents.
	PoolSize                                     int
	ConnectTimeout, QueryTimeout, AcquireTimeout time.Duration
	// TLS, when set, makes every connection use TLS with the server verified as
	// tlsconf.NewClient does. (ssl)
	TLS *tlsconf.ClientOptions
	// AllowPlainText permits a connection without TLS to a host that is not loopback:
	// passwords and queries then cross the network in clear text; `rampart doctor` should
	// flag it. (allow_plaintext)
	AllowPlainText bool
}

// Defaults and limits.
const (
	DefaultPoolSize       = poolcfg.DefaultPoolSize
	MaxPoolSize           = poolcfg.MaxPoolSize
	DefaultConnectTimeout = poolcfg.DefaultConnectTimeout
	DefaultQueryTimeout   = poolcfg.DefaultQueryTimeout
	MaxQueryTimeout       = poolcfg.MaxQueryTimeout
	DefaultAcquireTimeout = poolcfg.DefaultAcquireTimeout
	DefaultPort           = "5432"
)

// withDefaults returns c with zero fields at their defaults, or an error naming the key.
func (c Config) withDefaults() (Config, error) {
	l, err := poolcfg.Limits{PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout, QueryTimeout: c.QueryTimeout,
		AcquireTimeout: c.AcquireTimeout}.WithDefaults("query_timeout")
	if err != nil {
		return c, err
	}
	c.PoolSize, c.ConnectTimeout, c.QueryTimeout, c.AcquireTimeout = l.PoolSize, l.ConnectTimeout, l.QueryTimeout, l.AcquireTimeout
	if c.DSN != "" && (c.Server != "" || c.Database != "" || c.Username != "" || c.Password != "") {
		return c, errors.New("dsn: give either dsn or server/database/username/password, not both")
	}
	if c.DSN == "" {
		if c.Server == "" {
			return c, errors.New("server: required (or dsn)")
		}
		if c.Database == "" {
			return c, errors.New("database: required")
		}
		if c.Username == "" {
			return c, errors.New("username: required")
		}
		if err := secret.Check(c.Password, "password"); err != nil {
			return c, fmt.Errorf("password: %w", err)
		}
	}
	return c, nil
}

// hostPort splits Server, adding the default port.
func (c Config) hostPort() (string, string, error) {
	host, port, err := net.SplitHostPort(c.Server)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return strings.Trim(c.Server, "[]"), DefaultPort, nil
		}
		return "", "", fmt.Errorf("server: %q: %w", c.Server, err)
	}
	if host == "" {
		return "", "", fmt.Errorf("server: %q: no host", c.Server)
	}
	return host, port, nil
}
