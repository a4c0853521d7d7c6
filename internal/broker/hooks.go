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
// chain, Connected after it succeeded (either refuses a banned client with 0x8A), and
// Ended tells how a connection that Check let through and Connected did not refuse came
// to its end, so that the guard can ban clients that flap.
type Guard interface {
	Check(ctx context.Context, info *clientinfo.Info) (why string, refuse bool)
	Connected(ctx context.Context, info *clientinfo.Info) (refuse bool)
	// Ended is called once per such connection, on the connection's goroutine once its
	// session is detached, and before a connection taking that session over goes on.
	Ended(ctx context.Context, info *clientinfo.Info, how End)
}

// End is how a connection ended, as the broker tells its Guard.
type End uint8

const (
	// EndClean: the client sent DISCONNECT (MQTT 5: reason 0x00 or 0x04).
	EndClean End = iota
	// EndAbnormal: the socket closed without DISCONNECT, the keep alive expired, the
	// client broke the protocol or a limit, or sent DISCONNECT with an error reason.
	EndAbnormal
	// EndTakenOver: a new connection with the same client id took the session over.
	EndTakenOver
	// EndRefused: the client was refused at CONNECT after Check: by authentication, or by
	// a rule applied after it (will topic, per-user connections, the session store).
	EndRefused
	// EndByServer: the server ended a working connection for reasons of its own: shut
	// down, maximum connection time, credentials expired, an operator's action or a ban.
	EndByServer
)

func (e End) String() string {
	switch e {
	case EndClean:
		return "clean"
	case EndAbnormal:
		return "abnormal"
	case EndTakenOver:
		return "taken over"
	case EndRefused:
		return "refused"
	case EndByServer:
		return "by server"
	}
	return "unknown"
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
