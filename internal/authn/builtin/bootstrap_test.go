package builtin_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/builtin"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// EMQX-style exported users for the password "public": digests computed with Python's
// hashlib, salt as EMQX stores it (text).
const (
	sha256Prefix = "a5a72f1edf5dcc152e04572ae63b199a01961fa97c1059ccd3238290425e56e4" // sha256("salt123" + "public")
	sha256Suffix = "888c165e70c92b9ef29a603edf953993dff2c10765fe8f6380c777cd08e1149e" // sha256("public" + "salt123")
	sha512Prefix = "ab9a75ecca9a487365b7155c758ed65b6d22bd0fda0f5e0408bdcbb298c99d167fe2cd887ec626978331c01d2a9ed3c9024dab91bc9809d22c2fe882517443b4"
	pbkdf2SHA256 = "ef4b7763c93c0f2662d86b08e2672813e4f6cf018e0664af239f36b1a2bf7b13" // 4096 iterations, salt below
	pbkdf2Salt   = "0123456789abcdef0123456789abcdef"
	bcryptUStarU = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW" // password "U*U"
)

func TestBootstrap(t *testing.T) {
	tests := []struct {
		name    string
		file    string // name: its extension selects the format
		content string
		cfg     builtin.Config
		logins  map[string]string // user -> password that must work
		supers  []string
	}{
		{
			name: "csv plain", file: "users.csv",
			content: "user_id,password,is_superuser\nalice,alice-pw,false\nroot,root-pw,true\n\"comma,user\",\"pw,with,commas\",\n",
			logins:  map[string]string{"alice": "alice-pw", "root": "root-pw", "comma,user": "pw,with,commas"},
			supers:  []string{"root"},
		},
		{
			name: "csv plain with BOM and CRLF", file: "users.csv",
			content: "\ufeffuser_id,password,is_superuser\r\nalice,alice-pw,FALSE\r\nroot,root-pw,1\r\n",
			logins:  map[string]string{"alice": "alice-pw", "root": "root-pw"},
			supers:  []string{"root"},
		},
		{
			name: "json plain", file: "users.json",
			content: `[
  {"user_id": "alice", "password": "alice-pw", "is_superuser": false},
  {"user_id": "root", "password": "root-pw", "is_superuser": true},
  {"user_id": "nosuper", "password": "x-pw"}
]`,
			logins: map[string]string{"alice": "alice-pw", "root": "root-pw", "nosuper": "x-pw"},
			supers: []string{"root"},
		},
		{
			name: "csv hash sha256 prefix", file: "users.csv",
			content: "user_id,password_hash,salt,is_superuser\nemqx-user," + sha256Prefix + ",salt123,true\n",
			cfg: builtin.Config{BootstrapType: builtin.BootstrapHash,
				BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA256, SaltPosition: password.Prefix}},
			logins: map[string]string{"emqx-user": "public"},
			supers: []string{"emqx-user"},
		},
		{
			name: "csv hash sha256 suffix", file: "users.csv",
			content: "user_id,password_hash,salt,is_superuser\nemqx-user," + sha256Suffix + ",salt123,false\n",
			cfg: builtin.Config{BootstrapType: builtin.BootstrapHash,
				BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA256, SaltPosition: password.Suffix}},
			logins: map[string]string{"emqx-user": "public"},
		},
		{
			name: "json hash sha512 prefix", file: "users.json",
			content: `[{"user_id": "u512", "password_hash": "` + sha512Prefix + `", "salt": "salt123", "is_superuser": false}]`,
			cfg: builtin.Config{BootstrapType: builtin.BootstrapHash,
				BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA512}},
			logins: map[string]string{"u512": "public"},
		},
		{
			name: "csv hash pbkdf2", file: "users.csv",
			content: "user_id,password_hash,salt,is_superuser\np," + pbkdf2SHA256 + "," + pbkdf2Salt + ",false\n",
			cfg: builtin.Config{BootstrapType: builtin.BootstrapHash,
				BootstrapHashAlgorithm: password.Params{Algorithm: password.PBKDF2SHA256, Iterations: 4096}},
			logins: map[string]string{"p": "public"},
		},
		{
			name: "json hash bcrypt", file: "users.json",
			content: `[{"user_id": "b", "password_hash": "` + bcryptUStarU + `", "salt": "", "is_superuser": true}]`,
			cfg: builtin.Config{BootstrapType: builtin.BootstrapHash,
				BootstrapHashAlgorithm: password.Params{Algorithm: password.Bcrypt}},
			logins: map[string]string{"b": "U*U"},
			supers: []string{"b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := tc.cfg
			cfg.BootstrapFile = e.file(tc.file, tc.content)
			a := e.auth(cfg)
			if a.Len() != len(tc.logins) {
				t.Fatalf("%d users loaded, want %d", a.Len(), len(tc.logins))
			}
			for user, pw := range tc.logins {
				super := false
				for _, s := range tc.supers {
					super = super || s == user
				}
				check(t, login(a, user, "", []byte(pw)), authn.Allow, super)
				check(t, login(a, user, "", []byte(pw+"!")), authn.Deny, false)
			}
			if err := a.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			var pws []string
			for _, pw := range tc.logins {
				pws = append(pws, pw)
			}
			e.noSecrets(pws...)
		})
	}
}

// Users that exist are left alone: the bootstrap file never resets a password changed
// since, and loading it again changes nothing.
func TestBootstrapKeepsExistingUsers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.auth(builtin.Config{})
	if err := a.AddUser(ctx, builtin.UserSpec{ID: "alice", Password: []byte("changed-pw")}); err != nil {
		t.Fatal(err)
	}
	file := e.file("users.csv", "user_id,password,is_superuser\nalice,file-pw,true\nbob,bob-pw,false\n")
	b := e.auth(builtin.Config{BootstrapFile: file})
	check(t, login(b, "alice", "", []byte("changed-pw")), authn.Allow, false)
	check(t, login(b, "alice", "", []byte("file-pw")), authn.Deny, false)
	check(t, login(b, "bob", "", []byte("bob-pw")), authn.Allow, false)

	before, err := e.db.Users().Get(ctx, controldb.Username, "bob")
	if err != nil {
		t.Fatal(err)
	}
	e.reopen()
	c := e.auth(builtin.Config{BootstrapFile: file})
	after, err := e.db.Users().Get(ctx, controldb.Username, "bob")
	if err != nil || after.PasswordHash != before.PasswordHash {
		t.Fatalf("second bootstrap rewrote bob: %v", err)
	}
	if n, _ := e.db.Users().Count(ctx, controldb.Username); n != 2 || c.Len() != 2 {
		t.Fatalf("%d users stored, %d in memory", n, c.Len())
	}
}

func TestBootstrapMalformed(t *testing.T) {
	hashCfg := builtin.Config{BootstrapType: builtin.BootstrapHash,
		BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA256}}
	tests := []struct {
		name    string
		file    string
		content string
		cfg     builtin.Config
		want    string // in the error
	}{
		{"csv hash header for plain", "u.csv", "user_id,password_hash,salt,is_superuser\na,00,s,false\n", builtin.Config{}, "line 1"},
		{"csv plain header for hash", "u.csv", "user_id,password,is_superuser\na,pw,false\n", hashCfg, "line 1"},
		{"csv missing header", "u.csv", "alice,pw,true\n", builtin.Config{}, "line 1"},
		{"csv empty file", "u.csv", "", builtin.Config{}, "line 1"},
		{"csv too few fields", "u.csv", "user_id,password,is_superuser\na,pw,false\nb,pw\n", builtin.Config{}, "line 3"},
		{"csv too many fields", "u.csv", "user_id,password,is_superuser\na,pw,false,extra\n", builtin.Config{}, "line 2"},
		{"csv bad quote", "u.csv", "user_id,password,is_superuser\na,pw,false\nb,\"pw,false\n", builtin.Config{}, "line 3"},
		{"csv empty user id", "u.csv", "user_id,password,is_superuser\n,pw,false\n", builtin.Config{}, "line 2: empty user_id"},
		{"csv empty password", "u.csv", "user_id,password,is_superuser\na,pw,false\nb,,false\n", builtin.Config{}, "line 3"},
		{"csv bad superuser", "u.csv", "user_id,password,is_superuser\na,pw,false\nb,pw,false\nc,pw,yes\n", builtin.Config{}, "line 4"},
		{"csv duplicate user", "u.csv", "user_id,password,is_superuser\na,pw,false\nb,pw,false\na,pw2,true\n", builtin.Config{}, "line 4: user \"a\" already on line 2"},
		{"csv hash not hex", "u.csv", "user_id,password_hash,salt,is_superuser\na," + sha256Prefix + ",s,false\nb,zz,s,false\n", hashCfg, "line 3"},
		{"csv hash truncated digest", "u.csv", "user_id,password_hash,salt,is_superuser\na,a5a72f1e,s,false\n", hashCfg, "line 2"},
		{"csv hash empty hash", "u.csv", "user_id,password_hash,salt,is_superuser\na,,s,false\n", hashCfg, "line 2"},
		{"json syntax", "u.json", "[\n {\"user_id\": \"a\", \"password\": \"pw\"},\n {\"user_id\": \"b\" \"password\": \"pw\"}\n]", builtin.Config{}, "line 3"},
		{"json unknown field", "u.json", "[\n {\"user_id\": \"a\", \"password\": \"pw\"},\n\n {\"user_id\": \"b\", \"passwd\": \"pw\"}\n]", builtin.Config{}, "line 4"},
		{"json missing password", "u.json", "[\n {\"user_id\": \"a\"}\n]", builtin.Config{}, "line 2"},
		{"json wrong type", "u.json", "[\n {\"user_id\": \"a\", \"password\": \"pw\",\n  \"is_superuser\": \"yes\"}\n]", builtin.Config{}, "line 3"},
		{"json not an array", "u.json", "{\"user_id\": \"a\", \"password\": \"pw\"}", builtin.Config{}, "line 1"},
		{"json truncated", "u.json", "[\n {\"user_id\": \"a\", \"password\": \"pw\"},\n", builtin.Config{}, "line 3"},
		{"json trailing data", "u.json", "[\n {\"user_id\": \"a\", \"password\": \"pw\"}\n]\n[]", builtin.Config{}, "line 4"},
		{"json duplicate user", "u.json", "[\n {\"user_id\": \"a\", \"password\": \"pw\"},\n {\"user_id\": \"a\", \"password\": \"pw\"}\n]", builtin.Config{}, "line 3"},
		{"json hash missing hash", "u.json", "[\n {\"user_id\": \"a\", \"salt\": \"s\"}\n]", hashCfg, "line 2"},
		{"unknown extension", "u.txt", "user_id,password,is_superuser\na,pw,false\n", builtin.Config{}, ".csv or .json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := tc.cfg
			cfg.BootstrapFile = e.file(tc.file, tc.content)
			_, err := e.new(cfg)
			if err == nil {
				t.Fatal("malformed bootstrap file accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("error %q does not name the file and %q", err, tc.want)
			}
			// Nothing from a bad file is written, not even the good lines before the bad one.
			if n, _ := e.db.Users().Count(context.Background(), controldb.Username); n != 0 {
				t.Fatalf("%d users written from a bad file", n)
			}
		})
	}
	e := newEnv(t)
	if _, err := e.new(builtin.Config{BootstrapFile: filepath.Join(e.dir, "missing.csv")}); err == nil {
		t.Fatal("missing bootstrap file accepted")
	}
}

// A successful login with an outdated hash (here salted SHA-256 from EMQX) re-hashes the
// password with the default algorithm and stores it; the new hash verifies.
func TestHashUpgradeOnLogin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := builtin.Config{BootstrapType: builtin.BootstrapHash,
		BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA256, SaltPosition: password.Prefix}}
	cfg.BootstrapFile = e.file("users.csv", "user_id,password_hash,salt,is_superuser\nold,"+sha256Prefix+",salt123,true\n")
	a := e.auth(cfg)
	before, _ := e.db.Users().Get(ctx, controldb.Username, "old")
	if !strings.HasPrefix(before.PasswordHash, "$sha256$prefix$") {
		t.Fatalf("imported hash %q", before.PasswordHash)
	}

	// A wrong password does not trigger an upgrade.
	check(t, login(a, "old", "", []byte("wrong")), authn.Deny, false)
	// The broker clears the password buffer once Authenticate returns; the upgrade must
	// not depend on it.
	pw := []byte("public")
	check(t, login(a, "old", "", pw), authn.Allow, true)
	clear(pw)
	if err := a.Close(ctx); err != nil { // waits for the background upgrade
		t.Fatal(err)
	}
	after, err := e.db.Users().Get(ctx, controldb.Username, "old")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(after.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") || !after.Superuser {
		t.Fatalf("after login the stored user is %+v", after)
	}
	if ok, err := e.hasher.Verify(ctx, after.PasswordHash, []byte("public")); !ok || err != nil {
		t.Fatalf("upgraded hash does not verify the password: %v %v", ok, err)
	}

	// After a restart the upgraded hash is what logs in, and needs no further upgrade.
	e.reopen()
	b := e.auth(builtin.Config{})
	check(t, login(b, "old", "", []byte("public")), authn.Allow, true)
	check(t, login(b, "old", "", []byte("publiC")), authn.Deny, false)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	final, _ := e.db.Users().Get(ctx, controldb.Username, "old")
	if final.PasswordHash != after.PasswordHash {
		t.Fatal("a current hash was upgraded again")
	}
	e.noSecrets("public")
}

// A failing upgrade write never fails the login.
func TestHashUpgradeFailureDoesNotBlockLogin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := builtin.Config{BootstrapType: builtin.BootstrapHash,
		BootstrapHashAlgorithm: password.Params{Algorithm: password.SHA256}}
	cfg.BootstrapFile = e.file("users.csv", "user_id,password_hash,salt,is_superuser\nold,"+sha256Prefix+",salt123,false\n")
	a := e.auth(cfg)
	if err := e.db.Close(); err != nil { // every write now fails
		t.Fatal(err)
	}
	check(t, login(a, "old", "", []byte("public")), authn.Allow, false)
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), "password hash upgrade failed") {
		t.Fatalf("upgrade failure not logged:\n%s", e.logs.String())
	}
	// The old hash still works (memory was not changed by the failed write).
	check(t, login(a, "old", "", []byte("public")), authn.Allow, false)
	e.noSecrets("public")
}
