package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authn/cinfo"
	"github.com/rampart-mqtt/rampart/internal/authn/httpauth"
	"github.com/rampart-mqtt/rampart/internal/authn/jwtauth"
	"github.com/rampart-mqtt/rampart/internal/authn/ldapauth"
	"github.com/rampart-mqtt/rampart/internal/authn/password"
	"github.com/rampart-mqtt/rampart/internal/authn/redisauth"
	"github.com/rampart-mqtt/rampart/internal/authn/sqlauth"
	"github.com/rampart-mqtt/rampart/internal/authn/x509auth"
	"github.com/rampart-mqtt/rampart/internal/broker"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/guard"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// authnSetup is the authentication the configuration asks for, built and ready for the
// broker, with what must be closed when the broker stops.
type authnSetup struct {
	service *authn.Service
	stats   *authn.Registry
	closers []func()
	users   *userStore // the built-in database, when an entry uses it
}

// Close releases the authenticators' goroutines and connections.
func (a *authnSetup) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// checkAuthn checks every authenticator's settings as buildAuthn would, without opening
// the user database or contacting any service.
func checkAuthn(ctx context.Context, cfg *config.Config) error {
	b := &chainBuilder{check: true, ctx: ctx, cfg: cfg, log: slog.New(slog.DiscardHandler), setup: &authnSetup{}}
	if _, err := b.chain("authentication", cfg.Authentication); err != nil {
		return err
	}
	for _, l := range allListenersNamed(cfg) {
		if _, err := b.chain(l.path+".authentication", l.Authentication); err != nil {
			return err
		}
	}
	return nil
}

// buildAuthn builds every configured authentication chain; the entries that talk to a
// Redis, SQL or LDAP server take their connector from conns, which closes it. Errors name
// the entry ("authentication[2]: ...") and stop the start.
func buildAuthn(ctx context.Context, cfg *config.Config, db *controldb.DB, conns *connectors, log *slog.Logger) (_ *authnSetup, err error) {
	a := &authnSetup{stats: authn.NewRegistry()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	b := &chainBuilder{ctx: ctx, cfg: cfg, db: db, conns: conns, log: log, setup: a}
	global, err := b.chain("authentication", cfg.Authentication)
	if err != nil {
		return nil, err
	}
	listeners := map[string]authn.Listener{}
	for _, l := range allListenersNamed(cfg) {
		pol := authn.Listener{Mode: authnMode(l.EnableAuthn)}
		if len(l.Authentication) > 0 {
			if pol.Chain, err = b.chain(l.path+".authentication", l.Authentication); err != nil {
				return nil, err
			}
		}
		listeners[l.key] = pol
	}
	s := cfg.AuthenticationSettings
	var gate authn.Gate
	if s.FailureLimit.Enable {
		f := s.FailureLimit
		lim, err := guard.NewFailureLimiter(guard.FailureLimiterConfig{
			MaxFailuresPerUser: f.MaxFailuresPerUser, MaxFailuresPerUserAnyAddress: f.MaxFailuresPerUserAnyAddress,
			MaxFailuresPerIP: f.MaxFailuresPerIP,
			Window:           f.Window.Duration(), Delay: f.Delay.Duration(), MaxDelay: f.MaxDelay.Duration(),
			Cooldown: f.Cooldown.Duration(), MaxEntries: f.MaxEntries,
			IPv4Prefix: f.IPv4Prefix, IPv6Prefix: f.IPv6Prefix,
		}, nil, log)
		if err != nil {
			return nil, fmt.Errorf("authentication_settings.failure_limit: %w", err)
		}
		gate = limiterGate{lim}
	}
	a.service = authn.NewService(authn.ServiceOptions{
		Global: global, Listeners: listeners, Gate: gate, Timeout: s.Timeout.Duration(), Log: log,
	})
	return a, nil
}

func authnMode(m config.AuthnMode) authn.Mode {
	switch m {
	case config.AuthnOff:
		return authn.ModeDisabled
	case config.AuthnQuickDenyAnonymous:
		return authn.ModeQuickDenyAnonymous
	}
	return authn.ModeEnabled
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// limiterGate adapts the guard's failure limiter to the authentication service.
type limiterGate struct{ l *guard.FailureLimiter }

func (g limiterGate) Admit(ctx context.Context, ip netip.Addr, username string) bool {
	v, err := g.l.Check(ctx, ip, username)
	return err == nil && !v.Refused
}
func (g limiterGate) Failure(ip netip.Addr, username string) { g.l.Failure(ip, username) }
func (g limiterGate) Success(ip netip.Addr, username string) { g.l.Success(ip, username) }

type chainBuilder struct {
	check  bool // only check the settings: open no database, start no goroutine
	db     *controldb.DB
	conns  *connectors      // the Redis, SQL and LDAP connectors, shared with authorization; nil with check
	hasher *password.Hasher // shared by the backends that verify password hashes
	ctx    context.Context
	cfg    *config.Config
	log    *slog.Logger
	setup  *authnSetup
}

// chain builds one authentication list.
func (b *chainBuilder) chain(path string, list []config.Authenticator) (*authn.Chain, error) {
	var entries []authn.Entry
	var enhanced []authn.Enhanced
	for i, e := range list {
		if !e.Enable {
			continue
		}
		p := fmt.Sprintf("%s[%d]", path, i)
		pre, err := precondition(e.Precondition, b.log)
		if err != nil {
			return nil, fmt.Errorf("%s.precondition: %w", p, err)
		}
		a, enh, err := b.entry(e)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", p, e.Kind(), err)
		}
		if a != nil {
			entries = append(entries, authn.Entry{Authenticator: a, Precondition: pre})
		}
		if enh != nil {
			enhanced = append(enhanced, enh)
		}
	}
	return authn.NewChain(entries, enhanced, b.setup.stats, b.log), nil
}

// precondition compiles an entry's precondition with the cinfo rules' language.
func precondition(expr string, log *slog.Logger) (func(*clientinfo.Info) bool, error) {
	if expr == "" {
		return nil, nil
	}
	rule, err := cinfo.New(cinfo.Config{Checks: []cinfo.Check{{IsMatch: []string{expr}, Result: cinfo.ResultAllow}}}, log)
	if err != nil {
		return nil, err
	}
	return func(info *clientinfo.Info) bool {
		return rule.Authenticate(context.Background(), info, nil).Outcome == authn.Allow
	}, nil
}

// clientTLS maps an entry's ssl keys; at their defaults they are the zero options
// (verify the server against the system roots).
func clientTLS(s config.ClientSSL) tlsconf.ClientOptions {
	o := tlsconf.ClientOptions{
		CACertFile: s.CACertFile, CertFile: s.CertFile, KeyFile: s.KeyFile, ServerName: s.ServerNameIndication,
		Verify: string(s.Verify), AllowVerifyNone: s.AllowVerifyNone,
	}
	if o.Verify == tlsconf.VerifyPeer {
		o.Verify = "" // the default
	}
	return o
}

// entry builds one authenticator (or enhanced method).
func (b *chainBuilder) entry(e config.Authenticator) (authn.Authenticator, authn.Enhanced, error) {
	switch e.Kind() {
	case config.MechX509:
		a, err := x509auth.New(x509auth.Config{RequireClientIDMatch: e.RequireClientIDMatch})
		return a, nil, err
	case config.MechCinfo:
		c := cinfo.Config{}
		for _, ch := range e.Checks {
			c.Checks = append(c.Checks, cinfo.Check{IsMatch: ch.IsMatch, Result: ch.Result})
		}
		a, err := cinfo.New(c, b.log)
		return a, nil, err
	case config.MechJWT:
		req, disc := e.RequireExp, e.DisconnectAfterExpire
		jc := jwtauth.Config{
			From: e.From, UseJWKS: e.UseJWKS, Algorithm: e.Algorithm, Secret: e.Secret,
			SecretBase64Encoded: e.SecretBase64Encoded, PublicKey: e.PublicKey,
			RequireExp: &req, Leeway: e.Leeway.Duration(), VerifyClaims: e.VerifyClaims,
			ACLClaimName: e.ACLClaimName, ClientAttrs: e.ClientAttrs, IsSuperuserClaim: e.IsSuperuserClaim,
			DisconnectAfterExpire: &disc,
		}
		if e.UseJWKS {
			// The JWKS keys; with a secret or public key they stay unset (and a
			// non-default value of them is refused by the configuration check).
			jc.Endpoint, jc.SSL = e.Endpoint, clientTLS(e.SSL)
			jc.RefreshInterval, jc.RequestTimeout = e.RefreshInterval.Duration(), e.RequestTimeout.Duration()
		}
		if b.check {
			return nil, nil, jc.Validate()
		}
		a, err := jwtauth.New(b.ctx, jc, b.log)
		if err != nil {
			return nil, nil, err
		}
		b.setup.closers = append(b.setup.closers, a.Close)
		return a, nil, nil
	case config.MechPasswordBased + ":" + config.BackendHTTP:
		hc := httpauth.Config{
			Method: e.Method, URL: e.URL, Body: e.Body, Headers: e.Headers,
			RequestTimeout: e.RequestTimeout.Duration(), SSL: clientTLS(e.SSL), MaxConcurrency: e.MaxConcurrency,
			OnError: e.OnError, AllowPlainHTTP: e.AllowPlainHTTP,
		}
		if b.check {
			return nil, nil, hc.Validate()
		}
		a, err := httpauth.New(b.ctx, hc, b.log)
		if err != nil {
			return nil, nil, err
		}
		b.setup.closers = append(b.setup.closers, a.Close)
		return a, nil, nil
	case config.MechPasswordBased + ":" + config.BackendBuiltIn, config.MechSCRAM + ":" + config.BackendBuiltIn:
		return b.builtin(e)
	case config.MechPasswordBased + ":" + config.BackendRedis:
		h := e.PasswordHashAlgorithm
		c := redisauth.Config{Cmd: e.Cmd, OnError: e.OnError, PasswordHashAlgorithm: redisauth.HashAlgorithm{
			Name: h.Name, MacFun: h.MacFun, SaltPosition: h.SaltPosition, Iterations: h.Iterations}}
		if b.check {
			// The connection keys are mapped (the database number checked); the command
			// template is checked when the broker starts.
			_, err := redisConfig(e.ServerConn, e.SSL, e.RequestTimeout)
			return nil, nil, err
		}
		hasher, err := b.sharedHasher()
		if err != nil {
			return nil, nil, err
		}
		rdb, err := b.conns.redisClient(e.ServerConn, e.SSL, e.RequestTimeout)
		if err != nil {
			return nil, nil, err
		}
		a, err := redisauth.NewWith(c, rdb, hasher, b.log)
		if err != nil {
			return nil, nil, err
		}
		b.setup.closers = append(b.setup.closers, func() { _ = a.Close() })
		return a, nil, nil
	case config.MechPasswordBased + ":" + config.BackendPG, config.MechPasswordBased + ":" + config.BackendMySQL:
		h := e.PasswordHashAlgorithm
		if h.Name == "argon2id" {
			h.Name = sqlauth.EncodedHash // Rampart's own self-describing encoding
		}
		c := sqlauth.Config{Backend: e.Backend, OnError: e.OnError,
			PasswordHashAlgorithm: sqlauth.HashAlgorithm{Name: h.Name, MacFun: h.MacFun, SaltPosition: h.SaltPosition, Iterations: h.Iterations}}
		if b.check {
			q, err := compileSQL(e.Backend, e.Query, sqlauth.QueryOptions())
			if err != nil {
				return nil, nil, err
			}
			return nil, nil, c.Validate(q)
		}
		hasher, err := b.sharedHasher()
		if err != nil {
			return nil, nil, err
		}
		q, err := b.conns.sqlStatement(b.ctx, e.Backend, e.ServerConn, e.SSL, e.RequestTimeout, e.Query, sqlauth.QueryOptions())
		if err != nil {
			return nil, nil, err
		}
		a, err := sqlauth.New(c, q, hasher, b.log)
		if err != nil {
			return nil, nil, err
		}
		b.setup.closers = append(b.setup.closers, a.Close)
		return a, nil, nil
	case config.MechPasswordBased + ":" + config.BackendLDAP:
		c := ldapauth.Config{Backend: ldapConfig(e.ServerConn, e.SSL, e.RequestTimeout), Method: e.Method,
			BindDN: e.BindDN, Filter: e.Filter, IsSuperuserAttribute: e.IsSuperuserAttribute, OnError: e.OnError}
		if e.Method == ldapauth.MethodHash {
			c.PasswordAttribute = e.PasswordAttribute // the configuration refuses it otherwise
		}
		if b.check {
			return nil, nil, c.Validate()
		}
		hasher, err := b.sharedHasher()
		if err != nil {
			return nil, nil, err
		}
		pool, err := b.conns.ldapPool(e.ServerConn, e.SSL, e.RequestTimeout)
		if err != nil {
			return nil, nil, err
		}
		a, err := ldapauth.NewWith(c, pool, hasher, b.log)
		if err != nil {
			return nil, nil, err
		}
		b.setup.closers = append(b.setup.closers, a.Close)
		return a, nil, nil
	}
	return nil, nil, errors.New("unsupported mechanism")
}

// namedListener is a listener's shared settings with its names.
type namedListener struct {
	config.Listener
	key  string // "tcp:default", as the broker names it
	path string // "listeners.tcp.default", as the configuration does
}

// allListenersNamed returns every listener's shared settings with its names.
func allListenersNamed(cfg *config.Config) []namedListener {
	var out []namedListener
	add := func(typ, name string, l config.Listener) {
		out = append(out, namedListener{Listener: l, key: typ + ":" + name, path: "listeners." + typ + "." + name})
	}
	for _, name := range sortedNames(cfg.Listeners.TCP) {
		add("tcp", name, cfg.Listeners.TCP[name])
	}
	for _, name := range sortedNames(cfg.Listeners.WS) {
		add("ws", name, cfg.Listeners.WS[name].Listener)
	}
	for _, name := range sortedNames(cfg.Listeners.SSL) {
		add("ssl", name, cfg.Listeners.SSL[name].Listener)
	}
	for _, name := range sortedNames(cfg.Listeners.WSS) {
		add("wss", name, cfg.Listeners.WSS[name].Listener)
	}
	return out
}

// disconnectOnUserChange disconnects a built-in user's live sessions when the user is
// deleted or its password or superuser flag changes (MQTT 5: DISCONNECT 0x98): they
// reconnect, and authenticate, under the account as it is now.
func (a *authnSetup) disconnectOnUserChange(srv *broker.Server) {
	if a.users == nil {
		return
	}
	for idType, au := range a.users.byType {
		au.OnUserChange(func(id string) {
			srv.DisconnectClients(func(info *clientinfo.Info) bool {
				if idType == controldb.ClientID {
					return info.ClientID == id
				}
				return info.Username == id
			}, packet.AdministrativeAction)
		})
	}
}
