package tlsconf

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// lookOpenSSL finds openssl, or skips (fails with REQUIRE_TEST_SERVICES).
func lookOpenSSL(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatal("openssl not found on PATH and REQUIRE_TEST_SERVICES is set")
		}
		t.Skip("openssl not found on PATH (scripts/test-services.sh install)")
	}
	return bin
}

// openssl runs the openssl command with args and fails the test on error.
func openssl(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// serves checks that a server built from o completes a handshake and presents want.
func serves(t *testing.T, o ServerOptions, want *x509.Certificate, p *testPKI) {
	t.Helper()
	cs, sr, err := handshake(t, mustNewServer(t, o), p.clientConfig())
	expectAccepted(t, err, sr)
	if err == nil && cs.PeerCertificates[0].SerialNumber.Cmp(want.SerialNumber) != 0 {
		t.Fatalf("server presented serial %s, want %s", cs.PeerCertificates[0].SerialNumber, want.SerialNumber)
	}
}

func TestEncryptedKeyFiles(t *testing.T) {
	bin := lookOpenSSL(t)
	p := newPKI(t)
	pwFile := p.writeFile("key.pass", []byte("correct horse battery staple\n"))
	wrongFile := p.writeFile("wrong.pass", []byte("Correct horse battery staple\n"))
	plainEC := p.writeKey("plain-ec.pem", p.server.key, "PKCS8")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaServer := sign(t, serverTemplate(), rsaKey, &p.inter)
	rsaCertFile := p.writeCerts("rsa-chain.pem", rsaServer.cert, p.inter.cert)
	plainRSA := p.writeKey("plain-rsa.pem", rsaKey, "PKCS1")

	pass := "file:" + pwFile
	encrypted := []struct {
		name     string
		certFile string
		cert     *x509.Certificate
		args     func(out string) []string
	}{
		{"genpkey -aes256 (PBES2, hmacWithSHA256, AES-256-CBC)", p.serverCertFile, p.server.cert, func(out string) []string {
			return []string{"pkcs8", "-topk8", "-in", plainEC, "-v2", "aes-256-cbc", "-passout", pass, "-out", out}
		}},
		{"pkcs8 -v2 aes-128-cbc -v2prf hmacWithSHA512", p.serverCertFile, p.server.cert, func(out string) []string {
			return []string{"pkcs8", "-topk8", "-in", plainEC, "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512", "-passout", pass, "-out", out}
		}},
		{"pkcs8 -v2 aes-192-cbc -v2prf hmacWithSHA1", p.serverCertFile, p.server.cert, func(out string) []string {
			return []string{"pkcs8", "-topk8", "-in", plainEC, "-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA1", "-passout", pass, "-out", out}
		}},
		{"pkcs8 -v2 aes-256-cbc -v2prf hmacWithSHA384 -iter 10000", p.serverCertFile, p.server.cert, func(out string) []string {
			return []string{"pkcs8", "-topk8", "-in", plainEC, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA384", "-iter", "10000", "-passout", pass, "-out", out}
		}},
		{"RSA pkcs8 -v2 aes-256-cbc -v2prf hmacWithSHA224", rsaCertFile, rsaServer.cert, func(out string) []string {
			return []string{"pkcs8", "-topk8", "-in", plainRSA, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA224", "-passout", pass, "-out", out}
		}},
		{"rsa -aes256 -traditional (legacy PEM)", rsaCertFile, rsaServer.cert, func(out string) []string {
			return []string{"rsa", "-aes256", "-traditional", "-in", plainRSA, "-passout", pass, "-out", out}
		}},
		{"ec -aes128 (legacy PEM)", p.serverCertFile, p.server.cert, func(out string) []string {
			return []string{"ec", "-aes128", "-in", plainEC, "-passout", pass, "-out", out}
		}},
		{"rsa -des3 -traditional (legacy PEM)", rsaCertFile, rsaServer.cert, func(out string) []string {
			return []string{"rsa", "-des3", "-traditional", "-in", plainRSA, "-passout", pass, "-out", out}
		}},
	}
	for i, tc := range encrypted {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := p.path("enc-" + strings.Repeat("k", i+1) + ".pem")
			openssl(t, bin, tc.args(keyFile)...)
			pemText, _ := os.ReadFile(keyFile)
			if !strings.Contains(string(pemText), "ENCRYPTED") {
				t.Fatalf("openssl wrote no encrypted key:\n%s", pemText)
			}
			o := ServerOptions{CertFile: tc.certFile, KeyFile: keyFile, KeyFilePassword: pass}
			serves(t, o, tc.cert, p)

			t.Setenv("TEST_RAMPART_KEY_PASSWORD", "correct horse battery staple")
			o.KeyFilePassword = "env:TEST_RAMPART_KEY_PASSWORD"
			serves(t, o, tc.cert, p)

			for _, bad := range []struct{ name, ref, want string }{
				{"[SECURITY] a wrong password is refused", "file:" + wrongFile, "wrong keyfile_password"},
				{"[SECURITY] no password for an encrypted key", "", "the private key is encrypted; set keyfile_password"},
				{"an unset variable", "env:TEST_RAMPART_NO_SUCH_VARIABLE", "TEST_RAMPART_NO_SUCH_VARIABLE is not set"},
				{"a missing password file", "file:" + p.path("nope.pass"), "nope.pass"},
			} {
				o.KeyFilePassword = bad.ref
				_, err := NewServer(o)
				if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), keyFile) {
					t.Errorf("%s: NewServer = %v, want an error naming %s and saying %q", bad.name, err, keyFile, bad.want)
				}
				if err != nil && strings.Contains(err.Error(), "orrect horse") {
					t.Errorf("%s: the error reveals the password: %v", bad.name, err)
				}
			}
		})
	}

	t.Run("PBES1 (pkcs8 -v1) is refused with advice", func(t *testing.T) {
		keyFile := p.path("v1.pem")
		openssl(t, bin, "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", plainEC, "-passout", pass, "-out", keyFile)
		_, err := NewServer(ServerOptions{CertFile: p.serverCertFile, KeyFile: keyFile, KeyFilePassword: pass})
		if err == nil || !strings.Contains(err.Error(), "only PBES2") || !strings.Contains(err.Error(), keyFile) {
			t.Fatalf("NewServer = %v, want a PBES2-only error naming the file", err)
		}
	})

	t.Run("[SECURITY] a password for an unencrypted key is a contradiction", func(t *testing.T) {
		_, err := NewServer(ServerOptions{CertFile: p.serverCertFile, KeyFile: plainEC, KeyFilePassword: pass})
		if err == nil || !strings.Contains(err.Error(), "not encrypted") {
			t.Fatalf("NewServer = %v, want an error", err)
		}
	})

	t.Run("[SECURITY] single DES legacy keys are refused", func(t *testing.T) {
		block := &pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "DES-CBC,0102030405060708"},
			Bytes: make([]byte, 64)}
		keyFile := p.writeFile("des.pem", pem.EncodeToMemory(block))
		_, err := NewServer(ServerOptions{CertFile: rsaCertFile, KeyFile: keyFile, KeyFilePassword: pass})
		if err == nil || !strings.Contains(err.Error(), `DEK-Info "DES-CBC"`) {
			t.Fatalf("NewServer = %v, want DES refused", err)
		}
	})

	t.Run("[SECURITY] tampered ciphertext never yields a key", func(t *testing.T) {
		keyFile := p.path("tamper.pem")
		openssl(t, bin, "pkcs8", "-topk8", "-in", plainEC, "-v2", "aes-256-cbc", "-passout", pass, "-out", keyFile)
		data, _ := os.ReadFile(keyFile)
		block, _ := pem.Decode(data)
		for _, tc := range []struct {
			name string
			mod  func(der []byte) []byte
			want string
		}{
			{"last block flipped (padding)", func(der []byte) []byte { der[len(der)-1] ^= 0x5a; return der }, "wrong keyfile_password"},
			// CBC has no integrity: a garbled block makes the key unparsable or, should it
			// still parse, not match the certificate. Either way: an error naming the file.
			{"block holding the private scalar flipped", func(der []byte) []byte {
				var info encryptedPrivateKeyInfo
				if err := unmarshalAll(der, &info); err != nil {
					t.Fatal(err)
				}
				info.EncryptedData[16] ^= 0x01
				out, err := asn1.Marshal(info)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}, "tampered.pem"},
			{"truncated", func(der []byte) []byte { return der[:len(der)-5] }, "tampered.pem"},
		} {
			der := tc.mod(append([]byte(nil), block.Bytes...))
			f := p.writeFile("tampered.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
			_, err := NewServer(ServerOptions{CertFile: p.serverCertFile, KeyFile: f, KeyFilePassword: pass})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: NewServer = %v, want %q", tc.name, err, tc.want)
			}
		}
	})
}

// pbes2Key builds an EncryptedPrivateKeyInfo with the given PBKDF2 iteration count, PRF
// and cipher OIDs and ciphertext, for malformed-input tests.
func pbes2Key(t *testing.T, iter int, prf, enc asn1.ObjectIdentifier, iv, ciphertext []byte) []byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kdf := must(asn1.Marshal(pbkdf2Params{Salt: []byte("saltsalt"), IterationCount: iter, PRF: pkix.AlgorithmIdentifier{Algorithm: prf, Parameters: asn1.NullRawValue}}))
	ivDER := must(asn1.Marshal(iv))
	params := must(asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: enc, Parameters: asn1.RawValue{FullBytes: ivDER}},
	}))
	return must(asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: ciphertext,
	}))
}

func TestDecryptPKCS8Malformed(t *testing.T) {
	sha256PRF := asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	md5PRF := asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	aes256 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	desCBC := asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
	iv := make([]byte, 16)
	ct := make([]byte, 48)
	for _, tc := range []struct {
		name string
		der  []byte
		want string
	}{
		{"[SECURITY] two billion PBKDF2 rounds are refused before any work", pbes2Key(t, 1<<31-1, sha256PRF, aes256, iv, ct), "iteration count"},
		{"zero rounds", pbes2Key(t, 0, sha256PRF, aes256, iv, ct), "iteration count"},
		{"HMAC-MD5 PRF", pbes2Key(t, 2048, md5PRF, aes256, iv, ct), "PRF"},
		{"DES-CBC cipher", pbes2Key(t, 2048, sha256PRF, desCBC, iv, ct), "cipher"},
		{"short IV", pbes2Key(t, 2048, sha256PRF, aes256, iv[:8], ct), "16-byte IV"},
		{"ciphertext not whole blocks", pbes2Key(t, 2048, sha256PRF, aes256, iv, ct[:47]), "whole number of AES blocks"},
		{"no ciphertext", pbes2Key(t, 2048, sha256PRF, aes256, iv, nil), "whole number of AES blocks"},
		{"random ciphertext", pbes2Key(t, 2048, sha256PRF, aes256, iv, ct), "wrong keyfile_password"},
		{"trailing bytes", append(pbes2Key(t, 2048, sha256PRF, aes256, iv, ct), 0), "trailing data"},
		{"not DER", []byte("garbage"), "encrypted PKCS#8 key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decryptPKCS8(tc.der, "pw")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decryptPKCS8 = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPKCS7Padding(t *testing.T) {
	block := func(tail ...byte) []byte { return append(make([]byte, 16-len(tail)), tail...) }
	for _, tc := range []struct {
		name string
		data []byte
		n    int
		ok   bool
	}{
		{"one byte", block(1), 1, true},
		{"full block", append(make([]byte, 16), block(16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16)...), 16, true},
		{"three bytes", block(3, 3, 3), 3, true},
		{"zero", block(0), 0, false},
		{"larger than a block", block(17), 0, false},
		{"inconsistent bytes", block(7, 3, 3), 0, false},
		{"one wrong byte inside", block(4, 4, 5, 4), 0, false},
		{"not whole blocks", []byte{1}, 0, false},
		{"empty", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := pkcs7PaddingLen(tc.data, 16)
			if n != tc.n || ok != tc.ok {
				t.Fatalf("pkcs7PaddingLen = %d, %v; want %d, %v", n, ok, tc.n, tc.ok)
			}
		})
	}
}

func TestPasswordRefValidation(t *testing.T) {
	for _, tc := range []struct {
		ref  string
		want string // "" = valid
	}{
		{"", ""},
		{"file:/etc/rampart/key.pass", ""},
		{"env:BROKER_KEY_PASSWORD", ""},
		{"env:RAMPART_KEY_PASSWORD", "RAMPART_ variables are configuration overrides"},
		{"[SECURITY] hunter2", "a password written in the configuration is refused"},
		{"file:", "needs a path"},
		{"env:", "needs a variable name"},
		{"env:1BAD", "needs a variable name"},
		{"env:WITH SPACE", "needs a variable name"},
	} {
		ref := strings.TrimPrefix(tc.ref, "[SECURITY] ")
		o := ServerOptions{CertFile: "c.pem", KeyFile: "k.pem", KeyFilePassword: ref}
		err := o.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", ref, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "keyfile_password: ") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: Validate = %v, want %q", ref, err, tc.want)
		}
		if err != nil && ref != "" && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the validation error repeats the inline password: %v", err)
		}
	}
}

func TestReloadEncryptedKey(t *testing.T) {
	bin := lookOpenSSL(t)
	p := newPKI(t)
	pwFile := p.writeFile("key.pass", []byte("first password\n"))
	keyFile := p.path("server-key.enc.pem")
	encrypt := func(key *issued, password string) {
		t.Helper()
		plain := p.writeKey("plain.pem", key.key, "PKCS8")
		tmpPass := p.writeFile("tmp.pass", []byte(password+"\n"))
		openssl(t, bin, "pkcs8", "-topk8", "-in", plain, "-v2", "aes-256-cbc", "-passout", "file:"+tmpPass, "-out", keyFile)
		_ = os.Remove(plain)
	}
	encrypt(&p.server, "first password")
	o := ServerOptions{CertFile: p.serverCertFile, KeyFile: keyFile, KeyFilePassword: "file:" + pwFile}
	r, err := NewReloader(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, r.Config())
	serial := func() string {
		t.Helper()
		cs, err := dial(s.addr, p.clientConfig())
		s.next(t)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return cs.PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != p.server.cert.SerialNumber.String() {
		t.Fatalf("serial %s", got)
	}

	t.Run("a renewed key under a new password: the password file is read again", func(t *testing.T) {
		renewed := sign(t, serverTemplate(), newKey(t), &p.inter)
		p.writeCerts("server-fullchain.pem", renewed.cert, p.inter.cert)
		encrypt(&renewed, "second password")
		p.writeFile("key.pass", []byte("second password\n"))
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := serial(); got != renewed.cert.SerialNumber.String() {
			t.Fatalf("after reload serial %s, want %s", got, renewed.cert.SerialNumber)
		}
	})

	t.Run("[SECURITY] a password file that no longer fits is refused; the last good key stays", func(t *testing.T) {
		before := serial()
		p.writeFile("key.pass", []byte("not the password\n"))
		err := r.Reload()
		if err == nil || !strings.Contains(err.Error(), "wrong keyfile_password") || !strings.Contains(err.Error(), keyFile) {
			t.Fatalf("Reload = %v, want a wrong-password error naming the key file", err)
		}
		if got := serial(); got != before {
			t.Fatalf("after a refused reload serial %s, want %s", got, before)
		}
	})

	t.Run("the password file is watched", func(t *testing.T) {
		before := r.fileStamp()
		p.writeFile("key.pass", []byte("second password, changed\n")) // another size: the stamp changes whatever the clock

		if r.fileStamp() == before {
			t.Fatal("changing the password file does not change the files' stamp, so Watch would not reload")
		}
	})
}
