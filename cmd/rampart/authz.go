package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/authz/builtin"
	"github.com/rampart-mqtt/rampart/internal/authz/file"
	"github.com/rampart-mqtt/rampart/internal/authz/httpsrc"
	"github.com/rampart-mqtt/rampart/internal/authz/ldapsrc"
	"github.com/rampart-mqtt/rampart/internal/authz/redissrc"
	"github.com/rampart-mqtt/rampart/internal/authz/sqlsrc"
	"github.com/rampart-mqtt/rampart/internal/broker"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// authzSetup is the authorization chain the configuration asks for.
type authzSetup struct {
	chain   *authz.Chain
	fixed   broker.ClientAuthorizer // the one answer when there is no source
	files   []*file.Source          // reloaded on SIGHUP
	closers []func()
}

func (a *authzSetup) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// authorizer adapts the chain to the broker's interface. With no source configured and
// no rules from authentication, every question has the same answer (no_match): such
// clients share one fixed authorizer instead of holding their own.
type authorizer struct {
	*authz.Chain
	fixed broker.ClientAuthorizer // nil when sources are configured
}

func (a authorizer) ForClient(info *clientinfo.Info, acl []authz.Rule) broker.ClientAuthorizer {
	if a.fixed != nil && len(acl) == 0 && !info.Superuser {
		return a.fixed
	}
	return a.Chain.ForClient(info, acl)
}

// fixedAnswer answers every question the same way.
type fixedAnswer bool

func (f fixedAnswer) Authorize(context.Context, authz.Action, string) bool { return bool(f) }

// fileWatchInterval is how often an ACL file is checked for changes.
const fileWatchInterval = 5 * time.Second

// buildAuthz builds the authorization sources and chain; db is the control database, and
// the sources that talk to a Redis, SQL or LDAP server take their connector from conns
// (shared with authentication), which closes it.
func buildAuthz(ctx context.Context, cfg *config.Config, db *controldb.DB, conns *connectors, log *slog.Logger) (_ *authzSetup, err error) {
	a := &authzSetup{}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	az := cfg.Authorization
	var sources []authz.Source
	for i, s := range az.Sources {
		if !s.Enable {
			continue
		}
		p := fmt.Sprintf("authorization.sources[%d] (%s)", i, s.Type)
		switch s.Type {
		case config.SourceFile:
			f, err := file.New(s.Path, log)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			a.files = append(a.files, f)
			go f.Watch(ctx, fileWatchInterval)
			sources = append(sources, f)
		case config.SourceBuiltIn:
			b, err := builtin.New(ctx, db, builtin.Config{MaxRules: s.MaxRules}, log)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			sources = append(sources, b)
		case config.SourceRedis:
			rdb, err := conns.redisClient(s.ServerConn, s.SSL, s.RequestTimeout)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			r, err := redissrc.NewWith(redissrc.Config{Cmd: s.Cmd, MaxRules: s.MaxRules, OnError: s.OnError}, rdb, log)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			a.closers = append(a.closers, func() { _ = r.Close() })
			sources = append(sources, authz.WithTTL(r, s.TTL.Duration()))
		case config.SourcePG, config.SourceMySQL:
			q, err := conns.sqlStatement(ctx, s.Type, s.ServerConn, s.SSL, s.RequestTimeout, s.Query, sqlsrc.QueryOptions())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			g, err := sqlsrc.New(sqlsrc.Config{Backend: s.Type, MaxRules: s.MaxRules, OnError: s.OnError}, q, log)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			a.closers = append(a.closers, g.Close)
			sources = append(sources, authz.WithTTL(g, s.TTL.Duration()))
		case config.SourceLDAP:
			pool, err := conns.ldapPool(s.ServerConn, s.SSL, s.RequestTimeout)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			l, err := ldapsrc.NewWith(ldapsrc.Config{Filter: s.Filter,
				PublishAttribute: s.PublishAttribute, SubscribeAttribute: s.SubscribeAttribute, AllAttribute: s.AllAttribute,
				MaxRules: s.MaxRules, OnError: s.OnError}, pool, log)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			a.closers = append(a.closers, l.Close)
			sources = append(sources, authz.WithTTL(l, s.TTL.Duration()))
		case config.SourceHTTP:
			h, err := httpsrc.New(httpConfig(s), log)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			a.closers = append(a.closers, h.Close)
			sources = append(sources, authz.WithTTL(h, s.TTL.Duration()))
		}
	}
	warnUnboundClientID(log, cfg, a.files)
	noMatch := authz.Deny
	if az.NoMatch == "allow" {
		noMatch = authz.Allow
	}
	if len(sources) == 0 && noMatch == authz.Deny {
		// Configuration refuses this unless every listener is on loopback: the
		// development default lets local clients do everything.
		noMatch = authz.Allow
		log.Warn("no authorization source: every client may publish and subscribe to every topic (listeners are loopback only)")
	}
	if len(sources) == 0 {
		a.fixed = fixedAnswer(noMatch == authz.Allow)
	}
	a.chain = authz.New(authz.Options{
		Sources: sources, NoMatch: noMatch, DisconnectOnDeny: az.DenyAction == "disconnect",
		Cache: authz.CacheOptions{Enable: az.Cache.Enable, MaxSize: az.Cache.MaxSize, TTL: az.Cache.TTL.Duration(),
			Excludes: az.Cache.Excludes},
		Log: log,
	})
	return a, nil
}

// reloadACLFiles re-reads every ACL file (on SIGHUP); a broken file keeps its old rules
// (the source logs why).
func (a *authzSetup) reloadACLFiles() {
	for _, f := range a.files {
		_ = f.Reload()
	}
}

// checkAuthz checks the authorization sources as buildAuthz would, without opening the
// control database: ACL files are read and compiled, HTTP sources validated.
func checkAuthz(cfg *config.Config, log *slog.Logger) error {
	var files []*file.Source
	for i, s := range cfg.Authorization.Sources {
		if !s.Enable {
			continue
		}
		p := fmt.Sprintf("authorization.sources[%d] (%s)", i, s.Type)
		var err error
		switch s.Type {
		case config.SourceFile:
			var f *file.Source
			if f, err = file.New(s.Path, slog.New(slog.DiscardHandler)); err == nil {
				files = append(files, f)
			}
		case config.SourceHTTP:
			err = httpConfig(s).Validate()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	warnUnboundClientID(log, cfg, files)
	return nil
}

func httpConfig(s config.AuthzSource) httpsrc.Config {
	return httpsrc.Config{
		Method: s.Method, URL: s.URL, Body: s.Body, Headers: s.Headers,
		RequestTimeout: s.RequestTimeout.Duration(), SSL: clientTLS(s.SSL),
		MaxConcurrency: s.MaxConcurrency, OnError: s.OnError, AllowPlainHTTP: s.AllowPlainHTTP,
	}
}

// openControlDB opens the control database in the data directory.
func openControlDB(ctx context.Context, cfg *config.Config) (*controldb.DB, error) {
	if err := ensureDir(cfg.Node.DataDir); err != nil {
		return nil, err
	}
	return controldb.Open(ctx, filepath.Join(cfg.Node.DataDir, controlDBFile))
}

// reloadOnSIGHUP runs reload on every SIGHUP until ctx ends.
func reloadOnSIGHUP(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload()
		}
	}
}
