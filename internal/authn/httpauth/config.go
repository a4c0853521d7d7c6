package httpauth

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config is the configuration of one HTTP authenticator. Key names in comments are the
// YAML keys (EMQX's where EMQX has one).
type Config struct {
	// Method is "post" (default) or "get". (method)
	Method string
	// URL is the service's address. The path and query may hold placeholders (escaped
	// when expanded); the scheme, host and port may not, and ${password} is refused.
	// http:// is accepted only for loopback hosts unless AllowPlainHTTP is set. (url)
	URL string
	// Body maps a field name to a placeholder template; ${password} is allowed here only.
	// POST sends it as a JSON object, or as a form when Headers sets content-type
	// application/x-www-form-urlencoded; GET sends it as query parameters. (body)
	Body map[string]string
	// Headers are sent with every request; values may be templates without ${password}.
	// Hop-by-hop headers, host and content-length are refused. (headers)
	Headers map[string]string
	// RequestTimeout bounds one authentication, waiting for a free connection included;
	// default 5s, at most 1m. (request_timeout)
	RequestTimeout time.Duration
	// SSL configures TLS for an https URL; the server is verified by default. (ssl)
	SSL tlsconf.ClientOptions
	// MaxConcurrency bounds the requests in flight to the service; default 64.
	// (max_concurrency)
	MaxConcurrency int
	// OnError is what a failed request or an unusable answer means: "deny" (default) or
	// "ignore" (let the next authenticator decide). (on_error)
	OnError string
	// AllowPlainHTTP permits an http:// URL to a host that is not loopback. Passwords
	// then cross the network in clear text; `rampart doctor` flags it.
	// (allow_plain_http)
	AllowPlainHTTP bool
}

// Values and limits.
const (
	MethodPost = "post"
	MethodGet  = "get"

	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"

	DefaultRequestTimeout = 5 * time.Second
	MaxRequestTimeout     = time.Minute
	DefaultMaxConcurrency = 64
	MaxMaxConcurrency     = 4096
	// MaxResponseSize bounds the service's answer; a larger body is an error.
	MaxResponseSize = 64 << 10
)

const (
	contentJSON = "application/json"
	contentForm = "application/x-www-form-urlencoded"
)

// settings is a validated configuration with its templates parsed.
type settings struct {
	method     string // http.MethodPost or http.MethodGet
	origin     string // scheme://host[:port], literal
	host       string
	https      bool
	path       *placeholder.Template
	query      *placeholder.Template // nil when the URL has no query
	body       []field
	headers    []field
	form       bool
	timeout    time.Duration
	maxConc    int
	ignoreErrs bool
	bodyHasPwd bool
}

type field struct {
	name string
	tmpl *placeholder.Template
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c Config) settings() (*settings, error) {
	s := &settings{timeout: c.RequestTimeout, maxConc: c.MaxConcurrency}
	switch strings.ToLower(c.Method) {
	case "", MethodPost:
		s.method = http.MethodPost
	case MethodGet:
		s.method = http.MethodGet
	default:
		return nil, fmt.Errorf("method: %q: want post or get", c.Method)
	}
	if err := c.parseURL(s); err != nil {
		return nil, err
	}
	if !s.https && c.SSL != (tlsconf.ClientOptions{}) {
		return nil, errors.New("ssl: set, but the url is not https")
	}
	if s.https {
		if _, err := tlsconf.NewClient(c.SSL); err != nil {
			return nil, fmt.Errorf("ssl: %w", err)
		}
	}

	for _, name := range sortedKeys(c.Body) {
		if name == "" {
			return nil, errors.New("body: empty field name")
		}
		t, err := placeholder.Parse(c.Body[name], placeholder.Options{})
		if err != nil {
			return nil, fmt.Errorf("body.%s: %w", name, err)
		}
		if slices.Contains(t.Vars(), placeholder.Password) {
			s.bodyHasPwd = true
		}
		s.body = append(s.body, field{name: name, tmpl: t})
	}

	contentType := ""
	for _, name := range sortedKeys(c.Headers) {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("headers: %q is not a valid header name", name)
		}
		if refusedHeader(name) {
			return nil, fmt.Errorf("headers: %s is managed by the HTTP client and cannot be set", name)
		}
		v := c.Headers[name]
		t, err := placeholder.Parse(v, placeholder.Options{NoPassword: true})
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", name, err)
		}
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("headers.%s: control characters are not allowed", name)
		}
		if strings.EqualFold(name, "content-type") {
			if t.HasVars() {
				return nil, errors.New("headers.content-type: placeholders are not allowed")
			}
			contentType = v
			continue // set from the body encoding below
		}
		s.headers = append(s.headers, field{name: http.CanonicalHeaderKey(name), tmpl: t})
	}
	if contentType != "" {
		if s.method == http.MethodGet {
			return nil, errors.New("headers.content-type: a GET request has no body")
		}
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, fmt.Errorf("headers.content-type: %w", err)
		}
		switch mt {
		case contentJSON:
		case contentForm:
			s.form = true
		default:
			return nil, fmt.Errorf("headers.content-type: %q: want %s or %s", contentType, contentJSON, contentForm)
		}
	}

	switch {
	case s.timeout == 0:
		s.timeout = DefaultRequestTimeout
	case s.timeout < 0 || s.timeout > MaxRequestTimeout:
		return nil, fmt.Errorf("request_timeout: %v: want more than 0s and at most %v", c.RequestTimeout, MaxRequestTimeout)
	}
	switch {
	case s.maxConc == 0:
		s.maxConc = DefaultMaxConcurrency
	case s.maxConc < 0 || s.maxConc > MaxMaxConcurrency:
		return nil, fmt.Errorf("max_concurrency: %d: want 1 to %d", c.MaxConcurrency, MaxMaxConcurrency)
	}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		s.ignoreErrs = true
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	return s, nil
}

// parseURL splits the URL into a literal origin, a path template (expanded with path
// escaping) and a query template (expanded with query escaping), so a placeholder value
// can neither change the host nor add a query parameter.
func (c Config) parseURL(s *settings) error {
	if c.URL == "" {
		return errors.New("url: required")
	}
	if strings.Contains(c.URL, "#") {
		return errors.New("url: a fragment is not allowed")
	}
	base, rawQuery, hasQuery := strings.Cut(c.URL, "?")
	scheme, rest, ok := strings.Cut(base, "://")
	if !ok {
		return fmt.Errorf("url: %q: want http:// or https://", c.URL)
	}
	switch strings.ToLower(scheme) {
	case "https":
		s.https = true
	case "http":
	default:
		return fmt.Errorf("url: scheme %q: want http or https", scheme)
	}
	authority, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.Contains(authority, "${") {
		return errors.New("url: placeholders are not allowed in the host or port")
	}
	if strings.Contains(authority, "@") {
		return errors.New("url: credentials in the URL are refused; send them in headers")
	}
	u, err := url.Parse(strings.ToLower(scheme) + "://" + authority)
	if err != nil || u.Host == "" {
		return fmt.Errorf("url: %q: no valid host", c.URL)
	}
	s.origin, s.host = u.Scheme+"://"+u.Host, u.Host
	if !s.https && !c.AllowPlainHTTP && !httpc.IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("url: plain http to %s would send passwords in clear text; use https or set allow_plain_http", u.Hostname())
	}
	if s.path, err = placeholder.Parse(path, placeholder.Options{NoPassword: true}); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if hasQuery && rawQuery != "" {
		if s.query, err = placeholder.Parse(rawQuery, placeholder.Options{NoPassword: true}); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters (CR and LF above all), which would let a
// value end the header and start another.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func refusedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
		"te", "trailer", "proxy-connection", "proxy-authorization":
		return true
	}
	return false
}
