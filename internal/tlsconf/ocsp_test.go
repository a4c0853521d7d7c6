package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspResponder is an OCSP responder on loopback for the test PKI's intermediate.
type ocspResponder struct {
	t      *testing.T
	srv    *httptest.Server
	issuer issued
	hits   atomic.Int32

	mu         sync.Mutex
	mode       string          // "" answers; "garbage", "down" (503), "huge" misbehave
	signer     *issued         // nil: the issuer signs
	revoked    map[string]bool // serials (decimal)
	unknown    map[string]bool // serials answered "unknown"
	nextUpdate time.Duration   // after now; negative = already expired
	serialFor  func(*big.Int) *big.Int
}

func newResponder(t *testing.T, issuer issued) *ocspResponder {
	r := &ocspResponder{t: t, issuer: issuer, revoked: map[string]bool{}, unknown: map[string]bool{}, nextUpdate: time.Hour}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ocspResponder) set(f func(r *ocspResponder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *ocspResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<16))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	switch r.mode {
	case "down":
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	case "garbage":
		_, _ = w.Write([]byte("this is not an OCSP response"))
		return
	case "huge":
		_, _ = w.Write(make([]byte, maxOCSPResponseSize+1))
		return
	}
	ocspReq, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	serial := ocspReq.SerialNumber
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: serial,
		ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(r.nextUpdate)}
	if r.serialFor != nil {
		tmpl.SerialNumber = r.serialFor(serial)
	}
	switch {
	case r.revoked[serial.String()]:
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, time.Now().Add(-time.Hour), ocsp.KeyCompromise
	case r.unknown[serial.String()]:
		tmpl.Status = ocsp.Unknown
	}
	signerCert, signerKey := r.issuer.cert, r.issuer.key
	if r.signer != nil {
		signerCert, signerKey = r.signer.cert, r.signer.key
		tmpl.Certificate = r.signer.cert
	}
	der, err := ocsp.CreateResponse(r.issuer.cert, signerCert, tmpl, signerKey)
	if err != nil {
		r.t.Errorf("CreateResponse: %v", err)
		http.Error(w, "internal", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}

// ocspSigner issues a certificate from the intermediate that may sign OCSP responses for
// it (with ocspSigning) or not (without).
func (p *testPKI) ocspSigner(withEKU bool) *issued {
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "Rampart Test OCSP"}, KeyUsage: x509.KeyUsageDigitalSignature}
	if withEKU {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} // a device certificate
	}
	s := sign(p.t, tmpl, newKey(p.t), &p.inter)
	return &s
}

// staplingOptions returns options for a server certificate whose AIA names the responder.
func (p *testPKI) staplingOptions(url string) (ServerOptions, issued) {
	tmpl := serverTemplate()
	tmpl.OCSPServer = []string{url}
	srv := sign(p.t, tmpl, newKey(p.t), &p.inter)
	o := ServerOptions{
		CertFile: p.writeCerts("stapled-chain.pem", srv.cert, p.inter.cert),
		KeyFile:  p.writeKey("stapled-key.pem", srv.key, "PKCS8"),
		OCSP:     OCSPOptions{Stapling: true, HTTPTimeout: 10 * time.Second},
	}
	return o, srv
}

// stapleSeen handshakes with a fresh server of r and returns the staple the client got.
func stapleSeen(t *testing.T, r *Reloader, p *testPKI) []byte {
	t.Helper()
	return stapleSeenWith(t, r, p.clientConfig())
}

func stapleSeenWith(t *testing.T, r *Reloader, cfg *tls.Config) []byte {
	t.Helper()
	s := startServer(t, r.Config())
	cs, err := dial(s.addr, cfg)
	expectAccepted(t, err, s.next(t))
	return cs.OCSPResponse
}

func TestOCSPStapling(t *testing.T) {
	p := newPKI(t)
	resp := newResponder(t, p.inter)
	o, srv := p.staplingOptions(resp.srv.URL)
	ctx := context.Background()
	reset := func(r *ocspResponder) {
		r.mode, r.signer, r.serialFor, r.nextUpdate = "", nil, nil, time.Hour
		r.revoked, r.unknown = map[string]bool{}, map[string]bool{}
	}

	t.Run("a good, verified response is stapled", func(t *testing.T) {
		resp.set(reset)
		r, err := NewReloader(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := stapleSeen(t, r, p); got != nil {
			t.Fatal("a staple before any fetch")
		}
		if _, err := r.RefreshOCSP(ctx); err != nil {
			t.Fatal(err)
		}
		staple := stapleSeen(t, r, p)
		if staple == nil {
			t.Fatal("no OCSP staple in the handshake")
		}
		parsed, err := ocsp.ParseResponseForCert(staple, srv.cert, p.inter.cert)
		if err != nil || parsed.Status != ocsp.Good {
			t.Fatalf("staple: %v, status %v", err, parsed)
		}
		noSNI := p.clientConfig()
		noSNI.ServerName = "127.0.0.1" // an IP address: the client sends no server name
		if stapleSeenWith(t, r, noSNI) == nil {
			t.Fatal("no staple for a client that sends no server name")
		}
	})

	t.Run("a delegated responder with id-kp-OCSPSigning is accepted", func(t *testing.T) {
		resp.set(func(r *ocspResponder) { reset(r); r.signer = p.ocspSigner(true) })
		r, err := NewReloader(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RefreshOCSP(ctx); err != nil {
			t.Fatal(err)
		}
		if stapleSeen(t, r, p) == nil {
			t.Fatal("no staple")
		}
	})

	wrongCA := sign(t, caTemplate("Some Other CA"), newKey(t), nil)
	for _, tc := range []struct {
		name string
		mod  func(r *ocspResponder)
		want string
	}{
		{"[SECURITY] garbage from the responder", func(r *ocspResponder) { r.mode = "garbage" }, "OCSP response from"},
		{"[SECURITY] a response signed by another CA", func(r *ocspResponder) { r.signer = &wrongCA }, "bad OCSP signature"},
		{"[SECURITY] a response signed by a certificate of the issuer not authorised for OCSP", func(r *ocspResponder) { r.signer = p.ocspSigner(false) },
			"neither the issuer nor authorised by it for OCSP signing"},
		{"[SECURITY] an expired response", func(r *ocspResponder) { r.nextUpdate = -time.Minute }, "expired at"},
		{"[SECURITY] a response about another certificate", func(r *ocspResponder) {
			r.serialFor = func(s *big.Int) *big.Int { return new(big.Int).Add(s, big.NewInt(1)) }
		}, "no response matching"},
		{"[SECURITY] a revoked server certificate is never stapled", func(r *ocspResponder) { r.revoked[srv.cert.SerialNumber.String()] = true }, "REVOKED"},
		{"an unknown status is not stapled", func(r *ocspResponder) { r.unknown[srv.cert.SerialNumber.String()] = true }, "status unknown"},
		{"the responder is down", func(r *ocspResponder) { r.mode = "down" }, "503"},
		{"[SECURITY] an oversized response is cut off", func(r *ocspResponder) { r.mode = "huge" }, "larger than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp.set(func(r *ocspResponder) { reset(r); tc.mod(r) })
			r, err := NewReloader(o, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.RefreshOCSP(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RefreshOCSP = %v, want %q", err, tc.want)
			}
			if got := stapleSeen(t, r, p); got != nil {
				t.Fatal("a response that failed verification was stapled")
			}
		})
	}

	t.Run("a failed refresh keeps the last good staple while it is valid, never after", func(t *testing.T) {
		resp.set(reset)
		r, err := NewReloader(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RefreshOCSP(ctx); err != nil {
			t.Fatal(err)
		}
		resp.set(func(r *ocspResponder) { r.mode = "garbage" })
		next, err := r.RefreshOCSP(ctx)
		if err == nil {
			t.Fatal("a garbage answer refreshed without error")
		}
		if !next.Before(time.Now().Add(DefaultOCSPRefreshInterval)) {
			t.Errorf("after a failure the next try is at %s, want sooner than the refresh interval", next)
		}
		if stapleSeen(t, r, p) == nil {
			t.Fatal("the still valid staple was dropped after a failed refresh")
		}
		set := r.set.Load()
		st := (*r.on.staples.cur.Load())[set.def.fp]
		if got := r.on.staples.forCert(set.def.fp, st.nextUpdate.Add(time.Second)); got != nil {
			t.Fatal("a staple past its nextUpdate would be served")
		}
	})

	t.Run("responder_url and issuer_file override the certificate", func(t *testing.T) {
		resp.set(reset)
		oo := p.options() // its certificate names no responder
		oo.OCSP = OCSPOptions{Stapling: true}
		if _, err := NewReloader(oo, nil); err == nil || !strings.Contains(err.Error(), "names no http(s) OCSP responder") {
			t.Fatalf("NewReloader without a responder = %v", err)
		}
		oo.OCSP.ResponderURL = resp.srv.URL
		oo.OCSP.IssuerFile = p.writeCerts("issuer.pem", p.inter.cert)
		oo.CertFile = p.writeCerts("leaf-only.pem", p.server.cert)
		r, err := NewReloader(oo, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.RefreshOCSP(ctx); err != nil {
			t.Fatal(err)
		}
		cfg := p.clientConfig() // the server sends no intermediate: the client must know it
		cfg.RootCAs = p.rootPool.Clone()
		cfg.RootCAs.AddCert(p.inter.cert)
		if stapleSeenWith(t, r, cfg) == nil {
			t.Fatal("no staple via responder_url and issuer_file")
		}
	})

	t.Run("stapling configuration errors", func(t *testing.T) {
		leafOnly := o
		leafOnly.CertFile = p.writeCerts("stapled-leaf-only.pem", srv.cert)
		if _, err := NewServer(leafOnly); err == nil || !strings.Contains(err.Error(), "no issuer certificate after the leaf") {
			t.Errorf("leaf without issuer: %v", err)
		}
		wrongIssuer := o
		wrongIssuer.OCSP.IssuerFile = p.writeCerts("wrong-issuer.pem", p.root.cert)
		if _, err := NewServer(wrongIssuer); err == nil || !strings.Contains(err.Error(), "did not sign") {
			t.Errorf("wrong issuer_file: %v", err)
		}
		bad := o
		bad.OCSP.ResponderURL = "ldap://ocsp.example.test"
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "ocsp.responder_url") {
			t.Errorf("ldap responder_url: %v", err)
		}
	})

	t.Run("Watch staples by itself and SNI certificates get their own staple", func(t *testing.T) {
		resp.set(reset)
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "alpha.example.test"}, DNSNames: []string{"alpha.example.test"},
			OCSPServer: []string{resp.srv.URL}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		alpha := sign(t, tmpl, newKey(t), &p.inter)
		oo := o
		oo.SNICerts = map[string]CertKey{"alpha.example.test": {
			CertFile: p.writeCerts("alpha-stapled.pem", alpha.cert, p.inter.cert), KeyFile: p.writeKey("alpha-stapled-key.pem", alpha.key, "PKCS8")}}
		r, err := NewReloader(oo, nil)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go r.Watch(wctx, time.Hour, "test")
		s := startServer(t, r.Config())
		deadline := time.Now().Add(ioTimeout)
		for {
			cfg := p.clientConfig()
			cfg.ServerName = "alpha.example.test"
			cs, err := dial(s.addr, cfg)
			s.next(t)
			if err != nil {
				t.Fatal(err)
			}
			if cs.OCSPResponse != nil {
				if _, err := ocsp.ParseResponseForCert(cs.OCSPResponse, alpha.cert, p.inter.cert); err != nil {
					t.Fatalf("the SNI certificate got a staple that is not its own: %v", err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Watch did not staple the SNI certificate")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestNextStapleRefresh(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		this, next time.Duration // relative to now
		interval   time.Duration
		want       time.Duration
	}{
		{"a long-lived response: the interval", -time.Hour, 7 * 24 * time.Hour, 5 * time.Minute, 5 * time.Minute},
		{"a short-lived response: halfway, before nextUpdate", -time.Minute, 3 * time.Minute, 5 * time.Minute, time.Minute},
		{"a response past its half-life: soon, not in a busy loop", -time.Hour, time.Minute, 5 * time.Minute, minStapleRefresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := staple{thisUpdate: now.Add(tc.this), nextUpdate: now.Add(tc.next)}
			got := nextStapleRefresh(now, st, tc.interval)
			if got.Sub(now) != tc.want {
				t.Fatalf("next refresh in %s, want %s", got.Sub(now), tc.want)
			}
		})
	}
}

// ocspClient issues a client certificate whose AIA names url.
func (p *testPKI) ocspClient(cn, url string) issued {
	tmpl := clientTemplate(cn)
	if url != "" {
		tmpl.OCSPServer = []string{url}
	}
	return sign(p.t, tmpl, newKey(p.t), &p.inter)
}

func TestClientOCSP(t *testing.T) {
	p := newPKI(t)
	resp := newResponder(t, p.inter)
	serve := func(t *testing.T, onError string) *testServer {
		t.Helper()
		o := p.peerOptions(true)
		o.OCSP = OCSPOptions{VerifyClient: true, ClientOnError: onError, HTTPTimeout: 5 * time.Second}
		r, err := NewReloader(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		return startServer(t, r.Config())
	}
	clientWith := func(c issued) *tls.Config {
		cfg := p.clientConfig()
		cert := c.tlsCert()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}
	good := p.ocspClient("good", resp.srv.URL)
	revoked := p.ocspClient("revoked", resp.srv.URL)
	unknown := p.ocspClient("unknown", resp.srv.URL)
	noAIA := p.ocspClient("no-aia", "")
	reset := func(r *ocspResponder) {
		r.mode, r.signer, r.serialFor, r.nextUpdate = "", nil, nil, time.Hour
		r.revoked = map[string]bool{revoked.cert.SerialNumber.String(): true}
		r.unknown = map[string]bool{unknown.cert.SerialNumber.String(): true}
	}

	t.Run("good is accepted, revoked and unknown are refused", func(t *testing.T) {
		resp.set(reset)
		s := serve(t, "")
		_, err := dial(s.addr, clientWith(good))
		expectAccepted(t, err, s.next(t))
		_, err = dial(s.addr, clientWith(revoked))
		sr := s.next(t)
		expectRefused(t, err, sr)
		if sr.err == nil || !strings.Contains(sr.err.Error(), "revoked (OCSP") {
			t.Errorf("server error %v, want an OCSP revocation", sr.err)
		}
		_, err = dial(s.addr, clientWith(unknown))
		expectRefused(t, err, s.next(t))
	})

	t.Run("answers are cached until nextUpdate: one request for two handshakes", func(t *testing.T) {
		resp.set(reset)
		s := serve(t, "")
		before := resp.hits.Load()
		for range 2 {
			_, err := dial(s.addr, clientWith(good))
			expectAccepted(t, err, s.next(t))
		}
		if n := resp.hits.Load() - before; n != 1 {
			t.Fatalf("%d requests to the responder, want 1", n)
		}
		resp.set(func(r *ocspResponder) { r.mode = "down" })
		_, err := dial(s.addr, clientWith(good))
		expectAccepted(t, err, s.next(t))
	})

	for _, tc := range []struct {
		name string
		mod  func(r *ocspResponder)
		cert issued
	}{
		{"[SECURITY] responder down: refused by default", func(r *ocspResponder) { r.mode = "down" }, good},
		{"[SECURITY] garbage answer: refused", func(r *ocspResponder) { r.mode = "garbage" }, good},
		{"[SECURITY] 'good' signed by another CA: refused", func(r *ocspResponder) {
			other := sign(t, caTemplate("Other CA"), newKey(t), nil)
			r.signer = &other
		}, good},
		{"[SECURITY] 'good' signed by a device certificate of the same CA: refused", func(r *ocspResponder) { r.signer = p.ocspSigner(false) }, good},
		{"[SECURITY] an expired 'good': refused", func(r *ocspResponder) { r.nextUpdate = -time.Minute }, good},
		{"[SECURITY] a certificate without an OCSP URL: refused", func(*ocspResponder) {}, noAIA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp.set(func(r *ocspResponder) { reset(r); tc.mod(r) })
			s := serve(t, "") // a fresh server: nothing cached
			_, err := dial(s.addr, clientWith(tc.cert))
			sr := s.next(t)
			expectRefused(t, err, sr)
			if sr.err == nil || !strings.Contains(sr.err.Error(), "client_ocsp_on_error: deny") {
				t.Errorf("server error %v", sr.err)
			}
		})
	}

	t.Run("client_ocsp_on_error: allow lets clients in when the responder is down, never a revoked one", func(t *testing.T) {
		resp.set(func(r *ocspResponder) { reset(r); r.mode = "down" })
		s := serve(t, OCSPOnErrorAllow)
		_, err := dial(s.addr, clientWith(good))
		expectAccepted(t, err, s.next(t))
		resp.set(reset)
		_, err = dial(s.addr, clientWith(revoked))
		expectRefused(t, err, s.next(t))
	})

	t.Run("configuration", func(t *testing.T) {
		o := p.options()
		o.OCSP = OCSPOptions{VerifyClient: true, ClientOnError: "maybe"}
		err := o.Validate()
		for _, want := range []string{"ocsp.verify_client_certificate: needs verify: verify_peer", `ocsp.client_ocsp_on_error: "maybe" is not valid`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Validate = %v, want %q", err, want)
			}
		}
	})
}

func TestLRUBound(t *testing.T) {
	c := newLRU[int, int](3)
	for i := range 5 {
		c.put(i, i)
	}
	if n := len(c.keys()); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	if _, ok := c.get(0); ok {
		t.Fatal("the oldest entry survived")
	}
	c.get(2) // 2 becomes the most recently used
	c.put(5, 5)
	if _, ok := c.get(2); !ok {
		t.Fatal("a recently used entry was evicted")
	}
	if _, ok := c.get(3); ok {
		t.Fatal("the least recently used entry survived")
	}
}
