package config

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/secret"
)

// Mechanism names of an authentication entry.
const (
	MechPasswordBased = "password_based"
	MechJWT           = "jwt"
	MechSCRAM         = "scram"
	MechCinfo         = "cinfo"
	MechX509          = "x509"
)

// Backend names of password_based and scram entries.
const (
	BackendBuiltIn = "built_in_database"
	BackendHTTP    = "http"
	BackendRedis   = "redis"
	BackendPG      = "postgresql"
	BackendMySQL   = "mysql"
	BackendLDAP    = "ldap"
)

// Authenticator is one entry of an authentication chain. Which keys apply depends on the
// mechanism (and backend); the `mech` tag lists the kinds a key belongs to, and a key set
// for another kind is a configuration error.
type Authenticator struct {
	Mechanism string `yaml:"mechanism"`
	Backend   string `yaml:"backend"`
	Enable    bool   `yaml:"enable"`
	// Precondition is an expression over client information; the entry runs only for
	// clients it is true for (e.g. listener == "ssl:default").
	Precondition string `yaml:"precondition"`
	// OnError is deny (a backend error or timeout refuses the client) or ignore (the next
	// authenticator decides).
	OnError string `yaml:"on_error"`

	// The built-in database (password_based and scram).
	UserIDType            string       `yaml:"user_id_type" mech:"password_based:built_in_database"`
	PasswordHashAlgorithm PasswordHash `yaml:"password_hash_algorithm" mech:"password_based:built_in_database,password_based:redis,password_based:postgresql,password_based:mysql"`
	BootstrapFile         string       `yaml:"bootstrap_file" mech:"password_based:built_in_database"`
	BootstrapType         string       `yaml:"bootstrap_type" mech:"password_based:built_in_database"`

	// SCRAM and JWT share the key name algorithm, as EMQX's configuration does.
	Algorithm      string `yaml:"algorithm" mech:"scram:built_in_database,jwt"`
	IterationCount int    `yaml:"iteration_count" mech:"scram:built_in_database"`

	// JWT.
	From                  string            `yaml:"from" mech:"jwt"`
	UseJWKS               bool              `yaml:"use_jwks" mech:"jwt"`
	Secret                string            `yaml:"secret" mech:"jwt"`
	SecretBase64Encoded   bool              `yaml:"secret_base64_encoded" mech:"jwt"`
	PublicKey             string            `yaml:"public_key" mech:"jwt"`
	Endpoint              string            `yaml:"endpoint" mech:"jwt"`
	RefreshInterval       Duration          `yaml:"refresh_interval" mech:"jwt"`
	VerifyClaims          map[string]string `yaml:"verify_claims" mech:"jwt"`
	ACLClaimName          string            `yaml:"acl_claim_name" mech:"jwt"`
	IsSuperuserClaim      string            `yaml:"is_superuser_claim" mech:"jwt"`
	ClientAttrs           map[string]string `yaml:"client_attrs" mech:"jwt"`
	RequireExp            bool              `yaml:"require_exp" mech:"jwt"`
	Leeway                Duration          `yaml:"leeway" mech:"jwt"`
	DisconnectAfterExpire bool              `yaml:"disconnect_after_expire" mech:"jwt"`

	// HTTP service (and LDAP: method is bind or hash there).
	Method         string            `yaml:"method" mech:"password_based:http,password_based:ldap"`
	URL            string            `yaml:"url" mech:"password_based:http"`
	Body           map[string]string `yaml:"body" mech:"password_based:http"`
	Headers        map[string]string `yaml:"headers" mech:"password_based:http"`
	RequestTimeout Duration          `yaml:"request_timeout" mech:"password_based:http,jwt,password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap"`
	MaxConcurrency int               `yaml:"max_concurrency" mech:"password_based:http"`
	// AllowPlainHTTP permits an http:// URL to a host that is not loopback (passwords
	// then cross the network in clear text).
	AllowPlainHTTP bool `yaml:"allow_plain_http" mech:"password_based:http"`

	// Redis, PostgreSQL, MySQL and LDAP servers.
	ServerConn `yaml:",inline"`

	// LDAP: the user's DN template (bind without a search), and the attributes read.
	BindDN               string `yaml:"bind_dn" mech:"password_based:ldap"`
	PasswordAttribute    string `yaml:"password_attribute" mech:"password_based:ldap"`
	IsSuperuserAttribute string `yaml:"is_superuser_attribute" mech:"password_based:ldap"`

	// Outbound TLS of the HTTP service, the JWKS endpoint and the database servers.
	SSL ClientSSL `yaml:"ssl" mech:"password_based:http,jwt,password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap"`

	// cinfo rules.
	Checks []CinfoCheck `yaml:"checks" mech:"cinfo"`

	// X.509 certificate identity.
	RequireClientIDMatch string `yaml:"require_clientid_match" mech:"x509"`
}

// ServerConn is how a password_based entry or an authorization source reaches a Redis,
// PostgreSQL, MySQL or LDAP server. Placeholders in cmd, query and filter become separate
// command arguments, bound parameters or escaped filter values, never text in the command.
type ServerConn struct {
	Server    string   `yaml:"server" mech:"password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap,redis,postgresql,mysql,ldap"`
	RedisType string   `yaml:"redis_type" mech:"password_based:redis,redis"`
	Servers   []string `yaml:"servers" mech:"password_based:redis,redis"`
	Sentinel  string   `yaml:"sentinel" mech:"password_based:redis,redis"`
	// The sentinels' own credentials, when they require them (redis_type sentinel).
	SentinelUsername string   `yaml:"sentinel_username" mech:"password_based:redis,redis"`
	SentinelPassword string   `yaml:"sentinel_password" mech:"password_based:redis,redis"`
	Username         string   `yaml:"username" mech:"password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap,redis,postgresql,mysql,ldap"`
	Password         string   `yaml:"password" mech:"password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap,redis,postgresql,mysql,ldap"`
	Database         string   `yaml:"database" mech:"password_based:redis,password_based:postgresql,password_based:mysql,redis,postgresql,mysql"`
	PoolSize         int      `yaml:"pool_size" mech:"password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap,redis,postgresql,mysql,ldap"`
	ConnectTimeout   Duration `yaml:"connect_timeout" mech:"password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap,redis,postgresql,mysql,ldap"`
	Cmd              string   `yaml:"cmd" mech:"password_based:redis,redis"`
	Query            string   `yaml:"query" mech:"password_based:postgresql,password_based:mysql,postgresql,mysql"`
	AllowPlaintext   bool     `yaml:"allow_plaintext" mech:"password_based:redis,password_based:postgresql,password_based:mysql,password_based:ldap,redis,postgresql,mysql,ldap"`
	BaseDN           string   `yaml:"base_dn" mech:"password_based:ldap,ldap"`
	Filter           string   `yaml:"filter" mech:"password_based:ldap,ldap"`
}

func defaultServerConn() ServerConn {
	return ServerConn{RedisType: "single", PoolSize: 8, ConnectTimeout: Duration(5 * time.Second)}
}

// PasswordHash chooses the hash of new and upgraded passwords in the built-in database,
// or the algorithm of hashes imported by bootstrap_type hash.
type PasswordHash struct {
	// Name is argon2id, bcrypt, pbkdf2, sha256 or sha512 (salted, for imported users).
	Name         string `yaml:"name"`
	MacFun       string `yaml:"mac_fun"`       // pbkdf2: sha256 or sha512
	Iterations   int    `yaml:"iterations"`    // argon2id passes / pbkdf2 rounds; 0 = the algorithm's default
	Memory       Size   `yaml:"memory"`        // argon2id
	Parallelism  int    `yaml:"parallelism"`   // argon2id
	SaltRounds   int    `yaml:"salt_rounds"`   // bcrypt cost
	SaltPosition string `yaml:"salt_position"` // sha256/sha512: prefix or suffix
}

// ClientSSL configures TLS for an outbound https connection (JWKS, HTTP service). The
// server is verified unless verify: verify_none and allow_verify_none: true.
type ClientSSL struct {
	// Enable turns TLS on for a Redis, PostgreSQL, MySQL or LDAP server (an https URL
	// does for HTTP).
	Enable bool `yaml:"enable"`
	// StartTLS upgrades a plain LDAP connection with StartTLS instead of connecting with
	// LDAPS (LDAP only).
	StartTLS             bool   `yaml:"start_tls"`
	CACertFile           string `yaml:"cacertfile"`
	CertFile             string `yaml:"certfile"`
	KeyFile              string `yaml:"keyfile"`
	ServerNameIndication string `yaml:"server_name_indication"`
	Verify               Verify `yaml:"verify"`
	AllowVerifyNone      bool   `yaml:"allow_verify_none"`
}

// CinfoCheck is one rule of a cinfo authenticator: when every expression of is_match is
// true for a client, result (allow, deny or ignore) decides.
type CinfoCheck struct {
	IsMatch []string `yaml:"is_match"`
	Result  string   `yaml:"result"`
}

func (c *CinfoCheck) setDefaults() { *c = CinfoCheck{Result: "allow"} }

// AuthnSettings are the parts of authentication shared by every chain.
type AuthnSettings struct {
	// Timeout bounds one client's authentication (every authenticator of the chain).
	Timeout Duration `yaml:"timeout"`
	// HashConcurrency bounds password hash computations running at once; 0 = one per CPU.
	HashConcurrency int `yaml:"hash_concurrency"`
	// FailureLimit is the brute-force defence in front of every chain.
	FailureLimit FailureLimit `yaml:"failure_limit"`
}

// FailureLimit counts failed authentications per user name and per client address.
type FailureLimit struct {
	Enable bool `yaml:"enable"`
	// MaxFailuresPerUser counts one user name's failures from one address block.
	MaxFailuresPerUser int `yaml:"max_failures_per_user"`
	// MaxFailuresPerUserAnyAddress counts one user name's failures from all addresses.
	MaxFailuresPerUserAnyAddress int      `yaml:"max_failures_per_user_any_address"`
	MaxFailuresPerIP             int      `yaml:"max_failures_per_ip"`
	Window                       Duration `yaml:"window"`
	Delay                        Duration `yaml:"delay"`
	MaxDelay                     Duration `yaml:"max_delay"`
	Cooldown                     Duration `yaml:"cooldown"`
	MaxEntries                   int      `yaml:"max_entries"`
	IPv4Prefix                   int      `yaml:"ipv4_prefix"`
	IPv6Prefix                   int      `yaml:"ipv6_prefix"`
}

func defaultAuthnSettings() AuthnSettings {
	return AuthnSettings{
		Timeout: Duration(10 * time.Second),
		FailureLimit: FailureLimit{
			Enable: true, MaxFailuresPerUser: 5, MaxFailuresPerUserAnyAddress: 50, MaxFailuresPerIP: 20, Window: Duration(time.Minute),
			Delay: Duration(200 * time.Millisecond), MaxDelay: Duration(2 * time.Second),
			Cooldown: Duration(5 * time.Minute), MaxEntries: 100000, IPv4Prefix: 32, IPv6Prefix: 64,
		},
	}
}

// DefaultAuthenticator returns an authentication entry with every key at its default, as
// the loader starts each entry of an authentication list.
func DefaultAuthenticator() Authenticator { return defaultAuthenticator() }

func defaultAuthenticator() Authenticator {
	return Authenticator{
		Enable:                true,
		OnError:               "deny",
		UserIDType:            "username",
		PasswordHashAlgorithm: PasswordHash{Name: "argon2id", MacFun: "sha256", Memory: 19 * MB, Parallelism: 1, SaltRounds: 12, SaltPosition: "prefix"},
		BootstrapType:         "plain",
		IterationCount:        4096,
		From:                  "password",
		RefreshInterval:       Duration(5 * time.Minute),
		ACLClaimName:          "acl",
		RequireExp:            true,
		DisconnectAfterExpire: true,
		RequestTimeout:        Duration(5 * time.Second),
		MaxConcurrency:        64,
		SSL:                   ClientSSL{Verify: VerifyPeer},
		ServerConn:            defaultServerConn(),
		RequireClientIDMatch:  "none",
		PasswordAttribute:     "userPassword",
		IsSuperuserAttribute:  "isSuperuser",
	}
}

// setDefaults is called by the loader on every new entry of an authentication list.
func (a *Authenticator) setDefaults() { *a = defaultAuthenticator() }

// SCRAMAlgorithm is the hash of a scram entry: algorithm, or sha256 when it is empty.
func (a *Authenticator) SCRAMAlgorithm() string {
	if a.Algorithm == "" {
		return "sha256"
	}
	return a.Algorithm
}

// Kind names the entry as the `mech` tags do: "jwt", "password_based:http".
func (a *Authenticator) Kind() string {
	if a.Backend == "" {
		return a.Mechanism
	}
	return a.Mechanism + ":" + a.Backend
}

// AuthnMode is a listener's enable_authn: true, false or quick_deny_anonymous.
type AuthnMode string

// AuthnMode values.
const (
	AuthnOn                 AuthnMode = "true"
	AuthnOff                AuthnMode = "false"
	AuthnQuickDenyAnonymous AuthnMode = "quick_deny_anonymous"
)

// UnmarshalText accepts true, false or quick_deny_anonymous.
func (m *AuthnMode) UnmarshalText(b []byte) error {
	return setEnum(m, strings.ToLower(string(b)), AuthnOn, AuthnOff, AuthnQuickDenyAnonymous)
}

var kinds = map[string]bool{
	MechPasswordBased + ":" + BackendBuiltIn: true,
	MechPasswordBased + ":" + BackendHTTP:    true,
	MechPasswordBased + ":" + BackendRedis:   true,
	MechPasswordBased + ":" + BackendPG:      true,
	MechPasswordBased + ":" + BackendMySQL:   true,
	MechPasswordBased + ":" + BackendLDAP:    true,
	MechSCRAM + ":" + BackendBuiltIn:         true,
	MechJWT:                                  true,
	MechCinfo:                                true,
	MechX509:                                 true,
}

// checkAuthentication checks one chain (the global one or a listener's).
func checkAuthentication(ch *checker, path string, list []Authenticator) {
	def := defaultAuthenticator()
	dv := reflect.ValueOf(def)
	for i := range list {
		a := &list[i]
		p := fmt.Sprintf("%s[%d]", path, i)
		if !kinds[a.Kind()] {
			ch.add(p+".mechanism", "mechanism %q with backend %q is not supported; want password_based (built_in_database, http, redis, postgresql, mysql or ldap), scram (built_in_database), jwt, cinfo or x509", a.Mechanism, a.Backend)
			continue
		}
		checkMech(reflect.ValueOf(*a), dv, a.Kind(), func(name, tag string) {
			ch.add(p+"."+name, "does not apply to mechanism %s (it belongs to %s)", a.Kind(), strings.ReplaceAll(tag, ",", " and "))
		})
		ch.enum(p+".on_error", checkEnum(a.OnError, "deny", "ignore"))
		if len(a.Precondition) > 4096 {
			ch.add(p+".precondition", "longer than 4096 characters")
		}
		switch a.Kind() {
		case MechPasswordBased + ":" + BackendBuiltIn:
			ch.enum(p+".user_id_type", checkEnum(a.UserIDType, "username", "clientid"))
			ch.enum(p+".bootstrap_type", checkEnum(a.BootstrapType, "plain", "hash"))
			checkPasswordHash(ch, p+".password_hash_algorithm", a.PasswordHashAlgorithm)
		case MechSCRAM + ":" + BackendBuiltIn:
			ch.enum(p+".algorithm", checkEnum(a.SCRAMAlgorithm(), "sha256", "sha512"))
			ch.intRange(p+".iteration_count", a.IterationCount, 4096, 10000000)
		case MechJWT:
			checkJWT(ch, p, a)
		case MechPasswordBased + ":" + BackendHTTP:
			if !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "http://") {
				ch.add(p+".url", "want an http:// or https:// URL, got %q", a.URL)
			}
			ch.enum(p+".method", checkEnum(a.Method, "", "post", "get"))
			ch.durRange(p+".request_timeout", a.RequestTimeout, 100*time.Millisecond, time.Minute)
			ch.intRange(p+".max_concurrency", a.MaxConcurrency, 1, 10000)
		case MechPasswordBased + ":" + BackendRedis, MechPasswordBased + ":" + BackendPG, MechPasswordBased + ":" + BackendMySQL:
			checkServerConn(ch, p, a.ServerConn, a.SSL, a.Backend)
			checkPasswordHash(ch, p+".password_hash_algorithm", a.PasswordHashAlgorithm)
		case MechPasswordBased + ":" + BackendLDAP:
			checkServerConn(ch, p, a.ServerConn, a.SSL, a.Backend)
			ch.enum(p+".method", checkEnum(a.Method, "", "bind", "hash"))
			if a.BindDN == "" && a.Filter == "" {
				ch.add(p+".filter", "an ldap authenticator needs a filter to find the user (or bind_dn, a DN template)")
			}
			if a.Method != "hash" && a.PasswordAttribute != defaultAuthenticator().PasswordAttribute {
				ch.add(p+".password_attribute", "used by method hash only; method bind lets the directory check the password")
			}
			if a.BindDN != "" && a.Method == "hash" {
				ch.add(p+".bind_dn", "bind_dn is used by method bind only; method hash searches with filter")
			}
		case MechCinfo:
			if len(a.Checks) == 0 {
				ch.add(p+".checks", "a cinfo authenticator needs at least one check")
			}
			for k, c := range a.Checks {
				cp := fmt.Sprintf("%s.checks[%d]", p, k)
				if len(c.IsMatch) == 0 {
					ch.add(cp+".is_match", "needs at least one expression")
				}
				ch.enum(cp+".result", checkEnum(c.Result, "allow", "deny", "ignore"))
			}
		case MechX509:
			ch.enum(p+".require_clientid_match", checkEnum(a.RequireClientIDMatch, "none", "cn", "dn", "san_dns", "san_uri"))
		}
	}
}

func belongs(tag, kind string) bool {
	for _, k := range strings.Split(tag, ",") {
		if k == kind {
			return true
		}
	}
	return false
}

func checkPasswordHash(ch *checker, p string, h PasswordHash) {
	ch.enum(p+".name", checkEnum(h.Name, "argon2id", "bcrypt", "pbkdf2", "sha256", "sha512"))
	ch.enum(p+".mac_fun", checkEnum(h.MacFun, "sha256", "sha512"))
	ch.enum(p+".salt_position", checkEnum(h.SaltPosition, "prefix", "suffix", "disable"))
	if h.Iterations < 0 {
		ch.add(p+".iterations", "must not be negative")
	}
}

func checkJWT(ch *checker, p string, a *Authenticator) {
	ch.enum(p+".from", checkEnum(a.From, "password", "username"))
	if a.UseJWKS {
		if !strings.HasPrefix(a.Endpoint, "https://") {
			ch.add(p+".endpoint", "a JWKS endpoint must be an https:// URL, got %q", a.Endpoint)
		}
		if a.Secret != "" || a.PublicKey != "" {
			ch.add(p+".use_jwks", "with use_jwks: true, secret and public_key are not used; remove them")
		}
	} else {
		def := defaultAuthenticator()
		if a.Endpoint != "" || a.RefreshInterval != def.RefreshInterval || a.SSL != def.SSL {
			ch.add(p+".use_jwks", "endpoint, refresh_interval and ssl are only used with use_jwks: true")
		}
		switch a.Algorithm {
		case "hmac-based":
			if !secret.IsRef(a.Secret) {
				ch.add(p+".secret", "give the HMAC secret as file:/path or env:NAME, never inline")
			} else if err := secret.Check(a.Secret, "secret"); err != nil {
				ch.add(p+".secret", "%v", err)
			}
		case "public-key":
			if a.PublicKey == "" {
				ch.add(p+".public_key", "a PEM public key file is required with algorithm public-key")
			}
		default:
			ch.add(p+".algorithm", "want hmac-based or public-key (or use_jwks: true), got %q", a.Algorithm)
		}
	}
	if l := a.Leeway.Duration(); l < 0 || l > 5*time.Minute {
		ch.add(p+".leeway", "must be between 0s and 5m, got %s", a.Leeway)
	}
}

// checkServerConn checks the keys of a Redis, PostgreSQL, MySQL or LDAP server; backend
// is the entry's backend or the source's type.
func checkServerConn(ch *checker, p string, b ServerConn, ssl ClientSSL, backend string) {
	redis := backend == BackendRedis
	switch {
	case !redis || b.RedisType == "single":
		if b.Server == "" {
			ch.add(p+".server", "the server's host:port is required")
		}
		if len(b.Servers) > 0 {
			ch.add(p+".servers", "servers lists sentinel or cluster nodes (redis_type sentinel or cluster); use server for one server")
		}
	default:
		if b.Server != "" {
			ch.add(p+".server", "with redis_type %s, list the nodes in servers instead", b.RedisType)
		}
		if len(b.Servers) == 0 {
			ch.add(p+".servers", "redis_type %s needs at least one address in servers", b.RedisType)
		}
	}
	if redis {
		ch.enum(p+".redis_type", checkEnum(b.RedisType, "single", "sentinel", "cluster"))
		if (b.RedisType == "sentinel") != (b.Sentinel != "") {
			ch.add(p+".sentinel", "the monitored master's name is required with redis_type sentinel, and only then")
		}
		if b.RedisType != "sentinel" && (b.SentinelUsername != "" || b.SentinelPassword != "") {
			ch.add(p+".sentinel_password", "sentinel_username and sentinel_password apply to redis_type sentinel only")
		}
		if b.SentinelPassword != "" && !secret.IsRef(b.SentinelPassword) {
			ch.add(p+".sentinel_password", "give the password as file:/path or env:NAME, never inline")
		} else if err := secret.Check(b.SentinelPassword, "sentinel_password"); err != nil {
			ch.add(p+".sentinel_password", "%v", err)
		}
		if b.RedisType == "cluster" && b.Database != "" && b.Database != "0" {
			ch.add(p+".database", "a Redis cluster has only database 0")
		}
	}
	if b.Password != "" && !secret.IsRef(b.Password) {
		ch.add(p+".password", "give the password as file:/path or env:NAME, never inline")
	} else if err := secret.Check(b.Password, "password"); err != nil {
		ch.add(p+".password", "%v", err)
	}
	ch.intRange(p+".pool_size", b.PoolSize, 1, 1024)
	ch.durRange(p+".connect_timeout", b.ConnectTimeout, 100*time.Millisecond, time.Minute)
	switch backend {
	case BackendRedis:
		if b.Cmd == "" {
			ch.add(p+".cmd", "the Redis command template is required")
		}
	case BackendPG, BackendMySQL:
		if b.Query == "" {
			ch.add(p+".query", "the SQL query is required")
		}
		if backend == BackendMySQL && b.Database == "" {
			ch.add(p+".database", "the MySQL database name is required")
		}
	case BackendLDAP:
		if b.BaseDN == "" {
			ch.add(p+".base_dn", "the DN searches start from is required")
		}
	}
	if !ssl.Enable && !b.AllowPlaintext {
		addrs := append([]string{b.Server}, b.Servers...)
		for _, a := range addrs {
			if a != "" && !localServer(a) {
				ch.add(p+".ssl.enable", "%s is not on loopback: without TLS the password and every query cross the network in clear text; set ssl.enable: true (or allow_plaintext: true on a trusted network)", a)
				break
			}
		}
	}
	if ssl.StartTLS && backend != BackendLDAP {
		ch.add(p+".ssl.start_tls", "StartTLS applies to LDAP only")
	}
	if ssl.StartTLS && !ssl.Enable {
		ch.add(p+".ssl.start_tls", "set ssl.enable: true as well; start_tls chooses how TLS starts")
	}
}

// localServer reports whether a server address (host, host:port, [v6]:port or a Unix
// socket path) is on this machine's loopback.
func localServer(addr string) bool {
	if strings.HasPrefix(addr, "/") {
		return true
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	return httpc.IsLoopbackHost(strings.Trim(host, "[]"))
}

// checkMech calls bad for every key of v (inline structs included) that is set away from
// its default in def but whose `mech` tag does not list kind.
func checkMech(v, def reflect.Value, kind string, bad func(name, tag string)) {
	t := v.Type()
	for j := 0; j < t.NumField(); j++ {
		f := t.Field(j)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			checkMech(v.Field(j), def.Field(j), kind, bad)
			continue
		}
		tag := f.Tag.Get("mech")
		if tag == "" || belongs(tag, kind) {
			continue
		}
		if !sameValue(v.Field(j), def.Field(j)) {
			bad(name, tag)
		}
	}
}
