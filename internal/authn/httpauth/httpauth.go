// Package httpauth authenticates clients by asking an HTTP service: each CONNECT becomes
// one POST (or GET) built from configured placeholder templates, and the service's JSON
// answer says allow, deny or ignore, with optional superuser flag, authorization rules,
// client attributes and expiry. Requests are bounded in number, time and answer size;
// a failure denies unless configured to ignore.
package httpauth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
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
	r := s.req
	a := &Authenticator{
		s:      s,
		client: httpc.New(httpc.Options{Timeout: r.Timeout, MaxConns: r.MaxConcurrency, MaxHeaderBytes: 64 << 10, TLS: r.TLS}),
		sem:    make(chan struct{}, r.MaxConcurrency),
		log:    log,
	}
	if r.Method == http.MethodGet && s.bodyHasPwd {
		log.Warn("http authn: method get puts ${password} in the URL query, where proxies and access logs may record it; prefer post")
	}
	log.Info("http authenticator ready", "method", r.Method, "service", r.Origin,
		"max_concurrency", r.MaxConcurrency, "request_timeout", r.Timeout, "on_error", cfg.OnError)
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
	ctx, cancel := context.WithTimeout(ctx, a.s.req.Timeout)
	defer cancel()

	if ctx.Err() != nil {
		return a.fail("no time left to ask the service")
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return a.fail("all %d requests to the service are in flight and none finished in time", a.s.req.MaxConcurrency)
	}
	defer func() { <-a.sem }()

	req, err := a.s.req.Build(ctx, vals)
	if err != nil {
		return a.fail("%v", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return a.fail("%s", httpc.Describe(ctx, err, a.s.req.Timeout))
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
		return a.fail("reading the answer: %s", httpc.Describe(ctx, err, a.s.req.Timeout))
	case len(body) > MaxResponseSize:
		return a.fail("answer larger than %d bytes", MaxResponseSize)
	}
	res, err := decide(body, time.Now())
	if err != nil {
		return a.fail("%v", err)
	}
	return res
}

// fail is the answer to an error: Deny with NotAuthorized, or Ignore with on_error ignore.
func (a *Authenticator) fail(format string, args ...any) authn.Result {
	detail := "http: " + fmt.Sprintf(format, args...)
	if a.s.req.IgnoreErrors {
		a.log.Warn("http authn: the service failed; ignoring as configured (on_error: ignore)", "detail", detail)
		return authn.Ignored(detail)
	}
	return authn.Denied(packet.NotAuthorized, detail)
}
