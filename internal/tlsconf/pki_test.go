package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// issued is a certificate with its key and the chain that was used to sign it.
type issued struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate // issuing intermediates, nearest first (root not included)
}

// tlsCert returns the certificate as a client or server would send it: leaf and
// intermediates.
func (c issued) tlsCert() tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
	for _, ic := range c.chain {
		tc.Certificate = append(tc.Certificate, ic.Raw)
	}
	return tc
}

// testPKI is a throw-away PKI: a root, an intermediate, a server certificate for
// localhost/127.0.0.1 and client certificates, all written below a temporary directory.
type testPKI struct {
	t   *testing.T
	dir string

	root, inter issued
	server      issued
	client      issued // good client, via the intermediate
	expired     issued // client, via the intermediate, expired
	attacker    issued // self-signed, with the good client's subject

	rootPool *x509.CertPool

	serverCertFile string // full chain: server, intermediate
	serverKeyFile  string // PKCS#8
	caFile         string // root only
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign creates a certificate from tmpl for key, signed by parent (nil = self-signed).
func sign(t *testing.T, tmpl *x509.Certificate, key crypto.Signer, parent *issued) issued {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = n
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	parentCert, parentKey := tmpl, key
	var chain []*x509.Certificate
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
		if parent.cert.Subject.String() != parent.cert.Issuer.String() { // not the root
			chain = append([]*x509.Certificate{parent.cert}, parent.chain...)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return issued{cert: c, key: key, chain: chain}
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Rampart Test"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func clientTemplate(cn string) *x509.Certificate {
	u, _ := url.Parse("spiffe://example.org/device/" + cn)
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"Rampart Test"}, OrganizationalUnit: []string{"devices"}},
		DNSNames:    []string{cn + ".devices.example"},
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func serverTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{t: t, dir: t.TempDir()}
	p.root = sign(t, caTemplate("Rampart Test Root"), newKey(t), nil)
	p.inter = sign(t, caTemplate("Rampart Test Intermediate"), newKey(t), &p.root)
	p.server = sign(t, serverTemplate(), newKey(t), &p.inter)
	p.client = sign(t, clientTemplate("device-42"), newKey(t), &p.inter)
	exp := clientTemplate("device-old")
	exp.NotBefore, exp.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	p.expired = sign(t, exp, newKey(t), &p.inter)
	p.attacker = sign(t, clientTemplate("device-42"), newKey(t), nil)

	p.rootPool = x509.NewCertPool()
	p.rootPool.AddCert(p.root.cert)

	p.serverCertFile = p.writeCerts("server-fullchain.pem", p.server.cert, p.inter.cert)
	p.serverKeyFile = p.writeKey("server-key.pem", p.server.key, "PKCS8")
	p.caFile = p.writeCerts("ca.pem", p.root.cert)
	return p
}

// chainClient issues a client certificate below n fresh intermediates under the root.
func (p *testPKI) chainClient(n int) issued {
	p.t.Helper()
	parent := p.root
	for i := 1; i <= n; i++ {
		parent = sign(p.t, caTemplate(fmt.Sprintf("Rampart Test Chain %d/%d", i, n)), newKey(p.t), &parent)
	}
	return sign(p.t, clientTemplate(fmt.Sprintf("chain-%d", n)), newKey(p.t), &parent)
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p *testPKI) writeFile(name string, data []byte) string {
	p.t.Helper()
	path := p.path(name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func (p *testPKI) writeCerts(name string, certs ...*x509.Certificate) string {
	p.t.Helper()
	var data []byte
	for _, c := range certs {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return p.writeFile(name, data)
}

// writeKey writes key as PEM; format is "PKCS8", "PKCS1" (RSA) or "EC" (SEC 1).
func (p *testPKI) writeKey(name string, key crypto.Signer, format string) string {
	p.t.Helper()
	var block *pem.Block
	switch format {
	case "PKCS8":
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			p.t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case "PKCS1":
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "EC":
		der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		if err != nil {
			p.t.Fatal(err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	default:
		p.t.Fatalf("unknown key format %q", format)
	}
	return p.writeFile(name, pem.EncodeToMemory(block))
}

// options returns ServerOptions for the PKI's server certificate.
func (p *testPKI) options() ServerOptions {
	return ServerOptions{CertFile: p.serverCertFile, KeyFile: p.serverKeyFile}
}

// peerOptions returns ServerOptions with verify_peer against the PKI's root.
func (p *testPKI) peerOptions(failIfNoCert bool) ServerOptions {
	o := p.options()
	o.CACertFile = p.caFile
	o.Verify = VerifyPeer
	o.FailIfNoPeerCert = failIfNoCert
	return o
}

// clientConfig returns a client configuration that trusts the PKI's root.
func (p *testPKI) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.rootPool, ServerName: "localhost"}
}
