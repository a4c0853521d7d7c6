package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-mqtt/rampart/internal/broker"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/listener"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func newServeCommand() *cobra.Command {
	var cfgPath, cpuProfile string
	var check bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker",
		Long: "Run the broker. Without --config (or RAMPART_CONFIG) it runs the safe development\n" +
			"default: MQTT on 127.0.0.1:1883 and WebSocket on 127.0.0.1:8083, data in ./data.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				cfgPath = os.Getenv(config.EnvConfigFile)
			}
			cfg, err := config.Load(cfgPath, os.Environ())
			if err != nil {
				return err
			}
			if check {
				// The TLS files are part of the configuration: read them too; and every
				// authenticator's settings are checked (expressions compiled, key files read).
				if _, err := tlsReloaders(cfg, nil); err != nil {
					return err
				}
				if err := checkAuthn(cmd.Context(), cfg); err != nil {
					return err
				}
				if err := checkAuthz(cfg, newLogger(cmd.ErrOrStderr(), cfg.Log)); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
				return err
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			return serve(cmd.Context(), cfg, newLogger(cmd.ErrOrStderr(), cfg.Log))
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().BoolVar(&check, "check-config", false, "validate the configuration and exit")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) to this file until the broker stops")
	return cmd
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.LogFormat("json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the broker until ctx is cancelled (SIGINT or SIGTERM).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) (err error) {
	o := brokerOptions(cfg, log)
	if cfg.Node.Durability == config.DurabilitySync {
		st, err := store.Open(ctx, store.Options{Dir: cfg.Node.DataDir, Sync: true, Logger: log})
		if err != nil {
			return fmt.Errorf("open the store in %s: %w", cfg.Node.DataDir, err)
		}
		defer func() {
			if cerr := st.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close the store: %w", cerr))
			}
		}()
		o.Store = st
	}
	// Control data (users, rules, bans) live in SQLite beside the message store.
	db, err := openControlDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close the control database: %w", cerr))
		}
	}()
	// One connector per configured Redis, SQL or LDAP connection, shared by the
	// authenticators and the authorization sources; deferred first, it is closed after
	// both of them.
	conns := newConnectors(log)
	defer conns.Close()
	auth, err := buildAuthn(ctx, cfg, db, conns, log)
	if err != nil {
		return err
	}
	defer auth.Close()
	o.Authenticator = auth.service
	gd, err := buildGuard(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	o.Guard = gd
	az, err := buildAuthz(ctx, cfg, db, conns, log)
	if err != nil {
		return err
	}
	defer az.Close()
	o.Authorizer = authorizer{Chain: az.chain, fixed: az.fixed}
	go reloadOnSIGHUP(ctx, az.reloadACLFiles)
	srv := broker.New(o)
	gd.disconnectOnBan(srv)
	auth.disconnectOnUserChange(srv)
	if err := srv.Restore(ctx); err != nil {
		return err
	}
	// The TLS files are read before any port is bound, so a bad file binds nothing.
	reloaders, err := tlsReloaders(cfg, log)
	if err != nil {
		return err
	}
	ls, err := openListeners(ctx, cfg, reloaders, log)
	if err != nil {
		return err
	}
	watchTLS(ctx, srv, reloaders, log)
	log.Info("rampart starting", "version", version, "node", cfg.Node.Name,
		"durability", string(cfg.Node.Durability), "data_dir", cfg.Node.DataDir)
	err = srv.Serve(ctx, ls)
	log.Info("rampart stopped")
	return err
}

// openListeners binds every enabled listener of the configuration, in a stable order;
// on error the ones already bound are closed.
func openListeners(ctx context.Context, cfg *config.Config, tlsByName map[string]*tlsListener, log *slog.Logger) ([]listener.Listener, error) {
	var ls []listener.Listener
	add := func(l config.Listener, open func() (listener.Listener, error)) error {
		if !l.Enable {
			return nil
		}
		nl, err := open()
		if err != nil {
			return err
		}
		ls = append(ls, nl)
		logAnonymous(log, nl.Name(), l, len(cfg.Authentication) > 0)
		return nil
	}
	maxRead := cfg.MQTT.MaxPacketSize.Bytes() + 16 // one WebSocket message carries at most one packet's worth
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners.TCP)) {
		l := cfg.Listeners.TCP[name]
		errs = append(errs, add(l, func() (listener.Listener, error) {
			return listener.NewTCP(ctx, tcpOptions(name, l, log))
		}))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners.WS)) {
		l := cfg.Listeners.WS[name]
		errs = append(errs, add(l.Listener, func() (listener.Listener, error) {
			return listener.NewWS(ctx, wsOptions(name, l, maxRead, log))
		}))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners.SSL)) {
		l := cfg.Listeners.SSL[name]
		errs = append(errs, add(l.Listener, func() (listener.Listener, error) {
			o := tcpOptions(name, l.Listener, log)
			o.TLS, o.HandshakeTimeout = tlsByName["ssl:"+name].r.Config(), l.SSLOptions.HandshakeTimeout.Duration()
			return listener.NewTCP(ctx, o)
		}))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners.WSS)) {
		l := cfg.Listeners.WSS[name]
		errs = append(errs, add(l.Listener, func() (listener.Listener, error) {
			o := wsOptions(name, l.WSListener, maxRead, log)
			o.TLS, o.HandshakeTimeout = tlsByName["wss:"+name].r.Config(), l.SSLOptions.HandshakeTimeout.Duration()
			return listener.NewWS(ctx, o)
		}))
	}
	if err := errors.Join(errs...); err != nil {
		for _, l := range ls {
			_ = l.Close()
		}
		return nil, err
	}
	return ls, nil
}

// tcpOptions are the options every TCP-based listener takes from its configuration.
func tcpOptions(name string, l config.Listener, log *slog.Logger) listener.TCPOptions {
	return listener.TCPOptions{Name: name, Bind: l.Bind, MaxConnections: limit(l.MaxConnections), Logger: log,
		Access: accessRules(l), Proxy: proxyOptions(l), MaxConnRate: connRate(l), PerIP: perIPLimits(l)}
}

// wsOptions are the options every WebSocket listener takes from its configuration.
func wsOptions(name string, w config.WSListener, maxRead int64, log *slog.Logger) listener.WSOptions {
	return listener.WSOptions{Name: name, Bind: w.Bind, Path: w.Path, MaxConnections: limit(w.MaxConnections),
		CheckOrigin: w.CheckOrigin, AllowedOrigins: w.AllowedOrigins, ReadLimit: maxRead, Logger: log,
		Access: accessRules(w.Listener), Proxy: proxyOptions(w.Listener), MaxConnRate: connRate(w.Listener),
		PerIP: perIPLimits(w.Listener)}
}

// perIPLimits are a listener's limits on the connections of one client address.
func perIPLimits(l config.Listener) listener.PerIPLimits {
	return listener.PerIPLimits{MaxConnections: limit(l.MaxConnectionsPerIP), MaxPreauth: limit(l.MaxPreauthConnectionsPerIP)}
}

// logAnonymous says at start when a listener lets clients in without authentication: no
// chain applies to it (or enable_authn: false) and it is on loopback or allow_anonymous.
func logAnonymous(log *slog.Logger, name string, l config.Listener, globalChain bool) {
	chain := l.EnableAuthn != config.AuthnOff && (globalChain || len(l.Authentication) > 0)
	switch {
	case chain:
		return
	case l.IsLoopback():
		log.Warn("anonymous clients allowed: listener is on loopback only", "listener", name, "bind", l.Bind)
	case l.AllowAnonymous:
		log.Warn("anonymous clients allowed on a non-loopback listener (allow_anonymous: true)", "listener", name, "bind", l.Bind)
	}
}

func limit(l config.Limit) int64 {
	if l.Unlimited() {
		return 0
	}
	return int64(l)
}

// brokerOptions maps the configuration onto the broker's options.
func brokerOptions(cfg *config.Config, log *slog.Logger) broker.Options {
	m := cfg.MQTT
	o := broker.Defaults()
	o.NodeName = cfg.Node.Name
	o.IdleTimeout = m.IdleTimeout.Duration()
	o.MaxPacketSize = int(m.MaxPacketSize.Bytes())
	o.MaxClientIDLen = m.MaxClientIDLen
	o.MaxTopicLevels = m.MaxTopicLevels
	o.MaxTopicLength = m.MaxTopicLength
	o.MaxQoS = byte(m.MaxQoSAllowed)
	o.MaxInflight = m.MaxInflight
	o.MaxMqueueLen = m.MaxMqueueLen
	o.MaxMqueueBytes = m.MaxMqueueBytes.Bytes()
	o.MqueueStoreQoS0 = m.MqueueStoreQoS0
	o.MaxAwaitingRel = m.MaxAwaitingRel
	o.AwaitRelTimeout = m.AwaitRelTimeout.Duration()
	o.SessionExpiry = m.SessionExpiryInterval.Duration()
	o.KeepaliveMultiplier = m.KeepaliveMultiplier
	o.ServerKeepAlive = uint16(m.ServerKeepalive.Duration().Seconds())
	o.MaxKeepAlive = uint16(m.MaxKeepalive)
	o.RetainAvailable = m.RetainAvailable
	o.WildcardSubscription = m.WildcardSubscription
	o.SharedSubscription = m.SharedSubscription
	o.SharedStrategy = string(m.SharedSubscriptionStrategy)
	o.MaxTopicAlias = uint16(m.MaxTopicAlias)
	o.UpgradeQoS = m.UpgradeQoS
	o.MaxConnectPacketSize = int(m.MaxConnectPacketSize.Bytes())
	o.MaxSubscriptions = int(m.MaxSubscriptions) // infinity is -1 for both
	o.MaxPublishRate = m.MaxPublishRate
	o.MaxPublishBytesRate = m.MaxPublishBytesRate.Bytes()
	o.MaxControlRate = m.MaxControlRate
	o.RateLimitReject = m.RateLimitOnExceed == config.RateLimitReject
	o.MaxListenerPublishRate = m.MaxListenerPublishRate
	o.MaxConnectionsPerUsername = int(limit(m.MaxConnectionsPerUsername))
	o.MaxSessions = int(limit(m.MaxSessions))
	o.MaxConnectionLifetime = m.MaxConnectionLifetime.Duration()
	o.MaxRetained = int(m.MaxRetainedMessages)
	o.MaxRetainedPayload = int(m.MaxRetainedPayloadSize.Bytes())
	o.MaxRetainedBytes = m.MaxRetainedBytes.Bytes()
	o.RetainedExpiry = m.RetainedExpiry.Duration()
	o.MaxMemoryBytes = m.MaxMemoryQueuedBytes.Bytes() // 0: the broker sizes it
	o.SysInterval = cfg.SysTopics.SysMsgInterval.Duration()
	o.PerListener = make(map[string]broker.ConnLimits)
	for name, l := range cfg.Listeners.TCP {
		o.PerListener["tcp:"+name] = connLimits(l.TCPOptions)
	}
	for name, l := range cfg.Listeners.WS {
		o.PerListener["ws:"+name] = connLimits(l.TCPOptions)
	}
	for name, l := range cfg.Listeners.SSL {
		o.PerListener["ssl:"+name] = connLimits(l.TCPOptions)
		addCertIdentity(&o, "ssl:"+name, l.CertIdentity)
	}
	for name, l := range cfg.Listeners.WSS {
		o.PerListener["wss:"+name] = connLimits(l.TCPOptions)
		addCertIdentity(&o, "wss:"+name, l.CertIdentity)
	}
	o.Logger = log
	o.Version = version
	return o
}

func connLimits(t config.TCPOptions) broker.ConnLimits {
	return broker.ConnLimits{SendTimeout: t.SendTimeout.Duration(), HighWatermark: int(t.HighWatermark.Bytes())}
}

func addCertIdentity(o *broker.Options, listener string, id config.CertIdentity) {
	if id.PeerCertAsUsername == "" && id.PeerCertAsClientID == "" {
		return
	}
	if o.CertIdentity == nil {
		o.CertIdentity = make(map[string]broker.CertAs)
	}
	o.CertIdentity[listener] = broker.CertAs{Username: string(id.PeerCertAsUsername), ClientID: string(id.PeerCertAsClientID)}
}

// tlsListener is the live TLS material of one ssl or wss listener.
type tlsListener struct {
	r          *tlsconf.Reloader
	rev        *tlsconf.Revocation // nil without crl_files or crl_from_distribution_points
	crlRefresh time.Duration
}

// tlsReloaders reads the certificate and CRL files of every enabled ssl and wss listener;
// errors name the listener and the file.
func tlsReloaders(cfg *config.Config, log *slog.Logger) (map[string]*tlsListener, error) {
	out := make(map[string]*tlsListener)
	add := func(kind, name string, enable bool, o config.SSLOptions) error {
		if !enable {
			return nil
		}
		r, err := tlsconf.NewReloader(o.TLSOptions(), log)
		if err != nil {
			return fmt.Errorf("listeners.%s.%s.ssl_options: %w", kind, name, err)
		}
		tl := &tlsListener{r: r, crlRefresh: o.CRLRefreshInterval.Duration()}
		if ro, ok := o.RevocationOptions(); ok {
			ro.Logger = log
			if tl.rev, err = tlsconf.NewRevocation(ro); err != nil {
				return fmt.Errorf("listeners.%s.%s.ssl_options: %w", kind, name, err)
			}
			r.UseRevocation(tl.rev)
		}
		out[kind+":"+name] = tl
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners.SSL)) {
		l := cfg.Listeners.SSL[name]
		if err := add("ssl", name, l.Enable, l.SSLOptions); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners.WSS)) {
		l := cfg.Listeners.WSS[name]
		if err := add("wss", name, l.Enable, l.SSLOptions); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tlsPollInterval is how often certificate, key and CA files are checked for changes.
const tlsPollInterval = 5 * time.Second

// watchTLS reloads the TLS files of every listener when they change and on SIGHUP, and
// re-reads CRLs on their interval and on SIGHUP, until ctx ends. New handshakes use what
// was loaded; established connections stay, except those whose certificate a refreshed
// CRL revokes: they are disconnected (MQTT 5: 0x87). SIGHUP is always caught, so it never
// ends the broker.
func watchTLS(ctx context.Context, srv *broker.Server, tls map[string]*tlsListener, log *slog.Logger) {
	refreshCRL := func(name string, tl *tlsListener, why string) {
		if err := tl.rev.Refresh(ctx); err != nil {
			log.Error("CRL refresh failed; the previous lists stay in use", "listener", name, "why", why, "err", err)
		}
		n := srv.DisconnectCerts(func(listener string, c *clientinfo.Cert) bool {
			return listener == name && tl.rev.Revoked(c.Issuer, c.Serial)
		}, packet.NotAuthorized)
		if n > 0 {
			log.Warn("disconnected clients whose certificate is now revoked", "listener", name, "clients", n)
		}
	}
	for name, tl := range tls {
		go tl.r.Watch(ctx, tlsPollInterval, name)
		if tl.rev != nil {
			go func() {
				t := time.NewTicker(tl.crlRefresh)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						refreshCRL(name, tl, "interval")
					}
				}
			}()
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading TLS files", "listeners", len(tls))
				for _, name := range slices.Sorted(maps.Keys(tls)) {
					tls[name].r.ReloadAndLog(name, "SIGHUP")
					if tls[name].rev != nil {
						refreshCRL(name, tls[name], "SIGHUP")
					}
				}
			}
		}
	}()
}

// accessRules parses a listener's access_rules (validated already) and adds its
// per-address connection rate.
func accessRules(l config.Listener) *listener.AccessRules {
	a, _ := listener.ParseAccessRules(l.AccessRules)
	return a.WithPerIPRate(listener.RateLimit{Rate: float64(l.MaxConnRatePerIP), Burst: l.MaxConnRatePerIP})
}

func connRate(l config.Listener) listener.RateLimit {
	return listener.RateLimit{Rate: float64(l.MaxConnRate), Burst: l.MaxConnRate}
}

// proxyOptions returns the PROXY protocol settings of a listener, nil when it is off.
func proxyOptions(l config.Listener) *listener.ProxyOptions {
	if !l.ProxyProtocol {
		return nil
	}
	trusted, _ := config.ProxyTrusted(l.ProxyProtocolTrusted) // validated
	return &listener.ProxyOptions{Trusted: trusted, Timeout: l.ProxyProtocolTimeout.Duration()}
}
