// Package httpsrc is the http authorization source: each question (may this client
// publish to, or subscribe to, this topic?) becomes one POST or GET to a configured
// service, built from templates of client placeholders and the question's ${action},
// ${topic}, ${qos} and ${retain}. The service answers with a JSON object
// {"result": "allow" | "deny" | "ignore"}; ignore, or 204 No Content, is no match (the
// next source decides).
//
// Every failure decides Deny, or no match when the source is configured with
// on_error: ignore: a status other than 2xx (redirects are not followed), an answer that
// is not that JSON object or is larger than MaxAnswerSize, a timeout, a refused or broken
// connection, or no free request slot within the timeout. Requests are bounded in
// number (max_concurrency) and time (request_timeout); values are escaped for where they
// land (path, query, JSON or form body), so a topic or client id holding '&', '=', '#',
// '?' or '/' cannot add a parameter or a path segment. The chain's decision cache sits in
// front of this source: repeated questions do not reach the service.
package httpsrc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Name is the source's name in configuration, logs and metrics.
const Name = "http"

// Source asks an HTTP service. It is safe for concurrent use.
type Source struct {
	p      *compiled
	client *http.Client
	slots  chan struct{}
	log    *slog.Logger
	fails  failureLog
}

// failureLogEvery is how often failures are logged at most.
const failureLogEvery = 10 * time.Second

var _ authz.Source = (*Source)(nil)

// New validates cfg and builds the source. It starts no goroutine; Close releases idle
// connections.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := cfg.compile()
	if err != nil {
		return nil, fmt.Errorf("http authz: %w", err)
	}
	s := &Source{
		p:      p,
		client: httpc.New(httpc.Options{Timeout: p.Timeout, MaxConns: p.MaxConcurrency, MaxHeaderBytes: 32 << 10, TLS: p.TLS}),
		slots:  make(chan struct{}, p.MaxConcurrency),
		log:    log,
		fails:  failureLog{every: failureLogEvery},
	}
	onError := OnErrorDeny
	if p.IgnoreErrors {
		onError = OnErrorIgnore
	}
	log.Info("http authorization source ready", "method", p.Method, "service", p.Origin,
		"max_concurrency", p.MaxConcurrency, "request_timeout", p.Timeout, "on_error", onError)
	return s, nil
}

// Name implements authz.Source.
func (s *Source) Name() string { return Name }

// Close closes idle connections to the service.
func (s *Source) Close() { s.client.CloseIdleConnections() }

// ForClient implements authz.Source. The answer keeps a copy of info (its Attrs map is
// shared and must not be modified afterwards).
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	c := &client{s: s}
	if info != nil {
		c.info = *info
	}
	return c
}

// UsesPlaceholders implements the chain's optional question: this source's templates
// expand into HTTP requests, escaped, never into topic filters, so no client id or
// username can widen anything here.
func (s *Source) UsesPlaceholders() bool { return false }

type client struct {
	s    *Source
	info clientinfo.Info
}

// Authorize implements authz.ClientSource: one request, bounded by request_timeout from
// the moment it is called (waiting for a free slot included) and by ctx.
func (c *client) Authorize(ctx context.Context, a authz.Action, topic string) authz.Decision {
	s := c.s
	if (a.Kind != authz.ActPublish && a.Kind != authz.ActSubscribe) || a.QoS > 2 {
		return s.fail("not a publish or subscribe question (kind %d, qos %d)", a.Kind, a.QoS)
	}
	ctx, cancel := context.WithTimeout(ctx, s.p.Timeout)
	defer cancel()
	if ctx.Err() != nil {
		return s.fail("no time left to ask the service")
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return s.fail("all %d requests to the service are in flight and none finished in time", s.p.MaxConcurrency)
	}
	defer func() { <-s.slots }()

	q := newQuestion(a, topic)
	req, err := s.p.Build(ctx, values{client: placeholder.Values{Info: &c.info}, q: &q})
	if err != nil {
		return s.fail("%v", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return s.fail("%s", httpc.Describe(ctx, err, s.p.Timeout))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return authz.NoMatch
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return s.fail("service answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerSize+1))
	switch {
	case err != nil:
		return s.fail("reading the answer: %s", httpc.Describe(ctx, err, s.p.Timeout))
	case len(body) > MaxAnswerSize:
		return s.fail("answer longer than %d bytes", MaxAnswerSize)
	}
	d, err := parseAnswer(body)
	if err != nil {
		return s.fail("%v", err)
	}
	return d
}

// answer is the JSON the service returns; other fields are ignored.
type answer struct {
	Result *string `json:"result"`
}

// parseAnswer reads a 2xx answer body: exactly one JSON object with a result.
func parseAnswer(body []byte) (authz.Decision, error) {
	var ans answer
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ans); err != nil {
		return authz.NoMatch, fmt.Errorf("answer is not a JSON object with a result: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return authz.NoMatch, errors.New("answer has data after the JSON object")
	}
	if ans.Result == nil {
		return authz.NoMatch, errors.New(`answer has no "result"`)
	}
	switch strings.ToLower(*ans.Result) {
	case "allow":
		return authz.Allow, nil
	case "deny":
		return authz.Deny, nil
	case "ignore":
		return authz.NoMatch, nil
	}
	return authz.NoMatch, fmt.Errorf("result %.32q: want allow, deny or ignore", *ans.Result)
}

// fail is the decision on an error: Deny, or NoMatch with on_error: ignore.
func (s *Source) fail(format string, args ...any) authz.Decision {
	detail := fmt.Sprintf(format, args...)
	d, outcome := authz.Deny, "denied"
	if s.p.IgnoreErrors {
		d, outcome = authz.NoMatch, "ignored as configured (on_error: ignore)"
	}
	s.fails.log(s.log, "http authz: the service failed; the question is "+outcome, detail)
	return d
}

// failureLog limits failure messages to one per interval, with the count of those left
// out: an unreachable service must not turn every publish into a log line.
type failureLog struct {
	every      time.Duration
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

func (f *failureLog) log(l *slog.Logger, msg, detail string) {
	now := time.Now()
	f.mu.Lock()
	if now.Before(f.next) {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	n := f.suppressed
	f.suppressed, f.next = 0, now.Add(f.every)
	f.mu.Unlock()
	l.Warn(msg, "detail", detail, "failures_not_logged", n)
}
