package testsvc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// pgRequireEnv, when set, turns a missing service into a test failure instead of a skip.
const pgRequireEnv = "REQUIRE_TEST_SERVICES"

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
	bin, err := pgBinDir()
	if err != nil {
		pgUnavailable(t, "postgresql: %v", err)
	}
	cred, owner, err := pgCredential()
	if err != nil {
		pgUnavailable(t, "postgresql: %v", err)
	}

	// Not t.TempDir: its parent directories are private to the current user, and the
	// server may run as another one.
	dir, err := os.MkdirTemp("", "rampart-pg-")
	if err != nil {
		t.Fatalf("postgresql: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if owner != nil {
		if err := os.Chown(dir, owner[0], owner[1]); err != nil {
			t.Fatalf("postgresql: chown %s: %v", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	logFile := filepath.Join(dir, "server.log")

	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if out, err := cmd.CombinedOutput(); err != nil {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("postgresql: %s: %v\n%s\n%s", name, err, out, log)
		}
	}

	run("initdb", "-D", data, "-U", pgUser, "--auth=trust", "--no-sync", "--no-instructions",
		"-E", "UTF8", "--locale=C")
	port := pgFreePort(t)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
		port, dir)
	run("pg_ctl", "-D", data, "-l", logFile, "-o", opts, "-w", "-t", "60", "start")
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("postgresql: pg_ctl stop: %v\n%s", err, out)
		}
	})
	run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgUser, pgDatabase)
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgUser, port, pgDatabase)
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

// pgFreePort returns a loopback TCP port that was free a moment ago.
func pgFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pgUnavailable skips the test, or fails it when REQUIRE_TEST_SERVICES is set.
func pgUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if strings.TrimSpace(os.Getenv(pgRequireEnv)) != "" {
		t.Fatalf("%s (%s is set)", msg, pgRequireEnv)
	}
	t.Skipf("%s; skipping (set %s to make this a failure)", msg, pgRequireEnv)
}
