package main

// Helpers for the integration tests (serve_integration_test.go): TestMain builds the
// rampart binary once; brokerProc runs it as a child process with a configuration file in
// a temporary directory and reads the bound addresses from its log; rawClient speaks MQTT
// through the project's packet codec over a plain socket. Every wait has a deadline; none
// of them is an assertion that something was fast.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Bounds of the waits. They are generous because the tests run with -race (the child is
// built with -race too) on a small shared machine.
const (
	startTimeout = 60 * time.Second // from exec to every listener logged
	exitTimeout  = 30 * time.Second // from a signal to the process exit
	waitPacket   = 20 * time.Second // for one expected packet
	runTimeout   = 60 * time.Second // for a short-lived child (--check-config, a mosquitto client)
)

// rampartBin is the binary built by TestMain.
var rampartBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rampart-serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := buildRampart(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain: build rampart:", err)
		return 1
	}
	rampartBin = bin
	return m.Run()
}

// buildRampart builds this package into dir, with the race detector when the test binary
// has it, so that a data race in the broker fails the integration tests as well.
func buildRampart(dir string) (string, error) {
	goTool, err := exec.LookPath("go") // go test puts its own GOROOT/bin first on PATH
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rampart")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, append(args, ".")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// childEnv is the environment of a child: this process's, without any RAMPART_ variable
// (the broker refuses one that names no configuration key, and a developer's shell may
// hold some), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// syncBuffer is a bytes.Buffer safe for one writer (the child's output) and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is the configuration the tests start from: a TCP listener on an ephemeral
// loopback port, the WebSocket listener off, data in dataDir, no $SYS publishing. extra
// is appended at the top level and may override nothing already here (the file is strict
// about duplicate keys), so a test that needs other listeners writes its own file.
func testConfig(dataDir, durability string) string {
	return fmt.Sprintf(`node:
  data_dir: %s
  durability: %s
log:
  level: info
  format: text
listeners:
  tcp:
    default:
      bind: 127.0.0.1:0
      # Every test client dials from 127.0.0.1; storms of them stand for many devices.
      max_preauth_connections_per_ip: infinity
  ws:
    default:
      enable: false
      bind: 127.0.0.1:0
sys_topics:
  sys_msg_interval: 0
`, strconv.Quote(dataDir), durability)
}

// writeConfig writes text to a new file in a temporary directory and returns its path.
func writeConfig(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// brokerProc is one `rampart serve` child process.
type brokerProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited and waitErr is set
	// waitErr is the result of cmd.Wait; read it only after done is closed.
	waitErr error
	addrs   map[string]string // listener name (tcp:default) -> bound address
}

var listeningRE = regexp.MustCompile(`msg=listening listener=(\S+) addr=(\S+)`)

// startBroker runs `rampart serve --config cfgPath` and waits until every listener in
// listeners (e.g. "tcp:default") has logged its address. The process is killed, if it
// still runs, when the test ends; its log is printed when the test failed.
func startBroker(t testing.TB, cfgPath string, listeners ...string) *brokerProc {
	t.Helper()
	return startBrokerEnv(t, cfgPath, nil, listeners...)
}

// startBrokerEnv is startBroker with extra environment variables for the child.
func startBrokerEnv(t testing.TB, cfgPath string, env []string, listeners ...string) *brokerProc {
	t.Helper()
	b := &brokerProc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{}),
		addrs: map[string]string{}}
	b.cmd = exec.Command(rampartBin, "serve", "--config", cfgPath)
	b.cmd.Env = childEnv(env...)
	b.cmd.Dir = filepath.Dir(cfgPath)
	b.cmd.Stdout = b.stdout
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start rampart: %v", err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(b.cleanup)

	deadline := time.Now().Add(startTimeout)
	for {
		for _, m := range listeningRE.FindAllStringSubmatch(b.stderr.String(), -1) {
			b.addrs[m[1]] = m[2]
		}
		missing := ""
		for _, l := range listeners {
			if _, ok := b.addrs[l]; !ok {
				missing = l
				break
			}
		}
		if missing == "" {
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("rampart exited (%v) before listener %s was listening", b.waitErr, missing)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener %s not listening within %v", missing, startTimeout)
		}
	}
}

// addr returns the bound address of a listener.
func (b *brokerProc) addr(listener string) string {
	b.t.Helper()
	a, ok := b.addrs[listener]
	if !ok {
		b.t.Fatalf("no address for listener %s", listener)
	}
	return a
}

// port returns the bound port of a listener as a string.
func (b *brokerProc) port(listener string) string {
	b.t.Helper()
	_, p, err := net.SplitHostPort(b.addr(listener))
	if err != nil {
		b.t.Fatal(err)
	}
	return p
}

// signal sends sig to the process.
func (b *brokerProc) signal(sig os.Signal) {
	b.t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when a signal ended
// it), failing the test when it still runs after d.
func (b *brokerProc) wait(d time.Duration) int {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(d):
		b.t.Fatalf("rampart still running %v after it was told to stop", d)
	}
	return b.cmd.ProcessState.ExitCode()
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (b *brokerProc) kill9() {
	b.t.Helper()
	b.signal(syscall.SIGKILL)
	if code := b.wait(exitTimeout); code != -1 {
		b.t.Fatalf("exit code %d after SIGKILL, want death by signal", code)
	}
}

func (b *brokerProc) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// cleanup stops the process when it still runs (SIGTERM, then SIGKILL), reports a data
// race the race-enabled child found, and prints the log when the test failed.
func (b *brokerProc) cleanup() {
	if !b.exited() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(exitTimeout):
			_ = b.cmd.Process.Kill()
			select {
			case <-b.done:
			case <-time.After(exitTimeout):
				b.t.Errorf("rampart (pid %d) did not die after SIGKILL", b.cmd.Process.Pid)
			}
		}
	}
	if strings.Contains(b.stderr.String(), "WARNING: DATA RACE") {
		b.t.Errorf("the broker process reported a data race")
	}
	if b.t.Failed() {
		b.t.Logf("rampart (pid %d) stderr:\n%s", b.cmd.Process.Pid, b.stderr.String())
		if out := b.stdout.String(); out != "" {
			b.t.Logf("rampart stdout:\n%s", out)
		}
	}
}

// runResult is what a short-lived child printed and how it exited.
type runResult struct {
	stdout, stderr string
	code           int
}

// runRampart runs the binary with args to completion, bounded by runTimeout.
func runRampart(t testing.TB, dir string, env []string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rampartBin, args...)
	cmd.Env = childEnv(env...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("rampart %v still running after %v\nstderr:\n%s", args, runTimeout, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run rampart %v: %v", args, err)
	}
	return runResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// rawFrame is one packet received by a rawClient.
type rawFrame struct {
	p   packet.Packet
	err error // the broker sent something the codec refuses
}

// rawClient is an MQTT client on the packet codec: the test controls every packet it
// sends and sees every packet it receives, including the DUP flag. A goroutine reads
// packets into frames.
type rawClient struct {
	t       testing.TB
	nc      net.Conn
	v       packet.Version
	frames  chan rawFrame
	quit    chan struct{}
	done    chan struct{} // closed when the reader goroutine ends
	closeMu sync.Once
	nextPID uint16
}

// dialRaw connects a socket to addr; packets are decoded as version v.
func dialRaw(t testing.TB, addr string, v packet.Version) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitPacket)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return rawOver(t, nc, v)
}

// rawOver runs a raw client over an established connection (a TLS one, say).
func rawOver(t testing.TB, nc net.Conn, v packet.Version) *rawClient {
	c := &rawClient{t: t, nc: nc, v: v, frames: make(chan rawFrame, 8192),
		quit: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

func (c *rawClient) readLoop() {
	defer close(c.done)
	rd := packet.NewReader(bufio.NewReader(c.nc), 0)
	for {
		p, err := rd.ReadPacket(c.v)
		var perr *packet.Error
		if err != nil && !errors.As(err, &perr) {
			return // connection closed or broken
		}
		select {
		case c.frames <- rawFrame{p: p, err: err}:
		case <-c.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *rawClient) close() {
	c.closeMu.Do(func() {
		close(c.quit)
		_ = c.nc.Close()
	})
	<-c.done
}

// pid returns a fresh packet identifier.
func (c *rawClient) pid() uint16 {
	c.nextPID++
	if c.nextPID == 0 {
		c.nextPID = 1
	}
	return c.nextPID
}

// send encodes and writes p, failing the test on an error.
func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	b, err := packet.Encode(p, c.v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", p.Type(), err)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitPacket))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("send %v: %v", p.Type(), err)
	}
}

// next returns the next packet, or ok false when the connection closed first. It fails
// the test when nothing happens within d or the packet does not decode.
func (c *rawClient) next(d time.Duration) (packet.Packet, bool) {
	c.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var f rawFrame
	select {
	case f = <-c.frames:
	case <-c.done:
		select {
		case f = <-c.frames:
		default:
			return nil, false
		}
	case <-timer.C:
		c.t.Fatalf("no packet within %v", d)
	}
	if f.err != nil {
		c.t.Fatalf("broker sent an undecodable packet: %v", f.err)
	}
	return f.p, true
}

// expect returns the next packet as a T, failing otherwise.
func expect[T packet.Packet](c *rawClient) T {
	c.t.Helper()
	p, ok := c.next(waitPacket)
	if !ok {
		c.t.Fatalf("connection closed, want %T", *new(T))
	}
	v, ok := p.(T)
	if !ok {
		c.t.Fatalf("got %s, want %T", describe(p), *new(T))
	}
	return v
}

// connect sends cp and returns the CONNACK, failing unless it accepts.
func (c *rawClient) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	cp.Version = c.v
	c.send(cp)
	ack := expect[*packet.Connack](c)
	if ack.ReasonCode != packet.Success {
		c.t.Fatalf("CONNACK 0x%02X, want success", byte(ack.ReasonCode))
	}
	return ack
}

// subscribe subscribes to filter at qos and fails unless the SUBACK grants qos.
func (c *rawClient) subscribe(filter string, qos byte) {
	c.t.Helper()
	s := &packet.Subscribe{PacketID: c.pid(), Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}
	c.send(s)
	ack := expect[*packet.Suback](c)
	if ack.PacketID != s.PacketID || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != packet.ReasonCode(qos) {
		c.t.Fatalf("SUBACK %+v for SUBSCRIBE %d to %q at QoS %d", ack, s.PacketID, filter, qos)
	}
}

// publish1 publishes at QoS 1, waits for the PUBACK and returns its reason code, failing
// unless it is success or, when noMatchOK, 0x10 (no matching subscribers).
func (c *rawClient) publish1(topic string, payload []byte, retain, noMatchOK bool) packet.ReasonCode {
	c.t.Helper()
	p := &packet.Publish{QoS: 1, Topic: topic, Retain: retain, PacketID: c.pid(), Payload: payload}
	c.send(p)
	ack := expect[*packet.Puback](c)
	ok := ack.ReasonCode == packet.Success || noMatchOK && ack.ReasonCode == packet.NoMatchingSubscribers
	if ack.PacketID != p.PacketID || !ok {
		c.t.Fatalf("PUBACK %d 0x%02X for PUBLISH %d to %s, want success", ack.PacketID, byte(ack.ReasonCode), p.PacketID, topic)
	}
	return ack.ReasonCode
}

// disconnect sends a normal DISCONNECT and waits for the broker to close the socket.
func (c *rawClient) disconnect() {
	c.t.Helper()
	c.send(&packet.Disconnect{ReasonCode: packet.Success})
	select {
	case <-c.done:
	case <-time.After(waitPacket):
		c.t.Fatalf("connection still open %v after DISCONNECT", waitPacket)
	}
	c.close()
}

// v5Connect is an MQTT 5 CONNECT; a persistent one (cleanStart false) has a session
// expiry interval of expiry seconds.
func v5Connect(id string, cleanStart bool, expiry uint32) *packet.Connect {
	cp := &packet.Connect{Version: packet.V5, ClientID: id, CleanStart: cleanStart, KeepAlive: 60}
	if expiry > 0 {
		cp.Properties.SessionExpiry = expiry
		cp.Properties.Set(packet.PropSessionExpiry)
	}
	return cp
}

func describe(p packet.Packet) string {
	switch p := p.(type) {
	case nil:
		return "<nil>"
	case *packet.Publish:
		payload := string(p.Payload)
		if len(payload) > 40 {
			payload = payload[:40] + "..."
		}
		return fmt.Sprintf("PUBLISH{topic=%q qos=%d dup=%v retain=%v pid=%d payload=%q}",
			p.Topic, p.QoS, p.Dup, p.Retain, p.PacketID, payload)
	case *packet.Disconnect:
		return fmt.Sprintf("DISCONNECT{0x%02X %q}", byte(p.ReasonCode), p.Properties.ReasonString)
	case *packet.Connack:
		return fmt.Sprintf("CONNACK{0x%02X sp=%v}", byte(p.ReasonCode), p.SessionPresent)
	}
	return fmt.Sprintf("%v%+v", p.Type(), p)
}
