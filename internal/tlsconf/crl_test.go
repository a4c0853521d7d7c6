package tlsconf

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// writeCRL writes a CRL issued by issuer (signed with signer) revoking serials.
func (p *testPKI) writeCRL(name string, issuer *x509.Certificate, signer crypto.Signer, number int64, nextUpdate time.Time, revoked ...*big.Int) string {
	p.t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: nextUpdate.Add(-48 * time.Hour), NextUpdate: nextUpdate}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, signer)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.writeFile(name, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func TestRevocation(t *testing.T) {
	p := newPKI(t)
	other := sign(t, clientTemplate("device-43"), newKey(t), &p.inter)
	clientWith := func(c issued) *tls.Config {
		cfg := p.clientConfig()
		cert := c.tlsCert()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}
	serve := func(t *testing.T, files []string, grace time.Duration) (*testServer, *Revocation) {
		t.Helper()
		rev, err := NewRevocation(RevocationOptions{Files: files, Grace: grace})
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReloader(p.peerOptions(true), nil)
		if err != nil {
			t.Fatal(err)
		}
		r.UseRevocation(rev)
		return startServer(t, r.Config()), rev
	}
	day := time.Now().Add(24 * time.Hour)

	t.Run("[SECURITY] a revoked client certificate is refused at the handshake", func(t *testing.T) {
		crl := p.writeCRL("revoke.pem", p.inter.cert, p.inter.key, 1, day, p.client.cert.SerialNumber)
		s, _ := serve(t, []string{crl}, 0)
		_, err := dial(s.addr, clientWith(p.client))
		sr := s.next(t)
		expectRefused(t, err, sr)
		if sr.err == nil || !strings.Contains(sr.err.Error(), "revoked") {
			t.Fatalf("server error %v, want a revocation", sr.err)
		}
		_, err = dial(s.addr, clientWith(other))
		expectAccepted(t, err, s.next(t))
	})

	t.Run("[SECURITY] a CRL not signed by the issuer is not believed: the issuer's certificates are refused", func(t *testing.T) {
		forged := p.writeCRL("forged.pem", p.inter.cert, newKey(t), 1, day) // names the intermediate, signed by someone else
		s, _ := serve(t, []string{forged}, 0)
		_, err := dial(s.addr, clientWith(other))
		sr := s.next(t)
		expectRefused(t, err, sr)
		if !strings.Contains(sr.err.Error(), "not signed by that issuer") {
			t.Fatalf("server error %v", sr.err)
		}
	})

	t.Run("[SECURITY] an expired CRL fails closed after the grace period", func(t *testing.T) {
		stale := p.writeCRL("stale.pem", p.inter.cert, p.inter.key, 1, time.Now().Add(-10*time.Minute))
		s, _ := serve(t, []string{stale}, 0)
		_, err := dial(s.addr, clientWith(other))
		expectRefused(t, err, s.next(t))

		s, _ = serve(t, []string{stale}, time.Hour)
		_, err = dial(s.addr, clientWith(other))
		expectAccepted(t, err, s.next(t))
	})

	t.Run("a refresh that revokes a certificate refuses its next handshake and reports it", func(t *testing.T) {
		path := p.writeCRL("live.pem", p.inter.cert, p.inter.key, 1, day)
		s, rev := serve(t, []string{path}, 0)
		_, err := dial(s.addr, clientWith(p.client))
		expectAccepted(t, err, s.next(t))
		if rev.Revoked(p.inter.cert.Subject.String(), p.client.cert.SerialNumber.String()) {
			t.Fatal("Revoked before the CRL lists it")
		}
		p.writeCRL("live.pem", p.inter.cert, p.inter.key, 2, day, p.client.cert.SerialNumber)
		if err := rev.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !rev.Revoked(p.inter.cert.Subject.String(), p.client.cert.SerialNumber.String()) {
			t.Fatal("Revoked after the refresh is false")
		}
		_, err = dial(s.addr, clientWith(p.client))
		expectRefused(t, err, s.next(t))
	})

	t.Run("bad CRL files are errors naming the file", func(t *testing.T) {
		for _, tc := range []struct{ name, content string }{
			{"missing.pem", ""},
			{"garbage.pem", "not pem"},
			{"broken.pem", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"},
		} {
			path := p.path(tc.name)
			if tc.content != "" {
				path = p.writeFile(tc.name, []byte(tc.content))
			}
			if _, err := NewRevocation(RevocationOptions{Files: []string{path}}); err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("%s: NewRevocation = %v, want an error naming the file", tc.name, err)
			}
		}
	})
}
