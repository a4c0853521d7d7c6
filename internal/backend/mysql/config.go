package mysql

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/secret"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config is how to reach one MySQL or MariaDB server. Key names in comments are the
// proposed YAML keys (EMQX's where EMQX has one); the authenticator and the authorization
// source embed them at the level of their other keys.
type Config struct {
	// Server is host[:port] (the port defaults to 3306; an IPv6 address in brackets), or
	// the absolute path of the server's Unix socket. (server)
	Server string
	// Database is the database name. (database)
	Database string
	// Username is the account to log in as. (username)
	Username string
	// Password is a reference to the account's password: file:/path or env:NAME. A
	// password written in the configuration is refused. (password)
	Password string
	// PoolSize bounds the connections to the server, and so the questions in flight;
	// default 8, at most 1024. (pool_size)
	PoolSize int
	// ConnectTimeout bounds establishing one connection (TCP, TLS, login); default 5s, at
	// most 1m. (connect_timeout)
	ConnectTimeout time.Duration
	// QueryTimeout bounds one question, waiting for a connection and connecting included;
	// default 5s, at most 1m. (query_timeout)
	QueryTimeout time.Duration
	// AcquireTimeout bounds the wait for a free connection when all PoolSize are busy, so
	// a slow or saturated server turns new questions away quickly (an error wrapping
	// health.ErrBusy) instead of queueing them; default 1s, never more than QueryTimeout.
	// (acquire_timeout)
	AcquireTimeout time.Duration
	// TLS, when set, makes every connection use TLS with the server verified as
	// tlsconf.NewClient does; a server without TLS is refused, never used in plain text.
	// (ssl)
	TLS *tlsconf.ClientOptions
	// AllowPlainText permits a connection without TLS to a host that is not loopback:
	// the login and every query then cross the network in clear text; `rampart doctor`
	// should flag it. (allow_plaintext)
	AllowPlainText bool
}

// Defaults and limits.
const (
	DefaultPoolSize       = 8
	MaxPoolSize           = 1024
	DefaultConnectTimeout = 5 * time.Second
	MaxConnectTimeout     = time.Minute
	DefaultQueryTimeout   = 5 * time.Second
	MaxQueryTimeout       = time.Minute
	DefaultAcquireTimeout = time.Second
	DefaultPort           = "3306"
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
	case c.ConnectTimeout < 0 || c.ConnectTimeout > MaxConnectTimeout:
		return c, fmt.Errorf("connect_timeout: %v: want more than 0s and at most %v", c.ConnectTimeout, MaxConnectTimeout)
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
	if c.Server == "" {
		return c, errors.New("server: required")
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
	return c, nil
}

// address returns the driver's network and address for Server, and the host name to
// verify a certificate against ("" for a Unix socket).
func (c Config) address() (network, addr, host string, err error) {
	if strings.HasPrefix(c.Server, "/") {
		return "unix", c.Server, "", nil
	}
	host, port, err := net.SplitHostPort(c.Server)
	if err != nil {
		if !strings.Contains(err.Error(), "missing port") {
			return "", "", "", fmt.Errorf("server: %q: %w", c.Server, err)
		}
		host, port = strings.Trim(c.Server, "[]"), DefaultPort
	}
	if host == "" || strings.ContainsAny(host, "/ ") {
		return "", "", "", fmt.Errorf("server: %q: want host[:port] or the absolute path of a Unix socket", c.Server)
	}
	p, perr := strconv.ParseUint(port, 10, 16)
	if perr != nil || p == 0 {
		return "", "", "", fmt.Errorf("server: port %q: want 1 to 65535", port)
	}
	return "tcp", net.JoinHostPort(host, port), host, nil
}

// resolveSecret reads what a file: or env: reference names; "" is no password.
func resolveSecret(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	data, err := secret.Read(ref)
	return string(data), err
}

// isLoopback reports whether host is localhost or a loopback address: the only places
// plain text may go without AllowPlainText (a Unix socket never leaves the machine).
func isLoopback(host string) bool { return httpc.IsLoopbackHost(host) }
