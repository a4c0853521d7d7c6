package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// maxJWKSSize bounds a JWKS response; a real key set is a few kilobytes.
const maxJWKSSize = 1 << 20

// jwks holds the keys fetched from a JWKS endpoint. keyfunc's storage refreshes them every
// refresh interval in its own goroutine, and once per unknown-kid window when a token
// names a key it does not have.
type jwks struct {
	kf     keyfunc.Keyfunc
	client *http.Client
	cancel context.CancelFunc
}

func newJWKS(ctx context.Context, s *settings, log *slog.Logger) (*jwks, error) {
	tlsCfg, err := tlsconf.NewClient(s.tls)
	if err != nil {
		return nil, fmt.Errorf("jwt: ssl: %w", err)
	}
	tr := &http.Transport{
		DialContext:            (&net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    s.timeout,
		ResponseHeaderTimeout:  s.timeout,
		MaxIdleConns:           2,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
		// No Proxy: the key source is the configured endpoint, not whatever the
		// environment's HTTPS_PROXY says.
	}
	client := &http.Client{
		Transport:     limitTransport{rt: tr, max: maxJWKSSize},
		CheckRedirect: refuseRedirect,
		Timeout:       s.timeout,
	}
	// The refresh goroutine lives until Close, not until the start-up context ends.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	noStartError := true // start without keys when the endpoint is down; Deny until they arrive
	base, err := keyfunc.NewDefaultOverrideCtx(bg, []string{s.endpoint}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               s.timeout,
		NoErrorReturnFirstHTTPReq: &noStartError,
		RateLimitWaitMax:          s.timeout,
		RefreshInterval:           s.refresh,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(s.unknownKID), 1),
		RefreshErrorHandlerFunc: func(endpoint string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Error("jwt: fetching the JWKS failed; tokens signed by keys not yet known are refused",
					"endpoint", endpoint, "error", err)
			}
		},
	})
	if err != nil {
		cancel()
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("jwt: jwks: %w", err)
	}
	// Keys marked for encryption never verify a signature.
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:          bg,
		Storage:      base.Storage(),
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		cancel()
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("jwt: jwks: %w", err)
	}
	return &jwks{kf: kf, client: client, cancel: cancel}, nil
}

// keyCount reports how many keys are loaded.
func (j *jwks) keyCount(ctx context.Context) int {
	keys, err := j.kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return 0
	}
	return len(keys)
}

// keyfunc returns the verification key(s) for a token, refusing any key whose type, curve
// or size does not fit the token's algorithm.
func (j *jwks) keyfunc(ctx context.Context) jwt.Keyfunc {
	inner := j.kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		key, err := inner(t)
		if err != nil {
			kid, _ := t.Header["kid"].(string)
			return nil, &keyError{kid: kid, cause: err}
		}
		if set, ok := key.(jwt.VerificationKeySet); ok {
			var fit jwt.VerificationKeySet
			for _, k := range set.Keys {
				if checkKey(alg, k) == nil {
					fit.Keys = append(fit.Keys, k)
				}
			}
			if len(fit.Keys) == 0 {
				return nil, fmt.Errorf("%w: no key in the JWKS fits %s", jwkset.ErrKeyNotFound, alg)
			}
			return fit, nil
		}
		if err := checkKey(alg, key); err != nil {
			return nil, fmt.Errorf("the key the token names does not fit: %w", err)
		}
		return key, nil
	}
}

// keyError says why no JWKS key was found for a token.
type keyError struct {
	kid   string
	cause error
}

func (e *keyError) Error() string {
	reason := "not in the key set"
	switch msg := e.cause.Error(); {
	case errors.Is(e.cause, jwkset.ErrKeyNotFound):
	case strings.Contains(msg, "rate limiter"):
		// jwkset's limiter refused another fetch within unknown_kid_refresh_interval.
		reason = "not in the key set, and the set was fetched too recently to look again"
	default:
		// alg or use mismatch; keyfunc joins errors with newlines.
		reason = strings.ReplaceAll(msg, "\n", "; ")
	}
	return fmt.Sprintf("no usable JWKS key for kid %.64q: %s", e.kid, reason)
}

func (e *keyError) Unwrap() error { return e.cause }

func (j *jwks) close() {
	j.cancel()
	j.client.CloseIdleConnections()
}

func refuseRedirect(*http.Request, []*http.Request) error {
	return errors.New("redirects are not followed")
}

// limitTransport cuts every response body at max bytes with an error, so no endpoint can
// make the broker buffer an unbounded answer.
type limitTransport struct {
	rt  *http.Transport
	max int64
}

func (l limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: l.max}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (l limitTransport) CloseIdleConnections() { l.rt.CloseIdleConnections() }

var errTooLarge = errors.New("response body too large")

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
