package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

const ioTimeout = 10 * time.Second

// serverResult is the outcome of one server-side handshake.
type serverResult struct {
	state tls.ConnectionState
	err   error
}

// testServer is a TLS server on a loopback port that handshakes each connection,
// reports the outcome, writes "k" after a successful handshake and closes.
type testServer struct {
	addr    string
	results chan serverResult
}

func startServer(t *testing.T, cfg *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), results: make(chan serverResult, 16)}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(ioTimeout))
				tc := tls.Server(nc, cfg)
				err := tc.Handshake()
				r := serverResult{err: err}
				if err == nil {
					r.state = tc.ConnectionState()
					_, _ = tc.Write([]byte("k"))
					_ = tc.Close() // sends close_notify
				}
				select {
				case s.results <- r:
				case <-done:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = ln.Close()
		<-stopped
	})
	return s
}

// next waits (bounded) for the outcome of the next server-side handshake.
func (s *testServer) next(t *testing.T) serverResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(ioTimeout):
		t.Fatal("timed out waiting for the server handshake")
		return serverResult{}
	}
}

// dial connects a crypto/tls client, handshakes and reads the server's "k"; any failure,
// including a refusal the server sends after the client's side of a TLS 1.3 handshake
// completed, is returned.
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer nc.Close()
	tc := nc.(*tls.Conn)
	_ = tc.SetDeadline(time.Now().Add(ioTimeout))
	buf := make([]byte, 1)
	// The server closes right after "k", so the byte may come with io.EOF.
	if n, err := tc.Read(buf); n != 1 {
		return tls.ConnectionState{}, err
	}
	if buf[0] != 'k' {
		return tls.ConnectionState{}, errors.New("unexpected byte from server")
	}
	return tc.ConnectionState(), nil
}

// handshake runs one client handshake against a fresh server with serverCfg and returns
// both sides' outcomes.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (tls.ConnectionState, serverResult, error) {
	t.Helper()
	s := startServer(t, serverCfg)
	cs, err := dial(s.addr, clientCfg)
	return cs, s.next(t), err
}

// mustNewServer builds a server configuration or fails the test.
func mustNewServer(t *testing.T, o ServerOptions) *tls.Config {
	t.Helper()
	cfg, err := NewServer(o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return cfg
}

// expectRefused asserts that both sides saw the handshake fail.
func expectRefused(t *testing.T, clientErr error, sr serverResult) {
	t.Helper()
	if clientErr == nil {
		t.Error("client: handshake succeeded, want refusal")
	}
	if sr.err == nil {
		t.Errorf("server: handshake succeeded (version %x, suite %s), want refusal", sr.state.Version, tls.CipherSuiteName(sr.state.CipherSuite))
	}
}

// expectAccepted asserts that both sides completed the handshake.
func expectAccepted(t *testing.T, clientErr error, sr serverResult) {
	t.Helper()
	if clientErr != nil {
		t.Errorf("client: %v", clientErr)
	}
	if sr.err != nil {
		t.Errorf("server: %v", sr.err)
	}
}
