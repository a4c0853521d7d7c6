package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateTLSListeners(t *testing.T) {
	ssl := func(f func(*SSLListener)) func(*Config) {
		return func(c *Config) {
			var l SSLListener
			l.setDefaults()
			l.Bind = "127.0.0.1:8883"
			l.SSLOptions.CertFile, l.SSLOptions.KeyFile = "server.pem", "server.key"
			f(&l)
			c.Listeners.SSL["devices"] = l
		}
	}
	mtls := func(l *SSLListener) {
		l.SSLOptions.Verify, l.SSLOptions.FailIfNoPeerCert, l.SSLOptions.CACertFile = VerifyPeer, true, "ca.pem"
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string // nil: valid
	}{
		{"server TLS on loopback", ssl(func(*SSLListener) {}), nil},
		{"no certificate", ssl(func(l *SSLListener) { l.SSLOptions.CertFile, l.SSLOptions.KeyFile = "", "" }),
			[]string{"listeners.ssl.devices.ssl_options: certfile:", "keyfile:"}},
		{"[SECURITY] TLS 1.1 is a configuration error", ssl(func(l *SSLListener) { l.SSLOptions.Versions = []string{"tlsv1.1"} }),
			[]string{"listeners.ssl.devices.ssl_options: ", "tlsv1.1"}},
		{"verify_peer needs a CA", ssl(func(l *SSLListener) { l.SSLOptions.Verify = VerifyPeer }),
			[]string{"listeners.ssl.devices.ssl_options: cacertfile:"}},
		{"[SECURITY] peer_cert_as_username without verify_peer: a self-signed certificate would name anyone",
			ssl(func(l *SSLListener) { l.PeerCertAsUsername = "cn" }),
			[]string{"listeners.ssl.devices.peer_cert_as_username: needs ssl_options.verify: verify_peer, fail_if_no_peer_cert: true and a cacertfile"}},
		{"[SECURITY] peer_cert_as_clientid without fail_if_no_peer_cert", ssl(func(l *SSLListener) {
			mtls(l)
			l.SSLOptions.FailIfNoPeerCert = false
			l.PeerCertAsClientID = "san_uri"
		}), []string{"listeners.ssl.devices.peer_cert_as_clientid: needs ssl_options.verify: verify_peer"}},
		{"peer_cert_as_username with mutual TLS", ssl(func(l *SSLListener) { mtls(l); l.PeerCertAsUsername = "cn" }), nil},
		{"[SECURITY] server-only TLS on every interface still needs authentication", ssl(func(l *SSLListener) { l.Bind = "0.0.0.0:8883" }),
			[]string{"listeners.ssl.devices.bind: binds 0.0.0.0:8883 (not loopback) with no authenticator"}},
		{"mutual TLS on every interface authenticates by certificate", ssl(func(l *SSLListener) { mtls(l); l.Bind = "0.0.0.0:8883" }), nil},
		{"overlaps the tcp listener", ssl(func(l *SSLListener) { l.Bind = "127.0.0.1:1883" }),
			[]string{"listeners.ssl.devices.bind: binds 127.0.0.1:1883, which overlaps listeners.tcp.default"}},
		{"bad depth and handshake timeout", ssl(func(l *SSLListener) { l.SSLOptions.Depth, l.SSLOptions.HandshakeTimeout = -1, 0 }),
			[]string{"ssl_options: depth:", "ssl_options.handshake_timeout: must be between"}},
		{"CRLs apply to client certificates", ssl(func(l *SSLListener) { l.SSLOptions.CRLFiles = []string{"crl.pem"} }),
			[]string{"listeners.ssl.devices.ssl_options.crl_files: need verify: verify_peer"}},
		{"CRL timing", ssl(func(l *SSLListener) {
			mtls(l)
			l.SSLOptions.CRLRefreshInterval, l.SSLOptions.CRLGrace = Duration(time.Millisecond), -1
		}),
			[]string{"crl_refresh_interval: must be at least 1s", "crl_grace: must not be negative"}},
		{"PROXY protocol needs trusted peers", func(c *Config) {
			l := c.Listeners.TCP["default"]
			l.ProxyProtocol = true
			c.Listeners.TCP["default"] = l
		}, []string{"listeners.tcp.default.proxy_protocol_trusted: must list the load balancers' addresses"}},
		{"PROXY protocol trusted entries", func(c *Config) {
			l := c.Listeners.TCP["default"]
			l.ProxyProtocol, l.ProxyProtocolTrusted = true, []string{"10.0.0.5", "10.1.0.0/16", "10.2.0.1/16"}
			c.Listeners.TCP["default"] = l
		}, []string{`entry 3 "10.2.0.1/16": host bits set; did you mean 10.2.0.0/16?`}},
		{"negative connection rates", func(c *Config) {
			l := c.Listeners.TCP["default"]
			l.MaxConnRate, l.MaxConnRatePerIP = -1, -5
			c.Listeners.TCP["default"] = l
		}, []string{"listeners.tcp.default.max_conn_rate: must not be negative", "listeners.tcp.default.max_conn_rate_per_ip: must not be negative"}},
		{"per-address connection limits", func(c *Config) {
			l := c.Listeners.TCP["default"]
			l.MaxConnectionsPerIP, l.MaxPreauthConnectionsPerIP = 0, Infinity
			c.Listeners.TCP["default"] = l
			w := c.Listeners.WS["default"]
			w.MaxConnectionsPerIP, w.MaxPreauthConnectionsPerIP = 1, 0
			c.Listeners.WS["default"] = w
		}, []string{"listeners.tcp.default.max_connections_per_ip: must be at least 1 or infinity, got 0",
			"listeners.ws.default.max_preauth_connections_per_ip: must be at least 1 or infinity, got 0"}},
		{"bad access rule", ssl(func(l *SSLListener) { l.AccessRules = []string{"allow 10.0.0.0/8", "permit all"} }),
			[]string{`listeners.ssl.devices.access_rules: access rule 2 "permit all": "permit" is neither allow nor deny`}},
		{"access rules on a tcp listener", func(c *Config) {
			l := c.Listeners.TCP["default"]
			l.AccessRules = []string{"allow 127.0.0.0/8", "deny all"}
			c.Listeners.TCP["default"] = l
		}, nil},
		{"wss needs a path too", func(c *Config) {
			var w WSSListener
			w.setDefaults()
			w.Bind, w.Path = "127.0.0.1:8084", "mqtt"
			w.SSLOptions.CertFile, w.SSLOptions.KeyFile = "server.pem", "server.key"
			c.Listeners.WSS["browsers"] = w
		}, []string{"listeners.wss.browsers.path: must start with '/'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Authorization.NoMatch = "allow" // not what these cases are about
			tc.change(c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want errors %q, got none", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
