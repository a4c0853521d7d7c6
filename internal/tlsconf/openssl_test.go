package tlsconf

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cipherLine matches s_client's summary of a negotiated session, e.g.
// "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"; "Cipher is (NONE)" means none.
var cipherLine = regexp.MustCompile(`Cipher is ([A-Z0-9_-]+)`)

// TestOpenSSLClient runs `openssl s_client` against a default listener: a client limited
// to TLS 1.0 or 1.1, or to a CBC suite with RSA key exchange, is refused by the server.
// The TLS 1.2 and 1.3 cases are positive controls showing the harness can succeed.
func TestOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatal("openssl not found on PATH and REQUIRE_TEST_SERVICES is set")
		}
		t.Skip("openssl not found on PATH; skipping s_client tests")
	}
	p := newPKI(t)
	s := startServer(t, mustNewServer(t, p.options()))
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"tls1_2 accepted", []string{"-tls1_2"}, true},
		{"tls1_3 accepted", []string{"-tls1_3"}, true},
		// SECLEVEL=0 lets OpenSSL 3 offer TLS 1.0/1.1 at all, so the refusal is the server's.
		{"tls1_1 refused", []string{"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"}, false},
		{"tls1 refused", []string{"-tls1", "-cipher", "DEFAULT@SECLEVEL=0"}, false},
		{"tls1_2 with AES128-SHA refused", []string{"-tls1_2", "-cipher", "AES128-SHA"}, false},
		{"tls1_2 with ECDHE CBC suites refused", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"s_client", "-connect", s.addr, "-servername", "localhost", "-CAfile", p.caFile}, tt.args...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stdin = strings.NewReader("") // EOF: s_client quits after the handshake
			cmd.WaitDelay = 5 * time.Second
			out, runErr := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("openssl s_client timed out:\n%s", out)
			}
			m := cipherLine.FindSubmatch(out)
			negotiated := runErr == nil && m != nil && string(m[1]) != "NONE"
			sr := s.next(t)
			if negotiated != tt.ok {
				t.Errorf("openssl %s: negotiated = %v (exit: %v), want %v\n%s", strings.Join(tt.args, " "), negotiated, runErr, tt.ok, out)
			}
			if (sr.err == nil) != tt.ok {
				t.Errorf("server handshake error = %v, want ok = %v", sr.err, tt.ok)
			}
		})
	}
}
