package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/xdg-go/scram"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// authConnect sends a CONNECT with credentials and returns the CONNACK reason.
func authConnect(t *testing.T, addr string, v packet.Version, id, user, pw string) (packet.ReasonCode, *rawClient) {
	t.Helper()
	c := dialRaw(t, addr, v)
	cp := &packet.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 60}
	if user != "" {
		cp.HasUsername, cp.Username = true, user
	}
	if pw != "" {
		cp.HasPassword, cp.Password = true, []byte(pw)
	}
	c.send(cp)
	ack := expect[*packet.Connack](c)
	return ack.ReasonCode, c
}

// writeFile writes a file in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthnBuiltInDatabase(t *testing.T) {
	dataDir := t.TempDir()
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nalice,wonderland,false\nroot,toor,true\n")
	cfg := testConfig(dataDir, "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authentication_settings:
  failure_limit: {delay: 0s}
`, strconv.Quote(users))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	addr := b.addr("tcp:default")

	tests := []struct {
		name     string
		v        packet.Version
		user, pw string
		want     packet.ReasonCode
	}{
		{"right password", packet.V5, "alice", "wonderland", packet.Success},
		{"wrong password", packet.V5, "root", "guess", packet.BadUserNameOrPassword},
		{"unknown user", packet.V5, "mallory", "x", packet.NotAuthorized},
		{"anonymous", packet.V5, "", "", packet.NotAuthorized},
		{"3.1.1 right password", packet.V311, "alice", "wonderland", packet.Success},
		{"3.1.1 wrong password", packet.V311, "alice", "x", packet.ConnRefusedBadUsernamePassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, c := authConnect(t, addr, tc.v, "bi-"+tc.name, tc.user, tc.pw)
			c.close()
			if got != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(got), byte(tc.want))
			}
		})
	}

	t.Run("mosquitto_pub with and without the right password", func(t *testing.T) {
		if _, err := exec.LookPath("mosquitto_pub"); err != nil {
			if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
				t.Fatal("mosquitto_pub not on PATH; REQUIRE_TEST_SERVICES is set")
			}
			t.Skip("mosquitto_pub not on PATH (scripts/test-services.sh install)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		port := b.port("tcp:default")
		ok := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5",
			"-u", "alice", "-P", "wonderland", "-t", "auth/ok", "-m", "hi", "-q", "1")
		if out, err := ok.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub with the right password: %v\n%s", err, out)
		}
		bad := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5",
			"-u", "alice", "-P", "nope", "-t", "auth/ok", "-m", "hi", "-q", "1")
		out, err := bad.CombinedOutput()
		if err == nil {
			t.Fatalf("mosquitto_pub with a wrong password succeeded:\n%s", out)
		}
		if !strings.Contains(strings.ToLower(string(out)), "bad user name or password") {
			t.Fatalf("mosquitto_pub says %q, want bad user name or password", out)
		}
	})
}

func TestAuthnHashUpgradeOnLogin(t *testing.T) {
	dataDir := t.TempDir()
	// An EMQX export: salted SHA-256 with the salt as prefix.
	const salt = "s4lt"
	hash := sha256Hex(salt + "legacy-pw")
	users := writeFile(t, "users.csv", "user_id,password_hash,salt,is_superuser\nold,"+hash+","+salt+",false\n")
	cfg := testConfig(dataDir, "sync") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    bootstrap_type: hash
    password_hash_algorithm: {name: sha256, salt_position: prefix}
`, strconv.Quote(users))
	path := writeConfig(t, cfg)
	b := startBroker(t, path, "tcp:default")
	if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "up-1", "old", "legacy-pw"); got != packet.Success {
		t.Fatalf("imported user: CONNACK 0x%02X", byte(got))
	} else {
		c.close()
	}
	b.signal(os.Interrupt)
	if code := b.wait(exitTimeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	db, err := controldb.Open(context.Background(), filepath.Join(dataDir, controlDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.Users().Get(context.Background(), controldb.Username, "old")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Fatalf("stored hash after login %q, want it upgraded to argon2id", u.PasswordHash[:min(len(u.PasswordHash), 12)])
	}
	// And the upgraded hash still lets the user in, after a restart.
	b2 := startBroker(t, path, "tcp:default")
	if got, c := authConnect(t, b2.addr("tcp:default"), packet.V5, "up-2", "old", "legacy-pw"); got != packet.Success {
		t.Fatalf("after the upgrade: CONNACK 0x%02X", byte(got))
	} else {
		c.close()
	}
}

func TestAuthnBruteForceIsThrottled(t *testing.T) {
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nvictim,correct horse,false\n")
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authentication_settings:
  failure_limit: {max_failures_per_user: 5, delay: 10ms, max_delay: 50ms, cooldown: 1h}
`, strconv.Quote(users))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	var checked, throttled int
	for i := range 50 {
		got, c := authConnect(t, b.addr("tcp:default"), packet.V5, fmt.Sprintf("bf-%d", i), "victim", fmt.Sprintf("guess-%d", i))
		c.close()
		switch got {
		case packet.BadUserNameOrPassword:
			checked++
		case packet.ConnectionRateExceeded:
			throttled++
		default:
			t.Fatalf("guess %d: CONNACK 0x%02X", i, byte(got))
		}
	}
	if checked > 5 || throttled < 45 {
		t.Fatalf("50 guesses: %d reached the password check, %d throttled; want at most 5 checked", checked, throttled)
	}
	// In the cool-down even the right password is refused without a check: the attacker
	// learns nothing from a guess that happens to be right.
	if got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "bf-right", "victim", "correct horse"); got != packet.ConnectionRateExceeded {
		t.Fatalf("right password during cool-down: CONNACK 0x%02X, want 0x9F", byte(got))
	} else {
		c.close()
	}
}

func TestAuthnListenerPolicies(t *testing.T) {
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nbob,builder,false\n")
	cfg := fmt.Sprintf(`node: {data_dir: %s, durability: none}
sys_topics: {sys_msg_interval: 0}
listeners:
  tcp:
    default:
      bind: 127.0.0.1:0
      enable_authn: quick_deny_anonymous
    devices:
      bind: 127.0.0.1:0
      authentication:
        - mechanism: cinfo
          checks:
            - is_match: ['clientid matches "^dev-[0-9]+$"']
              result: allow
            - is_match: ['true']
              result: deny
    open:
      bind: 127.0.0.1:0
      enable_authn: false
  ws:
    default: {enable: false, bind: 127.0.0.1:0}
authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
`, strconv.Quote(t.TempDir()), strconv.Quote(users))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default", "tcp:devices", "tcp:open")
	tests := []struct {
		name, listener, id, user, pw string
		want                         packet.ReasonCode
	}{
		{"quick deny: no user name", "tcp:default", "q1", "", "", packet.NotAuthorized},
		{"quick deny: user name passes to the chain", "tcp:default", "q2", "bob", "builder", packet.Success},
		{"own chain: matching client id", "tcp:devices", "dev-42", "", "", packet.Success},
		{"own chain: other client id", "tcp:devices", "laptop", "bob", "builder", packet.NotAuthorized},
		{"own chain replaces the global one", "tcp:devices", "dev-x", "bob", "builder", packet.NotAuthorized},
		{"enable_authn false", "tcp:open", "anyone", "", "", packet.Success},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, c := authConnect(t, b.addr(tc.listener), packet.V5, tc.id, tc.user, tc.pw)
			c.close()
			if got != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(got), byte(tc.want))
			}
		})
	}
}

func TestAuthnJWT(t *testing.T) {
	secret := strings.Repeat("k", 32)
	cfg := testConfig(t.TempDir(), "none") + `authentication:
  - mechanism: jwt
    algorithm: hmac-based
    secret: env:JWT_TEST_SECRET
    verify_claims: {sub: "${clientid}"}
`
	b := startBrokerEnv(t, writeConfig(t, cfg), []string{"JWT_TEST_SECRET=" + secret}, "tcp:default")
	addr := b.addr("tcp:default")
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	tests := []struct {
		name, id, token string
		want            packet.ReasonCode
	}{
		{"valid", "dev-1", sign(jwt.MapClaims{"sub": "dev-1", "exp": now.Add(time.Hour).Unix()}), packet.Success},
		{"expired", "dev-1", sign(jwt.MapClaims{"sub": "dev-1", "exp": now.Add(-time.Hour).Unix()}), packet.BadUserNameOrPassword},
		{"another client's token", "dev-2", sign(jwt.MapClaims{"sub": "dev-1", "exp": now.Add(time.Hour).Unix()}), packet.BadUserNameOrPassword},
		{"no exp", "dev-1", sign(jwt.MapClaims{"sub": "dev-1"}), packet.BadUserNameOrPassword},
		{"alg none", "dev-1", noneToken(t, jwt.MapClaims{"sub": "dev-1", "exp": now.Add(time.Hour).Unix()}), packet.BadUserNameOrPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, c := authConnect(t, addr, packet.V5, tc.id, "token", tc.token)
			c.close()
			if got != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(got), byte(tc.want))
			}
		})
	}
	t.Run("a live client is disconnected when its token expires", func(t *testing.T) {
		tok := sign(jwt.MapClaims{"sub": "dev-exp", "exp": time.Now().Add(2 * time.Second).Unix()})
		got, c := authConnect(t, addr, packet.V5, "dev-exp", "token", tok)
		if got != packet.Success {
			t.Fatalf("CONNACK 0x%02X", byte(got))
		}
		p, ok := c.next(waitPacket)
		if d, isD := p.(*packet.Disconnect); !ok || !isD || d.ReasonCode != packet.NotAuthorized {
			t.Fatalf("got %v (open %v), want DISCONNECT 0x87 at expiry", describe(p), ok)
		}
	})
}

// noneToken builds an unsigned token (alg none), as an attacker would.
func noneToken(t *testing.T, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthnHTTPService(t *testing.T) {
	var calls atomic.Int32
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		switch {
		case body["username"] == "carol" && body["password"] == "pw":
			_, _ = w.Write([]byte(`{"result":"allow","is_superuser":false}`))
		case body["username"] == "carol":
			_, _ = w.Write([]byte(`{"result":"deny"}`))
		default:
			_, _ = w.Write([]byte(`{"result":"ignore"}`))
		}
	}))
	defer svc.Close()
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: http
    url: %s/auth
    body: {username: "${username}", password: "${password}", clientid: "${clientid}"}
    request_timeout: 2s
`, svc.URL)
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	addr := b.addr("tcp:default")
	for _, tc := range []struct {
		name, user, pw string
		want           packet.ReasonCode
	}{
		{"allow", "carol", "pw", packet.Success},
		{"deny", "carol", "wrong", packet.BadUserNameOrPassword},
		{"ignore: nobody else knows the client", "dave", "x", packet.NotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, c := authConnect(t, addr, packet.V5, "http-"+tc.name, tc.user, tc.pw)
			c.close()
			if got != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(got), byte(tc.want))
			}
		})
	}
	t.Run("service down: refused (fail closed)", func(t *testing.T) {
		svc.Close()
		got, c := authConnect(t, addr, packet.V5, "http-down", "carol", "pw")
		c.close()
		if got == packet.Success {
			t.Fatal("a client was let in while the authentication service was down")
		}
	})
}

// scramConnect runs a SCRAM exchange over a raw client and returns the CONNACK.
func scramConnect(t *testing.T, c *rawClient, method string, hash scram.HashGeneratorFcn, user, pw string) *packet.Connack {
	t.Helper()
	client, err := hash.NewClient(user, pw, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	cp := &packet.Connect{Version: packet.V5, ClientID: "scram-" + user, CleanStart: true, KeepAlive: 60,
		HasUsername: true, Username: user}
	cp.Properties.AuthMethod, cp.Properties.AuthData = method, []byte(first)
	cp.Properties.Set(packet.PropAuthMethod)
	cp.Properties.Set(packet.PropAuthData)
	c.send(cp)
	p, ok := c.next(waitPacket)
	if !ok {
		t.Fatal("closed after CONNECT")
	}
	a, isAuth := p.(*packet.Auth)
	if !isAuth {
		return p.(*packet.Connack)
	}
	final, err := conv.Step(string(a.Properties.AuthData))
	if err != nil {
		t.Fatal(err)
	}
	reply := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	reply.Properties.AuthMethod, reply.Properties.AuthData = method, []byte(final)
	reply.Properties.Set(packet.PropAuthMethod)
	reply.Properties.Set(packet.PropAuthData)
	c.send(reply)
	ack := expect[*packet.Connack](c)
	if ack.ReasonCode == packet.Success {
		if _, err := conv.Step(string(ack.Properties.AuthData)); err != nil {
			t.Fatalf("the server's final SCRAM message does not verify: %v", err)
		}
	}
	return ack
}

func TestAuthnSCRAM(t *testing.T) {
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nerin,s3cure pass,false\n")
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
  - mechanism: scram
    backend: built_in_database
    algorithm: sha256
  - mechanism: scram
    backend: built_in_database
    algorithm: sha512
`, strconv.Quote(users))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	addr := b.addr("tcp:default")
	for _, tc := range []struct {
		name, method string
		hash         scram.HashGeneratorFcn
		pw           string
		want         packet.ReasonCode
	}{
		{"SHA-256", "SCRAM-SHA-256", scram.SHA256, "s3cure pass", packet.Success},
		{"SHA-512", "SCRAM-SHA-512", scram.SHA512, "s3cure pass", packet.Success},
		{"wrong password", "SCRAM-SHA-256", scram.SHA256, "guess", packet.NotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr, packet.V5)
			if ack := scramConnect(t, c, tc.method, tc.hash, "erin", tc.pw); ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(tc.want))
			}
		})
	}
	t.Run("re-authentication on the live connection", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V5)
		if ack := scramConnect(t, c, "SCRAM-SHA-256", scram.SHA256, "erin", "s3cure pass"); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK 0x%02X", byte(ack.ReasonCode))
		}
		client, _ := scram.SHA256.NewClient("erin", "s3cure pass", "")
		conv := client.NewConversation()
		first, _ := conv.Step("")
		a := &packet.Auth{ReasonCode: packet.ReAuthenticate}
		a.Properties.AuthMethod, a.Properties.AuthData = "SCRAM-SHA-256", []byte(first)
		a.Properties.Set(packet.PropAuthMethod)
		a.Properties.Set(packet.PropAuthData)
		c.send(a)
		challenge := expect[*packet.Auth](c)
		final, err := conv.Step(string(challenge.Properties.AuthData))
		if err != nil {
			t.Fatal(err)
		}
		reply := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		reply.Properties.AuthMethod, reply.Properties.AuthData = "SCRAM-SHA-256", []byte(final)
		reply.Properties.Set(packet.PropAuthMethod)
		reply.Properties.Set(packet.PropAuthData)
		c.send(reply)
		if done := expect[*packet.Auth](c); done.ReasonCode != packet.Success {
			t.Fatalf("re-authentication: AUTH 0x%02X", byte(done.ReasonCode))
		}
	})
	t.Run("an unknown method gets 0x8C", func(t *testing.T) {
		c := dialRaw(t, addr, packet.V5)
		cp := v5Connect("scram-unknown", true, 0)
		cp.Properties.AuthMethod = "SCRAM-SHA-1"
		cp.Properties.Set(packet.PropAuthMethod)
		c.send(cp)
		if ack := expect[*packet.Connack](c); ack.ReasonCode != packet.BadAuthenticationMethod {
			t.Fatalf("CONNACK 0x%02X, want 0x8C", byte(ack.ReasonCode))
		}
	})
}

// TestAuthnConnectStorm connects 500 clients at once against argon2id: the hashes run at
// most hash_concurrency at a time, so they all get in and the broker's memory stays
// bounded by that concurrency, not by the number of clients.
func TestAuthnConnectStorm(t *testing.T) {
	const clients = 500
	var rows strings.Builder
	rows.WriteString("user_id,password,is_superuser\n")
	for i := range clients {
		fmt.Fprintf(&rows, "storm-%d,pw-%d,false\n", i, i)
	}
	users := writeFile(t, "users.csv", rows.String())
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authentication_settings:
  hash_concurrency: 2
  timeout: 5m
`, strconv.Quote(users))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	addr := b.addr("tcp:default")
	var wg sync.WaitGroup
	var failed atomic.Int32
	var mu sync.Mutex
	var conns []*rawClient
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, addr, packet.V5)
			cp := &packet.Connect{Version: packet.V5, ClientID: fmt.Sprintf("storm-%d", i), CleanStart: true, KeepAlive: 300,
				HasUsername: true, Username: fmt.Sprintf("storm-%d", i), HasPassword: true, Password: []byte(fmt.Sprintf("pw-%d", i))}
			c.send(cp)
			p, ok := c.next(5 * time.Minute)
			if ack, isAck := p.(*packet.Connack); !ok || !isAck || ack.ReasonCode != packet.Success {
				failed.Add(1)
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d clients were not let in", n, clients)
	}
	// argon2id at 8 MiB, two at a time, plus the broker itself: far below what 500
	// unbounded hashes (4 GiB) would take.
	if hwm := peakRSS(t, b.cmd.Process.Pid); hwm > 1<<30 {
		t.Fatalf("peak memory %d MiB during the storm", hwm>>20)
	}
	for _, c := range conns {
		c.close()
	}
}

// peakRSS reads a process's peak resident set size from /proc (0 where unavailable).
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("peak memory not available: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// sha256Hex is the hex SHA-256 of s, as EMQX stores salted hashes.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// proxyV2 builds a PROXY protocol v2 header for a TCP4 client, with the SSL TLV a
// TLS-terminating load balancer adds: verified says whether it verified the client's
// certificate, cn is the certificate's common name.
func proxyV2(src, dst [4]byte, sport, dport uint16, verified bool, cn string) []byte {
	ssl := []byte{0x01 | 0x02, 0, 0, 0, 0} // client used TLS and sent a certificate; verify result
	if !verified {
		ssl[4] = 1
	}
	ssl = append(ssl, 0x22, byte(len(cn)>>8), byte(len(cn)))
	ssl = append(ssl, cn...)
	body := append(append([]byte{}, src[:]...), dst[:]...)
	body = append(body, byte(sport>>8), byte(sport), byte(dport>>8), byte(dport))
	body = append(body, 0x20, byte(len(ssl)>>8), byte(len(ssl)))
	body = append(body, ssl...)
	h := []byte("\r\n\r\n\x00\r\nQUIT\n")
	h = append(h, 0x21, 0x11, byte(len(body)>>8), byte(len(body)))
	return append(h, body...)
}

// TestAuthnX509ThroughTrustedProxy: a TLS-terminating load balancer in front of a plain
// TCP listener passes the verified client certificate's CN in its PROXY v2 header; the
// x509 authenticator lets the client in when its client id equals that CN.
func TestAuthnX509ThroughTrustedProxy(t *testing.T) {
	cfg := fmt.Sprintf(`node: {data_dir: %s, durability: none}
sys_topics: {sys_msg_interval: 0}
listeners:
  tcp:
    default:
      bind: 127.0.0.1:0
      proxy_protocol: true
      proxy_protocol_trusted: ["127.0.0.1/32"]
  ws:
    default: {enable: false, bind: 127.0.0.1:0}
authentication:
  - mechanism: x509
    require_clientid_match: cn
    precondition: 'listener == "tcp:default"'
`, strconv.Quote(t.TempDir()))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	for _, tc := range []struct {
		name, id, cn string
		verified     bool
		want         packet.ReasonCode
	}{
		{"client id equals the verified CN", "sensor-7", "sensor-7", true, packet.Success},
		{"client id is someone else's", "sensor-8", "sensor-7", true, packet.NotAuthorized},
		{"certificate the proxy did not verify", "sensor-7", "sensor-7", false, packet.NotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, b.addr("tcp:default"), packet.V5)
			hdr := proxyV2([4]byte{203, 0, 113, 9}, [4]byte{127, 0, 0, 1}, 40000, 8883, tc.verified, tc.cn)
			if _, err := c.nc.Write(hdr); err != nil {
				t.Fatal(err)
			}
			c.send(&packet.Connect{Version: packet.V5, ClientID: tc.id, CleanStart: true, KeepAlive: 60})
			if ack := expect[*packet.Connack](c); ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(tc.want))
			}
		})
	}
}
