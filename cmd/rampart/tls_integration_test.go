package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// testPKI is a CA, a server certificate for 127.0.0.1, a device certificate, and an
// attacker's self-signed certificate that claims the device's name. Files are PEM in dir.
type testPKI struct {
	dir                           string
	caFile, serverCert, serverKey string
	deviceCert, deviceKey         string
	attackerCert, attackerKey     string
	ca                            *x509.Certificate
	caKey                         *ecdsa.PrivateKey
	device, attacker              tls.Certificate
	serial                        int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	caKey := mustKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Rampart test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = caKey
	p.serial = 1
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)

	p.serverCert, p.serverKey, _ = p.issue(t, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, p.ca, p.caKey)
	p.deviceCert, p.deviceKey, p.device = p.issue(t, "device", &x509.Certificate{Subject: pkix.Name{CommonName: "device-1", Organization: []string{"Fleet"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, p.ca, p.caKey)
	// The attacker signs its own certificate with the device's name.
	attackerKey := mustKey(t)
	self := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "device-1", Organization: []string{"Fleet"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err = x509.CreateCertificate(rand.Reader, self, self, &attackerKey.PublicKey, attackerKey)
	if err != nil {
		t.Fatal(err)
	}
	p.attackerCert = p.write(t, "attacker.pem", "CERTIFICATE", der)
	p.attackerKey = p.writeKey(t, "attacker-key.pem", attackerKey)
	p.attacker = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: attackerKey}
	return p
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *testPKI) issue(t *testing.T, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key := mustKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.writeKey(t, name+"-key.pem", key),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *testPKI) writeKey(t *testing.T, name string, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name, "EC PRIVATE KEY", der)
}

func (p *testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// tlsConfig is a broker configuration with one mutual-TLS listener whose certificate CN
// becomes the client id and user name.
func tlsConfig(p *testPKI, dataDir string, certIdentity bool, extraSSL ...string) string {
	id := ""
	if certIdentity {
		id = "\n      peer_cert_as_clientid: cn\n      peer_cert_as_username: cn"
	}
	ssl := ""
	for _, e := range extraSSL {
		ssl += "\n        " + e
	}
	return fmt.Sprintf(`node:
  data_dir: %s
  durability: none
log:
  level: debug
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
      bind: 127.0.0.1:0%s
      ssl_options:
        certfile: %s
        keyfile: %s
        cacertfile: %s
        verify: verify_peer
        fail_if_no_peer_cert: true%s
sys_topics:
  sys_msg_interval: 0
`, strconv.Quote(dataDir), id, strconv.Quote(p.serverCert), strconv.Quote(p.serverKey), strconv.Quote(p.caFile), ssl)
}

func TestServeTLS(t *testing.T) {
	p := newTestPKI(t)
	b := startBroker(t, writeConfig(t, tlsConfig(p, t.TempDir(), true)), "ssl:devices")
	addr := b.addr("ssl:devices")

	dialTLS := func(cert *tls.Certificate) (*tls.Conn, error) {
		cfg := &tls.Config{RootCAs: p.pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if cert != nil {
			// Always send it: Go would withhold a certificate that does not chain to the
			// CAs the server names, and the attack is to send it anyway.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: waitPacket}, Config: cfg}
		ctx, cancel := context.WithTimeout(context.Background(), waitPacket)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := c.(*tls.Conn)
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var one [1]byte
		if _, err := tc.Read(one[:]); err != nil && !os.IsTimeout(err) {
			_ = tc.Close()
			return nil, err
		}
		_ = tc.SetReadDeadline(time.Time{})
		return tc, nil
	}

	t.Run("[SECURITY] a client without a certificate is refused at the handshake", func(t *testing.T) {
		if c, err := dialTLS(nil); err == nil {
			_ = c.Close()
			t.Fatal("handshake without a client certificate succeeded")
		}
	})

	t.Run("[SECURITY] a self-signed certificate with the device's name is refused", func(t *testing.T) {
		if c, err := dialTLS(&p.attacker); err == nil {
			_ = c.Close()
			t.Fatal("handshake with the attacker's self-signed certificate succeeded")
		}
	})

	t.Run("the certificate's CN is the client id, whatever CONNECT says", func(t *testing.T) {
		tc1, err := dialTLS(&p.device)
		if err != nil {
			t.Fatal(err)
		}
		first := rawOver(t, tc1, packet.V5)
		if ack := first.connect(v5Connect("claims-to-be-someone", true, 0)); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		tc2, err := dialTLS(&p.device)
		if err != nil {
			t.Fatal(err)
		}
		second := rawOver(t, tc2, packet.V5)
		if ack := second.connect(v5Connect("another-name", true, 0)); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
		// Both connections are device-1: the second takes the session over [MQTT-3.1.4-3].
		if d := expect[*packet.Disconnect](first); d.ReasonCode != packet.SessionTakenOver {
			t.Fatalf("first connection got DISCONNECT %v, want 0x8E", d.ReasonCode)
		}
	})

	t.Run("mosquitto clients with the device certificate", func(t *testing.T) {
		sub, pub := lookMosquitto(t)
		_, port, _ := net.SplitHostPort(addr)
		tlsArgs := []string{"-h", "127.0.0.1", "-p", port, "--cafile", p.caFile, "--cert", p.deviceCert, "--key", p.deviceKey}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// The subscriber and the publisher share the certificate, so they would share the
		// client id (the CN) and take each other over: the publisher publishes a retained
		// message first and the subscriber, connecting after it, receives it.
		pubOut, err := exec.CommandContext(ctx, pub, append(tlsArgs, "-t", "tls/hello", "-m", "over-tls", "-q", "1", "-r", "-V", "mqttv311")...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub over mutual TLS: %v\n%s", err, pubOut)
		}
		subOut, err := exec.CommandContext(ctx, sub, append(tlsArgs, "-t", "tls/#", "-C", "1", "-W", "10", "-V", "mqttv5")...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(subOut)) != "over-tls" {
			t.Fatalf("mosquitto_sub over mutual TLS: %v\n%s", err, subOut)
		}
		// Without a client certificate mosquitto_pub cannot connect.
		noCert := []string{"-h", "127.0.0.1", "-p", port, "--cafile", p.caFile, "-t", "tls/x", "-m", "x"}
		if out, err := exec.CommandContext(ctx, pub, noCert...).CombinedOutput(); err == nil {
			t.Fatalf("mosquitto_pub without a client certificate succeeded:\n%s", out)
		}
	})

	t.Run("[SECURITY] TLS 1.1 cannot be negotiated (openssl s_client)", func(t *testing.T) {
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
				t.Fatal("openssl not installed; REQUIRE_TEST_SERVICES is set")
			}
			t.Skip("openssl not installed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
			"-cert", p.deviceCert, "-key", p.deviceKey, "-CAfile", p.caFile)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		if err == nil && !strings.Contains(string(out), "Cipher is (NONE)") {
			t.Fatalf("openssl negotiated TLS 1.1:\n%s", out)
		}
	})
}

// lookMosquitto finds the mosquitto clients or skips (fails with REQUIRE_TEST_SERVICES).
func lookMosquitto(t *testing.T) (sub, pub string) {
	t.Helper()
	sub, err1 := exec.LookPath("mosquitto_sub")
	pub, err2 := exec.LookPath("mosquitto_pub")
	if err1 != nil || err2 != nil {
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatal("mosquitto clients not installed; REQUIRE_TEST_SERVICES is set")
		}
		t.Skip("mosquitto clients not installed (scripts/test-services.sh install)")
	}
	return sub, pub
}

func TestServeTLSReload(t *testing.T) {
	p := newTestPKI(t)
	b := startBroker(t, writeConfig(t, tlsConfig(p, t.TempDir(), false)), "ssl:devices")
	addr := b.addr("ssl:devices")
	clientCfg := &tls.Config{RootCAs: p.pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{p.device}}
	serverSerial := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitPacket}, "tcp", addr, clientCfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serverSerial()

	const n = 100
	clients := make([]*rawClient, 0, n)
	for i := range n {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitPacket}, "tcp", addr, clientCfg)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		c := rawOver(t, tc, packet.V311)
		cp := &packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: fmt.Sprintf("held-%d", i)}
		if ack := c.connect(cp); ack.ReasonCode != packet.Success {
			t.Fatalf("client %d CONNACK %v", i, ack.ReasonCode)
		}
		clients = append(clients, c)
	}
	allAlive := func() {
		t.Helper()
		for i, c := range clients {
			c.send(&packet.Pingreq{})
			if _, ok := c.next(waitPacket); !ok {
				t.Fatalf("client %d lost its connection", i)
			}
		}
	}

	t.Run("replaced files and SIGHUP: new handshakes get the new certificate, nobody is dropped", func(t *testing.T) {
		// Write the renewed pair to temporary names and rename them into place, as a
		// careful operator (or certbot) does.
		renewedCert, renewedKey, renewed := p.issue(t, "renewed", &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, p.ca, p.caKey)
		if err := os.Rename(renewedCert, p.serverCert); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(renewedKey, p.serverKey); err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(renewed.Certificate[0])
		want := leaf.SerialNumber.String()
		b.signal(syscall.SIGHUP)
		deadline := time.Now().Add(waitPacket)
		for serverSerial() != want {
			if time.Now().After(deadline) {
				t.Fatalf("new handshakes still get serial %s after SIGHUP, want %s", first, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		allAlive()
	})

	t.Run("[SECURITY] a corrupt replacement keeps the last good certificate", func(t *testing.T) {
		before := serverSerial()
		if err := os.WriteFile(p.serverCert, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		b.signal(syscall.SIGHUP)
		deadline := time.Now().Add(waitPacket)
		for !strings.Contains(b.stderr.String(), "TLS reload failed") {
			if time.Now().After(deadline) {
				t.Fatal("no reload failure logged")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := serverSerial(); got != before {
			t.Fatalf("after a corrupt replacement new handshakes get %s, want the last good %s", got, before)
		}
		allAlive()
	})
}

// writeCRL writes a CRL of the test CA revoking serials.
func (p *testPKI) writeCRL(t *testing.T, number int64, revoked ...*big.Int) string {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.ca, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	// Write and rename, so the broker never reads half a file.
	tmp := filepath.Join(p.dir, "crl.pem.tmp")
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.dir, "crl.pem")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeTLSRevocation(t *testing.T) {
	p := newTestPKI(t)
	crl := p.writeCRL(t, 1)
	cfg := tlsConfig(p, t.TempDir(), true, "crl_files: ["+strconv.Quote(crl)+"]", "crl_refresh_interval: 1s")
	b := startBroker(t, writeConfig(t, cfg), "ssl:devices")
	addr := b.addr("ssl:devices")
	clientCfg := &tls.Config{RootCAs: p.pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{p.device}}

	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitPacket}, "tcp", addr, clientCfg)
	if err != nil {
		t.Fatalf("handshake before revocation: %v", err)
	}
	c := rawOver(t, tc, packet.V5)
	if ack := c.connect(v5Connect("any", true, 0)); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}

	t.Run("[SECURITY] revoking a connected client's certificate disconnects it with 0x87", func(t *testing.T) {
		leaf, _ := x509.ParseCertificate(p.device.Certificate[0])
		p.writeCRL(t, 2, leaf.SerialNumber)
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

func TestServeProxyProtocol(t *testing.T) {
	// Turn the PROXY protocol on for the tcp listener, trusting 127.0.0.1 only.
	path := writeConfig(t, testConfig(t.TempDir(), "none"))
	env := []string{"RAMPART_LISTENERS__TCP__DEFAULT__PROXY_PROTOCOL=true",
		"RAMPART_LISTENERS__TCP__DEFAULT__PROXY_PROTOCOL_TRUSTED=127.0.0.1"}
	b := startBrokerEnv(t, path, env, "tcp:default")
	addr := b.addr("tcp:default")

	t.Run("a header from the trusted balancer, then MQTT", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", addr, waitPacket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 1883\r\n")); err != nil {
			t.Fatal(err)
		}
		c := rawOver(t, nc, packet.V5)
		if ack := c.connect(v5Connect("behind-lb", true, 0)); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
	})

	t.Run("[SECURITY] MQTT without the header is refused", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", addr, waitPacket)
		if err != nil {
			t.Fatal(err)
		}
		c := rawOver(t, nc, packet.V5)
		c.send(v5Connect("no-header", true, 0))
		if p, ok := c.next(waitPacket); ok {
			t.Fatalf("got %s, want the connection closed", describe(p))
		}
	})
}

func TestServeWSSMutualTLS(t *testing.T) {
	p := newTestPKI(t)
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
  wss:
    browsers:
      bind: 127.0.0.1:0
      peer_cert_as_username: cn
      ssl_options:
        certfile: %s
        keyfile: %s
        cacertfile: %s
        verify: verify_peer
        fail_if_no_peer_cert: true
sys_topics:
  sys_msg_interval: 0
`, strconv.Quote(t.TempDir()), strconv.Quote(p.serverCert), strconv.Quote(p.serverKey), strconv.Quote(p.caFile))
	b := startBroker(t, writeConfig(t, cfg), "wss:browsers")
	url := "wss://" + b.addr("wss:browsers") + "/mqtt"
	connect := func(id string, cert *tls.Certificate) (mqtt.Client, error) {
		tc := &tls.Config{RootCAs: p.pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).SetTLSConfig(tc).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitPacket).SetProtocolVersion(4)
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(waitPacket) {
			return nil, fmt.Errorf("no answer within %v", waitPacket)
		}
		if tok.Error() != nil {
			return nil, tok.Error()
		}
		t.Cleanup(func() { c.Disconnect(250) })
		return c, nil
	}

	t.Run("publish and receive over wss with a client certificate", func(t *testing.T) {
		sub, err := connect("wss-sub", &p.device)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		waitToken(t, sub.Subscribe("wss/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }), "subscribe")
		pub, err := connect("wss-pub", &p.device)
		if err != nil {
			t.Fatal(err)
		}
		waitToken(t, pub.Publish("wss/hello", 1, false, "over wss"), "publish")
		select {
		case m := <-got:
			if m != "over wss" {
				t.Fatalf("got %q", m)
			}
		case <-time.After(waitPacket):
			t.Fatal("no message over wss")
		}
	})

	t.Run("[SECURITY] wss without a client certificate is refused", func(t *testing.T) {
		if _, err := connect("wss-anon", nil); err == nil {
			t.Fatal("connected over wss without a client certificate")
		}
	})

	t.Run("[SECURITY] wss with the attacker's self-signed certificate is refused", func(t *testing.T) {
		if _, err := connect("wss-attacker", &p.attacker); err == nil {
			t.Fatal("connected over wss with a self-signed certificate")
		}
	})
}
