package authn

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// fixed answers the same result for every client and counts its calls.
type fixed struct {
	name  string
	res   Result
	mu    sync.Mutex
	calls int
}

func (f *fixed) Name() string { return f.name }
func (f *fixed) Authenticate(context.Context, *clientinfo.Info, *Credentials) Result {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return f.res
}

func info(listener string) *clientinfo.Info {
	return &clientinfo.Info{ClientID: "c", Username: "u", Listener: listener, Peer: netip.MustParseAddrPort("127.0.0.1:5000")}
}

func TestChainOrder(t *testing.T) {
	allow := Allowed()
	deny := Denied(packet.BadUserNameOrPassword, "wrong")
	ign := Ignored("not mine")
	tests := []struct {
		name    string
		answers []Result
		want    Outcome
		called  []int // calls per authenticator
	}{
		{"first allow decides", []Result{allow, deny}, Allow, []int{1, 0}},
		{"first deny decides", []Result{deny, allow}, Deny, []int{1, 0}},
		{"ignore passes on", []Result{ign, allow}, Allow, []int{1, 1}},
		{"ignore then deny", []Result{ign, ign, deny}, Deny, []int{1, 1, 1}},
		{"all ignore", []Result{ign, ign}, Ignore, []int{1, 1}},
		{"empty chain", nil, Ignore, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var entries []Entry
			var auths []*fixed
			for i, r := range tc.answers {
				f := &fixed{name: string(rune('a' + i)), res: r}
				auths = append(auths, f)
				entries = append(entries, Entry{Authenticator: f})
			}
			ch := NewChain(entries, nil, nil, nil)
			got := ch.Authenticate(context.Background(), info("tcp:default"), &Credentials{Username: "u"})
			if got.Outcome != tc.want {
				t.Fatalf("outcome %v, want %v", got.Outcome, tc.want)
			}
			for i, f := range auths {
				if f.calls != tc.called[i] {
					t.Errorf("authenticator %d called %d times, want %d", i, f.calls, tc.called[i])
				}
			}
		})
	}
}

func TestPreconditionSkips(t *testing.T) {
	deny := &fixed{name: "deny", res: Denied(0, "x")}
	allow := &fixed{name: "allow", res: Allowed()}
	onlySSL := func(i *clientinfo.Info) bool { return i.Listener == "ssl:default" }
	ch := NewChain([]Entry{{Authenticator: deny, Precondition: onlySSL}, {Authenticator: allow}}, nil, nil, nil)
	if got := ch.Authenticate(context.Background(), info("tcp:default"), &Credentials{}); got.Outcome != Allow {
		t.Fatalf("tcp client: %v, want allow (deny authenticator must not run)", got.Outcome)
	}
	if got := ch.Authenticate(context.Background(), info("ssl:default"), &Credentials{}); got.Outcome != Deny {
		t.Fatalf("ssl client: %v, want deny", got.Outcome)
	}
	if deny.calls != 1 {
		t.Fatalf("precondition: deny ran %d times, want 1", deny.calls)
	}
}

func TestServiceModes(t *testing.T) {
	allow := &fixed{name: "allow", res: Allowed()}
	ignore := &fixed{name: "ignore", res: Ignored("no")}
	global := NewChain([]Entry{{Authenticator: ignore}}, nil, nil, nil)
	s := NewService(ServiceOptions{
		Global: global,
		Listeners: map[string]Listener{
			"tcp:open":  {Mode: ModeDisabled},
			"tcp:quick": {Mode: ModeQuickDenyAnonymous, Chain: NewChain([]Entry{{Authenticator: allow}}, nil, nil, nil)},
			"tcp:own":   {Chain: NewChain([]Entry{{Authenticator: allow}}, nil, nil, nil)},
		},
	})
	tests := []struct {
		listener, user string
		want           Outcome
		reason         packet.ReasonCode
	}{
		{"tcp:default", "u", Deny, packet.NotAuthorized}, // global chain: everyone ignores
		{"tcp:open", "", Allow, 0},
		{"tcp:quick", "", Deny, packet.NotAuthorized},
		{"tcp:quick", "u", Allow, 0},
		{"tcp:own", "u", Allow, 0}, // per-listener chain replaces the global one
	}
	for _, tc := range tests {
		before := allow.calls
		res := s.Authenticate(context.Background(), info(tc.listener), &Credentials{Username: tc.user})
		if res.Outcome != tc.want || (tc.want == Deny && res.DenyReason() != tc.reason) {
			t.Errorf("%s user %q: %v %v, want %v %v", tc.listener, tc.user, res.Outcome, res.DenyReason(), tc.want, tc.reason)
		}
		if tc.listener == "tcp:quick" && tc.user == "" && allow.calls != before {
			t.Errorf("quick_deny_anonymous ran the chain")
		}
	}
}

// countingGate refuses after limit failures, like the guard package's limiter.
type countingGate struct {
	mu       sync.Mutex
	failures int
	limit    int
}

func (g *countingGate) Admit(context.Context, netip.Addr, string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failures < g.limit
}
func (g *countingGate) Failure(netip.Addr, string) { g.mu.Lock(); g.failures++; g.mu.Unlock() }
func (g *countingGate) Success(netip.Addr, string) {}

func TestServiceGateStopsBruteForceBeforeTheChain(t *testing.T) {
	deny := &fixed{name: "deny", res: Denied(packet.BadUserNameOrPassword, "wrong password")}
	gate := &countingGate{limit: 5}
	s := NewService(ServiceOptions{Global: NewChain([]Entry{{Authenticator: deny}}, nil, nil, nil), Gate: gate})
	var throttled int
	for range 50 {
		res := s.Authenticate(context.Background(), info("tcp:default"), &Credentials{Username: "u", Password: []byte("guess")})
		if res.Outcome != Deny {
			t.Fatalf("a wrong password was let in")
		}
		if res.DenyReason() == packet.ConnectionRateExceeded {
			throttled++
		}
	}
	if deny.calls != 5 || throttled != 45 {
		t.Fatalf("50 guesses: %d reached the authenticator, %d throttled; want 5 and 45", deny.calls, throttled)
	}
}

// slow blocks until its context ends.
type slow struct{}

func (slow) Name() string { return "slow" }
func (slow) Authenticate(ctx context.Context, _ *clientinfo.Info, _ *Credentials) Result {
	<-ctx.Done()
	return Denied(packet.NotAuthorized, "backend timeout")
}

func TestServiceTimeoutBoundsTheChain(t *testing.T) {
	s := NewService(ServiceOptions{Global: NewChain([]Entry{{Authenticator: slow{}}}, nil, nil, nil), Timeout: 20 * time.Millisecond})
	if res := s.Authenticate(context.Background(), info("tcp:default"), &Credentials{}); res.Outcome != Deny {
		t.Fatalf("timed-out backend: %v, want deny", res.Outcome)
	}
}

func TestStats(t *testing.T) {
	reg := NewRegistry()
	now := time.Unix(1000, 0)
	reg.now = func() time.Time { return now }
	a := &fixed{name: "a", res: Allowed()}
	d := &fixed{name: "d", res: Denied(0, "")}
	i := &fixed{name: "i", res: Ignored("")}
	ch := NewChain([]Entry{{Authenticator: i}, {Authenticator: a}}, nil, reg, nil)
	ch2 := NewChain([]Entry{{Authenticator: d}}, nil, reg, nil)
	for range 10 {
		ch.Authenticate(context.Background(), info("x"), &Credentials{})
		ch2.Authenticate(context.Background(), info("x"), &Credentials{})
	}
	snap := reg.Snapshot()
	if s := snap["a"]; s.Total != 10 || s.Success != 10 || s.Rate != 1 {
		t.Errorf("a: %+v", s)
	}
	if s := snap["d"]; s.Failed != 10 {
		t.Errorf("d: %+v", s)
	}
	if s := snap["i"]; s.NoMatch != 10 {
		t.Errorf("i: %+v", s)
	}
	now = now.Add(time.Minute)
	if s := reg.Snapshot()["a"]; s.Rate != 0 || s.Total != 10 {
		t.Errorf("after a quiet minute: %+v", s)
	}
}

// countingMethod is an enhanced method whose conversations fail at once, counting how
// many reached it.
type countingMethod struct{ begun, stepped int }

func (m *countingMethod) Method() string { return "TEST" }
func (m *countingMethod) Begin(context.Context, *clientinfo.Info) (Conversation, error) {
	m.begun++
	return m, nil
}
func (m *countingMethod) Step(context.Context, []byte) ([]byte, bool, Result) {
	m.stepped++
	return nil, true, Denied(packet.NotAuthorized, "bad proof")
}

func TestEnhancedAuthenticationPassesTheGate(t *testing.T) {
	m := &countingMethod{}
	gate := &countingGate{limit: 3}
	s := NewService(ServiceOptions{Global: NewChain(nil, []Enhanced{m}, nil, nil), Gate: gate})
	var throttled int
	for range 20 {
		enh := s.Enhanced("tcp:default", "TEST")
		conv, err := enh.Begin(context.Background(), info("tcp:default"))
		if err != nil {
			t.Fatal(err)
		}
		_, done, res := conv.Step(context.Background(), []byte("guess"))
		if !done || res.Outcome != Deny {
			t.Fatal("a failed proof was not refused")
		}
		if res.DenyReason() == packet.ConnectionRateExceeded {
			throttled++
		}
	}
	if m.stepped != 3 || throttled != 17 {
		t.Fatalf("20 failed SCRAM-style exchanges: %d reached the method, %d throttled; want 3 and 17", m.stepped, throttled)
	}
	if s.Enhanced("tcp:default", "OTHER") != nil {
		t.Fatal("an unconfigured method was offered")
	}
}
