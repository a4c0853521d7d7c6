package tlsconf

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

func TestReloader(t *testing.T) {
	p := newPKI(t)
	r, err := NewReloader(p.options(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, r.Config())
	serverSerial := func() string {
		t.Helper()
		cs, err := dial(s.addr, p.clientConfig())
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		s.next(t)
		return cs.PeerCertificates[0].SerialNumber.String()
	}
	first := serverSerial()

	// A connection established before the reload.
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: p.clientConfig()}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	held, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	t.Run("a replaced certificate is used by new handshakes", func(t *testing.T) {
		renewed := sign(t, serverTemplate(), newKey(t), &p.inter)
		p.writeCerts("server-fullchain.pem", renewed.cert, p.inter.cert)
		p.writeKey("server-key.pem", renewed.key, "PKCS8")
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := serverSerial(); got == first || got != renewed.cert.SerialNumber.String() {
			t.Fatalf("after reload the server presents serial %s, want the renewed %s", got, renewed.cert.SerialNumber)
		}
	})

	t.Run("the connection made before the reload is untouched", func(t *testing.T) {
		_ = held.SetReadDeadline(time.Now().Add(ioTimeout))
		var b [1]byte
		if n, err := held.Read(b[:]); n != 1 || b[0] != 'k' {
			t.Fatalf("held connection: %v", err)
		}
	})

	t.Run("[SECURITY] a corrupt replacement is refused and the previous certificate stays", func(t *testing.T) {
		before := serverSerial()
		p.writeFile("server-fullchain.pem", []byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n"))
		err := r.Reload()
		if err == nil || !strings.Contains(err.Error(), "server-fullchain.pem") {
			t.Fatalf("Reload() = %v, want an error naming the file", err)
		}
		if got := serverSerial(); got != before {
			t.Fatalf("after a failed reload the server presents %s, want %s", got, before)
		}
	})

	t.Run("[SECURITY] a key that does not match the certificate is refused", func(t *testing.T) {
		before := serverSerial()
		other := sign(t, serverTemplate(), newKey(t), &p.inter)
		p.writeCerts("server-fullchain.pem", other.cert, p.inter.cert)
		// the key file still holds the previous key
		if err := r.Reload(); err == nil {
			t.Fatal("a mismatched key pair was accepted")
		}
		if got := serverSerial(); got != before {
			t.Fatalf("after a refused reload the server presents %s, want %s", got, before)
		}
	})

	t.Run("Watch reloads when the files change", func(t *testing.T) {
		renewed := sign(t, serverTemplate(), newKey(t), &p.inter)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.Watch(ctx, 20*time.Millisecond, "test")
		p.writeCerts("server-fullchain.pem", renewed.cert, p.inter.cert)
		p.writeKey("server-key.pem", renewed.key, "PKCS8")
		deadline := time.Now().Add(ioTimeout)
		for serverSerial() != renewed.cert.SerialNumber.String() {
			if time.Now().After(deadline) {
				t.Fatal("the watcher did not pick up the new files")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
