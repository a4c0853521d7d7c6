package tlsconf

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// suiteClass says how a TLS 1.2 cipher suite may be used.
type suiteClass int

const (
	// classSecure: ECDHE key exchange with an AEAD; in the default set.
	classSecure suiteClass = iota
	// classInsecure: CBC mode or plain RSA key exchange; only with allow_insecure_ciphers.
	classInsecure
	// classBroken: RC4 or 3DES; never allowed.
	classBroken
)

// suite describes one TLS 1.2 cipher suite Go implements.
type suite struct {
	id      uint16
	iana    string
	openssl string
	class   suiteClass
	auth    string // certificate key type the suite needs: "ECDSA" or "RSA"
}

// suites lists every TLS 1.2 cipher suite Go implements. The first six, in this order,
// are the default set. Read-only.
var suites = []suite{
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", classSecure, "ECDSA"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", classSecure, "RSA"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", classSecure, "ECDSA"},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384", classSecure, "RSA"},
	{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", classSecure, "ECDSA"},
	{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", classSecure, "RSA"},

	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA", classInsecure, "ECDSA"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA", classInsecure, "ECDSA"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA", classInsecure, "RSA"},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA", classInsecure, "RSA"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256", classInsecure, "ECDSA"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256", classInsecure, "RSA"},
	{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256", classInsecure, "RSA"},
	{tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384", classInsecure, "RSA"},
	{tls.TLS_RSA_WITH_AES_128_CBC_SHA, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", classInsecure, "RSA"},
	{tls.TLS_RSA_WITH_AES_256_CBC_SHA, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", classInsecure, "RSA"},
	{tls.TLS_RSA_WITH_AES_128_CBC_SHA256, "TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256", classInsecure, "RSA"},

	{tls.TLS_RSA_WITH_RC4_128_SHA, "TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA", classBroken, "RSA"},
	{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "ECDHE-ECDSA-RC4-SHA", classBroken, "ECDSA"},
	{tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ECDHE-RSA-RC4-SHA", classBroken, "RSA"},
	{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", classBroken, "RSA"},
	{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA", classBroken, "RSA"},
}

// tls13Suites are the TLS 1.3 suite names (IANA and OpenSSL use the same ones). Read-only.
var tls13Suites = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"}

// brokenMarkers identify suites (implemented by Go or not) that use a broken cipher, no
// encryption, no authentication or export-grade keys. Read-only.
var brokenMarkers = []string{"RC4", "3DES", "DES-CBC", "DES_CBC", "_DES_", "NULL", "EXPORT", "EXP-", "EXP1024", "ANON", "ADH-", "AECDH-", "MD5", "IDEA", "SEED", "RC2"}

// DefaultCipherSuites returns the TLS 1.2 cipher suites used when ciphers is empty:
// ECDHE with AES-GCM or ChaCha20-Poly1305, for ECDSA and RSA certificates.
func DefaultCipherSuites() []uint16 {
	var ids []uint16
	for _, s := range suites {
		if s.class == classSecure {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// lookupSuite finds a TLS 1.2 suite by its IANA or OpenSSL name, ignoring case.
func lookupSuite(name string) (suite, bool) {
	for _, s := range suites {
		if strings.EqualFold(name, s.iana) || strings.EqualFold(name, s.openssl) {
			return s, true
		}
	}
	return suite{}, false
}

// suiteAuth returns the certificate key type a known suite needs.
func suiteAuth(id uint16) string {
	for _, s := range suites {
		if s.id == id {
			return s.auth
		}
	}
	return ""
}

func parseCiphers(names []string, allowInsecure bool) ([]uint16, error) {
	if len(names) == 0 {
		return DefaultCipherSuites(), nil
	}
	ids := make([]uint16, 0, len(names))
	seen := make(map[uint16]string, len(names))
	for _, raw := range names {
		name := strings.TrimSpace(raw)
		upper := strings.ToUpper(name)
		if name == "" {
			return nil, fmt.Errorf("ciphers: empty name")
		}
		for _, n := range tls13Suites {
			if upper == n {
				return nil, fmt.Errorf("ciphers: %q is a TLS 1.3 suite; TLS 1.3 suites are all AEAD and fixed by Go, list only TLS 1.2 suites", raw)
			}
		}
		s, ok := lookupSuite(name)
		if (ok && s.class == classBroken) || (!ok && containsAny(upper, brokenMarkers)) {
			return nil, fmt.Errorf("ciphers: %q is never allowed (RC4, 3DES, DES, NULL, export and anonymous suites are broken)", raw)
		}
		if !ok {
			return nil, fmt.Errorf("ciphers: %q is not a known TLS 1.2 cipher suite; use an OpenSSL name (e.g. ECDHE-ECDSA-AES128-GCM-SHA256) or an IANA name (e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)", raw)
		}
		if s.class == classInsecure && !allowInsecure {
			return nil, fmt.Errorf("ciphers: %q (%s) uses CBC mode or RSA key exchange without forward secrecy; it requires allow_insecure_ciphers: true", raw, s.openssl)
		}
		if prev, dup := seen[s.id]; dup {
			return nil, fmt.Errorf("ciphers: %q is listed twice (also as %q)", raw, prev)
		}
		seen[s.id] = raw
		ids = append(ids, s.id)
	}
	return ids, nil
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// versions maps the accepted version names to protocol versions. Read-only.
var versions = map[string]uint16{
	"tlsv1.2": tls.VersionTLS12,
	"tlsv1.3": tls.VersionTLS13,
}

// refusedVersions are names of protocol versions that are recognised but never allowed.
// Read-only.
var refusedVersions = map[string]bool{
	"tlsv1.1": true, "tlsv1": true, "tlsv1.0": true, "sslv3": true, "sslv2": true,
}

func parseVersions(names []string) (minV, maxV uint16, err error) {
	if len(names) == 0 {
		return tls.VersionTLS12, tls.VersionTLS13, nil
	}
	seen := make(map[uint16]bool, len(names))
	for _, raw := range names {
		name := strings.ToLower(strings.TrimSpace(raw))
		v, ok := versions[name]
		switch {
		case refusedVersions[name]:
			return 0, 0, fmt.Errorf("versions: %q is not allowed; use tlsv1.2 or tlsv1.3", raw)
		case !ok:
			return 0, 0, fmt.Errorf("versions: %q is not a known version; use tlsv1.2 or tlsv1.3", raw)
		case seen[v]:
			return 0, 0, fmt.Errorf("versions: %q is listed twice", raw)
		}
		seen[v] = true
		if minV == 0 || v < minV {
			minV = v
		}
		if v > maxV {
			maxV = v
		}
	}
	return minV, maxV, nil
}

// curves maps accepted group names (compared ignoring case) to curve IDs. Read-only.
var curves = map[string]tls.CurveID{
	"x25519mlkem768":     tls.X25519MLKEM768,
	"secp256r1mlkem768":  tls.SecP256r1MLKEM768,
	"secp384r1mlkem1024": tls.SecP384r1MLKEM1024,
	"x25519":             tls.X25519,
	"p-256":              tls.CurveP256,
	"p-384":              tls.CurveP384,
	"p-521":              tls.CurveP521,
	"prime256v1":         tls.CurveP256,
	"secp256r1":          tls.CurveP256,
	"secp384r1":          tls.CurveP384,
	"secp521r1":          tls.CurveP521,
}

// DefaultCurves returns the key exchange groups used when curves is empty.
func DefaultCurves() []tls.CurveID {
	return []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}
}

func parseCurves(names []string) ([]tls.CurveID, error) {
	if len(names) == 0 {
		return DefaultCurves(), nil
	}
	ids := make([]tls.CurveID, 0, len(names))
	seen := make(map[tls.CurveID]bool, len(names))
	for _, raw := range names {
		id, ok := curves[strings.ToLower(strings.TrimSpace(raw))]
		if !ok {
			return nil, fmt.Errorf("curves: %q is not a supported group; use X25519MLKEM768, X25519, P-256, P-384 or P-521", raw)
		}
		if seen[id] {
			return nil, fmt.Errorf("curves: %q is listed twice", raw)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// hasClassicCurve reports whether ids has a group usable with TLS 1.2 (not a hybrid
// post-quantum one).
func hasClassicCurve(ids []tls.CurveID) bool {
	for _, id := range ids {
		switch id {
		case tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521:
			return true
		}
	}
	return false
}
