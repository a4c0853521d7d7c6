package config

import "time"

// ResourceLimits are the abuse-control keys of the mqtt section: what one client, and all
// of them together, can make the broker read, hold and do. They apply to every listener.
type ResourceLimits struct {
	// MaxConnectPacketSize bounds the packets read before a client is accepted (CONNECT,
	// and AUTH during enhanced authentication); it is capped at max_packet_size.
	MaxConnectPacketSize Size `yaml:"max_connect_packet_size"`
	// MaxSubscriptions bounds the topic filters of one session.
	MaxSubscriptions Limit `yaml:"max_subscriptions"`
	// The rates are per connection, with bursts of one second's worth; 0 = unlimited.
	MaxPublishRate      int             `yaml:"max_publish_rate"`
	MaxPublishBytesRate Size            `yaml:"max_publish_bytes_rate"`
	MaxControlRate      int             `yaml:"max_control_rate"`
	RateLimitOnExceed   RateLimitAction `yaml:"rate_limit_on_exceed"`
	// MaxListenerPublishRate bounds the PUBLISH packets per second of all the clients of
	// one listener together (each listener separately); 0 = unlimited.
	MaxListenerPublishRate int `yaml:"max_listener_publish_rate"`
	// MaxSessions bounds the sessions the broker holds, online and offline together.
	MaxSessions Limit `yaml:"max_sessions"`
	// MaxConnectionsPerUsername bounds the clients connected at once with one user name.
	MaxConnectionsPerUsername Limit `yaml:"max_connections_per_username"`
	// MaxConnectionLifetime disconnects a client this long after it connected, so that it
	// authenticates again; 0 = never.
	MaxConnectionLifetime Duration `yaml:"max_connection_lifetime"`
	// Retained message budgets; RetainedExpiry 0 keeps retained messages until replaced.
	MaxRetainedMessages    Limit    `yaml:"max_retained_messages"`
	MaxRetainedPayloadSize Size     `yaml:"max_retained_payload_size"`
	MaxRetainedBytes       Size     `yaml:"max_retained_bytes"`
	RetainedExpiry         Duration `yaml:"retained_expiry"`
	// MaxMemoryQueuedBytes bounds session queues, subscriptions and retained messages
	// together; 0 = a quarter of the memory available to the broker.
	MaxMemoryQueuedBytes Size `yaml:"max_memory_queued_bytes"`
}

// RateLimitAction is what happens to a client over a rate.
type RateLimitAction string

// The values of mqtt.rate_limit_on_exceed.
const (
	RateLimitThrottle RateLimitAction = "throttle"
	RateLimitReject   RateLimitAction = "reject"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *RateLimitAction) UnmarshalText(b []byte) error {
	return setEnum(a, string(b), RateLimitThrottle, RateLimitReject)
}

func defaultResourceLimits() ResourceLimits {
	return ResourceLimits{
		MaxConnectPacketSize:   64 * KB,
		MaxSubscriptions:       1000,
		MaxControlRate:         100,
		RateLimitOnExceed:      RateLimitThrottle,
		MaxRetainedMessages:    1_000_000,
		MaxRetainedPayloadSize: 1 * MB,
		MaxRetainedBytes:       1 * GB,

		MaxSessions:               1_000_000,
		MaxConnectionsPerUsername: Infinity,
	}
}

// maxRate bounds the per-second rates: a larger value is a typing error, not a limit.
const maxRate = 10_000_000

func (c *Config) checkResourceLimits(ch *checker) {
	l := &c.MQTT.ResourceLimits
	if l.MaxConnectPacketSize < 64 || l.MaxConnectPacketSize > MaxPacketSizeLimit {
		ch.add("mqtt.max_connect_packet_size", "must be between 64B and %d bytes, got %s", int64(MaxPacketSizeLimit), l.MaxConnectPacketSize)
	}
	if !l.MaxSubscriptions.Unlimited() && l.MaxSubscriptions < 1 {
		ch.add("mqtt.max_subscriptions", "must be at least 1 or infinity, got %d", int(l.MaxSubscriptions))
	}
	ch.intRange("mqtt.max_publish_rate", l.MaxPublishRate, 0, maxRate)
	if l.MaxPublishBytesRate < 0 {
		ch.add("mqtt.max_publish_bytes_rate", "must be 0 (unlimited) or more, got %s", l.MaxPublishBytesRate)
	}
	ch.intRange("mqtt.max_control_rate", l.MaxControlRate, 0, maxRate)
	ch.enum("mqtt.rate_limit_on_exceed", checkEnum(l.RateLimitOnExceed, RateLimitThrottle, RateLimitReject))
	ch.intRange("mqtt.max_listener_publish_rate", l.MaxListenerPublishRate, 0, maxRate)
	if !l.MaxSessions.Unlimited() && l.MaxSessions < 1 {
		ch.add("mqtt.max_sessions", "must be at least 1 or infinity, got %d", int(l.MaxSessions))
	}
	if !l.MaxConnectionsPerUsername.Unlimited() && l.MaxConnectionsPerUsername < 1 {
		ch.add("mqtt.max_connections_per_username", "must be at least 1 or infinity, got %d", int(l.MaxConnectionsPerUsername))
	}
	if d := l.MaxConnectionLifetime.Duration(); d != 0 && d < time.Second {
		ch.add("mqtt.max_connection_lifetime", "must be 0 (no limit) or at least 1s, got %s", l.MaxConnectionLifetime)
	}
	if !l.MaxRetainedMessages.Unlimited() && l.MaxRetainedMessages < 1 {
		ch.add("mqtt.max_retained_messages", "must be at least 1 or infinity, got %d", int(l.MaxRetainedMessages))
	}
	if l.MaxRetainedPayloadSize < 1 {
		ch.add("mqtt.max_retained_payload_size", "must be at least 1B, got %s", l.MaxRetainedPayloadSize)
	}
	if l.MaxRetainedBytes < 1 {
		ch.add("mqtt.max_retained_bytes", "must be at least 1B, got %s", l.MaxRetainedBytes)
	}
	if d := l.RetainedExpiry.Duration(); d != 0 && d < time.Second {
		ch.add("mqtt.retained_expiry", "must be 0 (never) or at least 1s, got %s", l.RetainedExpiry)
	}
	if m := l.MaxMemoryQueuedBytes; m != 0 && m < MB {
		ch.add("mqtt.max_memory_queued_bytes", "must be 0 (a quarter of the memory) or at least 1MB, got %s", m)
	}
}
