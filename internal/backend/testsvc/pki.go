package testsvc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority for TLS-enabled test services: a CA, a
// server certificate it signed for 127.0.0.1, ::1 and localhost, a client certificate it
// signed, and a second CA that signed nothing here (the "wrong CA" a client must refuse).
// Every file is PEM, world-readable (keys too: they protect nothing outside the test) in a
// directory that is removed when the test ends, so a server running as another user
// (PostgreSQL as postgres, slapd as openldap) can read them or copy them.
type PKI struct {
	Dir         string
	CAFile      string // the CA that signed ServerCert and ClientCert
	ServerCert  string // CN "localhost"; SANs 127.0.0.1, ::1, localhost
	ServerKey   string // PKCS#8, unencrypted
	ClientCert  string // CN "rampart-test-client", client auth usage
	ClientKey   string
	WrongCAFile string // a different CA with the same subject name as CAFile
}

// NewPKI writes a fresh PKI into a new temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir, err := os.MkdirTemp("", "rampart-pki-")
	if err != nil {
		t.Fatalf("pki: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pki: %v", err)
	}
	p := &PKI{Dir: dir}
	write := func(name, typ string, der []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatalf("pki: %v", err)
		}
		return path
	}
	newKey := func() (*ecdsa.PrivateKey, []byte) {
		t.Helper()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("pki: %v", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatalf("pki: %v", err)
		}
		return k, der
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub, priv any) (*x509.Certificate, []byte) {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatalf("pki: %v", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("pki: %v", err)
		}
		return c, der
	}
	newCA := func() (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k, _ := newKey()
		c, der := sign(&x509.Certificate{
			Subject:               pkix.Name{CommonName: "Rampart Test CA"},
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}, nil, &k.PublicKey, k)
		return c, k, der
	}

	ca, caKey, caDER := newCA()
	p.CAFile = write("ca.pem", "CERTIFICATE", caDER)
	_, _, wrongDER := newCA()
	p.WrongCAFile = write("wrong-ca.pem", "CERTIFICATE", wrongDER)

	sk, skDER := newKey()
	_, sDER := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &sk.PublicKey, caKey)
	p.ServerCert = write("server.pem", "CERTIFICATE", sDER)
	p.ServerKey = write("server-key.pem", "PRIVATE KEY", skDER)

	ck, ckDER := newKey()
	_, cDER := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "rampart-test-client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, &ck.PublicKey, caKey)
	p.ClientCert = write("client.pem", "CERTIFICATE", cDER)
	p.ClientKey = write("client-key.pem", "PRIVATE KEY", ckDER)
	return p
}
