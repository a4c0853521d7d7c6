package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// TestClientIDBinding: the shipped least-privilege ACL keys each device's topics by
// ${clientid}. Without an authenticator that binds the client id to the account, any
// account could take a device's id (read its commands, kick it): serve and --check-config
// both say so. With the binding the shipped example configures, the take-over is refused.
func TestClientIDBinding(t *testing.T) {
	acl, err := filepath.Abs(shippedACL)
	if err != nil {
		t.Fatal(err)
	}
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\ndev-a,dev-a-pw,false\ndev-b,dev-b-pw,false\n")
	config := func(binding string) string {
		return testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
%s  - mechanism: password_based
    backend: built_in_database
    bootstrap_file: %s
    password_hash_algorithm: {name: argon2id, memory: 8MB, iterations: 1}
authorization:
  sources:
    - {type: file, path: %s}
`, binding, strconv.Quote(users), strconv.Quote(acl))
	}
	const bound = `  - mechanism: cinfo
    checks: [ { is_match: ['clientid != username'], result: deny } ]
`
	const warning = "no authenticator binds the client id to the account"

	t.Run("unbound: serve and --check-config warn, and the take-over works", func(t *testing.T) {
		path := writeConfig(t, config(""))
		res := runRampart(t, t.TempDir(), nil, "serve", "--config", path, "--check-config")
		if res.code != 0 || !strings.Contains(res.stderr, warning) || !strings.Contains(res.stderr, "authorization.sources[0] (file)") {
			t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
		}
		b := startBroker(t, path, "tcp:default")
		waitLog(t, b, warning)
		// dev-a's account under dev-b's client id reads dev-b's commands: what the
		// warning is about.
		got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "dev-b", "dev-a", "dev-a-pw")
		if got != packet.Success || subCode(c, "devices/dev-b/commands", 1).IsError() {
			t.Fatalf("CONNACK 0x%02X", byte(got))
		}
	})

	t.Run("bound: no warning, and another account's client id is refused", func(t *testing.T) {
		path := writeConfig(t, config(bound))
		res := runRampart(t, t.TempDir(), nil, "serve", "--config", path, "--check-config")
		if res.code != 0 || strings.Contains(res.stderr, warning) {
			t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
		}
		b := startBroker(t, path, "tcp:default")
		if got, _ := authConnect(t, b.addr("tcp:default"), packet.V5, "dev-b", "dev-a", "dev-a-pw"); got != packet.NotAuthorized {
			t.Fatalf("dev-a as client dev-b: CONNACK 0x%02X, want 0x87", byte(got))
		}
		got, c := authConnect(t, b.addr("tcp:default"), packet.V5, "dev-a", "dev-a", "dev-a-pw")
		if got != packet.Success || subCode(c, "devices/dev-a/commands", 1).IsError() {
			t.Fatalf("dev-a: CONNACK 0x%02X", byte(got))
		}
		if strings.Contains(b.stderr.String(), warning) {
			t.Fatal("warned although the client id is bound")
		}
	})
}
