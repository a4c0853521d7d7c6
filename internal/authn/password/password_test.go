package password

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fast returns cheap parameters for an algorithm so tests run quickly; the defaults are
// exercised by TestDefaultArgon2id and the benchmarks.
func fast(a Algorithm) Params {
	switch a {
	case Argon2id:
		return Params{Algorithm: a, MemoryKiB: 64, Time: 1, Threads: 1, AllowWeak: true}
	case Bcrypt:
		return Params{Algorithm: a, Cost: 4, AllowWeak: true}
	case PBKDF2SHA256, PBKDF2SHA512:
		return Params{Algorithm: a, Iterations: 100, AllowWeak: true}
	}
	return Params{Algorithm: a, AllowWeak: true}
}

func mustHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(p, 2)
	if err != nil {
		t.Fatalf("NewHasher(%+v): %v", p, err)
	}
	return h
}

func TestDefaults(t *testing.T) {
	p := DefaultParams()
	want := Params{Algorithm: Argon2id, MemoryKiB: 19456, Time: 2, Threads: 1, SaltLength: 16, KeyLength: 32}
	if p != want {
		t.Fatalf("DefaultParams = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for _, tc := range []struct {
		in   Params
		want Params
	}{
		{Params{Algorithm: Bcrypt}, Params{Algorithm: Bcrypt, Cost: 12}},
		{Params{Algorithm: PBKDF2SHA256}, Params{Algorithm: PBKDF2SHA256, Iterations: 600000, SaltLength: 16, KeyLength: 32}},
		{Params{Algorithm: PBKDF2SHA512}, Params{Algorithm: PBKDF2SHA512, Iterations: 210000, SaltLength: 16, KeyLength: 64}},
		{Params{Algorithm: SHA512}, Params{Algorithm: SHA512, SaltPosition: Prefix, SaltLength: 16}},
	} {
		if got := tc.in.WithDefaults(); got != tc.want {
			t.Errorf("%+v.WithDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		weak bool // refused with ErrWeakParams (and accepted with AllowWeak)
		bad  bool // refused even with AllowWeak
	}{
		{name: "argon2id defaults", p: Params{}},
		{name: "argon2id 8 MiB", p: Params{MemoryKiB: 8192}},
		{name: "argon2id 4 MiB", p: Params{MemoryKiB: 4096}, weak: true},
		{name: "argon2id 2 GiB", p: Params{MemoryKiB: 2 << 20}, bad: true},
		{name: "argon2id 100 passes", p: Params{Time: 100}, bad: true},
		{name: "argon2id 200 threads", p: Params{Threads: 200}, bad: true},
		{name: "argon2id memory below 8 KiB per lane", p: Params{MemoryKiB: 64, Threads: 16, AllowWeak: true}, bad: true},
		{name: "argon2id salt 8", p: Params{SaltLength: 8}, weak: true},
		{name: "argon2id salt 4", p: Params{SaltLength: 4}, bad: true},
		{name: "argon2id key 8", p: Params{KeyLength: 8}, bad: true},
		{name: "argon2id key 128", p: Params{KeyLength: 128}, bad: true},
		{name: "bcrypt default", p: Params{Algorithm: Bcrypt}},
		{name: "bcrypt 10", p: Params{Algorithm: Bcrypt, Cost: 10}},
		{name: "bcrypt 9", p: Params{Algorithm: Bcrypt, Cost: 9}, weak: true},
		{name: "bcrypt 3", p: Params{Algorithm: Bcrypt, Cost: 3}, bad: true},
		{name: "bcrypt 20", p: Params{Algorithm: Bcrypt, Cost: 20}, bad: true},
		{name: "pbkdf2-sha256 default", p: Params{Algorithm: PBKDF2SHA256}},
		{name: "pbkdf2-sha256 10000", p: Params{Algorithm: PBKDF2SHA256, Iterations: 10000}},
		{name: "pbkdf2-sha256 9999", p: Params{Algorithm: PBKDF2SHA256, Iterations: 9999}, weak: true},
		{name: "pbkdf2-sha512 4096", p: Params{Algorithm: PBKDF2SHA512, Iterations: 4096}, weak: true},
		{name: "pbkdf2 negative", p: Params{Algorithm: PBKDF2SHA512, Iterations: -1}, bad: true},
		{name: "pbkdf2 huge", p: Params{Algorithm: PBKDF2SHA512, Iterations: 1 << 30}, bad: true},
		{name: "sha256 new hashes", p: Params{Algorithm: SHA256}, weak: true},
		{name: "sha512 suffix", p: Params{Algorithm: SHA512, SaltPosition: Suffix}, weak: true},
		{name: "sha256 bad position", p: Params{Algorithm: SHA256, SaltPosition: "middle", AllowWeak: true}, bad: true},
		{name: "unknown algorithm", p: Params{Algorithm: "md5", AllowWeak: true}, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			switch {
			case tc.bad:
				if err == nil {
					t.Fatal("accepted")
				}
			case tc.weak:
				if !errors.Is(err, ErrWeakParams) {
					t.Fatalf("err = %v, want ErrWeakParams", err)
				}
				p := tc.p
				p.AllowWeak = true
				if err := p.Validate(); err != nil {
					t.Fatalf("with AllowWeak: %v", err)
				}
			default:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			}
			if _, herr := NewHasher(tc.p, 1); (herr == nil) != (err == nil) {
				t.Fatalf("NewHasher disagrees with Validate: %v vs %v", herr, err)
			}
		})
	}
}

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	prefixes := map[Algorithm]string{
		Argon2id: "$argon2id$v=19$m=64,t=1,p=1$", Bcrypt: "$2b$04$", PBKDF2SHA256: "$pbkdf2-sha256$i=100$",
		PBKDF2SHA512: "$pbkdf2-sha512$i=100$", SHA256: "$sha256$prefix$", SHA512: "$sha512$prefix$",
	}
	for _, alg := range []Algorithm{Argon2id, Bcrypt, PBKDF2SHA256, PBKDF2SHA512, SHA256, SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			h := mustHasher(t, fast(alg))
			pw := []byte("correct horse battery staple")
			enc, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(enc, prefixes[alg]) {
				t.Fatalf("encoded %q lacks prefix %q", enc, prefixes[alg])
			}
			if strings.Contains(enc, string(pw)) {
				t.Fatal("encoded hash contains the password")
			}
			again, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			if again == enc {
				t.Fatal("two hashes of one password are equal: no random salt")
			}
			attempts := []struct {
				pw   string
				want bool
			}{
				{string(pw), true},
				{"correct horse battery stapl", false},   // prefix of the password
				{"correct horse battery staple!", false}, // password plus a byte
				{"Correct horse battery staple", false},  // one bit differs
				{"", false},
				{"\x00", false},
			}
			for _, a := range attempts {
				for _, e := range []string{enc, again} {
					ok, err := h.Verify(ctx, e, []byte(a.pw))
					if err != nil {
						t.Fatalf("Verify(%q): %v", a.pw, err)
					}
					if ok != a.want {
						t.Errorf("Verify(%q) = %v, want %v", a.pw, ok, a.want)
					}
				}
			}
			p, err := ParamsOf(enc)
			if err != nil || p.Algorithm != alg {
				t.Fatalf("ParamsOf = %+v, %v", p, err)
			}
		})
	}
}

func TestDefaultArgon2id(t *testing.T) {
	h := mustHasher(t, Params{})
	enc, err := h.Hash(context.Background(), []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("encoded %q", enc)
	}
	p, err := ParamsOf(enc)
	if err != nil || p.SaltLength != 16 || p.KeyLength != 32 {
		t.Fatalf("ParamsOf = %+v, %v", p, err)
	}
	if ok, err := h.Verify(context.Background(), enc, []byte("s3cret")); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if h.NeedsUpgrade(enc) {
		t.Fatal("fresh default hash needs an upgrade")
	}
}

// Hashes made by other implementations verify: the encodings are the standard ones.
func TestKnownVectors(t *testing.T) {
	h := mustHasher(t, Params{})
	tests := []struct{ name, enc, pw string }{
		// phc-winner-argon2 reference implementation (src/test.c).
		{"argon2id reference", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "password"},
		// OpenWall crypt_blowfish test vector.
		{"bcrypt 2a", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		{"bcrypt 2b", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		{"bcrypt 2y", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		// Python hashlib.pbkdf2_hmac / hashlib.sha*, salt "0123456789abcdef0123456789abcdef" / "salt123".
		{"pbkdf2-sha256", "$pbkdf2-sha256$i=4096$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY$70t3Y8k8DyZi2GsI4mcoE+T2zwGOBmSvI582saK/exM", "public"},
		{"sha256 prefix", "$sha256$prefix$c2FsdDEyMw$a5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4", "public"},
		{"sha256 suffix", "$sha256$suffix$c2FsdDEyMw$888c165e70c92b9ef29a603edf953993dff2c10765fe8f6380c777cd08e1149e", "public"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := h.Verify(context.Background(), tc.enc, []byte(tc.pw))
			if err != nil || !ok {
				t.Fatalf("Verify = %v, %v", ok, err)
			}
			ok, err = h.Verify(context.Background(), tc.enc, []byte(tc.pw+"x"))
			if err != nil || ok {
				t.Fatalf("wrong password: Verify = %v, %v", ok, err)
			}
			if !h.NeedsUpgrade(tc.enc) {
				t.Fatal("foreign hash does not need an upgrade to the default")
			}
		})
	}
}

// Stored hashes that are broken or tampered with are errors, never a match: a truncated
// key would make many passwords match, huge parameters would make one login cost
// gigabytes or minutes.
func TestVerifyMalformed(t *testing.T) {
	h := mustHasher(t, fast(Argon2id))
	good := "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if _, err := h.Verify(context.Background(), good, []byte("x")); err != nil {
		t.Fatalf("control hash refused: %v", err)
	}
	tests := []struct{ name, enc string }{
		{"empty", ""},
		{"plain text", "password"},
		{"unknown algorithm", "$md5$abc$def"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 v=16", "$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 no version", "$argon2id$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 params reordered", "$argon2id$v=19$t=1,m=64,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 4 GiB", "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 1000 passes", "$argon2id$v=19$m=64,t=1000,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 t=0", "$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 leading zero", "$argon2id$v=19$m=064,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 negative", "$argon2id$v=19$m=-64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 truncated key", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFh"},
		{"argon2 empty key", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$"},
		{"argon2 short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 padded base64", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA==$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 bad base64", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$CTFh!dXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"argon2 extra field", good + "$x"},
		{"bcrypt truncated", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe"},
		{"bcrypt cost 31", "$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"},
		{"bcrypt cost 03", "$2b$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"},
		{"bcrypt 2x", "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"},
		{"pbkdf2 zero iterations", "$pbkdf2-sha256$i=0$MDEyMzQ1Njc4OWFiY2RlZg$70t3Y8k8DyZi2GsI4mcoE+T2zwGOBmSvI582saK/exM"},
		{"pbkdf2 huge iterations", "$pbkdf2-sha256$i=99999999999$MDEyMzQ1Njc4OWFiY2RlZg$70t3Y8k8DyZi2GsI4mcoE+T2zwGOBmSvI582saK/exM"},
		{"pbkdf2 missing i=", "$pbkdf2-sha256$4096$MDEyMzQ1Njc4OWFiY2RlZg$70t3Y8k8DyZi2GsI4mcoE+T2zwGOBmSvI582saK/exM"},
		{"pbkdf2 truncated key", "$pbkdf2-sha512$i=4096$MDEyMzQ1Njc4OWFiY2RlZg$70t3"},
		{"sha256 truncated digest", "$sha256$prefix$c2FsdDEyMw$a5a72f1e"},
		{"sha256 sha512-sized digest", "$sha256$prefix$c2FsdDEyMw$" + strings.Repeat("ab", 64)},
		{"sha256 bad position", "$sha256$both$c2FsdDEyMw$a5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4"},
		{"sha256 not hex", "$sha256$prefix$c2FsdDEyMw$z5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4"},
		{"sha256 missing field", "$sha256$prefix$a5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := h.Verify(context.Background(), tc.enc, []byte("password"))
			if ok {
				t.Fatal("malformed hash matched")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "password\"") {
				t.Fatalf("error %q mentions the password", err)
			}
			if !h.NeedsUpgrade(tc.enc) {
				t.Fatal("malformed hash does not need an upgrade")
			}
		})
	}
}

func TestEmptyPasswordRefused(t *testing.T) {
	for _, alg := range []Algorithm{Argon2id, Bcrypt, PBKDF2SHA256} {
		h := mustHasher(t, fast(alg))
		for _, pw := range [][]byte{nil, {}} {
			if _, err := h.Hash(context.Background(), pw); !errors.Is(err, ErrEmptyPassword) {
				t.Errorf("%s: Hash(%q) err = %v, want ErrEmptyPassword", alg, pw, err)
			}
		}
	}
}

// bcrypt reads only 72 bytes: Rampart refuses to create such hashes and never lets a longer
// password match a stored one just because the first 72 bytes agree.
func TestBcryptTruncation(t *testing.T) {
	ctx := context.Background()
	h := mustHasher(t, fast(Bcrypt))
	long := []byte(strings.Repeat("a", 73))
	if _, err := h.Hash(ctx, long); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("Hash(73 bytes) err = %v, want ErrPasswordTooLong", err)
	}
	pw72 := []byte(strings.Repeat("a", 72))
	enc, err := h.Hash(ctx, pw72)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(ctx, enc, pw72); !ok || err != nil {
		t.Fatalf("72 bytes: Verify = %v, %v", ok, err)
	}
	for _, suffix := range []string{"a", "b", "anything at all"} {
		ok, err := h.Verify(ctx, enc, append(append([]byte{}, pw72...), suffix...))
		if ok || err != nil {
			t.Errorf("72 bytes + %q: Verify = %v, %v; want false, nil", suffix, ok, err)
		}
	}
	// Other algorithms see every byte.
	a := mustHasher(t, fast(Argon2id))
	enc, err = a.Hash(ctx, append(append([]byte{}, pw72...), 'x'))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.Verify(ctx, enc, append(append([]byte{}, pw72...), 'y')); ok {
		t.Fatal("argon2id ignored byte 73")
	}
}

func TestNeedsUpgrade(t *testing.T) {
	ctx := context.Background()
	hashWith := func(p Params) string {
		t.Helper()
		enc, err := mustHasher(t, p).Hash(ctx, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	argonFast := fast(Argon2id)
	argonMore := argonFast
	argonMore.Time = 2
	argonMem := argonFast
	argonMem.MemoryKiB = 128
	argonKey := argonFast
	argonKey.KeyLength = 64
	pb := fast(PBKDF2SHA256)
	pbMore := pb
	pbMore.Iterations = 200
	bc5 := fast(Bcrypt)
	bc5.Cost = 5
	suffix := fast(SHA256)
	suffix.SaltPosition = Suffix

	tests := []struct {
		name   string
		config Params
		stored string
		want   bool
	}{
		{"same argon2id", argonFast, hashWith(argonFast), false},
		{"argon2id fewer passes", argonMore, hashWith(argonFast), true},
		{"argon2id less memory", argonMem, hashWith(argonFast), true},
		{"argon2id shorter key", argonKey, hashWith(argonFast), true},
		{"bcrypt to argon2id", argonFast, hashWith(fast(Bcrypt)), true},
		{"bcrypt same cost", fast(Bcrypt), hashWith(fast(Bcrypt)), false},
		{"bcrypt other cost", bc5, hashWith(fast(Bcrypt)), true},
		{"pbkdf2 same", pb, hashWith(pb), false},
		{"pbkdf2 fewer iterations", pbMore, hashWith(pb), true},
		{"pbkdf2 other digest", fast(PBKDF2SHA512), hashWith(pb), true},
		{"sha256 to argon2id", argonFast, hashWith(fast(SHA256)), true},
		{"sha256 same", fast(SHA256), hashWith(fast(SHA256)), false},
		{"sha256 other position", suffix, hashWith(fast(SHA256)), true},
		{"garbage", argonFast, "nonsense", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustHasher(t, tc.config).NeedsUpgrade(tc.stored); got != tc.want {
				t.Fatalf("NeedsUpgrade = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFromEMQX(t *testing.T) {
	h := mustHasher(t, Params{})
	const saltHex = "0123456789abcdef0123456789abcdef" // EMQX salts are 32 hex characters, used as text
	tests := []struct {
		name       string
		p          Params
		hash, salt string
		wantEnc    string // prefix
		wantErr    bool
	}{
		{name: "sha256 prefix", p: Params{Algorithm: SHA256, SaltPosition: Prefix},
			hash: "a5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4", salt: "salt123", wantEnc: "$sha256$prefix$c2FsdDEyMw$"},
		{name: "sha256 default position is prefix", p: Params{Algorithm: SHA256},
			hash: "a5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4", salt: "salt123", wantEnc: "$sha256$prefix$"},
		{name: "sha256 suffix upper-case hex", p: Params{Algorithm: SHA256, SaltPosition: Suffix},
			hash: "888C165E70C92B9EF29A603EDF953993DFF2C10765FE8F6380C777CD08E1149E", salt: "salt123", wantEnc: "$sha256$suffix$"},
		{name: "sha512 prefix", p: Params{Algorithm: SHA512, SaltPosition: Prefix},
			hash: "ab9a75ecca9a487365b7155c758ed65b6d22bd0fda0f5e0408bdcbb298c99d167fe2cd887ec626978331c01d2a9ed3c9024dab91bc9809d22c2fe882517443b4", salt: "salt123", wantEnc: "$sha512$prefix$"},
		{name: "sha512 suffix", p: Params{Algorithm: SHA512, SaltPosition: Suffix},
			hash: "331de73b7584229ebc73d667ae58b069238a42db136b462418f3efc5ff4a6904739377322690f027491b09474a4a87f0261c9ccbef0956b17778a64ba33a4d67", salt: "salt123", wantEnc: "$sha512$suffix$"},
		{name: "pbkdf2-sha256", p: Params{Algorithm: PBKDF2SHA256, Iterations: 4096},
			hash: "ef4b7763c93c0f2662d86b08e2672813e4f6cf018e0664af239f36b1a2bf7b13", salt: saltHex, wantEnc: "$pbkdf2-sha256$i=4096$"},
		{name: "pbkdf2-sha512", p: Params{Algorithm: PBKDF2SHA512, Iterations: 4096},
			hash: "246ab79ff86acf99dbe2048265a8feb90ff30e006fa1d46e8d3392700317f96bdd476198334c333fcd7a7ae98bec1fc5e8a37e35562f683a8ed8f6edcf7ca3e5", salt: saltHex, wantEnc: "$pbkdf2-sha512$i=4096$"},
		{name: "bcrypt keeps its salt inside", p: Params{Algorithm: Bcrypt},
			hash: "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", salt: "ignored", wantEnc: "$2b$05$"},
		{name: "salt with dollar signs survives", p: Params{Algorithm: SHA256},
			hash: strings.Repeat("00", 32), salt: "$a$b$", wantEnc: "$sha256$prefix$JGEkYiQ$"},
		{name: "sha256 digest too short", p: Params{Algorithm: SHA256}, hash: "a5a72f1e", salt: "s", wantErr: true},
		{name: "sha256 not hex", p: Params{Algorithm: SHA256}, hash: strings.Repeat("zz", 32), salt: "s", wantErr: true},
		{name: "sha256 odd hex", p: Params{Algorithm: SHA256}, hash: strings.Repeat("a", 63), salt: "s", wantErr: true},
		{name: "bad position", p: Params{Algorithm: SHA256, SaltPosition: "disable"}, hash: strings.Repeat("00", 32), wantErr: true},
		{name: "pbkdf2 without iterations", p: Params{Algorithm: PBKDF2SHA256}, hash: strings.Repeat("00", 32), salt: saltHex, wantErr: true},
		{name: "pbkdf2 key too short", p: Params{Algorithm: PBKDF2SHA256, Iterations: 4096}, hash: "00ff", salt: saltHex, wantErr: true},
		{name: "bcrypt garbage", p: Params{Algorithm: Bcrypt}, hash: "abc", wantErr: true},
		{name: "argon2id is not an EMQX algorithm", p: Params{Algorithm: Argon2id}, hash: "00", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := FromEMQX(tc.p, tc.hash, tc.salt)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted: %q", enc)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(enc, tc.wantEnc) {
				t.Fatalf("encoded %q, want prefix %q", enc, tc.wantEnc)
			}
			if tc.wantEnc == "$2b$05$" || strings.Contains(tc.name, "dollar") {
				return // no known password
			}
			pw := []byte("public")
			if ok, err := h.Verify(context.Background(), enc, pw); !ok || err != nil {
				t.Fatalf("Verify(right) = %v, %v", ok, err)
			}
			if ok, err := h.Verify(context.Background(), enc, []byte("Public")); ok || err != nil {
				t.Fatalf("Verify(wrong) = %v, %v", ok, err)
			}
		})
	}
	// Salted is the same construction with explicit arguments.
	enc, err := Salted(SHA256, "888c165e70c92b9ef29a603edf953993dff2c10765fe8f6380c777cd08e1149e", "salt123", Suffix)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.Verify(context.Background(), enc, []byte("public")); !ok {
		t.Fatal("Salted suffix hash does not verify")
	}
	// The salt position matters: the same digest read as prefix does not match.
	enc, _ = Salted(SHA256, "888c165e70c92b9ef29a603edf953993dff2c10765fe8f6380c777cd08e1149e", "salt123", Prefix)
	if ok, _ := h.Verify(context.Background(), enc, []byte("public")); ok {
		t.Fatal("suffix digest matched as prefix")
	}
	if _, err := Salted(PBKDF2SHA256, strings.Repeat("00", 32), "", Prefix); err == nil {
		t.Fatal("Salted accepted pbkdf2")
	}
}

// A cancelled context never gets to hash, even when the semaphore has room.
func TestCancelledContext(t *testing.T) {
	h := mustHasher(t, fast(Argon2id))
	enc, err := h.Hash(context.Background(), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		if _, err := h.Hash(ctx, []byte("pw")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Hash err = %v, want context.Canceled", err)
		}
		if ok, err := h.Verify(ctx, enc, []byte("pw")); ok || !errors.Is(err, context.Canceled) {
			t.Fatalf("Verify = %v, %v, want false, context.Canceled", ok, err)
		}
	}
	if len(h.sem) != 0 {
		t.Fatalf("semaphore holds %d slots after cancelled calls", len(h.sem))
	}
}

// When every slot is busy a caller waits, and leaves with its context's error when the
// context ends: the bound holds, and Hashers derived with WithParams share it.
func TestSemaphoreBound(t *testing.T) {
	root := mustHasher(t, fast(Argon2id))
	derived, err := root.WithParams(fast(PBKDF2SHA256))
	if err != nil {
		t.Fatal(err)
	}
	if derived.Params().Algorithm != PBKDF2SHA256 {
		t.Fatalf("derived params %+v", derived.Params())
	}
	if _, err := root.WithParams(Params{Algorithm: Bcrypt, Cost: 4}); !errors.Is(err, ErrWeakParams) {
		t.Fatalf("WithParams(weak) err = %v", err)
	}
	// Occupy every slot, as concurrent logins would.
	for range cap(root.sem) {
		root.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { _, err := derived.Hash(ctx, []byte("pw")); done <- err }()
	go func() {
		_, err := root.Verify(ctx, "$sha256$prefix$$"+strings.Repeat("00", 32), []byte("pw"))
		done <- err
	}()
	cancel()
	for range 2 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("queued call err = %v, want context.Canceled", err)
		}
	}
	for range cap(root.sem) {
		<-root.sem
	}
	if _, err := derived.Hash(context.Background(), []byte("pw")); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestParseAlgorithm(t *testing.T) {
	for _, s := range []string{"argon2id", "bcrypt", "pbkdf2-sha256", "pbkdf2-sha512", "sha256", "sha512"} {
		if a, err := ParseAlgorithm(s); err != nil || string(a) != s {
			t.Errorf("ParseAlgorithm(%q) = %q, %v", s, a, err)
		}
	}
	for _, s := range []string{"", "md5", "plain", "ARGON2ID", "pbkdf2"} {
		if _, err := ParseAlgorithm(s); err == nil {
			t.Errorf("ParseAlgorithm(%q) accepted", s)
		}
	}
}

func TestParseEMQXAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		name, mac string
		want      Algorithm
	}{
		{"pbkdf2", "", PBKDF2SHA256}, {"pbkdf2", "sha256", PBKDF2SHA256}, {"pbkdf2", "sha512", PBKDF2SHA512},
		{"bcrypt", "", Bcrypt}, {"sha256", "", SHA256}, {"argon2id", "", Argon2id},
	} {
		if a, err := ParseEMQXAlgorithm(tc.name, tc.mac); err != nil || a != tc.want {
			t.Errorf("ParseEMQXAlgorithm(%q, %q) = %q, %v", tc.name, tc.mac, a, err)
		}
	}
	for _, bad := range [][2]string{{"pbkdf2", "md5"}, {"md5", ""}, {"plain", ""}} {
		if _, err := ParseEMQXAlgorithm(bad[0], bad[1]); err == nil {
			t.Errorf("ParseEMQXAlgorithm(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
