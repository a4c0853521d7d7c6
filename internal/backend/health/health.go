// Package health keeps the health state of one backend connector (a database, directory
// or cache server) and spaces out its reconnection attempts: after a failure to reach the
// server, questions are refused at once for a back-off period that doubles with each
// further failure (up to a ceiling), so a server that is down or restarting sees one
// probe per period instead of a reconnection storm from every connecting client, and
// clients are refused quickly instead of each waiting for a connect timeout.
package health

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Defaults of the back-off.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// ErrBackoff is wrapped by the error Allow returns while the back-off runs. Callers
// answer it like a server that is down (MQTT: 0x88 Server unavailable).
var ErrBackoff = errors.New("backend unreachable, waiting before the next attempt")

// ErrBusy is wrapped by a connector's error when every pooled connection stayed busy for
// the whole wait for one: the server is up but saturated, and the question is refused
// quickly instead of queueing (MQTT: 0x89 Server busy). It is not a failure to reach the
// server and does not start a back-off.
var ErrBusy = errors.New("backend busy: no pooled connection came free in time")

// State is the health of one connector. The zero value is not usable: call New. A State
// is safe for concurrent use.
type State struct {
	name     string
	min, max time.Duration
	now      func() time.Time

	mu       sync.Mutex
	up       bool
	since    time.Time
	failures int       // consecutive failures to reach the server
	lastErr  string    // the last failure, for operators
	retryAt  time.Time // questions before this are refused
	probeEnd time.Time // while after now, one question is out as a probe
	onChange []func(Snapshot)
}

// probeWait bounds how long one probe holds the others back when its outcome is never
// recorded.
const probeWait = 10 * time.Second

// New returns the state of the connector called name (for messages), healthy until a
// failure is recorded. min and max bound the back-off; zero takes the defaults.
func New(name string, minBackoff, maxBackoff time.Duration) *State {
	if minBackoff <= 0 {
		minBackoff = DefaultMinBackoff
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	maxBackoff = max(maxBackoff, minBackoff)
	return &State{name: name, min: minBackoff, max: maxBackoff, now: time.Now, up: true, since: time.Now()}
}

// Allow says whether a question may go to the server now. During the back-off after a
// failure it returns an error wrapping ErrBackoff with the last failure; when the back-off
// has run out it lets exactly one question through as a probe (others are still refused)
// until that probe's outcome is recorded. Every allowed question must end in Success,
// Failure or Abandon (a probe whose outcome is never recorded holds the others back for
// at most 10 seconds).
func (s *State) Allow() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == 0 {
		return nil
	}
	now := s.now()
	if now.Before(s.probeEnd) || now.Before(s.retryAt) {
		return fmt.Errorf("%s: %w (last error: %s)", s.name, ErrBackoff, s.lastErr)
	}
	s.probeEnd = now.Add(probeWait)
	return nil
}

// Success records that the server answered.
func (s *State) Success() {
	s.mu.Lock()
	s.probeEnd = time.Time{}
	if s.failures == 0 {
		s.mu.Unlock()
		return
	}
	s.failures, s.lastErr, s.retryAt = 0, "", time.Time{}
	flipped := !s.up
	s.up, s.since = true, s.now()
	s.notify(flipped) // unlocks
}

// OnChange registers fn to be called each time the server goes down (the first failure
// after an answer) or comes back (the first answer after failures), with the new state.
// fn runs on the goroutine that recorded the change, without the state's lock held.
func (s *State) OnChange(fn func(Snapshot)) {
	s.mu.Lock()
	s.onChange = append(s.onChange, fn)
	s.mu.Unlock()
}

// notify unlocks s.mu and, when flipped, calls the change listeners.
func (s *State) notify(flipped bool) {
	if !flipped || len(s.onChange) == 0 {
		s.mu.Unlock()
		return
	}
	snap := Snapshot{Up: s.up, Since: s.since, Failures: s.failures, LastErr: s.lastErr}
	fns := slices.Clone(s.onChange)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(snap)
	}
}

// Failure records that the server could not be reached or did not answer in time (not
// an error the server answered with: those say the server is up). The back-off doubles
// with each consecutive failure, from min up to max.
func (s *State) Failure(err error) {
	s.mu.Lock()
	s.probeEnd = time.Time{}
	s.failures++
	if err != nil {
		s.lastErr = err.Error()
	}
	d := s.min
	for i := 1; i < s.failures && d < s.max; i++ {
		d *= 2
	}
	s.retryAt = s.now().Add(min(d, s.max))
	flipped := s.up
	if s.up {
		s.up, s.since = false, s.now()
	}
	s.notify(flipped) // unlocks
}

// Abandon records that an allowed question ended without saying anything about the
// server (the caller gave up first): a probe's place goes to the next question.
func (s *State) Abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probeEnd = time.Time{}
}

// Snapshot is a State at one moment, for logs, metrics and the admin API.
type Snapshot struct {
	Up       bool
	Since    time.Time // when Up last changed
	Failures int       // consecutive failures
	LastErr  string
}

// Snapshot returns the current state.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{Up: s.up, Since: s.since, Failures: s.failures, LastErr: s.lastErr}
}
