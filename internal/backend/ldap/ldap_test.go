package ldap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := "file:" + pwFile
	const svc = "cn=rampart,dc=example,dc=com"
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"loopback plain", Config{Server: "127.0.0.1", BindDN: svc, BindPassword: pw}, ""},
		{"localhost plain with port", Config{Server: "localhost:1389"}, ""},
		{"anonymous", Config{Server: "[::1]:389", BaseDN: "dc=example,dc=com"}, ""},
		{"ldaps to remote host", Config{Server: "ldap.example", BindDN: svc, BindPassword: pw, TLS: &tlsconf.ClientOptions{}}, ""},
		{"starttls to remote host", Config{Server: "ldap.example:389", TLS: &tlsconf.ClientOptions{}, StartTLS: true}, ""},
		{"plain to remote host with opt-in", Config{Server: "ldap.example", AllowPlainText: true}, ""},
		{"plain to remote host", Config{Server: "ldap.example", BindDN: svc, BindPassword: pw}, "clear text"},
		{"plain to remote address", Config{Server: "192.0.2.1:389"}, "clear text"},
		{"inline password", Config{Server: "127.0.0.1", BindDN: svc, BindPassword: "hunter2"}, "refused"},
		{"env password unset", Config{Server: "127.0.0.1", BindDN: svc, BindPassword: "env:RAMPART_TEST_SURELY_UNSET"}, "not set"},
		{"dn without password", Config{Server: "127.0.0.1", BindDN: svc}, "password: required"},
		{"password without dn", Config{Server: "127.0.0.1", BindPassword: pw}, "without username"},
		{"bad bind dn", Config{Server: "127.0.0.1", BindDN: "rampart", BindPassword: pw}, "username"},
		{"bad base dn", Config{Server: "127.0.0.1", BaseDN: "example.com"}, "base_dn"},
		{"no server", Config{}, "server: required"},
		{"url", Config{Server: "ldaps://ldap.example"}, "host[:port]"},
		{"bad port", Config{Server: "127.0.0.1:0"}, "port"},
		{"start_tls without ssl", Config{Server: "127.0.0.1", StartTLS: true}, "start_tls"},
		{"pool size", Config{Server: "127.0.0.1", PoolSize: 2000}, "pool_size"},
		{"request timeout", Config{Server: "127.0.0.1", QueryTimeout: time.Hour}, "request_timeout"},
		{"verify none without opt-in", Config{Server: "ldap.example", TLS: &tlsconf.ClientOptions{Verify: "verify_none"}}, "allow_verify_none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if err == nil {
				defer p.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestDefaultPorts(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Server: "127.0.0.1"}, "ldap://127.0.0.1:389"},
		{Config{Server: "ldap.example", TLS: &tlsconf.ClientOptions{}}, "ldaps://ldap.example:636"},
		{Config{Server: "ldap.example", TLS: &tlsconf.ClientOptions{}, StartTLS: true}, "ldap://ldap.example:389 (StartTLS)"},
		{Config{Server: "::1"}, "ldap://[::1]:389"},
	} {
		p, err := New(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.Target() != tt.want {
			t.Errorf("%+v: target %s, want %s", tt.cfg, p.Target(), tt.want)
		}
	}
}

// service is a pool configuration bound as the test server's service account.
func service(s *testsvc.Slapd) Config {
	return Config{Server: s.Addr, BindDN: s.ServiceDN, BindPassword: "file:" + s.ServicePasswordFile, BaseDN: s.UsersDN}
}

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSearchReadBind(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	aliceDN := s.AddUser(t, "alice", "alice-pw", false, []string{"a/pub"}, nil, nil)
	s.AddUser(t, "bob", "bob-pw", true, nil, nil, nil)
	ctx := ctx30(t)
	// One connection: every question below reuses it, so a user's bind that left it bound
	// as that user would show.
	cfg := service(s)
	cfg.PoolSize = 1
	p := newPool(t, cfg)
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	res, err := p.Search(ctx, "", "(uid=alice)", []string{"mqttPublishTopic", "userPassword"}, 2)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(res.Entries) != 1 || res.More || !strings.EqualFold(res.Entries[0].DN, aliceDN) {
		t.Fatalf("Search: %+v", res)
	}
	e := res.Entries[0]
	if v := e.Values("MQTTPUBLISHTOPIC"); len(v) != 1 || v[0] != "a/pub" {
		t.Errorf("mqttPublishTopic: %q", v)
	}
	if v := e.Values("userPassword"); len(v) != 1 || v[0] != "alice-pw" {
		t.Errorf("the service account reads userPassword: %q", v)
	}
	if res, err = p.Search(ctx, "", "(objectClass=inetOrgPerson)", nil, 1); err != nil || len(res.Entries) != 1 || !res.More {
		t.Errorf("size limit: %+v, %v; want one entry and More", res, err)
	}
	if res, err = p.Search(ctx, "", "(uid=nobody)", nil, 1); err != nil || len(res.Entries) != 0 || res.More {
		t.Errorf("no match: %+v, %v", res, err)
	}
	if _, err = p.Search(ctx, "ou=missing,"+s.BaseDN, "(uid=alice)", nil, 1); err == nil || !strings.Contains(err.Error(), "No Such Object") {
		t.Errorf("search under a missing base: %v", err)
	}
	if e, err := p.Read(ctx, aliceDN, []string{"uid"}); err != nil || e == nil || e.Values("uid")[0] != "alice" {
		t.Errorf("Read: %+v, %v", e, err)
	}
	if e, err := p.Read(ctx, "uid=nobody,"+s.UsersDN, nil); err != nil || e != nil {
		t.Errorf("Read missing: %+v, %v", e, err)
	}

	tests := []struct {
		name    string
		dn, pw  string
		wantErr error
	}{
		{"right password", aliceDN, "alice-pw", nil},
		{"wrong password", aliceDN, "bob-pw", ErrInvalidCredentials},
		{"no such entry", "uid=nobody," + s.UsersDN, "alice-pw", ErrInvalidCredentials},
		{"empty password", aliceDN, "", ErrEmptyPassword},
		{"empty dn", "", "x", ErrEmptyPassword},
		{"superuser", s.UserDN("bob"), "bob-pw", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.UserBind(ctx, tt.dn, []byte(tt.pw))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("UserBind: %v, want %v", err, tt.wantErr)
			}
			if err != nil && tt.pw != "" && strings.Contains(err.Error(), tt.pw) {
				t.Errorf("error leaks the password: %v", err)
			}
			// The connection is the service account's again: only it reads userPassword.
			e, err := p.Read(ctx, aliceDN, []string{"userPassword"})
			if err != nil || e == nil || len(e.Values("userPassword")) != 1 {
				t.Fatalf("after the bind, the pooled connection is not the service account's: %+v, %v", e, err)
			}
		})
	}
	if !p.Health().Up {
		t.Errorf("health: %+v", p.Health())
	}
}

// TestAnonymousPool: without a service account the pool searches anonymously, and a
// user's bind is followed by an anonymous bind.
func TestAnonymousPool(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	dn := s.AddUser(t, "alice", "alice-pw", false, nil, nil, nil)
	ctx := ctx30(t)
	p := newPool(t, Config{Server: s.Addr, BaseDN: s.UsersDN, PoolSize: 1})
	if err := p.UserBind(ctx, dn, []byte("alice-pw")); err != nil {
		t.Fatal(err)
	}
	e, err := p.Read(ctx, dn, []string{"uid", "userPassword"})
	if err != nil || e == nil || len(e.Values("uid")) != 1 || len(e.Values("userPassword")) != 0 {
		t.Fatalf("anonymous read after a user bind: %+v, %v", e, err)
	}
}

func TestTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	s := testsvc.StartSlapd(t, pki)
	dn := s.AddUser(t, "alice", "alice-pw", false, nil, nil, nil)
	ctx := ctx30(t)
	ldaps := func(o tlsconf.ClientOptions) Config {
		c := service(s)
		c.Server, c.TLS = s.LDAPSAddr, &o
		return c
	}
	startTLS := func(o tlsconf.ClientOptions) Config {
		c := service(s)
		c.TLS, c.StartTLS = &o, true
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ldaps", ldaps(tlsconf.ClientOptions{CACertFile: pki.CAFile}), ""},
		{"ldaps with a client certificate", ldaps(tlsconf.ClientOptions{CACertFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}), ""},
		{"ldaps by name", func() Config {
			c := ldaps(tlsconf.ClientOptions{CACertFile: pki.CAFile})
			_, port, _ := net.SplitHostPort(s.LDAPSAddr)
			c.Server = net.JoinHostPort("localhost", port)
			return c
		}(), ""},
		{"ldaps wrong ca", ldaps(tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}), "certificate"},
		{"ldaps system roots", ldaps(tlsconf.ClientOptions{}), "certificate"},
		{"ldaps wrong name", ldaps(tlsconf.ClientOptions{CACertFile: pki.CAFile, ServerName: "ldap.example"}), "certificate"},
		{"starttls", startTLS(tlsconf.ClientOptions{CACertFile: pki.CAFile}), ""},
		{"starttls wrong ca", startTLS(tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}), "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.cfg)
			err := p.UserBind(ctx, dn, []byte("alice-pw"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("UserBind: %v", err)
				}
				if _, err := p.Search(ctx, "", "(uid=alice)", nil, 1); err != nil {
					t.Fatalf("Search: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("UserBind: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestServerDown: with the server stopped, a question fails, the next one is refused at
// once by the back-off, and once the server is back a question gets through.
func TestServerDown(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	dn := s.AddUser(t, "alice", "alice-pw", false, nil, nil, nil)
	ctx := ctx30(t)
	p := newPool(t, service(s))
	// A back-off long enough that a loaded machine cannot outlast it between two
	// questions.
	p.health = health.New("ldap "+p.server, time.Second, 2*time.Second)
	if err := p.UserBind(ctx, dn, []byte("alice-pw")); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	err := p.UserBind(ctx, dn, []byte("alice-pw"))
	if err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("server down: %v, want a failure", err)
	}
	if _, err := p.Search(ctx, "", "(uid=alice)", nil, 1); !errors.Is(err, health.ErrBackoff) {
		t.Fatalf("second question: %v, want ErrBackoff", err)
	}
	if h := p.Health(); h.Up || h.Failures == 0 || h.LastErr == "" {
		t.Errorf("health while down: %+v", h)
	}
	s.Restart(t)
	var lastErr error
	for range 100 {
		if lastErr = p.UserBind(ctx, dn, []byte("alice-pw")); lastErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("after restart: %v", lastErr)
	}
	if !p.Health().Up {
		t.Errorf("health after recovery: %+v", p.Health())
	}
}

// TestStalePooledConnection: a pooled connection cut by a server restart is replaced
// without failing the question.
func TestStalePooledConnection(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	ctx := ctx30(t)
	p := newPool(t, service(s))
	if _, err := p.Search(ctx, "", "(uid=x)", nil, 1); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if _, err := p.Search(ctx, "", "(uid=x)", nil, 1); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

func TestBusy(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	ctx := ctx30(t)
	cfg := service(s)
	cfg.PoolSize, cfg.AcquireTimeout = 2, 50*time.Millisecond
	p := newPool(t, cfg)
	// Take both slots, as two questions in progress would.
	p.slots <- struct{}{}
	p.slots <- struct{}{}
	_, err := p.Search(ctx, "", "(uid=x)", nil, 1)
	if !errors.Is(err, health.ErrBusy) {
		t.Fatalf("saturated pool: %v, want ErrBusy", err)
	}
	if !p.Health().Up {
		t.Errorf("a busy pool is not a failure: %+v", p.Health())
	}
	<-p.slots
	if _, err := p.Search(ctx, "", "(uid=x)", nil, 1); err != nil {
		t.Fatalf("with a slot free: %v", err)
	}
	<-p.slots
}

// TestNoAnswer: a server that accepts connections and never answers fails the question
// at the query timeout; a caller that gives up first is not a server failure.
func TestNoAnswer(t *testing.T) {
	addr := silentServer(t)
	patient := newPool(t, Config{Server: addr, BaseDN: "dc=x", QueryTimeout: 30 * time.Second})
	cctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := patient.Search(cctx, "", "(uid=x)", nil, 1); err == nil {
		t.Fatal("search answered by a silent server")
	}
	if !patient.Health().Up {
		t.Errorf("a caller giving up is not a server failure: %+v", patient.Health())
	}

	p := newPool(t, Config{Server: addr, BaseDN: "dc=x", QueryTimeout: 300 * time.Millisecond})
	_, err := p.Search(ctx30(t), "", "(uid=x)", nil, 1)
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("silent server: %v, want a timeout", err)
	}
	if p.Health().Up {
		t.Errorf("a silent server is a failure: %+v", p.Health())
	}
}

// silentServer listens on a loopback port, accepts connections and never answers; it
// returns the address.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

// TestConcurrent: binds and searches from many goroutines share a small pool; every
// search runs as the service account (it alone reads userPassword), so no user's bind
// leaked into a pooled connection.
func TestConcurrent(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	dn := s.AddUser(t, "alice", "alice-pw", false, nil, nil, nil)
	ctx := ctx30(t)
	cfg := service(s)
	cfg.PoolSize, cfg.AcquireTimeout = 2, 10*time.Second
	p := newPool(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 20 {
		wg.Go(func() {
			for j := range 5 {
				pw := "alice-pw"
				if (i+j)%2 == 1 {
					pw = "wrong"
				}
				if err := p.UserBind(ctx, dn, []byte(pw)); (err == nil) != (pw == "alice-pw") {
					errs <- fmt.Errorf("bind with %s: %v", pw, err)
				}
				e, err := p.Read(ctx, dn, []string{"userPassword"})
				if err != nil || e == nil || len(e.Values("userPassword")) != 1 {
					errs <- fmt.Errorf("read as the service account: %+v, %v", e, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFailedRebindClosesConnection: when the service account's bind fails after a user's
// bind (here: its password changed on the server meanwhile), the connection still bound as
// the user is closed, never reused: the next question needs a new connection, which cannot
// bind either, so it fails instead of running as the user.
func TestFailedRebindClosesConnection(t *testing.T) {
	s := testsvc.StartSlapd(t, nil)
	aliceDN := s.AddUser(t, "alice", "alice-pw", false, nil, nil, nil)
	ctx := ctx30(t)
	cfg := service(s)
	cfg.PoolSize = 1
	p := newPool(t, cfg)
	if err := p.UserBind(ctx, aliceDN, []byte("alice-pw")); err != nil {
		t.Fatalf("first bind: %v", err)
	}
	admin := s.Conn(t)
	mod := goldap.NewModifyRequest(s.ServiceDN, nil)
	mod.Replace("userPassword", []string{"a-new-service-password"})
	if err := admin.Modify(mod); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	// Alice's bind succeeds on the pooled connection; binding back as the service account
	// fails, so the connection must not return to the pool.
	_ = p.UserBind(ctx, aliceDN, []byte("alice-pw"))
	if e, err := p.Read(ctx, aliceDN, []string{"uid"}); err == nil {
		t.Fatalf("a question after a failed rebind succeeded (%+v): it ran on a connection bound as the user", e)
	}
}
