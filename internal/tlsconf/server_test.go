package tlsconf

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewServerSettings(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name       string
		mod        func(o *ServerOptions)
		min, max   uint16
		ciphers    []uint16
		curves     []tls.CurveID
		clientAuth tls.ClientAuthType
		verifyConn bool
	}{
		{"defaults", nil, tls.VersionTLS12, tls.VersionTLS13, DefaultCipherSuites(),
			[]tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}, tls.NoClientCert, false},
		{"tls13 only", func(o *ServerOptions) { o.Versions = []string{"tlsv1.3"} }, tls.VersionTLS13, tls.VersionTLS13, DefaultCipherSuites(),
			DefaultCurves(), tls.NoClientCert, false},
		{"tls12 only, chosen suite and curves", func(o *ServerOptions) {
			o.Versions = []string{"tlsv1.2"}
			o.Ciphers = []string{"ECDHE-ECDSA-CHACHA20-POLY1305"}
			o.Curves = []string{"P-384", "X25519"}
		}, tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			[]tls.CurveID{tls.CurveP384, tls.X25519}, tls.NoClientCert, false},
		{"verify_peer, fail_if_no_peer_cert", func(o *ServerOptions) { *o = p.peerOptions(true) }, tls.VersionTLS12, tls.VersionTLS13, DefaultCipherSuites(),
			DefaultCurves(), tls.RequireAndVerifyClientCert, true},
		{"verify_peer, certificate optional", func(o *ServerOptions) { *o = p.peerOptions(false) }, tls.VersionTLS12, tls.VersionTLS13, DefaultCipherSuites(),
			DefaultCurves(), tls.VerifyClientCertIfGiven, true},
		{"verify_none ignores cacertfile", func(o *ServerOptions) { o.CACertFile = p.caFile }, tls.VersionTLS12, tls.VersionTLS13, DefaultCipherSuites(),
			DefaultCurves(), tls.NoClientCert, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := p.options()
			if tt.mod != nil {
				tt.mod(&o)
			}
			cfg := mustNewServer(t, o)
			if cfg.MinVersion != tt.min || cfg.MaxVersion != tt.max {
				t.Errorf("versions = %x..%x, want %x..%x", cfg.MinVersion, cfg.MaxVersion, tt.min, tt.max)
			}
			if !slices.Equal(cfg.CipherSuites, tt.ciphers) {
				t.Errorf("CipherSuites = %v, want %v", cfg.CipherSuites, tt.ciphers)
			}
			if !slices.Equal(cfg.CurvePreferences, tt.curves) {
				t.Errorf("CurvePreferences = %v, want %v", cfg.CurvePreferences, tt.curves)
			}
			if cfg.ClientAuth != tt.clientAuth {
				t.Errorf("ClientAuth = %v, want %v", cfg.ClientAuth, tt.clientAuth)
			}
			if (cfg.ClientCAs != nil) != tt.verifyConn || (cfg.VerifyConnection != nil) != tt.verifyConn {
				t.Errorf("ClientCAs set = %v, VerifyConnection set = %v, want %v", cfg.ClientCAs != nil, cfg.VerifyConnection != nil, tt.verifyConn)
			}
			if cfg.SessionTicketsDisabled {
				t.Error("session tickets disabled")
			}
			if len(cfg.Certificates) != 1 || len(cfg.Certificates[0].Certificate) != 2 || cfg.Certificates[0].Leaf == nil {
				t.Errorf("Certificates not the full chain with a parsed leaf")
			}
		})
	}
}

func TestNewServerFileErrors(t *testing.T) {
	p := newPKI(t)
	expiredTmpl := serverTemplate()
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	expired := sign(t, expiredTmpl, newKey(t), &p.inter)
	futureTmpl := serverTemplate()
	futureTmpl.NotBefore, futureTmpl.NotAfter = time.Now().Add(time.Hour), time.Now().Add(48*time.Hour)
	future := sign(t, futureTmpl, newKey(t), &p.inter)

	files := map[string]string{
		"expired cert":        p.writeCerts("expired.pem", expired.cert, p.inter.cert),
		"expired key":         p.writeKey("expired-key.pem", expired.key, "PKCS8"),
		"future cert":         p.writeCerts("future.pem", future.cert, p.inter.cert),
		"future key":          p.writeKey("future-key.pem", future.key, "PKCS8"),
		"other key":           p.writeKey("other-key.pem", p.client.key, "PKCS8"),
		"garbage":             p.writeFile("garbage.pem", []byte("not PEM at all\n")),
		"broken order":        p.writeCerts("broken-order.pem", p.server.cert, p.attacker.cert),
		"non-CA bundle":       p.writeCerts("non-ca.pem", p.root.cert, p.client.cert),
		"key only in CA file": p.writeFile("key-as-ca.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")),
		"corrupt CA":          p.writeFile("corrupt-ca.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
	}
	missing := p.path("does-not-exist.pem")

	tests := []struct {
		name string
		mod  func(o *ServerOptions)
		want []string
	}{
		{"missing certfile", func(o *ServerOptions) { o.CertFile = missing }, []string{"certfile", missing, "no such file"}},
		{"missing keyfile", func(o *ServerOptions) { o.KeyFile = missing }, []string{"keyfile", missing, "no such file"}},
		{"certfile not PEM", func(o *ServerOptions) { o.CertFile = files["garbage"] }, []string{"certfile", files["garbage"]}},
		{"keyfile not PEM", func(o *ServerOptions) { o.KeyFile = files["garbage"] }, []string{"keyfile", files["garbage"]}},
		{"key does not match certificate", func(o *ServerOptions) { o.KeyFile = files["other key"] }, []string{p.serverCertFile, files["other key"], "does not match"}},
		{"expired server certificate", func(o *ServerOptions) { o.CertFile, o.KeyFile = files["expired cert"], files["expired key"] }, []string{"certfile", files["expired cert"], "expired"}},
		{"server certificate not yet valid", func(o *ServerOptions) { o.CertFile, o.KeyFile = files["future cert"], files["future key"] }, []string{"certfile", files["future cert"], "not valid before"}},
		{"chain out of order", func(o *ServerOptions) { o.CertFile = files["broken order"] }, []string{"certfile", files["broken order"], "full chain, leaf first"}},
		{"missing cacertfile", func(o *ServerOptions) { *o = p.peerOptions(true); o.CACertFile = missing }, []string{"cacertfile", missing}},
		{"cacertfile without certificates", func(o *ServerOptions) { *o = p.peerOptions(true); o.CACertFile = files["key only in CA file"] }, []string{"cacertfile", files["key only in CA file"], "no PEM certificates"}},
		{"cacertfile not PEM", func(o *ServerOptions) { *o = p.peerOptions(true); o.CACertFile = files["garbage"] }, []string{"cacertfile", files["garbage"], "no PEM certificates"}},
		{"cacertfile corrupt certificate", func(o *ServerOptions) { *o = p.peerOptions(true); o.CACertFile = files["corrupt CA"] }, []string{"cacertfile", files["corrupt CA"], "certificate 1"}},
		{"cacertfile with a non-CA certificate", func(o *ServerOptions) { *o = p.peerOptions(true); o.CACertFile = files["non-CA bundle"] }, []string{"cacertfile", files["non-CA bundle"], "certificate 2", "not a CA"}},
		{"RSA-only suites for an ECDSA key", func(o *ServerOptions) { o.Ciphers = []string{"ECDHE-RSA-AES128-GCM-SHA256"} }, []string{"ciphers", p.serverCertFile, "ECDSA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := p.options()
			tt.mod(&o)
			cfg, err := NewServer(o)
			if err == nil {
				t.Fatalf("NewServer() = %v, nil; want error", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewServer() error %q does not contain %q", err, w)
				}
			}
		})
	}

	// With TLS 1.3 only, TLS 1.2 suites do not matter, so the key type check is skipped.
	o := p.options()
	o.Versions, o.Ciphers = []string{"tlsv1.3"}, []string{"ECDHE-RSA-AES128-GCM-SHA256"}
	if _, err := NewServer(o); err != nil {
		t.Errorf("tls13 only with RSA suites and ECDSA key: %v", err)
	}
}

// TestKeyFormats loads keys in every supported encoding and completes a TLS 1.2 and a
// TLS 1.3 handshake with each.
func TestKeyFormats(t *testing.T) {
	p := newPKI(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    crypto.Signer
		format string
	}{
		{"ECDSA PKCS#8", newKey(t), "PKCS8"},
		{"ECDSA SEC 1 (EC PRIVATE KEY)", newKey(t), "EC"},
		{"RSA PKCS#1", rsaKey, "PKCS1"},
		{"RSA PKCS#8", rsaKey, "PKCS8"},
		{"Ed25519 PKCS#8", edKey, "PKCS8"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := sign(t, serverTemplate(), tt.key, &p.inter)
			o := ServerOptions{
				CertFile: p.writeCerts(strings.Repeat("c", i+1)+".pem", srv.cert, p.inter.cert),
				KeyFile:  p.writeKey(strings.Repeat("k", i+1)+".pem", tt.key, tt.format),
			}
			cfg := mustNewServer(t, o)
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cc := p.clientConfig()
				cc.MinVersion, cc.MaxVersion = v, v
				cs, sr, cerr := handshake(t, cfg, cc)
				expectAccepted(t, cerr, sr)
				if cerr == nil && cs.Version != v {
					t.Errorf("negotiated version %x, want %x", cs.Version, v)
				}
			}
		})
	}
}
