// Package httpc is what the HTTP authenticator and the HTTP authorization source share to
// ask an outside service. New builds the client: bounded connections reused between
// requests, every phase under a deadline, no proxy from the environment, and no redirects
// followed. RequestConfig is the configuration both accept (method, url, body, headers,
// request_timeout, ssl, max_concurrency, on_error, allow_plain_http); Compile validates it
// with the caller's template parser, and the compiled Request builds each HTTP request
// with every value escaped for where it lands, so no value can change the host, add a
// query parameter or a header.
package httpc

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Options configure a client.
type Options struct {
	// Timeout bounds the dial, the TLS handshake and the wait for response headers.
	Timeout time.Duration
	// MaxConns bounds the connections to the service, idle ones included.
	MaxConns int
	// MaxHeaderBytes bounds the response headers.
	MaxHeaderBytes int64
	// TLS is the client TLS configuration for https URLs; nil for http.
	TLS *tls.Config
}

// New returns a client. A redirect is returned as the final response (and, not being 2xx,
// is a failure for its callers): following it would send credentials or questions to
// wherever the service points. Proxy stays unset: requests go to the configured service,
// not to whatever HTTP_PROXY names in the environment.
func New(o Options) *http.Client {
	tr := &http.Transport{
		DialContext:            (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxIdleConns:           o.MaxConns,
		MaxIdleConnsPerHost:    o.MaxConns,
		MaxConnsPerHost:        o.MaxConns,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: o.MaxHeaderBytes,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        o.TLS,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// IsLoopbackHost reports whether a URL host (without port) is localhost or a loopback
// address: the only hosts plain http may reach without an explicit opt-in.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
