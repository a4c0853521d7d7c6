package config

import (
	"strings"
	"testing"
	"time"
)

const chainYAML = `
listeners:
  tcp:
    default:
      bind: "0.0.0.0:1883"
    edge:
      bind: "0.0.0.0:1884"
      enable_authn: quick_deny_anonymous
      authentication:
        - mechanism: x509
          require_clientid_match: cn
authentication:
  - mechanism: password_based
    backend: built_in_database
    user_id_type: clientid
    password_hash_algorithm: {name: pbkdf2, mac_fun: sha512, iterations: 300000}
  - mechanism: jwt
    algorithm: hmac-based
    secret: env:JWT_SECRET
    verify_claims: {sub: "${clientid}"}
  - mechanism: cinfo
    checks:
      - is_match: ['username == ""']
        result: deny
      - is_match: ['clientid startsWith "dev-"', 'cert_present']
  - mechanism: password_based
    backend: http
    url: https://auth.example.com/mqtt
    body: {u: "${username}", p: "${password}"}
authentication_settings:
  failure_limit: {max_failures_per_ip: 50}
authorization:
  sources: [{type: file, path: /etc/rampart/acl.yaml}]
`

func TestLoadAuthenticationChain(t *testing.T) {
	c, err := Load(writeConfig(t, chainYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Authentication) != 4 {
		t.Fatalf("%d authenticators, want 4", len(c.Authentication))
	}
	pw := c.Authentication[0]
	if pw.Kind() != "password_based:built_in_database" || pw.UserIDType != "clientid" || !pw.Enable ||
		pw.PasswordHashAlgorithm.Name != "pbkdf2" || pw.PasswordHashAlgorithm.Iterations != 300000 ||
		pw.PasswordHashAlgorithm.Memory != 19*MB || pw.OnError != "deny" {
		t.Errorf("password entry: %+v", pw)
	}
	if j := c.Authentication[1]; j.VerifyClaims["sub"] != "${clientid}" || !j.RequireExp || j.From != "password" {
		t.Errorf("jwt entry: %+v", j)
	}
	ci := c.Authentication[2]
	if len(ci.Checks) != 2 || ci.Checks[0].Result != "deny" || ci.Checks[1].Result != "allow" || len(ci.Checks[1].IsMatch) != 2 {
		t.Errorf("cinfo checks: %+v", ci.Checks)
	}
	if h := c.Authentication[3]; h.Body["p"] != "${password}" || h.RequestTimeout != Duration(5*time.Second) {
		t.Errorf("http entry: %+v", h)
	}
	edge := c.Listeners.TCP["edge"]
	if edge.EnableAuthn != AuthnQuickDenyAnonymous || len(edge.Authentication) != 1 || edge.Authentication[0].RequireClientIDMatch != "cn" {
		t.Errorf("edge listener: %+v", edge)
	}
	if f := c.AuthenticationSettings.FailureLimit; f.MaxFailuresPerIP != 50 || f.MaxFailuresPerUser != 5 || f.MaxFailuresPerUserAnyAddress != 50 {
		t.Errorf("failure limit: %+v", c.AuthenticationSettings.FailureLimit)
	}
}

func TestAuthenticationEnvOverride(t *testing.T) {
	c, err := Load(writeConfig(t, chainYAML), []string{"RAMPART_AUTHENTICATION__1__ENABLE=false",
		"RAMPART_LISTENERS__TCP__EDGE__AUTHENTICATION__0__REQUIRE_CLIENTID_MATCH=san_dns"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Authentication[1].Enable || c.Listeners.TCP["edge"].Authentication[0].RequireClientIDMatch != "san_dns" {
		t.Fatalf("env overrides not applied: %+v", c.Authentication[1])
	}
	if _, err := Load(writeConfig(t, chainYAML), []string{"RAMPART_AUTHENTICATION__9__ENABLE=false"}); err == nil ||
		!strings.Contains(err.Error(), "RAMPART_AUTHENTICATION__9__ENABLE") {
		t.Fatalf("an override of an entry the file does not have: %v", err)
	}
}

func TestAuthenticationErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown mechanism", "authentication:\n  - mechanism: kerberos\n", `authentication[0].mechanism: mechanism "kerberos"`},
		{"backend missing", "authentication:\n  - mechanism: password_based\n", "authentication[0].mechanism"},
		{"key of another mechanism", "authentication:\n  - mechanism: x509\n    url: https://x\n", "authentication[0].url: does not apply to mechanism x509"},
		{"unknown key in an entry", "authentication:\n  - mechanism: x509\n    passwd: x\n", `unknown key "authentication[0].passwd"`},
		{"inline jwt secret", "authentication:\n  - mechanism: jwt\n    algorithm: hmac-based\n    secret: hunter2\n", "authentication[0].secret: give the HMAC secret as file:/path or env:NAME"},
		{"plain http JWKS", "authentication:\n  - mechanism: jwt\n    use_jwks: true\n    endpoint: http://idp/jwks\n", "authentication[0].endpoint: a JWKS endpoint must be an https:// URL"},
		{"bad hash name", "authentication:\n  - mechanism: password_based\n    backend: built_in_database\n    password_hash_algorithm: {name: md5}\n", "password_hash_algorithm.name"},
		{"low scram iterations", "authentication:\n  - mechanism: scram\n    backend: built_in_database\n    iteration_count: 100\n", "authentication[0].iteration_count"},
		{"redis without a command", "authentication:\n  - mechanism: password_based\n    backend: redis\n    server: 127.0.0.1:6379\n", "authentication[0].cmd"},
		{"postgresql inline password", "authentication:\n  - mechanism: password_based\n    backend: postgresql\n    server: db:5432\n    query: SELECT 1\n    password: hunter2\n", "authentication[0].password: give the password as file:/path or env:NAME"},
		{"a query on a redis entry", "authentication:\n  - mechanism: password_based\n    backend: redis\n    server: r:6379\n    cmd: HGET k password_hash\n    query: SELECT 1\n", "authentication[0].query: does not apply"},
		{"ldap method post", "authentication:\n  - mechanism: password_based\n    backend: ldap\n    server: l:389\n    base_dn: dc=x\n    filter: (uid=${username})\n    method: post\n", "authentication[0].method"},
		{"ldap without filter or bind_dn", "authentication:\n  - mechanism: password_based\n    backend: ldap\n    server: l:389\n    base_dn: dc=x\n", "authentication[0].filter"},
		{"ldap hash with bind_dn", "authentication:\n  - mechanism: password_based\n    backend: ldap\n    server: l:389\n    base_dn: dc=x\n    method: hash\n    bind_dn: uid=${username},dc=x\n", "authentication[0].bind_dn"},
		{"ldap with a query", "authentication:\n  - mechanism: password_based\n    backend: ldap\n    server: l:389\n    base_dn: dc=x\n    filter: (uid=a)\n    query: SELECT 1\n", "authentication[0].query: does not apply"},
		{"mysql inline password", "authentication:\n  - mechanism: password_based\n    backend: mysql\n    server: db:3306\n    database: d\n    query: SELECT 1\n    password: hunter2\n", "authentication[0].password: give the password as file:/path or env:NAME"},
		{"http method bind", "authentication:\n  - mechanism: password_based\n    backend: http\n    url: https://a/b\n    method: bind\n", "authentication[0].method"},
		{"remote mysql without TLS", "authentication:\n  - mechanism: password_based\n    backend: mysql\n    server: 10.0.0.2:3306\n    database: d\n    query: SELECT 1\n", "authentication[0].ssl.enable: 10.0.0.2:3306 is not on loopback"},
		{"remote redis sentinel without TLS", "authentication:\n  - mechanism: password_based\n    backend: redis\n    redis_type: sentinel\n    servers: [\"127.0.0.1:26379\", \"10.0.0.3:26379\"]\n    sentinel: m\n    cmd: HGET k password_hash\n", "authentication[0].ssl.enable: 10.0.0.3:26379"},
		{"cinfo without checks", "authentication:\n  - mechanism: cinfo\n", "authentication[0].checks"},
		{"cinfo bad result", "authentication:\n  - mechanism: cinfo\n    checks:\n      - is_match: ['true']\n        result: maybe\n", "authentication[0].checks[0].result"},
		{"entry is not a mapping", "authentication:\n  - x509\n", "authentication[0]: want a mapping"},
		{"list is a mapping", "authentication:\n  mechanism: x509\n", "authentication: want a list of mappings"},
		{"bad enable_authn", "listeners:\n  tcp:\n    default:\n      enable_authn: maybe\n", "enable_authn"},
		{"non-loopback with authn off", "listeners:\n  tcp:\n    default:\n      bind: 0.0.0.0:1883\n      enable_authn: false\nauthentication:\n  - mechanism: x509\n", "with enable_authn: false"},
		{"zero any-address failure limit", "authentication_settings:\n  failure_limit: {max_failures_per_user_any_address: 0}\n", "authentication_settings.failure_limit.max_failures_per_user_any_address"},
		{"listener chain checked too", "listeners:\n  tcp:\n    default:\n      authentication:\n        - mechanism: nope\n", "listeners.tcp.default.authentication[0].mechanism"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNonLoopbackWithChain(t *testing.T) {
	// The global chain authenticates the public listener; a listener's own chain does too.
	for _, y := range []string{
		"listeners:\n  tcp:\n    default:\n      bind: 0.0.0.0:1883\nauthentication:\n  - mechanism: x509\n",
		"listeners:\n  tcp:\n    default:\n      bind: 0.0.0.0:1883\n      authentication:\n        - mechanism: x509\n",
		"listeners:\n  tcp:\n    default:\n      bind: 0.0.0.0:1883\n      enable_authn: true\nauthentication:\n  - mechanism: x509\n",
	} {
		y += "authorization: {no_match: allow}\n"
		if _, err := Load(writeConfig(t, y), nil); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}

func TestAuthorizationConfig(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"public listener without sources", "listeners:\n  tcp:\n    default:\n      bind: 0.0.0.0:1883\n      allow_anonymous: true\n",
			"authorization.sources: a listener is not on loopback but no authorization source is configured"},
		{"unknown source type", "authorization:\n  sources: [{type: mongodb}]\n", `authorization.sources[0].type: type "mongodb"`},
		{"ldap source without base_dn", "authorization:\n  sources: [{type: ldap, server: \"127.0.0.1:389\", filter: \"(uid=${username})\"}]\n", "authorization.sources[0].base_dn"},
		{"ldap source without filter", "authorization:\n  sources: [{type: ldap, server: \"127.0.0.1:389\", base_dn: \"dc=x\"}]\n", "authorization.sources[0].filter"},
		{"mysql source without database", "authorization:\n  sources: [{type: mysql, server: \"127.0.0.1:3306\", query: \"SELECT 1\"}]\n", "authorization.sources[0].database"},
		{"ldap attribute on a redis source", "authorization:\n  sources: [{type: redis, server: \"127.0.0.1:6379\", cmd: \"HGETALL a\", publish_attribute: x}]\n", "authorization.sources[0].publish_attribute: does not apply"},
		{"sentinel without master name", "authorization:\n  sources: [{type: redis, redis_type: sentinel, servers: [\"127.0.0.1:26379\"], cmd: \"HGETALL a\"}]\n", "authorization.sources[0].sentinel"},
		{"cluster with server instead of servers", "authorization:\n  sources: [{type: redis, redis_type: cluster, server: \"127.0.0.1:6379\", cmd: \"HGETALL a\"}]\n", "authorization.sources[0].server: with redis_type cluster"},
		{"cluster database", "authorization:\n  sources: [{type: redis, redis_type: cluster, servers: [\"127.0.0.1:7000\"], database: \"2\", cmd: \"HGETALL a\"}]\n", "authorization.sources[0].database: a Redis cluster"},
		{"ttl above a day", "authorization:\n  sources: [{type: http, url: \"https://a/b\", ttl: 25h}]\n", "authorization.sources[0].ttl"},
		{"negative ttl", "authorization:\n  sources: [{type: redis, server: \"127.0.0.1:6379\", cmd: \"HGETALL a\", ttl: -1s}]\n", "authorization.sources[0].ttl"},
		{"start_tls on redis", "authorization:\n  sources: [{type: redis, server: \"127.0.0.1:6379\", cmd: \"HGETALL a\", ssl: {enable: true, start_tls: true}}]\n", "authorization.sources[0].ssl.start_tls: StartTLS applies to LDAP only"},
		{"start_tls without enable", "authorization:\n  sources: [{type: ldap, server: \"127.0.0.1:389\", base_dn: \"dc=x\", filter: \"(uid=a)\", ssl: {start_tls: true}}]\n", "authorization.sources[0].ssl.start_tls: set ssl.enable"},
		{"file without a path", "authorization:\n  sources: [{type: file}]\n", "authorization.sources[0].path"},
		{"key of another type", "authorization:\n  sources: [{type: file, path: a.yaml, url: https://x}]\n", "authorization.sources[0].url: does not apply to a file source"},
		{"two file sources", "authorization:\n  sources: [{type: file, path: a.yaml}, {type: file, path: b.yaml}]\n", "authorization.sources[1].type: a file source is already configured"},
		{"bad no_match", "authorization:\n  no_match: maybe\n", "authorization.no_match"},
		{"bad deny_action", "authorization:\n  deny_action: kick\n", "authorization.deny_action"},
		{"bad cache exclude", "authorization:\n  cache: {excludes: [\"a/#/b\"]}\n", "authorization.cache.excludes[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Loopback listeners without sources are the development default: allowed.
	if _, err := Load(writeConfig(t, "authorization:\n  no_match: deny\n"), nil); err != nil {
		t.Fatal(err)
	}
}
