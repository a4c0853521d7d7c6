package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// ClientOptions configure TLS for Rampart's own outbound connections to backends (HTTP
// authentication services, databases, JWKS endpoints).
type ClientOptions struct {
	CACertFile string // PEM bundle that verifies the server; "" = the system roots
	ServerName string // name sent as SNI and verified in the server certificate; "" = the host dialled
	CertFile   string // client certificate (PEM chain) for mutual TLS; with KeyFile
	KeyFile    string
	Verify     string // "verify_peer" (default) or "verify_none"
	// AllowVerifyNone must be set for Verify "verify_none": not checking who the server is
	// hands every credential sent to it to whoever answers, so it is never a default.
	AllowVerifyNone bool
}

// NewClient returns a client configuration: TLS 1.2 or later, the server verified by
// default. Errors name the option or the file.
func NewClient(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	switch o.Verify {
	case "", VerifyPeer:
	case VerifyNone:
		if !o.AllowVerifyNone {
			return nil, errors.New("verify: verify_none turns off server authentication; it needs the explicit allow_verify_none key")
		}
		cfg.InsecureSkipVerify = true
	default:
		return nil, fmt.Errorf("verify: %q: want verify_peer or verify_none", o.Verify)
	}
	if o.CACertFile != "" {
		pool, err := loadCAPool(o.CACertFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("certfile and keyfile: a client certificate needs both")
	}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certfile %q / keyfile %q: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
