// Package ldap is Rampart's connector to an LDAP directory (OpenLDAP, 389 Directory
// Server, Active Directory...), shared by the ldap authenticator and authorization
// source: a bounded pool of connections bound as a service account (go-ldap), TLS from
// tlsconf with the server verified (LDAPS or StartTLS), every operation under a deadline,
// a short wait for a free connection so a saturated server refuses new questions quickly,
// health tracking with a back-off while the server is unreachable, and configured
// filter and DN templates whose ${...} placeholder values are escaped for where they
// stand (RFC 4515 in filters, RFC 4514 in DNs), never pasted in raw.
//
// A user's bind (to check a password) happens on a pooled connection which is bound
// again as the service account before it goes back to the pool; when that fails the
// connection is closed instead, so a pooled connection never carries a client's identity
// to the next question.
//
// One Pool may serve an authenticator and an authorization source at once
// (ldapauth.NewWith, ldapsrc.NewWith): they share its connections, its pool size and its
// health state, and whoever made the pool closes it.
package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/poolcfg"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// ErrInvalidCredentials is wrapped by UserBind's error when the server refused the DN and
// password (LDAP result invalidCredentials): a wrong password, or no such entry.
var ErrInvalidCredentials = errors.New("invalid credentials")

// ErrEmptyPassword is UserBind's error for an empty password or DN, refused before
// anything is sent: a simple bind with an empty password is an unauthenticated bind
// (RFC 4513 §5.1.2), which many servers answer with success without checking anything.
var ErrEmptyPassword = errors.New("empty password or DN refused: an LDAP simple bind without a password is an unauthenticated bind and proves nothing")

// errPoolClosed is get's error once Close has been called: not the server's fault.
var errPoolClosed = errors.New("connection pool closed")

// idleTimeout is how long a connection may sit unused in the pool; older ones are closed
// rather than reused (a firewall may have dropped them silently).
const idleTimeout = 5 * time.Minute

// Pool is a bounded pool of connections to one server. It is safe for concurrent use.
type Pool struct {
	server   string      // host:port, for messages
	tls      *tls.Config // nil: no TLS
	startTLS bool
	bindDN   string
	bindPW   string
	baseDN   string

	connectTimeout time.Duration
	queryTimeout   time.Duration
	acquireTimeout time.Duration
	poolSize       int

	health *health.State
	slots  chan struct{} // one token per connection in use
	idle   chan *conn    // connections bound as the service account, ready for use

	mu     sync.Mutex
	closed bool
}

// conn is one connection to the server.
type conn struct {
	l       *goldap.Conn
	raw     net.Conn // the TCP connection under l (and under TLS): deadlines are set on it
	service bool     // bound as the service account (or anonymous when there is none)
	used    time.Time
}

// New validates cfg, reads the service account's password and builds the pool. It does
// not connect: connections are made when an operation needs one (Ping checks the server).
// Close releases them.
func New(cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	host, port, err := cfg.hostPort()
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if err := cfg.checkPlainText(host); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	p := &Pool{
		server:         net.JoinHostPort(host, port),
		startTLS:       cfg.StartTLS,
		bindDN:         cfg.BindDN,
		baseDN:         cfg.BaseDN,
		connectTimeout: cfg.ConnectTimeout,
		queryTimeout:   cfg.QueryTimeout,
		acquireTimeout: cfg.AcquireTimeout,
		poolSize:       cfg.PoolSize,
		slots:          make(chan struct{}, cfg.PoolSize),
		idle:           make(chan *conn, cfg.PoolSize),
	}
	if cfg.TLS != nil {
		tc, err := tlsconf.NewClient(*cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("ldap: ssl: %w", err)
		}
		if tc.ServerName == "" && !tc.InsecureSkipVerify {
			tc.ServerName = host
		}
		p.tls = tc
	}
	if cfg.BindDN != "" {
		pw, err := poolcfg.ReadSecret(cfg.BindPassword)
		if err != nil {
			return nil, fmt.Errorf("ldap: password: %w", err)
		}
		p.bindPW = pw
	}
	p.health = health.New("ldap "+p.server, 0, 0)
	return p, nil
}

// Target names the server for logs: host:port, and how it is reached.
func (p *Pool) Target() string {
	switch {
	case p.tls == nil:
		return "ldap://" + p.server
	case p.startTLS:
		return "ldap://" + p.server + " (StartTLS)"
	}
	return "ldaps://" + p.server
}

// BaseDN returns the configured base DN ("" when none).
func (p *Pool) BaseDN() string { return p.baseDN }

// QueryTimeout is the bound on one operation.
func (p *Pool) QueryTimeout() time.Duration { return p.queryTimeout }

// Health returns the connector's health: whether the server answered last time, and the
// last failure to reach it.
func (p *Pool) Health() health.Snapshot { return p.health.Snapshot() }

// Close closes the idle connections; those in use are closed when their operation ends.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for {
		select {
		case c := <-p.idle:
			c.close()
		default:
			return
		}
	}
}

// Ping checks that a connection can be had (connected, and bound as the service account)
// and that the server answers a search of the root DSE, within the query timeout.
func (p *Pool) Ping(ctx context.Context) error {
	_, err := p.Read(ctx, "", []string{"1.1"})
	return err
}

// Entry is one entry of a search result.
type Entry struct {
	DN    string
	attrs []*goldap.EntryAttribute
}

// Values returns the values of the attribute named name (case-insensitively; an
// attribute with options such as ";binary" is a different attribute), or nil.
func (e *Entry) Values(name string) []string {
	for _, a := range e.attrs {
		if equalFold(a.Name, name) {
			return a.Values
		}
	}
	return nil
}

// equalFold compares ASCII attribute descriptions without regard to case.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Result is the answer to one search: at most the asked number of entries.
type Result struct {
	Entries []*Entry
	// More is true when the server had more entries than were asked for (or than its own
	// size limit lets it return).
	More bool
}

// Search runs a subtree search under baseDN ("" means the configured base DN) with an
// already expanded filter (see Filter.Expand), asking for attrs, and reads at most
// sizeLimit entries (sizeLimit < 1 reads one). Aliases are not dereferenced and
// referrals are not followed. The whole call, waiting for a connection included, is
// bounded by the query timeout and ctx; the wait for a connection by the acquire timeout.
func (p *Pool) Search(ctx context.Context, baseDN, filter string, attrs []string, sizeLimit int) (*Result, error) {
	if baseDN == "" {
		baseDN = p.baseDN
	}
	if baseDN == "" {
		return nil, errors.New("ldap: search: no base DN (base_dn)")
	}
	if sizeLimit < 1 {
		sizeLimit = 1
	}
	// A filter that does not compile is the caller's mistake, not the server's: refuse it
	// here rather than count it as a failure to reach the server.
	if _, err := goldap.CompileFilter(filter); err != nil {
		return nil, fmt.Errorf("ldap: search: filter %q: %w", filter, err)
	}
	var res *Result
	err := p.run(ctx, "search", func(c *conn) error {
		var err error
		res, err = p.search(c, goldap.ScopeWholeSubtree, baseDN, filter, attrs, sizeLimit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Read returns the entry named dn with attrs (a base-object search), or nil when there
// is no such entry (or the service account may not see it).
func (p *Pool) Read(ctx context.Context, dn string, attrs []string) (*Entry, error) {
	var res *Result
	err := p.run(ctx, "read", func(c *conn) error {
		var err error
		res, err = p.search(c, goldap.ScopeBaseObject, dn, "(objectClass=*)", attrs, 1)
		return err
	})
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		return nil, nil
	case err != nil:
		return nil, err
	case len(res.Entries) == 0:
		return nil, nil
	}
	return res.Entries[0], nil
}

// search runs one search on c. It asks the server for one entry more than sizeLimit to
// learn whether there were more.
func (p *Pool) search(c *conn, scope int, baseDN, filter string, attrs []string, sizeLimit int) (*Result, error) {
	if len(attrs) == 0 {
		attrs = []string{"1.1"} // no attributes (RFC 4511 §4.5.1.8)
	}
	req := goldap.NewSearchRequest(baseDN, scope, goldap.NeverDerefAliases, sizeLimit+1,
		int(math.Ceil(p.queryTimeout.Seconds())), false, filter, attrs, nil)
	req.EnforceSizeLimit = true
	sr, err := c.l.Search(req)
	out := &Result{}
	switch {
	case err == nil:
	case errors.Is(err, goldap.ErrSizeLimitExceeded),
		goldap.IsErrorAnyOf(err, goldap.LDAPResultSizeLimitExceeded, goldap.LDAPResultAdminLimitExceeded):
		out.More = true
	default:
		return nil, err
	}
	if sr != nil {
		for _, e := range sr.Entries {
			if len(out.Entries) == sizeLimit {
				out.More = true
				break
			}
			out.Entries = append(out.Entries, &Entry{DN: e.DN, attrs: e.Attributes})
		}
	}
	return out, nil
}

// UserBind checks a password by binding as dn with it. It returns nil when the server
// accepted them, an error wrapping ErrInvalidCredentials when it refused them, and
// ErrEmptyPassword, before anything is sent, for an empty password or DN.
//
// The bind happens on a pooled connection, which is then bound again as the service
// account before it returns to the pool; when that second bind fails, the connection is
// closed instead. The password is sent as the bind's credentials, nowhere else, and
// appears in no error.
func (p *Pool) UserBind(ctx context.Context, dn string, password []byte) error {
	if len(password) == 0 || dn == "" {
		return fmt.Errorf("ldap %s: bind: %w", p.server, ErrEmptyPassword)
	}
	err := p.run(ctx, "bind", func(c *conn) error {
		c.service = false
		err := c.l.Bind(dn, string(password))
		if c.l.IsClosing() || !isAnswer(err) {
			return err
		}
		if rerr := p.bindService(c); rerr == nil {
			c.service = true
		}
		return err
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("ldap %s: bind as %s: %w", p.server, dn, ErrInvalidCredentials)
	}
	return err
}

// bindService binds c as the service account, or anonymously when there is none.
func (p *Pool) bindService(c *conn) error {
	if p.bindDN == "" {
		return c.l.UnauthenticatedBind("")
	}
	return c.l.Bind(p.bindDN, p.bindPW)
}

// run runs op on a pooled connection under the query timeout and records what it says
// about the server's health.
func (p *Pool) run(ctx context.Context, what string, op func(*conn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ldap %s: %s: no time left: %w", p.server, what, err)
	}
	if err := p.health.Allow(); err != nil {
		return fmt.Errorf("%w; %s not sent", err, what)
	}
	queryDeadline := time.Now().Add(p.queryTimeout)
	opCtx, cancel := context.WithDeadline(ctx, queryDeadline)
	defer cancel()
	o := outcome{ctx: ctx, queryDeadline: queryDeadline}
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(opCtx)
		if err != nil {
			if errors.Is(err, health.ErrBusy) || errors.Is(err, errPoolClosed) {
				p.health.Abandon()
			} else {
				p.record(o, err)
			}
			return p.describe(o, what, err)
		}
		err = p.exec(opCtx, c, op)
		if err == nil || isAnswer(err) {
			p.health.Success()
			p.put(c)
			if err != nil {
				return fmt.Errorf("ldap %s: %s: %w", p.server, what, err)
			}
			return nil
		}
		p.discard(c)
		if reused && attempt == 0 && opCtx.Err() == nil {
			// The pooled connection had gone stale (a server restart, an idle cut):
			// try once more on a new one.
			continue
		}
		p.record(o, err)
		return p.describe(o, what, err)
	}
}

// exec runs op on c with the connection's deadline at opCtx's, and makes the connection
// fail at once when opCtx ends early.
func (p *Pool) exec(opCtx context.Context, c *conn, op func(*conn) error) error {
	if d, ok := opCtx.Deadline(); ok {
		_ = c.raw.SetDeadline(d)
	}
	stop := context.AfterFunc(opCtx, func() { _ = c.raw.SetDeadline(time.Unix(1, 0)) })
	err := op(c)
	if !stop() {
		// The deadline may have cut a response in half: never reuse the connection.
		c.service = false
		return err
	}
	_ = c.raw.SetDeadline(time.Time{})
	return err
}

// outcome tells why a failed operation ended: the caller's context, or the query
// timeout. A deadline cuts the connection at the instant it passes, so the I/O error may
// arrive before the context says it is done: the clock decides.
type outcome struct {
	ctx           context.Context // the caller's
	queryDeadline time.Time
}

// callerGaveUp reports whether the caller's context ended (or reached its deadline)
// before the query timeout did.
func (o outcome) callerGaveUp() bool {
	if o.ctx.Err() != nil {
		return true
	}
	d, ok := o.ctx.Deadline()
	return ok && d.Before(o.queryDeadline) && !time.Now().Before(d)
}

// timedOut reports whether the query timeout passed.
func (o outcome) timedOut() bool {
	return !o.callerGaveUp() && !time.Now().Before(o.queryDeadline)
}

// record tells the health state what a failed operation says about the server: nothing
// when the caller gave up first, otherwise that it could not be reached in time.
func (p *Pool) record(o outcome, err error) {
	if o.callerGaveUp() {
		p.health.Abandon()
		return
	}
	p.health.Failure(err)
}

// describe wraps an operation's error with the server and, for a deadline, the timeout.
func (p *Pool) describe(o outcome, what string, err error) error {
	if o.timedOut() {
		return fmt.Errorf("ldap %s: %s: no answer within %v: %w", p.server, what, p.queryTimeout, err)
	}
	return fmt.Errorf("ldap %s: %s: %w", p.server, what, err)
}

// isAnswer reports whether err is a result the server sent (the server is up and the
// connection in step), as opposed to a failure to reach it or to read its answer. busy
// and unavailable are answers that say the server cannot serve: they count as failures.
func isAnswer(err error) bool {
	if err == nil || errors.Is(err, goldap.ErrSizeLimitExceeded) {
		return true
	}
	var le *goldap.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.ResultCode {
	case goldap.LDAPResultBusy, goldap.LDAPResultUnavailable:
		return false
	}
	return le.ResultCode < goldap.ErrorNetwork
}

// get takes a connection: an idle one bound as the service account, or a new one. It
// waits at most the acquire timeout for a free slot.
func (p *Pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, false, errPoolClosed
	}
	t := time.NewTimer(p.acquireTimeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-t.C:
		return nil, false, fmt.Errorf("no connection within %v (all %d busy): %w", p.acquireTimeout, p.poolSize, health.ErrBusy)
	}
	for {
		select {
		case c := <-p.idle:
			if c.l.IsClosing() || time.Since(c.used) > idleTimeout {
				c.close()
				continue
			}
			return c, true, nil
		default:
		}
		break
	}
	c, err = p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, false, nil
}

// put returns c to the pool, or closes it when it is not bound as the service account,
// is broken, or the pool is closed.
func (p *Pool) put(c *conn) {
	defer func() { <-p.slots }()
	if !c.service || c.l.IsClosing() {
		c.close()
		return
	}
	c.used = time.Now()
	// Under the lock, so Close cannot drain the idle list between the check and the push.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.close()
		return
	}
	select {
	case p.idle <- c:
	default:
		c.close()
	}
}

// discard closes c and frees its slot.
func (p *Pool) discard(c *conn) {
	c.close()
	<-p.slots
}

func (c *conn) close() {
	_ = c.raw.SetDeadline(time.Unix(1, 0)) // never wait on a dead server to close
	_ = c.l.Close()
}

// dial connects (TCP, then TLS or StartTLS) and binds as the service account, all
// within the connect timeout and ctx.
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.connectTimeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", p.server)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })

	var nc net.Conn = raw
	if p.tls != nil && !p.startTLS {
		tc := tls.Client(raw, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			raw.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	l := goldap.NewConn(nc, nc != raw)
	l.Start()
	l.SetTimeout(p.queryTimeout)
	c := &conn{l: l, raw: raw}
	fail := func(what string, err error) (*conn, error) {
		stop()
		c.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w (%w)", what, err, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if p.startTLS {
		if err := l.StartTLS(p.tls); err != nil {
			return fail("StartTLS", err)
		}
	}
	if p.bindDN != "" {
		if err := l.Bind(p.bindDN, p.bindPW); err != nil {
			return fail("bind as the service account "+p.bindDN, err)
		}
	}
	if !stop() || l.IsClosing() {
		return fail("connect", errors.New("connection ended while it was set up"))
	}
	c.service = true
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// OnHealthChange registers fn to be called when the server goes down or comes back
// (see health.State.OnChange).
func (p *Pool) OnHealthChange(fn func(health.Snapshot)) { p.health.OnChange(fn) }
