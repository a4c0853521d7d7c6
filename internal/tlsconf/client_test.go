package tlsconf

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewClient(t *testing.T) {
	p := newPKI(t)
	// A backend on loopback with the PKI's server certificate that wants a client
	// certificate from the same CA.
	srvCfg := mustNewServer(t, p.peerOptions(false))
	var sawClientCert bool
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawClientCert = r.TLS != nil && len(r.TLS.VerifiedChains) > 0
		_, _ = w.Write([]byte("ok"))
	}))
	backend.TLS = srvCfg
	backend.StartTLS()
	t.Cleanup(backend.Close)
	url := strings.Replace(backend.URL, "127.0.0.1", "localhost", 1)
	clientCertFile := p.writeCerts("client.pem", p.client.cert, p.inter.cert)
	clientKeyFile := p.writeKey("client-key.pem", p.client.key, "PKCS8")

	get := func(o ClientOptions) error {
		cfg, err := NewClient(o)
		if err != nil {
			return err
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	for _, tc := range []struct {
		name     string
		o        ClientOptions
		wantErr  string
		wantCert bool
	}{
		{"verified with the CA", ClientOptions{CACertFile: p.caFile}, "", false},
		{"mutual TLS", ClientOptions{CACertFile: p.caFile, CertFile: clientCertFile, KeyFile: clientKeyFile}, "", true},
		{"[SECURITY] an unknown CA is refused by default", ClientOptions{}, "certificate", false},
		{"[SECURITY] a server name the certificate does not carry is refused", ClientOptions{CACertFile: p.caFile, ServerName: "backend.example"}, "certificate", false},
		{"[SECURITY] verify_none needs the explicit key", ClientOptions{Verify: "verify_none"}, "allow_verify_none", false},
		{"verify_none with the explicit key", ClientOptions{Verify: "verify_none", AllowVerifyNone: true}, "", false},
		{"half a client certificate", ClientOptions{CACertFile: p.caFile, CertFile: clientCertFile}, "needs both", false},
		{"bad verify value", ClientOptions{Verify: "maybe"}, "verify", false},
		{"missing CA file", ClientOptions{CACertFile: p.path("nope.pem")}, "nope.pem", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sawClientCert = false
			err := get(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sawClientCert != tc.wantCert {
				t.Fatalf("server saw a verified client certificate: %v, want %v", sawClientCert, tc.wantCert)
			}
		})
	}
}
