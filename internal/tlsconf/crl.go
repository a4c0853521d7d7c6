package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Revocation checks verified client certificates against certificate revocation lists
// read from files. Each CRL's signature is checked against the certificate that issued
// the certificate being checked, so a CRL from anyone else is never believed. A CRL that
// is past its NextUpdate by more than the grace period fails closed: certificates of its
// issuer are refused until a fresh CRL is loaded. Certificates whose issuer has no CRL
// are not checked.
type Revocation struct {
	files []string
	grace time.Duration
	cur   atomic.Pointer[crlSet]
}

// crlSet is one loading of the CRL files, by issuer DN.
type crlSet struct {
	byIssuer map[string]*x509.RevocationList
}

// NewRevocation reads the CRL files; errors name the file.
func NewRevocation(files []string, grace time.Duration) (*Revocation, error) {
	r := &Revocation{files: files, grace: grace}
	if err := r.Refresh(); err != nil {
		return nil, err
	}
	return r, nil
}

// Refresh reads the CRL files again. On error the previous lists stay in use.
func (r *Revocation) Refresh() error {
	set := &crlSet{byIssuer: make(map[string]*x509.RevocationList)}
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
			if old, ok := set.byIssuer[key]; !ok || crl.Number.Cmp(old.Number) > 0 {
				set.byIssuer[key] = crl
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
// is on a loaded CRL. It does not check signatures (Check did, at the handshake); it is
// meant for finding live sessions to end after a refresh.
func (r *Revocation) Revoked(issuerDN, serial string) bool {
	crl := r.cur.Load().byIssuer[issuerDN]
	if crl == nil {
		return false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.String() == serial {
			return true
		}
	}
	return false
}

// Check is a tls.Config VerifyConnection step: every certificate of the verified chain
// (but the root) is checked against its issuer's CRL.
func (r *Revocation) Check(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 {
		return nil
	}
	set := r.cur.Load()
	now := time.Now()
	var errs []error
	for _, chain := range cs.VerifiedChains {
		err := set.checkChain(chain, now, r.grace)
		if err == nil {
			return nil // one good chain is enough
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *crlSet) checkChain(chain []*x509.Certificate, now time.Time, grace time.Duration) error {
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		crl := s.byIssuer[issuer.Subject.String()]
		if crl == nil {
			continue
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("tlsconf: CRL of %q is not signed by that issuer: %w", issuer.Subject, err)
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate.Add(grace)) {
			return fmt.Errorf("tlsconf: CRL of %q expired at %s (grace %s): refusing its certificates until a fresh CRL is loaded",
				issuer.Subject, crl.NextUpdate.Format(time.RFC3339), grace)
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return fmt.Errorf("tlsconf: certificate %q (serial %s) is revoked", cert.Subject, cert.SerialNumber)
			}
		}
	}
	return nil
}
