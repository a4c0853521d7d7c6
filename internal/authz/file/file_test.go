package file

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

var (
	pub   = authz.Action{Kind: authz.ActPublish}
	pubQ1 = authz.Action{Kind: authz.ActPublish, QoS: 1}
	pubQ2 = authz.Action{Kind: authz.ActPublish, QoS: 2}
	pubR  = authz.Action{Kind: authz.ActPublish, Retain: true}
	sub   = authz.Action{Kind: authz.ActSubscribe}
)

func writeACL(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, src string) (*Source, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acl.yaml")
	writeACL(t, path, src)
	s, err := New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

type check struct {
	info  *clientinfo.Info
	a     authz.Action
	topic string
	want  authz.Decision
}

func runChecks(t *testing.T, s authz.Source, checks []check) {
	t.Helper()
	for _, c := range checks {
		if got := s.ForClient(c.info).Authorize(context.Background(), c.a, c.topic); got != c.want {
			t.Errorf("client %q user %q %+v %q: got %v, want %v", c.info.ClientID, c.info.Username, c.a, c.topic, got, c.want)
		}
	}
}

func dev(id string) *clientinfo.Info { return &clientinfo.Info{ClientID: id, Username: "device"} }
func usr(name string) *clientinfo.Info {
	return &clientinfo.Info{ClientID: "c-" + name, Username: name}
}

// The shipped default file keeps every client to least privilege.
func TestShippedACL(t *testing.T) {
	s, err := New(filepath.Join("..", "..", "..", "etc", "acl.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "file" || !s.UsesPlaceholders() {
		t.Errorf("name %q, placeholders %v", s.Name(), s.UsesPlaceholders())
	}
	admin := usr("admin")
	runChecks(t, s, []check{
		// A device owns its own namespace.
		{dev("A"), pub, "devices/A/telemetry", authz.Allow},
		{dev("A"), pubQ1, "devices/A/telemetry", authz.Allow},
		{dev("A"), pubQ2, "devices/A/telemetry", authz.Deny},
		{dev("A"), sub, "devices/A/commands", authz.Allow},
		{dev("A"), sub, "devices/A/telemetry", authz.Deny},
		{dev("A"), pub, "devices/A/commands", authz.Deny},
		// ... and nothing of another device's.
		{dev("A"), sub, "devices/B/commands", authz.Deny},
		{dev("A"), pub, "devices/B/telemetry", authz.Deny},
		{dev("A"), sub, "devices/+/commands", authz.Deny},
		{dev("A"), sub, "devices/#", authz.Deny},
		{dev("A"), sub, "devices/B/#", authz.Deny},
		// Client ids that try to be wildcards or span levels get nothing.
		{dev("+"), sub, "devices/+/commands", authz.Deny},
		{dev("#"), sub, "devices/#", authz.Deny},
		{dev("B/commands"), sub, "devices/B/commands", authz.Deny},
		// Normal users cannot watch the world.
		{usr("alice"), sub, "#", authz.Deny},
		{usr("alice"), sub, "+/#", authz.Deny},
		{usr("alice"), sub, "$SYS/#", authz.Deny},
		{usr("alice"), sub, "$SYS/broker/uptime", authz.Deny},
		{usr("alice"), pub, "anything", authz.Deny},
		// The operator can.
		{admin, sub, "#", authz.Allow},
		{admin, sub, "+/#", authz.Allow},
		{admin, sub, "$SYS/#", authz.Allow},
		{admin, sub, "devices/+/telemetry", authz.Allow},
		{admin, pub, "devices/B/commands", authz.Deny},
	})
}

func TestLoadAndRuleSemantics(t *testing.T) {
	s, _ := load(t, `rules:
  - {permission: allow, who: {username: alice}, topics: ["u/alice/#"]}
  - {permission: allow, who: {clientid: c1}, action: publish, topics: ["c/c1"]}
  - {permission: allow, who: {ipaddr: 10.0.0.0/8}, action: subscribe, topics: ["lan/#"]}
  - {permission: allow, who: {cert_common_name: meter-7}, topics: ["cn/meter-7"]}
  - {permission: allow, who: {username_re: "^ops-"}, action: subscribe, topics: ["ops/+/alerts"]}
  - {permission: allow, who: {clientid_re: "^gw-[0-9]+$"}, topics: ["gw/up"]}
  - {permission: allow, who: {client_attrs: {tenant: t1}}, topics: ["tenant/t1/#"]}
  - {permission: allow, who: {and: [{username: bob}, {ipaddr: 192.168.0.0/16}]}, topics: ["bob/lan"]}
  - {permission: allow, who: {or: [{username: carol}, {clientid: carol-phone}]}, topics: ["carol/#"]}
  - {permission: allow, topics: ["eq plain/#"]}
  - {permission: deny, action: publish, topics: ["r/#"], retain: true}
  - {permission: allow, action: publish, topics: ["r/#", "q/#"], qos: [0, 1]}
  - {permission: deny, topics: ["first/x"]}
  - {permission: allow, topics: ["first/#"]}
  - {permission: allow, topics: ["own/${username}/${clientid}"]}
  - {permission: deny}
`)
	peer := func(ip string) netip.AddrPort { return netip.MustParseAddrPort(ip + ":1000") }
	runChecks(t, s, []check{
		{usr("alice"), sub, "u/alice/x", authz.Allow},
		{usr("alicia"), sub, "u/alice/x", authz.Deny},
		{&clientinfo.Info{ClientID: "c1"}, pub, "c/c1", authz.Allow},
		{&clientinfo.Info{ClientID: "c1"}, sub, "c/c1", authz.Deny},
		{&clientinfo.Info{Peer: peer("10.1.1.1")}, sub, "lan/+/x", authz.Allow},
		{&clientinfo.Info{Peer: peer("11.1.1.1")}, sub, "lan/+/x", authz.Deny},
		{&clientinfo.Info{Cert: &clientinfo.Cert{CN: "meter-7"}}, pub, "cn/meter-7", authz.Allow},
		{&clientinfo.Info{Username: "meter-7"}, pub, "cn/meter-7", authz.Deny},
		{usr("ops-1"), sub, "ops/eu/alerts", authz.Allow},
		{usr("ops-1"), sub, "ops/#", authz.Deny},
		{&clientinfo.Info{ClientID: "gw-12"}, pub, "gw/up", authz.Allow},
		{&clientinfo.Info{ClientID: "gw-12a"}, pub, "gw/up", authz.Deny},
		{&clientinfo.Info{Attrs: map[string]string{"tenant": "t1"}}, sub, "tenant/t1/#", authz.Allow},
		{&clientinfo.Info{Attrs: map[string]string{"tenant": "t2"}}, sub, "tenant/t1/#", authz.Deny},
		{&clientinfo.Info{Username: "bob", Peer: peer("192.168.3.4")}, pub, "bob/lan", authz.Allow},
		{&clientinfo.Info{Username: "bob", Peer: peer("10.3.3.4")}, pub, "bob/lan", authz.Deny},
		{&clientinfo.Info{ClientID: "carol-phone"}, sub, "carol/x", authz.Allow},
		{usr("carol"), sub, "carol/x", authz.Allow},
		{usr("dave"), sub, "carol/x", authz.Deny},
		// eq: the filter text itself.
		{usr("x"), sub, "plain/#", authz.Allow},
		{usr("x"), sub, "plain/a", authz.Deny},
		{usr("x"), pub, "plain/a", authz.Deny},
		// QoS and retain.
		{usr("x"), pubR, "r/1", authz.Deny},
		{usr("x"), pub, "r/1", authz.Allow},
		{usr("x"), pubQ1, "q/1", authz.Allow},
		{usr("x"), pubQ2, "q/1", authz.Deny},
		// First match wins.
		{usr("x"), pub, "first/x", authz.Deny},
		{usr("x"), sub, "first/+", authz.Deny}, // could receive first/x
		{usr("x"), pub, "first/y", authz.Allow},
		// Placeholders.
		{&clientinfo.Info{Username: "u", ClientID: "c"}, pub, "own/u/c", authz.Allow},
		{&clientinfo.Info{Username: "u", ClientID: "c"}, pub, "own/u/d", authz.Deny},
		{&clientinfo.Info{Username: "u", ClientID: "#"}, sub, "own/u/#", authz.Deny},
		{&clientinfo.Info{Username: "u", ClientID: "+"}, sub, "own/u/+", authz.Deny},
		{&clientinfo.Info{Username: "u", ClientID: "+"}, pub, "own/u/x", authz.Deny},
		{&clientinfo.Info{Username: "u", ClientID: "x/y"}, pub, "own/u/x/y", authz.Deny},
		{&clientinfo.Info{Username: "", ClientID: "c"}, pub, "own//c", authz.Deny},
	})
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "missing.yaml"), nil); err == nil {
		t.Error("missing file loaded")
	}
	if _, err := New(dir, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	path := filepath.Join(dir, "bad.yaml")
	writeACL(t, path, "rules:\n  - {permission: allow}\n  - {permission: allow, topics: [\"a/#/b\"]}\n")
	_, err := New(path, nil)
	var re *authz.RuleError
	if err == nil || !strings.Contains(err.Error(), path) || !errors.As(err, &re) || re.Index != 1 || re.Line != 3 {
		t.Errorf("broken file: %v", err)
	}
}

func TestReload(t *testing.T) {
	var logs bytes.Buffer
	var lmu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &lmu}, nil))
	path := filepath.Join(t.TempDir(), "acl.yaml")
	writeACL(t, path, "rules:\n  - {permission: allow, topics: [a]}\n")
	s, err := New(path, log)
	if err != nil {
		t.Fatal(err)
	}
	var changes atomic.Int32
	s.OnChange(func() {
		// The new rules are in force when the listeners run.
		if got := s.ForClient(usr("x")).Authorize(context.Background(), pub, "b"); got != authz.Allow {
			t.Errorf("in OnChange: b is %v", got)
		}
		changes.Add(1)
	})
	before := s.ForClient(usr("x"))

	// A broken file keeps the rules in force and says where it is broken.
	writeACL(t, path, "rules:\n  - {permission: allow, topics: [b]}\n  - {permission: allow, whom: all}\n")
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 3: rule 1") {
		t.Fatalf("broken reload: %v", err)
	}
	lmu.Lock()
	logged := logs.String()
	lmu.Unlock()
	if !strings.Contains(logged, "rules in force stay") || !strings.Contains(logged, "line 3: rule 1") {
		t.Errorf("not logged: %s", logged)
	}
	runChecks(t, s, []check{{usr("x"), pub, "a", authz.Allow}, {usr("x"), pub, "b", authz.NoMatch}})
	if changes.Load() != 0 {
		t.Error("OnChange ran for a broken file")
	}

	// A good file replaces them and announces it.
	writeACL(t, path, "rules:\n  - {permission: allow, topics: [b]}\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if changes.Load() != 1 {
		t.Errorf("OnChange ran %d times", changes.Load())
	}
	runChecks(t, s, []check{{usr("x"), pub, "a", authz.NoMatch}, {usr("x"), pub, "b", authz.Allow}})
	// A view taken before keeps its answers; the chain asks again after OnChange.
	if got := before.Authorize(context.Background(), pub, "a"); got != authz.Allow {
		t.Errorf("old view: %v", got)
	}

	// The same content again is no change.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if changes.Load() != 1 {
		t.Errorf("OnChange ran for unchanged content")
	}

	// A file that disappears keeps the rules too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("missing file reloaded")
	}
	runChecks(t, s, []check{{usr("x"), pub, "b", authz.Allow}})
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Watch notices a rewrite even when size and modification time do not change, skips a
// broken version and picks up the next good one.
func TestWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl.yaml")
	writeACL(t, path, "rules:\n  - {permission: allow, topics: [a]}\n")
	s, err := New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.racy = time.Hour // deterministic: however slow the machine, the mtime stays "recent"
	changed := make(chan struct{}, 4)
	s.OnChange(func() { changed <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(30 * time.Second):
			t.Fatalf("no change seen: %s", what)
		}
	}
	st, _ := os.Stat(path)
	writeACL(t, path, "rules:\n  - {permission: allow, topics: [b]}\n") // same size
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	wait("same-size rewrite")
	runChecks(t, s, []check{{usr("x"), pub, "b", authz.Allow}, {usr("x"), pub, "a", authz.NoMatch}})

	writeACL(t, path, "rules:\n  - {permission: allow, topics: [\"#/x\"]}\n")
	s.poll(time.Millisecond) // a look of Watch's, made here so the broken version is seen
	runChecks(t, s, []check{{usr("x"), pub, "b", authz.Allow}})
	writeACL(t, path+".tmp", "rules:\n  - {permission: allow, topics: [c]}\n")
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	wait("rename over the file")
	runChecks(t, s, []check{{usr("x"), pub, "c", authz.Allow}, {usr("x"), pub, "b", authz.NoMatch}})
}

// Decisions run while the file is reloaded over and over (run with -race).
func TestConcurrentReload(t *testing.T) {
	files := []string{
		"rules:\n  - {permission: allow, topics: [\"devices/${clientid}/#\"]}\n  - {permission: deny}\n",
		"rules:\n  - {permission: deny, topics: [\"devices/+/secret\"]}\n  - {permission: allow, topics: [\"devices/#\"]}\n",
	}
	s, path := load(t, files[0])
	var notified atomic.Int32
	s.OnChange(func() { notified.Add(1) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			info := dev("d" + string(rune('0'+g)))
			for ctx.Err() == nil {
				c := s.ForClient(info)
				// Under either file, a device may publish to its own telemetry and may
				// never read another device's secret.
				if got := c.Authorize(ctx, pub, "devices/"+info.ClientID+"/telemetry"); got != authz.Allow {
					t.Errorf("own telemetry: %v", got)
					return
				}
				if got := c.Authorize(ctx, sub, "devices/other/secret"); got != authz.Deny {
					t.Errorf("other's secret: %v", got)
					return
				}
				_ = s.UsesPlaceholders()
			}
		})
	}
	for i := range 50 {
		writeACL(t, path, files[(i+1)%2])
		if err := s.Reload(); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
	if notified.Load() != 50 {
		t.Errorf("OnChange ran %d times for 50 changes", notified.Load())
	}
}
