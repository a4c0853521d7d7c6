package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn/builtin"
	"github.com/rampart-mqtt/rampart/internal/broker"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/guard"
	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// guardBroker runs a broker in this process with the ban list and flapping detection of
// cfg, on a loopback listener, and returns its address and guard.
func guardBroker(t *testing.T, cfg *config.Config) (string, *connectGuard) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := controldb.Open(ctx, filepath.Join(cfg.Node.DataDir, controlDBFile))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	g, err := buildGuard(ctx, cfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	o := broker.Defaults()
	o.SysInterval = 0
	o.Guard = g
	o.Logger = log
	srv := broker.New(o)
	g.disconnectOnBan(srv)
	l, err := listener.NewTCP(ctx, listener.TCPOptions{Name: "default", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, []listener.Listener{l}) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = db.Close()
	})
	return l.Addr().String(), g
}

func connectCode(t *testing.T, addr, id string) (packet.ReasonCode, *rawClient) {
	t.Helper()
	c := dialRaw(t, addr, packet.V5)
	c.send(&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 60})
	return expect[*packet.Connack](c).ReasonCode, c
}

// TestGuardEndsCounted: which ends of a connection are flaps, and by what they count. A
// refused authentication counts by peer address only, so that failing to log in with a
// device's client id cannot get the device banned.
func TestGuardEndsCounted(t *testing.T) {
	tests := []struct {
		end                broker.End
		clientID, peerHost bool // banned after 16 such ends
	}{
		{broker.EndClean, false, false},
		{broker.EndByServer, false, false},
		{broker.EndAbnormal, true, true},
		{broker.EndTakenOver, true, true},
		{broker.EndRefused, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.end.String(), func(t *testing.T) {
			cfg := config.Default()
			cfg.FlappingDetect.CountBy = []string{"clientid", "peerhost"}
			db, err := controldb.Open(testCtx(t), filepath.Join(t.TempDir(), controlDBFile))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			g, err := buildGuard(testCtx(t), cfg, db, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			dev := &clientinfo.Info{ClientID: "dev-1", Peer: netip.MustParseAddrPort("127.0.0.9:4000")}
			for range 16 {
				g.Ended(testCtx(t), dev, tc.end)
			}
			sameID := &clientinfo.Info{ClientID: "dev-1", Peer: netip.MustParseAddrPort("127.0.0.10:4000")}
			sameHost := &clientinfo.Info{ClientID: "dev-2", Peer: netip.MustParseAddrPort("127.0.0.9:4001")}
			_, idBanned := g.Check(testCtx(t), sameID)
			_, hostBanned := g.Check(testCtx(t), sameHost)
			if idBanned != tc.clientID || hostBanned != tc.peerHost {
				t.Fatalf("client id banned %v, peer address banned %v; want %v, %v", idBanned, hostBanned, tc.clientID, tc.peerHost)
			}
		})
	}
}

// testCtx is a context that ends with the test.
func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return c
}

func TestGuardBans(t *testing.T) {
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	addr, g := guardBroker(t, cfg)
	ctx := context.Background()

	t.Run("a new CIDR ban disconnects a live client in the range at once", func(t *testing.T) {
		got, live := connectCode(t, addr, "live-1")
		if got != packet.Success {
			t.Fatalf("CONNACK 0x%02X", byte(got))
		}
		if _, err := g.bans.Add(ctx, guard.Ban{Kind: guard.BanPeerHost, Value: "127.0.0.0/8", Reason: "test", By: "ops"}); err != nil {
			t.Fatal(err)
		}
		p, ok := live.next(waitPacket)
		if d, isD := p.(*packet.Disconnect); !ok || !isD || d.ReasonCode != packet.AdministrativeAction {
			t.Fatalf("got %s (open %v), want DISCONNECT 0x98", describe(p), ok)
		}
		if got, c := connectCode(t, addr, "live-2"); got != packet.Banned {
			t.Fatalf("connect from a banned range: CONNACK 0x%02X, want 0x8A", byte(got))
		} else {
			c.close()
		}
		if _, err := g.bans.Remove(ctx, guard.BanPeerHost, "127.0.0.0/8"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a regular-expression ban on client ids", func(t *testing.T) {
		if _, err := g.bans.Add(ctx, guard.Ban{Kind: guard.BanClientIDRe, Value: "^evil-[0-9]+$", Reason: "botnet", By: "ops"}); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]packet.ReasonCode{"evil-42": packet.Banned, "evil-x": packet.Success, "good-42": packet.Success} {
			got, c := connectCode(t, addr, id)
			c.close()
			if got != want {
				t.Errorf("%s: CONNACK 0x%02X, want 0x%02X", id, byte(got), byte(want))
			}
		}
	})

	t.Run("a ban ends on time", func(t *testing.T) {
		if _, err := g.bans.Add(ctx, guard.Ban{Kind: guard.BanClientID, Value: "brief", Reason: "cool off", By: "ops",
			Until: time.Now().Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		if got, c := connectCode(t, addr, "brief"); got != packet.Banned {
			t.Fatalf("CONNACK 0x%02X, want 0x8A", byte(got))
		} else {
			c.close()
		}
		deadline := time.Now().Add(waitPacket)
		for {
			got, c := connectCode(t, addr, "brief")
			c.close()
			if got == packet.Success {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the ban did not end")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func TestGuardBansSurviveARestart(t *testing.T) {
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	ctx := context.Background()
	func() {
		db, err := controldb.Open(ctx, filepath.Join(cfg.Node.DataDir, controlDBFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		g, err := buildGuard(ctx, cfg, db, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := g.bans.Add(ctx, guard.Ban{Kind: guard.BanUsername, Value: fmt.Sprintf("user-%d", i), Reason: "r", By: "ops"}); err != nil {
				t.Fatal(err)
			}
		}
	}()
	addr, g := guardBroker(t, cfg)
	if g.bans.Len() != 3 {
		t.Fatalf("%d bans after the restart, want 3", g.bans.Len())
	}
	c := dialRaw(t, addr, packet.V5)
	c.send(&packet.Connect{Version: packet.V5, ClientID: "x", CleanStart: true, HasUsername: true, Username: "user-1"})
	if ack := expect[*packet.Connack](c); ack.ReasonCode != packet.Banned {
		t.Fatalf("CONNACK 0x%02X, want 0x8A", byte(ack.ReasonCode))
	}
}

// TestUserChangeDisconnects: deleting a built-in user, or changing its superuser flag,
// disconnects its live sessions at once, so none keeps rights the account no longer has.
func TestUserChangeDisconnects(t *testing.T) {
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	users := writeFile(t, "users.csv", "user_id,password,is_superuser\nzoe,zoe-pw,true\n")
	cfg.Authentication = append(cfg.Authentication, config.DefaultAuthenticator())
	c0 := &cfg.Authentication[0]
	c0.Mechanism, c0.Backend, c0.BootstrapFile = config.MechPasswordBased, config.BackendBuiltIn, users
	c0.PasswordHashAlgorithm.Memory, c0.PasswordHashAlgorithm.Iterations = 8*config.MB, 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := controldb.Open(ctx, filepath.Join(cfg.Node.DataDir, controlDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.DiscardHandler)
	conns := newConnectors(nil)
	defer conns.Close()
	auth, err := buildAuthn(ctx, cfg, db, conns, log)
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	o := broker.Defaults()
	o.SysInterval, o.Logger, o.Authenticator = 0, log, auth.service
	srv := broker.New(o)
	auth.disconnectOnUserChange(srv)
	l, err := listener.NewTCP(ctx, listener.TCPOptions{Name: "default", Bind: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, []listener.Listener{l}) }()
	defer func() { cancel(); <-done }()
	addr := l.Addr().String()
	store := auth.users.byType[controldb.Username]

	got, c := authConnect(t, addr, packet.V5, "zoe-1", "zoe", "zoe-pw")
	if got != packet.Success {
		t.Fatalf("CONNACK 0x%02X", byte(got))
	}
	no := false
	if err := store.UpdateUser(ctx, "zoe", builtin.UserUpdate{Superuser: &no}); err != nil {
		t.Fatal(err)
	}
	p, ok := c.next(waitPacket)
	if d, isD := p.(*packet.Disconnect); !ok || !isD || d.ReasonCode != packet.AdministrativeAction {
		t.Fatalf("after the superuser flag changed: got %s (open %v), want DISCONNECT 0x98", describe(p), ok)
	}
	got, c = authConnect(t, addr, packet.V5, "zoe-2", "zoe", "zoe-pw")
	if got != packet.Success {
		t.Fatalf("reconnect: CONNACK 0x%02X", byte(got))
	}
	if err := store.DeleteUser(ctx, "zoe"); err != nil {
		t.Fatal(err)
	}
	if p, ok := c.next(waitPacket); ok {
		if d, isD := p.(*packet.Disconnect); !isD || d.ReasonCode != packet.AdministrativeAction {
			t.Fatalf("after the user was deleted: got %s, want DISCONNECT 0x98", describe(p))
		}
	}
	if got, c := authConnect(t, addr, packet.V5, "zoe-3", "zoe", "zoe-pw"); got == packet.Success {
		t.Fatal("a deleted user connected")
	} else {
		c.close()
	}
}
