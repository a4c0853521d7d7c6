package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

func TestHandshakeVersions(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name             string
		serverVersions   []string
		clientMin, clMax uint16
		want             uint16 // 0 = refused
	}{
		{"default server, TLS 1.3 client", nil, tls.VersionTLS13, tls.VersionTLS13, tls.VersionTLS13},
		{"default server, TLS 1.2 client", nil, tls.VersionTLS12, tls.VersionTLS12, tls.VersionTLS12},
		{"default server, client up to TLS 1.3 gets 1.3", nil, tls.VersionTLS10, tls.VersionTLS13, tls.VersionTLS13},
		{"default server refuses TLS 1.1 client", nil, tls.VersionTLS11, tls.VersionTLS11, 0},
		{"default server refuses TLS 1.0/1.1 client", nil, tls.VersionTLS10, tls.VersionTLS11, 0},
		{"tlsv1.3 server refuses TLS 1.2 client", []string{"tlsv1.3"}, tls.VersionTLS12, tls.VersionTLS12, 0},
		{"tlsv1.3 server accepts TLS 1.3 client", []string{"tlsv1.3"}, tls.VersionTLS12, tls.VersionTLS13, tls.VersionTLS13},
		{"tlsv1.2 server refuses TLS 1.3-only client", []string{"tlsv1.2"}, tls.VersionTLS13, tls.VersionTLS13, 0},
		{"tlsv1.2 server negotiates 1.2 with a 1.3 client", []string{"tlsv1.2"}, tls.VersionTLS12, tls.VersionTLS13, tls.VersionTLS12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := p.options()
			o.Versions = tt.serverVersions
			cc := p.clientConfig()
			cc.MinVersion, cc.MaxVersion = tt.clientMin, tt.clMax
			cs, sr, cerr := handshake(t, mustNewServer(t, o), cc)
			if tt.want == 0 {
				expectRefused(t, cerr, sr)
				return
			}
			expectAccepted(t, cerr, sr)
			if cerr == nil && cs.Version != tt.want {
				t.Errorf("version %x, want %x", cs.Version, tt.want)
			}
		})
	}
}

func TestHandshakeCiphers(t *testing.T) {
	p := newPKI(t)
	cbc := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	}
	tests := []struct {
		name          string
		serverCiphers []string
		allowInsecure bool
		client        []uint16 // TLS 1.2 suites the client offers; nil = Go's default
		want          uint16   // 0 = refused
	}{
		{"default set negotiates ECDHE-ECDSA AES-GCM", nil, false, nil, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"client with only CBC suites is refused", nil, false, cbc, 0},
		{"client with only RSA key exchange suites is refused", nil, false,
			[]uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}, 0},
		{"client with only ChaCha20 gets ChaCha20", nil, false,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		{"configured suite only: other AEAD suites refused", []string{"ECDHE-ECDSA-CHACHA20-POLY1305"}, false,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, 0},
		// Positive control: the CBC refusal above comes from the suite policy.
		{"CBC with allow_insecure_ciphers", []string{"ECDHE-ECDSA-AES128-SHA"}, true, cbc, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := p.options()
			o.Ciphers, o.AllowInsecureCiphers = tt.serverCiphers, tt.allowInsecure
			cc := p.clientConfig()
			cc.MinVersion, cc.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			cc.CipherSuites = tt.client
			cs, sr, cerr := handshake(t, mustNewServer(t, o), cc)
			if tt.want == 0 {
				expectRefused(t, cerr, sr)
				return
			}
			expectAccepted(t, cerr, sr)
			if cerr == nil && cs.CipherSuite != tt.want {
				t.Errorf("suite %s, want %s", tls.CipherSuiteName(cs.CipherSuite), tls.CipherSuiteName(tt.want))
			}
		})
	}
}

func TestHandshakeCurves(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name         string
		serverCurves []string
		version      uint16
		client       []tls.CurveID // nil = Go's default
		want         tls.CurveID   // 0 = refused
	}{
		{"TLS 1.3 default is hybrid post-quantum", nil, tls.VersionTLS13, nil, tls.X25519MLKEM768},
		{"TLS 1.2 default is X25519", nil, tls.VersionTLS12, nil, tls.X25519},
		{"P-256 client", nil, tls.VersionTLS13, []tls.CurveID{tls.CurveP256}, tls.CurveP256},
		{"P-384 not in the default set", nil, tls.VersionTLS13, []tls.CurveID{tls.CurveP384}, 0},
		{"P-384 configured", []string{"P-384"}, tls.VersionTLS13, []tls.CurveID{tls.X25519, tls.CurveP384}, tls.CurveP384},
		{"P-384 configured refuses X25519-only client", []string{"P-384"}, tls.VersionTLS13, []tls.CurveID{tls.X25519}, 0},
		{"P-521 configured, TLS 1.2", []string{"P-521"}, tls.VersionTLS12, []tls.CurveID{tls.CurveP521}, tls.CurveP521},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := p.options()
			o.Curves = tt.serverCurves
			cc := p.clientConfig()
			cc.MinVersion, cc.MaxVersion = tt.version, tt.version
			cc.CurvePreferences = tt.client
			cs, sr, cerr := handshake(t, mustNewServer(t, o), cc)
			if tt.want == 0 {
				expectRefused(t, cerr, sr)
				return
			}
			expectAccepted(t, cerr, sr)
			if cerr == nil && cs.CurveID != tt.want {
				t.Errorf("group %v, want %v", cs.CurveID, tt.want)
			}
		})
	}
}

func TestClientAuth(t *testing.T) {
	p := newPKI(t)
	chain2 := p.chainClient(2)
	chain10 := p.chainClient(10)
	chain11 := p.chainClient(11)

	type client struct {
		name   string
		cert   *issued // nil = no certificate
		reason string  // what the server's error says when it refuses this client
	}
	none := client{"no certificate", nil, "didn't provide a certificate"}
	good := client{"good client", &p.client, "depth allows"}
	attacker := client{"attacker self-signed with the victim's CN", &p.attacker, "unknown authority"}
	expired := client{"expired client", &p.expired, "expired"}
	depth2 := client{"chain with 2 intermediates", &chain2, "depth allows at most"}
	depth10 := client{"chain with 10 intermediates", &chain10, "depth allows at most"}
	depth11 := client{"chain with 11 intermediates", &chain11, "has 11 intermediate CA certificates; depth allows at most 10"}

	type want int
	const (
		refused want = iota
		anonymous
		identified
	)
	tests := []struct {
		name  string
		opts  ServerOptions
		cases map[client]want
	}{
		{"verify_peer, fail_if_no_peer_cert", p.peerOptions(true), map[client]want{
			none: refused, attacker: refused, expired: refused, depth11: refused,
			good: identified, depth2: identified, depth10: identified,
		}},
		{"verify_peer, certificate optional", p.peerOptions(false), map[client]want{
			none: anonymous, attacker: refused, expired: refused, depth11: refused,
			good: identified, depth10: identified,
		}},
		{"verify_peer, depth 1", func() ServerOptions { o := p.peerOptions(true); o.Depth = 1; return o }(), map[client]want{
			depth2: refused, depth10: refused, good: identified,
		}},
		{"verify_peer, depth 2", func() ServerOptions { o := p.peerOptions(true); o.Depth = 2; return o }(), map[client]want{
			depth2: identified, depth10: refused,
		}},
		{"verify_none", p.options(), map[client]want{
			none: anonymous, good: anonymous, attacker: anonymous, expired: anonymous,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustNewServer(t, tt.opts)
			for c, w := range tt.cases {
				for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
					name := c.name + map[uint16]string{tls.VersionTLS12: "/TLS1.2", tls.VersionTLS13: "/TLS1.3"}[v]
					t.Run(name, func(t *testing.T) {
						cc := p.clientConfig()
						cc.MinVersion, cc.MaxVersion = v, v
						if c.cert != nil {
							// Send the certificate whatever CAs the server names: crypto/tls
							// clients otherwise withhold one that does not chain to them.
							tc := c.cert.tlsCert()
							cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc, nil }
						}
						_, sr, cerr := handshake(t, cfg, cc)
						if w == refused {
							expectRefused(t, cerr, sr)
							if sr.err != nil && !strings.Contains(sr.err.Error(), c.reason) {
								t.Errorf("server refused with %q, want a reason containing %q", sr.err, c.reason)
							}
							return
						}
						expectAccepted(t, cerr, sr)
						if sr.err != nil {
							return
						}
						id, ok := PeerIdentity(sr.state)
						if w == anonymous {
							if ok {
								t.Errorf("PeerIdentity() = %+v, true; want false", id)
							}
							return
						}
						if !ok {
							t.Fatal("PeerIdentity() = false, want the client's identity")
						}
						checkIdentity(t, id, c.cert.cert)
					})
				}
			}
		})
	}
}

func checkIdentity(t *testing.T, id Identity, leaf *x509.Certificate) {
	t.Helper()
	sum := sha256.Sum256(leaf.Raw)
	want := Identity{
		CN:       leaf.Subject.CommonName,
		DN:       "CN=" + leaf.Subject.CommonName + ",OU=devices,O=Rampart Test",
		DNSNames: []string{leaf.Subject.CommonName + ".devices.example"},
		URIs:     []string{"spiffe://example.org/device/" + leaf.Subject.CommonName},
		SHA256:   hex.EncodeToString(sum[:]),
	}
	if id.CN != want.CN || id.DN != want.DN || id.SHA256 != want.SHA256 ||
		!slices.Equal(id.DNSNames, want.DNSNames) || !slices.Equal(id.URIs, want.URIs) {
		t.Errorf("PeerIdentity() = %+v\nwant %+v", id, want)
	}
}

// TestPeerIdentityUnverified proves that a certificate the server received but did not
// verify never yields an identity: the server asks for a certificate without verifying it
// (tls.RequestClientCert, which NewServer never sets) and the attacker sends one.
func TestPeerIdentityUnverified(t *testing.T) {
	p := newPKI(t)
	cfg := mustNewServer(t, p.options())
	cfg.ClientAuth = tls.RequestClientCert
	for _, c := range []issued{p.attacker, p.client} {
		cc := p.clientConfig()
		tc := c.tlsCert()
		cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc, nil }
		_, sr, cerr := handshake(t, cfg, cc)
		expectAccepted(t, cerr, sr)
		if len(sr.state.PeerCertificates) == 0 {
			t.Fatal("server received no client certificate; the test proves nothing")
		}
		if id, ok := PeerIdentity(sr.state); ok {
			t.Errorf("PeerIdentity() of an unverified %q = %+v, true; want false", c.cert.Subject.CommonName, id)
		}
	}
}

func TestPeerIdentityState(t *testing.T) {
	p := newPKI(t)
	verified := [][]*x509.Certificate{{p.client.cert, p.inter.cert, p.root.cert}}
	tests := []struct {
		name string
		cs   tls.ConnectionState
		ok   bool
	}{
		{"zero state", tls.ConnectionState{}, false},
		{"peer certificates only", tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{p.attacker.cert}}, false},
		{"handshake not complete", tls.ConnectionState{VerifiedChains: verified}, false},
		{"empty verified chain", tls.ConnectionState{HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{}}}, false},
		{"verified", tls.ConnectionState{HandshakeComplete: true, VerifiedChains: verified, PeerCertificates: []*x509.Certificate{p.client.cert}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := PeerIdentity(tt.cs)
			if ok != tt.ok {
				t.Fatalf("PeerIdentity() ok = %v, want %v", ok, tt.ok)
			}
			if ok {
				checkIdentity(t, id, p.client.cert)
			} else if id.CN != "" || id.SHA256 != "" {
				t.Errorf("identity %+v returned with false", id)
			}
		})
	}
}

func TestDepthVerifier(t *testing.T) {
	c := &x509.Certificate{}
	chain := func(n int) []*x509.Certificate { return slices.Repeat([]*x509.Certificate{c}, n) }
	tests := []struct {
		name   string
		depth  int
		chains [][]*x509.Certificate
		ok     bool
	}{
		{"no client certificate", 10, nil, true},
		{"leaf directly under the root", 0, [][]*x509.Certificate{chain(2)}, true},
		{"one intermediate, depth 0", 0, [][]*x509.Certificate{chain(3)}, false},
		{"at the limit", 3, [][]*x509.Certificate{chain(5)}, true},
		{"one over the limit", 3, [][]*x509.Certificate{chain(6)}, false},
		{"one of several chains within the limit", 3, [][]*x509.Certificate{chain(7), chain(4)}, true},
		{"all chains too long", 3, [][]*x509.Certificate{chain(7), chain(6)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := depthVerifier(tt.depth)(tls.ConnectionState{VerifiedChains: tt.chains})
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

// TestSessionResumption checks that a resumed TLS 1.3 session still carries the verified
// client identity (tickets stay on with automatic key rotation).
func TestSessionResumption(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, mustNewServer(t, p.peerOptions(true)))
	cc := p.clientConfig()
	cc.Certificates = []tls.Certificate{p.client.tlsCert()}
	cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i, wantResumed := range []bool{false, true} {
		cs, err := dial(s.addr, cc)
		sr := s.next(t)
		expectAccepted(t, err, sr)
		if err != nil || sr.err != nil {
			return
		}
		if cs.DidResume != wantResumed {
			t.Errorf("connection %d: DidResume = %v, want %v", i, cs.DidResume, wantResumed)
		}
		id, ok := PeerIdentity(sr.state)
		if !ok {
			t.Fatalf("connection %d: no identity", i)
		}
		checkIdentity(t, id, p.client.cert)
	}
}
