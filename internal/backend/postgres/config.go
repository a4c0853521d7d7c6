package postgres

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
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
	// PoolSize bounds the connections to the server; default 8, at most 1024. (pool_size)
	PoolSize int
	// ConnectTimeout bounds establishing one connection (TCP, TLS, login); default 5s.
	// (connect_timeout)
	ConnectTimeout time.Duration
	// QueryTimeout bounds one query, waiting for a pooled connection included; default 5s,
	// at most 1m. (query_timeout)
	QueryTimeout time.Duration
	// AcquireTimeout bounds the wait for a free pooled connection when all PoolSize are
	// busy, so a slow server turns new questions away quickly instead of queueing them;
	// default 1s, never more than QueryTimeout. (acquire_timeout)
	AcquireTimeout time.Duration
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
	DefaultPoolSize       = 8
	MaxPoolSize           = 1024
	DefaultConnectTimeout = 5 * time.Second
	DefaultQueryTimeout   = 5 * time.Second
	MaxQueryTimeout       = time.Minute
	DefaultAcquireTimeout = time.Second
	DefaultPort           = "5432"
)

// withDefaults returns c with zero fields at their defaults, or an error naming the key.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.PoolSize == 0:
		c.PoolSize = DefaultPoolSize
	case c.PoolSize < 0 || c.PoolSize > MaxPoolSize:
		return c, fmt.Errorf("pool_size: %d: want 1 to %d", c.PoolSize, MaxPoolSize)
	}
	switch {
	case c.ConnectTimeout == 0:
		c.ConnectTimeout = DefaultConnectTimeout
	case c.ConnectTimeout < 0 || c.ConnectTimeout > MaxQueryTimeout:
		return c, fmt.Errorf("connect_timeout: %v: want more than 0s and at most %v", c.ConnectTimeout, MaxQueryTimeout)
	}
	switch {
	case c.QueryTimeout == 0:
		c.QueryTimeout = DefaultQueryTimeout
	case c.QueryTimeout < 0 || c.QueryTimeout > MaxQueryTimeout:
		return c, fmt.Errorf("query_timeout: %v: want more than 0s and at most %v", c.QueryTimeout, MaxQueryTimeout)
	}
	switch {
	case c.AcquireTimeout == 0:
		c.AcquireTimeout = min(DefaultAcquireTimeout, c.QueryTimeout)
	case c.AcquireTimeout < 0:
		return c, fmt.Errorf("acquire_timeout: %v: want more than 0s", c.AcquireTimeout)
	case c.AcquireTimeout > c.QueryTimeout:
		c.AcquireTimeout = c.QueryTimeout
	}
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

// isLoopback reports whether host is localhost, a loopback address or a Unix socket
// directory: the only places plain text may go without AllowPlainText.
func isLoopback(host string) bool {
	return strings.HasPrefix(host, "/") || httpc.IsLoopbackHost(host)
}

// resolveSecret reads what a file: or env: reference names; "" is no password.
func resolveSecret(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	data, err := secret.Read(ref)
	return string(data), err
}
