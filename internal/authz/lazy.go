package authz

import (
	"context"
	"fmt"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// Loader reads one client's rules from a source's backend, under the context of the
// question that needs them.
type Loader func(ctx context.Context, info *clientinfo.Info) (*ClientRules, error)

// FailFunc is a source's decision after its rules could not be read: Deny, or NoMatch
// when its on_error says to ignore failures. It is where the source logs err.
type FailFunc func(info *clientinfo.Info, err error) Decision

// LazyRules is a ClientSource that reads its client's rules at the first question rather
// than at ForClient, so that ForClient does no I/O: one question at a time reads them
// (the others wait, as long as their context lets them), the rules read answer every
// later question, and a failed read is not remembered, so the next question tries again.
// It is safe for concurrent use.
type LazyRules struct {
	info clientinfo.Info
	load Loader
	fail FailFunc

	lock  chan struct{} // held while reading the rules; a channel so waiting honours ctx
	rules *ClientRules  // set once read; guarded by lock
}

// NewLazyRules returns the ClientSource of one client that reads its rules with load and
// decides with fail when they cannot be read. It keeps a copy of info (nil: an empty one;
// its Attrs map is shared and must not be modified afterwards) and passes load and fail
// a pointer to that copy.
func NewLazyRules(info *clientinfo.Info, load Loader, fail FailFunc) *LazyRules {
	l := &LazyRules{load: load, fail: fail, lock: make(chan struct{}, 1)}
	if info != nil {
		l.info = *info
	}
	return l
}

// Authorize implements ClientSource.
func (l *LazyRules) Authorize(ctx context.Context, a Action, topic string) Decision {
	rules, err := l.Rules(ctx)
	if err != nil {
		return l.fail(&l.info, err)
	}
	return rules.Decide(a, topic)
}

// Rules returns the client's rules, reading them if no question has yet.
func (l *LazyRules) Rules(ctx context.Context) (*ClientRules, error) {
	select {
	case l.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the rules to be read: %w", ctx.Err())
	}
	defer func() { <-l.lock }()
	if l.rules == nil {
		rules, err := l.load(ctx, &l.info)
		if err != nil {
			return nil, err
		}
		l.rules = rules
	}
	return l.rules, nil
}
