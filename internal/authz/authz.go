package authz

import (
	"context"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// Action is one authorization question: what a client is about to do with a topic.
type Action struct {
	// Kind is ActPublish or ActSubscribe (one bit).
	Kind   Actions
	QoS    byte
	Retain bool   // publish only
	Group  string // the group of a shared subscription ($share/<group>/<filter>); the topic is the real filter
}

// Decision is a source's answer.
type Decision int

// Decisions. The zero value is NoMatch: a source that does not know decides nothing.
const (
	NoMatch Decision = iota
	Allow
	Deny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "nomatch"
}

// Source is one configured authorization source (file, built-in database, HTTP service).
//
// ForClient is called once per session (at CONNECT, and again after the source's rules
// change): it resolves what can be resolved for this client, such as placeholders, so each
// decision costs a lookup, not a walk over every rule.
type Source interface {
	Name() string
	ForClient(info *clientinfo.Info) ClientSource
}

// ClientSource answers for one client. For publish, topic is the topic name; for
// subscribe, it is the requested filter (the real filter of a shared subscription).
// A backend error is Deny unless the source was configured to ignore errors.
type ClientSource interface {
	Authorize(ctx context.Context, a Action, topic string) Decision
}

// Notifier is implemented by sources whose rules change at run time (a reloaded file, an
// edited database). The chain subscribes once; every change must be announced after it is
// in effect for new ForClient calls and before it is reported as applied.
type Notifier interface {
	OnChange(func())
}
