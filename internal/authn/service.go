package authn

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Mode is a listener's enable_authn setting.
type Mode int

// Listener modes.
const (
	ModeEnabled            Mode = iota // run the chain
	ModeDisabled                       // no authentication: every client is let in
	ModeQuickDenyAnonymous             // refuse an empty user name before the chain runs
)

// Listener is one listener's authentication policy.
type Listener struct {
	Mode Mode
	// Chain replaces the global chain on this listener when not nil.
	Chain *Chain
}

// Gate is the brute-force defence in front of the chain (see internal/guard). Admit runs
// before any hash or backend call: it may wait (a delay after failures, honouring ctx) and
// answers false while the address or user name is in its cool-down.
type Gate interface {
	Admit(ctx context.Context, ip netip.Addr, username string) bool
	Failure(ip netip.Addr, username string)
	Success(ip netip.Addr, username string)
}

// Service is what the broker asks at CONNECT: it picks the listener's chain, applies the
// listener's mode and the brute-force gate, bounds the time the chain may take and turns
// "everyone ignored" into a refusal.
type Service struct {
	global    *Chain
	listeners map[string]Listener
	gate      Gate
	timeout   time.Duration
	log       *slog.Logger
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Global    *Chain              // the global authentication chain; nil or empty = none
	Listeners map[string]Listener // by "type:name"
	Gate      Gate                // nil = no brute-force defence
	Timeout   time.Duration       // bound on one authentication; 0 = 10s
	Log       *slog.Logger
}

// NewService builds the service.
func NewService(o ServiceOptions) *Service {
	s := &Service{global: o.Global, listeners: o.Listeners, gate: o.Gate, timeout: o.Timeout, log: o.Log}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.global == nil {
		s.global = NewChain(nil, nil, nil, s.log)
	}
	return s
}

func (s *Service) policy(listener string) (Mode, *Chain) {
	l := s.listeners[listener]
	if l.Chain != nil {
		return l.Mode, l.Chain
	}
	return l.Mode, s.global
}

// Authenticate decides a CONNECT with credentials.
func (s *Service) Authenticate(ctx context.Context, info *clientinfo.Info, cred *Credentials) Result {
	mode, chain := s.policy(info.Listener)
	switch {
	case mode == ModeDisabled:
		return Allowed()
	case mode == ModeQuickDenyAnonymous && cred.Username == "":
		return Denied(packet.NotAuthorized, "anonymous clients are refused on this listener")
	case chain.Len() == 0:
		// No authenticator configured: configuration only allows this where anonymous
		// access is permitted (loopback listeners or allow_anonymous: true).
		return Allowed()
	}
	ip := info.Peer.Addr()
	if s.gate != nil && !s.gate.Admit(ctx, ip, cred.Username) {
		return Denied(packet.ConnectionRateExceeded, "too many failed attempts: in cool-down")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res := chain.Authenticate(ctx, info, cred)
	if res.Outcome == Ignore {
		res = Denied(packet.NotAuthorized, res.Detail)
	}
	if s.gate != nil {
		if res.Outcome == Allow {
			s.gate.Success(ip, cred.Username)
		} else {
			s.gate.Failure(ip, cred.Username)
		}
	}
	return res
}

// Enhanced returns a listener's enhanced authentication method, or nil when the listener
// does not offer it. Its conversations pass the brute-force gate (by address: the user
// name is inside the exchange) and record their outcome there.
func (s *Service) Enhanced(listener, method string) Enhanced {
	mode, chain := s.policy(listener)
	if mode == ModeDisabled {
		return nil
	}
	m := chain.Enhanced(method)
	if m == nil {
		return nil
	}
	return &gatedMethod{Enhanced: m, s: s}
}

type gatedMethod struct {
	Enhanced
	s *Service
}

func (g *gatedMethod) Begin(ctx context.Context, info *clientinfo.Info) (Conversation, error) {
	conv, err := g.Enhanced.Begin(ctx, info)
	if err != nil {
		return nil, err
	}
	return &gatedConversation{conv: conv, s: g.s, ip: info.Peer.Addr()}, nil
}

type gatedConversation struct {
	conv    Conversation
	s       *Service
	ip      netip.Addr
	started bool
}

func (g *gatedConversation) Step(ctx context.Context, in []byte) ([]byte, bool, Result) {
	if !g.started {
		g.started = true
		if g.s.gate != nil && !g.s.gate.Admit(ctx, g.ip, "") {
			return nil, true, Denied(packet.ConnectionRateExceeded, "too many failed attempts: in cool-down")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, g.s.timeout)
	defer cancel()
	out, done, res := g.conv.Step(ctx, in)
	if done && g.s.gate != nil {
		if res.Outcome == Allow {
			g.s.gate.Success(g.ip, "")
		} else {
			g.s.gate.Failure(g.ip, "")
		}
	}
	return out, done, res
}
