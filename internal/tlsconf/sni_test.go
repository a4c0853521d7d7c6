package tlsconf

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// namedServer issues a server certificate for names from the PKI's intermediate and
// writes the chain and key; it returns the certificate files.
func (p *testPKI) namedServer(file string, key *issued, names ...string) CertKey {
	p.t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		DNSNames:    names,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	*key = sign(p.t, tmpl, key.key, &p.inter)
	return CertKey{CertFile: p.writeCerts(file+"-chain.pem", key.cert, p.inter.cert), KeyFile: p.writeKey(file+"-key.pem", key.key, "PKCS8")}
}

func TestSNICertificates(t *testing.T) {
	p := newPKI(t)
	alpha := issued{key: newKey(t)}
	wild := issued{key: newKey(t)}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	gamma := issued{key: rsaKey}
	o := p.options()
	o.SNICerts = map[string]CertKey{
		"alpha.example.test":  p.namedServer("alpha", &alpha, "alpha.example.test"),
		"*.beta.example.test": p.namedServer("beta", &wild, "*.beta.example.test"),
		"gamma.example.test":  p.namedServer("gamma", &gamma, "gamma.example.test"),
	}
	r, err := NewReloader(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, r.Config())
	presented := func(t *testing.T, serverName string, verify bool) *x509.Certificate {
		t.Helper()
		cfg := p.clientConfig()
		cfg.ServerName = serverName
		// A name the server has no certificate for gets the default one, which is not
		// valid for it: look at what was sent without verifying it.
		cfg.InsecureSkipVerify = !verify
		cs, err := dial(s.addr, cfg)
		sr := s.next(t)
		expectAccepted(t, err, sr)
		if err != nil {
			t.FailNow()
		}
		return cs.PeerCertificates[0]
	}
	for _, tc := range []struct {
		name, serverName string
		want             func() *x509.Certificate
		verify           bool
	}{
		{"exact name", "alpha.example.test", func() *x509.Certificate { return alpha.cert }, true},
		{"exact name, other case and trailing dot", "ALPHA.Example.Test.", func() *x509.Certificate { return alpha.cert }, false},
		{"wildcard entry", "device.beta.example.test", func() *x509.Certificate { return wild.cert }, true},
		{"RSA entry beside ECDSA ones", "gamma.example.test", func() *x509.Certificate { return gamma.cert }, true},
		{"wildcard is one label deep only", "a.b.beta.example.test", func() *x509.Certificate { return p.server.cert }, false},
		{"unknown name gets the default", "unknown.example.test", func() *x509.Certificate { return p.server.cert }, false},
		{"the default's own name", "localhost", func() *x509.Certificate { return p.server.cert }, true},
		{"no SNI gets the default", "127.0.0.1", func() *x509.Certificate { return p.server.cert }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := presented(t, tc.serverName, tc.verify); !got.Equal(tc.want()) {
				t.Fatalf("SNI %q: server presented %q (serial %s), want %q", tc.serverName, got.Subject, got.SerialNumber, tc.want().Subject)
			}
		})
	}

	t.Run("openssl s_client -servername", func(t *testing.T) {
		bin := lookOpenSSL(t)
		for _, tc := range []struct{ servername, wantCN string }{
			{"alpha.example.test", "alpha.example.test"},
			{"x.beta.example.test", "*.beta.example.test"},
			{"other.example.test", "localhost"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", s.addr, "-servername", tc.servername, "-CAfile", p.caFile)
			cmd.Stdin = strings.NewReader("")
			cmd.WaitDelay = 5 * time.Second
			out, _ := cmd.CombinedOutput()
			cancel()
			s.next(t)
			if !strings.Contains(string(out), "subject=CN = "+tc.wantCN) {
				t.Errorf("-servername %s: want the certificate of CN %s, openssl says:\n%s", tc.servername, tc.wantCN, out)
			}
		}
	})

	t.Run("a renewed SNI certificate is reloaded and watched", func(t *testing.T) {
		before := r.fileStamp()
		renewed := issued{key: newKey(t)}
		p.namedServer("alpha", &renewed, "alpha.example.test")
		if r.fileStamp() == before {
			t.Error("replacing an SNI certificate does not change the files' stamp, so Watch would not reload")
		}
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := presented(t, "alpha.example.test", true); !got.Equal(renewed.cert) {
			t.Fatalf("after reload alpha gets serial %s, want %s", got.SerialNumber, renewed.cert.SerialNumber)
		}
	})
}

func TestSNICertificateChecks(t *testing.T) {
	p := newPKI(t)
	good := issued{key: newKey(t)}
	goodFiles := p.namedServer("good", &good, "good.example.test")
	otherKey := p.writeKey("other-key.pem", newKey(t), "PKCS8")
	expiredTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "old.example.test"}, DNSNames: []string{"old.example.test"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	expired := sign(t, expiredTmpl, newKey(t), &p.inter)
	expiredFiles := CertKey{CertFile: p.writeCerts("old-chain.pem", expired.cert, p.inter.cert), KeyFile: p.writeKey("old-key.pem", expired.key, "PKCS8")}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert := issued{key: rsaKey}
	rsaFiles := p.namedServer("rsa", &rsaCert, "rsa.example.test")

	for _, tc := range []struct {
		name string
		mod  func(o *ServerOptions)
		want string
	}{
		{"[SECURITY] a certificate not valid for its name", func(o *ServerOptions) {
			o.SNICerts = map[string]CertKey{"evil.example.test": goodFiles}
		}, `sni_certs "evil.example.test": the certificate of certfile`},
		{"[SECURITY] an expired SNI certificate", func(o *ServerOptions) {
			o.SNICerts = map[string]CertKey{"old.example.test": expiredFiles}
		}, `sni_certs "old.example.test": certfile`},
		{"[SECURITY] an SNI key that does not match", func(o *ServerOptions) {
			o.SNICerts = map[string]CertKey{"good.example.test": {CertFile: goodFiles.CertFile, KeyFile: otherKey}}
		}, `sni_certs "good.example.test"`},
		{"an RSA SNI certificate with ECDSA-only TLS 1.2 suites", func(o *ServerOptions) {
			o.Ciphers = []string{"ECDHE-ECDSA-AES128-GCM-SHA256"}
			o.SNICerts = map[string]CertKey{"rsa.example.test": rsaFiles}
		}, `sni_certs "rsa.example.test": ciphers: none of the TLS 1.2 suites can be used with the RSA key`},
		{"a missing SNI file", func(o *ServerOptions) {
			o.SNICerts = map[string]CertKey{"good.example.test": {CertFile: p.path("missing.pem"), KeyFile: goodFiles.KeyFile}}
		}, "missing.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := p.options()
			tc.mod(&o)
			_, err := NewServer(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewServer = %v, want %q", err, tc.want)
			}
		})
	}

	for _, tc := range []struct{ name, want string }{
		{"Broker.example.test", "lower-case DNS name"},
		{"127.0.0.1", "is an IP address"},
		{"*.com", "wildcard needs at least two labels"},
		{"a..example.test", "want a DNS name"},
		{"-a.example.test", "want a DNS name"},
		{"*", "DNS name"},
	} {
		o := p.options()
		o.SNICerts = map[string]CertKey{tc.name: goodFiles}
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sni_certs name %q: Validate = %v, want %q", tc.name, err, tc.want)
		}
	}
	o := p.options()
	o.SNICerts = map[string]CertKey{"a.example.test": {KeyFilePassword: "inline"}}
	err = o.Validate()
	for _, want := range []string{"sni_certs.a.example.test.certfile: is required", "sni_certs.a.example.test.keyfile: is required", "sni_certs.a.example.test.keyfile_password: must be file:/path or env:NAME"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}
