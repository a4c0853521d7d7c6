package ldap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
	"github.com/rampart-mqtt/rampart/internal/secret"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config is how to reach one LDAP server. Key names in comments are the proposed YAML
// keys (EMQX's where EMQX has one); the authenticator and the authorization source embed
// them at the level of their other keys.
type Config struct {
	// Server is host[:port]; the port defaults to 389, or 636 for LDAPS (ssl without
	// start_tls). (server)
	Server string
	// BindDN is the distinguished name of the service account the pooled connections bind
	// as, e.g. cn=rampart,ou=services,dc=example,dc=com. Empty: the pooled connections stay
	// anonymous (the directory must then let anonymous clients search). (username)
	BindDN string
	// BindPassword is a reference to the service account's password: file:/path or
	// env:NAME. A password written in the configuration is refused; it is required with
	// BindDN. (password)
	BindPassword string
	// BaseDN is where searches start, e.g. ou=users,dc=example,dc=com. (base_dn)
	BaseDN string
	// PoolSize (pool_size), ConnectTimeout (connect_timeout: TCP, TLS or StartTLS, and the
	// service account's bind), QueryTimeout (request_timeout: one search, or a user's
	// bind) and AcquireTimeout (acquire_timeout) bound the pool and the waits, with the
	// defaults and limits poolcfg.Limits documents.
	PoolSize                                     int
	ConnectTimeout, QueryTimeout, AcquireTimeout time.Duration
	// TLS, when set, makes every connection use TLS with the server verified as
	// tlsconf.NewClient does: LDAPS (TLS from the first byte, port 636 by default), or
	// StartTLS when StartTLS is set. (ssl)
	TLS *tlsconf.ClientOptions
	// StartTLS upgrades a plain connection (port 389 by default) with the StartTLS
	// extended operation before anything else is sent, instead of LDAPS; the server is
	// verified the same way. It needs TLS. (ssl.start_tls)
	StartTLS bool
	// AllowPlainText permits a connection without TLS to a host that is not loopback:
	// the service account's password, every client's password (bind method) and every
	// answer then cross the network in clear text; `rampart doctor` should flag it.
	// (allow_plaintext)
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
	DefaultPort           = "389"
	DefaultLDAPSPort      = "636"
)

// withDefaults returns c with zero fields at their defaults, or an error naming the key.
func (c Config) withDefaults() (Config, error) {
	l, err := poolcfg.Limits{PoolSize: c.PoolSize, ConnectTimeout: c.ConnectTimeout, QueryTimeout: c.QueryTimeout,
		AcquireTimeout: c.AcquireTimeout}.WithDefaults("request_timeout")
	if err != nil {
		return c, err
	}
	c.PoolSize, c.ConnectTimeout, c.QueryTimeout, c.AcquireTimeout = l.PoolSize, l.ConnectTimeout, l.QueryTimeout, l.AcquireTimeout
	if c.Server == "" {
		return c, errors.New("server: required, host[:port]")
	}
	if strings.Contains(c.Server, "://") {
		return c, fmt.Errorf("server: %q: give host[:port]; LDAPS and StartTLS are chosen with ssl", c.Server)
	}
	if c.StartTLS && c.TLS == nil {
		return c, errors.New("ssl.start_tls: needs the ssl settings that verify the server")
	}
	switch {
	case c.BindDN == "" && c.BindPassword != "":
		return c, errors.New("password: given without username (the service account's DN)")
	case c.BindDN != "":
		if _, err := goldap.ParseDN(c.BindDN); err != nil {
			return c, fmt.Errorf("username: %q is not a distinguished name: %v", c.BindDN, err)
		}
		if c.BindPassword == "" {
			// A simple bind with a DN and no password is an unauthenticated bind (RFC
			// 4513 §5.1.2): it "succeeds" without proving anything.
			return c, errors.New("password: required with username (file:/path or env:NAME)")
		}
		if err := secret.Check(c.BindPassword, "password"); err != nil {
			return c, fmt.Errorf("password: %w", err)
		}
	}
	if c.BaseDN != "" {
		if _, err := goldap.ParseDN(c.BaseDN); err != nil {
			return c, fmt.Errorf("base_dn: %q is not a distinguished name: %v", c.BaseDN, err)
		}
	}
	return c, nil
}

// hostPort splits Server, adding the default port.
func (c Config) hostPort() (string, string, error) {
	def := DefaultPort
	if c.TLS != nil && !c.StartTLS {
		def = DefaultLDAPSPort
	}
	if ip, err := netip.ParseAddr(c.Server); err == nil {
		// A bare IPv6 address: SplitHostPort would take its last group for a port.
		return ip.String(), def, nil
	}
	host, port, err := net.SplitHostPort(c.Server)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			host, port = strings.Trim(c.Server, "[]"), def
		} else {
			return "", "", fmt.Errorf("server: %q: %w", c.Server, err)
		}
	}
	if host == "" {
		return "", "", fmt.Errorf("server: %q: no host", c.Server)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", "", fmt.Errorf("server: port %q: want 1 to 65535", port)
	}
	return host, port, nil
}

// Validate checks the configuration without connecting or reading secrets; errors name
// the key.
func (c Config) Validate() error {
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	host, _, err := c.hostPort()
	if err != nil {
		return err
	}
	return c.checkPlainText(host)
}

// checkPlainText refuses a connection without TLS to a host that is not loopback, unless
// AllowPlainText says the operator knows.
func (c Config) checkPlainText(host string) error {
	if c.TLS != nil {
		return nil
	}
	return poolcfg.CheckPlainText(host, c.AllowPlainText, "passwords and every answer", "ssl (LDAPS, or StartTLS with ssl.start_tls)")
}
