package main

// Integration tests of the TLS features that reach the network or the key files through
// the binary: CRLs from distribution points (a live client is disconnected when its
// certificate is revoked), OCSP stapling with SNI certificates and an encrypted key, and
// an external scan of a listener in its default ssl_options with sslscan.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// crlEndpoint serves a CRL of the test CA on loopback, as a distribution point does.
type crlEndpoint struct {
	srv *httptest.Server
	mu  sync.Mutex
	der []byte
}

func newCRLEndpoint(t *testing.T) *crlEndpoint {
	e := &crlEndpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, _ = w.Write(e.der)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// publish makes the endpoint serve a CRL of the test CA revoking serials.
func (e *crlEndpoint) publish(t *testing.T, p *testPKI, number int64, revoked ...*big.Int) {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.ca, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.der = der
}

func TestServeTLSDistributionPointCRL(t *testing.T) {
	p := newTestPKI(t)
	dp := newCRLEndpoint(t)
	dp.publish(t, p, 1)
	_, _, device := p.issue(t, "dp-device", &x509.Certificate{Subject: pkix.Name{CommonName: "dp-device"},
		CRLDistributionPoints: []string{dp.srv.URL + "/ca.crl"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, p.ca, p.caKey)
	cfg := tlsConfig(p, t.TempDir(), true, "crl_from_distribution_points: true", "crl_http_timeout: 5s", "crl_refresh_interval: 1s")
	b := startBroker(t, writeConfig(t, cfg), "ssl:devices")
	addr := b.addr("ssl:devices")
	clientCfg := &tls.Config{RootCAs: p.pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{device}}

	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitPacket}, "tcp", addr, clientCfg)
	if err != nil {
		t.Fatalf("handshake before revocation: %v", err)
	}
	c := rawOver(t, tc, packet.V5)
	if ack := c.connect(v5Connect("any", true, 0)); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}

	t.Run("[SECURITY] revoking a connected client's certificate on its distribution point disconnects it with 0x87", func(t *testing.T) {
		leaf, _ := x509.ParseCertificate(device.Certificate[0])
		dp.publish(t, p, 2, leaf.SerialNumber)
		if d := expect[*packet.Disconnect](c); d.ReasonCode != packet.NotAuthorized {
			t.Fatalf("DISCONNECT %v, want 0x87", d.ReasonCode)
		}
	})

	t.Run("[SECURITY] the revoked certificate cannot connect again", func(t *testing.T) {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitPacket}, "tcp", addr, clientCfg)
		if err == nil {
			// TLS 1.3: the refusal comes with the first read.
			_ = tc.SetReadDeadline(time.Now().Add(waitPacket))
			var one [1]byte
			_, err = tc.Read(one[:])
			_ = tc.Close()
		}
		if err == nil || os.IsTimeout(err) {
			t.Fatalf("a revoked certificate completed the handshake (%v)", err)
		}
	})
}

// ocspEndpoint answers "good" for every certificate of the test CA, signed by the CA.
func ocspEndpoint(t *testing.T, p *testPKI) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		der, err := ocsp.CreateResponse(p.ca, p.ca, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
			ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}, p.caKey)
		if err != nil {
			http.Error(w, "sign", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(der)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// lookOpenSSL finds openssl or skips (fails with REQUIRE_TEST_SERVICES).
func lookOpenSSL(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatal("openssl not installed; REQUIRE_TEST_SERVICES is set")
		}
		t.Skip("openssl not installed (scripts/test-services.sh install)")
	}
	return bin
}

func TestServeTLSStaplingSNIEncryptedKey(t *testing.T) {
	openssl := lookOpenSSL(t)
	p := newTestPKI(t)
	responder := ocspEndpoint(t, p)
	// The SNI certificate names the responder in its AIA; the default certificate's
	// responder and issuer come from the configuration.
	sniLeaf, sniKey, _ := p.issue(t, "sni", &x509.Certificate{Subject: pkix.Name{CommonName: "broker.example.test"},
		DNSNames: []string{"broker.example.test"}, OCSPServer: []string{responder.URL},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, p.ca, p.caKey)
	// Its chain file holds the issuer after the leaf, where stapling finds it.
	leafPEM, err := os.ReadFile(sniLeaf)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	sniCert := filepath.Join(p.dir, "sni-chain.pem")
	if err := os.WriteFile(sniCert, append(leafPEM, caPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	encKey := filepath.Join(p.dir, "server-key.enc.pem")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, openssl, "pkcs8", "-topk8", "-in", p.serverKey, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256",
		"-passout", "pass:s3cret-for-tests", "-out", encKey).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf(`node:
  data_dir: %s
  durability: none
listeners:
  tcp:
    default:
      enable: false
      bind: 127.0.0.1:0
  ws:
    default:
      enable: false
      bind: 127.0.0.1:0
  ssl:
    devices:
      bind: 127.0.0.1:0
      ssl_options:
        certfile: %s
        keyfile: %s
        keyfile_password: env:TEST_SERVER_KEY_PASSWORD
        sni_certs:
          broker.example.test:
            certfile: %s
            keyfile: %s
        ocsp:
          enable_ocsp_stapling: true
          responder_url: %s
          issuer_file: %s
sys_topics:
  sys_msg_interval: 0
`, strconv.Quote(t.TempDir()), strconv.Quote(p.serverCert), strconv.Quote(encKey), strconv.Quote(sniCert), strconv.Quote(sniKey),
		strconv.Quote(responder.URL), strconv.Quote(p.caFile))
	path := writeConfig(t, cfg)

	t.Run("[SECURITY] without the key's password the broker does not start", func(t *testing.T) {
		res := runRampart(t, filepath.Dir(path), nil, "serve", "--config", path)
		if res.code == 0 || !strings.Contains(res.stderr, "the private key is encrypted") && !strings.Contains(res.stderr, "TEST_SERVER_KEY_PASSWORD is not set") {
			t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
		}
	})

	b := startBrokerEnv(t, path, []string{"TEST_SERVER_KEY_PASSWORD=s3cret-for-tests"}, "ssl:devices")
	addr := b.addr("ssl:devices")
	handshake := func(serverName string) tls.ConnectionState {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitPacket}, "tcp", addr, &tls.Config{RootCAs: p.pool(), ServerName: serverName})
		if err != nil {
			t.Fatalf("handshake for %s: %v", serverName, err)
		}
		defer c.Close()
		return c.ConnectionState()
	}
	for _, tc := range []struct{ serverName, wantCN string }{
		{"broker.example.test", "broker.example.test"},
		{"127.0.0.1", "127.0.0.1"},
	} {
		t.Run("SNI "+tc.serverName+": its certificate with a verified staple", func(t *testing.T) {
			deadline := time.Now().Add(waitPacket)
			for {
				cs := handshake(tc.serverName)
				if got := cs.PeerCertificates[0].Subject.CommonName; got != tc.wantCN {
					t.Fatalf("certificate %q, want %q", got, tc.wantCN)
				}
				if cs.OCSPResponse != nil {
					resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], p.ca)
					if err != nil || resp.Status != ocsp.Good {
						t.Fatalf("staple: %v", err)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no OCSP staple within %s\n%s", waitPacket, b.stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// lookSSLScan finds sslscan or skips (fails with REQUIRE_TEST_SERVICES).
func lookSSLScan(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("sslscan")
	if err != nil {
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatal("sslscan not installed; REQUIRE_TEST_SERVICES is set")
		}
		t.Skip("sslscan not installed (scripts/test-services.sh install)")
	}
	return bin
}

var (
	// "TLSv1.1   disabled"
	sslscanProtocol = regexp.MustCompile(`(?m)^(SSLv2|SSLv3|TLSv1\.0|TLSv1\.1|TLSv1\.2|TLSv1\.3)\s+(enabled|disabled)\s*$`)
	// "Accepted  TLSv1.2  256 bits  ECDHE-ECDSA-AES256-GCM-SHA384  Curve 25519 DHE 253"
	sslscanCipher = regexp.MustCompile(`(?m)^(Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)`)
	sslscanSigAlg = regexp.MustCompile(`(?m)^Signature Algorithm:\s+(\S+)`)
	sslscanKey    = regexp.MustCompile(`(?m)^(RSA|ECC|DSA) Key Strength:\s+(\d+)`)
	// Ciphers no listener may accept: CBC (any suite that is not AEAD), RC4, 3DES, NULL,
	// export and anonymous suites.
	aeadCipher = regexp.MustCompile(`GCM|CHACHA20|CCM`)
	weakCipher = regexp.MustCompile(`RC4|DES|NULL|EXP|ADH|AECDH|anon|MD5|IDEA|SEED|CAMELLIA|ARIA`)
)

// sslscanFindings returns what an auditor would flag in sslscan's output: an old
// protocol, a non-AEAD, weak or short cipher, TLS 1.2 without ECDHE, a weak certificate
// key or a SHA-1 signature, insecure renegotiation, compression, Heartbleed. It also
// reports output it cannot read (no protocol, cipher or certificate lines), so a scan
// that did not work never passes.
func sslscanFindings(out string) []string {
	var f []string
	seen := map[string]string{}
	for _, m := range sslscanProtocol.FindAllStringSubmatch(out, -1) {
		seen[m[1]] = m[2]
	}
	for _, v := range []string{"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"} {
		if seen[v] != "disabled" {
			f = append(f, fmt.Sprintf("protocol %s: %q, want disabled", v, seen[v]))
		}
	}
	for _, v := range []string{"TLSv1.2", "TLSv1.3"} {
		if seen[v] != "enabled" {
			f = append(f, fmt.Sprintf("protocol %s: %q, want enabled (the scan must see the listener work)", v, seen[v]))
		}
	}
	ciphers := sslscanCipher.FindAllStringSubmatch(out, -1)
	if len(ciphers) == 0 {
		f = append(f, "no accepted cipher reported: the scan did not work")
	}
	for _, m := range ciphers {
		version, name := m[2], m[4]
		bits, _ := strconv.Atoi(m[3])
		switch {
		case version != "TLSv1.2" && version != "TLSv1.3":
			f = append(f, fmt.Sprintf("cipher %s accepted with %s", name, version))
		case bits < 128:
			f = append(f, fmt.Sprintf("cipher %s %s: %d bits", version, name, bits))
		case weakCipher.MatchString(name):
			f = append(f, fmt.Sprintf("cipher %s %s: a weak cipher", version, name))
		case !aeadCipher.MatchString(name):
			f = append(f, fmt.Sprintf("cipher %s %s: CBC, not an AEAD suite", version, name))
		case version == "TLSv1.2" && !strings.HasPrefix(name, "ECDHE-"):
			f = append(f, fmt.Sprintf("cipher %s %s: no ECDHE key exchange (no forward secrecy)", version, name))
		}
	}
	if sig := sslscanSigAlg.FindStringSubmatch(out); sig == nil {
		f = append(f, "no certificate signature algorithm reported")
	} else if s := strings.ToLower(sig[1]); strings.Contains(s, "sha1") || strings.Contains(s, "md5") {
		f = append(f, "certificate signed with "+sig[1])
	}
	if key := sslscanKey.FindStringSubmatch(out); key == nil {
		f = append(f, "no certificate key strength reported")
	} else {
		strength, _ := strconv.Atoi(key[2])
		if least := map[string]int{"RSA": 2048, "ECC": 128, "DSA": 1 << 30}[key[1]]; strength < least {
			f = append(f, fmt.Sprintf("certificate %s key strength %d, want at least %d", key[1], strength, least))
		}
	}
	for _, bad := range []string{"Insecure session renegotiation supported", "Compression enabled"} {
		if strings.Contains(out, bad) {
			f = append(f, bad)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "vulnerable to heartbleed") && !strings.Contains(line, "not vulnerable") {
			f = append(f, line)
		}
	}
	return f
}

// scanListener starts the broker with one ssl listener whose ssl_options are the
// certificate and key plus extra, and returns sslscan's output.
func scanListener(t *testing.T, sslscan string, p *testPKI, extra ...string) string {
	t.Helper()
	opts := ""
	for _, e := range extra {
		opts += "\n        " + e
	}
	cfg := fmt.Sprintf(`node:
  data_dir: %s
  durability: none
listeners:
  tcp:
    default:
      enable: false
      bind: 127.0.0.1:0
  ws:
    default:
      enable: false
      bind: 127.0.0.1:0
  ssl:
    scanned:
      bind: 127.0.0.1:0
      ssl_options:
        certfile: %s
        keyfile: %s%s
sys_topics:
  sys_msg_interval: 0
`, strconv.Quote(t.TempDir()), strconv.Quote(p.serverCert), strconv.Quote(p.serverKey), opts)
	b := startBroker(t, writeConfig(t, cfg), "ssl:scanned")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sslscan, "--no-colour", b.addr("ssl:scanned"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sslscan: %v\n%s", err, out)
	}
	return string(out)
}

// TestServeTLSScan runs sslscan against an ssl listener in its default ssl_options, with
// an ECDSA P-256 certificate signed with SHA-256, and fails on anything sslscanFindings
// flags. A listener relaxed to CBC suites shows that the check can fail.
func TestServeTLSScan(t *testing.T) {
	sslscan := lookSSLScan(t)
	p := newTestPKI(t)

	t.Run("[SECURITY] default ssl_options: nothing to flag", func(t *testing.T) {
		out := scanListener(t, sslscan, p)
		if f := sslscanFindings(out); len(f) > 0 {
			t.Errorf("sslscan findings:\n  %s\nsslscan output:\n%s", strings.Join(f, "\n  "), out)
		}
	})

	t.Run("control: CBC suites allowed explicitly are flagged", func(t *testing.T) {
		out := scanListener(t, sslscan, p, "allow_insecure_ciphers: true",
			"ciphers: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA, ECDHE-ECDSA-AES256-SHA]")
		f := strings.Join(sslscanFindings(out), "\n")
		if !strings.Contains(f, "ECDHE-ECDSA-AES128-SHA: CBC") {
			t.Errorf("the scan of a listener with CBC suites flags no CBC suite; findings:\n%s\noutput:\n%s", f, out)
		}
	})
}
