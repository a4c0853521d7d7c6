package cinfo

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{"valid", Config{Checks: []Check{{IsMatch: []string{"true"}, Result: "allow"}}}, ""},
		{"no checks", Config{}, "at least one check"},
		{"unknown result", Config{Checks: []Check{{IsMatch: []string{"true"}, Result: "permit"}}}, `checks[0].result: "permit"`},
		{"empty result", Config{Checks: []Check{{IsMatch: []string{"true"}}}}, "checks[0].result"},
		{"result is case sensitive", Config{Checks: []Check{{IsMatch: []string{"true"}, Result: "Allow"}}}, "checks[0].result"},
		{"no expressions", Config{Checks: []Check{
			{IsMatch: []string{"true"}, Result: "deny"},
			{Result: "allow"},
		}}, "checks[1].is_match: at least one"},
		{"blank expression", Config{Checks: []Check{{IsMatch: []string{"true", "  "}, Result: "allow"}}}, "checks[0].is_match[1]: expression is empty"},
		{"expression at the limit", Config{Checks: []Check{{IsMatch: []string{padTrue(MaxExpressionLen)}, Result: "allow"}}}, ""},
		{"expression over the limit", Config{Checks: []Check{{IsMatch: []string{padTrue(MaxExpressionLen + 1)}, Result: "allow"}}}, "longer than the limit of 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			checkErr(t, err, tt.wantErr)
		})
	}
}

// padTrue returns the expression "true" padded with spaces to n bytes.
func padTrue(n int) string { return "true" + strings.Repeat(" ", n-4) }

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		expr    string
		wantErr string
	}{
		{"syntax error", `clientid ==`, "parse"},
		{"unknown field", `clientidd == "x"`, "unknown name clientidd"},
		{"the password is not in the environment", `password == "secret"`, "unknown name password"},
		{"nor through $env", `$env.password == "secret"`, "password"},
		{"not a boolean", `clientid`, "expected bool"},
		{"type mismatch", `peerport == "1883"`, "mismatched types"},
		{"invalid regex_match pattern", `regex_match(clientid, "(")`, "invalid regular expression"},
		{"regex_match pattern from client input", `regex_match(clientid, username)`, "pattern of regex_match must be a string literal"},
		{"regex_match pattern built by concatenation", `regex_match(clientid, "^" + "dev")`, "must be a string literal"},
		{"regex_match pattern through a pipe", `clientid | regex_match(username)`, "must be a string literal"},
		{"matches pattern through a variable", `let p = username; clientid matches p`, "right side of matches must be a string literal"},
		{"not matches pattern from client input", `clientid not matches username`, "must be a string literal"},
		{"regex_match arity", `regex_match(clientid)`, "takes 2 arguments"},
		{"invalid matches pattern", `clientid matches "[a-"`, "invalid regular expression"},
		{"matches pattern from client input", `clientid matches username`, "right side of matches must be a string literal"},
		{"range operator", `len(1..100000000) > 0`, "range operator"},
		{"nested iteration", `all(split(clientid, ""), all(split(clientid, ""), # != ""))`, "inside another one's predicate"},
		{"repeat is disabled", `len(repeat(clientid, 1000000)) > 0`, "repeat"},
		{"unknown function", `system("id") == ""`, "system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Checks: []Check{
				{IsMatch: []string{"true"}, Result: "ignore"},
				{IsMatch: []string{"true", tt.expr}, Result: "allow"},
			}}
			_, err := New(cfg, nil)
			checkErr(t, err, tt.wantErr)
			// The error names the check, the expression and its text.
			checkErr(t, err, "checks[1].is_match[1]")
			checkErr(t, err, tt.expr)
		})
	}
}

// client describes a connecting client for the tests.
type client struct {
	clientID string
	username string
	password []byte
	peer     string
	listener string
	version  byte
	cert     *clientinfo.Cert
	attrs    map[string]string
}

func (c client) info() *clientinfo.Info {
	info := &clientinfo.Info{
		ClientID:        c.clientID,
		Username:        c.username,
		Listener:        c.listener,
		ProtocolVersion: c.version,
		Cert:            c.cert,
		Attrs:           c.attrs,
	}
	if c.peer != "" {
		info.Peer = netip.MustParseAddrPort(c.peer)
	}
	return info
}

func (c client) cred() *authn.Credentials {
	return &authn.Credentials{Username: c.username, Password: c.password}
}

func devCert(cn string) *clientinfo.Cert {
	return &clientinfo.Cert{
		CN:       cn,
		DN:       "CN=" + cn + ",O=Acme",
		DNSNames: []string{cn + ".devices.example.com"},
		URIs:     []string{"spiffe://example.com/device/" + cn},
		SHA256:   "ab12",
		Issuer:   "CN=Acme Device CA",
		Serial:   "42",
	}
}

func TestAuthenticate(t *testing.T) {
	// Rule sets an operator would write.
	var (
		clientIDIsCN = []Check{
			{IsMatch: []string{"cert_present", `cert_cn != ""`, "clientid == cert_cn"}, Result: "allow"},
			{IsMatch: []string{"true"}, Result: "deny"},
		}
		devPrefix = []Check{
			{IsMatch: []string{`regex_match(clientid, "^dev-[a-z0-9]+$")`}, Result: "allow"},
			{IsMatch: []string{"true"}, Result: "deny"},
		}
		devPrefixMatches = []Check{
			{IsMatch: []string{`clientid matches "^dev-"`, `clientid | regex_match("^dev-")`, `clientid not matches "^dev-$"`}, Result: "ignore"},
			{IsMatch: []string{"true"}, Result: "deny"},
		}
		noEmptyUsername = []Check{
			{IsMatch: []string{`username == ""`}, Result: "deny"},
		}
		listenerRule = []Check{
			{IsMatch: []string{`listener == "ssl:default"`, "!cert_present"}, Result: "deny"},
			{IsMatch: []string{`listener startsWith "tcp:"`, `!(peerhost startsWith "10.")`}, Result: "deny"},
			{IsMatch: []string{`listener == "ssl:default"`}, Result: "allow"},
		}
		literalAdmin = []Check{
			{IsMatch: []string{`clientid == "admin"`}, Result: "allow"},
		}
		sanRule = []Check{
			{IsMatch: []string{`any(cert_san_dns, # endsWith ".devices.example.com")`, `"spiffe://example.com/device/" + clientid in cert_san_uri`}, Result: "allow"},
		}
		sanIndex = []Check{ // no length guard: fails closed without a SAN
			{IsMatch: []string{`cert_san_dns[0] == clientid + ".devices.example.com"`}, Result: "allow"},
		}
		attrRule = []Check{
			{IsMatch: []string{`client_attrs["role"] == "gateway"`}, Result: "allow"},
			{IsMatch: []string{`client_attrs["role"] == ""`}, Result: "ignore"},
		}
		protoRule = []Check{
			{IsMatch: []string{`protocol == "mqtt" && proto_ver < 5`}, Result: "deny"},
			{IsMatch: []string{`!password_present`}, Result: "deny"},
			{IsMatch: []string{`peerport > 0`, `cert_sha256 == "" || cert_issuer == "CN=Acme Device CA"`}, Result: "allow"},
		}
		stopAtIgnore = []Check{
			{IsMatch: []string{`hasPrefix(clientid, "legacy-")`}, Result: "ignore"},
			{IsMatch: []string{"true"}, Result: "allow"},
		}
		ifElse = []Check{
			{IsMatch: []string{`clientid == cert_cn ? true : false`, `lower(cert_dn) contains "o=acme"`}, Result: "allow"},
		}
	)
	const injected = `" || true || "`

	tests := []struct {
		name   string
		checks []Check
		client client
		want   authn.Outcome
	}{
		{"clientid equals CN", clientIDIsCN, client{clientID: "dev-1", cert: devCert("dev-1")}, authn.Allow},
		{"clientid differs from CN", clientIDIsCN, client{clientID: "dev-2", cert: devCert("dev-1")}, authn.Deny},
		{"no certificate", clientIDIsCN, client{clientID: "dev-1"}, authn.Deny},
		{"empty clientid and no certificate", clientIDIsCN, client{}, authn.Deny},
		{"empty clientid against a certificate without CN", clientIDIsCN, client{cert: devCert("")}, authn.Deny},
		{"clientid injection against CN rule", clientIDIsCN, client{clientID: injected, cert: devCert("dev-1")}, authn.Deny},

		{"dev prefix", devPrefix, client{clientID: "dev-42"}, authn.Allow},
		{"no dev prefix", devPrefix, client{clientID: "prod-42"}, authn.Deny},
		{"prefix not at the start", devPrefix, client{clientID: "xdev-42"}, authn.Deny},
		{"prefix after a newline", devPrefix, client{clientID: "evil\ndev-42"}, authn.Deny},
		{"trailing newline", devPrefix, client{clientID: "dev-42\n"}, authn.Deny},
		{"regex metacharacters in clientid are data", devPrefix, client{clientID: "dev-.*"}, authn.Deny},
		{"expression text in clientid is data", devPrefix, client{clientID: `dev-1" || true || "`}, authn.Deny},
		{"matches operator", devPrefixMatches, client{clientID: "dev-1"}, authn.Ignore},
		{"matches operator mismatch", devPrefixMatches, client{clientID: "de-1"}, authn.Deny},

		{"empty username", noEmptyUsername, client{clientID: "c"}, authn.Deny},
		{"username present", noEmptyUsername, client{clientID: "c", username: "u"}, authn.Ignore},
		{"whitespace username is not empty", noEmptyUsername, client{username: " "}, authn.Ignore},

		{"ssl listener without certificate", listenerRule, client{listener: "ssl:default", peer: "10.0.0.1:5000"}, authn.Deny},
		{"ssl listener with certificate", listenerRule, client{listener: "ssl:default", cert: devCert("d")}, authn.Allow},
		{"tcp listener outside 10/8", listenerRule, client{listener: "tcp:default", peer: "192.0.2.1:5000"}, authn.Deny},
		{"tcp listener inside 10/8", listenerRule, client{listener: "tcp:default", peer: "10.1.2.3:5000"}, authn.Ignore},
		{"tcp listener, mapped IPv6 peer", listenerRule, client{listener: "tcp:default", peer: "[::ffff:10.1.2.3]:5000"}, authn.Ignore},
		{"listener name is exact", listenerRule, client{listener: "ssl:default2", peer: "10.0.0.1:1"}, authn.Ignore},

		{"literal admin", literalAdmin, client{clientID: "admin"}, authn.Allow},
		{"injection against a literal", literalAdmin, client{clientID: injected}, authn.Ignore},
		{"quote injection against a literal", literalAdmin, client{clientID: `admin" || "`}, authn.Ignore},
		{"injection in username", literalAdmin, client{clientID: "x", username: `") || true || ("`}, authn.Ignore},

		{"SAN rule", sanRule, client{clientID: "d1", cert: devCert("d1")}, authn.Allow},
		{"SAN rule, other device", sanRule, client{clientID: "d2", cert: devCert("d1")}, authn.Ignore},
		{"SAN rule, no certificate", sanRule, client{clientID: "d1"}, authn.Ignore},
		{"SAN index with SAN", sanIndex, client{clientID: "d1", cert: devCert("d1")}, authn.Allow},
		{"SAN index without SAN fails closed", sanIndex, client{clientID: "d1", cert: &clientinfo.Cert{CN: "d1"}}, authn.Deny},
		{"SAN index without certificate fails closed", sanIndex, client{clientID: "d1"}, authn.Deny},

		{"attribute", attrRule, client{attrs: map[string]string{"role": "gateway"}}, authn.Allow},
		{"other attribute", attrRule, client{attrs: map[string]string{"role": "sensor"}}, authn.Ignore},
		{"no attributes", attrRule, client{}, authn.Ignore},

		{"MQTT 3.1.1 denied", protoRule, client{version: 4, password: []byte("x"), peer: "127.0.0.1:1"}, authn.Deny},
		{"no password denied", protoRule, client{version: 5, peer: "127.0.0.1:1"}, authn.Deny},
		{"empty password is a password", protoRule, client{version: 5, password: []byte{}, peer: "127.0.0.1:1"}, authn.Allow},
		{"no peer port", protoRule, client{version: 5, password: []byte("x")}, authn.Ignore},

		{"ignore stops the walk", stopAtIgnore, client{clientID: "legacy-1"}, authn.Ignore},
		{"later check reached", stopAtIgnore, client{clientID: "new-1"}, authn.Allow},
		{"conditional and builtins", ifElse, client{clientID: "d", cert: devCert("d")}, authn.Allow},
		{"conditional and builtins mismatch", ifElse, client{clientID: "e", cert: devCert("d")}, authn.Ignore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(Config{Checks: tt.checks}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res := a.Authenticate(context.Background(), tt.client.info(), tt.client.cred())
			if res.Outcome != tt.want {
				t.Fatalf("outcome %v (%s), want %v", res.Outcome, res.Detail, tt.want)
			}
			if res.Outcome == authn.Deny && res.DenyReason() != packet.NotAuthorized {
				t.Fatalf("deny reason %v, want NotAuthorized", res.DenyReason())
			}
			if res.Outcome == authn.Allow && (res.Superuser || res.ACL != nil) {
				t.Fatalf("allow grants more than authentication: %+v", res)
			}
		})
	}
}

func TestDetailNamesTheCheck(t *testing.T) {
	a, err := New(Config{Checks: []Check{
		{IsMatch: []string{`clientid == "a"`}, Result: "allow"},
		{IsMatch: []string{`clientid == "b"`}, Result: "deny"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("hunter2")
	for id, want := range map[string]string{"a": "checks[0] allowed", "b": "checks[1] denied", "c": "no check matched"} {
		res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: id}, &authn.Credentials{Password: secret})
		if !strings.Contains(res.Detail, want) {
			t.Errorf("clientid %q: detail %q, want it to contain %q", id, res.Detail, want)
		}
		if strings.Contains(res.Detail, string(secret)) {
			t.Errorf("detail %q leaks the password", res.Detail)
		}
	}
}

func TestEvaluationErrorDetailIsBounded(t *testing.T) {
	a, err := New(Config{Checks: []Check{
		{IsMatch: []string{`cert_san_dns[0] == clientid`}, Result: "allow"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 65535)
	res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: long}, &authn.Credentials{})
	if res.Outcome != authn.Deny || res.DenyReason() != packet.NotAuthorized {
		t.Fatalf("got %+v, want Deny NotAuthorized", res)
	}
	if len(res.Detail) > 300 {
		t.Fatalf("detail is %d bytes long", len(res.Detail))
	}
}

func TestDoneContextDenies(t *testing.T) {
	a, err := New(Config{Checks: []Check{{IsMatch: []string{"true"}, Result: "allow"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := a.Authenticate(ctx, &clientinfo.Info{}, &authn.Credentials{})
	if res.Outcome != authn.Deny {
		t.Fatalf("outcome %v, want Deny", res.Outcome)
	}
}

// A long hostile client id against every kind of allowed construct completes (the
// evaluation is linear) and never matches by accident.
func TestHostileInputIsBounded(t *testing.T) {
	a, err := New(Config{Checks: []Check{
		{IsMatch: []string{
			`all(split(clientid, ""), # in ["a", "b"]) && regex_match(clientid, "^(a|b)*c$") && clientid matches "(a+)+$"`,
		}, Result: "allow"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32767) // 65534 bytes, the classic catastrophic-backtracking shape
	res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: id}, &authn.Credentials{})
	if res.Outcome != authn.Ignore {
		t.Fatalf("outcome %v (%s), want Ignore", res.Outcome, res.Detail)
	}
}

func TestNewEnv(t *testing.T) {
	c := client{
		clientID: "c1", username: "u1", password: []byte("pw"), peer: "[2001:db8::1]:8883",
		listener: "ssl:default", version: 5, cert: devCert("c1"), attrs: map[string]string{"k": "v"},
	}
	e := NewEnv(c.info(), c.cred())
	if e.ClientID != "c1" || e.Username != "u1" || !e.PasswordPresent || e.PeerHost != "2001:db8::1" ||
		e.PeerPort != 8883 || e.Listener != "ssl:default" || e.Protocol != "mqtt" || e.ProtoVer != 5 ||
		!e.CertPresent || e.CertCN != "c1" || e.CertDN != "CN=c1,O=Acme" || len(e.CertSANDNS) != 1 ||
		len(e.CertSANURI) != 1 || e.CertSHA256 != "ab12" || e.CertIssuer != "CN=Acme Device CA" ||
		e.ClientAttrs["k"] != "v" {
		t.Fatalf("unexpected env %+v", e)
	}
	empty := NewEnv(&clientinfo.Info{}, nil)
	if empty.CertPresent || empty.CertSANDNS == nil || empty.CertSANURI == nil || empty.ClientAttrs == nil {
		t.Fatalf("empty env has nil collections or a certificate: %+v", empty)
	}
}

func TestName(t *testing.T) {
	a, err := New(Config{Checks: []Check{{IsMatch: []string{"true"}, Result: "allow"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "cinfo" {
		t.Fatalf("Name() = %q", a.Name())
	}
}

func TestConcurrentAuthenticate(t *testing.T) {
	a, err := New(Config{Checks: []Check{
		{IsMatch: []string{`regex_match(clientid, "^dev-")`, "clientid == cert_cn"}, Result: "allow"},
		{IsMatch: []string{"true"}, Result: "deny"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := "dev-" + string(rune('a'+g))
				cn := id
				want := authn.Allow
				if i%2 == 1 {
					cn = "other"
					want = authn.Deny
				}
				res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: id, Cert: devCert(cn)}, &authn.Credentials{})
				if res.Outcome != want {
					t.Errorf("outcome %v, want %v", res.Outcome, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
