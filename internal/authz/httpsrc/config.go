package httpsrc

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
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config configures the http authorization source. Key names in comments are the YAML
// keys of an authorization source of type http (EMQX's where EMQX has one).
type Config struct {
	// Method is "post" (default) or "get". (method)
	Method string
	// URL is the service's address, http:// or https://. Its path and query may hold
	// placeholders, escaped for where they land; its scheme, host and port may not.
	// http:// is accepted only for a loopback host unless AllowPlainHTTP is set. (url)
	URL string
	// Body maps field names to templates: client placeholders such as ${clientid},
	// ${username}, ${peerhost}, ${cert_common_name}, ${client_attrs.NAME} (never
	// ${password}) and the question's ${action}, ${topic}, ${qos} and ${retain}. POST
	// sends it as a JSON object, or as a form when Headers sets content-type
	// application/x-www-form-urlencoded; GET sends it as query parameters. (body)
	Body map[string]string
	// Headers are sent with every request; values may be templates. Host,
	// content-length and hop-by-hop headers are refused. (headers)
	Headers map[string]string
	// RequestTimeout bounds one question, waiting for a free request slot included;
	// default 5s, at most 1m. (request_timeout)
	RequestTimeout time.Duration
	// SSL configures TLS for an https URL; the server is verified by default. (ssl)
	SSL tlsconf.ClientOptions
	// MaxConcurrency bounds the requests in flight to the service; default 64, at most
	// 4096. (max_concurrency)
	MaxConcurrency int
	// OnError is what a failed request or an unusable answer decides: "deny" (default) or
	// "ignore" (no match: the next source decides). (on_error)
	OnError string
	// AllowPlainHTTP permits an http:// URL to a host that is not loopback. Anyone on
	// the path then reads the questions and can forge the answers; `rampart doctor` flags
	// it. (allow_plain_http)
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
	// MaxAnswerSize bounds the service's answer body; a longer one is an error.
	MaxAnswerSize = 16 << 10
)

const (
	mimeJSON = "application/json"
	mimeForm = "application/x-www-form-urlencoded"
)

// compiled is a validated configuration with its templates parsed.
type compiled struct {
	method  string // http.MethodPost or http.MethodGet
	origin  string // scheme://host[:port], never templated
	host    string // host[:port], to check the built request against
	https   bool
	path    *template
	query   *template // nil without a query
	fields  []namedTemplate
	headers []namedTemplate
	form    bool
	timeout time.Duration
	maxConc int
	ignore  bool
}

type namedTemplate struct {
	name string
	t    *template
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c Config) compile() (*compiled, error) {
	p := &compiled{timeout: c.RequestTimeout, maxConc: c.MaxConcurrency}
	switch strings.ToLower(c.Method) {
	case "", MethodPost:
		p.method = http.MethodPost
	case MethodGet:
		p.method = http.MethodGet
	default:
		return nil, fmt.Errorf("method: %q: want post or get", c.Method)
	}
	if err := c.compileURL(p); err != nil {
		return nil, err
	}
	switch {
	case p.https:
		if _, err := tlsconf.NewClient(c.SSL); err != nil {
			return nil, fmt.Errorf("ssl: %w", err)
		}
	case c.SSL != (tlsconf.ClientOptions{}):
		return nil, errors.New("ssl: set, but the url is not https")
	}

	for _, name := range sortedKeys(c.Body) {
		if name == "" {
			return nil, errors.New("body: empty field name")
		}
		t, err := parseTemplate(c.Body[name])
		if err != nil {
			return nil, fmt.Errorf("body.%s: %w", name, err)
		}
		p.fields = append(p.fields, namedTemplate{name: name, t: t})
	}

	contentType := ""
	for _, name := range sortedKeys(c.Headers) {
		v := c.Headers[name]
		switch {
		case !isToken(name):
			return nil, fmt.Errorf("headers: %q is not a valid header name", name)
		case managedHeader(name):
			return nil, fmt.Errorf("headers: %s is set by the HTTP client and cannot be configured", name)
		case hasControl(v):
			return nil, fmt.Errorf("headers.%s: control characters are not allowed", name)
		}
		t, err := parseTemplate(v)
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", name, err)
		}
		if strings.EqualFold(name, "content-type") {
			if t.hasVars() {
				return nil, errors.New("headers.content-type: placeholders are not allowed")
			}
			contentType = v
			continue
		}
		p.headers = append(p.headers, namedTemplate{name: http.CanonicalHeaderKey(name), t: t})
	}
	if contentType != "" {
		if p.method == http.MethodGet {
			return nil, errors.New("headers.content-type: a GET request has no body")
		}
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, fmt.Errorf("headers.content-type: %w", err)
		}
		switch mt {
		case mimeJSON:
		case mimeForm:
			p.form = true
		default:
			return nil, fmt.Errorf("headers.content-type: %q: want %s or %s", contentType, mimeJSON, mimeForm)
		}
	}

	switch {
	case p.timeout == 0:
		p.timeout = DefaultRequestTimeout
	case p.timeout < 0 || p.timeout > MaxRequestTimeout:
		return nil, fmt.Errorf("request_timeout: %v: want more than 0s and at most %v", c.RequestTimeout, MaxRequestTimeout)
	}
	switch {
	case p.maxConc == 0:
		p.maxConc = DefaultMaxConcurrency
	case p.maxConc < 0 || p.maxConc > MaxMaxConcurrency:
		return nil, fmt.Errorf("max_concurrency: %d: want 1 to %d", c.MaxConcurrency, MaxMaxConcurrency)
	}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		p.ignore = true
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	return p, nil
}

// compileURL keeps the origin literal and makes templates of the path (expanded with
// path escaping) and the query (query escaping): a value can then neither reach another
// host nor add a path segment or a query parameter.
func (c Config) compileURL(p *compiled) error {
	raw := c.URL
	switch {
	case raw == "":
		return errors.New("url: required")
	case strings.Contains(raw, "#"):
		return errors.New("url: a fragment is not allowed")
	case hasControl(raw) || strings.ContainsAny(raw, " \t"):
		return errors.New("url: spaces and control characters are not allowed")
	}
	beforeQuery, rawQuery, hasQuery := strings.Cut(raw, "?")
	scheme, rest, ok := strings.Cut(beforeQuery, "://")
	if !ok {
		return fmt.Errorf("url: %q: want an http:// or https:// address", raw)
	}
	switch strings.ToLower(scheme) {
	case "https":
		p.https = true
	case "http":
	default:
		return fmt.Errorf("url: scheme %q: want http or https", scheme)
	}
	authority, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	switch {
	case strings.Contains(authority, "${"):
		return errors.New("url: placeholders are not allowed in the host or port")
	case strings.Contains(authority, "@"):
		return errors.New("url: credentials in the URL are refused; send them in headers")
	}
	u, err := url.Parse(strings.ToLower(scheme) + "://" + authority)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("url: %q: no valid host", raw)
	}
	p.origin, p.host = u.Scheme+"://"+u.Host, u.Host
	if !p.https && !c.AllowPlainHTTP && !httpc.IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("url: plain http to %s lets anyone on the path read the questions and forge the answers; use https or set allow_plain_http", u.Hostname())
	}
	if hasDotSegment(path) {
		return errors.New("url: the path has a \".\" or \"..\" segment")
	}
	if p.path, err = parseTemplate(path); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if hasQuery && rawQuery != "" {
		if p.query, err = parseTemplate(rawQuery); err != nil {
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

// isToken reports whether s is a header field name (an RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds a control character other than tab: CR or LF in a
// header value would end it and start another.
func hasControl(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// managedHeader names the headers the HTTP client sets itself.
func managedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "content-length", "transfer-encoding", "connection", "keep-alive",
		"upgrade", "te", "trailer", "proxy-connection", "proxy-authorization":
		return true
	}
	return false
}
