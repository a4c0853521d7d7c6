package broker

import (
	"context"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Authenticator decides whether a CONNECT may proceed. It runs after the packet and the
// client identifier have been validated, before any session is touched.
type Authenticator interface {
	Authenticate(ctx context.Context, info *clientinfo.Info, c *packet.Connect) AuthResult
}

// AuthResult is an authenticator's answer. Code Success accepts the client; any other code
// refuses it with that CONNACK reason (mapped to a 3.1.1 return code when needed).
type AuthResult struct {
	Code      packet.ReasonCode
	Superuser bool
	Attrs     map[string]string
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

func (allowAll) Authenticate(context.Context, *clientinfo.Info, *packet.Connect) AuthResult {
	return AuthResult{Code: packet.Success}
}

func (allowAll) Authorize(context.Context, *clientinfo.Info, Action, string) bool { return true }
