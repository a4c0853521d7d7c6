package testsvc

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// requireEnv, when set, turns a missing service into a test failure instead of a skip.
const requireEnv = "REQUIRE_TEST_SERVICES"

// unavailable skips the test, or fails it when REQUIRE_TEST_SERVICES is set.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if strings.TrimSpace(os.Getenv(requireEnv)) != "" {
		t.Fatalf("%s (%s is set)", msg, requireEnv)
	}
	t.Skipf("%s; skipping (set %s to make this a failure)", msg, requireEnv)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago: all n
// listeners are held until every port is chosen, so no port is handed out twice.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
