//go:build !unix

package listener

import "errors"

// setV6Only leaves the option to Go, which sets IPV6_V6ONLY on every "tcp6" socket.
func setV6Only(uintptr) error { return nil }

// v6Only is not implemented here (for tests).
func v6Only(uintptr) (bool, error) { return false, errors.ErrUnsupported }
