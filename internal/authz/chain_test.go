package authz

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// mapSource answers from a topic -> decision map that tests change at run time, counting
// the questions that reach it.
type mapSource struct {
	mu      sync.Mutex
	answers map[string]Decision
	asked   atomic.Int64
	notify  []func()
}

func (m *mapSource) Name() string                            { return "map" }
func (m *mapSource) ForClient(*clientinfo.Info) ClientSource { return m }
func (m *mapSource) OnChange(fn func())                      { m.notify = append(m.notify, fn) }
func (m *mapSource) UsesPlaceholders() bool                  { return false }
func (m *mapSource) Authorize(_ context.Context, _ Action, t string) Decision {
	m.asked.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.answers[t]
}

func (m *mapSource) set(t string, d Decision) {
	m.mu.Lock()
	m.answers[t] = d
	m.mu.Unlock()
	for _, fn := range m.notify {
		fn()
	}
}

var pubAct = Action{Kind: ActPublish}

func TestChainOrder(t *testing.T) {
	first := &mapSource{answers: map[string]Decision{"a": Allow, "b": NoMatch, "c": Deny}}
	second := &mapSource{answers: map[string]Decision{"b": Deny, "d": Allow}}
	ch := New(Options{Sources: []Source{first, second}})
	c := ch.ForClient(&clientinfo.Info{ClientID: "x"}, nil)
	for topic, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "nothing": false} {
		if got := c.Authorize(context.Background(), pubAct, topic); got != want {
			t.Errorf("%s: %v, want %v (first source decides; no_match deny)", topic, got, want)
		}
	}
	open := New(Options{Sources: []Source{first}, NoMatch: Allow}).ForClient(&clientinfo.Info{}, nil)
	if !open.Authorize(context.Background(), pubAct, "nothing") {
		t.Error("no_match allow did not allow")
	}
}

func TestChainSuperuserAndAuthnRules(t *testing.T) {
	src := &mapSource{answers: map[string]Decision{"t": Deny, "u": Allow}}
	ch := New(Options{Sources: []Source{src}})
	info := &clientinfo.Info{ClientID: "x", Superuser: true}
	if !ch.ForClient(info, nil).Authorize(context.Background(), pubAct, "t") {
		t.Error("a superuser was refused")
	}
	info = &clientinfo.Info{ClientID: "y"}
	rules := []Rule{{Permission: PermAllow, Action: ActPublish, Topics: []string{"t"}}, {Permission: PermDeny, Topics: []string{"u"}}}
	c := ch.ForClient(info, rules)
	if !c.Authorize(context.Background(), pubAct, "t") || c.Authorize(context.Background(), pubAct, "u") {
		t.Error("the rules returned by authentication are not checked before the sources")
	}
	broken := ch.ForClient(info, []Rule{{Permission: PermAllow, Topics: []string{"a/#/b"}}})
	if broken.Authorize(context.Background(), pubAct, "u") {
		t.Error("a client whose authentication rules do not compile was allowed")
	}
}

func TestChainCacheNeverStale(t *testing.T) {
	src := &mapSource{answers: map[string]Decision{"t": Allow}}
	ch := New(Options{Sources: []Source{src}, Cache: CacheOptions{Enable: true, MaxSize: 4, TTL: time.Hour}})
	var rechecks atomic.Int64
	ch.OnChange(func() { rechecks.Add(1) })
	c := ch.ForClient(&clientinfo.Info{ClientID: "x"}, nil)
	for range 5 {
		if !c.Authorize(context.Background(), pubAct, "t") {
			t.Fatal("refused")
		}
	}
	if n := src.asked.Load(); n != 1 {
		t.Fatalf("source asked %d times for one cached decision", n)
	}
	// The rule changes: the very next question gets the new answer, TTL or not.
	src.set("t", Deny)
	if c.Authorize(context.Background(), pubAct, "t") {
		t.Fatal("a cached allow outlived the rule change")
	}
	if rechecks.Load() != 1 {
		t.Fatal("the change listeners did not run")
	}
	// The cache stays bounded.
	for i := range 100 {
		c.Authorize(context.Background(), pubAct, string(rune('a'+i%26))+"x")
	}
	c.mu.Lock()
	n := len(c.cache.entries)
	c.mu.Unlock()
	if n > 4 {
		t.Fatalf("cache holds %d decisions, max_size 4", n)
	}
}

func TestChainCacheExcludes(t *testing.T) {
	src := &mapSource{answers: map[string]Decision{"live/x": Allow}}
	ch := New(Options{Sources: []Source{src}, Cache: CacheOptions{Enable: true, MaxSize: 8, TTL: time.Hour, Excludes: []string{"live/#"}}})
	c := ch.ForClient(&clientinfo.Info{}, nil)
	c.Authorize(context.Background(), pubAct, "live/x")
	c.Authorize(context.Background(), pubAct, "live/x")
	if src.asked.Load() != 2 {
		t.Fatal("an excluded topic was cached")
	}
}

func TestCheckIdentity(t *testing.T) {
	withPH := New(Options{Sources: []Source{&placeholderSource{}}})
	for id, bad := range map[string]bool{"dev-1": false, "#": true, "a/+": true, "x/y": true, "nul\x00": true} {
		err := withPH.CheckIdentity(&clientinfo.Info{ClientID: id})
		if (err != nil) != bad {
			t.Errorf("client id %q: %v", id, err)
		}
	}
	without := New(Options{Sources: []Source{&mapSource{answers: map[string]Decision{}}}})
	if err := without.CheckIdentity(&clientinfo.Info{ClientID: "a/+"}); err != nil {
		t.Errorf("no placeholder rules, yet %v", err)
	}
}

type placeholderSource struct{ mapSource }

func (*placeholderSource) UsesPlaceholders() bool { return true }

// viewCounter counts the views the chain asks for and answers from a shared map.
type viewCounter struct {
	mapSource
	views atomic.Int64
}

func (v *viewCounter) ForClient(*clientinfo.Info) ClientSource {
	v.views.Add(1)
	return &v.mapSource
}

func TestChainSourceTTL(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		wait      time.Duration
		wantViews int64 // views read after the second question
		wantAsked int64 // questions that reached the source
	}{
		{"ttl 0: read at every question, never cached", 0, 0, 2, 2},
		{"within ttl: one view, decision cached", time.Hour, 0, 1, 1},
		{"after ttl: view read again, cache forgotten", 20 * time.Millisecond, 40 * time.Millisecond, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &viewCounter{mapSource: mapSource{answers: map[string]Decision{"a": Allow}}}
			ch := New(Options{Sources: []Source{WithTTL(src, tc.ttl)},
				Cache: CacheOptions{Enable: true, MaxSize: 8, TTL: time.Hour}})
			c := ch.ForClient(&clientinfo.Info{ClientID: "x"}, nil)
			if !c.Authorize(context.Background(), pubAct, "a") {
				t.Fatal("first question denied")
			}
			time.Sleep(tc.wait)
			// The rule is deleted on the server, which announces nothing.
			src.mu.Lock()
			delete(src.answers, "a")
			src.mu.Unlock()
			got := c.Authorize(context.Background(), pubAct, "a")
			if views := src.views.Load(); views != tc.wantViews {
				t.Errorf("views read %d, want %d", views, tc.wantViews)
			}
			if asked := src.asked.Load(); asked != tc.wantAsked {
				t.Errorf("questions to the source %d, want %d", asked, tc.wantAsked)
			}
			if want := tc.wantAsked == 1; got != want {
				t.Errorf("second answer %v, want %v (deleted rule %s)", got, want,
					map[bool]string{true: "still cached within the ttl", false: "gone"}[want])
			}
		})
	}
}

// TestChainSourceTTLIndependent: each source's view is read again on its own schedule; a
// source read at every question (ttl 0) does not postpone a slower source's re-read.
func TestChainSourceTTLIndependent(t *testing.T) {
	fast := &viewCounter{mapSource: mapSource{answers: map[string]Decision{}}}
	slow := &snapshotSource{viewCounter{mapSource: mapSource{answers: map[string]Decision{"a": Allow}}}}
	ch := New(Options{Sources: []Source{WithTTL(fast, 0), WithTTL(slow, 20*time.Millisecond)}})
	c := ch.ForClient(&clientinfo.Info{ClientID: "x"}, nil)
	if !c.Authorize(context.Background(), pubAct, "a") {
		t.Fatal("first question denied")
	}
	// The rule is deleted on the slow source's server; questions keep coming faster than
	// its ttl. It must stop applying once the ttl has passed.
	slow.mu.Lock()
	delete(slow.answers, "a")
	slow.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for c.Authorize(context.Background(), pubAct, "a") {
		if time.Now().After(deadline) {
			t.Fatalf("the slow source was never read again (%d views; the fast one %d)", slow.views.Load(), fast.views.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if slow.views.Load() < 2 {
		t.Errorf("slow source views %d, want it read again", slow.views.Load())
	}
}

// snapshotSource reads its rules when a view is made, as the database sources do: a
// change on the server shows only in a view made after it.
type snapshotSource struct{ viewCounter }

func (s *snapshotSource) ForClient(*clientinfo.Info) ClientSource {
	s.views.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := &mapSource{answers: map[string]Decision{}}
	for k, v := range s.answers {
		snap.answers[k] = v
	}
	return snap
}
