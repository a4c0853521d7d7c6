package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// TestBackendLDAP: users and topic attributes in a real slapd over verified LDAPS, through
// the binary; a removed attribute value stops applying within the source's ttl.
func TestBackendLDAP(t *testing.T) {
	pki := testsvc.NewPKI(t)
	s := testsvc.StartSlapd(t, pki)
	s.AddUser(t, "erin", "erin-pw", false, []string{"things/${clientid}/up", "fleet/erin"}, []string{"things/${clientid}/down"}, nil)
	s.AddUser(t, "root", "root-pw", true, nil, nil, nil)
	server := fmt.Sprintf(`server: %q
    username: %q
    password: "file:%s"
    base_dn: %q
    filter: "(&(objectClass=mqttUser)(uid=${username}))"
    ssl: {enable: true, cacertfile: %q}`, s.LDAPSAddr, s.ServiceDN, s.ServicePasswordFile, s.UsersDN, pki.CAFile)
	cfg := testConfig(t.TempDir(), "none") + fmt.Sprintf(`authentication:
  - mechanism: password_based
    backend: ldap
    %s
authorization:
  sources:
    - type: ldap
      ttl: 1s
      %s
`, server, strings.ReplaceAll(server, "\n", "\n  "))
	b := startBroker(t, writeConfig(t, cfg), "tcp:default")
	addr := b.addr("tcp:default")

	got, c := authConnect(t, addr, packet.V5, "dev-1", "erin", "erin-pw")
	if got != packet.Success {
		t.Fatalf("CONNACK 0x%02X", byte(got))
	}
	defer c.close()
	for _, tc := range []struct {
		topic string
		want  bool
	}{
		{"things/dev-1/up", true},    // placeholder expanded with the client id
		{"fleet/erin", true},         // a plain value
		{"things/dev-2/up", false},   // another device's topic
		{"things/dev-1/down", false}, // subscribe only
	} {
		code := pubCode(c, tc.topic, false)
		if ok := !code.IsError(); ok != tc.want {
			t.Errorf("publish %s: 0x%02X, want allowed=%v", tc.topic, byte(code), tc.want)
		}
	}

	if got, su := authConnect(t, addr, packet.V5, "admin-1", "root", "root-pw"); got != packet.Success {
		t.Errorf("superuser CONNACK 0x%02X", byte(got))
	} else {
		if code := pubCode(su, "anything/at/all", false); code.IsError() {
			t.Errorf("superuser publish: 0x%02X", byte(code))
		}
		su.close()
	}

	// Attacks: a filter injection with erin's password, the unauthenticated-bind trick
	// (a right user name and an empty password), and a wrong password.
	for _, tc := range []struct{ user, pass string }{
		{"*", "erin-pw"},
		{"*)(uid=*", "erin-pw"},
		{"erin)(|(uid=*", "erin-pw"},
		{"erin", ""},
		{"erin", "wrong"},
	} {
		if got, bad := authConnect(t, addr, packet.V5, "c-bad", tc.user, tc.pass); got == packet.Success {
			t.Errorf("user %q with password %q let in", tc.user, tc.pass)
		} else {
			bad.close()
		}
	}

	// Revocation of a rule: drop fleet/erin from the entry; the connected client loses it
	// once the source's ttl (1s) has passed, without reconnecting.
	admin := s.Conn(t)
	mod := goldap.NewModifyRequest(s.UserDN("erin"), nil)
	mod.Delete("mqttPublishTopic", []string{"fleet/erin"})
	if err := admin.Modify(mod); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for pubCode(c, "fleet/erin", false) != packet.NotAuthorized {
		if time.Now().After(deadline) {
			t.Fatal("a rule removed from the directory still applies 10s later (ttl 1s)")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Revocation of a user: the next connect is refused.
	s.DeleteUser(t, "erin")
	if got, c2 := authConnect(t, addr, packet.V5, "dev-3", "erin", "erin-pw"); got == packet.Success {
		t.Fatal("a deleted user connected")
	} else {
		c2.close()
	}

	// The directory goes down: clients are refused with Server unavailable and the
	// operator reads it in the log; it comes back: clients get in again, and the log says so.
	s.Stop()
	if got, c3 := authConnect(t, addr, packet.V5, "admin-2", "root", "root-pw"); got != packet.ServerUnavailable {
		t.Errorf("directory down: CONNACK 0x%02X, want 0x88", byte(got))
		c3.close()
	} else {
		c3.close()
	}
	if !logSays(b, "backend unreachable") {
		t.Error("no log line says the directory is unreachable")
	}
	s.Restart(t)
	deadline = time.Now().Add(10 * time.Second)
	for {
		got, c4 := authConnect(t, addr, packet.V5, "admin-3", "root", "root-pw")
		c4.close()
		if got == packet.Success {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("directory back: still refused with 0x%02X after 10s", byte(got))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !logSays(b, "backend reachable again") {
		t.Error("no log line says the directory is back")
	}
}

// logSays waits (at most 5s: the child's stderr is copied asynchronously) for the
// broker's log to contain text.
func logSays(b *brokerProc, text string) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(b.stderr.String(), text) {
			return true
		}
	}
	return false
}
