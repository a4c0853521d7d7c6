package httpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// RequestConfig is the configuration shared by the HTTP authenticator and the HTTP
// authorization source: where to send a request and how to build it from templates.
// Key names in comments are the YAML keys (EMQX's where EMQX has one); which variables a
// template may hold is the caller's business (see Compile).
type RequestConfig struct {
	// Method is "post" (default) or "get". (method)
	Method string
	// URL is the service's address, http:// or https://. Its path and query may hold
	// placeholders, escaped for where they land; its scheme, host and port may not.
	// http:// is accepted only for a loopback host unless AllowPlainHTTP is set. (url)
	URL string
	// Body maps field names to templates. POST sends it as a JSON object, or as a form
	// when Headers sets content-type application/x-www-form-urlencoded; GET sends it as
	// query parameters. (body)
	Body map[string]string
	// Headers are sent with every request; values may be templates, content-type's may
	// not. Host, content-length and hop-by-hop headers are refused. (headers)
	Headers map[string]string
	// RequestTimeout bounds one request, waiting for a free request slot included;
	// default 5s, at most 1m. (request_timeout)
	RequestTimeout time.Duration
	// SSL configures TLS for an https URL; the server is verified by default. (ssl)
	SSL tlsconf.ClientOptions
	// MaxConcurrency bounds the requests in flight to the service; default 64, at most
	// 4096. (max_concurrency)
	MaxConcurrency int
	// OnError is what a failed request or an unusable answer means: "deny" (default) or
	// "ignore" (the next authenticator or source decides). (on_error)
	OnError string
	// AllowPlainHTTP permits an http:// URL to a host that is not loopback; `rampart
	// doctor` flags it. (allow_plain_http)
	AllowPlainHTTP bool
}

// Values and limits of a RequestConfig.
const (
	MethodPost = "post"
	MethodGet  = "get"

	OnErrorDeny   = "deny"
	OnErrorIgnore = "ignore"

	DefaultRequestTimeout = 5 * time.Second
	MaxRequestTimeout     = time.Minute
	DefaultMaxConcurrency = 64
	MaxMaxConcurrency     = 4096
)

// Content types of a request body.
const (
	ContentJSON = "application/json"
	ContentForm = "application/x-www-form-urlencoded"
)

// Part is where in the request a template sits.
type Part int

// Parts of a request.
const (
	PartURL    Part = iota // the URL path or query
	PartBody               // a body field (a query parameter with GET)
	PartHeader             // a header value
)

// Template is a parsed text whose variables take their values from a V.
type Template[V any] interface {
	// Expand returns the text with every value passed through escape (nil: the raw
	// value).
	Expand(vals V, escape func(string) string) string
	// HasVars reports whether the text uses any variable.
	HasVars() bool
}

// Profile is what differs between the callers of Compile besides their templates.
type Profile struct {
	// UserAgent is the User-Agent header of every request.
	UserAgent string
	// PlainHTTPRisk completes "url: plain http to HOST ..." when http:// to a host that is
	// not loopback is refused.
	PlainHTTPRisk string
}

// Request is a compiled RequestConfig: validated, its defaults applied and its templates
// parsed. It is immutable and safe for concurrent use.
type Request[V any] struct {
	Method         string // http.MethodPost or http.MethodGet
	Origin         string // scheme://host[:port], literal
	HTTPS          bool
	TLS            *tls.Config // for an https URL; nil otherwise
	Timeout        time.Duration
	MaxConcurrency int
	IgnoreErrors   bool // on_error: ignore

	host    string // host[:port], to check the built request against
	path    Template[V]
	query   Template[V] // nil without a query
	body    []field[V]
	headers []field[V]
	form    bool
	profile Profile
}

type field[V any] struct {
	name string
	t    Template[V]
}

// Compile validates c, parsing every template with parse (told where the text sits);
// errors name the YAML key.
func Compile[V any](c RequestConfig, p Profile, parse func(text string, in Part) (Template[V], error)) (*Request[V], error) {
	r := &Request[V]{Timeout: c.RequestTimeout, MaxConcurrency: c.MaxConcurrency, profile: p}
	switch strings.ToLower(c.Method) {
	case "", MethodPost:
		r.Method = http.MethodPost
	case MethodGet:
		r.Method = http.MethodGet
	default:
		return nil, fmt.Errorf("method: %q: want post or get", c.Method)
	}
	if err := r.compileURL(c, parse); err != nil {
		return nil, err
	}
	switch {
	case r.HTTPS:
		tlsCfg, err := tlsconf.NewClient(c.SSL)
		if err != nil {
			return nil, fmt.Errorf("ssl: %w", err)
		}
		r.TLS = tlsCfg
	case c.SSL != (tlsconf.ClientOptions{}):
		return nil, errors.New("ssl: set, but the url is not https")
	}

	for _, name := range sortedKeys(c.Body) {
		if name == "" {
			return nil, errors.New("body: empty field name")
		}
		t, err := parse(c.Body[name], PartBody)
		if err != nil {
			return nil, fmt.Errorf("body.%s: %w", name, err)
		}
		r.body = append(r.body, field[V]{name: name, t: t})
	}
	if err := r.compileHeaders(c, parse); err != nil {
		return nil, err
	}

	switch {
	case r.Timeout == 0:
		r.Timeout = DefaultRequestTimeout
	case r.Timeout < 0 || r.Timeout > MaxRequestTimeout:
		return nil, fmt.Errorf("request_timeout: %v: want more than 0s and at most %v", c.RequestTimeout, MaxRequestTimeout)
	}
	switch {
	case r.MaxConcurrency == 0:
		r.MaxConcurrency = DefaultMaxConcurrency
	case r.MaxConcurrency < 0 || r.MaxConcurrency > MaxMaxConcurrency:
		return nil, fmt.Errorf("max_concurrency: %d: want 1 to %d", c.MaxConcurrency, MaxMaxConcurrency)
	}
	switch c.OnError {
	case "", OnErrorDeny:
	case OnErrorIgnore:
		r.IgnoreErrors = true
	default:
		return nil, fmt.Errorf("on_error: %q: want deny or ignore", c.OnError)
	}
	return r, nil
}

// compileURL keeps the origin literal and makes templates of the path (expanded with
// path escaping) and the query (query escaping): a value can then neither reach another
// host nor add a path segment or a query parameter.
func (r *Request[V]) compileURL(c RequestConfig, parse func(string, Part) (Template[V], error)) error {
	raw := c.URL
	switch {
	case raw == "":
		return errors.New("url: required")
	case strings.Contains(raw, "#"):
		return errors.New("url: a fragment is not allowed")
	case (hasControl(raw) || strings.ContainsAny(raw, " \t")):
		return errors.New("url: spaces and control characters are not allowed")
	}
	beforeQuery, rawQuery, hasQuery := strings.Cut(raw, "?")
	scheme, rest, ok := strings.Cut(beforeQuery, "://")
	if !ok {
		return fmt.Errorf("url: %q: want http:// or https://", raw)
	}
	switch strings.ToLower(scheme) {
	case "https":
		r.HTTPS = true
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
	if err != nil || u.Host == "" || (u.Hostname() == "") {
		return fmt.Errorf("url: %q: no valid host", raw)
	}
	r.Origin, r.host = u.Scheme+"://"+u.Host, u.Host
	if !r.HTTPS && !c.AllowPlainHTTP && !IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("url: plain http to %s %s; use https or set allow_plain_http", u.Hostname(), r.profile.PlainHTTPRisk)
	}
	if hasDotSegment(path) {
		return errors.New("url: the path has a \".\" or \"..\" segment")
	}
	if r.path, err = parse(path, PartURL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if hasQuery && rawQuery != "" {
		if r.query, err = parse(rawQuery, PartURL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	return nil
}

// compileHeaders parses the header templates; content-type is not sent as configured
// but chooses the body encoding.
func (r *Request[V]) compileHeaders(c RequestConfig, parse func(string, Part) (Template[V], error)) error {
	contentType := ""
	for _, name := range sortedKeys(c.Headers) {
		v := c.Headers[name]
		switch {
		case !isToken(name):
			return fmt.Errorf("headers: %q is not a valid header name", name)
		case managedHeader(name):
			return fmt.Errorf("headers: %s is managed by the HTTP client and cannot be configured", name)
		case hasControl(v):
			return fmt.Errorf("headers.%s: control characters are not allowed", name)
		}
		t, err := parse(v, PartHeader)
		if err != nil {
			return fmt.Errorf("headers.%s: %w", name, err)
		}
		if strings.EqualFold(name, "content-type") {
			if t.HasVars() {
				return errors.New("headers.content-type: placeholders are not allowed")
			}
			contentType = v
			continue
		}
		r.headers = append(r.headers, field[V]{name: http.CanonicalHeaderKey(name), t: t})
	}
	if contentType == "" {
		return nil
	}
	if r.Method == http.MethodGet {
		return errors.New("headers.content-type: a GET request has no body")
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("headers.content-type: %w", err)
	}
	switch mt {
	case ContentJSON:
	case ContentForm:
		r.form = true
	default:
		return fmt.Errorf("headers.content-type: %q: want %s or %s", contentType, ContentJSON, ContentForm)
	}
	return nil
}

// Build returns the request for vals. Values are escaped for where they land: path
// escaping in the URL path, query escaping in the query, JSON or form encoding in the
// body; a header value that would hold a control character is refused. Errors never
// quote the URL, which holds client values.
func (r *Request[V]) Build(ctx context.Context, vals V) (*http.Request, error) {
	path := r.path.Expand(vals, url.PathEscape)
	if hasDotSegment(path) {
		// A value of "." or ".." would move the request to another path once the
		// service (or a proxy in front of it) normalises it.
		return nil, errors.New("a value expanded into the URL path is a dot segment")
	}
	target := r.Origin + path
	query := ""
	if r.query != nil {
		query = r.query.Expand(vals, url.QueryEscape)
	}
	var (
		body        io.Reader
		contentType string
	)
	if len(r.body) > 0 {
		if r.Method == http.MethodGet || r.form {
			form := make(url.Values, len(r.body))
			for _, f := range r.body {
				form.Set(f.name, f.t.Expand(vals, nil))
			}
			if r.Method == http.MethodGet {
				query = joinQuery(query, form.Encode())
			} else {
				body, contentType = strings.NewReader(form.Encode()), ContentForm
			}
		} else {
			obj := make(map[string]string, len(r.body))
			for _, f := range r.body {
				obj[f.name] = f.t.Expand(vals, nil)
			}
			data, err := json.Marshal(obj)
			if err != nil {
				return nil, fmt.Errorf("encoding the body: %w", err)
			}
			body, contentType = bytes.NewReader(data), ContentJSON
		}
	}
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, body)
	if err != nil {
		// The error would quote the URL, which holds client values.
		return nil, errors.New("the expanded URL is not valid")
	}
	if req.URL.Host != r.host {
		return nil, errors.New("the expanded URL names another host")
	}
	req.Header.Set("Accept", ContentJSON)
	req.Header.Set("User-Agent", r.profile.UserAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range r.headers {
		v := h.t.Expand(vals, nil)
		if hasControl(v) {
			return nil, fmt.Errorf("header %s: the expanded value holds a control character", h.name)
		}
		req.Header.Set(h.name, v)
	}
	return req, nil
}

// Describe names a transport error without the URL, which holds client values (and may
// hold a password).
func Describe(ctx context.Context, err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer in time (request_timeout %v)", timeout)
	case errors.Is(err, context.Canceled):
		return "request canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer in time (request_timeout %v)", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "request failed: " + err.Error()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// hasDotSegment reports whether a URL path has a "." or ".." segment.
func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func joinQuery(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "&" + b
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
