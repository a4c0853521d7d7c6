package scram

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	xscram "github.com/xdg-go/scram"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// users is a Lookup over a map, with an injectable backend failure.
type users struct {
	mu    sync.Mutex
	accts map[Hash]map[string]Account
	err   error
	calls int
}

func (u *users) LookupSCRAM(_ context.Context, h Hash, id string) (Account, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	if u.err != nil {
		return Account{}, false, u.err
	}
	a, ok := u.accts[h][id]
	return a, ok, nil
}

func (u *users) add(t *testing.T, id, password string, super bool) {
	t.Helper()
	for _, h := range []Hash{SHA256, SHA512} {
		c, err := Derive(context.Background(), h, []byte(password), 0)
		if err != nil {
			t.Fatal(err)
		}
		if u.accts[h] == nil {
			u.accts[h] = map[string]Account{}
		}
		u.accts[h][id] = Account{Credentials: c, Superuser: super}
	}
}

func newUsers(t *testing.T) *users {
	u := &users{accts: map[Hash]map[string]Account{}}
	u.add(t, "alice", "alice-pw", false)
	u.add(t, "root", "root-pw", true)
	u.add(t, "device-7", "dev-pw", false)
	return u
}

func mech(t *testing.T, h Hash, lookup Lookup, idType string) *Mechanism {
	t.Helper()
	m, err := New(Config{Hash: h, UserIDType: idType}, lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exchange drives one conversation with a client conversation, as the broker would with
// CONNECT, AUTH 0x18 and CONNACK. It records the messages.
type exchange struct {
	c1, s1, c2, s2 string
	res            authn.Result
	step           int  // the Step call that finished the conversation (1 or 2)
	serverProved   bool // the client verified the server's signature
}

func run(t *testing.T, m *Mechanism, info *clientinfo.Info, cc *xscram.ClientConversation) exchange {
	t.Helper()
	ctx := context.Background()
	conv, err := m.Begin(ctx, info)
	if err != nil {
		t.Fatal(err)
	}
	var x exchange
	if x.c1, err = cc.Step(""); err != nil {
		t.Fatal(err)
	}
	out, done, res := conv.Step(ctx, []byte(x.c1))
	if done {
		x.res, x.step = res, 1
		return x
	}
	if res.Outcome != authn.Ignore {
		t.Fatalf("unfinished step answered %v", res.Outcome)
	}
	x.s1 = string(out)
	if x.c2, err = cc.Step(x.s1); err != nil {
		t.Fatalf("client rejected server-first %q: %v", x.s1, err)
	}
	out, done, res = conv.Step(ctx, []byte(x.c2))
	if !done {
		t.Fatal("conversation not done after client-final")
	}
	x.res, x.step, x.s2 = res, 2, string(out)
	if res.Outcome == authn.Allow {
		if _, err := cc.Step(x.s2); err != nil {
			t.Fatalf("client rejected server-final: %v", err)
		}
		x.serverProved = cc.Valid()
	}
	return x
}

func client(t *testing.T, h Hash, user, password, authz string) *xscram.Client {
	t.Helper()
	c, err := h.gen().NewClient(user, password, authz)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantDeny(t *testing.T, res authn.Result) {
	t.Helper()
	if res.Outcome != authn.Deny || res.DenyReason() != packet.NotAuthorized {
		t.Fatalf("result %v reason %v (%s), want deny with NotAuthorized", res.Outcome, res.DenyReason(), res.Detail)
	}
}

func TestMethod(t *testing.T) {
	u := newUsers(t)
	if got := mech(t, SHA256, u, "").Method(); got != "SCRAM-SHA-256" {
		t.Fatal(got)
	}
	if got := mech(t, SHA512, u, "").Method(); got != "SCRAM-SHA-512" {
		t.Fatal(got)
	}
	for _, cfg := range []Config{{}, {Hash: "SHA-1"}, {Hash: SHA256, UserIDType: "email"}, {Hash: SHA256, Iterations: 1 << 30}} {
		if _, err := New(cfg, u, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Hash: SHA256}, nil, nil); err == nil {
		t.Error("New without lookup accepted")
	}
}

func TestSuccess(t *testing.T) {
	u := newUsers(t)
	for _, h := range []Hash{SHA256, SHA512} {
		for _, tc := range []struct {
			user, pw string
			super    bool
		}{{"alice", "alice-pw", false}, {"root", "root-pw", true}} {
			t.Run(h.Method()+"/"+tc.user, func(t *testing.T) {
				m := mech(t, h, u, "")
				x := run(t, m, &clientinfo.Info{Username: tc.user, ClientID: "c1"}, client(t, h, tc.user, tc.pw, "").NewConversation())
				if x.res.Outcome != authn.Allow || x.res.Superuser != tc.super || x.step != 2 {
					t.Fatalf("result %+v at step %d", x.res, x.step)
				}
				if !x.serverProved {
					t.Fatal("client could not verify the server (mutual authentication)")
				}
				if !strings.HasPrefix(x.s2, "v=") {
					t.Fatalf("server-final %q", x.s2)
				}
			})
		}
	}
}

// A client that supports channel binding but does not see it offered ("y") is fine: this
// server never offers SCRAM-PLUS.
func TestChannelBindingFlagY(t *testing.T) {
	m := mech(t, SHA256, newUsers(t), "")
	x := run(t, m, &clientinfo.Info{Username: "alice"}, client(t, SHA256, "alice", "alice-pw", "").NewConversationAdvertisingChannelBinding())
	if x.res.Outcome != authn.Allow {
		t.Fatalf("result %+v", x.res)
	}
}

func TestClientIDType(t *testing.T) {
	m := mech(t, SHA256, newUsers(t), UserIDClientID)
	x := run(t, m, &clientinfo.Info{ClientID: "device-7", Username: "whatever"}, client(t, SHA256, "device-7", "dev-pw", "").NewConversation())
	if x.res.Outcome != authn.Allow {
		t.Fatalf("result %+v", x.res)
	}
	// The username is not the identity with this id type.
	x = run(t, m, &clientinfo.Info{ClientID: "other", Username: "device-7"}, client(t, SHA256, "device-7", "dev-pw", "").NewConversation())
	wantDeny(t, x.res)
}

func TestWrongPassword(t *testing.T) {
	for _, h := range []Hash{SHA256, SHA512} {
		m := mech(t, h, newUsers(t), "")
		for _, pw := range []string{"alice-pW", "root-pw", "alice-pw ", "alice-p"} {
			x := run(t, m, &clientinfo.Info{Username: "alice"}, client(t, h, "alice", pw, "").NewConversation())
			wantDeny(t, x.res)
			if x.step != 2 || x.s2 != "" {
				t.Fatalf("%q: denied at step %d with out %q; want step 2 and no server signature", pw, x.step, x.s2)
			}
			proof := x.c2[strings.LastIndex(x.c2, "p=")+2:]
			if strings.Contains(x.res.Detail, proof) || strings.Contains(x.res.Detail, pw) {
				t.Fatalf("detail %q leaks the proof or password", x.res.Detail)
			}
		}
	}
}

// An unknown user gets a server-first message like a known user's (same iteration count,
// a salt that is stable per name) and is refused only after its proof.
func TestUnknownUser(t *testing.T) {
	u := newUsers(t)
	m := mech(t, SHA256, u, "")
	attempt := func(name string) exchange {
		return run(t, m, &clientinfo.Info{Username: name}, client(t, SHA256, name, "guess", "").NewConversation())
	}
	x1, x2, other := attempt("mallory"), attempt("mallory"), attempt("trent")
	for _, x := range []exchange{x1, x2, other} {
		wantDeny(t, x.res)
		if x.step != 2 {
			t.Fatalf("unknown user refused at step %d: the first step reveals existence", x.step)
		}
	}
	salt := func(s1 string) string { return field(t, s1, "s") }
	if salt(x1.s1) != salt(x2.s1) {
		t.Fatal("fake salt changes between attempts: reveals the user does not exist")
	}
	if salt(x1.s1) == salt(other.s1) {
		t.Fatal("two unknown users share a salt")
	}
	if field(t, x1.s1, "i") != "4096" {
		t.Fatalf("unknown user iterations %q", field(t, x1.s1, "i"))
	}
	raw, _ := base64.StdEncoding.DecodeString(salt(x1.s1))
	known := run(t, m, &clientinfo.Info{Username: "alice"}, client(t, SHA256, "alice", "x", "").NewConversation())
	rawKnown, _ := base64.StdEncoding.DecodeString(field(t, known.s1, "s"))
	if len(raw) != len(rawKnown) || field(t, known.s1, "i") != "4096" {
		t.Fatalf("fake challenge differs in shape from a real one: %q vs %q", x1.s1, known.s1)
	}
	// Another mechanism (another process) derives other fake salts: nothing to precompute.
	m2 := mech(t, SHA256, u, "")
	x3 := run(t, m2, &clientinfo.Info{Username: "mallory"}, client(t, SHA256, "mallory", "guess", "").NewConversation())
	if salt(x3.s1) == salt(x1.s1) {
		t.Fatal("fake salts are not keyed by a per-process secret")
	}
}

// field returns attribute k of a SCRAM message.
func field(t *testing.T, msg, k string) string {
	t.Helper()
	for _, f := range strings.Split(msg, ",") {
		if v, ok := strings.CutPrefix(f, k+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in %q", k, msg)
	return ""
}

// A client cannot authenticate as one user while CONNECT names another: authorization
// placeholders would then act on the wrong identity.
func TestUserNameMustMatchConnect(t *testing.T) {
	u := newUsers(t)
	m := mech(t, SHA256, u, "")
	for _, connectUser := range []string{"alice", "", "ROOT", "root "} {
		x := run(t, m, &clientinfo.Info{Username: connectUser}, client(t, SHA256, "root", "root-pw", "").NewConversation())
		wantDeny(t, x.res)
		if x.step != 1 {
			t.Fatalf("CONNECT user %q: refused only at step %d", connectUser, x.step)
		}
	}
}

func TestAuthzIDImpersonation(t *testing.T) {
	m := mech(t, SHA256, newUsers(t), "")
	x := run(t, m, &clientinfo.Info{Username: "alice"}, client(t, SHA256, "alice", "alice-pw", "root").NewConversation())
	wantDeny(t, x.res)
	// An authzid equal to the user name is harmless.
	x = run(t, m, &clientinfo.Info{Username: "alice"}, client(t, SHA256, "alice", "alice-pw", "alice").NewConversation())
	if x.res.Outcome != authn.Allow {
		t.Fatalf("authzid = user name: %+v", x.res)
	}
}

func TestChannelBindingRequiredRefused(t *testing.T) {
	m := mech(t, SHA256, newUsers(t), "")
	for _, cb := range []xscram.ChannelBinding{
		{Type: xscram.ChannelBindingTLSExporter, Data: bytes.Repeat([]byte{1}, 32)},
		{Type: xscram.ChannelBindingTLSServerEndpoint, Data: bytes.Repeat([]byte{2}, 32)},
		{Type: xscram.ChannelBindingTLSUnique, Data: bytes.Repeat([]byte{3}, 12)},
	} {
		x := run(t, m, &clientinfo.Info{Username: "alice"}, client(t, SHA256, "alice", "alice-pw", "").NewConversationWithChannelBinding(cb))
		wantDeny(t, x.res)
		if x.step != 1 {
			t.Fatalf("%s: refused at step %d", cb.Type, x.step)
		}
	}
	// A client-final whose channel binding data does not match its gs2 header ("n") is
	// refused even with a correct proof for the altered message.
	ctx := context.Background()
	conv, _ := m.Begin(ctx, &clientinfo.Info{Username: "alice"})
	cc := client(t, SHA256, "alice", "alice-pw", "").NewConversation()
	c1, _ := cc.Step("")
	s1, done, _ := conv.Step(ctx, []byte(c1))
	if done {
		t.Fatal("first step failed")
	}
	c2, _ := cc.Step(string(s1))
	tampered := strings.Replace(c2, "c=biws", "c="+base64.StdEncoding.EncodeToString([]byte("p=tls-unique,,xxxx")), 1)
	_, done, res := conv.Step(ctx, []byte(tampered))
	if !done {
		t.Fatal("not done")
	}
	wantDeny(t, res)
}

// A recorded client-final cannot be replayed: the server nonce is fresh every time.
func TestReplay(t *testing.T) {
	m := mech(t, SHA256, newUsers(t), "")
	info := &clientinfo.Info{Username: "alice"}
	ok := run(t, m, info, client(t, SHA256, "alice", "alice-pw", "").NewConversation())
	if ok.res.Outcome != authn.Allow {
		t.Fatalf("baseline: %+v", ok.res)
	}
	ctx := context.Background()
	conv, _ := m.Begin(ctx, info)
	s1, done, _ := conv.Step(ctx, []byte(ok.c1)) // the same client-first, same client nonce
	if done {
		t.Fatal("replayed client-first refused at once (fine, but unexpected)")
	}
	if string(s1) == ok.s1 {
		t.Fatal("server nonce repeated")
	}
	_, done, res := conv.Step(ctx, []byte(ok.c2))
	if !done {
		t.Fatal("not done")
	}
	wantDeny(t, res)
}

func TestOutOfOrderAndMalformed(t *testing.T) {
	u := newUsers(t)
	m := mech(t, SHA256, u, "")
	info := &clientinfo.Info{Username: "alice"}
	ctx := context.Background()
	good := run(t, m, info, client(t, SHA256, "alice", "alice-pw", "").NewConversation())

	// Each case feeds messages; every one but the last must be accepted (done=false),
	// and the last must end the conversation with Deny.
	big := "n,,n=alice,r=" + strings.Repeat("A", MaxMessageSize)
	tests := []struct {
		name string
		msgs []string
	}{
		{"client-final first", []string{good.c2}},
		{"server message first", []string{good.s1}},
		{"empty first", []string{""}},
		{"garbage first", []string{"hello"}},
		{"not UTF-8", []string{"n,,n=alice,r=\xff\xfe"}},
		{"oversized first", []string{big}},
		{"client-first twice", []string{"n,,n=alice,r=abc", "n,,n=alice,r=abc"}},
		{"oversized final", []string{"n,,n=alice,r=abc", "c=biws,r=abc,p=" + strings.Repeat("A", MaxMessageSize)}},
		{"empty final", []string{"n,,n=alice,r=abc", ""}},
		{"final without proof", []string{"n,,n=alice,r=abc", "c=biws,r=abc"}},
		{"unsupported extension", []string{"n,,m=ext,n=alice,r=abc"}},
		{"bad name encoding", []string{"n,,n=al=ZZice,r=abc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conv, err := m.Begin(ctx, info)
			if err != nil {
				t.Fatal(err)
			}
			var (
				done bool
				res  authn.Result
			)
			for i, msg := range tc.msgs {
				_, done, res = conv.Step(ctx, []byte(msg))
				if i < len(tc.msgs)-1 && done {
					t.Fatalf("message %d ended the conversation: %s", i, res.Detail)
				}
			}
			if !done {
				t.Fatal("conversation continues")
			}
			wantDeny(t, res)
			// Once ended, it stays ended, whatever comes next.
			for _, msg := range []string{good.c1, good.c2} {
				if _, done, res := conv.Step(ctx, []byte(msg)); !done || res.Outcome != authn.Deny {
					t.Fatalf("step after the end: done=%v %v", done, res.Outcome)
				}
			}
		})
	}

	// A message of exactly MaxMessageSize is not refused for its size.
	conv, _ := m.Begin(ctx, info)
	exact := "n,,n=alice,r=" + strings.Repeat("B", MaxMessageSize-len("n,,n=alice,r="))
	if _, done, res := conv.Step(ctx, []byte(exact)); done {
		t.Fatalf("message of exactly %d bytes refused: %s", MaxMessageSize, res.Detail)
	}

	// A finished successful conversation refuses more messages too.
	conv, _ = m.Begin(ctx, info)
	cc := client(t, SHA256, "alice", "alice-pw", "").NewConversation()
	c1, _ := cc.Step("")
	s1, _, _ := conv.Step(ctx, []byte(c1))
	c2, _ := cc.Step(string(s1))
	if _, done, res := conv.Step(ctx, []byte(c2)); !done || res.Outcome != authn.Allow {
		t.Fatalf("baseline: %v %+v", done, res)
	}
	if _, done, res := conv.Step(ctx, []byte(c2)); !done || res.Outcome != authn.Deny {
		t.Fatalf("step after success: done=%v %v", done, res.Outcome)
	}
}

func TestTamperedProof(t *testing.T) {
	m := mech(t, SHA512, newUsers(t), "")
	ctx := context.Background()
	conv, _ := m.Begin(ctx, &clientinfo.Info{Username: "root"})
	cc := client(t, SHA512, "root", "root-pw", "").NewConversation()
	c1, _ := cc.Step("")
	s1, _, _ := conv.Step(ctx, []byte(c1))
	c2, _ := cc.Step(string(s1))
	i := strings.LastIndex(c2, "p=") + 2
	proof, _ := base64.StdEncoding.DecodeString(c2[i:])
	proof[0] ^= 1
	_, done, res := conv.Step(ctx, []byte(c2[:i]+base64.StdEncoding.EncodeToString(proof)))
	if !done {
		t.Fatal("not done")
	}
	wantDeny(t, res)
}

func TestLookupFailure(t *testing.T) {
	u := newUsers(t)
	u.err = errors.New("database unavailable")
	m := mech(t, SHA256, u, "")
	x := run(t, m, &clientinfo.Info{Username: "alice"}, client(t, SHA256, "alice", "alice-pw", "").NewConversation())
	wantDeny(t, x.res)
}

func TestCancelledContext(t *testing.T) {
	u := newUsers(t)
	m := mech(t, SHA256, u, "")
	ctx, cancel := context.WithCancel(context.Background())
	conv, err := m.Begin(context.Background(), &clientinfo.Info{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	c1, _ := client(t, SHA256, "alice", "alice-pw", "").NewConversation().Step("")
	_, done, res := conv.Step(ctx, []byte(c1))
	if !done {
		t.Fatal("not done")
	}
	wantDeny(t, res)
	if u.calls != 0 {
		t.Fatal("credentials looked up after the context ended")
	}
	if _, err := m.Begin(ctx, nil); err == nil {
		t.Fatal("Begin without client info succeeded")
	}
}

// RFC 7677 §3 example, byte for byte: the server side interoperates with any correct
// client, not only the library's own.
func TestRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	cred, err := deriveWithSalt(SHA256, []byte("pencil"), salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	u := &users{accts: map[Hash]map[string]Account{SHA256: {"user": {Credentials: cred}}}}
	m := mech(t, SHA256, u, "")
	m.nonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	ctx := context.Background()
	conv, _ := m.Begin(ctx, &clientinfo.Info{Username: "user"})
	s1, done, _ := conv.Step(ctx, []byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if done || string(s1) != "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" {
		t.Fatalf("server-first %q", s1)
	}
	s2, done, res := conv.Step(ctx, []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if !done || res.Outcome != authn.Allow {
		t.Fatalf("final: done=%v %+v", done, res)
	}
	if string(s2) != "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server-final %q", s2)
	}
}

func TestDeriveAndEncoding(t *testing.T) {
	ctx := context.Background()
	for _, h := range []Hash{SHA256, SHA512} {
		c, err := Derive(ctx, h, []byte("pässword"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.Iterations != 4096 || len(c.Salt) != 16 || len(c.StoredKey) != h.Size() || len(c.ServerKey) != h.Size() {
			t.Fatalf("%s: %+v", h, c)
		}
		c2, _ := Derive(ctx, h, []byte("pässword"), 0)
		if bytes.Equal(c.Salt, c2.Salt) || bytes.Equal(c.StoredKey, c2.StoredKey) {
			t.Fatal("two derivations share a salt")
		}
		enc := c.Encode(h)
		if !strings.HasPrefix(enc, h.Method()+"$4096:") || strings.Contains(enc, "pässword") {
			t.Fatalf("encoding %q", enc)
		}
		h2, c3, err := ParseCredentials(enc)
		if err != nil || h2 != h || !bytes.Equal(c3.StoredKey, c.StoredKey) || !bytes.Equal(c3.ServerKey, c.ServerKey) ||
			!bytes.Equal(c3.Salt, c.Salt) || c3.Iterations != c.Iterations {
			t.Fatalf("round trip: %s %+v %v", h2, c3, err)
		}
		if c, err := Derive(ctx, h, []byte("pw"), 10000); err != nil || c.Iterations != 10000 {
			t.Fatalf("Derive(10000) = %+v, %v", c, err)
		}
	}
	for _, tc := range []struct {
		name  string
		h     Hash
		pw    string
		iters int
	}{
		{"too few iterations", SHA256, "pw", 1000},
		{"empty password", SHA256, "", 0},
		{"unknown hash", "SHA-1", "pw", 0},
		{"password SASLprep refuses", SHA256, "pw\u0007", 0},
	} {
		if _, err := Derive(ctx, tc.h, []byte(tc.pw), tc.iters); err == nil {
			t.Errorf("Derive %s accepted", tc.name)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Derive(cctx, SHA256, []byte("pw"), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Derive with a cancelled context: %v", err)
	}

	k32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	k64 := base64.StdEncoding.EncodeToString(make([]byte, 64))
	for _, bad := range []string{
		"",
		"SCRAM-SHA-256",
		"SCRAM-SHA-1$4096:c2FsdA==$" + k32 + ":" + k32,
		"SCRAM-SHA-256$4096:c2FsdA==$" + k32,
		"SCRAM-SHA-256$x:c2FsdA==$" + k32 + ":" + k32,
		"SCRAM-SHA-256$0:c2FsdA==$" + k32 + ":" + k32,
		"SCRAM-SHA-256$4096:$" + k32 + ":" + k32,
		"SCRAM-SHA-256$4096:c2FsdA$" + k32 + ":" + k32, // unpadded
		"SCRAM-SHA-256$4096:c2FsdA==$" + k64 + ":" + k64,
		"SCRAM-SHA-512$4096:c2FsdA==$" + k32 + ":" + k32,
		"SCRAM-SHA-256$4096:c2FsdA==$" + k32 + ":!!",
	} {
		if _, _, err := ParseCredentials(bad); err == nil {
			t.Errorf("ParseCredentials(%q) accepted", bad)
		}
	}
	for in, want := range map[string]Hash{"sha256": SHA256, "SHA-256": SHA256, "SCRAM-SHA-512": SHA512, "sha512": SHA512} {
		if h, err := ParseHash(in); err != nil || h != want {
			t.Errorf("ParseHash(%q) = %q, %v", in, h, err)
		}
	}
	if _, err := ParseHash("sha1"); err == nil {
		t.Error("ParseHash(sha1) accepted")
	}
}
