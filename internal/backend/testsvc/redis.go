package testsvc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisNeed returns the path of a server binary, or skips (fails under REQUIRE_TEST_SERVICES)
// the test when it is not installed.
func redisNeed(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("REQUIRE_TEST_SERVICES") != "" {
			t.Fatalf("%s not found and REQUIRE_TEST_SERVICES is set: %v", bin, err)
		}
		t.Skipf("%s not installed: %v", bin, err)
	}
	return p
}

// redisFreePort returns a loopback TCP port that was free a moment ago.
func redisFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartRedis starts a redis-server with no persistence on a free 127.0.0.1 port and waits
// until it answers PING. stop kills it (the test can then check what a client does while the
// server is down); it is also registered with t.Cleanup, and calling it twice is harmless.
// RestartRedis brings a stopped server back on the same address.
func StartRedis(t testing.TB) (addr string, stop func()) {
	t.Helper()
	bin := redisNeed(t, "redis-server")
	dir := t.TempDir()
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(redisFreePort(t)))
	stop = startRedisAt(t, bin, dir, addr)
	return addr, stop
}

// RestartRedis starts a redis-server again on addr (after stop), empty, and waits until it
// answers PING.
func RestartRedis(t testing.TB, addr string) (stop func()) {
	t.Helper()
	return startRedisAt(t, redisNeed(t, "redis-server"), t.TempDir(), addr)
}

func startRedisAt(t testing.TB, bin, dir, addr string) func() {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("redis address %q: %v", addr, err)
	}
	cmd := exec.Command(bin, "--save", "", "--appendonly", "no", "--dir", dir,
		"--bind", "127.0.0.1", "--port", port, "--protected-mode", "yes", "--logfile", "")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(addr) == nil {
			return stop
		}
		select {
		case <-done:
			t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("redis-server on %s did not answer PING: %s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingRedis sends one inline PING and expects +PONG.
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
