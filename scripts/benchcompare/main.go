// Command benchcompare runs Mosquitto and Rampart side by side on loopback with identical
// load from `rampart bench`, interleaved run by run, reads each broker's CPU time and
// resident memory from /proc, and writes a markdown table into docs/BENCHMARKS.md between
// the bench-compare markers. scripts/bench-compare.sh installs what it needs and runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The one user of the password-authenticated scenarios.
const (
	benchUser     = "bench"
	benchPassword = "bench-password-1"
	// benchPasswordEnv passes the password to `rampart bench`, which refuses secrets on
	// its command line.
	benchPasswordEnv = "BENCH_PASSWORD"
)

type broker struct {
	name  string
	start func(ctx context.Context, dir string, port int, s scenario, pki *benchPKI) (*exec.Cmd, error)
}

// scenario is one measured load. A scenario either delivers messages (subs + pubs) or opens
// connections (conn).
type scenario struct {
	name    string
	load    string // description for the table
	unit    string // "message" or "connection"
	durable bool
	subs    []string // rampart bench sub arguments (one process)
	pubs    []string // rampart bench pub arguments (one process)
	expect  int64    // deliveries expected at the subscriber
	conns   []string // rampart bench conn arguments
	nconns  int64
	idle    bool // measure resident memory per connection instead of CPU
	tls     bool // TLS 1.3 listener with an ECDSA P-256 certificate
	// auth is the password hash of a password-authenticated scenario: "argon2id" or
	// "pbkdf2" for Rampart's built-in database; Mosquitto always uses its password file
	// (mosquitto_passwd's PBKDF2-SHA512).
	auth string
	// minRateRatio is a goal on connects per second: Rampart at least this times Mosquitto.
	minRateRatio float64
	// target is the goal of issue 4 for this scenario: the most Rampart may use, as a
	// ratio to Mosquitto (maxRatio) or in KB per connection (maxKB); zero = none.
	maxRatio float64
	maxKB    float64
}

type sample struct {
	cpu       float64 // broker CPU seconds during the measured part
	units     int64   // delivered messages or connections
	rssKB     int64   // broker resident memory at the end
	perConnKB float64 // idle scenario: memory per connection
	p99us     float64
	rate      float64 // connects per second seen by the load tool (conn scenarios)
	note      string
}

func main() {
	var (
		runs    = flag.Int("runs", 3, "runs per scenario and broker")
		bin     = flag.String("rampart", "bin/rampart", "rampart binary (broker and load tool)")
		out     = flag.String("out", "docs/BENCHMARKS.md", "markdown file to update")
		only    = flag.String("only", "", "comma-separated scenario names to run (default all)")
		quick   = flag.Bool("quick", false, "smaller loads, for a smoke test of the script")
		timeout = flag.Duration("timeout", 60*time.Minute, "bound of the whole run")
	)
	flag.Parse()
	log.SetFlags(0)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	mosq, err := exec.LookPath("mosquitto")
	if err != nil {
		if mosq, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			log.Fatal("mosquitto not found: run scripts/test-services.sh install")
		}
	}
	rampart, err := filepath.Abs(*bin)
	if err != nil {
		log.Fatal(err)
	}
	brokers := []broker{
		{"mosquitto", func(ctx context.Context, dir string, port int, s scenario, pki *benchPKI) (*exec.Cmd, error) {
			durable := s.durable
			conf := fmt.Sprintf("listener %d 127.0.0.1\nset_tcp_nodelay true\nmax_queued_messages 100000\n", port)
			if s.auth != "" {
				pw := filepath.Join(dir, "passwd")
				if out, err := exec.CommandContext(ctx, "mosquitto_passwd", "-b", "-c", pw, benchUser, benchPassword).CombinedOutput(); err != nil {
					return nil, fmt.Errorf("mosquitto_passwd: %v: %s", err, out)
				}
				// Mosquitto started as root reads its password file as the mosquitto user.
				if err := os.Chmod(dir, 0o755); err != nil {
					return nil, err
				}
				if err := os.Chmod(pw, 0o644); err != nil {
					return nil, err
				}
				conf += fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pw)
			} else {
				conf += "allow_anonymous true\n"
			}
			if pki != nil {
				conf += fmt.Sprintf("certfile %s\nkeyfile %s\ntls_version tlsv1.3\n", pki.cert, pki.key)
			}
			if durable {
				conf += fmt.Sprintf("persistence true\npersistence_location %s/\n", dir)
			}
			path := filepath.Join(dir, "mosquitto.conf")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				return nil, err
			}
			return startProc(ctx, dir, mosq, "-c", path)
		}},
		{"rampart", func(ctx context.Context, dir string, port int, s scenario, pki *benchPKI) (*exec.Cmd, error) {
			d := "none"
			if s.durable {
				d = "sync"
			}
			// Every bench client dials from 127.0.0.1: no per-address limit on handshakes.
			listeners := fmt.Sprintf("  tcp:\n    default:\n      bind: 127.0.0.1:%d\n      max_preauth_connections_per_ip: infinity\n", port)
			if pki != nil {
				listeners = fmt.Sprintf("  tcp:\n    default:\n      enable: false\n  ssl:\n    bench:\n      bind: 127.0.0.1:%d\n"+
					"      max_preauth_connections_per_ip: infinity\n"+
					"      ssl_options:\n        certfile: %s\n        keyfile: %s\n        versions: [tlsv1.3]\n", port, pki.cert, pki.key)
			}
			conf := fmt.Sprintf("node:\n  data_dir: %s/data\n  durability: %s\nlog:\n  level: warn\n"+
				"listeners:\n%s  ws:\n    default:\n      enable: false\n"+
				"mqtt:\n  max_mqueue_len: 100000\n", dir, d, listeners)
			if s.auth != "" {
				users := filepath.Join(dir, "users.csv")
				if err := os.WriteFile(users, []byte("user_id,password,is_superuser\n"+benchUser+","+benchPassword+",false\n"), 0o600); err != nil {
					return nil, err
				}
				alg := "{name: argon2id}"
				if s.auth == "pbkdf2" {
					alg = "{name: pbkdf2, mac_fun: sha512}"
				}
				conf += fmt.Sprintf("authentication:\n  - mechanism: password_based\n    backend: built_in_database\n"+
					"    bootstrap_file: %s\n    password_hash_algorithm: %s\n", users, alg)
			}
			path := filepath.Join(dir, "rampart.yaml")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				return nil, err
			}
			return startProc(ctx, dir, rampart, "serve", "-c", path)
		}},
	}

	scale := int64(1)
	if *quick {
		scale = 10
	}
	pkiDir, err := os.MkdirTemp("", "benchcompare-pki-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(pkiDir)
	// Mosquitto started as root reads its files as the mosquitto user: these test keys
	// must be readable by it.
	if err := os.Chmod(pkiDir, 0o755); err != nil {
		log.Fatal(err)
	}
	pki, err := newBenchPKI(pkiDir)
	if err != nil {
		log.Fatal(err)
	}
	scen := scenarios(scale)
	if *only != "" {
		keep := strings.Split(*only, ",")
		scen = slices.DeleteFunc(scen, func(s scenario) bool { return !slices.Contains(keep, s.name) })
	}
	results := map[string]map[string][]sample{}
	for run := 1; run <= *runs; run++ {
		for _, s := range scen {
			for i := range brokers {
				// Interleave: alternate which broker goes first from run to run.
				b := brokers[(i+run)%len(brokers)]
				smp, err := measure(ctx, b, s, rampart, pki)
				if err != nil {
					log.Printf("run %d %s %s: %v", run, s.name, b.name, err)
					smp = sample{note: err.Error()}
				}
				log.Printf("run %d %-14s %-9s cpu %.3fs units %d rss %dKB %s", run, s.name, b.name, smp.cpu, smp.units, smp.rssKB, smp.note)
				if results[s.name] == nil {
					results[s.name] = map[string][]sample{}
				}
				results[s.name][b.name] = append(results[s.name][b.name], smp)
			}
		}
	}
	table := render(scen, results, *runs, mosqVersion(mosq), rampartVersion(rampart), *quick)
	if err := splice(*out, table); err != nil {
		log.Fatal(err)
	}
	fmt.Print(table)
}

func scenarios(scale int64) []scenario {
	n := func(v int64) string { return strconv.FormatInt(v/scale, 10) }
	const rate = "2500" // per publisher, messages/s
	perPub := int64(12500)
	return []scenario{
		{name: "fan-in-qos0", maxRatio: 0.5, load: "8 publishers → 1 subscriber, QoS 0, 8×2500 msg/s, 64 B", unit: "message",
			subs: []string{"-t", "fi/#", "-q", "0"}, pubs: []string{"-c", "8", "-t", "fi/%i", "-q", "0", "-r", rate, "-n", n(perPub)}, expect: 8 * perPub / scale},
		{name: "fan-in-qos1", maxRatio: 0.5, load: "8 publishers → 1 subscriber, QoS 1, 8×2500 msg/s, 64 B", unit: "message",
			subs: []string{"-t", "fi/#", "-q", "1"}, pubs: []string{"-c", "8", "-t", "fi/%i", "-q", "1", "-r", rate, "-n", n(perPub)}, expect: 8 * perPub / scale},
		{name: "fan-out-qos0", maxRatio: 0.5, load: "1 publisher → 8 subscribers, QoS 0, 2500 msg/s, 64 B", unit: "message",
			subs: []string{"-c", "8", "-t", "fo/t", "-q", "0"}, pubs: []string{"-t", "fo/t", "-q", "0", "-r", rate, "-n", n(perPub)}, expect: 8 * perPub / scale},
		{name: "fan-out-qos1", maxRatio: 0.5, load: "1 publisher → 8 subscribers, QoS 1, 2500 msg/s, 64 B", unit: "message",
			subs: []string{"-c", "8", "-t", "fo/t", "-q", "1"}, pubs: []string{"-t", "fo/t", "-q", "1", "-r", rate, "-n", n(perPub)}, expect: 8 * perPub / scale},
		{name: "p2p-qos1", load: "8 publishers → 8 subscribers, one topic each, QoS 1, 8×2500 msg/s", unit: "message",
			subs: []string{"-c", "8", "-t", "p2p/%i", "-q", "1"}, pubs: []string{"-c", "8", "-t", "p2p/%i", "-q", "1", "-r", rate, "-n", n(perPub)}, expect: 8 * perPub / scale},
		{name: "persistent-q1", load: "1 publisher → 1 persistent session, QoS 1, 1000 msg/s; Rampart `durability: sync` (fsync before PUBACK), Mosquitto `persistence true` (periodic save)", unit: "message", durable: true,
			subs: []string{"-t", "ps/#", "-q", "1", "--clean=false", "--session-expiry", "1h", "-i", "ps-sub"}, pubs: []string{"-t", "ps/1", "-q", "1", "-r", "1000", "-n", n(5000)}, expect: 5000 / scale},
		{name: "connect", maxRatio: 1, load: "2000 plain TCP connects (MQTT 3.1.1, no auth), as fast as accepted", unit: "connection",
			conns: []string{"-c", n(2000), "-V", "4", "-d", "1s"}, nconns: 2000 / scale},
		{name: "connect-argon2id", load: "200 connects with a user name and password (MQTT 3.1.1); Rampart argon2id (19 MiB, 2 passes), Mosquitto its password file (PBKDF2-SHA512, 101 iterations)", unit: "connection", auth: "argon2id",
			conns: []string{"-c", n(200), "-V", "4", "-d", "1s", "-u", benchUser, "-P", "env:" + benchPasswordEnv}, nconns: 200 / scale},
		{name: "connect-pbkdf2", load: "200 connects with a user name and password (MQTT 3.1.1); Rampart PBKDF2-SHA512 (210000 iterations), Mosquitto its password file (PBKDF2-SHA512, 101 iterations)", unit: "connection", auth: "pbkdf2",
			conns: []string{"-c", n(200), "-V", "4", "-d", "1s", "-u", benchUser, "-P", "env:" + benchPasswordEnv}, nconns: 200 / scale},
		{name: "tls-connect", minRateRatio: 2, load: "2000 TLS 1.3 connects (ECDSA P-256 certificate, MQTT 3.1.1), as fast as accepted", unit: "connection", tls: true,
			conns: []string{"-c", n(2000), "-V", "4", "-d", "1s"}, nconns: 2000 / scale},
		{name: "idle-tls-10k", load: "10000 idle TLS 1.3 connections held, keep alive 300 s", unit: "connection", idle: true, tls: true,
			conns: []string{"-c", n(10000), "-V", "4", "-k", "300", "-d", "10s", "-R", "2000"}, nconns: 10000 / scale},
		{name: "idle-10k", maxKB: 4, load: "10000 idle MQTT 3.1.1 connections held, keep alive 300 s", unit: "connection", idle: true,
			conns: []string{"-c", n(10000), "-V", "4", "-k", "300", "-d", "8s", "-R", "4000"}, nconns: 10000 / scale},
	}
}

// measure starts the broker fresh, runs the scenario's load and reads the broker's CPU
// time and memory.
func measure(ctx context.Context, b broker, s scenario, rampart string, pki *benchPKI) (sample, error) {
	dir, err := os.MkdirTemp("", "benchcompare-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return sample{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	var tlsPKI *benchPKI
	if s.tls {
		tlsPKI = pki
	}
	cmd, err := b.start(bctx, dir, port, s, tlsPKI)
	if err != nil {
		return sample{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitListening(ctx, addr); err != nil {
		return sample{}, fmt.Errorf("%s did not start: %w", b.name, err)
	}
	pid := cmd.Process.Pid

	if s.conns != nil {
		rss0 := rssKB(pid)
		cpu0 := cpuSeconds(pid)
		args := append([]string{"bench", "conn", "-a", addr, "--json", "--progress", "0", "-i", "bc-" + b.name + "-%i"}, s.conns...)
		if s.tls {
			args = append(args, "--tls", "--cacert", pki.ca, "--server-name", "127.0.0.1")
		}
		if s.idle {
			// Read memory while the connections are held: start, wait for ready, read, let it end.
			res, rssHeld, err := runHeld(ctx, rampart, args, pid)
			if err != nil {
				return sample{}, err
			}
			smp := sample{units: res.Connected, rssKB: rssHeld, cpu: cpuSeconds(pid) - cpu0}
			if res.Connected > 0 {
				smp.perConnKB = float64(rssHeld-rss0) / float64(res.Connected)
			}
			if res.Connected != s.nconns {
				smp.note = fmt.Sprintf("%d of %d connected", res.Connected, s.nconns)
			}
			return smp, nil
		}
		res, err := runJSON(ctx, rampart, args)
		if err != nil {
			return sample{}, err
		}
		smp := sample{cpu: cpuSeconds(pid) - cpu0, units: res.Connected, rssKB: rssKB(pid), rate: res.ConnectsPerSec}
		if res.Connected != s.nconns {
			smp.note = fmt.Sprintf("%d of %d connected", res.Connected, s.nconns)
		}
		return smp, nil
	}

	// Message scenario: subscriber first, measured from when it is ready.
	subArgs := append([]string{"bench", "sub", "-a", addr, "--json", "--progress", "0", "-d", "120s",
		"-n", strconv.FormatInt(s.expect, 10), "-i", "bcs-%i"}, s.subs...)
	subCmd := loadCommand(ctx, rampart, subArgs)
	var subOut bytes.Buffer
	subCmd.Stdout = &subOut
	subErr, err := subCmd.StderrPipe()
	if err != nil {
		return sample{}, err
	}
	if err := subCmd.Start(); err != nil {
		return sample{}, err
	}
	if err := waitReady(subErr); err != nil {
		_ = subCmd.Process.Kill()
		_ = subCmd.Wait()
		return sample{}, fmt.Errorf("subscribers: %w", err)
	}
	cpu0 := cpuSeconds(pid)
	pubArgs := append([]string{"bench", "pub", "-a", addr, "--json", "--progress", "0", "-d", "120s", "-i", "bcp-%i"}, s.pubs...)
	if _, err := runJSON(ctx, rampart, pubArgs); err != nil {
		_ = subCmd.Process.Kill()
		_ = subCmd.Wait()
		return sample{}, fmt.Errorf("publishers: %w", err)
	}
	// A subscriber that missed its target exits non-zero after printing its summary; the
	// shortfall goes into the note below.
	waitErr := subCmd.Wait()
	cpu := cpuSeconds(pid) - cpu0
	var res summary
	if err := json.Unmarshal(subOut.Bytes(), &res); err != nil {
		return sample{}, fmt.Errorf("subscriber output: %w", errors.Join(waitErr, err))
	}
	smp := sample{cpu: cpu, units: res.Received, rssKB: rssKB(pid), p99us: res.LatencyP99us}
	var notes []string
	if res.Received != s.expect {
		notes = append(notes, fmt.Sprintf("%d of %d delivered", res.Received, s.expect))
	}
	if res.Missing > 0 || res.Duplicates > 0 {
		notes = append(notes, fmt.Sprintf("%d missing, %d duplicates", res.Missing, res.Duplicates))
	}
	if waitErr != nil && len(notes) == 0 {
		notes = append(notes, "subscribers: "+waitErr.Error())
	}
	smp.note = strings.Join(notes, "; ")
	return smp, nil
}

type summary struct {
	Connected      int64            `json:"connected"`
	ConnectsPerSec float64          `json:"connects_per_sec"`
	Received       int64            `json:"received"`
	Published      int64            `json:"published"`
	Missing        int64            `json:"missing"`
	Duplicates     int64            `json:"duplicates"`
	LatencyP99us   float64          `json:"latency_p99_us"`
	Errors         map[string]int64 `json:"errors"`
}

func startProc(ctx context.Context, dir, path string, args ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	logf, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return cmd, nil
}

// loadCommand is `rampart bench` with args, the benchmark password in its environment.
func loadCommand(ctx context.Context, bin string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), benchPasswordEnv+"="+benchPassword)
	return cmd
}

func runJSON(ctx context.Context, bin string, args []string) (summary, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := loadCommand(ctx, bin, args)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var s summary
	if jerr := json.Unmarshal(out.Bytes(), &s); jerr != nil {
		return s, fmt.Errorf("%v: %v; %s", args[:2], errors.Join(err, jerr), lastLine(errb.String()))
	}
	return s, err
}

// runHeld runs a conn load and reads the broker's memory while the connections are held.
func runHeld(ctx context.Context, bin string, args []string, pid int) (summary, int64, error) {
	cmd := loadCommand(ctx, bin, args)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return summary{}, 0, err
	}
	if err := cmd.Start(); err != nil {
		return summary{}, 0, err
	}
	if err := waitReady(stderr); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return summary{}, 0, err
	}
	time.Sleep(4 * time.Second) // let the broker settle (Rampart parks connections idle for 2 s)
	rss := rssKB(pid)
	if err := cmd.Wait(); err != nil {
		return summary{}, rss, err
	}
	var s summary
	err = json.Unmarshal(out.Bytes(), &s)
	return s, rss, err
}

// waitReady reads the load tool's stderr until its "ready:" line, then drains the rest.
func waitReady(r interface{ Read([]byte) (int, error) }) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ready:") {
			go func() {
				for sc.Scan() {
				}
			}()
			return nil
		}
	}
	return errors.New("load tool ended before it was ready")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuSeconds is the user + system CPU time of process pid (all threads).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command name: state is f[0]; utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

func mosqVersion(path string) string {
	out, _ := exec.Command(path, "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func rampartVersion(path string) string {
	out, _ := exec.Command(path, "version").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

type stat struct{ med, lo, hi float64 }

func stats(v []float64) (stat, bool) {
	if len(v) == 0 {
		return stat{}, false
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return stat{med: v[len(v)/2], lo: v[0], hi: v[len(v)-1]}, true
}

func render(scen []scenario, res map[string]map[string][]sample, runs int, mv, rv string, quick bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run on %s, %s/%s, %d CPUs; %d runs per scenario and broker, interleaved; median (min–max).\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runs)
	fmt.Fprintf(&b, "Brokers: %s; %s. Load: `rampart bench` on the same machine.", mv, rv)
	if quick {
		b.WriteString(" **Quick mode: loads are a tenth of the normal size; do not quote these figures.**")
	}
	b.WriteString("\n\n")
	b.WriteString("| scenario | load | Mosquitto broker CPU | Rampart broker CPU | Rampart / Mosquitto | target | Mosquitto RSS | Rampart RSS | notes |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range scen {
		per := func(name string) (stat, bool, string, int64) {
			var vals []float64
			var notes []string
			var rss int64
			for _, smp := range res[s.name][name] {
				if smp.note != "" {
					notes = append(notes, smp.note)
				}
				rss = max(rss, smp.rssKB)
				switch {
				case s.idle && smp.units > 0:
					vals = append(vals, smp.perConnKB)
				case smp.units > 0:
					vals = append(vals, smp.cpu/float64(smp.units)*1e6)
				}
			}
			st, ok := stats(vals)
			return st, ok, strings.Join(dedupe(notes), "; "), rss
		}
		m, mok, mnote, mrss := per("mosquitto")
		r, rok, rnote, rrss := per("rampart")
		unit := "µs/" + s.unit
		if s.idle {
			unit = "KB/connection"
		}
		cell := func(st stat, ok bool) string {
			if !ok {
				return "failed"
			}
			return fmt.Sprintf("%.2f %s (%.2f–%.2f)", st.med, unit, st.lo, st.hi)
		}
		ratio := "—"
		if mok && rok && m.med > 0 {
			ratio = fmt.Sprintf("%.2f×", r.med/m.med)
		}
		target := "—"
		mr, _ := stats(rates(res[s.name]["mosquitto"]))
		rr, _ := stats(rates(res[s.name]["rampart"]))
		switch {
		case s.minRateRatio > 0 && mr.med > 0:
			target = fmt.Sprintf("≥ %.0f× connects/s: %s (%.0f/s against %.0f/s)", s.minRateRatio, met(rr.med >= s.minRateRatio*mr.med), rr.med, mr.med)
		case s.maxKB > 0 && rok:
			target = fmt.Sprintf("< %.0f KB: %s", s.maxKB, met(r.med < s.maxKB))
		case s.maxRatio > 0 && mok && rok && m.med > 0:
			target = fmt.Sprintf("≤ %.1f×: %s", s.maxRatio, met(r.med/m.med <= s.maxRatio))
		}
		var notes []string
		if mnote != "" {
			notes = append(notes, "Mosquitto: "+mnote)
		}
		if rnote != "" {
			notes = append(notes, "Rampart: "+rnote)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d MB | %d MB | %s |\n", s.name, s.load, cell(m, mok), cell(r, rok), ratio,
			target, mrss/1024, rrss/1024, strings.Join(notes, "; "))
	}
	b.WriteString("\nPassword connects cost what the hash costs by design: Rampart's defaults are the OWASP-recommended " +
		"work factors, Mosquitto's password file uses 101 PBKDF2 iterations. The ACL decision cost is measured by Go " +
		"benchmarks (see \"Authorization decisions\"), not side by side.\n")
	return b.String()
}

func rates(smps []sample) []float64 {
	var out []float64
	for _, s := range smps {
		if s.rate > 0 {
			out = append(out, s.rate)
		}
	}
	return out
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

const beginMark, endMark = "<!-- bench-compare:begin -->", "<!-- bench-compare:end -->"

// splice replaces the text between the markers of path (or appends a section with them).
func splice(path, table string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	block := beginMark + "\n" + table + endMark
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMark):]
	} else {
		s += "\n## Side by side with Mosquitto\n\nProduced by `scripts/bench-compare.sh`.\n\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// benchPKI is a CA and an ECDSA P-256 server certificate for 127.0.0.1, in PEM files.
type benchPKI struct{ ca, cert, key string }

func newBenchPKI(dir string) (*benchPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "benchcompare CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &benchPKI{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem")}
	for path, block := range map[string]*pem.Block{
		p.ca:   {Type: "CERTIFICATE", Bytes: caDER},
		p.cert: {Type: "CERTIFICATE", Bytes: der},
		p.key:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o644); err != nil { // throw-away test key
			return nil, err
		}
	}
	return p, nil
}
