package broker

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// passwords is a test authenticator over a fixed table; unknown users are ignored.
type passwords struct {
	users  map[string]string
	expiry time.Duration // when set, an Allow expires this long after it is given
}

func (p *passwords) Name() string { return "test:passwords" }

func (p *passwords) Authenticate(_ context.Context, _ *clientinfo.Info, cred *authn.Credentials) authn.Result {
	want, ok := p.users[cred.Username]
	switch {
	case !ok || !cred.HasPassword():
		return authn.Ignored("unknown user")
	case want != string(cred.Password):
		return authn.Denied(packet.BadUserNameOrPassword, "wrong password")
	}
	res := authn.Allowed()
	if p.expiry > 0 {
		res.ExpiresAt = time.Now().Add(p.expiry)
	}
	return res
}

// toy is a two-step challenge-response method: the client says "hello", the server
// answers a nonce, the client proves with "proof:<nonce>", the server confirms.
type toy struct{}

func (toy) Method() string { return "TOY" }

func (toy) Begin(context.Context, *clientinfo.Info) (authn.Conversation, error) {
	return &toyConv{}, nil
}

type toyConv struct{ step int }

func (c *toyConv) Step(_ context.Context, in []byte) ([]byte, bool, authn.Result) {
	c.step++
	switch {
	case c.step == 1 && string(in) == "hello":
		return []byte("nonce-1"), false, authn.Result{}
	case c.step == 2 && string(in) == "proof:nonce-1":
		return []byte("server-ok"), true, authn.Allowed()
	}
	return nil, true, authn.Denied(packet.NotAuthorized, "bad proof")
}

func authBroker(t *testing.T, p *passwords) *testBroker {
	chain := authn.NewChain([]authn.Entry{{Authenticator: p}}, []authn.Enhanced{toy{}}, nil, nil)
	svc := authn.NewService(authn.ServiceOptions{Global: chain})
	return startBroker(t, func(o *Options) { o.Authenticator = svc })
}

func withAuth(cp *packet.Connect, method string, data []byte) *packet.Connect {
	cp.Properties.AuthMethod = method
	cp.Properties.Set(packet.PropAuthMethod)
	if data != nil {
		cp.Properties.AuthData = data
		cp.Properties.Set(packet.PropAuthData)
	}
	return cp
}

func authPacket(reason packet.ReasonCode, method string, data []byte) *packet.Auth {
	a := &packet.Auth{ReasonCode: reason}
	a.Properties.AuthMethod = method
	a.Properties.Set(packet.PropAuthMethod)
	if data != nil {
		a.Properties.AuthData = data
		a.Properties.Set(packet.PropAuthData)
	}
	return a
}

func withPassword(cp *packet.Connect, user, pw string) *packet.Connect {
	cp.HasUsername, cp.Username = true, user
	cp.HasPassword, cp.Password = true, []byte(pw)
	return cp
}

func TestPasswordAuthentication(t *testing.T) {
	b := authBroker(t, &passwords{users: map[string]string{"alice": "s3cret"}})
	tests := []struct {
		name     string
		v        packet.Version
		user, pw string
		want     packet.ReasonCode
	}{
		{"right password", packet.V5, "alice", "s3cret", packet.Success},
		{"wrong password is 0x86", packet.V5, "alice", "guess", packet.BadUserNameOrPassword},
		{"unknown user: every authenticator ignores, 0x87", packet.V5, "mallory", "x", packet.NotAuthorized},
		{"no credentials at all, 0x87", packet.V5, "", "", packet.NotAuthorized},
		{"3.1.1 wrong password is return code 4", packet.V311, "alice", "guess", packet.ConnRefusedBadUsernamePassword},
		{"3.1.1 unknown user is return code 5", packet.V311, "mallory", "x", packet.ConnRefusedNotAuthorized},
		{"3.1.1 right password", packet.V311, "alice", "s3cret", packet.Success},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := b.dialRaw(t, tc.v)
			cp := &packet.Connect{Version: tc.v, ClientID: "pw-" + tc.user, CleanStart: true}
			if tc.user != "" {
				withPassword(cp, tc.user, tc.pw)
			}
			ack := c.connect(cp)
			if ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(tc.want))
			}
			if tc.want != packet.Success {
				c.expectClosed(waitLong)
			}
		})
	}
}

func TestEnhancedAuthentication(t *testing.T) {
	b := authBroker(t, &passwords{users: map[string]string{"carol": "pw"}})

	t.Run("[MQTT-4.12.0-2] challenge and response, then CONNACK with the method and data", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		if err := c.send(withAuth(v5Connect("enh-ok"), "TOY", []byte("hello"))); err != nil {
			t.Fatal(err)
		}
		a := expectPacket[*packet.Auth](c)
		if a.ReasonCode != packet.ContinueAuthentication || a.Properties.AuthMethod != "TOY" || string(a.Properties.AuthData) != "nonce-1" {
			t.Fatalf("challenge: %s", describe(a))
		}
		if err := c.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:nonce-1"))); err != nil {
			t.Fatal(err)
		}
		ack := expectPacket[*packet.Connack](c)
		if ack.ReasonCode != packet.Success || ack.Properties.AuthMethod != "TOY" || !bytes.Equal(ack.Properties.AuthData, []byte("server-ok")) {
			t.Fatalf("CONNACK: %s", describe(ack))
		}
		if got := c.probe("enh/ok"); got.IsError() {
			t.Fatalf("authenticated client cannot publish: 0x%02X", byte(got))
		}
	})

	t.Run("wrong proof: CONNACK 0x87, closed, no session kept", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		if err := c.send(withExpiry(withAuth(v5Connect("enh-bad"), "TOY", []byte("hello")), 3600, false)); err != nil {
			t.Fatal(err)
		}
		expectPacket[*packet.Auth](c)
		if err := c.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:guess"))); err != nil {
			t.Fatal(err)
		}
		if ack := expectPacket[*packet.Connack](c); ack.ReasonCode != packet.NotAuthorized {
			t.Fatalf("CONNACK %s, want 0x87", describe(ack))
		}
		c.expectClosed(waitLong)
		// The same client id authenticating properly finds no session of the failed try.
		c2 := b.dialRaw(t, packet.V5)
		if err := c2.send(withExpiry(withAuth(v5Connect("enh-bad"), "TOY", []byte("hello")), 0, false)); err != nil {
			t.Fatal(err)
		}
		expectPacket[*packet.Auth](c2)
		_ = c2.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:nonce-1")))
		if ack := expectPacket[*packet.Connack](c2); ack.ReasonCode != packet.Success || ack.SessionPresent {
			t.Fatalf("CONNACK %s, want success without a session", describe(ack))
		}
	})

	t.Run("[MQTT-4.12.0-1] method not offered: 0x8C", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		if ack := c.connect(withAuth(v5Connect("enh-unknown"), "SCRAM-SHA-1", nil)); ack.ReasonCode != packet.BadAuthenticationMethod {
			t.Fatalf("CONNACK %s, want 0x8C", describe(ack))
		}
		c.expectClosed(waitLong)
	})

	t.Run("a packet other than AUTH during the exchange is a protocol error", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		_ = c.send(withAuth(v5Connect("enh-pub"), "TOY", []byte("hello")))
		expectPacket[*packet.Auth](c)
		_ = c.send(&packet.Publish{Topic: "sneak/in", Payload: []byte("x")})
		if ack := expectPacket[*packet.Connack](c); ack.ReasonCode != packet.ProtocolError {
			t.Fatalf("CONNACK %s, want 0x82", describe(ack))
		}
		c.expectClosed(waitLong)
	})

	t.Run("[MQTT-4.12.0-5] the method may not change during the exchange", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		_ = c.send(withAuth(v5Connect("enh-switch"), "TOY", []byte("hello")))
		expectPacket[*packet.Auth](c)
		_ = c.send(authPacket(packet.ContinueAuthentication, "OTHER", []byte("proof:nonce-1")))
		if ack := expectPacket[*packet.Connack](c); ack.ReasonCode != packet.ProtocolError {
			t.Fatalf("CONNACK %s, want 0x82", describe(ack))
		}
	})

	connectToy := func(t *testing.T, id string) *rawClient {
		c := b.dialRaw(t, packet.V5)
		_ = c.send(withAuth(v5Connect(id), "TOY", []byte("hello")))
		expectPacket[*packet.Auth](c)
		_ = c.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:nonce-1")))
		if ack := expectPacket[*packet.Connack](c); ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK %s", describe(ack))
		}
		return c
	}

	t.Run("[MQTT-4.12.1-1] re-authentication on a live connection", func(t *testing.T) {
		c := connectToy(t, "reauth-ok")
		_ = c.send(authPacket(packet.ReAuthenticate, "TOY", []byte("hello")))
		if a := expectPacket[*packet.Auth](c); a.ReasonCode != packet.ContinueAuthentication {
			t.Fatalf("re-auth challenge: %s", describe(a))
		}
		_ = c.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:nonce-1")))
		if a := expectPacket[*packet.Auth](c); a.ReasonCode != packet.Success || string(a.Properties.AuthData) != "server-ok" {
			t.Fatalf("re-auth result: %s", describe(a))
		}
		if got := c.probe("reauth/ok"); got.IsError() {
			t.Fatalf("client lost its connection after re-authenticating: 0x%02X", byte(got))
		}
	})

	t.Run("[MQTT-4.12.1-2] failed re-authentication disconnects with 0x87", func(t *testing.T) {
		c := connectToy(t, "reauth-bad")
		_ = c.send(authPacket(packet.ReAuthenticate, "TOY", []byte("hello")))
		expectPacket[*packet.Auth](c)
		_ = c.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:stolen")))
		c.expectDisconnect(packet.NotAuthorized)
	})

	t.Run("re-authentication with another method is a protocol error", func(t *testing.T) {
		c := connectToy(t, "reauth-switch")
		_ = c.send(authPacket(packet.ReAuthenticate, "OTHER", []byte("hello")))
		c.expectDisconnect(packet.ProtocolError)
	})

	t.Run("AUTH 0x18 with no re-authentication in progress is a protocol error", func(t *testing.T) {
		c := connectToy(t, "reauth-stray")
		_ = c.send(authPacket(packet.ContinueAuthentication, "TOY", []byte("proof:nonce-1")))
		c.expectDisconnect(packet.ProtocolError)
	})

	t.Run("[MQTT-4.12.0-7] AUTH after a CONNECT without a method is a protocol error", func(t *testing.T) {
		c := b.dialRaw(t, packet.V5)
		c.mustConnect(withPassword(v5Connect("no-method"), "carol", "pw"))
		_ = c.send(authPacket(packet.ReAuthenticate, "TOY", []byte("hello")))
		c.expectDisconnect(packet.ProtocolError)
	})
}

func TestCredentialsExpiryDisconnects(t *testing.T) {
	b := authBroker(t, &passwords{users: map[string]string{"bob": "pw"}, expiry: 300 * time.Millisecond})
	c := b.dialRaw(t, packet.V5)
	c.mustConnect(withPassword(v5Connect("expiring"), "bob", "pw"))
	// The connection parks when idle; the expiry must reach it there too.
	c.expectDisconnect(packet.NotAuthorized)
}
