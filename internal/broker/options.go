package broker

import (
	"log/slog"
	"time"

	"github.com/rampart-mqtt/rampart/internal/store"
)

// Options configures a Server. Start from Defaults(): zero sizes, counts and durations fall
// back to their defaults, but booleans and MaxQoS are taken as given.
type Options struct {
	NodeName string

	IdleTimeout    time.Duration // CONNECT deadline
	MaxPacketSize  int
	MaxClientIDLen int
	MaxTopicLevels int
	MaxTopicLength int
	MaxQoS         byte
	MaxInflight    int // outbound window and the Receive Maximum we announce
	MaxMqueueLen   int
	MaxMqueueBytes int64
	// MqueueStoreQoS0 queues QoS 0 messages for offline persistent sessions.
	MqueueStoreQoS0 bool
	MaxAwaitingRel  int
	AwaitRelTimeout time.Duration
	// SessionExpiry is the expiry of 3.1/3.1.1 sessions with clean session 0 and the
	// upper bound of an MQTT 5 client's session expiry interval.
	SessionExpiry        time.Duration
	KeepaliveMultiplier  float64
	ServerKeepAlive      uint16 // 0 = use the client's
	MaxKeepAlive         uint16
	RetainAvailable      bool
	WildcardSubscription bool
	SharedSubscription   bool
	SharedStrategy       string // "round_robin" or "random"
	MaxTopicAlias        uint16 // Topic Alias Maximum announced to MQTT 5 clients
	UpgradeQoS           bool
	SendTimeout          time.Duration // write deadline for one flush
	HighWatermark        int           // pending bytes before a connection counts as slow
	SysInterval          time.Duration // 0 disables $SYS publishing
	// ParkAfter is how long a TCP connection may wait for its next packet before it
	// gives up its goroutine and read buffer until data arrives (Linux); 0 disables it.
	ParkAfter time.Duration
	// PerListener overrides SendTimeout and HighWatermark for the listener of that name
	// ("tcp:default"); zero fields keep the broker-wide value.
	PerListener map[string]ConnLimits
	// CertIdentity takes the user name or client id from the verified client certificate
	// on the listener of that name ("ssl:devices"). The configuration only allows it on
	// listeners that require a certificate verified against their CA.
	CertIdentity map[string]CertAs

	// Abuse control (see limits.go). MaxConnectPacketSize bounds the packets read before
	// CONNACK (CONNECT, AUTH); it is capped at MaxPacketSize. MaxSubscriptions and
	// MaxRetained below zero mean no limit.
	MaxConnectPacketSize int
	MaxSubscriptions     int // per session
	// The rates are per connection, with bursts of one second's worth; they are taken as
	// given and 0 means no limit. A client over a rate is paused (its socket is not read)
	// until it is back under it; with RateLimitReject an MQTT 5 QoS 1/2 PUBLISH over a
	// publish rate is refused with reason 0x97 instead.
	MaxPublishRate      int   // PUBLISH packets per second
	MaxPublishBytesRate int64 // PUBLISH bytes per second
	MaxControlRate      int   // SUBSCRIBE, UNSUBSCRIBE, PINGREQ and AUTH packets per second
	RateLimitReject     bool
	// MaxListenerPublishRate bounds the PUBLISH packets per second of all the connections
	// of one listener together (each listener has its own bucket, with bursts of one
	// second's worth). It paces, or with RateLimitReject refuses, as the per-connection
	// publish rate does. Taken as given; 0 means no limit.
	MaxListenerPublishRate int
	// MaxConnectionsPerUsername bounds the connected clients that share one user name; a
	// CONNECT beyond it is refused with 0x97 (MQTT 3.1.1: server unavailable). A client
	// taking over its own session (same client id and user name) is not counted twice,
	// and clients without a user name are not counted. Taken as given; 0 means no limit.
	MaxConnectionsPerUsername int
	// MaxSessions bounds the sessions the broker holds, online and offline together; a
	// CONNECT that needs a new session beyond it is refused with 0x97 (MQTT 3.1.1: server
	// unavailable). Resuming or taking over an existing session always works. Taken as
	// given; 0 means no limit.
	MaxSessions int
	// MaxConnectionLifetime ends a connection this long after its CONNECT was accepted
	// (MQTT 5: DISCONNECT 0xA0, maximum connect time), parked or not, so that clients
	// authenticate again. Each connection's lifetime is drawn between nine tenths of it
	// and all of it, so that clients that connected together do not all reconnect
	// together. Taken as given; 0 means no limit.
	MaxConnectionLifetime time.Duration
	// Retained budgets: a new retained message beyond one is not stored. RetainedExpiry
	// drops retained messages older than it (taken as given, 0 = never).
	MaxRetained        int
	MaxRetainedPayload int
	MaxRetainedBytes   int64
	RetainedExpiry     time.Duration
	// MaxMemoryBytes bounds the bytes held by session queues and retained messages
	// together; 0 means a quarter of the memory available to the process.
	MaxMemoryBytes int64

	// Store persists retained messages and persistent sessions (durability "sync");
	// nil keeps them in memory only.
	Store *store.Store
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
	// Authenticator and Authorizer are the security seams; nil allows everything.
	Authenticator Authenticator
	// Guard refuses banned and flapping clients; nil refuses none.
	Guard      Guard
	Authorizer Authorizer
	// Version is reported in $SYS.
	Version string

	// limits is the abuse-control state shared by the connections of one Server; New
	// (through withDefaults) gives every Server its own.
	limits *limitState
}

// Defaults returns the options the broker uses for every zero field.
func Defaults() Options {
	return Options{
		NodeName:             "rampart@127.0.0.1",
		IdleTimeout:          10 * time.Second,
		MaxPacketSize:        1 << 20,
		MaxClientIDLen:       65535,
		MaxTopicLevels:       128,
		MaxTopicLength:       65535,
		MaxQoS:               2,
		MaxInflight:          32,
		MaxMqueueLen:         1000,
		MaxMqueueBytes:       64 << 20,
		MqueueStoreQoS0:      true,
		MaxAwaitingRel:       100,
		AwaitRelTimeout:      300 * time.Second,
		SessionExpiry:        2 * time.Hour,
		KeepaliveMultiplier:  1.5,
		MaxKeepAlive:         65535,
		RetainAvailable:      true,
		WildcardSubscription: true,
		SharedSubscription:   true,
		SharedStrategy:       "round_robin",
		MaxTopicAlias:        65535,
		SendTimeout:          15 * time.Second,
		HighWatermark:        1 << 20,
		ParkAfter:            2 * time.Second,
		SysInterval:          time.Minute,
		Version:              "dev",
		MaxConnectPacketSize: 64 << 10,
		MaxSubscriptions:     1000,
		MaxControlRate:       100,
		MaxRetained:          1_000_000,
		MaxRetainedPayload:   1 << 20,
		MaxRetainedBytes:     1 << 30,
	}
}

func (o Options) withDefaults() Options {
	d := Defaults()
	set := func(dst *int, def int) {
		if *dst == 0 {
			*dst = def
		}
	}
	if o.NodeName == "" {
		o.NodeName = d.NodeName
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	set(&o.MaxPacketSize, d.MaxPacketSize)
	set(&o.MaxClientIDLen, d.MaxClientIDLen)
	set(&o.MaxTopicLevels, d.MaxTopicLevels)
	set(&o.MaxTopicLength, d.MaxTopicLength)
	set(&o.MaxInflight, d.MaxInflight)
	set(&o.MaxMqueueLen, d.MaxMqueueLen)
	set(&o.MaxAwaitingRel, d.MaxAwaitingRel)
	set(&o.HighWatermark, d.HighWatermark)
	if o.MaxMqueueBytes == 0 {
		o.MaxMqueueBytes = d.MaxMqueueBytes
	}
	if o.AwaitRelTimeout == 0 {
		o.AwaitRelTimeout = d.AwaitRelTimeout
	}
	if o.KeepaliveMultiplier == 0 {
		o.KeepaliveMultiplier = d.KeepaliveMultiplier
	}
	if o.MaxKeepAlive == 0 {
		o.MaxKeepAlive = d.MaxKeepAlive
	}
	if o.SharedStrategy == "" {
		o.SharedStrategy = d.SharedStrategy
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = d.SendTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = d.Version
	}
	set(&o.MaxConnectPacketSize, d.MaxConnectPacketSize)
	o.MaxConnectPacketSize = min(o.MaxConnectPacketSize, o.MaxPacketSize)
	set(&o.MaxSubscriptions, d.MaxSubscriptions)
	set(&o.MaxRetained, d.MaxRetained)
	set(&o.MaxRetainedPayload, d.MaxRetainedPayload)
	if o.MaxRetainedBytes == 0 {
		o.MaxRetainedBytes = d.MaxRetainedBytes
	}
	if o.MaxMemoryBytes == 0 {
		o.MaxMemoryBytes = availableMemory() / 4
	}
	o.limits = &limitState{}
	return o
}

// ConnLimits bounds what one slow connection of a listener can cost.
type ConnLimits struct {
	SendTimeout   time.Duration
	HighWatermark int
}

// CertAs names the certificate fields (clientinfo.Cert.Field) that become a client's user
// name and client id; "" keeps what the client sent.
type CertAs struct {
	Username string
	ClientID string
}
