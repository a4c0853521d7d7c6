// Package tlsconf builds TLS configuration with hardened defaults for listeners.
//
// A listener's ssl_options (ServerOptions) are checked by Validate without touching the
// file system, and turned into a *tls.Config by NewServer, which also reads and checks the
// certificate, key and CA files.
//
// Defaults:
//
//   - Protocol versions: TLS 1.2 and TLS 1.3 only. TLS 1.1, TLS 1.0 and SSLv3 cannot be
//     enabled.
//   - TLS 1.2 cipher suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only, for
//     both ECDSA and RSA certificates. CBC suites and suites with plain RSA key exchange
//     (no forward secrecy) must be named in ciphers and enabled with
//     allow_insecure_ciphers; RC4, 3DES and NULL suites are refused always.
//   - TLS 1.3 cipher suites are all AEAD (AES-GCM, ChaCha20-Poly1305) and are fixed by Go;
//     they cannot be configured, and naming one in ciphers is an error.
//   - Key exchange groups: X25519MLKEM768 (hybrid post-quantum, TLS 1.3 only), X25519 and
//     P-256.
//   - Client certificates: not requested (verify_none). With verify_peer they are verified
//     against cacertfile, at most depth intermediate CA certificates deep.
//   - Session tickets stay on, with Go's automatic ticket key rotation.
//
// Beyond one certificate: the key file may be encrypted (keyfile.go), further
// certificates are chosen by the server name a client sends (certs.go), an OCSP response
// is stapled to each certificate and client certificates may be checked with OCSP
// (ocsp.go), and client certificates are checked against CRLs from files and from their
// distribution points (crl.go). Everything fetched over the network is bounded in size
// and time and verified against the issuer before it is believed; a client whose
// revocation status cannot be established is refused unless configured otherwise.
//
// PeerIdentity reports what a client certificate says only when the handshake verified
// it; a certificate the server did not verify never yields an identity.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Verify values.
const (
	VerifyNone = "verify_none"
	VerifyPeer = "verify_peer"
)

// DefaultDepth is the maximum number of intermediate CA certificates in a client chain
// when ServerOptions.Depth is 0.
const DefaultDepth = 10

// ServerOptions are a TLS listener's ssl_options, as read from the configuration.
type ServerOptions struct {
	CertFile             string   // PEM, full chain (leaf first)
	KeyFile              string   // PEM private key (PKCS#1, PKCS#8 or EC)
	CACertFile           string   // PEM bundle that verifies client certificates; "" = none
	Versions             []string // "tlsv1.3", "tlsv1.2"; empty = both. "tlsv1.1", "tlsv1", "sslv3" are errors
	Ciphers              []string // TLS 1.2 suites, OpenSSL or IANA names; empty = the default set
	AllowInsecureCiphers bool     // permits CBC / RSA key exchange suites in Ciphers (never RC4, 3DES, NULL)
	Curves               []string // "X25519MLKEM768", "X25519", "P-256", "P-384", "P-521"; empty = X25519MLKEM768, X25519, P-256
	Verify               string   // "verify_none" (default) or "verify_peer"
	FailIfNoPeerCert     bool     // with verify_peer: a client without a certificate is refused
	Depth                int      // maximum number of intermediate CA certificates in a client chain; 0 = default 10
	KeyFilePassword      string   // "file:/path" or "env:NAME" when KeyFile is encrypted; "" = not encrypted

	// SNICerts are further certificates, by the server name (or "*.parent" wildcard) a
	// client asks for; a client asking for another name, or none, gets CertFile.
	SNICerts map[string]CertKey
	OCSP     OCSPOptions
}

// settings is the result of validating ServerOptions, before any file is read.
type settings struct {
	minVersion, maxVersion uint16
	ciphers                []uint16
	curves                 []tls.CurveID
	verifyPeer             bool
	depth                  int
}

// Validate checks the options without reading files; each error names the option
// (e.g. `versions: "tlsv1.1" is not allowed; use tlsv1.2 or tlsv1.3`).
func (o *ServerOptions) Validate() error {
	_, err := o.settings()
	return err
}

func (o *ServerOptions) settings() (settings, error) {
	var s settings
	var errs []error
	if strings.TrimSpace(o.CertFile) == "" {
		errs = append(errs, errors.New("certfile: is required"))
	}
	if strings.TrimSpace(o.KeyFile) == "" {
		errs = append(errs, errors.New("keyfile: is required"))
	}
	if err := checkPasswordRef(o.KeyFilePassword); err != nil {
		errs = append(errs, fmt.Errorf("keyfile_password: %w", err))
	}
	for _, name := range slices.Sorted(maps.Keys(o.SNICerts)) {
		ck := o.SNICerts[name]
		if err := checkSNIName(name); err != nil {
			errs = append(errs, fmt.Errorf("sni_certs: %q %w", name, err))
		}
		if strings.TrimSpace(ck.CertFile) == "" {
			errs = append(errs, fmt.Errorf("sni_certs.%s.certfile: is required", name))
		}
		if strings.TrimSpace(ck.KeyFile) == "" {
			errs = append(errs, fmt.Errorf("sni_certs.%s.keyfile: is required", name))
		}
		if err := checkPasswordRef(ck.KeyFilePassword); err != nil {
			errs = append(errs, fmt.Errorf("sni_certs.%s.keyfile_password: %w", name, err))
		}
	}
	var err error
	if s.minVersion, s.maxVersion, err = parseVersions(o.Versions); err != nil {
		errs = append(errs, err)
	}
	if s.ciphers, err = parseCiphers(o.Ciphers, o.AllowInsecureCiphers); err != nil {
		errs = append(errs, err)
	}
	if s.curves, err = parseCurves(o.Curves); err != nil {
		errs = append(errs, err)
	} else if s.minVersion == tls.VersionTLS12 && !hasClassicCurve(s.curves) {
		errs = append(errs, errors.New("curves: TLS 1.2 is enabled but only hybrid post-quantum groups (TLS 1.3 only) are listed; add X25519, P-256, P-384 or P-521, or set versions to tlsv1.3 only"))
	}
	switch o.Verify {
	case "", VerifyNone:
		if o.FailIfNoPeerCert {
			errs = append(errs, errors.New("fail_if_no_peer_cert: requires verify: verify_peer (with verify_none no client certificate is requested)"))
		}
	case VerifyPeer:
		s.verifyPeer = true
		if strings.TrimSpace(o.CACertFile) == "" {
			errs = append(errs, errors.New("cacertfile: is required with verify: verify_peer"))
		}
	default:
		errs = append(errs, fmt.Errorf("verify: %q is not valid; use verify_none or verify_peer", o.Verify))
	}
	errs = append(errs, o.OCSP.check(s.verifyPeer)...)
	switch {
	case o.Depth < 0:
		errs = append(errs, fmt.Errorf("depth: %d is negative; use 0 for the default (%d) or a positive number", o.Depth, DefaultDepth))
	case o.Depth == 0:
		s.depth = DefaultDepth
	default:
		s.depth = o.Depth
	}
	if err := errors.Join(errs...); err != nil {
		return settings{}, err
	}
	return s, nil
}

// NewServer reads the files and returns a *tls.Config for a listener. Errors name the file.
// It serves no OCSP staple: staples are fetched by a Reloader's Watch.
func NewServer(o ServerOptions) (*tls.Config, error) {
	cfg, _, err := build(o, newOnline(o, nil))
	return cfg, err
}

// online is the state that outlives one reading of the files: the OCSP staples, the
// client OCSP cache and the revocation lists in use.
type online struct {
	staples    *stapler    // nil without OCSP stapling
	clientOCSP *clientOCSP // nil without OCSP checks of client certificates
	rev        atomic.Pointer[Revocation]
}

func newOnline(o ServerOptions, log *slog.Logger) *online {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	on := &online{}
	if !o.OCSP.Stapling && !o.OCSP.VerifyClient {
		return on
	}
	client := newHTTPClient()
	if o.OCSP.Stapling {
		on.staples = &stapler{client: client, timeout: o.OCSP.httpTimeout(), interval: o.OCSP.refreshInterval()}
	}
	if o.OCSP.VerifyClient {
		on.clientOCSP = newClientOCSP(o.OCSP, client, log)
	}
	return on
}

// getCertificate picks the certificate for the client's server name and adds its
// staple when a valid one is at hand.
func (on *online) getCertificate(set *certSet) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		sc := set.pick(hello.ServerName)
		if on.staples == nil {
			return sc.cert, nil
		}
		st := on.staples.forCert(sc.fp, time.Now())
		if st == nil {
			return sc.cert, nil
		}
		c := *sc.cert
		c.OCSPStaple = st
		return &c, nil
	}
}

// verifier checks a verified client chain: its depth, then the revocation lists, then
// OCSP (the network last).
func (on *online) verifier(depth int) func(tls.ConnectionState) error {
	checkDepth := depthVerifier(depth)
	return func(cs tls.ConnectionState) error {
		if err := checkDepth(cs); err != nil {
			return err
		}
		if rev := on.rev.Load(); rev != nil {
			if err := rev.Check(cs); err != nil {
				return err
			}
		}
		if on.clientOCSP != nil {
			return on.clientOCSP.check(cs)
		}
		return nil
	}
}

// build reads the files and returns the listener configuration and its certificates.
func build(o ServerOptions, on *online) (*tls.Config, *certSet, error) {
	s, err := o.settings()
	if err != nil {
		return nil, nil, fmt.Errorf("ssl_options: %w", err)
	}
	set, err := loadCertSet(&o, s, time.Now())
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion:       s.minVersion,
		MaxVersion:       s.maxVersion,
		CipherSuites:     s.ciphers,
		CurvePreferences: s.curves,
		ClientAuth:       tls.NoClientCert,
		// Session tickets are left enabled and no keys are set with SetSessionTicketKeys,
		// so Go rotates the ticket keys automatically (a new key every 24 hours, each key
		// valid for 7 days). Resumed sessions carry the verified client chain and are
		// checked by VerifyConnection again.
		SessionTicketsDisabled: false,
	}
	if len(set.all) > 1 || on.staples != nil {
		// Only: with Certificates set, Go would not ask GetCertificate about a client
		// that sends no server name.
		cfg.GetCertificate = on.getCertificate(set)
	} else {
		cfg.Certificates = []tls.Certificate{*set.def.cert}
	}
	if s.verifyPeer {
		pool, err := loadCAPool(o.CACertFile)
		if err != nil {
			return nil, nil, err
		}
		cfg.ClientCAs = pool
		if o.FailIfNoPeerCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
		cfg.VerifyConnection = on.verifier(s.depth)
	}
	return cfg, set, nil
}

// depthVerifier refuses a client whose verified chains are all longer than the leaf,
// depth intermediates and the root. Connections without a client certificate pass: the
// ClientAuth mode decides about those.
func depthVerifier(depth int) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 {
			return nil
		}
		longest := 0
		for _, chain := range cs.VerifiedChains {
			if n := len(chain) - 2; n <= depth {
				return nil
			} else if n > longest {
				longest = n
			}
		}
		return fmt.Errorf("tlsconf: client certificate chain has %d intermediate CA certificates; depth allows at most %d", longest, depth)
	}
}

// loadKeyPair reads the certificate chain and key (decrypting the key with the password
// passwordRef names), checks that they match, that the leaf is within its validity period
// at now, and that the chain is in order (leaf first).
func loadKeyPair(certFile, keyFile, passwordRef string, now time.Time) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certfile %q: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("keyfile %q: %w", keyFile, err)
	}
	keyPEM, err = decryptKeyPEM(keyFile, keyPEM, passwordRef)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certfile %q, keyfile %q: %w", certFile, keyFile, err)
	}
	chain := make([]*x509.Certificate, len(cert.Certificate))
	for i, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("certfile %q: certificate %d: %w", certFile, i+1, err)
		}
		chain[i] = c
	}
	leaf := chain[0]
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("certfile %q: certificate %q expired at %s", certFile, leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("certfile %q: certificate %q is not valid before %s", certFile, leaf.Subject.String(), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return tls.Certificate{}, fmt.Errorf("certfile %q: certificate %d (%s) is not signed by certificate %d (%s); the file must hold the full chain, leaf first: %w",
				certFile, i+1, chain[i].Subject.String(), i+2, chain[i+1].Subject.String(), err)
		}
	}
	cert.Leaf = leaf
	return cert, nil
}

// loadCAPool reads a PEM bundle of CA certificates. Every block must be a CA certificate:
// a non-CA certificate in the bundle would be trusted as a root.
func loadCAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cacertfile %q: %w", file, err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cacertfile %q: certificate %d: %w", file, n, err)
		}
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("cacertfile %q: certificate %d (%s) is not a CA certificate", file, n, c.Subject.String())
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, fmt.Errorf("cacertfile %q: no PEM certificates found", file)
	}
	return pool, nil
}

// checkSuitesFitKey makes sure a TLS 1.2 handshake is possible with the certificate's key
// type: an ECDSA or Ed25519 key needs an ECDHE-ECDSA suite, an RSA key an RSA suite.
func checkSuitesFitKey(suites []uint16, leaf *x509.Certificate, certFile string) error {
	var want string
	switch leaf.PublicKey.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		want = "ECDSA"
	case *rsa.PublicKey:
		want = "RSA"
	default:
		return nil
	}
	for _, id := range suites {
		if suiteAuth(id) == want {
			return nil
		}
	}
	return fmt.Errorf("ciphers: none of the TLS 1.2 suites can be used with the %s key of certfile %q; add an %s suite or set versions to tlsv1.3 only", want, certFile, want)
}

// Identity is what a verified client certificate says, for clientinfo and rules.
type Identity struct {
	CN       string
	DN       string // RFC 4514 string of the subject
	DNSNames []string
	URIs     []string
	SHA256   string // hex of SHA-256 over the leaf's DER
	Issuer   string // RFC 4514 string of the issuer
	Serial   string // serial number, decimal
}

// PeerIdentity returns the identity of the verified client certificate of a completed
// handshake, and false when the client presented none (or it was not verified).
func PeerIdentity(cs tls.ConnectionState) (Identity, bool) {
	if !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	leaf := cs.VerifiedChains[0][0]
	if leaf == nil {
		return Identity{}, false
	}
	sum := sha256.Sum256(leaf.Raw)
	id := Identity{
		CN:     leaf.Subject.CommonName,
		DN:     leaf.Subject.String(),
		SHA256: hex.EncodeToString(sum[:]),
		Issuer: leaf.Issuer.String(),
		Serial: leaf.SerialNumber.String(),
	}
	if len(leaf.DNSNames) > 0 {
		id.DNSNames = append([]string(nil), leaf.DNSNames...)
	}
	for _, u := range leaf.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	return id, true
}
