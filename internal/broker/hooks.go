package broker

import (
	"context"

	"github.com/rampart-mqtt/rampart/internal/authn"
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

// ActionKind is what a client is trying to do with a topic.
type ActionKind byte

// Actions checked by an Authorizer.
const (
	ActionPublish ActionKind = iota + 1
	ActionSubscribe
)

// Action describes one authorization question.
type Action struct {
	Kind   ActionKind
	QoS    byte
	Retain bool
	Group  string // shared subscription group, for subscribe
}

// Authorizer decides whether a client may publish to a topic or subscribe to a filter.
type Authorizer interface {
	Authorize(ctx context.Context, info *clientinfo.Info, a Action, topic string) bool
}

// allowAll is the default until the authentication and authorization chains exist. The
// listener policy (anonymous only on loopback unless explicitly allowed) is enforced at
// start-up by the configuration.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, *clientinfo.Info, *authn.Credentials) authn.Result {
	return authn.Allowed()
}

func (allowAll) Enhanced(string, string) authn.Enhanced { return nil }

func (allowAll) Authorize(context.Context, *clientinfo.Info, Action, string) bool { return true }
