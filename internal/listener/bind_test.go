package listener

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"syscall"
	"testing"
)

func TestBindNetwork(t *testing.T) {
	for _, tc := range []struct {
		bind, want string
	}{
		{"0.0.0.0:1883", "tcp4"},
		{"127.0.0.1:1883", "tcp4"},
		{"[::ffff:127.0.0.1]:1883", "tcp4"},
		{"[::]:1883", "tcp6"},
		{"[::1]:1883", "tcp6"},
		{"[fe80::1%lo]:1883", "tcp6"},
		{":1883", "tcp"},
		{"localhost:1883", "tcp"},
	} {
		t.Run(tc.bind, func(t *testing.T) {
			got, err := bindNetwork(tc.bind)
			if err != nil || got != tc.want {
				t.Fatalf("bindNetwork(%q) = %q, %v; want %q", tc.bind, got, err, tc.want)
			}
		})
	}
	if _, err := bindNetwork("1883"); err == nil {
		t.Fatal("a bind address without a host:port form must fail")
	}
}

// haveIPv6Loopback skips the test when this machine cannot listen on [::1].
func haveIPv6Loopback(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	_ = l.Close()
}

// TestBindExactlyWhatItSays binds TCP and WebSocket listeners on the wildcard address of
// one family and checks, with real connections over loopback, that the other family's
// loopback address is refused while its own is served. An empty host still means both.
func TestBindExactlyWhatItSays(t *testing.T) {
	type listenerKind struct {
		name string
		open func(t *testing.T, bind string) Listener
	}
	kinds := []listenerKind{
		{"tcp", func(t *testing.T, bind string) Listener {
			l, err := NewTCP(context.Background(), TCPOptions{Name: "bind", Bind: bind})
			if err != nil {
				t.Fatalf("NewTCP(%s): %v", bind, err)
			}
			return l
		}},
		{"ws", func(t *testing.T, bind string) Listener {
			return newWSListener(t, WSOptions{Name: "bind", Bind: bind})
		}},
	}
	for _, tc := range []struct {
		bind    string
		serves  []string // loopback hosts that must connect
		refuses []string // loopback hosts that must be refused
	}{
		{bind: "0.0.0.0:0", serves: []string{"127.0.0.1"}, refuses: []string{"::1"}},
		{bind: "[::]:0", serves: []string{"::1"}, refuses: []string{"127.0.0.1"}},
		{bind: "127.0.0.1:0", serves: []string{"127.0.0.1"}, refuses: []string{"::1"}},
		{bind: "[::1]:0", serves: []string{"::1"}, refuses: []string{"127.0.0.1"}},
		{bind: ":0", serves: []string{"127.0.0.1", "::1"}},
	} {
		for _, k := range kinds {
			t.Run(k.name+" "+tc.bind, func(t *testing.T) {
				if slices.Contains(tc.serves, "::1") || slices.Contains(tc.refuses, "::1") {
					haveIPv6Loopback(t)
				}
				checkGoroutines(t)
				l := k.open(t, tc.bind)
				t.Cleanup(func() { _ = l.Close() })
				got := make(chan struct{}, 4)
				serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) {
					_ = c.Close()
					got <- struct{}{}
				})
				port := l.Addr().(*net.TCPAddr).Port
				d := net.Dialer{Timeout: patience}
				for _, h := range tc.serves {
					addr := net.JoinHostPort(h, strconv.Itoa(port))
					c, err := d.Dial("tcp", addr)
					if err != nil {
						t.Fatalf("bind %s: dial %s: %v", tc.bind, addr, err)
					}
					_ = c.Close()
				}
				for _, h := range tc.refuses {
					addr := net.JoinHostPort(h, strconv.Itoa(port))
					c, err := d.Dial("tcp", addr)
					if err == nil {
						_ = c.Close()
						t.Fatalf("bind %s: a connection to %s was accepted", tc.bind, addr)
					}
					if !errors.Is(err, syscall.ECONNREFUSED) {
						t.Fatalf("bind %s: dial %s: %v, want connection refused", tc.bind, addr, err)
					}
				}
			})
		}
	}
}

// TestBindV6OnlySocketOption checks the socket option itself on an IPv6 listener.
func TestBindV6OnlySocketOption(t *testing.T) {
	haveIPv6Loopback(t)
	ln, err := listen(context.Background(), "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on bool
	var gerr error
	if err := rc.Control(func(fd uintptr) { on, gerr = v6Only(fd) }); err != nil {
		t.Fatal(err)
	}
	if errors.Is(gerr, errors.ErrUnsupported) {
		t.Skip(gerr)
	}
	if gerr != nil || !on {
		t.Fatalf("IPV6_V6ONLY = %v (%v), want on", on, gerr)
	}
}
