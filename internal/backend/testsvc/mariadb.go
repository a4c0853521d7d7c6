package testsvc

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
)

// MariaDB is a throw-away MariaDB server started by StartMariaDB.
type MariaDB struct {
	// Addr is host:port of its TCP listener, on 127.0.0.1 only.
	Addr string
	// Socket is the path of its Unix socket, in the server's temporary directory.
	Socket string
	// Database is the empty database created for the test: rampart_test.
	Database string
	// User is an account with every privilege on Database (tables, rows, indexes) and no
	// other, from 127.0.0.1 and from the socket: rampart.
	User string
	// Password is User's (and CertUser's) password: random hex, so a test can write it
	// to a file and give the connector file:/path.
	Password string
	// TLS says whether the server was started with a PKI: it then presents the PKI's
	// server certificate and refuses TCP connections without TLS
	// (require_secure_transport); the socket stays plain.
	TLS bool
	// CertUser, with a PKI, is an account like User that the server also requires to
	// present a client certificate signed by the PKI's CA (REQUIRE X509); "" without.
	CertUser string

	t    testing.TB
	bin  string
	dir  string
	args []string
	cred *syscall.Credential
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// mariaDatabase and mariaUser name what StartMariaDB creates.
const (
	mariaDatabase = "rampart_test"
	mariaUser     = "rampart"
	mariaCertUser = "rampart_x509"
)

// StartMariaDB starts a MariaDB (or MySQL-compatible mariadbd) server of its own for the
// test, and stops it and removes its files when the test ends. With pki it serves TLS
// (see MariaDB.TLS). The server listens on a free 127.0.0.1 port with name resolution
// off, has its socket, pid file, log and data in a new temporary directory, and runs
// with durability off (no doublewrite, log flushed once a second), a small buffer pool
// and no binary log: it starts in about two seconds.
//
// The data directory is made by running mariadbd --bootstrap on the packaged system
// table scripts (what mariadb-install-db does, without the help tables and the sys
// schema), with the test database and accounts added to the grant tables directly: the
// server is never started with --skip-grant-tables. When the process runs as root the
// server runs as the "mysql" account (mariadbd refuses root unless told --user=root; a
// database server has no business running as root), or as root with --user=root when
// there is no such account. Its directory is made with os.MkdirTemp, not t.TempDir,
// whose parents are private to the current user.
//
// When mariadbd (or mysqld) or the system table scripts are missing, the test is skipped,
// or fails when REQUIRE_TEST_SERVICES is set.
func StartMariaDB(t testing.TB, pki *PKI) *MariaDB {
	t.Helper()
	bin, scripts, err := mariaFind()
	if err != nil {
		unavailable(t, "mariadb: %v", err)
	}
	cred, owner, runAs, err := mariaCredential()
	if err != nil {
		unavailable(t, "mariadb: %v", err)
	}
	dir, err := os.MkdirTemp("", "rampart-mariadb-")
	if err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	for _, p := range []string{dir, data} {
		if owner != nil {
			if err := os.Chown(p, owner[0], owner[1]); err != nil {
				t.Fatalf("mariadb: chown %s: %v", p, err)
			}
		}
	}
	m := &MariaDB{
		Socket:   filepath.Join(dir, "mysqld.sock"),
		Database: mariaDatabase,
		User:     mariaUser,
		Password: mariaRandomHex(t, 16),
		TLS:      pki != nil,
		t:        t,
		bin:      bin,
		dir:      dir,
		cred:     cred,
		log:      filepath.Join(dir, "server.log"),
	}
	if pki != nil {
		m.CertUser = mariaCertUser
	}
	common := []string{
		"--no-defaults", // must come first
		"--datadir=" + data,
		"--tmpdir=" + dir,
		"--lc-messages=en_US",
		"--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=4M",
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--skip-log-bin",
		"--max-allowed-packet=8M",
	}
	if cred == nil && os.Geteuid() == 0 {
		common = append(common, "--user=root")
	}
	m.bootstrap(common, scripts, runAs)

	m.args = append(common,
		"--socket="+m.Socket,
		"--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--log-error="+m.log,
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--local-infile=0",
		"--secure-file-priv="+dir,
		"--skip-symbolic-links",
		"--max-connections=100",
		"--max-connect-errors=1000000", // refused TLS handshakes must not block 127.0.0.1
	)
	if pki != nil {
		m.args = append(m.args,
			"--ssl-cert="+pki.ServerCert,
			"--ssl-key="+pki.ServerKey,
			"--ssl-ca="+pki.CAFile,
			"--require-secure-transport=ON",
		)
	}
	t.Cleanup(m.Stop)
	// A port found free may be taken before the server binds it: try a few.
	for attempt := 1; ; attempt++ {
		m.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		err := m.start()
		if err == nil {
			return m
		}
		log, _ := os.ReadFile(m.log)
		if attempt < 3 && bytes.Contains(log, []byte("Address already in use")) {
			continue
		}
		t.Fatalf("mariadb: %v\n%s", err, log)
	}
}

// bootstrap creates the system tables, the test database and the accounts.
func (m *MariaDB) bootstrap(common []string, scripts []string, runAs string) {
	m.t.Helper()
	var in bytes.Buffer
	// mariadbd --bootstrap reads one statement per line, as the scripts are written.
	fmt.Fprintf(&in, "CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\n")
	// The initial root account logs in over the socket only, as the OS account running
	// the server (unix_socket): nobody else on the machine can log in as root.
	fmt.Fprintf(&in, "SET @auth_root_socket='%s';\n", runAs)
	for i, path := range scripts {
		b, err := os.ReadFile(path)
		if err != nil {
			m.t.Fatalf("mariadb: %v", err)
		}
		if i == len(scripts)-1 {
			// The data script's lines naming the host are for name resolution, which
			// is off (mariadb-install-db --skip-name-resolve drops them the same way).
			var kept []string
			for line := range strings.SplitSeq(string(b), "\n") {
				if !strings.Contains(line, "@current_hostname") {
					kept = append(kept, line)
				}
			}
			b = []byte(strings.Join(kept, "\n"))
		}
		in.Write(b)
		in.WriteString("\n")
	}
	fmt.Fprintf(&in, "CREATE DATABASE %s CHARACTER SET utf8mb4;\n", m.Database)
	// Accounts go straight into the grant tables: CREATE USER and GRANT are refused
	// while bootstrapping. access 0 is no global privilege; ssl_type 2 is REQUIRE X509.
	account := func(user, host string, sslType int) {
		fmt.Fprintf(&in, "INSERT INTO mysql.global_priv (Host, User, Priv) VALUES ('%s', '%s', JSON_OBJECT('access', 0, 'plugin', 'mysql_native_password', 'authentication_string', PASSWORD('%s'), 'ssl_type', %d));\n",
			host, user, m.Password, sslType)
		fmt.Fprintf(&in, "INSERT INTO mysql.db (Host, Db, User, Select_priv, Insert_priv, Update_priv, Delete_priv, Create_priv, Drop_priv, Index_priv, Alter_priv) VALUES ('%s', '%s', '%s', 'Y', 'Y', 'Y', 'Y', 'Y', 'Y', 'Y', 'Y');\n",
			host, m.Database, user)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		account(m.User, host, 0)
		if m.CertUser != "" {
			account(m.CertUser, host, 2)
		}
	}
	cmd := exec.Command(m.bin, append(append([]string(nil), common...),
		"--bootstrap", "--silent-startup", "--log-warnings=0", "--enforce-storage-engine=",
		"--skip-networking")...)
	cmd.Dir = m.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		m.t.Fatalf("mariadb: bootstrap: %v\n%s", err, out)
	}
}

// start runs the server and waits until it greets on its TCP port.
func (m *MariaDB) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return errors.New("already running")
	}
	_, port, _ := net.SplitHostPort(m.Addr)
	cmd := exec.Command(m.bin, append(append([]string(nil), m.args...), "--port="+port)...)
	cmd.Dir = m.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", m.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := mariaGreets(m.Addr)
		if err == nil {
			m.cmd, m.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mariadbd exited: %v\n%s", cmd.ProcessState, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("mariadbd on %s did not greet within a minute: %v", m.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down (SIGTERM: a clean shutdown that keeps the data; SIGKILL
// after 30 seconds) and waits until it has exited. Stopping a stopped server is
// harmless; Stop also runs when the test ends.
func (m *MariaDB) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.t.Logf("mariadb: no clean shutdown within 30s; killing it")
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd, m.done = nil, nil
}

// Restart starts a stopped server again on the same address, with the same data, and
// waits until it greets. On a running server it stops it first.
func (m *MariaDB) Restart() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		log, _ := os.ReadFile(m.log)
		m.t.Fatalf("mariadb: restart: %v\n%s", err, log)
	}
}

// DB opens a database/sql handle for the test's own statements (creating tables,
// inserting and deleting rows), as User over the Unix socket, which stays plain even when
// TCP requires TLS. It is closed when the test ends.
func (m *MariaDB) DB(t testing.TB) *sql.DB {
	t.Helper()
	c := mysqldriver.NewConfig()
	c.Net, c.Addr, c.User, c.Passwd, c.DBName = "unix", m.Socket, m.User, m.Password, m.Database
	c.Logger = &mysqldriver.NopLogger{}
	connector, err := mysqldriver.NewConnector(c)
	if err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// mariaGreets reads the server's first packet on addr and checks that it is a handshake
// (protocol version 10).
func mariaGreets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var head [5]byte // 3-byte length, sequence number, first payload byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return err
	}
	if head[4] != 10 {
		return fmt.Errorf("first packet is not a handshake (byte %#x)", head[4])
	}
	return nil
}

// mariaFind returns the server binary and the system table scripts: creation, then the
// performance schema tables when packaged, then the data (last).
func mariaFind() (string, []string, error) {
	bin := ""
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/libexec/mariadbd", "/usr/libexec/mysqld"} {
		if _, err := os.Stat(p); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		for _, name := range []string{"mariadbd", "mysqld"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		return "", nil, errors.New("mariadbd or mysqld not found in /usr/sbin, /usr/libexec or on PATH (Debian package mariadb-server)")
	}
	// Oracle's mysqld has no --bootstrap (it initialises with --initialize-insecure).
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !bytes.Contains(out, []byte("MariaDB")) {
		return "", nil, fmt.Errorf("%s is not MariaDB (%v: %s)", bin, err, bytes.TrimSpace(out))
	}
	for _, dir := range []string{"/usr/share/mysql", "/usr/share/mariadb", filepath.Join(filepath.Dir(filepath.Dir(bin)), "share", "mysql")} {
		tables, data := filepath.Join(dir, "mysql_system_tables.sql"), filepath.Join(dir, "mysql_system_tables_data.sql")
		if _, err := os.Stat(tables); err != nil {
			continue
		}
		if _, err := os.Stat(data); err != nil {
			continue
		}
		scripts := []string{tables}
		if perf := filepath.Join(dir, "mysql_performance_tables.sql"); mariaFileExists(perf) {
			scripts = append(scripts, perf)
		}
		return bin, append(scripts, data), nil
	}
	return "", nil, errors.New("mysql_system_tables.sql and mysql_system_tables_data.sql not found in /usr/share/mysql or /usr/share/mariadb")
}

func mariaFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// mariaCredential returns whom to run the server as, the uid and gid to own its
// directory (nil: ourselves) and that account's name (for the root account's socket
// login): ourselves unless we are root, then the "mysql" account when there is one.
func mariaCredential() (*syscall.Credential, []int, string, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, nil, "", err
		}
		return nil, nil, u.Username, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, nil, "root", nil // mariadbd runs as root with --user=root
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, nil, "", fmt.Errorf("mysql account has a non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, []int{uid, gid}, "mysql", nil
}

func mariaRandomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	return hex.EncodeToString(b)
}
