package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// bindNetwork is the network a bind address is listened on, so that a listener binds
// exactly what its address says: "tcp4" for an IPv4 literal (0.0.0.0 included, so that it
// does not also take [::]), "tcp6" for an IPv6 literal (with IPV6_V6ONLY, so that [::]
// does not also take 0.0.0.0), and "tcp" for anything else (an empty host, which means
// every address of both families, or a host name such as localhost).
func bindNetwork(bind string) (string, error) {
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("bind address %q: %w", bind, err)
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return "tcp", nil
	case a.Is4() || a.Is4In6():
		return "tcp4", nil // ::ffff:a.b.c.d is an IPv4 address spelt in IPv6
	}
	return "tcp6", nil
}

// listen binds a TCP listening socket on bind as bindNetwork says. Every listener binds
// through it.
func listen(ctx context.Context, bind string) (net.Listener, error) {
	network, err := bindNetwork(bind)
	if err != nil {
		return nil, err
	}
	if network == "tcp4" {
		if a, err := netip.ParseAddrPort(bind); err == nil && a.Addr().Is4In6() {
			bind = netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()
		}
	}
	// MQTT has its own keep alive; TCP keep-alive probes would only cost setsockopt calls
	// on every accepted connection. Go enables TCP_NODELAY on every TCP connection.
	lc := net.ListenConfig{KeepAlive: -1}
	if network == "tcp6" {
		// Go sets IPV6_V6ONLY on "tcp6" sockets itself; setting it here as well keeps
		// the promise independent of that detail (TestBindV6OnlySocketOption checks it).
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setV6Only(fd) }); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set IPV6_V6ONLY: %w", serr)
			}
			return nil
		}
	}
	ln, err := lc.Listen(ctx, network, bind)
	if err != nil {
		return nil, err
	}
	return ln, nil
}
