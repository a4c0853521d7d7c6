package broker

import (
	"context"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// Authenticator decides whether a CONNECT may proceed. It runs after the packet and the
// client identifier have been validated, before any session is touched. The broker asks it
// with the client's credentials (Authenticate) or, for an MQTT 5 CONNECT that names an
// Authentication Method, for that method on the client's listener (Enhanced).
//
// An Allow lets the client in; anything else refuses it (Ignore as 0x87 Not authorized).
type Authenticator interface {
	Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result
	// Enhanced returns the enhanced authentication method configured on a listener, or nil.
	Enhanced(listener, method string) authn.Enhanced
}

// Authorizer decides what authenticated clients may do. ForClient is asked once per
// connection, after authentication, with the rules the authenticator returned; the broker
// keeps the answer with the connection and its session.
type Authorizer interface {
	ForClient(info *clientinfo.Info, acl []authz.Rule) ClientAuthorizer
	// CheckIdentity refuses a client id or user name that could widen a placeholder rule
	// (one containing '+', '#', '/' or NUL) when such rules are configured.
	CheckIdentity(info *clientinfo.Info) error
	// DisconnectOnDeny reports deny_action: disconnect.
	DisconnectOnDeny() bool
	// OnChange registers a function run after the rules changed (the broker re-checks the
	// subscriptions of every session then).
	OnChange(func())
	// RecheckInterval reports the shortest time a client's view of a source is kept
	// before it is read again, for sources that do not announce changes; ok is false when
	// there is none. The broker re-checks every session's subscriptions that often.
	RecheckInterval() (every time.Duration, ok bool)
}

// ClientAuthorizer answers for one client. For publish, topic is the topic name; for
// subscribe, the requested filter (the real filter of a shared subscription).
type ClientAuthorizer interface {
	Authorize(ctx context.Context, a authz.Action, topic string) bool
}

// Guard is the abuse control around authentication: Check runs before the authentication
// chain (banned clients are refused with 0x8A), Connected after it succeeded (a client
// reconnecting too often is refused with 0x8A and banned).
type Guard interface {
	Check(ctx context.Context, info *clientinfo.Info) (why string, refuse bool)
	Connected(ctx context.Context, info *clientinfo.Info) (refuse bool)
}

// allowAll is the default until the authentication and authorization chains exist. The
// listener policy (anonymous only on loopback unless explicitly allowed) is enforced at
// start-up by the configuration.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, *clientinfo.Info, *authn.Credentials) authn.Result {
	return authn.Allowed()
}

func (allowAll) Enhanced(string, string) authn.Enhanced { return nil }

func (allowAll) ForClient(*clientinfo.Info, []authz.Rule) ClientAuthorizer { return allowAll{} }
func (allowAll) CheckIdentity(*clientinfo.Info) error                      { return nil }
func (allowAll) DisconnectOnDeny() bool                                    { return false }
func (allowAll) OnChange(func())                                           {}
func (allowAll) RecheckInterval() (time.Duration, bool)                    { return 0, false }
func (allowAll) Authorize(context.Context, authz.Action, string) bool      { return true }
