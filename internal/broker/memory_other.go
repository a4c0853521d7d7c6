//go:build !linux

package broker

import "runtime/debug"

// availableMemory returns GOMEMLIMIT when it is set, otherwise a fixed assumption.
func availableMemory() int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < defaultMemory {
		return l
	}
	return defaultMemory
}
