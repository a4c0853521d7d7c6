// Package secret reads the secrets a configuration refers to: "file:/path" (the file's
// content) or "env:NAME" (an environment variable). A secret written in the configuration
// itself is refused, so it never sits in the file, its backups or its diffs. Errors say
// where a secret was looked for, never what was found.
package secret

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxFileSize bounds a secret file.
const MaxFileSize = 64 << 10

// IsRef reports whether ref has the form of a reference (file: or env:), valid or not.
func IsRef(ref string) bool {
	return strings.HasPrefix(ref, "file:") || strings.HasPrefix(ref, "env:")
}

// Check checks the form of a reference without reading anything. "" (no secret) is valid.
// what names the secret in messages ("password", "secret").
func Check(ref, what string) error {
	switch {
	case ref == "":
		return nil
	case strings.HasPrefix(ref, "file:"):
		if strings.TrimSpace(ref[len("file:"):]) == "" {
			return errors.New("file: needs a path, e.g. file:/etc/rampart/secret.pass")
		}
		return nil
	case strings.HasPrefix(ref, "env:"):
		name := ref[len("env:"):]
		if !validEnvName(name) {
			return fmt.Errorf("env: needs a variable name of letters, digits and '_', got %q", name)
		}
		return nil
	}
	return fmt.Errorf("must be file:/path or env:NAME; a %s written in the configuration is refused (inline, it would sit in the file, in backups and in diffs)", what)
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Read returns the secret ref names: an environment variable's value, or a file's content
// without its trailing line break. An empty secret is an error.
func Read(ref string) ([]byte, error) {
	if err := Check(ref, "secret"); err != nil {
		return nil, err
	}
	if ref == "" {
		return nil, errors.New("no secret reference")
	}
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		v, set := os.LookupEnv(name)
		if !set || v == "" {
			return nil, fmt.Errorf("environment variable %s is not set or empty", name)
		}
		return []byte(v), nil
	}
	path := strings.TrimPrefix(ref, "file:")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %q: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("secret file %q is larger than %d bytes", path, MaxFileSize)
	}
	data = []byte(strings.TrimRight(string(data), "\r\n"))
	if len(data) == 0 {
		return nil, fmt.Errorf("secret file %q is empty", path)
	}
	return data, nil
}
