package listener

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestSSLListener(t *testing.T) {
	cert, pool := selfSigned(t)
	l, err := NewTCP(context.Background(), TCPOptions{Name: "secure", Bind: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, HandshakeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if l.Name() != "ssl:secure" {
		t.Fatalf("Name() = %q, want ssl:secure", l.Name())
	}
	var handled atomic.Int32
	metas := make(chan Meta, 4)
	serveListener(t, l, func(_ context.Context, c net.Conn, m Meta) {
		handled.Add(1)
		metas <- m
		_, _ = c.Write([]byte{'k'})
		_ = c.Close()
	})

	t.Run("the handler gets a completed handshake, no Detach", func(t *testing.T) {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var b [1]byte
		_ = c.SetReadDeadline(time.Now().Add(patience))
		if _, err := c.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		m := <-metas
		if m.TLS == nil || !m.TLS.HandshakeComplete || m.Listener != "ssl:secure" {
			t.Fatalf("meta %+v", m)
		}
		if m.Detach != nil {
			t.Fatal("a TLS connection must not be offered Detach: the TLS layer buffers input")
		}
	})

	t.Run("[SECURITY] a socket that never completes the handshake is closed after the timeout", func(t *testing.T) {
		before := handled.Load()
		c := dialTCP(t, l.Addr())
		_ = c.SetReadDeadline(time.Now().Add(patience))
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil {
			t.Fatal("the server sent data to a client that never said hello")
		}
		waitFor(t, "the listener counts no connection", func() bool { return l.Open() == 0 })
		if handled.Load() != before {
			t.Fatal("the handler saw a connection without a handshake")
		}
	})

	t.Run("[SECURITY] plain MQTT on the TLS port never reaches the handler", func(t *testing.T) {
		before := handled.Load()
		c := dialTCP(t, l.Addr())
		_, _ = c.Write([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0})
		_ = c.SetReadDeadline(time.Now().Add(patience))
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				break // an alert, then the close
			}
		}
		if handled.Load() != before {
			t.Fatal("the handler saw a connection whose handshake failed")
		}
	})
}
