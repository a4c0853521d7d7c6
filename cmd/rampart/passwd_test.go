package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/scram"
)

func runPasswd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"passwd"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestPasswdCommand(t *testing.T) {
	verifier, err := password.NewHasher(password.Params{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		stdin  string
		args   []string
		prefix string
		pw     string // the password the output must verify
	}{
		{"default argon2id", "s3cret\n", nil, "$argon2id$v=19$m=19456,t=2,p=1$", "s3cret"},
		{"argon2id params", "s3cret\n", []string{"--argon2-memory", "8192", "--argon2-time", "1", "--argon2-threads", "2"}, "$argon2id$v=19$m=8192,t=1,p=2$", "s3cret"},
		{"bcrypt", "s3cret\n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "10"}, "$2b$10$", "s3cret"},
		{"pbkdf2-sha256", "s3cret\n", []string{"--algorithm", "pbkdf2-sha256", "--pbkdf2-iterations", "10000"}, "$pbkdf2-sha256$i=10000$", "s3cret"},
		{"pbkdf2-sha512", "s3cret\n", []string{"--algorithm", "pbkdf2-sha512", "--pbkdf2-iterations", "10000"}, "$pbkdf2-sha512$i=10000$", "s3cret"},
		{"weak with allow-weak", "s3cret\n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "4", "--allow-weak"}, "$2b$04$", "s3cret"},
		{"CRLF line ending", "s3cret\r\n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "10"}, "$2b$10$", "s3cret"},
		{"no final newline", "s3cret", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "10"}, "$2b$10$", "s3cret"},
		{"only the first line", "first line\nsecond line\n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "10"}, "$2b$10$", "first line"},
		{"spaces are part of the password", "  pw  \n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "10"}, "$2b$10$", "  pw  "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPasswd(t, tc.stdin, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			enc := strings.TrimSuffix(out, "\n")
			if !strings.HasPrefix(enc, tc.prefix) || strings.Contains(enc, "\n") {
				t.Fatalf("output %q, want one line starting %q", out, tc.prefix)
			}
			if strings.Contains(out, strings.TrimSpace(tc.pw)) {
				t.Fatal("output contains the password")
			}
			ok, err := verifier.Verify(context.Background(), enc, []byte(tc.pw))
			if err != nil || !ok {
				t.Fatalf("output does not verify %q: %v %v", tc.pw, ok, err)
			}
			if ok, _ := verifier.Verify(context.Background(), enc, []byte(tc.pw+"x")); ok {
				t.Fatal("output verifies a wrong password")
			}
		})
	}
}

func TestPasswdSCRAM(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want scram.Hash
	}{{"sha256", scram.SHA256}, {"sha512", scram.SHA512}} {
		out, err := runPasswd(t, "s3cret\n", "--scram", tc.flag)
		if err != nil {
			t.Fatal(err)
		}
		h, c, err := scram.ParseCredentials(strings.TrimSuffix(out, "\n"))
		if err != nil || h != tc.want || c.Iterations != 4096 {
			t.Fatalf("--scram %s: %q: %s %+v %v", tc.flag, out, h, c, err)
		}
		if strings.Contains(out, "s3cret") {
			t.Fatal("output contains the password")
		}
	}
	out, err := runPasswd(t, "s3cret\n", "--scram", "sha256", "--scram-iterations", "10000")
	if err != nil || !strings.HasPrefix(out, "SCRAM-SHA-256$10000:") {
		t.Fatalf("%q %v", out, err)
	}
}

func TestPasswdRefuses(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"empty input", "", nil},
		{"empty line", "\n", nil},
		{"empty line CRLF", "\r\n", nil},
		{"too long", strings.Repeat("a", 70000) + "\n", nil},
		{"unknown algorithm", "pw\n", []string{"--algorithm", "md5"}},
		{"salted sha256", "pw\n", []string{"--algorithm", "sha256"}},
		{"weak bcrypt", "pw\n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "8"}},
		{"weak argon2id", "pw\n", []string{"--argon2-memory", "1024"}},
		{"weak pbkdf2", "pw\n", []string{"--algorithm", "pbkdf2-sha256", "--pbkdf2-iterations", "1000"}},
		{"argon2 threads overflow", "pw\n", []string{"--argon2-threads", "300"}},
		{"bcrypt over 72 bytes", strings.Repeat("a", 73) + "\n", []string{"--algorithm", "bcrypt", "--bcrypt-cost", "10"}},
		{"unknown scram hash", "pw\n", []string{"--scram", "sha1"}},
		{"scram few iterations", "pw\n", []string{"--scram", "sha256", "--scram-iterations", "100"}},
		{"scram and algorithm", "pw\n", []string{"--scram", "sha256", "--algorithm", "bcrypt"}},
		{"arguments", "pw\n", []string{"pw"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPasswd(t, tc.stdin, tc.args...)
			if err == nil {
				t.Fatalf("accepted, printed %q", out)
			}
			if out != "" {
				t.Fatalf("printed %q on error", out)
			}
		})
	}
}
