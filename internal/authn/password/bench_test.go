package password

import (
	"context"
	"testing"
)

// The benchmarks measure one hash and one verification with the default parameters of each
// algorithm: what a CONNECT costs in CPU (and, for argon2id, memory).
var benchParams = []struct {
	name string
	p    Params
}{
	{"argon2id-m19456-t2-p1", Params{Algorithm: Argon2id}},
	{"bcrypt-12", Params{Algorithm: Bcrypt}},
	{"pbkdf2-sha256-600000", Params{Algorithm: PBKDF2SHA256}},
	{"pbkdf2-sha512-210000", Params{Algorithm: PBKDF2SHA512}},
	{"sha256-salted", Params{Algorithm: SHA256, AllowWeak: true}},
	{"sha512-salted", Params{Algorithm: SHA512, AllowWeak: true}},
}

func BenchmarkHash(b *testing.B) {
	ctx := context.Background()
	pw := []byte("correct horse battery staple")
	for _, bp := range benchParams {
		b.Run(bp.name, func(b *testing.B) {
			h := mustHasher(b, bp.p)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Hash(ctx, pw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	pw := []byte("correct horse battery staple")
	for _, bp := range benchParams {
		b.Run(bp.name, func(b *testing.B) {
			h := mustHasher(b, bp.p)
			enc, err := h.Hash(ctx, pw)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := h.Verify(ctx, enc, pw); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
