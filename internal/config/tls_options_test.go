package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// sslListenerYAML is a configuration with one ssl listener whose ssl_options end with
// extra (indented under ssl_options).
func sslListenerYAML(extra string) string {
	return `listeners:
  ssl:
    devices:
      bind: "127.0.0.1:8883"
      ssl_options:
        certfile: /etc/rampart/server.pem
        keyfile: /etc/rampart/server-key.pem
        cacertfile: /etc/rampart/ca.pem
        verify: verify_peer
        fail_if_no_peer_cert: true
` + extra
}

func TestSSLOptionsKeysLoad(t *testing.T) {
	c, err := Load(writeConfig(t, sslListenerYAML(`        keyfile_password: file:/etc/rampart/key.pass
        crl_from_distribution_points: true
        crl_http_timeout: 5s
        sni_certs:
          broker.example.com:
            certfile: /etc/rampart/broker.pem
            keyfile: /etc/rampart/broker-key.pem
            keyfile_password: env:BROKER_KEY_PASSWORD
          "*.devices.example.com":
            certfile: /etc/rampart/devices.pem
            keyfile: /etc/rampart/devices-key.pem
        ocsp:
          enable_ocsp_stapling: true
          responder_url: http://ocsp.example.com
          issuer_file: /etc/rampart/issuer.pem
          refresh_interval: 1m
          refresh_http_timeout: 3s
          verify_client_certificate: true
          client_ocsp_on_error: allow
`)), []string{"RAMPART_LISTENERS__SSL__DEVICES__SSL_OPTIONS__SNI_CERTS__BROKER.EXAMPLE.COM__KEYFILE=/etc/rampart/other-key.pem"})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Listeners.SSL["devices"].SSLOptions.TLSOptions()
	want := tlsconf.OCSPOptions{Stapling: true, ResponderURL: "http://ocsp.example.com", IssuerFile: "/etc/rampart/issuer.pem",
		RefreshInterval: time.Minute, HTTPTimeout: 3 * time.Second, VerifyClient: true, ClientOnError: tlsconf.OCSPOnErrorAllow}
	if got.OCSP != want {
		t.Errorf("OCSP = %+v, want %+v", got.OCSP, want)
	}
	if got.KeyFilePassword != "file:/etc/rampart/key.pass" {
		t.Errorf("KeyFilePassword = %q", got.KeyFilePassword)
	}
	wantSNI := map[string]tlsconf.CertKey{
		"broker.example.com":    {CertFile: "/etc/rampart/broker.pem", KeyFile: "/etc/rampart/other-key.pem", KeyFilePassword: "env:BROKER_KEY_PASSWORD"},
		"*.devices.example.com": {CertFile: "/etc/rampart/devices.pem", KeyFile: "/etc/rampart/devices-key.pem"},
	}
	if !reflect.DeepEqual(got.SNICerts, wantSNI) {
		t.Errorf("SNICerts = %+v, want %+v", got.SNICerts, wantSNI)
	}
	ro, ok := c.Listeners.SSL["devices"].SSLOptions.RevocationOptions()
	if !ok || !ro.FromDistributionPoints || ro.HTTPTimeout != 5*time.Second {
		t.Errorf("RevocationOptions = %+v, %v", ro, ok)
	}
}

func TestSSLOptionsKeysValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		mtls  bool
		want  []string
	}{
		{"[SECURITY] an inline key password is refused", "        keyfile_password: hunter2\n", true,
			[]string{"listeners.ssl.devices.ssl_options: keyfile_password: must be file:/path or env:NAME"}},
		{"[SECURITY] an inline SNI key password is refused", "        sni_certs:\n          a.example.com: {certfile: a.pem, keyfile: a.key, keyfile_password: hunter2}\n", true,
			[]string{"sni_certs.a.example.com.keyfile_password: must be file:/path or env:NAME"}},
		{"an SNI entry without files", "        sni_certs:\n          a.example.com: {}\n", true,
			[]string{"sni_certs.a.example.com.certfile: is required", "sni_certs.a.example.com.keyfile: is required"}},
		{"an SNI name that is no DNS name", "        sni_certs:\n          \"10.0.0.1\": {certfile: a.pem, keyfile: a.key}\n", true,
			[]string{`sni_certs: "10.0.0.1" is an IP address`}},
		{"DP CRLs need verify_peer", "        crl_from_distribution_points: true\n", false,
			[]string{"listeners.ssl.devices.ssl_options.crl_from_distribution_points: needs verify: verify_peer"}},
		{"client OCSP needs verify_peer", "        ocsp: {verify_client_certificate: true}\n", false,
			[]string{"ocsp.verify_client_certificate: needs verify: verify_peer"}},
		{"timeouts", "        crl_http_timeout: 0s\n        ocsp: {refresh_interval: 100ms, refresh_http_timeout: 10m}\n", true,
			[]string{"ssl_options.crl_http_timeout: must be between 1ms and 5m", "ssl_options.ocsp.refresh_interval: must be at least 1s",
				"ssl_options.ocsp.refresh_http_timeout: must be between 1ms and 5m"}},
		{"client_ocsp_on_error is deny or allow", "        ocsp: {client_ocsp_on_error: ignore}\n", true,
			[]string{"ssl_options.ocsp.client_ocsp_on_error"}},
		{"an ldap responder_url", "        ocsp: {responder_url: \"ldap://ocsp.example.com\"}\n", true,
			[]string{"ocsp.responder_url:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := sslListenerYAML(tc.extra)
			if !tc.mtls {
				text = strings.Replace(text, "        verify: verify_peer\n        fail_if_no_peer_cert: true\n", "", 1)
			}
			_, err := Load(writeConfig(t, text), nil)
			if err == nil {
				t.Fatalf("loaded; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats the inline password: %v", err)
			}
		})
	}
}
