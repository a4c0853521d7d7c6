package listener

import (
	"fmt"
	"net"
	"syscall"
)

// noDelay reports whether TCP_NODELAY is set on c's socket.
func noDelay(c net.Conn) (bool, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false, fmt.Errorf("%T is not a *net.TCPConn", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("syscall conn: %w", err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	}); err != nil {
		return false, fmt.Errorf("control: %w", err)
	}
	if serr != nil {
		return false, fmt.Errorf("getsockopt TCP_NODELAY: %w", serr)
	}
	return v != 0, nil
}
