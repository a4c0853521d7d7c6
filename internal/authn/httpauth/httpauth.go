// Package httpauth authenticates clients by asking an HTTP service: each CONNECT becomes
// one POST (or GET) built from configured placeholder templates, and the service's JSON
// answer says allow, deny or ignore, with optional superuser flag, authorization rules,
// client attributes and expiry. Requests are bounded in number, time and answer size;
// a failure denies unless configured to ignore.
package httpauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Name is the authenticator's name in logs and metrics.
const Name = "password_based:http"

// Authenticator asks an HTTP service. It is safe for concurrent use.
type Authenticator struct {
	s      *settings
	client *http.Client
	sem    chan struct{}
	log    *slog.Logger
}

var _ authn.Authenticator = (*Authenticator)(nil)

// New validates cfg and builds the authenticator. It holds no goroutine of its own; Close
// releases its idle connections.
func New(_ context.Context, cfg Config, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("http authn: %w", err)
	}
	var tlsCfg *tls.Config
	if s.https {
		if tlsCfg, err = tlsconf.NewClient(cfg.SSL); err != nil {
			return nil, fmt.Errorf("http authn: ssl: %w", err)
		}
	}
	a := &Authenticator{
		s:      s,
		client: httpc.New(httpc.Options{Timeout: s.timeout, MaxConns: s.maxConc, MaxHeaderBytes: 64 << 10, TLS: tlsCfg}),
		sem:    make(chan struct{}, s.maxConc),
		log:    log,
	}
	if s.method == http.MethodGet && s.bodyHasPwd {
		log.Warn("http authn: method get puts ${password} in the URL query, where proxies and access logs may record it; prefer post")
	}
	log.Info("http authenticator ready", "method", s.method, "service", s.origin,
		"max_concurrency", s.maxConc, "request_timeout", s.timeout, "on_error", cfg.OnError)
	return a, nil
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Name }

// Close closes idle connections to the service.
func (a *Authenticator) Close() { a.client.CloseIdleConnections() }

// Authenticate implements authn.Authenticator.
//
// The service's answer decides: a 2xx JSON body with "result" allow, deny or ignore;
// 204 No Content is ignore (the service does not know the client). Any other status, a
// malformed body, a timeout or a transport error is an error: Deny with NotAuthorized,
// or Ignore when on_error is ignore. A deny answer is Deny with BadUserNameOrPassword.
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if info == nil {
		info = &clientinfo.Info{}
	}
	vals := placeholder.Values{Info: info}
	if cred != nil {
		vals.Password = cred.Password
	}
	ctx, cancel := context.WithTimeout(ctx, a.s.timeout)
	defer cancel()

	if ctx.Err() != nil {
		return a.fail("no time left to ask the service")
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return a.fail("all %d requests to the service are in flight and none finished in time", a.s.maxConc)
	}
	defer func() { <-a.sem }()

	req, err := a.request(ctx, vals)
	if err != nil {
		return a.fail("%v", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return a.fail("%s", describe(ctx, err, a.s.timeout))
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	switch {
	case !ok:
		return a.fail("service answered HTTP %d", resp.StatusCode)
	case resp.StatusCode == http.StatusNoContent:
		return authn.Ignored("http: service answered 204 No Content")
	case err != nil:
		return a.fail("reading the answer: %s", describe(ctx, err, a.s.timeout))
	case len(body) > MaxResponseSize:
		return a.fail("answer larger than %d bytes", MaxResponseSize)
	}
	res, err := decide(body, time.Now())
	if err != nil {
		return a.fail("%v", err)
	}
	return res
}

// request builds the HTTP request for one client. Values are escaped for where they land:
// path escaping in the URL path, query escaping in the query, JSON or form encoding in
// the body; a header value that would hold a control character is refused.
func (a *Authenticator) request(ctx context.Context, vals placeholder.Values) (*http.Request, error) {
	target := a.s.origin + a.s.path.Expand(vals, url.PathEscape)
	query := ""
	if a.s.query != nil {
		query = a.s.query.Expand(vals, url.QueryEscape)
	}
	var body io.Reader
	contentType := ""
	if len(a.s.body) > 0 {
		switch {
		case a.s.method == http.MethodGet || a.s.form:
			form := url.Values{}
			for _, f := range a.s.body {
				form.Set(f.name, f.tmpl.Expand(vals, nil))
			}
			if a.s.method == http.MethodGet {
				if query != "" {
					query += "&"
				}
				query += form.Encode()
			} else {
				body, contentType = strings.NewReader(form.Encode()), contentForm
			}
		default:
			m := make(map[string]string, len(a.s.body))
			for _, f := range a.s.body {
				m[f.name] = f.tmpl.Expand(vals, nil)
			}
			data, err := json.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("encoding the body: %w", err)
			}
			body, contentType = bytes.NewReader(data), contentJSON
		}
	}
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, a.s.method, target, body)
	if err != nil {
		// The error would quote the URL, which may hold client values: keep it out.
		return nil, errors.New("building the request URL failed")
	}
	if req.URL.Host != a.s.host {
		return nil, errors.New("the expanded URL names another host")
	}
	req.Header.Set("Accept", contentJSON)
	req.Header.Set("User-Agent", "rampart-authn")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range a.s.headers {
		v := h.tmpl.Expand(vals, nil)
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("header %s: the expanded value holds a control character", h.name)
		}
		req.Header.Set(h.name, v)
	}
	return req, nil
}

// describe names a transport error without the URL, whose query may hold client values
// (and, with method get, the password).
func describe(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no answer in time (request_timeout %v)", timeout)
	}
	if errors.Is(err, context.Canceled) {
		return "request canceled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("no answer in time (request_timeout %v)", timeout)
	}
	return "request failed: " + err.Error()
}

// fail is the answer to an error: Deny with NotAuthorized, or Ignore with on_error ignore.
func (a *Authenticator) fail(format string, args ...any) authn.Result {
	detail := "http: " + fmt.Sprintf(format, args...)
	if a.s.ignoreErrs {
		a.log.Warn("http authn: the service failed; ignoring as configured (on_error: ignore)", "detail", detail)
		return authn.Ignored(detail)
	}
	return authn.Denied(packet.NotAuthorized, detail)
}
