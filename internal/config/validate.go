package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rampart-mqtt/rampart/internal/listener"
)

// MaxPacketSizeLimit is the largest MQTT packet there can be: a fixed header of 5 bytes
// and the largest Remaining Length, 268435455.
const MaxPacketSizeLimit Size = 268435460

// Validate checks every value against its range or set and the configuration as a whole
// (at least one enabled listener, no two on one address, no anonymous access off
// loopback without an explicit opt-in). It returns every problem, joined with
// errors.Join, each an *Error naming its key path.
func (c *Config) Validate() error { return c.validate(nil) }

type checker struct {
	origins origins
	errs    []error
}

func (ch *checker) add(path, format string, args ...any) {
	ch.errs = append(ch.errs, &Error{Source: ch.origins.of(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (ch *checker) enum(path string, err error) {
	if err != nil {
		ch.add(path, "%v", err)
	}
}

func (ch *checker) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		ch.add(path, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func (ch *checker) durRange(path string, d Duration, lo, hi time.Duration) {
	if time.Duration(d) < lo || time.Duration(d) > hi {
		ch.add(path, "must be between %s and %s, got %s", Duration(lo), Duration(hi), d)
	}
}

func (c *Config) validate(o origins) error {
	ch := &checker{origins: o}
	c.checkNode(ch)
	ch.enum("log.level", checkEnum(c.Log.Level, LogDebug, LogInfo, LogWarn, LogError))
	ch.enum("log.format", checkEnum(c.Log.Format, LogText, LogJSON))
	c.checkListeners(ch)
	checkAuthentication(ch, "authentication", c.Authentication)
	c.checkAuthnSettings(ch)
	c.checkGuard(ch)
	c.checkMQTT(ch)
	if d := c.SysTopics.SysMsgInterval; d != 0 && d.Duration() < time.Second {
		ch.add("sys_topics.sys_msg_interval", "must be 0 (disabled) or at least 1s, got %s", d)
	}
	return errors.Join(ch.errs...)
}

func (c *Config) checkNode(ch *checker) {
	name := c.Node.Name
	switch {
	case name == "":
		ch.add("node.name", "must not be empty")
	case len(name) > 255:
		ch.add("node.name", "must be at most 255 bytes, got %d", len(name))
	case strings.ContainsAny(name, "/+#"):
		ch.add("node.name", "must not contain '/', '+' or '#': it is one level of $SYS/brokers/<name>/, got %q", name)
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		ch.add("node.name", "must be printable UTF-8, got %q", name)
	}
	if c.Node.DataDir == "" {
		ch.add("node.data_dir", "must not be empty")
	}
	ch.enum("node.durability", checkEnum(c.Node.Durability, DurabilitySync, DurabilityNone))
}

// bound is an enabled listener with a bind address that parsed.
type bound struct {
	path  string
	bind  string
	hosts []string // nil: every interface
	port  int
	anon  bool // allow_anonymous
	mtls  bool // every client must present a certificate verified against the listener's CA

	authnMode AuthnMode // enable_authn
	ownChain  bool      // the listener has its own authentication list
}

func (c *Config) checkListeners(ch *checker) {
	var enabled []bound
	for _, name := range sortedKeys(c.Listeners.TCP) {
		l := c.Listeners.TCP[name]
		path := "listeners.tcp." + name
		if b, ok := checkListener(ch, path, name, l); ok {
			enabled = append(enabled, b)
		}
	}
	for _, name := range sortedKeys(c.Listeners.WS) {
		w := c.Listeners.WS[name]
		path := "listeners.ws." + name
		if b, ok := checkListener(ch, path, name, w.Listener); ok {
			enabled = append(enabled, b)
		}
		checkWS(ch, path, w)
	}
	for _, name := range sortedKeys(c.Listeners.SSL) {
		l := c.Listeners.SSL[name]
		path := "listeners.ssl." + name
		if b, ok := checkListener(ch, path, name, l.Listener); ok {
			b.mtls = l.SSLOptions.requiresClientCert()
			enabled = append(enabled, b)
		}
		checkTLS(ch, path, l.SSLOptions, l.CertIdentity)
	}
	for _, name := range sortedKeys(c.Listeners.WSS) {
		w := c.Listeners.WSS[name]
		path := "listeners.wss." + name
		if b, ok := checkListener(ch, path, name, w.Listener); ok {
			b.mtls = w.SSLOptions.requiresClientCert()
			enabled = append(enabled, b)
		}
		checkWS(ch, path, w.WSListener)
		checkTLS(ch, path, w.SSLOptions, w.CertIdentity)
	}
	if len(enabled) == 0 && !c.anyEnabled() {
		ch.add("listeners", "no listener is enabled; enable at least one")
	}
	for i, b := range enabled {
		for _, a := range enabled[:i] {
			if overlaps(a, b) {
				ch.add(b.path+".bind", "binds %s, which overlaps %s (bind %s)", b.bind, a.path, a.bind)
				break
			}
		}
	}
	anyPublic := false
	for _, b := range enabled {
		anyPublic = anyPublic || !allLoopback(b.hosts)
	}
	c.checkAuthorization(ch, anyPublic)
	for _, b := range enabled {
		// A listener that requires a verified client certificate authenticates every
		// client by it; otherwise it needs a chain (its own or the global one).
		authenticated := b.authnMode != AuthnOff && (b.ownChain || len(c.Authentication) > 0)
		if !allLoopback(b.hosts) && !b.anon && !b.mtls && !authenticated {
			why := "with no authenticator; configure authentication"
			if b.authnMode == AuthnOff {
				why = "with enable_authn: false; turn authentication on"
			}
			ch.add(b.path+".bind", "binds %s (not loopback) %s or set allow_anonymous: true explicitly", b.bind, why)
		}
	}
}

// checkWS checks the HTTP side of a ws or wss listener.
func checkWS(ch *checker, path string, w WSListener) {
	if !strings.HasPrefix(w.Path, "/") {
		ch.add(path+".path", "must start with '/', got %q", w.Path)
	} else if strings.ContainsAny(w.Path, "?# ") || strings.IndexFunc(w.Path, unicode.IsControl) >= 0 {
		ch.add(path+".path", "must be a plain URL path without query, fragment or spaces, got %q", w.Path)
	}
	for i, origin := range w.AllowedOrigins {
		if err := checkOrigin(origin); err != nil {
			ch.add(fmt.Sprintf("%s.allowed_origins[%d]", path, i), "%v", err)
		}
	}
}

// checkTLS checks a listener's ssl_options and certificate identity settings. The files
// themselves are read when the listener starts (and by --check-config).
func checkTLS(ch *checker, path string, o SSLOptions, id CertIdentity) {
	sp := path + ".ssl_options"
	if o.HandshakeTimeout <= 0 || o.HandshakeTimeout > Duration(5*time.Minute) {
		ch.add(sp+".handshake_timeout", "must be between 1ms and 5m, got %s", o.HandshakeTimeout)
	}
	if len(o.CRLFiles) > 0 && o.Verify != VerifyPeer {
		ch.add(sp+".crl_files", "need verify: verify_peer (revocation applies to client certificates)")
	}
	if o.CRLRefreshInterval < Duration(time.Second) {
		ch.add(sp+".crl_refresh_interval", "must be at least 1s, got %s", o.CRLRefreshInterval)
	}
	if o.CRLGrace < 0 {
		ch.add(sp+".crl_grace", "must not be negative, got %s", o.CRLGrace)
	}
	if o.CRLFromDistributionPoints && o.Verify != VerifyPeer {
		ch.add(sp+".crl_from_distribution_points", "needs verify: verify_peer (revocation applies to client certificates)")
	}
	if o.CRLHTTPTimeout <= 0 || o.CRLHTTPTimeout > Duration(5*time.Minute) {
		ch.add(sp+".crl_http_timeout", "must be between 1ms and 5m, got %s", o.CRLHTTPTimeout)
	}
	if o.OCSP.RefreshInterval < Duration(time.Second) {
		ch.add(sp+".ocsp.refresh_interval", "must be at least 1s, got %s", o.OCSP.RefreshInterval)
	}
	if o.OCSP.RefreshHTTPTimeout <= 0 || o.OCSP.RefreshHTTPTimeout > Duration(5*time.Minute) {
		ch.add(sp+".ocsp.refresh_http_timeout", "must be between 1ms and 5m, got %s", o.OCSP.RefreshHTTPTimeout)
	}
	ch.enum(sp+".ocsp.client_ocsp_on_error", checkEnum(o.OCSP.ClientOCSPOnError, OCSPOnErrorDeny, OCSPOnErrorAllow))
	// The rest (files named, versions, ciphers, curves, verify, depth) is the TLS
	// package's to judge; each of its errors starts with the option's name.
	to := o.TLSOptions()
	if err := to.Validate(); err != nil {
		errs := []error{err}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			ch.add(sp, "%v", e)
		}
	}
	strict := o.requiresClientCert()
	for _, kf := range []struct {
		key string
		f   CertField
	}{{"peer_cert_as_username", id.PeerCertAsUsername}, {"peer_cert_as_clientid", id.PeerCertAsClientID}} {
		if key, f := kf.key, kf.f; f != "" && !strict {
			ch.add(path+"."+key, "needs ssl_options.verify: verify_peer, fail_if_no_peer_cert: true and a cacertfile; "+
				"otherwise anyone could pick the certificate %s they present (a self-signed certificate names whoever it likes)", f)
		}
	}
}

func (c *Config) anyEnabled() bool {
	for _, l := range c.Listeners.TCP {
		if l.Enable {
			return true
		}
	}
	for _, w := range c.Listeners.WS {
		if w.Enable {
			return true
		}
	}
	for _, l := range c.Listeners.SSL {
		if l.Enable {
			return true
		}
	}
	for _, w := range c.Listeners.WSS {
		if w.Enable {
			return true
		}
	}
	return false
}

// checkListener checks the keys every listener has and returns its address when it is
// enabled and its bind parsed.
func checkListener(ch *checker, path, name string, l Listener) (bound, bool) {
	if msg := listenerNameProblem(name); msg != "" {
		ch.add(path, "invalid listener name %q: %s", name, msg)
	}
	var b bound
	ok := false
	if l.Bind == "" {
		ch.add(path+".bind", "must be set: host:port, e.g. 127.0.0.1:1883")
	} else if hosts, port, err := parseBind(l.Bind); err != nil {
		ch.add(path+".bind", "%v", err)
	} else {
		b, ok = bound{path: path, bind: l.Bind, hosts: hosts, port: port, anon: l.AllowAnonymous,
			authnMode: l.EnableAuthn, ownChain: len(l.Authentication) > 0}, l.Enable
	}
	checkAuthentication(ch, path+".authentication", l.Authentication)
	if _, err := listener.ParseAccessRules(l.AccessRules); err != nil {
		ch.add(path+".access_rules", "%v", err)
	}
	if l.MaxConnRate < 0 {
		ch.add(path+".max_conn_rate", "must not be negative (0 = unlimited), got %d", l.MaxConnRate)
	}
	if l.MaxConnRatePerIP < 0 {
		ch.add(path+".max_conn_rate_per_ip", "must not be negative (0 = unlimited), got %d", l.MaxConnRatePerIP)
	}
	if !l.MaxConnectionsPerIP.Unlimited() && l.MaxConnectionsPerIP < 1 {
		ch.add(path+".max_connections_per_ip", "must be at least 1 or infinity, got %d", int(l.MaxConnectionsPerIP))
	}
	if !l.MaxPreauthConnectionsPerIP.Unlimited() && l.MaxPreauthConnectionsPerIP < 1 {
		ch.add(path+".max_preauth_connections_per_ip", "must be at least 1 or infinity, got %d", int(l.MaxPreauthConnectionsPerIP))
	}
	if _, err := ProxyTrusted(l.ProxyProtocolTrusted); err != nil {
		ch.add(path+".proxy_protocol_trusted", "%v", err)
	} else if l.ProxyProtocol && len(l.ProxyProtocolTrusted) == 0 {
		ch.add(path+".proxy_protocol_trusted", "must list the load balancers' addresses when proxy_protocol is on; a PROXY header from anyone else is refused")
	}
	if l.ProxyProtocolTimeout <= 0 || l.ProxyProtocolTimeout > Duration(time.Minute) {
		ch.add(path+".proxy_protocol_timeout", "must be between 1ms and 1m, got %s", l.ProxyProtocolTimeout)
	}
	if !l.MaxConnections.Unlimited() && l.MaxConnections < 1 {
		ch.add(path+".max_connections", "must be at least 1 or infinity, got %d", int(l.MaxConnections))
	}
	if l.TCPOptions.SendTimeout <= 0 {
		ch.add(path+".tcp_options.send_timeout", "must be greater than 0, got %s", l.TCPOptions.SendTimeout)
	}
	if l.TCPOptions.HighWatermark < 1 {
		ch.add(path+".tcp_options.high_watermark", "must be at least 1B, got %s", l.TCPOptions.HighWatermark)
	}
	return b, ok
}

// listenerNameProblem says why name is not a listener name, or returns "". Names match
// ^[a-z0-9_-]{1,32}$; they also may not contain "__" or end in '_', which would make the
// environment variable of their keys ambiguous.
func listenerNameProblem(name string) string {
	if len(name) < 1 || len(name) > 32 {
		return "want 1 to 32 characters of a-z, 0-9, '_' and '-'"
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "want 1 to 32 characters of a-z, 0-9, '_' and '-'"
		}
	}
	if strings.Contains(name, "__") || strings.HasSuffix(name, "_") {
		return `must not contain "__" or end in '_' (environment variables use "__" between levels)`
	}
	return ""
}

// parseBind splits host:port. hosts is nil for every interface (empty host, 0.0.0.0 or
// ::), the two loopback addresses for localhost, or the one address otherwise.
func parseBind(bind string) (hosts []string, port int, err error) {
	host, p, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, 0, fmt.Errorf("want host:port (IPv6 in brackets, e.g. [::1]:1883), got %q", bind)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || p != strconv.Itoa(port) {
		return nil, 0, fmt.Errorf("port must be a number from 0 (any free port) to 65535, got %q", p)
	}
	if host == "" {
		return nil, port, nil
	}
	if strings.EqualFold(host, "localhost") {
		return []string{"127.0.0.1", "::1"}, port, nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil, 0, fmt.Errorf("host must be an IP address, localhost, or empty for every interface, got %q", host)
	}
	addr = addr.Unmap()
	if addr.IsUnspecified() {
		return nil, port, nil
	}
	return []string{addr.String()}, port, nil
}

// overlaps reports whether two binds would take the same port on a common address. A
// bind on every interface overlaps any other on its port (Go listens dual-stack there);
// port 0 never overlaps.
func overlaps(a, b bound) bool {
	if a.port != b.port || a.port == 0 {
		return false
	}
	if a.hosts == nil || b.hosts == nil {
		return true
	}
	for _, x := range a.hosts {
		for _, y := range b.hosts {
			if x == y {
				return true
			}
		}
	}
	return false
}

// allLoopback reports whether every host in hosts is loopback; nil (every interface)
// is not.
func allLoopback(hosts []string) bool {
	if len(hosts) == 0 {
		return false
	}
	for _, h := range hosts {
		if !IsLoopbackHost(h) {
			return false
		}
	}
	return true
}

// IsLoopbackHost reports whether host is a loopback address (127.0.0.0/8, ::1, also in
// brackets or IPv4-mapped) or "localhost". An empty host, 0.0.0.0, :: and every other
// address or name are not.
func IsLoopbackHost(host string) bool {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// IsLoopback reports whether the listener binds only a loopback address, so that only
// this machine can reach it. An unparsable bind is not loopback.
func (l Listener) IsLoopback() bool {
	host, _, err := net.SplitHostPort(l.Bind)
	return err == nil && IsLoopbackHost(host)
}

func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("want an origin like https://app.example.com or http://host:8080, got %q", origin)
	}
	return nil
}

func (c *Config) checkMQTT(ch *checker) {
	m := &c.MQTT
	ch.durRange("mqtt.idle_timeout", m.IdleTimeout, time.Second, 5*time.Minute)
	if m.MaxPacketSize < 64 || m.MaxPacketSize > MaxPacketSizeLimit {
		ch.add("mqtt.max_packet_size", "must be between 64B and %d bytes (the MQTT maximum), got %s", int64(MaxPacketSizeLimit), m.MaxPacketSize)
	}
	ch.intRange("mqtt.max_clientid_len", m.MaxClientIDLen, 23, 65535)
	ch.intRange("mqtt.max_topic_levels", m.MaxTopicLevels, 1, 65535)
	ch.intRange("mqtt.max_topic_length", m.MaxTopicLength, 1, 65535)
	ch.intRange("mqtt.max_qos_allowed", m.MaxQoSAllowed, 0, 2)
	ch.intRange("mqtt.max_inflight", m.MaxInflight, 1, 65535)
	ch.intRange("mqtt.max_mqueue_len", m.MaxMqueueLen, 1, 10_000_000)
	if m.MaxMqueueBytes < 1 {
		ch.add("mqtt.max_mqueue_bytes", "must be at least 1B, got %s", m.MaxMqueueBytes)
	}
	ch.intRange("mqtt.max_awaiting_rel", m.MaxAwaitingRel, 1, 65535)
	if m.AwaitRelTimeout <= 0 {
		ch.add("mqtt.await_rel_timeout", "must be greater than 0, got %s", m.AwaitRelTimeout)
	}
	ch.durRange("mqtt.session_expiry_interval", m.SessionExpiryInterval, 0, 0xFFFFFFFF*time.Second)
	if m.KeepaliveMultiplier < 1 || m.KeepaliveMultiplier > 10 {
		ch.add("mqtt.keepalive_multiplier", "must be between 1 and 10, got %g", m.KeepaliveMultiplier)
	}
	ch.intRange("mqtt.max_keepalive", m.MaxKeepalive, 1, 65535)
	switch sk := m.ServerKeepalive.Duration(); {
	case sk == 0:
	case sk < time.Second || sk%time.Second != 0:
		ch.add("mqtt.server_keepalive", "must be 0 (use the client's) or a whole number of seconds, got %s", m.ServerKeepalive)
	case sk > time.Duration(m.MaxKeepalive)*time.Second:
		ch.add("mqtt.server_keepalive", "must not exceed mqtt.max_keepalive (%ds), got %s", m.MaxKeepalive, m.ServerKeepalive)
	}
	ch.enum("mqtt.shared_subscription_strategy", checkEnum(m.SharedSubscriptionStrategy, SharedRoundRobin, SharedRandom))
	ch.intRange("mqtt.max_topic_alias", m.MaxTopicAlias, 0, 65535)
	c.checkResourceLimits(ch)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// requiresClientCert reports whether every client must present a certificate verified
// against the listener's CA.
func (o SSLOptions) requiresClientCert() bool {
	return o.Verify == VerifyPeer && o.FailIfNoPeerCert && o.CACertFile != ""
}

// ProxyTrusted parses proxy_protocol_trusted: addresses or CIDR prefixes.
func ProxyTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, v := range list {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("entry %d %q: not an address or CIDR prefix", i+1, v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("entry %d %q: host bits set; did you mean %s?", i+1, v, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func (c *Config) checkAuthnSettings(ch *checker) {
	s := c.AuthenticationSettings
	const p = "authentication_settings"
	ch.durRange(p+".timeout", s.Timeout, 100*time.Millisecond, 5*time.Minute)
	if s.HashConcurrency < 0 {
		ch.add(p+".hash_concurrency", "must not be negative (0 = one per CPU), got %d", s.HashConcurrency)
	}
	f := s.FailureLimit
	if !f.Enable {
		return
	}
	fp := p + ".failure_limit"
	ch.intRange(fp+".max_failures_per_user", f.MaxFailuresPerUser, 1, 1000000)
	ch.intRange(fp+".max_failures_per_user_any_address", f.MaxFailuresPerUserAnyAddress, 1, 1000000)
	ch.intRange(fp+".max_failures_per_ip", f.MaxFailuresPerIP, 1, 1000000)
	ch.durRange(fp+".window", f.Window, time.Second, 24*time.Hour)
	ch.durRange(fp+".delay", f.Delay, 0, time.Minute)
	ch.durRange(fp+".max_delay", f.MaxDelay, 0, time.Minute)
	ch.durRange(fp+".cooldown", f.Cooldown, time.Second, 24*time.Hour)
	ch.intRange(fp+".max_entries", f.MaxEntries, 100, 100000000)
	ch.intRange(fp+".ipv4_prefix", f.IPv4Prefix, 8, 32)
	ch.intRange(fp+".ipv6_prefix", f.IPv6Prefix, 16, 128)
}
