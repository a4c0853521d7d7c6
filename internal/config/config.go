package config

import (
	"time"

	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// Config is the whole broker configuration. The `yaml` tags are the key names of the file
// and, upper-cased, of the environment overrides.
type Config struct {
	Node      Node      `yaml:"node"`
	Log       Log       `yaml:"log"`
	Listeners Listeners `yaml:"listeners"`
	MQTT      MQTT      `yaml:"mqtt"`
	SysTopics SysTopics `yaml:"sys_topics"`

	// Authentication is the global authentication chain, tried in order; a listener's own
	// authentication list replaces it there.
	Authentication         []Authenticator `yaml:"authentication"`
	AuthenticationSettings AuthnSettings   `yaml:"authentication_settings"`
	// Authorization decides what authenticated clients may publish and subscribe to.
	Authorization Authorization `yaml:"authorization"`
	// Banned and FlappingDetect refuse clients before authentication.
	Banned         Banned         `yaml:"banned"`
	FlappingDetect FlappingDetect `yaml:"flapping_detect"`
}

// Node identifies this broker and says where and how it keeps durable state.
type Node struct {
	// Name appears in $SYS/brokers/<name>/...; it must not contain '/', '+' or '#'.
	Name string `yaml:"name"`
	// DataDir is the directory of the durable store.
	DataDir string `yaml:"data_dir"`
	// Durability is sync (fsync before acknowledging) or none (everything in memory).
	Durability Durability `yaml:"durability"`
}

// Log configures the broker's log output.
type Log struct {
	Level  LogLevel  `yaml:"level"`
	Format LogFormat `yaml:"format"`
}

// Listeners holds the listeners by type, then by name. Names match ^[a-z0-9_-]{1,32}$.
type Listeners struct {
	TCP map[string]Listener    `yaml:"tcp"`
	WS  map[string]WSListener  `yaml:"ws"`
	SSL map[string]SSLListener `yaml:"ssl"`
	WSS map[string]WSSListener `yaml:"wss"`
}

// SSLOptions configure TLS on an ssl or wss listener.
type SSLOptions struct {
	CertFile             string   `yaml:"certfile"`
	KeyFile              string   `yaml:"keyfile"`
	CACertFile           string   `yaml:"cacertfile"`
	Versions             []string `yaml:"versions"`
	Ciphers              []string `yaml:"ciphers"`
	AllowInsecureCiphers bool     `yaml:"allow_insecure_ciphers"`
	Curves               []string `yaml:"curves"`
	Verify               Verify   `yaml:"verify"`
	FailIfNoPeerCert     bool     `yaml:"fail_if_no_peer_cert"`
	Depth                int      `yaml:"depth"`
	HandshakeTimeout     Duration `yaml:"handshake_timeout"`
	CRLFiles             []string `yaml:"crl_files"`
	CRLRefreshInterval   Duration `yaml:"crl_refresh_interval"`
	CRLGrace             Duration `yaml:"crl_grace"`
	// KeyFilePassword names where the password of an encrypted keyfile is:
	// "file:/path" or "env:NAME", never the password itself.
	KeyFilePassword string `yaml:"keyfile_password"`
	// SNICerts are further certificates by the server name (SNI) clients ask for.
	SNICerts                  map[string]SNICert `yaml:"sni_certs"`
	OCSP                      OCSP               `yaml:"ocsp"`
	CRLFromDistributionPoints bool               `yaml:"crl_from_distribution_points"`
	CRLHTTPTimeout            Duration           `yaml:"crl_http_timeout"`
}

// SNICert is the certificate served to clients that ask for one server name.
type SNICert struct {
	CertFile        string `yaml:"certfile"`
	KeyFile         string `yaml:"keyfile"`
	KeyFilePassword string `yaml:"keyfile_password"`
}

// OCSP configures OCSP stapling of the server certificates and OCSP checks of client
// certificates.
type OCSP struct {
	EnableOCSPStapling      bool        `yaml:"enable_ocsp_stapling"`
	ResponderURL            string      `yaml:"responder_url"`
	IssuerFile              string      `yaml:"issuer_file"`
	RefreshInterval         Duration    `yaml:"refresh_interval"`
	RefreshHTTPTimeout      Duration    `yaml:"refresh_http_timeout"`
	VerifyClientCertificate bool        `yaml:"verify_client_certificate"`
	ClientOCSPOnError       OCSPOnError `yaml:"client_ocsp_on_error"`
}

// CertIdentity takes a client's user name or client id from its verified certificate.
type CertIdentity struct {
	PeerCertAsUsername CertField `yaml:"peer_cert_as_username"`
	PeerCertAsClientID CertField `yaml:"peer_cert_as_clientid"`
}

// SSLListener is MQTT over TLS.
type SSLListener struct {
	Listener     `yaml:",inline"`
	CertIdentity `yaml:",inline"`
	SSLOptions   SSLOptions `yaml:"ssl_options"`
}

// WSSListener is MQTT over WebSocket over TLS.
type WSSListener struct {
	WSListener   `yaml:",inline"`
	CertIdentity `yaml:",inline"`
	SSLOptions   SSLOptions `yaml:"ssl_options"`
}

// Listener is the configuration shared by every listener type.
type Listener struct {
	Enable bool `yaml:"enable"`
	// Bind is host:port. An empty host, 0.0.0.0 or :: means every interface; port 0 means
	// an ephemeral port chosen by the system.
	Bind string `yaml:"bind"`
	// MaxConnections bounds the connections open at once on this listener.
	MaxConnections Limit `yaml:"max_connections"`
	// AllowAnonymous opts a non-loopback listener in to clients without credentials.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// EnableAuthn is true (run the chain), false (no authentication on this listener) or
	// quick_deny_anonymous (refuse an empty user name before the chain runs).
	EnableAuthn AuthnMode `yaml:"enable_authn"`
	// Authentication, when not empty, replaces the global chain on this listener.
	Authentication []Authenticator `yaml:"authentication"`
	// AccessRules ("allow 10.0.0.0/8", "deny all") are checked on accept; first match wins.
	AccessRules []string `yaml:"access_rules"`
	// MaxConnRate and MaxConnRatePerIP bound new connections per second (bursts of one
	// second's worth); 0 = unlimited.
	MaxConnRate      int `yaml:"max_conn_rate"`
	MaxConnRatePerIP int `yaml:"max_conn_rate_per_ip"`
	// MaxConnectionsPerIP bounds the connections open at once from one client address,
	// and MaxPreauthConnectionsPerIP those of them that have not completed CONNECT; a
	// connection over either is closed as soon as its address is known.
	MaxConnectionsPerIP        Limit `yaml:"max_connections_per_ip"`
	MaxPreauthConnectionsPerIP Limit `yaml:"max_preauth_connections_per_ip"`
	// ProxyProtocol requires a PROXY protocol header from a trusted load balancer.
	ProxyProtocol        bool       `yaml:"proxy_protocol"`
	ProxyProtocolTimeout Duration   `yaml:"proxy_protocol_timeout"`
	ProxyProtocolTrusted []string   `yaml:"proxy_protocol_trusted"`
	TCPOptions           TCPOptions `yaml:"tcp_options"`
}

// WSListener is a WebSocket listener: a Listener plus the HTTP side.
type WSListener struct {
	Listener `yaml:",inline"`
	// Path is the HTTP path of the WebSocket endpoint; it starts with '/'.
	Path string `yaml:"path"`
	// CheckOrigin requires a present Origin header to be in AllowedOrigins or to name the
	// host the request was sent to.
	CheckOrigin bool `yaml:"check_origin"`
	// AllowedOrigins are origins like "https://app.example.com".
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// TCPOptions bounds what one slow connection can cost.
type TCPOptions struct {
	// SendTimeout is the write deadline; a client that does not take its data within it
	// is disconnected.
	SendTimeout Duration `yaml:"send_timeout"`
	// HighWatermark is the most bytes pending to one socket before the connection is
	// treated as slow.
	HighWatermark Size `yaml:"high_watermark"`
}

// MQTT holds the protocol limits and features.
type MQTT struct {
	IdleTimeout                Duration       `yaml:"idle_timeout"`
	MaxPacketSize              Size           `yaml:"max_packet_size"`
	MaxClientIDLen             int            `yaml:"max_clientid_len"`
	MaxTopicLevels             int            `yaml:"max_topic_levels"`
	MaxTopicLength             int            `yaml:"max_topic_length"`
	MaxQoSAllowed              int            `yaml:"max_qos_allowed"`
	MaxInflight                int            `yaml:"max_inflight"`
	MaxMqueueLen               int            `yaml:"max_mqueue_len"`
	MaxMqueueBytes             Size           `yaml:"max_mqueue_bytes"`
	MqueueStoreQoS0            bool           `yaml:"mqueue_store_qos0"`
	MaxAwaitingRel             int            `yaml:"max_awaiting_rel"`
	AwaitRelTimeout            Duration       `yaml:"await_rel_timeout"`
	SessionExpiryInterval      Duration       `yaml:"session_expiry_interval"`
	KeepaliveMultiplier        float64        `yaml:"keepalive_multiplier"`
	ServerKeepalive            Duration       `yaml:"server_keepalive"`
	MaxKeepalive               int            `yaml:"max_keepalive"`
	RetainAvailable            bool           `yaml:"retain_available"`
	WildcardSubscription       bool           `yaml:"wildcard_subscription"`
	SharedSubscription         bool           `yaml:"shared_subscription"`
	SharedSubscriptionStrategy SharedStrategy `yaml:"shared_subscription_strategy"`
	MaxTopicAlias              int            `yaml:"max_topic_alias"`
	UpgradeQoS                 bool           `yaml:"upgrade_qos"`

	ResourceLimits `yaml:",inline"`
}

// SysTopics configures the $SYS topics.
type SysTopics struct {
	// SysMsgInterval is how often $SYS statistics are published; 0 disables them.
	SysMsgInterval Duration `yaml:"sys_msg_interval"`
}

// Default returns the safe development configuration: data in ./data, MQTT on
// 127.0.0.1:1883 and WebSocket on 127.0.0.1:8083, both loopback only, so clients without
// credentials are accepted only from this machine.
func Default() *Config {
	tcp := defaultListener()
	tcp.Bind = "127.0.0.1:1883"
	ws := defaultWSListener()
	ws.Bind = "127.0.0.1:8083"
	return &Config{
		Node: Node{
			Name:       "rampart@127.0.0.1",
			DataDir:    "./data",
			Durability: DurabilitySync,
		},
		Log: Log{Level: LogInfo, Format: LogText},
		Listeners: Listeners{
			TCP: map[string]Listener{"default": tcp},
			WS:  map[string]WSListener{"default": ws},
			SSL: map[string]SSLListener{},
			WSS: map[string]WSSListener{},
		},
		MQTT: MQTT{
			IdleTimeout:                Duration(10 * time.Second),
			MaxPacketSize:              1 * MB,
			MaxClientIDLen:             65535,
			MaxTopicLevels:             128,
			MaxTopicLength:             65535,
			MaxQoSAllowed:              2,
			MaxInflight:                32,
			MaxMqueueLen:               1000,
			MaxMqueueBytes:             64 * MB,
			MqueueStoreQoS0:            true,
			MaxAwaitingRel:             100,
			AwaitRelTimeout:            Duration(300 * time.Second),
			SessionExpiryInterval:      Duration(2 * time.Hour),
			KeepaliveMultiplier:        1.5,
			ServerKeepalive:            0,
			MaxKeepalive:               65535,
			RetainAvailable:            true,
			WildcardSubscription:       true,
			SharedSubscription:         true,
			SharedSubscriptionStrategy: SharedRoundRobin,
			MaxTopicAlias:              65535,
			UpgradeQoS:                 false,
			ResourceLimits:             defaultResourceLimits(),
		},
		SysTopics:              SysTopics{SysMsgInterval: Duration(time.Minute)},
		AuthenticationSettings: defaultAuthnSettings(),
		Authorization:          defaultAuthorization(),
		Banned:                 defaultBanned(),
		FlappingDetect:         defaultFlapping(),
	}
}

// defaultListener is where every TCP listener starts, including one first named in the
// file or the environment. Bind is left empty: a new listener must say where it binds.
func defaultListener() Listener {
	return Listener{
		Enable:               true,
		MaxConnections:       100000,
		AllowAnonymous:       false,
		EnableAuthn:          AuthnOn,
		ProxyProtocolTimeout: Duration(3 * time.Second),
		TCPOptions: TCPOptions{
			SendTimeout:   Duration(15 * time.Second),
			HighWatermark: 1 * MB,
		},

		MaxConnectionsPerIP: Infinity,
		// Enough for the devices behind one NAT to reconnect together at a normal pace;
		// few enough that one address cannot hold the listener with idle sockets.
		MaxPreauthConnectionsPerIP: 64,
	}
}

// defaultWSListener is where every WebSocket listener starts.
func defaultWSListener() WSListener {
	return WSListener{
		Listener:    defaultListener(),
		Path:        "/mqtt",
		CheckOrigin: true,
	}
}

// setDefaults is called by the loader on a listener it creates for a new name.
func (l *Listener) setDefaults() { *l = defaultListener() }

// setDefaults is called by the loader on a listener it creates for a new name.
func (w *WSListener) setDefaults() { *w = defaultWSListener() }

func defaultSSLOptions() SSLOptions {
	return SSLOptions{Verify: VerifyNone, Depth: 10, HandshakeTimeout: Duration(15 * time.Second),
		CRLRefreshInterval: Duration(5 * time.Minute), CRLGrace: Duration(time.Hour),
		CRLHTTPTimeout: Duration(15 * time.Second),
		OCSP: OCSP{RefreshInterval: Duration(5 * time.Minute), RefreshHTTPTimeout: Duration(15 * time.Second),
			ClientOCSPOnError: OCSPOnErrorDeny}}
}

// setDefaults is called by the loader on a listener it creates for a new name.
func (l *SSLListener) setDefaults() {
	*l = SSLListener{Listener: defaultListener(), SSLOptions: defaultSSLOptions()}
}

// setDefaults is called by the loader on a listener it creates for a new name.
func (w *WSSListener) setDefaults() {
	*w = WSSListener{WSListener: defaultWSListener(), SSLOptions: defaultSSLOptions()}
}

// TLSOptions converts the ssl_options to the TLS package's form.
func (o SSLOptions) TLSOptions() tlsconf.ServerOptions {
	return tlsconf.ServerOptions{
		CertFile: o.CertFile, KeyFile: o.KeyFile, CACertFile: o.CACertFile,
		Versions: o.Versions, Ciphers: o.Ciphers, AllowInsecureCiphers: o.AllowInsecureCiphers,
		Curves: o.Curves, Verify: string(o.Verify), FailIfNoPeerCert: o.FailIfNoPeerCert, Depth: o.Depth,
		KeyFilePassword: o.KeyFilePassword, SNICerts: o.sniCerts(),
		OCSP: tlsconf.OCSPOptions{
			Stapling: o.OCSP.EnableOCSPStapling, ResponderURL: o.OCSP.ResponderURL, IssuerFile: o.OCSP.IssuerFile,
			RefreshInterval: o.OCSP.RefreshInterval.Duration(), HTTPTimeout: o.OCSP.RefreshHTTPTimeout.Duration(),
			VerifyClient: o.OCSP.VerifyClientCertificate, ClientOnError: string(o.OCSP.ClientOCSPOnError),
		},
	}
}

func (o SSLOptions) sniCerts() map[string]tlsconf.CertKey {
	if len(o.SNICerts) == 0 {
		return nil
	}
	out := make(map[string]tlsconf.CertKey, len(o.SNICerts))
	for name, c := range o.SNICerts {
		out[name] = tlsconf.CertKey{CertFile: c.CertFile, KeyFile: c.KeyFile, KeyFilePassword: c.KeyFilePassword}
	}
	return out
}

// RevocationOptions returns where the listener's CRLs come from, and whether it has any.
func (o SSLOptions) RevocationOptions() (tlsconf.RevocationOptions, bool) {
	return tlsconf.RevocationOptions{
		Files: o.CRLFiles, Grace: o.CRLGrace.Duration(),
		FromDistributionPoints: o.CRLFromDistributionPoints, HTTPTimeout: o.CRLHTTPTimeout.Duration(),
	}, len(o.CRLFiles) > 0 || o.CRLFromDistributionPoints
}
