package config

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestValidateResourceLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*ResourceLimits)
		want   []string // nil: valid
	}{
		{"defaults", func(*ResourceLimits) {}, nil},
		{"unlimited where allowed", func(l *ResourceLimits) {
			l.MaxSubscriptions, l.MaxRetainedMessages = Infinity, Infinity
			l.MaxPublishRate, l.MaxPublishBytesRate, l.MaxControlRate = 0, 0, 0
			l.RetainedExpiry, l.MaxMemoryQueuedBytes = 0, 0
			l.MaxListenerPublishRate, l.MaxConnectionsPerUsername, l.MaxConnectionLifetime = 0, Infinity, 0
			l.MaxSessions = Infinity
		}, nil},
		{"edges", func(l *ResourceLimits) {
			l.MaxConnectPacketSize = 64
			l.MaxSubscriptions, l.MaxRetainedMessages = 1, 1
			l.MaxPublishRate, l.MaxControlRate = maxRate, maxRate
			l.MaxRetainedPayloadSize, l.MaxRetainedBytes = 1, 1
			l.RetainedExpiry, l.MaxMemoryQueuedBytes = Duration(time.Second), MB
			l.RateLimitOnExceed = RateLimitReject
			l.MaxListenerPublishRate, l.MaxConnectionsPerUsername, l.MaxConnectionLifetime = maxRate, 1, Duration(time.Second)
		}, nil},
		{"connect limit above max_packet_size is capped, not refused", func(l *ResourceLimits) {
			l.MaxConnectPacketSize = 2 * MB
		}, nil},
		{"zero and too small", func(l *ResourceLimits) {
			l.MaxConnectPacketSize = 63
			l.MaxSubscriptions, l.MaxRetainedMessages = 0, 0
			l.MaxRetainedPayloadSize, l.MaxRetainedBytes = 0, 0
			l.RetainedExpiry = Duration(500 * time.Millisecond)
			l.MaxMemoryQueuedBytes = MB - 1
			l.RateLimitOnExceed = ""
			l.MaxConnectionsPerUsername = 0
			l.MaxSessions = 0
			l.MaxConnectionLifetime = Duration(999 * time.Millisecond)
		}, []string{
			"mqtt.max_connect_packet_size: must be between 64B and 268435460 bytes, got 63B",
			"mqtt.max_subscriptions: must be at least 1 or infinity, got 0",
			`mqtt.rate_limit_on_exceed: invalid value ""; want one of throttle, reject`,
			"mqtt.max_retained_messages: must be at least 1 or infinity, got 0",
			"mqtt.max_retained_payload_size: must be at least 1B, got 0B",
			"mqtt.max_retained_bytes: must be at least 1B, got 0B",
			"mqtt.retained_expiry: must be 0 (never) or at least 1s, got 500ms",
			"mqtt.max_memory_queued_bytes: must be 0 (a quarter of the memory) or at least 1MB, got 1048575B",
			"mqtt.max_sessions: must be at least 1 or infinity, got 0",
			"mqtt.max_connections_per_username: must be at least 1 or infinity, got 0",
			"mqtt.max_connection_lifetime: must be 0 (no limit) or at least 1s, got 999ms",
		}},
		{"out of range", func(l *ResourceLimits) {
			l.MaxConnectPacketSize = MaxPacketSizeLimit + 1
			l.MaxPublishRate, l.MaxControlRate = -1, maxRate+1
			l.MaxPublishBytesRate = -1
			l.MaxListenerPublishRate = -1
		}, []string{
			"mqtt.max_connect_packet_size: must be between 64B and 268435460 bytes, got 268435461B",
			"mqtt.max_publish_rate: must be between 0 and 10000000, got -1",
			"mqtt.max_publish_bytes_rate: must be 0 (unlimited) or more",
			"mqtt.max_control_rate: must be between 0 and 10000000, got 10000001",
			"mqtt.max_listener_publish_rate: must be between 0 and 10000000, got -1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c.MQTT.ResourceLimits)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			wantErrors(t, err, tc.want...)
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != len(tc.want) {
				t.Errorf("want %d problems, got:\n%v", len(tc.want), err)
			}
		})
	}
}

func TestLoadResourceLimits(t *testing.T) {
	c, err := Load(writeConfig(t, `
mqtt:
  max_subscriptions: infinity
  rate_limit_on_exceed: reject
  max_retained_messages: 10_000
  retained_expiry: 7d
`), []string{"RAMPART_MQTT__MAX_PUBLISH_RATE=200", "RAMPART_MQTT__MAX_MEMORY_QUEUED_BYTES=8GB"})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultResourceLimits()
	want.MaxSubscriptions, want.RateLimitOnExceed, want.MaxRetainedMessages = Infinity, RateLimitReject, 10_000
	want.RetainedExpiry, want.MaxPublishRate, want.MaxMemoryQueuedBytes = Duration(7*24*time.Hour), 200, 8*GB
	if c.MQTT.ResourceLimits != want {
		t.Errorf("loaded %+v\nwant %+v", c.MQTT.ResourceLimits, want)
	}
	_, err = Load(writeConfig(t, "mqtt:\n  rate_limit_on_exceed: drop\n"), nil)
	wantErrors(t, err, `mqtt.rate_limit_on_exceed`, `invalid value "drop"`)
}

// TestSecurityGuideLimitsLoad loads the recommended production values of the security
// guide's "Resource protection" section.
func TestSecurityGuideLimitsLoad(t *testing.T) {
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(m[1], "max_connect_packet_size") {
			continue
		}
		found = true
		c, err := Load(writeConfig(t, m[1]), nil)
		if err != nil {
			t.Fatalf("recommended values do not load: %v", err)
		}
		if c.MQTT.MaxConnectPacketSize > c.MQTT.MaxPacketSize || c.MQTT.MaxPublishBytesRate < c.MQTT.MaxPacketSize {
			t.Errorf("recommended values contradict the guide's advice: %+v", c.MQTT.ResourceLimits)
		}
	}
	if !found {
		t.Fatal("no recommended abuse-control values in docs/security.md")
	}
}
