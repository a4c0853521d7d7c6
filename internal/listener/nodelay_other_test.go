//go:build !linux

package listener

import (
	"errors"
	"fmt"
	"net"
)

func noDelay(net.Conn) (bool, error) {
	return false, fmt.Errorf("reading TCP_NODELAY is only implemented on linux: %w", errors.ErrUnsupported)
}
