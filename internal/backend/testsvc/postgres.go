package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// pgUser is the database superuser created by initdb; authentication is trust, on
// loopback only.
const pgUser = "rampart"

// pgDatabase is the database StartPostgres creates.
const pgDatabase = "rampart_test"

// StartPostgres starts a PostgreSQL server of its own for the test, listening on a free
// 127.0.0.1 port with its Unix socket in its data directory, and returns the DSN of an
// empty database on it. The server is stopped (immediate shutdown) and its files removed
// when the test ends.
//
// The Debian binaries (/usr/lib/postgresql/*/bin) or initdb and pg_ctl on PATH are used.
// When they are missing, or the process runs as root and there is no "postgres" user to
// run the server as (PostgreSQL refuses to run as root), the test is skipped, or fails
// when REQUIRE_TEST_SERVICES is set.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	return NewPostgres(t, PostgresOptions{}).DSN
}

// StartPostgresTLS starts a server like StartPostgres that accepts TCP connections only
// with TLS (pg_hba hostssl; a plain connection is refused with "no pg_hba.conf entry"),
// presenting pki's server certificate. The DSN names no sslmode: the client's TLS
// settings decide.
func StartPostgresTLS(t testing.TB, pki *PKI) (dsn string) {
	t.Helper()
	return NewPostgres(t, PostgresOptions{PKI: pki}).DSN
}

// PostgresOptions says how NewPostgres configures its server. The zero value is a plain
// TCP server, as StartPostgres starts.
type PostgresOptions struct {
	// PKI, when set, turns TLS on (ssl=on) with PKI's server certificate and CA, and
	// accepts TCP connections only over TLS (hostssl).
	PKI *PKI
	// RequireClientCert makes the TLS server refuse a client that presents no certificate
	// signed by PKI's CA (hostssl ... clientcert=verify-ca).
	RequireClientCert bool
}

// PostgresServer is a running test server. Stop and Start take it down and bring it back
// on the same port with the same data, so a test can check what a client does while the
// server is down and after it is back.
type PostgresServer struct {
	// DSN is the database the server was created with (see StartPostgres).
	DSN string

	t       testing.TB
	bin     string
	dir     string
	data    string
	logFile string
	opts    string
	cred    *syscall.Credential

	mu      sync.Mutex
	running bool
}

// NewPostgres starts a server configured by o; see StartPostgres.
func NewPostgres(t testing.TB, o PostgresOptions) *PostgresServer {
	t.Helper()
	if o.RequireClientCert && o.PKI == nil {
		t.Fatalf("postgresql: RequireClientCert needs a PKI")
	}
	bin, err := pgBinDir()
	if err != nil {
		unavailable(t, "postgresql: %v", err)
	}
	cred, owner, err := pgCredential()
	if err != nil {
		unavailable(t, "postgresql: %v", err)
	}

	// Not t.TempDir: its parent directories are private to the current user, and the
	// server may run as another one.
	dir, err := os.MkdirTemp("", "rampart-pg-")
	if err != nil {
		t.Fatalf("postgresql: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	chown := func(path string) {
		t.Helper()
		if owner == nil {
			return
		}
		if err := os.Chown(path, owner[0], owner[1]); err != nil {
			t.Fatalf("postgresql: chown %s: %v", path, err)
		}
	}
	chown(dir)
	s := &PostgresServer{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "server.log"), cred: cred}

	s.run("initdb", "-D", s.data, "-U", pgUser, "--auth=trust", "--no-sync", "--no-instructions",
		"-E", "UTF8", "--locale=C")
	port := freePort(t)
	s.opts = fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
		port, dir)
	if o.PKI != nil {
		// The server reads its key only when it belongs to the server's user with mode
		// 0600, so the PKI's files are copied into the server's directory.
		copyFile := func(src, name string, mode os.FileMode) string {
			t.Helper()
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatalf("postgresql: %v", err)
			}
			dst := filepath.Join(dir, name)
			if err := os.WriteFile(dst, data, mode); err != nil {
				t.Fatalf("postgresql: %v", err)
			}
			if err := os.Chmod(dst, mode); err != nil {
				t.Fatalf("postgresql: %v", err)
			}
			chown(dst)
			return dst
		}
		cert := copyFile(o.PKI.ServerCert, "server.crt", 0o644)
		key := copyFile(o.PKI.ServerKey, "server.key", 0o600)
		ca := copyFile(o.PKI.CAFile, "ca.crt", 0o644)
		s.opts += fmt.Sprintf(" -c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s -c ssl_ca_file=%s", cert, key, ca)
		hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
		if o.RequireClientCert {
			hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n"
		}
		// Writing over initdb's file keeps its owner.
		if err := os.WriteFile(filepath.Join(s.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
			t.Fatalf("postgresql: pg_hba.conf: %v", err)
		}
	}
	s.Start()
	t.Cleanup(s.Stop)
	// Over the Unix socket: the TCP port may demand TLS and a client certificate.
	s.run("createdb", "-h", dir, "-p", strconv.Itoa(port), "-U", pgUser, pgDatabase)
	if o.PKI != nil {
		s.DSN = fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s", pgUser, port, pgDatabase)
	} else {
		s.DSN = fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgUser, port, pgDatabase)
	}
	return s
}

// Stop shuts the server down at once (immediate mode) and waits until it is gone. It is
// harmless on a stopped server.
func (s *PostgresServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	cmd := exec.Command(filepath.Join(s.bin, "pg_ctl"), "-D", s.data, "-m", "immediate", "-w", "stop")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Logf("postgresql: pg_ctl stop: %v\n%s", err, out)
		return
	}
	s.running = false
}

// Start starts the server (again, after Stop) on its port and waits until it accepts
// connections. It is harmless on a running server. Like Stop, call it from the test's
// goroutine: it fails the test when the server does not start.
func (s *PostgresServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	s.run("pg_ctl", "-D", s.data, "-l", s.logFile, "-o", s.opts, "-w", "-t", "60", "start")
	s.running = true
}

// run runs one of the server's programs as the server's user, failing the test (with
// the server log) when it fails.
func (s *PostgresServer) run(name string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(s.logFile)
		s.t.Fatalf("postgresql: %s: %v\n%s\n%s", name, err, out, log)
	}
}

// pgBinDir finds the directory holding initdb, pg_ctl and createdb: the newest Debian
// version directory, else the directory of initdb on PATH.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		ok := true
		for _, name := range []string{"initdb", "pg_ctl", "postgres", "createdb"} {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb, pg_ctl, postgres and createdb not found in /usr/lib/postgresql/*/bin or on PATH (Debian package postgresql)")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// pgCredential returns whom to run the server as: nil (ourselves) unless we are root, in
// which case the "postgres" user, with its uid and gid to own the directory.
func pgCredential() (*syscall.Credential, []int, error) {
	if os.Geteuid() != 0 {
		return nil, nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, nil, fmt.Errorf("running as root and no postgres user to run the server as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, nil, fmt.Errorf("postgres user has a non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, []int{uid, gid}, nil
}
