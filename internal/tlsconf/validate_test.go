package tlsconf

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	base := func(mod func(o *ServerOptions)) ServerOptions {
		o := ServerOptions{CertFile: "/etc/rampart/cert.pem", KeyFile: "/etc/rampart/key.pem"}
		if mod != nil {
			mod(&o)
		}
		return o
	}
	tests := []struct {
		name    string
		opts    ServerOptions
		wantErr string // "" = valid; otherwise substrings, separated by "|"
	}{
		{"minimal", base(nil), ""},
		{"both versions", base(func(o *ServerOptions) { o.Versions = []string{"tlsv1.2", "tlsv1.3"} }), ""},
		{"tls13 only, case-insensitive", base(func(o *ServerOptions) { o.Versions = []string{"TLSv1.3"} }), ""},
		{"openssl cipher names", base(func(o *ServerOptions) {
			o.Ciphers = []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"}
		}), ""},
		{"iana cipher names", base(func(o *ServerOptions) {
			o.Ciphers = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}
		}), ""},
		{"cbc allowed with allow_insecure_ciphers", base(func(o *ServerOptions) {
			o.Ciphers = []string{"ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA"}
			o.AllowInsecureCiphers = true
		}), ""},
		{"curves", base(func(o *ServerOptions) { o.Curves = []string{"X25519MLKEM768", "X25519", "P-256", "P-384", "P-521"} }), ""},
		{"hybrid only with tls13 only", base(func(o *ServerOptions) {
			o.Versions = []string{"tlsv1.3"}
			o.Curves = []string{"X25519MLKEM768"}
		}), ""},
		{"verify_none explicit", base(func(o *ServerOptions) { o.Verify = VerifyNone }), ""},
		{"verify_peer", base(func(o *ServerOptions) {
			o.Verify, o.CACertFile, o.FailIfNoPeerCert, o.Depth = VerifyPeer, "/etc/rampart/ca.pem", true, 3
		}), ""},

		{"no certfile", ServerOptions{KeyFile: "k"}, "certfile: is required"},
		{"no keyfile", ServerOptions{CertFile: "c"}, "keyfile: is required"},
		{"neither file", ServerOptions{}, "certfile: is required|keyfile: is required"},
		{"tlsv1.1", base(func(o *ServerOptions) { o.Versions = []string{"tlsv1.2", "tlsv1.1"} }), `versions: "tlsv1.1" is not allowed; use tlsv1.2 or tlsv1.3`},
		{"tlsv1", base(func(o *ServerOptions) { o.Versions = []string{"tlsv1"} }), `versions: "tlsv1" is not allowed`},
		{"tlsv1.0", base(func(o *ServerOptions) { o.Versions = []string{"tlsv1.0"} }), `versions: "tlsv1.0" is not allowed`},
		{"sslv3", base(func(o *ServerOptions) { o.Versions = []string{"sslv3"} }), `versions: "sslv3" is not allowed`},
		{"unknown version", base(func(o *ServerOptions) { o.Versions = []string{"tls1.3"} }), `versions: "tls1.3" is not a known version`},
		{"empty version", base(func(o *ServerOptions) { o.Versions = []string{""} }), `versions: "" is not a known version`},
		{"duplicate version", base(func(o *ServerOptions) { o.Versions = []string{"tlsv1.3", "TLSV1.3"} }), `versions: "TLSV1.3" is listed twice`},
		{"unknown cipher", base(func(o *ServerOptions) { o.Ciphers = []string{"ECDHE-ECDSA-AES128-GCM-SHA999"} }), `ciphers: "ECDHE-ECDSA-AES128-GCM-SHA999" is not a known TLS 1.2 cipher suite`},
		{"empty cipher", base(func(o *ServerOptions) { o.Ciphers = []string{" "} }), "ciphers: empty name"},
		{"cbc without allow", base(func(o *ServerOptions) { o.Ciphers = []string{"ECDHE-ECDSA-AES128-SHA"} }), `ciphers: "ECDHE-ECDSA-AES128-SHA" (ECDHE-ECDSA-AES128-SHA) uses CBC mode or RSA key exchange`},
		{"cbc sha256 iana without allow", base(func(o *ServerOptions) { o.Ciphers = []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"} }), "requires allow_insecure_ciphers: true"},
		{"rsa kex gcm without allow", base(func(o *ServerOptions) { o.Ciphers = []string{"AES256-GCM-SHA384"} }), `ciphers: "AES256-GCM-SHA384"`},
		{"rsa kex cbc without allow", base(func(o *ServerOptions) { o.Ciphers = []string{"AES128-SHA"} }), "requires allow_insecure_ciphers"},
		{"rc4 openssl", base(func(o *ServerOptions) { o.Ciphers = []string{"RC4-SHA"}; o.AllowInsecureCiphers = true }), `ciphers: "RC4-SHA" is never allowed`},
		{"rc4 iana", base(func(o *ServerOptions) {
			o.Ciphers = []string{"TLS_ECDHE_RSA_WITH_RC4_128_SHA"}
			o.AllowInsecureCiphers = true
		}), "is never allowed"},
		{"3des openssl", base(func(o *ServerOptions) { o.Ciphers = []string{"DES-CBC3-SHA"}; o.AllowInsecureCiphers = true }), `ciphers: "DES-CBC3-SHA" is never allowed`},
		{"3des iana", base(func(o *ServerOptions) {
			o.Ciphers = []string{"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"}
			o.AllowInsecureCiphers = true
		}), "is never allowed"},
		{"null openssl (not implemented by Go)", base(func(o *ServerOptions) { o.Ciphers = []string{"NULL-SHA256"}; o.AllowInsecureCiphers = true }), `ciphers: "NULL-SHA256" is never allowed`},
		{"null iana", base(func(o *ServerOptions) { o.Ciphers = []string{"TLS_RSA_WITH_NULL_SHA"} }), "is never allowed"},
		{"export", base(func(o *ServerOptions) { o.Ciphers = []string{"EXP-RC4-MD5"} }), "is never allowed"},
		{"anonymous", base(func(o *ServerOptions) { o.Ciphers = []string{"ADH-AES128-GCM-SHA256"} }), "is never allowed"},
		{"tls13 suite", base(func(o *ServerOptions) { o.Ciphers = []string{"TLS_AES_128_GCM_SHA256"} }), `ciphers: "TLS_AES_128_GCM_SHA256" is a TLS 1.3 suite`},
		{"duplicate cipher across name styles", base(func(o *ServerOptions) {
			o.Ciphers = []string{"ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}
		}), "is listed twice"},
		{"unknown curve", base(func(o *ServerOptions) { o.Curves = []string{"P-224"} }), `curves: "P-224" is not a supported group`},
		{"duplicate curve", base(func(o *ServerOptions) { o.Curves = []string{"P-256", "prime256v1"} }), `curves: "prime256v1" is listed twice`},
		{"hybrid only with tls12 enabled", base(func(o *ServerOptions) { o.Curves = []string{"X25519MLKEM768"} }), "curves: TLS 1.2 is enabled"},
		{"unknown verify", base(func(o *ServerOptions) { o.Verify = "verify_fail" }), `verify: "verify_fail" is not valid`},
		{"verify_peer without cacertfile", base(func(o *ServerOptions) { o.Verify = VerifyPeer }), "cacertfile: is required with verify: verify_peer"},
		{"fail_if_no_peer_cert without verify_peer", base(func(o *ServerOptions) { o.FailIfNoPeerCert = true }), "fail_if_no_peer_cert: requires verify: verify_peer"},
		{"negative depth", base(func(o *ServerOptions) {
			o.Verify, o.CACertFile, o.Depth = VerifyPeer, "ca.pem", -1
		}), "depth: -1 is negative"},
		{"several errors reported together", base(func(o *ServerOptions) {
			o.Versions = []string{"sslv3"}
			o.Curves = []string{"brainpool"}
			o.Verify = "yes"
		}), `versions: "sslv3"|curves: "brainpool"|verify: "yes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			}
			for _, want := range strings.Split(tt.wantErr, "|") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
			// NewServer refuses the same options before reading any file.
			if _, nerr := NewServer(tt.opts); nerr == nil || !strings.Contains(nerr.Error(), strings.Split(tt.wantErr, "|")[0]) {
				t.Errorf("NewServer() = %v, want the validation error", nerr)
			}
		})
	}
}

// TestCipherTables checks the name tables against what crypto/tls implements: every suite
// Go has is known by both names, and the default set is exactly Go's secure ECDHE AEAD
// suites.
func TestCipherTables(t *testing.T) {
	goSuites := map[uint16]string{}
	for _, s := range tls.CipherSuites() {
		if !slices.Contains(s.SupportedVersions, tls.VersionTLS13) {
			goSuites[s.ID] = s.Name
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		goSuites[s.ID] = s.Name
	}
	if len(goSuites) != len(suites) {
		t.Errorf("table has %d suites, crypto/tls implements %d TLS 1.2 suites", len(suites), len(goSuites))
	}
	for _, s := range suites {
		if goSuites[s.id] != s.iana {
			t.Errorf("suite %#04x: table says %q, crypto/tls says %q", s.id, s.iana, goSuites[s.id])
		}
		for _, name := range []string{s.iana, s.openssl, strings.ToLower(s.openssl)} {
			got, ok := lookupSuite(name)
			if !ok || got.id != s.id {
				t.Errorf("lookupSuite(%q) = %#04x, %v", name, got.id, ok)
			}
		}
	}
	want := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if got := DefaultCipherSuites(); !slices.Equal(got, want) {
		t.Errorf("DefaultCipherSuites() = %v, want %v", got, want)
	}
	// Every suite Go itself flags as insecure must be refused without the opt-in.
	for _, s := range tls.InsecureCipherSuites() {
		if _, err := parseCiphers([]string{s.Name}, false); err == nil {
			t.Errorf("%s accepted without allow_insecure_ciphers", s.Name)
		}
	}
	// CBC suites Go lists as secure are still refused without the opt-in.
	for _, s := range tls.CipherSuites() {
		if strings.Contains(s.Name, "_CBC_") {
			if _, err := parseCiphers([]string{s.Name}, false); err == nil {
				t.Errorf("%s accepted without allow_insecure_ciphers", s.Name)
			}
		}
	}
}
