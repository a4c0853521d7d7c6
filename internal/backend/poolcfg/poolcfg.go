// Package poolcfg holds the configuration the pooled connectors (postgres, mysql, ldap)
// share: the bounds of a pool and of its waits with their defaults, the refusal of a
// connection without TLS to a host that is not loopback, and the reading of a secret
// reference. Errors name the YAML key, as each connector's Config documents it.
package poolcfg

import (
	"fmt"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/secret"
)

// Defaults and limits.
const (
	DefaultPoolSize       = 8
	MaxPoolSize           = 1024
	DefaultConnectTimeout = 5 * time.Second
	MaxConnectTimeout     = time.Minute
	DefaultQueryTimeout   = 5 * time.Second
	MaxQueryTimeout       = time.Minute
	DefaultAcquireTimeout = time.Second
)

// Limits bound a connector's pool and the waits of one question.
type Limits struct {
	// PoolSize bounds the connections to the server; default 8, at most 1024. (pool_size)
	PoolSize int
	// ConnectTimeout bounds establishing one connection; default 5s, at most 1m.
	// (connect_timeout)
	ConnectTimeout time.Duration
	// QueryTimeout bounds one question, waiting for a connection included; default 5s, at
	// most 1m. Its key is the connector's (query_timeout, request_timeout).
	QueryTimeout time.Duration
	// AcquireTimeout bounds the wait for a free connection when all PoolSize are busy, so
	// a slow server turns new questions away quickly instead of queueing them; default 1s,
	// never more than QueryTimeout. (acquire_timeout)
	AcquireTimeout time.Duration
}

// WithDefaults returns l with zero fields at their defaults and AcquireTimeout capped at
// QueryTimeout, or an error naming the key; queryKey is the key of QueryTimeout.
func (l Limits) WithDefaults(queryKey string) (Limits, error) {
	switch {
	case l.PoolSize == 0:
		l.PoolSize = DefaultPoolSize
	case l.PoolSize < 0 || l.PoolSize > MaxPoolSize:
		return l, fmt.Errorf("pool_size: %d: want 1 to %d", l.PoolSize, MaxPoolSize)
	}
	switch {
	case l.ConnectTimeout == 0:
		l.ConnectTimeout = DefaultConnectTimeout
	case l.ConnectTimeout < 0 || l.ConnectTimeout > MaxConnectTimeout:
		return l, fmt.Errorf("connect_timeout: %v: want more than 0s and at most %v", l.ConnectTimeout, MaxConnectTimeout)
	}
	switch {
	case l.QueryTimeout == 0:
		l.QueryTimeout = DefaultQueryTimeout
	case l.QueryTimeout < 0 || l.QueryTimeout > MaxQueryTimeout:
		return l, fmt.Errorf("%s: %v: want more than 0s and at most %v", queryKey, l.QueryTimeout, MaxQueryTimeout)
	}
	switch {
	case l.AcquireTimeout == 0:
		l.AcquireTimeout = min(DefaultAcquireTimeout, l.QueryTimeout)
	case l.AcquireTimeout < 0:
		return l, fmt.Errorf("acquire_timeout: %v: want more than 0s", l.AcquireTimeout)
	case l.AcquireTimeout > l.QueryTimeout:
		l.AcquireTimeout = l.QueryTimeout
	}
	return l, nil
}

// CheckPlainText refuses a connection without TLS to host unless host is localhost or a
// loopback address or allowed says the operator knows (allow_plaintext). sends says what
// would cross the network in clear text, configure which settings would add TLS; the
// error names the ssl key.
func CheckPlainText(host string, allowed bool, sends, configure string) error {
	if allowed || httpc.IsLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("ssl: a connection to %s without TLS sends %s in clear text; configure %s or set allow_plaintext", host, sends, configure)
}

// ReadSecret reads what a file: or env: reference names; "" is no secret.
func ReadSecret(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	data, err := secret.Read(ref) // its error names the reference; the caller adds the key
	return string(data), err
}
