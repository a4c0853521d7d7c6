package testsvc

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisNeed returns the path of a server binary, or skips (fails under REQUIRE_TEST_SERVICES)
// the test when it is not installed.
func redisNeed(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		unavailable(t, "%s not installed: %v", bin, err)
	}
	return p
}

// RedisOptions says how StartRedisWith configures its server. The zero value is a plain
// TCP server, as StartRedis starts.
type RedisOptions struct {
	// PKI, when set, makes the server speak TLS only (the plain port is closed) with PKI's
	// server certificate; clients verify it with PKI.CAFile.
	PKI *PKI
	// RequireClientCert makes the TLS server refuse a client that presents no certificate
	// signed by PKI's CA (tls-auth-clients yes). Otherwise a client certificate is optional.
	RequireClientCert bool
}

// StartRedis starts a redis-server with no persistence on a free 127.0.0.1 port and waits
// until it answers PING. stop kills it (the test can then check what a client does while the
// server is down); it is also registered with t.Cleanup, and calling it twice is harmless.
// RestartRedis brings a stopped server back on the same address.
func StartRedis(t testing.TB) (addr string, stop func()) {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartRedisTLS starts a redis-server like StartRedis that accepts only TLS connections,
// with pki's server certificate (valid for 127.0.0.1, ::1 and localhost). A client
// certificate is optional.
func StartRedisTLS(t testing.TB, pki *PKI) (addr string, stop func()) {
	t.Helper()
	return StartRedisWith(t, RedisOptions{PKI: pki})
}

// StartRedisWith starts a redis-server configured by o; see StartRedis.
func StartRedisWith(t testing.TB, o RedisOptions) (addr string, stop func()) {
	t.Helper()
	if o.RequireClientCert && o.PKI == nil {
		t.Fatalf("redis: RequireClientCert needs a PKI")
	}
	bin := redisNeed(t, "redis-server")
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	return addr, startRedisAt(t, bin, t.TempDir(), addr, o)
}

// RestartRedis starts a plain redis-server again on addr (after stop), empty, and waits
// until it answers PING.
func RestartRedis(t testing.TB, addr string) (stop func()) {
	t.Helper()
	return startRedisAt(t, redisNeed(t, "redis-server"), t.TempDir(), addr, RedisOptions{})
}

func startRedisAt(t testing.TB, bin, dir, addr string, o RedisOptions) func() {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("redis address %q: %v", addr, err)
	}
	args := redisBaseArgs(dir)
	var tc *tls.Config
	if o.PKI != nil {
		auth := "optional"
		if o.RequireClientCert {
			auth = "yes"
		}
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", o.PKI.ServerCert, "--tls-key-file", o.PKI.ServerKey,
			"--tls-ca-cert-file", o.PKI.CAFile, "--tls-auth-clients", auth)
		tc = redisClientTLS(t, o.PKI)
	} else {
		args = append(args, "--port", port)
	}
	return redisRun(t, bin, args, func() error { return redisPing(addr, tc) })
}

// redisBaseArgs are the options every test server gets: no persistence, loopback only,
// log to stdout.
func redisBaseArgs(dir string) []string {
	return []string{"--save", "", "--appendonly", "no", "--dir", dir,
		"--bind", "127.0.0.1", "--protected-mode", "yes", "--logfile", ""}
}

// redisClientTLS is what the readiness check presents to a TLS server: pki's CA as the
// only root, and its client certificate.
func redisClientTLS(t testing.TB, pki *PKI) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("redis: no certificate in %s", pki.CAFile)
	}
	pair, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// redisRun starts bin with args and waits (at most 10 seconds) until ready succeeds. The
// returned stop kills the process and waits for it; it is registered with t.Cleanup and
// may be called more than once.
func redisRun(t testing.TB, bin string, args []string, ready func() error) func() {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &redisLog{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", filepath.Base(bin), err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-done
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ready()
		if err == nil {
			return stop
		}
		select {
		case <-done:
			t.Fatalf("%s %s exited: %s", filepath.Base(bin), strings.Join(args, " "), out)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("%s %s not ready: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisLog collects a server's output for failure messages; written by the exec
// package's copying goroutine, read by the test.
type redisLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *redisLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *redisLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// redisPing sends one PING (over TLS when tc is set) and expects PONG.
func redisPing(addr string, tc *tls.Config) error {
	v, err := redisCommand(addr, tc, "PING")
	if err != nil {
		return err
	}
	if len(v) != 1 || v[0] != "PONG" {
		return fmt.Errorf("PING answered %q", v)
	}
	return nil
}

// redisCommand sends one command as a RESP array and returns the reply flattened into
// strings (a nil bulk string is ""). An error reply is an error.
func redisCommand(addr string, tc *tls.Config, args ...string) ([]string, error) {
	return redisCommandAuth(addr, tc, "", args...)
}

// redisCommandAuth is redisCommand after an AUTH with password, when it is not empty.
func redisCommandAuth(addr string, tc *tls.Config, password string, args ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tlsConn := tls.Client(c, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tlsConn
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	var b strings.Builder
	write := func(args ...string) {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if password != "" {
		write("AUTH", password)
	}
	write(args...)
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var out []string
	if password != "" {
		if err := redisRead(r, &out); err != nil {
			return nil, err
		}
		out = out[:0]
	}
	err = redisRead(r, &out)
	return out, err
}

// redisRead reads one RESP2 reply, appending its strings to out.
func redisRead(r *bufio.Reader, out *[]string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		*out = append(*out, line[1:])
	case '-':
		return fmt.Errorf("redis error reply: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			*out = append(*out, "")
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		*out = append(*out, string(buf[:n]))
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("bad array length %q", line)
		}
		for range n {
			if err := redisRead(r, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// StartRedisSentinel starts a plain master (as StartRedis) and one Redis Sentinel, both
// on free 127.0.0.1 ports, the sentinel monitoring the master with quorum 1 (no replicas,
// so no failover ever happens). It returns the sentinel's address and the master's name
// and waits until the sentinel reports the master's address. Both are killed when the
// test ends.
func StartRedisSentinel(t testing.TB) (sentinelAddr, masterName string) {
	t.Helper()
	return StartRedisSentinelAuth(t, "")
}

// StartRedisSentinelAuth is StartRedisSentinel with a sentinel that requires password
// (requirepass) from its clients; "" requires none.
func StartRedisSentinelAuth(t testing.TB, password string) (sentinelAddr, masterName string) {
	t.Helper()
	bin := redisNeed(t, "redis-server")
	masterAddr, _ := StartRedis(t)
	mhost, mport, _ := net.SplitHostPort(masterAddr)
	masterName = "rampart-master"
	dir := t.TempDir()
	port := freePort(t)
	sentinelAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Sentinel rewrites its configuration file, so it lives in the temporary directory.
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile \"\"\n"+
		"sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 60000\n",
		port, dir, masterName, mhost, mport, masterName)
	if password != "" {
		text += fmt.Sprintf("requirepass %q\n", password)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatalf("redis sentinel: %v", err)
	}
	redisRun(t, bin, []string{conf, "--sentinel"}, func() error {
		v, err := redisCommandAuth(sentinelAddr, nil, password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)
		if err != nil {
			return err
		}
		if len(v) != 2 || net.JoinHostPort(v[0], v[1]) != masterAddr {
			return fmt.Errorf("sentinel reports master %q, want %s", v, masterAddr)
		}
		return nil
	})
	return sentinelAddr, masterName
}

// StartRedisCluster starts a Redis Cluster of three masters without replicas on free
// 127.0.0.1 ports, joins them with redis-cli --cluster create and waits until every node
// reports cluster_state:ok. It returns the nodes' addresses (the seeds a client starts
// from). Every node is killed when the test ends.
func StartRedisCluster(t testing.TB) (seeds []string) {
	t.Helper()
	bin := redisNeed(t, "redis-server")
	cli := redisNeed(t, "redis-cli")
	const nodes = 3
	ports := freePorts(t, 2*nodes) // a client port and a cluster bus port each
	for i := range nodes {
		dir := t.TempDir()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2*i]))
		args := append(redisBaseArgs(dir), "--port", strconv.Itoa(ports[2*i]),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(ports[2*i+1]), "--cluster-node-timeout", "5000")
		redisRun(t, bin, args, func() error { return redisPing(addr, nil) })
		seeds = append(seeds, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--cluster", "create"}, seeds...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range seeds {
		for {
			v, err := redisCommand(addr, nil, "CLUSTER", "INFO")
			if err == nil && len(v) == 1 && strings.Contains(v[0], "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster node %s not ok: %q, %v", addr, v, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return seeds
}
