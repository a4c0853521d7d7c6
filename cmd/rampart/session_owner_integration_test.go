package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// connectAs sends c a persistent MQTT 5 CONNECT with credentials and returns the CONNACK.
func connectAs(t *testing.T, addr, id, user, pw string, cleanStart bool) (*rawClient, *packet.Connack) {
	t.Helper()
	c := dialRaw(t, addr, packet.V5)
	cp := v5Connect(id, cleanStart, 300)
	cp.HasUsername, cp.Username = true, user
	cp.HasPassword, cp.Password = true, []byte(pw)
	c.send(cp)
	return c, expect[*packet.Connack](c)
}

// TestSessionNotHandedToAnotherPrincipal is the attack of issue 13, break 1: with a JWT
// authenticator and no verify_claims the CONNECT's user name is free text. A client
// holding a valid token of its own connects with the victim's client id and user name and
// asks to resume: it must get a fresh session, not the victim's queued messages.
func TestSessionNotHandedToAnotherPrincipal(t *testing.T) {
	secret := strings.Repeat("s", 32)
	denyAll := writeFile(t, "acl.yaml", "rules:\n  - {permission: deny, who: all}\n")
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: jwt
    algorithm: hmac-based
    secret: env:JWT_TEST_SECRET
authorization:
  sources:
    - {type: file, path: %s}
`, strconv.Quote(denyAll))
	b := startBrokerEnv(t, writeConfig(t, cfg), []string{"JWT_TEST_SECRET=" + secret}, "tcp:default")
	addr := b.addr("tcp:default")
	sign := func(sub string, acl []map[string]any) string {
		claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
		if acl != nil {
			claims["acl"] = acl
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	victimTok := sign("victim", []map[string]any{{"permission": "allow", "action": "subscribe", "topic": "inbox/victim"}})
	senderTok := sign("sender", []map[string]any{{"permission": "allow", "action": "publish", "topic": "inbox/#"}})
	attackerTok := sign("attacker", []map[string]any{{"permission": "allow", "action": "publish", "topic": "attacker/#"}})

	victim, ack := connectAs(t, addr, "victim-dev", "victim", victimTok, true)
	if ack.ReasonCode != packet.Success {
		t.Fatalf("victim CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if got := subCode(victim, "inbox/victim", 1); got.IsError() {
		t.Fatalf("victim SUBACK 0x%02X", byte(got))
	}
	victim.disconnect()

	sender, ack := connectAs(t, addr, "sender", "sender", senderTok, true)
	if ack.ReasonCode != packet.Success {
		t.Fatalf("sender CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if got := pubCode(sender, "inbox/victim", false); got.IsError() {
		t.Fatalf("sender PUBACK 0x%02X", byte(got))
	}

	// The attacker's own SUBSCRIBE for the filter is refused ...
	probe, ack := connectAs(t, addr, "attacker-probe", "attacker", attackerTok, true)
	if ack.ReasonCode != packet.Success {
		t.Fatalf("attacker CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if got := subCode(probe, "inbox/victim", 1); got != packet.NotAuthorized {
		t.Fatalf("attacker SUBACK 0x%02X, want 0x87", byte(got))
	}
	probe.disconnect()
	// ... and presenting the victim's client id and user name gets no session either.
	thief, ack := connectAs(t, addr, "victim-dev", "victim", attackerTok, false)
	if ack.ReasonCode != packet.Success {
		t.Fatalf("attacker CONNACK 0x%02X", byte(ack.ReasonCode))
	}
	if ack.SessionPresent {
		t.Fatal("the victim's session was handed to another principal (session present)")
	}
	thief.expectNothing(500 * time.Millisecond)
	thief.disconnect()

	// The same principal still resumes its own session: a fresh token of the victim's
	// subject, with another user name text, is the same owner.
	owner, ack := connectAs(t, addr, "owner-dev", "owner", victimTok, true)
	if got := subCode(owner, "inbox/victim", 1); got.IsError() || ack.ReasonCode != packet.Success {
		t.Fatalf("owner CONNACK 0x%02X SUBACK 0x%02X", byte(ack.ReasonCode), byte(got))
	}
	owner.disconnect()
	if got := pubCode(sender, "inbox/victim", false); got.IsError() {
		t.Fatalf("sender PUBACK 0x%02X", byte(got))
	}
	again, ack := connectAs(t, addr, "owner-dev", "any text", victimTok, false)
	if !ack.SessionPresent {
		t.Fatal("the owner's own session was not resumed")
	}
	if p := expect[*packet.Publish](again); p.Topic != "inbox/victim" {
		t.Fatalf("got %s", describe(p))
	}
}

// revokeACL allows alice news/# until the rule is removed; admin may publish anything.
const revokeACL = `rules:
  - {permission: allow, who: {username: admin}}
  - {permission: allow, who: {username: alice}, action: subscribe, topics: ["news/#", "alerts/#"]}
  - {permission: deny, who: all}
`

// TestSessionRightsRevokedOffline is issue 13, break 2: a subscription revoked while its
// session was offline, across a restart or by a live reload, delivers nothing on resume,
// neither what was queued before the change nor what was published after it.
func TestSessionRightsRevokedOffline(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(acl, []byte(revokeACL), 0o600); err != nil {
		t.Fatal(err)
	}
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nadmin,admin-pw,false\nalice,alice-pw,false\n")
	cfg := testConfig(filepath.Join(dir, "data"), "sync") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authorization:
  sources:
    - {type: file, path: %s}
`, strconv.Quote(users), strconv.Quote(acl))
	cfgPath := writeConfig(t, cfg)
	revoke := func() {
		t.Helper()
		changed := strings.Replace(revokeACL, `["news/#", "alerts/#"]`, `["alerts/#"]`, 1)
		if err := os.WriteFile(acl, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("across a restart", func(t *testing.T) {
		b := startBroker(t, cfgPath, "tcp:default")
		alice, _ := connectAs(t, b.addr("tcp:default"), "alice-1", "alice", "alice-pw", true)
		if got := subCode(alice, "news/#", 1); got.IsError() {
			t.Fatalf("SUBACK 0x%02X", byte(got))
		}
		if got := subCode(alice, "alerts/#", 1); got.IsError() {
			t.Fatalf("SUBACK 0x%02X", byte(got))
		}
		alice.disconnect()
		admin := login(t, b, "admin-1", "admin")
		if got := pubCode(admin, "news/before", false); got.IsError() {
			t.Fatalf("PUBACK 0x%02X", byte(got))
		}
		admin.disconnect()
		b.signal(syscall.SIGTERM)
		if code := b.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}

		revoke()
		b = startBroker(t, cfgPath, "tcp:default")
		admin = login(t, b, "admin-2", "admin")
		for _, topic := range []string{"news/after", "alerts/after"} {
			if got := pubCode(admin, topic, false); got.IsError() {
				t.Fatalf("PUBACK 0x%02X", byte(got))
			}
		}
		alice, ack := connectAs(t, b.addr("tcp:default"), "alice-1", "alice", "alice-pw", false)
		if !ack.SessionPresent {
			t.Fatal("alice's session was not restored")
		}
		// Only the subscription still allowed delivers.
		if p := expect[*packet.Publish](alice); p.Topic != "alerts/after" {
			t.Fatalf("got %s, want alerts/after only", describe(p))
		}
		alice.expectNothing(500 * time.Millisecond)
		b.signal(syscall.SIGTERM)
		b.wait(10 * time.Second)
	})

	t.Run("by a live reload", func(t *testing.T) {
		if err := os.WriteFile(acl, []byte(revokeACL), 0o600); err != nil {
			t.Fatal(err)
		}
		b := startBroker(t, cfgPath, "tcp:default")
		alice, _ := connectAs(t, b.addr("tcp:default"), "alice-2", "alice", "alice-pw", true)
		if got := subCode(alice, "news/#", 1); got.IsError() {
			t.Fatalf("SUBACK 0x%02X", byte(got))
		}
		alice.disconnect()
		admin := login(t, b, "admin-3", "admin")
		if got := pubCode(admin, "news/queued", false); got.IsError() {
			t.Fatalf("PUBACK 0x%02X", byte(got))
		}
		revoke()
		b.signal(syscall.SIGHUP)
		waitLog(t, b, "subscription removed: no longer authorized")
		alice, ack := connectAs(t, b.addr("tcp:default"), "alice-2", "alice", "alice-pw", false)
		if !ack.SessionPresent {
			t.Fatal("alice's session is gone")
		}
		alice.expectNothing(500 * time.Millisecond)
	})
}

// waitLog waits until the broker's log holds text.
func waitLog(t *testing.T, b *brokerProc, text string) {
	t.Helper()
	deadline := time.Now().Add(waitPacket)
	for !strings.Contains(b.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q", text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSubscriptionWithdrawnAfterSourceTTL is issue 13, break 3: an HTTP authorization
// service that stops granting a subscription never tells the broker; the broker asks
// again once the source's ttl has passed and withdraws the live subscription.
func TestSubscriptionWithdrawnAfterSourceTTL(t *testing.T) {
	var grant atomic.Bool
	grant.Store(true)
	var asked atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct{ Action, Topic, Username string }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		asked.Add(1)
		result := "deny"
		switch {
		case q.Username == "admin":
			result = "allow"
		case q.Action == "subscribe" && q.Topic == "feed/#" && grant.Load():
			result = "allow"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"result": result})
	}))
	t.Cleanup(svc.Close)
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nadmin,admin-pw,false\nalice,alice-pw,false\n")
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authorization:
  sources:
    - type: http
      ttl: 1s
      url: %s
      body: {username: "${username}", action: "${action}", topic: "${topic}"}
`, strconv.Quote(users), strconv.Quote(svc.URL))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	alice := login(t, b, "alice-feed", "alice")
	if got := subCode(alice, "feed/#", 0); got.IsError() {
		t.Fatalf("SUBACK 0x%02X", byte(got))
	}
	admin := login(t, b, "admin-feed", "admin")
	if got := pubCode(admin, "feed/1", false); got.IsError() {
		t.Fatalf("PUBACK 0x%02X", byte(got))
	}
	expect[*packet.Publish](alice)

	grant.Store(false)
	// Within about the ttl (and the re-check interval) the subscription is withdrawn.
	waitLog(t, b, "subscription removed: no longer authorized")
	alice.drain(200 * time.Millisecond)
	if got := pubCode(admin, "feed/2", false); got.IsError() {
		t.Fatalf("PUBACK 0x%02X", byte(got))
	}
	alice.expectNothing(500 * time.Millisecond)
}
