package tlsconf

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crlServer serves one CRL on loopback, as a distribution point does.
type crlServer struct {
	srv  *httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	body []byte
	code int
}

func newCRLServer(t *testing.T) *crlServer {
	c := &crlServer{code: http.StatusOK}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.hits.Add(1)
		c.mu.Lock()
		defer c.mu.Unlock()
		w.WriteHeader(c.code)
		_, _ = w.Write(c.body)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *crlServer) url() string { return c.srv.URL + "/intermediate.crl" }

func (c *crlServer) serve(code int, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.code, c.body = code, body
}

// crlDER returns a CRL of issuer signed by signer.
func crlDER(t *testing.T, issuer *x509.Certificate, signer crypto.Signer, number int64, nextUpdate time.Time, revoked ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: nextUpdate.Add(-48 * time.Hour), NextUpdate: nextUpdate}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCRLDistributionPoints(t *testing.T) {
	p := newPKI(t)
	dp := newCRLServer(t)
	withDP := func(cn string) issued {
		tmpl := clientTemplate(cn)
		tmpl.CRLDistributionPoints = []string{"ldap://ignored.example.test/cn=crl", dp.url()}
		return sign(t, tmpl, newKey(t), &p.inter)
	}
	alice, bob := withDP("alice"), withDP("bob")
	day := time.Now().Add(24 * time.Hour)
	clientWith := func(c issued) *tls.Config {
		cfg := p.clientConfig()
		cert := c.tlsCert()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}
	serve := func(t *testing.T, grace time.Duration) (*testServer, *Revocation) {
		t.Helper()
		rev, err := NewRevocation(RevocationOptions{Grace: grace, FromDistributionPoints: true, HTTPTimeout: 5 * time.Second})
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
	ctx := context.Background()

	t.Run("[SECURITY] a certificate revoked on its distribution point is refused; others pass", func(t *testing.T) {
		dp.serve(http.StatusOK, crlDER(t, p.inter.cert, p.inter.key, 1, day, alice.cert.SerialNumber))
		s, _ := serve(t, 0)
		_, err := dial(s.addr, clientWith(alice))
		sr := s.next(t)
		expectRefused(t, err, sr)
		if sr.err == nil || !strings.Contains(sr.err.Error(), "is revoked (CRL from "+dp.url()) {
			t.Errorf("server error %v", sr.err)
		}
		_, err = dial(s.addr, clientWith(bob))
		expectAccepted(t, err, s.next(t))
		_, err = dial(s.addr, clientWith(p.client)) // no distribution point: not checked
		expectAccepted(t, err, s.next(t))
	})

	t.Run("a PEM CRL is read too, and it is fetched once, then cached", func(t *testing.T) {
		dp.serve(http.StatusOK, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER(t, p.inter.cert, p.inter.key, 1, day)}))
		s, _ := serve(t, 0)
		before := dp.hits.Load()
		for range 2 {
			_, err := dial(s.addr, clientWith(bob))
			expectAccepted(t, err, s.next(t))
		}
		if n := dp.hits.Load() - before; n != 1 {
			t.Fatalf("%d fetches for two handshakes, want 1", n)
		}
		dp.serve(http.StatusServiceUnavailable, nil)
		_, err := dial(s.addr, clientWith(bob))
		expectAccepted(t, err, s.next(t))
	})

	for _, tc := range []struct {
		name string
		code int
		body func() []byte
		want string
	}{
		{"[SECURITY] distribution point down, no CRL at hand: refused (fail closed)", http.StatusServiceUnavailable, func() []byte { return nil }, "503"},
		{"[SECURITY] a forged CRL: refused", http.StatusOK, func() []byte { return crlDER(t, p.inter.cert, newKey(t), 1, day) }, "is not signed by"},
		{"[SECURITY] another CA's CRL at the distribution point: refused", http.StatusOK, func() []byte {
			return crlDER(t, p.root.cert, p.root.key, 1, day)
		}, "is not signed by"},
		{"[SECURITY] garbage: refused", http.StatusOK, func() []byte { return []byte("not a CRL") }, "CRL from"},
		{"[SECURITY] a CRL larger than 10 MiB: refused", http.StatusOK, func() []byte { return make([]byte, MaxCRLSize+1) }, "larger than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dp.serve(tc.code, tc.body())
			s, _ := serve(t, 0)
			_, err := dial(s.addr, clientWith(bob))
			sr := s.next(t)
			expectRefused(t, err, sr)
			if sr.err == nil || !strings.Contains(sr.err.Error(), tc.want) || !strings.Contains(sr.err.Error(), "cannot be had from its distribution point") {
				t.Errorf("server error %v, want %q", sr.err, tc.want)
			}
		})
	}

	t.Run("[SECURITY] a dead distribution point is not asked by every handshake", func(t *testing.T) {
		dp.serve(http.StatusServiceUnavailable, nil)
		s, _ := serve(t, 0)
		before := dp.hits.Load()
		for range 3 {
			_, err := dial(s.addr, clientWith(bob))
			expectRefused(t, err, s.next(t))
		}
		if n := dp.hits.Load() - before; n != 1 {
			t.Fatalf("%d fetches for three refused handshakes, want 1", n)
		}
	})

	t.Run("[SECURITY] an expired CRL fails closed after the grace period", func(t *testing.T) {
		dp.serve(http.StatusOK, crlDER(t, p.inter.cert, p.inter.key, 1, time.Now().Add(-10*time.Minute)))
		s, _ := serve(t, 0)
		_, err := dial(s.addr, clientWith(bob))
		expectRefused(t, err, s.next(t))
		s, _ = serve(t, time.Hour)
		_, err = dial(s.addr, clientWith(bob))
		expectAccepted(t, err, s.next(t))
	})

	t.Run("a refresh that revokes a certificate: Revoked reports it and the next handshake is refused", func(t *testing.T) {
		dp.serve(http.StatusOK, crlDER(t, p.inter.cert, p.inter.key, 5, day))
		s, rev := serve(t, 0)
		_, err := dial(s.addr, clientWith(bob))
		expectAccepted(t, err, s.next(t))
		issuer, serial := p.inter.cert.Subject.String(), bob.cert.SerialNumber.String()
		if rev.Revoked(issuer, serial) {
			t.Fatal("Revoked before the CRL lists it")
		}
		dp.serve(http.StatusOK, crlDER(t, p.inter.cert, p.inter.key, 6, day, bob.cert.SerialNumber))
		if err := rev.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if !rev.Revoked(issuer, serial) {
			t.Fatal("Revoked is false after the refresh")
		}
		_, err = dial(s.addr, clientWith(bob))
		expectRefused(t, err, s.next(t))

		t.Run("[SECURITY] a replayed older CRL does not undo the revocation", func(t *testing.T) {
			dp.serve(http.StatusOK, crlDER(t, p.inter.cert, p.inter.key, 5, day))
			err := rev.Refresh(ctx)
			if err == nil || !strings.Contains(err.Error(), "older than") {
				t.Fatalf("Refresh = %v, want the older CRL refused", err)
			}
			if !rev.Revoked(issuer, serial) {
				t.Fatal("an older CRL undid the revocation")
			}
		})

		t.Run("a refresh that fails keeps the CRL in use", func(t *testing.T) {
			dp.serve(http.StatusNotFound, nil)
			if err := rev.Refresh(ctx); err == nil {
				t.Fatal("Refresh of a missing CRL succeeded")
			}
			if !rev.Revoked(issuer, serial) {
				t.Fatal("a failed refresh dropped the CRL")
			}
		})
	})
}
