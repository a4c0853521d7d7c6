package listener

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseAccessRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []string
		addr  string
		want  bool
		err   string
	}{
		{"no rules allow everyone", nil, "203.0.113.9", true, ""},
		{"first match wins", []string{"allow 10.0.0.0/8", "deny all"}, "10.1.2.3", true, ""},
		{"falls through to deny all", []string{"allow 10.0.0.0/8", "deny all"}, "11.0.0.1", false, ""},
		{"single address", []string{"deny 192.0.2.7", "allow all"}, "192.0.2.7", false, ""},
		{"single address, neighbour", []string{"deny 192.0.2.7", "allow all"}, "192.0.2.8", true, ""},
		{"IPv4-mapped IPv6 peer matches an IPv4 rule", []string{"allow 127.0.0.0/8", "deny all"}, "::ffff:127.0.0.1", true, ""},
		{"IPv6", []string{"allow ::1", "deny all"}, "::1", true, ""},
		{"unmatched is allowed", []string{"deny 10.0.0.0/8"}, "192.0.2.1", true, ""},
		{"bad verb", []string{"permit all"}, "", false, `"permit" is neither allow nor deny`},
		{"bad target", []string{"allow ten.0.0.0/8"}, "", false, "is not an address, a CIDR or all"},
		{"host bits set", []string{"allow 10.0.0.1/8"}, "", false, "did you mean 10.0.0.0/8?"},
		{"missing target", []string{"deny"}, "", false, "want \"allow|deny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAccessRules(tc.rules)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseAccessRules(%q) = %v, want an error with %q", tc.rules, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Allowed(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Fatalf("Allowed(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

// dialFrom connects from a chosen loopback source address.
func dialFrom(t *testing.T, src string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: patience, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestAccessRulesOnAccept(t *testing.T) {
	rules, err := ParseAccessRules([]string{"allow 127.0.0.2", "deny all"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewTCP(context.Background(), TCPOptions{Name: "acl", Bind: "127.0.0.1:0", Access: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var handled atomic.Int32
	serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) {
		handled.Add(1)
		_, _ = c.Write([]byte{'k'})
		_ = c.Close()
	})

	t.Run("[SECURITY] a denied address is closed before anything is read", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", l.Addr())
		_ = c.SetReadDeadline(time.Now().Add(patience))
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil {
			t.Fatal("a denied client was served")
		}
		if handled.Load() != 0 {
			t.Fatal("the handler saw a denied connection")
		}
	})

	t.Run("an allowed address is served", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", l.Addr())
		_ = c.SetReadDeadline(time.Now().Add(patience))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil || b[0] != 'k' {
			t.Fatalf("allowed client: %v", err)
		}
	})
}

func TestAccessRulesOnWebSocket(t *testing.T) {
	rules, err := ParseAccessRules([]string{"deny 127.0.0.1", "allow all"})
	if err != nil {
		t.Fatal(err)
	}
	l := newWSListener(t, WSOptions{Name: "acl", Access: rules})
	var handled atomic.Int32
	serveListener(t, l, func(_ context.Context, c net.Conn, _ Meta) { handled.Add(1); _ = c.Close() })
	c := dialFrom(t, "127.0.0.1", l.Addr())
	_, _ = c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(patience))
	var b [1]byte
	if n, _ := c.Read(b[:]); n != 0 {
		t.Fatal("a denied peer got an HTTP answer")
	}
	if handled.Load() != 0 {
		t.Fatal("the handler saw a denied connection")
	}
}
