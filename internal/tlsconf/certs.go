package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// CertKey is a certificate chain with its private key, as sni_certs lists them.
type CertKey struct {
	CertFile        string // PEM, full chain (leaf first)
	KeyFile         string // PEM private key, possibly encrypted
	KeyFilePassword string // "file:/path" or "env:NAME" when KeyFile is encrypted
}

// servedCert is one certificate the server presents, with what OCSP stapling needs.
type servedCert struct {
	label     string // "certfile" or `sni_certs "NAME"`, for errors and logs
	certFile  string
	cert      *tls.Certificate
	fp        [32]byte          // SHA-256 of the leaf
	issuer    *x509.Certificate // with stapling: the leaf's issuer
	responder string            // with stapling: the OCSP responder URL
}

// certSet is the server certificates of one load: the default and those chosen by the
// server name a client sends (SNI). It is not modified once built.
type certSet struct {
	def   *servedCert
	exact map[string]*servedCert // "broker.example.com"
	wild  map[string]*servedCert // "example.com" for "*.example.com"
	all   []*servedCert          // default first
}

// pick returns the certificate for a server name: an exact name, then a wildcard one
// label deep, then the default. Names compare without case and without a trailing dot.
func (s *certSet) pick(serverName string) *servedCert {
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if name == "" {
		return s.def
	}
	if c := s.exact[name]; c != nil {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c := s.wild[parent]; c != nil {
			return c
		}
	}
	return s.def
}

// checkSNIName checks a sni_certs key: a lower-case DNS name, optionally starting with
// "*." for every name one label below.
func checkSNIName(name string) error {
	host := strings.TrimPrefix(name, "*.")
	if _, err := netip.ParseAddr(host); err == nil {
		return errors.New("is an IP address; clients send only DNS names as SNI")
	}
	if len(host) == 0 || len(host) > 253 {
		return errors.New("want a DNS name such as broker.example.com or *.example.com")
	}
	for _, label := range strings.Split(host, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("want a DNS name such as broker.example.com or *.example.com")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return errors.New("want a lower-case DNS name (a-z, 0-9, '-', '.') such as broker.example.com or *.example.com")
			}
		}
	}
	if strings.HasPrefix(name, "*.") && !strings.Contains(host, ".") {
		return errors.New("a wildcard needs at least two labels after \"*.\"")
	}
	return nil
}

// coversName reports whether the leaf is valid for the sni_certs name.
func coversName(leaf *x509.Certificate, name string) bool {
	if parent, ok := strings.CutPrefix(name, "*."); ok {
		// A certificate for every name under parent must be valid for any one of them.
		return slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, name) }) ||
			leaf.VerifyHostname("rampart-sni-probe."+parent) == nil
	}
	return leaf.VerifyHostname(name) == nil
}

// loadCertSet reads and checks every certificate of the options: each matches its key,
// is within its validity period, is in chain order and fits the TLS 1.2 suites; each SNI
// certificate is valid for its name; with stapling, each has an issuer and a responder.
func loadCertSet(o *ServerOptions, s settings, now time.Time) (*certSet, error) {
	set := &certSet{exact: map[string]*servedCert{}, wild: map[string]*servedCert{}}
	load := func(label string, ck CertKey, defaultCert bool) (*servedCert, error) {
		cert, err := loadKeyPair(ck.CertFile, ck.KeyFile, ck.KeyFilePassword, now)
		if err != nil {
			return nil, err
		}
		if s.minVersion <= tls.VersionTLS12 {
			if err := checkSuitesFitKey(s.ciphers, cert.Leaf, ck.CertFile); err != nil {
				return nil, err
			}
		}
		sc := &servedCert{label: label, certFile: ck.CertFile, cert: &cert, fp: sha256.Sum256(cert.Leaf.Raw)}
		if o.OCSP.Stapling {
			if err := sc.stapleSource(o.OCSP, defaultCert); err != nil {
				return nil, fmt.Errorf("ocsp: %w", err)
			}
		}
		return sc, nil
	}
	def, err := load("certfile", CertKey{o.CertFile, o.KeyFile, o.KeyFilePassword}, true)
	if err != nil {
		return nil, err
	}
	set.def = def
	set.all = append(set.all, def)
	for _, name := range slices.Sorted(maps.Keys(o.SNICerts)) {
		sc, err := load(fmt.Sprintf("sni_certs %q", name), o.SNICerts[name], false)
		if err != nil {
			return nil, fmt.Errorf("sni_certs %q: %w", name, err)
		}
		if !coversName(sc.cert.Leaf, name) {
			return nil, fmt.Errorf("sni_certs %q: the certificate of certfile %q is not valid for %q (its names: %s)",
				name, sc.certFile, name, strings.Join(sc.cert.Leaf.DNSNames, ", "))
		}
		if parent, ok := strings.CutPrefix(name, "*."); ok {
			set.wild[parent] = sc
		} else {
			set.exact[name] = sc
		}
		set.all = append(set.all, sc)
	}
	return set, nil
}

// stapleSource finds the issuer and the OCSP responder URL of the certificate. The
// responder_url and issuer_file options apply to the default certificate; SNI
// certificates use the next certificate of their chain and their own AIA URL.
func (sc *servedCert) stapleSource(o OCSPOptions, defaultCert bool) error {
	leaf := sc.cert.Leaf
	if defaultCert && o.IssuerFile != "" {
		issuer, err := loadIssuer(o.IssuerFile)
		if err != nil {
			return err
		}
		sc.issuer = issuer
	} else if len(sc.cert.Certificate) > 1 {
		issuer, err := x509.ParseCertificate(sc.cert.Certificate[1])
		if err != nil {
			return fmt.Errorf("certfile %q: certificate 2: %w", sc.certFile, err)
		}
		sc.issuer = issuer
	} else {
		return fmt.Errorf("certfile %q holds no issuer certificate after the leaf, which OCSP stapling needs; add the chain or set ocsp.issuer_file", sc.certFile)
	}
	if err := leaf.CheckSignatureFrom(sc.issuer); err != nil {
		return fmt.Errorf("the issuer certificate %q did not sign the certificate of certfile %q: %w", sc.issuer.Subject, sc.certFile, err)
	}
	switch {
	case defaultCert && o.ResponderURL != "":
		sc.responder = o.ResponderURL
	case len(leaf.OCSPServer) > 0:
		for _, u := range leaf.OCSPServer {
			if checkFetchURL(u) == nil {
				sc.responder = u
				break
			}
		}
	}
	if sc.responder == "" {
		return fmt.Errorf("the certificate of certfile %q names no http(s) OCSP responder (authority information access); set ocsp.responder_url", sc.certFile)
	}
	return nil
}

// loadIssuer reads the first certificate of an issuer_file.
func loadIssuer(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("issuer_file %q: %w", file, err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("issuer_file %q: no PEM certificate found", file)
		}
		if block.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("issuer_file %q: %w", file, err)
			}
			return c, nil
		}
	}
}
