package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Defaults and bounds of CRLs fetched from distribution points.
const (
	DefaultCRLHTTPTimeout = 15 * time.Second
	// MaxCRLSize bounds a CRL fetched from a distribution point.
	MaxCRLSize = 10 << 20
	// crlCacheSize bounds the distribution points whose CRL is kept (one per CA in
	// practice); the least recently used is dropped and fetched again when needed.
	crlCacheSize = 32
	// crlRetryAfterFailure is how long a distribution point that failed is not asked
	// again by handshakes, so that a dead server is not hammered by every client.
	crlRetryAfterFailure = 10 * time.Second
)

// RevocationOptions say where a Revocation finds its CRLs.
type RevocationOptions struct {
	Files []string      // PEM CRL files
	Grace time.Duration // how long past NextUpdate a CRL is still believed
	// FromDistributionPoints fetches the CRL named by each certificate's CRL
	// distribution points (http and https URLs).
	FromDistributionPoints bool
	HTTPTimeout            time.Duration // bound of one CRL fetch; 0 = 15s
	Logger                 *slog.Logger
}

// Revocation checks verified client certificates against certificate revocation lists
// read from files and, optionally, fetched from the certificates' distribution points.
// Each CRL's signature is checked against the certificate that issued the certificate
// being checked, so a CRL from anyone else is never believed. A CRL that is past its
// NextUpdate by more than the grace period fails closed: certificates of its issuer are
// refused until a fresh CRL is loaded. A distribution point that cannot be fetched, with
// no good CRL of it at hand, fails closed too. Certificates whose issuer has no CRL file
// and that name no http(s) distribution point are not checked.
type Revocation struct {
	files []string
	grace time.Duration
	cur   atomic.Pointer[crlSet]
	dp    *dpCRLs // nil unless FromDistributionPoints
}

// crlSet is one loading of the CRL files, by issuer DN.
type crlSet struct {
	byIssuer map[string]*loadedCRL
}

// loadedCRL is a CRL with its revoked serial numbers indexed, so that checking a
// certificate, or every connected client after a refresh, does not walk the list.
type loadedCRL struct {
	crl     *x509.RevocationList
	revoked map[string]struct{} // serial numbers, decimal
}

func indexCRL(crl *x509.RevocationList) *loadedCRL {
	l := &loadedCRL{crl: crl, revoked: make(map[string]struct{}, len(crl.RevokedCertificateEntries))}
	for _, e := range crl.RevokedCertificateEntries {
		l.revoked[e.SerialNumber.String()] = struct{}{}
	}
	return l
}

// lists reports whether the CRL revokes the serial number (decimal).
func (l *loadedCRL) lists(serial string) bool {
	if l == nil {
		return false
	}
	_, ok := l.revoked[serial]
	return ok
}

// NewRevocation reads the CRL files; errors name the file. CRLs of distribution points
// are fetched when a handshake first needs them.
func NewRevocation(o RevocationOptions) (*Revocation, error) {
	r := &Revocation{files: o.Files, grace: o.Grace}
	r.cur.Store(&crlSet{})
	if o.FromDistributionPoints {
		log := o.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		timeout := o.HTTPTimeout
		if timeout <= 0 {
			timeout = DefaultCRLHTTPTimeout
		}
		r.dp = &dpCRLs{client: newHTTPClient(), timeout: timeout, log: log,
			cache: newLRU[string, *dpEntry](crlCacheSize), failed: newLRU[string, time.Time](crlCacheSize)}
	}
	if err := r.refreshFiles(); err != nil {
		return nil, err
	}
	return r, nil
}

// Refresh reads the CRL files again and fetches again the CRL of every distribution point
// in use. On error the previous lists stay in use; every error is returned.
func (r *Revocation) Refresh(ctx context.Context) error {
	err := r.refreshFiles()
	if r.dp != nil {
		err = errors.Join(err, r.dp.refresh(ctx))
	}
	return err
}

func (r *Revocation) refreshFiles() error {
	set := &crlSet{byIssuer: make(map[string]*loadedCRL)}
	for _, f := range r.files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("crl file %q: %w", f, err)
		}
		found := false
		for len(data) > 0 {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			if block.Type != "X509 CRL" {
				continue
			}
			crl, err := x509.ParseRevocationList(block.Bytes)
			if err != nil {
				return fmt.Errorf("crl file %q: %w", f, err)
			}
			key := crl.Issuer.String()
			if old, ok := set.byIssuer[key]; !ok || crl.Number.Cmp(old.crl.Number) > 0 {
				set.byIssuer[key] = indexCRL(crl)
			}
			found = true
		}
		if !found {
			return fmt.Errorf("crl file %q: no PEM \"X509 CRL\" block", f)
		}
	}
	r.cur.Store(set)
	return nil
}

// Revoked reports whether the certificate with this issuer DN and serial number (decimal)
// is on a loaded CRL. It does not check signatures (Check did, at the handshake, and a
// CRL of a distribution point is kept only once verified); it is meant for finding live
// sessions to end after a refresh.
func (r *Revocation) Revoked(issuerDN, serial string) bool {
	if r.cur.Load().byIssuer[issuerDN].lists(serial) {
		return true
	}
	if r.dp != nil {
		if m := r.dp.byIssuer.Load(); m != nil {
			for _, l := range (*m)[issuerDN] {
				if l.lists(serial) {
					return true
				}
			}
		}
	}
	return false
}

// Check is a tls.Config VerifyConnection step: every certificate of the verified chain
// (but the root) is checked against its issuer's CRLs.
func (r *Revocation) Check(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 {
		return nil
	}
	set := r.cur.Load()
	now := time.Now()
	var errs []error
	for _, chain := range cs.VerifiedChains {
		err := r.checkChain(set, chain, now)
		if err == nil {
			return nil // one good chain is enough
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (r *Revocation) checkChain(set *crlSet, chain []*x509.Certificate, now time.Time) error {
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		if crl := set.byIssuer[issuer.Subject.String()]; crl != nil {
			if err := checkCRL(crl, cert, issuer, now, r.grace); err != nil {
				return err
			}
		}
		if r.dp == nil {
			continue
		}
		crl, url, err := r.dp.forCert(cert, issuer, now)
		if err != nil {
			return fmt.Errorf("tlsconf: the CRL of %q (serial %s) cannot be had from its distribution point, refusing: %w", cert.Subject, cert.SerialNumber, err)
		}
		if crl == nil {
			continue // no http(s) distribution point
		}
		if err := checkCRL(crl, cert, issuer, now, r.grace); err != nil {
			return fmt.Errorf("%w (CRL from %s)", err, url)
		}
	}
	return nil
}

// checkCRL checks cert against l, which must be signed by issuer and current.
func checkCRL(l *loadedCRL, cert, issuer *x509.Certificate, now time.Time, grace time.Duration) error {
	crl := l.crl
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("tlsconf: CRL of %q is not signed by that issuer: %w", issuer.Subject, err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("tlsconf: CRL names issuer %q, not %q", crl.Issuer, issuer.Subject)
	}
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate.Add(grace)) {
		return fmt.Errorf("tlsconf: CRL of %q expired at %s (grace %s): refusing its certificates until a fresh CRL is loaded",
			issuer.Subject, crl.NextUpdate.Format(time.RFC3339), grace)
	}
	if l.lists(cert.SerialNumber.String()) {
		return fmt.Errorf("tlsconf: certificate %q (serial %s) is revoked", cert.Subject, cert.SerialNumber)
	}
	return nil
}

// dpCRLs are the CRLs fetched from distribution points, by URL, each verified against
// the issuer it was fetched for before it is kept.
type dpCRLs struct {
	client  *http.Client
	timeout time.Duration
	log     *slog.Logger
	cache   *lru[string, *dpEntry]
	failed  *lru[string, time.Time] // URL -> time of the last failed fetch
	flight  flight[string, *dpEntry]
	// byIssuer indexes the cached CRLs by issuer DN for Revoked; rebuilt on every change.
	byIssuer atomic.Pointer[map[string][]*loadedCRL]
}

type dpEntry struct {
	crl     *loadedCRL
	issuer  *x509.Certificate // the certificate whose key signed crl
	fetched time.Time
}

// forCert returns the CRL of the first http(s) distribution point of cert, fetching it
// when none is cached or the cached one is past its NextUpdate; nil when cert names none.
// A CRL that cannot be fetched is an error, unless one is cached (checkCRL then judges
// whether it is still within the grace period).
func (d *dpCRLs) forCert(cert, issuer *x509.Certificate, now time.Time) (*loadedCRL, string, error) {
	url := ""
	for _, u := range cert.CRLDistributionPoints {
		if checkFetchURL(u) == nil {
			url = u
			break
		}
	}
	if url == "" {
		return nil, "", nil
	}
	cached, ok := d.cache.get(url)
	// A current CRL is used as it is; an expired one is fetched again, but not by every
	// handshake while the CA is late publishing.
	if ok && (cached.crl.crl.NextUpdate.IsZero() || now.Before(cached.crl.crl.NextUpdate) || now.Sub(cached.fetched) < crlRetryAfterFailure) {
		return cached.crl, url, nil
	}
	if at, failed := d.failed.get(url); failed && now.Sub(at) < crlRetryAfterFailure {
		if ok {
			return cached.crl, url, nil
		}
		return nil, url, fmt.Errorf("fetching %s failed moments ago; not asking again before %s", url, crlRetryAfterFailure)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	e, err := d.flight.do(ctx, url, func() (*dpEntry, error) { return d.fetch(ctx, url, issuer, cached) })
	if err != nil {
		d.log.Error("CRL distribution point fetch failed", "url", url, "err", err)
		if ok {
			return cached.crl, url, nil
		}
		return nil, url, err
	}
	return e.crl, url, nil
}

// fetch gets the CRL at url, verifies it against issuer and keeps it. A CRL older than
// the one it would replace (a lower CRL number) is refused, so a replayed old list cannot
// undo a revocation.
func (d *dpCRLs) fetch(ctx context.Context, url string, issuer *x509.Certificate, prev *dpEntry) (*dpEntry, error) {
	e, err := d.fetchVerified(ctx, url, issuer, prev)
	if err != nil {
		d.failed.put(url, time.Now())
		return nil, err
	}
	d.failed.remove(url)
	d.cache.put(url, e)
	d.reindex()
	return e, nil
}

// reindex rebuilds byIssuer from the cache.
func (d *dpCRLs) reindex() {
	m := map[string][]*loadedCRL{}
	for _, url := range d.cache.keys() {
		if e, ok := d.cache.peek(url); ok {
			dn := e.crl.crl.Issuer.String()
			m[dn] = append(m[dn], e.crl)
		}
	}
	d.byIssuer.Store(&m)
}

func (d *dpCRLs) fetchVerified(ctx context.Context, url string, issuer *x509.Certificate, prev *dpEntry) (*dpEntry, error) {
	data, err := fetch(ctx, d.client, url, "", nil, MaxCRLSize)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil && block.Type == "X509 CRL" {
		data = block.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("CRL from %s: %w", url, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL from %s is not signed by %q: %w", url, issuer.Subject, err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("CRL from %s names issuer %q, not %q", url, crl.Issuer, issuer.Subject)
	}
	if prev != nil && prev.crl.crl.Number != nil && crl.Number != nil && crl.Number.Cmp(prev.crl.crl.Number) < 0 {
		return nil, fmt.Errorf("CRL from %s has number %s, older than the %s already held; keeping the newer", url, crl.Number, prev.crl.crl.Number)
	}
	return &dpEntry{crl: indexCRL(crl), issuer: issuer, fetched: time.Now()}, nil
}

// refresh fetches again the CRL of every distribution point in the cache.
func (d *dpCRLs) refresh(ctx context.Context) error {
	var errs []error
	for _, url := range d.cache.keys() {
		prev, ok := d.cache.peek(url)
		if !ok {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, d.timeout)
		_, err := d.flight.do(fctx, url, func() (*dpEntry, error) { return d.fetch(fctx, url, prev.issuer, prev) })
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("CRL distribution point %s: %w", url, err))
		}
	}
	return errors.Join(errs...)
}
