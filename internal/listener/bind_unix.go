//go:build unix

package listener

import "syscall"

func setV6Only(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1)
}

// v6Only reports the IPV6_V6ONLY option of a socket (for tests).
func v6Only(fd uintptr) (bool, error) {
	v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY)
	return v != 0, err
}
