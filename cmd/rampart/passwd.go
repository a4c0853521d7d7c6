package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/scram"
)

// maxPasswdInput bounds the password line read from stdin: an MQTT password is at most
// 65535 bytes.
const maxPasswdInput = 65535

func newPasswdCommand() *cobra.Command {
	var (
		algorithm     string
		p             password.Params
		scramHash     string
		scramIters    int
		argon2Threads uint
	)
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Hash a password read from stdin for the built-in user database",
		Long: "Read one password line from stdin and print its encoded hash, as stored by the\n" +
			"built-in database (password_hash), or with --scram its SCRAM credentials\n" +
			"(SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>).\n\n" +
			"  printf '%s\\n' \"$PASSWORD\" | rampart passwd --algorithm bcrypt",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPasswordLine(cmd.InOrStdin())
			if err != nil {
				return err
			}
			defer clear(pw)
			var out string
			if cmd.Flags().Changed("scram") {
				if cmd.Flags().Changed("algorithm") {
					return errors.New("--scram and --algorithm exclude each other")
				}
				h, err := scram.ParseHash(scramHash)
				if err != nil {
					return err
				}
				c, err := scram.Derive(cmd.Context(), h, pw, scramIters)
				if err != nil {
					return err
				}
				out = c.Encode(h)
			} else {
				a, err := password.ParseAlgorithm(algorithm)
				if err != nil {
					return err
				}
				if a == password.SHA256 || a == password.SHA512 {
					return fmt.Errorf("--algorithm %s: salted SHA-2 exists only to import EMQX users; use argon2id, bcrypt or pbkdf2", a)
				}
				if argon2Threads > 255 {
					return fmt.Errorf("--argon2-threads %d: at most 255", argon2Threads)
				}
				p.Algorithm, p.Threads = a, uint8(argon2Threads)
				h, err := password.NewHasher(p, 1)
				if err != nil {
					return err
				}
				if out, err = h.Hash(cmd.Context(), pw); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&algorithm, "algorithm", string(password.Argon2id), "argon2id, bcrypt, pbkdf2-sha256 or pbkdf2-sha512")
	f.Uint32Var(&p.MemoryKiB, "argon2-memory", 0, "argon2id memory in KiB (default 19456)")
	f.Uint32Var(&p.Time, "argon2-time", 0, "argon2id passes (default 2)")
	f.UintVar(&argon2Threads, "argon2-threads", 0, "argon2id lanes (default 1)")
	f.IntVar(&p.Cost, "bcrypt-cost", 0, "bcrypt cost (default 12)")
	f.IntVar(&p.Iterations, "pbkdf2-iterations", 0, "PBKDF2 iterations (default 600000 with sha256, 210000 with sha512)")
	f.BoolVar(&p.AllowWeak, "allow-weak", false, "accept parameters below the safe minimum")
	f.StringVar(&scramHash, "scram", "", "print SCRAM credentials for sha256 or sha512 instead of a password hash")
	f.IntVar(&scramIters, "scram-iterations", scram.DefaultIterations, "SCRAM PBKDF2 iterations")
	return cmd
}

// readPasswordLine reads the first line of r without its line ending, and refuses an
// empty or over-long one. Input without a final newline is one line.
func readPasswordLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxPasswdInput+2), 4096)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil || errors.Is(err, io.EOF) {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			clear(line)
			return nil, fmt.Errorf("read password: %w", err)
		}
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	switch {
	case len(line) == 0:
		return nil, errors.New("empty password: give one line on stdin")
	case len(line) > maxPasswdInput:
		clear(line)
		return nil, fmt.Errorf("password longer than %d bytes", maxPasswdInput)
	}
	return line, nil
}
