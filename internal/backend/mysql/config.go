package mysql

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
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
	// PoolSize (pool_size: the connections, and so the questions in flight),
	// ConnectTimeout (connect_timeout: TCP, TLS, login), QueryTimeout (query_timeout: one
	// question, connecting included) and AcquireTimeout (acquire_timeout: past it, an
	// error wrapping health.ErrBusy) bound the pool and the waits, with the defaults and
	// limits poolcfg.Limits documents.
	PoolSize                                     int
	ConnectTimeout, QueryTimeout, AcquireTimeout time.Duration
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
	DefaultPoolSize       = poolcfg.DefaultPoolSize
	MaxPoolSize           = poolcfg.MaxPoolSize
	DefaultConnectTimeout = poolcfg.DefaultConnectTimeout
	MaxConnectTimeout     = poolcfg.MaxConnectTimeout
	DefaultQueryTimeout   = poolcfg.DefaultQueryTimeout
	MaxQueryTimeout       = poolcfg.MaxQueryTimeout
	DefaultAcquireTimeout = poolcfg.DefaultAcquireTimeout
	DefaultPort           = "3306"
)

// withDefaults returns c with zero fields at their defaults, or an error naming the key.
func (c Config) withDefaults() (Config, error) {
	l, err := poolcfg.Limits{PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout, QueryTimeout: c.QueryTimeout,
		AcquireTimeout: c.AcquireTimeout}.WithDefaults("query_timeout")
	if err != nil {
		return c, err
	}
	c.PoolSize, c.ConnectTimeout, c.QueryTimeout, c.AcquireTimeout = l.PoolSize, l.ConnectTimeout, l.QueryTimeout, l.AcquireTimeout
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
