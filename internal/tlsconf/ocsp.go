package tlsconf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP: stapling a verified response for the server certificates, and checking client
// certificates with their issuer's responder.

// OCSP client check policies for client_ocsp_on_error.
const (
	OCSPOnErrorDeny  = "deny"
	OCSPOnErrorAllow = "allow"
)

// Defaults of OCSPOptions.
const (
	DefaultOCSPRefreshInterval = 5 * time.Minute
	DefaultOCSPHTTPTimeout     = 15 * time.Second
)

const (
	// maxOCSPResponseSize bounds a responder's answer (a response with a delegated
	// responder certificate is a few kilobytes).
	maxOCSPResponseSize = 256 << 10
	// ocspClockSkew is how far in the future a response's ThisUpdate may be.
	ocspClockSkew = 5 * time.Minute
	// clientOCSPCacheSize bounds the cached client certificate statuses.
	clientOCSPCacheSize = 10_000
	// minStapleRefresh is the shortest wait between two refreshes of the staples.
	minStapleRefresh = 10 * time.Second
	// stapleRetry is the longest wait before retrying a failed staple refresh.
	stapleRetry = time.Minute
)

// OCSPOptions configure OCSP stapling of the server certificates and OCSP checks of
// client certificates.
type OCSPOptions struct {
	Stapling        bool          // staple a verified OCSP response to every server certificate
	ResponderURL    string        // responder of the default certificate; "" = its AIA URL
	IssuerFile      string        // issuer of the default certificate; "" = the next certificate of certfile
	RefreshInterval time.Duration // how often staples are fetched again; 0 = 5m
	HTTPTimeout     time.Duration // bound of one OCSP request; 0 = 15s
	VerifyClient    bool          // check every verified client certificate with its issuer's responder
	ClientOnError   string        // "deny" (default) or "allow": the outcome when the responder cannot answer
}

func (o OCSPOptions) refreshInterval() time.Duration {
	if o.RefreshInterval <= 0 {
		return DefaultOCSPRefreshInterval
	}
	return o.RefreshInterval
}

func (o OCSPOptions) httpTimeout() time.Duration {
	if o.HTTPTimeout <= 0 {
		return DefaultOCSPHTTPTimeout
	}
	return o.HTTPTimeout
}

// check validates the options; errors start with the option's name.
func (o OCSPOptions) check(verifyPeer bool) []error {
	var errs []error
	if o.ResponderURL != "" {
		if err := checkFetchURL(o.ResponderURL); err != nil {
			errs = append(errs, fmt.Errorf("ocsp.responder_url: %w", err))
		}
	}
	if o.RefreshInterval < 0 {
		errs = append(errs, fmt.Errorf("ocsp.refresh_interval: must not be negative, got %s", o.RefreshInterval))
	}
	if o.HTTPTimeout < 0 {
		errs = append(errs, fmt.Errorf("ocsp.refresh_http_timeout: must not be negative, got %s", o.HTTPTimeout))
	}
	switch o.ClientOnError {
	case "", OCSPOnErrorDeny, OCSPOnErrorAllow:
	default:
		errs = append(errs, fmt.Errorf("ocsp.client_ocsp_on_error: %q is not valid; use deny or allow", o.ClientOnError))
	}
	if o.VerifyClient && !verifyPeer {
		errs = append(errs, errors.New("ocsp.verify_client_certificate: needs verify: verify_peer (OCSP is checked for verified client certificates)"))
	}
	return errs
}

// fetchOCSP asks url for the status of cert and returns the response once its signature
// (by issuer or a responder issuer delegated), subject and times are verified.
func fetchOCSP(ctx context.Context, client *http.Client, url string, cert, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	// The CertID hash is SHA-1, which every responder must accept (RFC 5019); it only
	// names the certificate, the response's signature is what is trusted.
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		return nil, fmt.Errorf("OCSP request: %w", err)
	}
	der, err := fetch(ctx, client, url, "application/ocsp-request", req, maxOCSPResponseSize)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder: %w", err)
	}
	resp, err := ocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		return nil, fmt.Errorf("OCSP response from %s: %w", url, err)
	}
	if err := checkOCSPResponse(resp, issuer, now); err != nil {
		return nil, fmt.Errorf("OCSP response from %s: %w", url, err)
	}
	return resp, nil
}

// checkOCSPResponse adds what ocsp.ParseResponseForCert leaves out: a response signed by
// a certificate other than the issuer counts only if that certificate is authorised for
// OCSP signing (RFC 6960 4.2.2.2) and valid; and the response must be current.
func checkOCSPResponse(resp *ocsp.Response, issuer *x509.Certificate, now time.Time) error {
	if c := resp.Certificate; c != nil && !bytes.Equal(c.Raw, issuer.Raw) {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return fmt.Errorf("signed by %q, which is neither the issuer nor authorised by it for OCSP signing", c.Subject)
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("the responder certificate %q is not valid now", c.Subject)
		}
	}
	if resp.ThisUpdate.After(now.Add(ocspClockSkew)) {
		return fmt.Errorf("produced for the future (thisUpdate %s)", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !resp.NextUpdate.IsZero() && !now.Before(resp.NextUpdate) {
		return fmt.Errorf("expired at %s", resp.NextUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// ocspURL returns the first http(s) OCSP responder of a certificate.
func ocspURL(c *x509.Certificate) (string, bool) {
	for _, u := range c.OCSPServer {
		if checkFetchURL(u) == nil {
			return u, true
		}
	}
	return "", false
}

// staple is a verified OCSP response of one server certificate.
type staple struct {
	der                    []byte
	thisUpdate, nextUpdate time.Time
}

// stapler keeps the verified staples of the served certificates, by leaf fingerprint.
type stapler struct {
	client   *http.Client
	timeout  time.Duration
	interval time.Duration
	mu       sync.Mutex // serialises refreshes
	cur      atomic.Pointer[map[[32]byte]staple]
}

// forCert returns the staple of the certificate with fingerprint fp, or nil when there is
// none valid at now: an expired response is never stapled.
func (s *stapler) forCert(fp [32]byte, now time.Time) []byte {
	m := s.cur.Load()
	if m == nil {
		return nil
	}
	st, ok := (*m)[fp]
	if !ok || !now.Before(st.nextUpdate) {
		return nil
	}
	return st.der
}

// refresh fetches a response for every certificate of set that staples, keeps each that
// verifies and says "good", and returns when to refresh again. A certificate whose fetch
// fails keeps its previous staple while that is valid.
func (s *stapler) refresh(ctx context.Context, set *certSet) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	old := map[[32]byte]staple{}
	if m := s.cur.Load(); m != nil {
		old = *m
	}
	next := map[[32]byte]staple{}
	due := now.Add(s.interval)
	var errs []error
	for _, sc := range set.all {
		if sc.responder == "" {
			continue
		}
		st, err := s.fetch(ctx, sc, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", sc.label, sc.certFile, err))
			if prev, ok := old[sc.fp]; ok && now.Before(prev.nextUpdate) {
				next[sc.fp] = prev
			}
			due = earliest(due, now.Add(min(s.interval, stapleRetry)))
			continue
		}
		next[sc.fp] = st
		due = earliest(due, nextStapleRefresh(now, st, s.interval))
	}
	s.cur.Store(&next)
	return due, errors.Join(errs...)
}

func (s *stapler) fetch(ctx context.Context, sc *servedCert, now time.Time) (staple, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := fetchOCSP(ctx, s.client, sc.responder, sc.cert.Leaf, sc.issuer, now)
	if err != nil {
		return staple{}, err
	}
	switch {
	case resp.Status == ocsp.Revoked:
		return staple{}, fmt.Errorf("the responder says the server certificate (serial %s) is REVOKED since %s; replace it",
			sc.cert.Leaf.SerialNumber, resp.RevokedAt.UTC().Format(time.RFC3339))
	case resp.Status != ocsp.Good:
		return staple{}, fmt.Errorf("the responder does not know the server certificate (status unknown)")
	case resp.NextUpdate.IsZero():
		return staple{}, errors.New("the response has no nextUpdate; a staple must say until when it holds")
	}
	return staple{der: resp.Raw, thisUpdate: resp.ThisUpdate, nextUpdate: resp.NextUpdate}, nil
}

// nextStapleRefresh is when a staple fetched at now is fetched again: after interval, or
// halfway through the response's validity if that comes first, so that a new response is
// in place well before nextUpdate; never sooner than minStapleRefresh.
func nextStapleRefresh(now time.Time, st staple, interval time.Duration) time.Time {
	t := now.Add(interval)
	if half := st.thisUpdate.Add(st.nextUpdate.Sub(st.thisUpdate) / 2); half.Before(t) {
		t = half
	}
	if floor := now.Add(minStapleRefresh); t.Before(floor) {
		t = floor
	}
	return t
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// clientStatus is a verified OCSP answer about one client certificate.
type clientStatus struct {
	status     int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	revokedAt  time.Time
	nextUpdate time.Time // zero: not cached
}

// clientOCSP checks verified client certificates with the OCSP responder their
// certificate names, caching each answer until its nextUpdate.
type clientOCSP struct {
	client       *http.Client
	timeout      time.Duration
	allowOnError bool
	log          *slog.Logger
	cache        *lru[string, clientStatus]
	flight       flight[string, clientStatus]
}

func newClientOCSP(o OCSPOptions, client *http.Client, log *slog.Logger) *clientOCSP {
	return &clientOCSP{client: client, timeout: o.httpTimeout(), allowOnError: o.ClientOnError == OCSPOnErrorAllow,
		log: log, cache: newLRU[string, clientStatus](clientOCSPCacheSize)}
}

// check is a VerifyConnection step: the leaf of the verified chain must be "good"
// according to its issuer's responder. A revoked or unknown certificate is refused; a
// responder that cannot be reached or answers something unverifiable refuses the client
// too, unless client_ocsp_on_error is allow.
func (c *clientOCSP) check(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) < 2 {
		return nil
	}
	leaf, issuer := cs.VerifiedChains[0][0], cs.VerifiedChains[0][1]
	st, err := c.status(leaf, issuer)
	if err != nil {
		if c.allowOnError {
			c.log.Warn("OCSP check of a client certificate failed; allowed by client_ocsp_on_error: allow",
				"cert_cn", leaf.Subject.CommonName, "cert_serial", leaf.SerialNumber.String(), "err", err)
			return nil
		}
		return fmt.Errorf("tlsconf: OCSP check of client certificate %q (serial %s) failed, refused (client_ocsp_on_error: deny): %w",
			leaf.Subject, leaf.SerialNumber, err)
	}
	switch st.status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return fmt.Errorf("tlsconf: certificate %q (serial %s) is revoked (OCSP, since %s)", leaf.Subject, leaf.SerialNumber, st.revokedAt.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("tlsconf: certificate %q (serial %s) is unknown to its OCSP responder", leaf.Subject, leaf.SerialNumber)
}

func (c *clientOCSP) status(leaf, issuer *x509.Certificate) (clientStatus, error) {
	ikh := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
	key := hex.EncodeToString(ikh[:]) + "/" + leaf.SerialNumber.String()
	if st, ok := c.cache.get(key); ok {
		if time.Now().Before(st.nextUpdate) {
			return st, nil
		}
		c.cache.remove(key)
	}
	url, ok := ocspURL(leaf)
	if !ok {
		return clientStatus{}, errors.New("the certificate names no http(s) OCSP responder")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.flight.do(ctx, key, func() (clientStatus, error) {
		resp, err := fetchOCSP(ctx, c.client, url, leaf, issuer, time.Now())
		if err != nil {
			return clientStatus{}, err
		}
		st := clientStatus{status: resp.Status, revokedAt: resp.RevokedAt, nextUpdate: resp.NextUpdate}
		if !st.nextUpdate.IsZero() {
			c.cache.put(key, st)
		}
		return st, nil
	})
}
