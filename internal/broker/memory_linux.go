package broker

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// availableMemory returns how much memory the process may use: the physical memory,
// lowered by a cgroup limit (a container's) and by GOMEMLIMIT when they are smaller.
func availableMemory() int64 {
	n := int64(defaultMemory)
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil && si.Totalram > 0 {
		n = int64(si.Totalram) * int64(si.Unit)
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(f); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && v < n {
				n = v
			}
		}
	}
	if l := debug.SetMemoryLimit(-1); l > 0 && l < n {
		n = l
	}
	return n
}
