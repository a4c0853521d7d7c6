package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/topic"
)

// Authorization source types.
const (
	SourceFile    = "file"
	SourceBuiltIn = "built_in_database"
	SourceHTTP    = "http"
	SourceRedis   = "redis"
	SourcePG      = "postgresql"
	SourceMySQL   = "mysql"
	SourceLDAP    = "ldap"
)

// Authorization is the authorization chain: superuser, the rules the authenticator
// returned, the cache, the sources in order, then no_match.
type Authorization struct {
	// NoMatch is allow or deny: the answer when no rule decides.
	NoMatch string `yaml:"no_match"`
	// DenyAction is ignore (refuse the one packet) or disconnect.
	DenyAction string        `yaml:"deny_action"`
	Cache      AuthzCache    `yaml:"cache"`
	Sources    []AuthzSource `yaml:"sources"`
}

// AuthzCache is the per-client decision cache.
type AuthzCache struct {
	Enable   bool     `yaml:"enable"`
	MaxSize  int      `yaml:"max_size"`
	TTL      Duration `yaml:"ttl"`
	Excludes []string `yaml:"excludes"`
}

// AuthzSource is one authorization source; which keys apply depends on type (the `mech`
// tag lists them), and a key given for another type is a configuration error.
type AuthzSource struct {
	Type   string `yaml:"type"`
	Enable bool   `yaml:"enable"`

	// file
	Path string `yaml:"path" mech:"file"`

	// built_in_database and the servers
	MaxRules int `yaml:"max_rules" mech:"built_in_database,redis,postgresql,mysql,ldap"`

	// redis, postgresql, mysql, ldap
	ServerConn `yaml:",inline"`

	// ldap: the attributes whose values are topic filters the client may use.
	PublishAttribute   string `yaml:"publish_attribute" mech:"ldap"`
	SubscribeAttribute string `yaml:"subscribe_attribute" mech:"ldap"`
	AllAttribute       string `yaml:"all_attribute" mech:"ldap"`

	// TTL is how long a client's rules read from the server (or decisions of an HTTP
	// service) are reused; 0 asks the server at every question.
	TTL Duration `yaml:"ttl" mech:"http,redis,postgresql,mysql,ldap"`

	// http
	Method         string            `yaml:"method" mech:"http"`
	URL            string            `yaml:"url" mech:"http"`
	Body           map[string]string `yaml:"body" mech:"http"`
	Headers        map[string]string `yaml:"headers" mech:"http"`
	RequestTimeout Duration          `yaml:"request_timeout" mech:"http,redis,postgresql,mysql,ldap"`
	MaxConcurrency int               `yaml:"max_concurrency" mech:"http"`
	OnError        string            `yaml:"on_error" mech:"http,redis,postgresql,mysql,ldap"`
	AllowPlainHTTP bool              `yaml:"allow_plain_http" mech:"http"`
	SSL            ClientSSL         `yaml:"ssl" mech:"http,redis,postgresql,mysql,ldap"`
}

func defaultAuthorization() Authorization {
	return Authorization{
		NoMatch:    "deny",
		DenyAction: "ignore",
		Cache:      AuthzCache{Enable: true, MaxSize: 32, TTL: Duration(time.Minute)},
	}
}

func defaultAuthzSource() AuthzSource {
	return AuthzSource{
		Enable: true, MaxRules: 100, Method: "post", RequestTimeout: Duration(5 * time.Second), MaxConcurrency: 64,
		OnError: "deny", SSL: ClientSSL{Verify: VerifyPeer}, ServerConn: defaultServerConn(),
		TTL: Duration(time.Minute), PublishAttribute: "mqttPublishTopic", SubscribeAttribute: "mqttSubscriptionTopic", AllAttribute: "mqttPubSubTopic",
	}
}

// setDefaults is called by the loader on every new entry of authorization.sources.
func (s *AuthzSource) setDefaults() { *s = defaultAuthzSource() }

// HasSources reports whether an enabled authorization source is configured.
func (a *Authorization) HasSources() bool {
	for _, s := range a.Sources {
		if s.Enable {
			return true
		}
	}
	return false
}

func (c *Config) checkAuthorization(ch *checker, anyPublic bool) {
	a := c.Authorization
	const p = "authorization"
	ch.enum(p+".no_match", checkEnum(a.NoMatch, "allow", "deny"))
	ch.enum(p+".deny_action", checkEnum(a.DenyAction, "ignore", "disconnect"))
	if a.Cache.Enable {
		ch.intRange(p+".cache.max_size", a.Cache.MaxSize, 1, 100000)
		ch.durRange(p+".cache.ttl", a.Cache.TTL, time.Second, 24*time.Hour)
	}
	for i, f := range a.Cache.Excludes {
		if err := topic.ValidateFilter(f, topic.Limits{}); err != nil {
			ch.add(fmt.Sprintf("%s.cache.excludes[%d]", p, i), "%v", err)
		}
	}
	def := reflect.ValueOf(defaultAuthzSource())
	seen := map[string]bool{}
	for i := range a.Sources {
		s := &a.Sources[i]
		sp := fmt.Sprintf("%s.sources[%d]", p, i)
		switch s.Type {
		case SourceFile, SourceBuiltIn, SourceHTTP, SourceRedis, SourcePG, SourceMySQL, SourceLDAP:
		default:
			ch.add(sp+".type", "type %q is not supported; want file, built_in_database, http, redis, postgresql, mysql or ldap", s.Type)
			continue
		}
		if seen[s.Type] && (s.Type == SourceFile || s.Type == SourceBuiltIn) {
			ch.add(sp+".type", "a %s source is already configured", s.Type)
		}
		seen[s.Type] = true
		checkMech(reflect.ValueOf(*s), def, s.Type, func(name, _ string) {
			ch.add(sp+"."+name, "does not apply to a %s source", s.Type)
		})
		switch s.Type {
		case SourceFile:
			if s.Path == "" {
				ch.add(sp+".path", "a file source needs the path of its ACL file")
			}
		case SourceBuiltIn:
			ch.intRange(sp+".max_rules", s.MaxRules, 1, 10000)
		case SourceRedis, SourcePG, SourceMySQL, SourceLDAP:
			checkServerConn(ch, sp, s.ServerConn, s.SSL, s.Type)
			ch.durRange(sp+".ttl", s.TTL, 0, 24*time.Hour)
			if s.Type == SourceLDAP && s.Filter == "" {
				ch.add(sp+".filter", "an ldap source needs a filter to find the client's entry")
			}
			ch.intRange(sp+".max_rules", s.MaxRules, 1, 100000)
			ch.enum(sp+".on_error", checkEnum(s.OnError, "deny", "ignore"))
		case SourceHTTP:
			if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
				ch.add(sp+".url", "want an http:// or https:// URL, got %q", s.URL)
			}
			ch.enum(sp+".method", checkEnum(s.Method, "post", "get"))
			ch.enum(sp+".on_error", checkEnum(s.OnError, "deny", "ignore"))
			ch.durRange(sp+".request_timeout", s.RequestTimeout, 100*time.Millisecond, time.Minute)
			ch.intRange(sp+".max_concurrency", s.MaxConcurrency, 1, 10000)
			ch.durRange(sp+".ttl", s.TTL, 0, 24*time.Hour)
		}
	}
	if !a.HasSources() && a.NoMatch == "deny" && anyPublic {
		ch.add(p+".sources", "a listener is not on loopback but no authorization source is configured: every "+
			"client would be denied everything; add sources (e.g. a file source with etc/acl.yaml) or set no_match: allow explicitly")
	}
}

// sameValue is reflect.DeepEqual where an empty map or list equals a missing one.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Map, reflect.Slice:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
