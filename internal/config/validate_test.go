package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tcp := func(c *Config, name string, f func(*Listener)) {
		l, ok := c.Listeners.TCP[name]
		if !ok {
			l = defaultListener()
		}
		f(&l)
		c.Listeners.TCP[name] = l
	}
	ws := func(c *Config, name string, f func(*WSListener)) {
		l, ok := c.Listeners.WS[name]
		if !ok {
			l = defaultWSListener()
		}
		f(&l)
		c.Listeners.WS[name] = l
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string // nil: valid
	}{
		{"default", func(*Config) {}, nil},
		{"port 0 is any free port", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1:0" }) }, nil},
		{"two port 0 listeners", func(c *Config) {
			tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1:0" })
			ws(c, "default", func(l *WSListener) { l.Bind = "127.0.0.1:0" })
		}, nil},
		{"ipv6 loopback", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "[::1]:1883" }) }, nil},
		{"localhost", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "localhost:1883" }) }, nil},
		{"bad port", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1:65536" }) },
			[]string{"listeners.tcp.default.bind: port must be a number from 0 (any free port) to 65535"}},
		{"named port", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1:mqtt" }) },
			[]string{"listeners.tcp.default.bind: port must be"}},
		{"negative port", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1:-1" }) },
			[]string{"listeners.tcp.default.bind: port must be"}},
		{"padded port", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1:01883" }) },
			[]string{"listeners.tcp.default.bind: port must be"}},
		{"no port", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "127.0.0.1" }) },
			[]string{"listeners.tcp.default.bind: want host:port"}},
		{"unbracketed ipv6", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "::1:1883" }) },
			[]string{"listeners.tcp.default.bind: want host:port"}},
		{"host name", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "example.com:1883" }) },
			[]string{`listeners.tcp.default.bind: host must be an IP address, localhost, or empty for every interface, got "example.com"`}},
		{"empty bind", func(c *Config) { tcp(c, "default", func(l *Listener) { l.Bind = "" }) },
			[]string{"listeners.tcp.default.bind: must be set"}},
		{"duplicate bind", func(c *Config) { ws(c, "default", func(l *WSListener) { l.Bind = "127.0.0.1:1883" }) },
			[]string{"listeners.ws.default.bind: binds 127.0.0.1:1883, which overlaps listeners.tcp.default (bind 127.0.0.1:1883)"}},
		{"same address spelt differently", func(c *Config) { tcp(c, "b", func(l *Listener) { l.Bind = "[::ffff:127.0.0.1]:1883" }) },
			[]string{"listeners.tcp.default.bind: binds 127.0.0.1:1883, which overlaps listeners.tcp.b (bind [::ffff:127.0.0.1]:1883)"}},
		{"localhost overlaps 127.0.0.1", func(c *Config) { tcp(c, "b", func(l *Listener) { l.Bind = "localhost:1883" }) },
			[]string{"listeners.tcp.default.bind: binds 127.0.0.1:1883, which overlaps listeners.tcp.b (bind localhost:1883)"}},
		{"wildcard overlaps loopback", func(c *Config) {
			tcp(c, "pub", func(l *Listener) { l.Bind, l.AllowAnonymous = ":1883", true })
		}, []string{"listeners.tcp.pub.bind: binds :1883, which overlaps listeners.tcp.default"}},
		{"duplicate bind on a disabled listener is fine", func(c *Config) {
			ws(c, "default", func(l *WSListener) { l.Bind, l.Enable = "127.0.0.1:1883", false })
		}, nil},
		{"different ports", func(c *Config) { tcp(c, "b", func(l *Listener) { l.Bind = "127.0.0.1:1884" }) }, nil},
		{"no enabled listener", func(c *Config) {
			tcp(c, "default", func(l *Listener) { l.Enable = false })
			ws(c, "default", func(l *WSListener) { l.Enable = false })
		}, []string{"listeners: no listener is enabled"}},
		{"non-loopback without allow_anonymous", func(c *Config) {
			tcp(c, "public", func(l *Listener) { l.Bind = "0.0.0.0:1884" })
		}, []string{"config: listeners.tcp.public.bind: binds 0.0.0.0:1884 (not loopback) with no authenticator; configure authentication or set allow_anonymous: true explicitly"}},
		{"every-interface ws without allow_anonymous", func(c *Config) {
			ws(c, "default", func(l *WSListener) { l.Bind = ":8083" })
		}, []string{"listeners.ws.default.bind: binds :8083 (not loopback)"}},
		{"lan address without allow_anonymous", func(c *Config) {
			tcp(c, "default", func(l *Listener) { l.Bind = "10.0.0.1:1883" })
		}, []string{"listeners.tcp.default.bind: binds 10.0.0.1:1883 (not loopback)"}},
		{"non-loopback with allow_anonymous", func(c *Config) {
			tcp(c, "public", func(l *Listener) { l.Bind, l.AllowAnonymous = "0.0.0.0:1884", true })
		}, nil},
		{"non-loopback with authenticators", func(c *Config) {
			c.Authentication = []Authenticator{defaultAuthenticator()}
			c.Authentication[0].Mechanism, c.Authentication[0].Backend = MechPasswordBased, BackendBuiltIn
			tcp(c, "public", func(l *Listener) { l.Bind = "0.0.0.0:1884" })
		}, nil},
		{"disabled non-loopback listener", func(c *Config) {
			tcp(c, "public", func(l *Listener) { l.Bind, l.Enable = "0.0.0.0:1884", false })
		}, nil},
		{"listener names", func(c *Config) {
			for _, n := range []string{"Upper", "a.b", "", strings.Repeat("x", 33), "a__b", "a_"} {
				tcp(c, n, func(l *Listener) { l.Bind, l.Enable = "127.0.0.1:0", false })
			}
			for _, n := range []string{"ok-1", "ok_2", strings.Repeat("y", 32)} {
				tcp(c, n, func(l *Listener) { l.Bind, l.Enable = "127.0.0.1:0", false })
			}
		}, []string{`invalid listener name "Upper"`, `invalid listener name "a.b"`, `invalid listener name ""`,
			`invalid listener name "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"`, `invalid listener name "a__b"`, `invalid listener name "a_"`}},
		{"max_connections", func(c *Config) { tcp(c, "default", func(l *Listener) { l.MaxConnections = 0 }) },
			[]string{"listeners.tcp.default.max_connections: must be at least 1 or infinity, got 0"}},
		{"tcp_options", func(c *Config) {
			ws(c, "default", func(l *WSListener) { l.TCPOptions = TCPOptions{} })
		}, []string{"listeners.ws.default.tcp_options.send_timeout: must be greater than 0",
			"listeners.ws.default.tcp_options.high_watermark: must be at least 1B"}},
		{"ws path", func(c *Config) { ws(c, "default", func(l *WSListener) { l.Path = "mqtt" }) },
			[]string{`listeners.ws.default.path: must start with '/', got "mqtt"`}},
		{"ws path with query", func(c *Config) { ws(c, "default", func(l *WSListener) { l.Path = "/mqtt?x=1" }) },
			[]string{`listeners.ws.default.path: must be a plain URL path`}},
		{"origins", func(c *Config) {
			ws(c, "default", func(l *WSListener) {
				l.AllowedOrigins = []string{"https://ok.example", "http://ok.example:8080", "https://ok.example/",
					"*", "app.example.com", "ftp://x", "https://a/b", "https://u@a", "https://a?q", "https://"}
			})
		}, []string{`allowed_origins[3]: want an origin like https://app.example.com or http://host:8080, got "*"`,
			`allowed_origins[4]:`, `allowed_origins[5]:`, `allowed_origins[6]:`, `allowed_origins[7]:`, `allowed_origins[8]:`, `allowed_origins[9]:`}},
		{"node", func(c *Config) { c.Node = Node{Name: "a/b", DataDir: "", Durability: "fast"} },
			[]string{`node.name: must not contain '/', '+' or '#'`, "node.data_dir: must not be empty", `node.durability: invalid value "fast"; want one of sync, none`}},
		{"node name", func(c *Config) { c.Node.Name = "" }, []string{"node.name: must not be empty"}},
		{"node name wildcard", func(c *Config) { c.Node.Name = "a+" }, []string{"node.name: must not contain"}},
		{"node name control", func(c *Config) { c.Node.Name = "a\x00b" }, []string{"node.name: must be printable UTF-8"}},
		{"node name long", func(c *Config) { c.Node.Name = strings.Repeat("n", 256) }, []string{"node.name: must be at most 255 bytes"}},
		{"log", func(c *Config) { c.Log = Log{Level: "trace", Format: "xml"} },
			[]string{`log.level: invalid value "trace"`, `log.format: invalid value "xml"`}},
		{"mqtt low", func(c *Config) {
			m := &c.MQTT
			m.IdleTimeout = Duration(500 * time.Millisecond)
			m.MaxPacketSize = 63
			m.MaxClientIDLen = 22
			m.MaxTopicLevels = 0
			m.MaxTopicLength = 0
			m.MaxQoSAllowed = -1
			m.MaxInflight = 0
			m.MaxMqueueLen = 0
			m.MaxMqueueBytes = 0
			m.MaxAwaitingRel = 0
			m.AwaitRelTimeout = 0
			m.KeepaliveMultiplier = 0.5
			m.MaxKeepalive = 0
			m.SharedSubscriptionStrategy = ""
			m.MaxTopicAlias = -1
			c.SysTopics.SysMsgInterval = Duration(time.Millisecond)
		}, []string{
			"mqtt.idle_timeout: must be between 1s and 5m, got 500ms",
			"mqtt.max_packet_size: must be between 64B and 268435460 bytes (the MQTT maximum), got 63B",
			"mqtt.max_clientid_len: must be between 23 and 65535, got 22",
			"mqtt.max_topic_levels: must be between 1 and 65535, got 0",
			"mqtt.max_topic_length: must be between 1 and 65535, got 0",
			"mqtt.max_qos_allowed: must be between 0 and 2, got -1",
			"mqtt.max_inflight: must be between 1 and 65535, got 0",
			"mqtt.max_mqueue_len: must be between 1 and 10000000, got 0",
			"mqtt.max_mqueue_bytes: must be at least 1B",
			"mqtt.max_awaiting_rel: must be between 1 and 65535, got 0",
			"mqtt.await_rel_timeout: must be greater than 0",
			"mqtt.keepalive_multiplier: must be between 1 and 10, got 0.5",
			"mqtt.max_keepalive: must be between 1 and 65535, got 0",
			`mqtt.shared_subscription_strategy: invalid value ""`,
			"mqtt.max_topic_alias: must be between 0 and 65535, got -1",
			"sys_topics.sys_msg_interval: must be 0 (disabled) or at least 1s, got 1ms",
		}},
		{"mqtt high", func(c *Config) {
			m := &c.MQTT
			m.IdleTimeout = Duration(5*time.Minute + time.Second)
			m.MaxPacketSize = MaxPacketSizeLimit + 1
			m.MaxClientIDLen = 65536
			m.MaxTopicLevels = 65536
			m.MaxTopicLength = 65536
			m.MaxQoSAllowed = 3
			m.MaxInflight = 65536
			m.MaxMqueueLen = 10_000_001
			m.MaxAwaitingRel = 65536
			m.SessionExpiryInterval = Duration(0x100000000 * time.Second)
			m.KeepaliveMultiplier = 10.5
			m.MaxKeepalive = 65536
			m.MaxTopicAlias = 65536
		}, []string{
			"mqtt.idle_timeout: must be between 1s and 5m, got 5m1s",
			"mqtt.max_packet_size: must be between 64B and 268435460 bytes (the MQTT maximum), got 268435461B",
			"mqtt.max_clientid_len: must be between 23 and 65535, got 65536",
			"mqtt.max_topic_levels: must be between",
			"mqtt.max_topic_length: must be between",
			"mqtt.max_qos_allowed: must be between 0 and 2, got 3",
			"mqtt.max_inflight: must be between",
			"mqtt.max_mqueue_len: must be between 1 and 10000000, got 10000001",
			"mqtt.max_awaiting_rel: must be between",
			"mqtt.session_expiry_interval: must be between 0s and 1193046h28m15s",
			"mqtt.keepalive_multiplier: must be between 1 and 10, got 10.5",
			"mqtt.max_keepalive: must be between 1 and 65535, got 65536",
			"mqtt.max_topic_alias: must be between 0 and 65535, got 65536",
		}},
		{"mqtt edges", func(c *Config) {
			m := &c.MQTT
			m.IdleTimeout = Duration(5 * time.Minute)
			m.MaxPacketSize = MaxPacketSizeLimit
			m.MaxClientIDLen = 23
			m.MaxQoSAllowed = 0
			m.MaxMqueueLen = 10_000_000
			m.KeepaliveMultiplier = 10
			m.ServerKeepalive = Duration(65535 * time.Second)
			m.SessionExpiryInterval = Duration(0xFFFFFFFF * time.Second)
			m.MaxTopicAlias = 0
			c.SysTopics.SysMsgInterval = 0
		}, nil},
		{"server_keepalive fraction", func(c *Config) { c.MQTT.ServerKeepalive = Duration(1500 * time.Millisecond) },
			[]string{"mqtt.server_keepalive: must be 0 (use the client's) or a whole number of seconds, got 1.5s"}},
		{"server_keepalive above max_keepalive", func(c *Config) {
			c.MQTT.ServerKeepalive, c.MQTT.MaxKeepalive = Duration(2*time.Minute), 60
		}, []string{"mqtt.server_keepalive: must not exceed mqtt.max_keepalive (60s), got 2m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			// These cases are about listeners, not authorization (TestAuthorizationConfig).
			c.Authorization.NoMatch = "allow"
			tc.change(c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			wantErrors(t, err, tc.want...)
			// Every problem is an *Error that names a key path.
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *Error
				if !errors.As(e, &ce) || ce.Path == "" {
					t.Errorf("problem without a key path: %v", e)
				}
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(tc.want) && tc.name != "origins" {
				t.Errorf("got %d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{"localhost", true},
		{"LocalHost", true},
		{"0.0.0.0", false},
		{"", false},
		{"::", false},
		{"[::]", false},
		{"10.0.0.1", false},
		{"128.0.0.1", false},
		{"::2", false},
		{"example.com", false},
		{"localhost.example.com", false},
		{"[127.0.0.1", false},
	} {
		if got := IsLoopbackHost(tc.host); got != tc.want {
			t.Errorf("IsLoopbackHost(%q) = %v; want %v", tc.host, got, tc.want)
		}
	}
}

func TestListenerIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		bind string
		want bool
	}{
		{"127.0.0.1:1883", true},
		{"127.1.2.3:1883", true},
		{"[::1]:1883", true},
		{"localhost:1883", true},
		{"127.0.0.1:0", true},
		{"0.0.0.0:1883", false},
		{":1883", false},
		{"[::]:1883", false},
		{"10.0.0.1:1883", false},
		{"example.com:1883", false},
		{"127.0.0.1", false},
		{"::1", false},
		{"", false},
	} {
		if got := (Listener{Bind: tc.bind}).IsLoopback(); got != tc.want {
			t.Errorf("Listener{Bind: %q}.IsLoopback() = %v; want %v", tc.bind, got, tc.want)
		}
		if got := (WSListener{Listener: Listener{Bind: tc.bind}}).IsLoopback(); got != tc.want {
			t.Errorf("WSListener{Bind: %q}.IsLoopback() = %v; want %v", tc.bind, got, tc.want)
		}
	}
}
