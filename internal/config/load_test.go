package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// writeConfig writes content to rampart.yaml in a fresh temporary directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantErrors fails unless err contains every fragment.
func wantErrors(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q\ndoes not contain %q", err, f)
		}
	}
}

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Listeners.TCP["default"].IsLoopback() || !c.Listeners.WS["default"].IsLoopback() {
		t.Error("default listeners must be loopback")
	}
	if c.Listeners.TCP["default"].AllowAnonymous || c.Listeners.WS["default"].AllowAnonymous {
		t.Error("default listeners must not opt in to anonymous access explicitly")
	}
	// Default returns a fresh value each time.
	c.Listeners.TCP["default"] = Listener{}
	if Default().Listeners.TCP["default"].Bind != "127.0.0.1:1883" {
		t.Error("Default shares state between calls")
	}
}

func TestLoadWithoutFile(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(\"\", nil) = %+v; want Default()", c)
	}
}

func TestLoadEmptyFiles(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n", "node:\nmqtt:\n  # max_inflight: 5\n"} {
		c, err := Load(writeConfig(t, content), nil)
		if err != nil {
			t.Errorf("%q: %v", content, err)
			continue
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("%q: config differs from Default()", content)
		}
	}
}

const fullExample = `
node:
  name: "rampart@broker-1"
  data_dir: /var/lib/rampart
  durability: none
log:
  level: debug
  format: json
listeners:
  tcp:
    default:
      enable: true
      bind: "0.0.0.0:1883"
      max_connections: infinity
      allow_anonymous: true
      tcp_options:
        send_timeout: 5s
        high_watermark: 256KB
    internal:
      bind: "[::1]:11883"
      max_connections: 10
  ws:
    default:
      enable: false
    public:
      bind: ":8083"
      allow_anonymous: true
      path: /ws
      check_origin: true
      allowed_origins: ["https://app.example.com", "http://localhost:3000"]
mqtt:
  idle_timeout: 30s
  max_packet_size: 256MB
  max_clientid_len: 23
  max_topic_levels: 16
  max_topic_length: 1024
  max_qos_allowed: 1
  max_inflight: 10
  max_mqueue_len: 10_000_000
  max_mqueue_bytes: 1GB
  mqueue_store_qos0: false
  max_awaiting_rel: 50
  await_rel_timeout: 1m
  session_expiry_interval: 7d
  keepalive_multiplier: 2
  server_keepalive: 60s
  max_keepalive: 600
  retain_available: false
  wildcard_subscription: false
  shared_subscription: false
  shared_subscription_strategy: random
  max_topic_alias: 0
  upgrade_qos: true
  max_connect_packet_size: 16KB
  max_subscriptions: infinity
  max_publish_rate: 50
  max_publish_bytes_rate: 64KB
  max_control_rate: 0
  rate_limit_on_exceed: reject
  max_retained_messages: 5000
  max_retained_payload_size: 64KB
  max_retained_bytes: 256MB
  retained_expiry: 30d
  max_memory_queued_bytes: 2GB
sys_topics:
  sys_msg_interval: 0
authorization:
  no_match: allow
  deny_action: disconnect
  cache: {enable: false, excludes: ["telemetry/#"]}
  sources:
    - type: file
      path: /etc/rampart/acl.yaml
    - type: http
      url: https://authz.example.com/check
      body: {topic: "${topic}"}
`

func TestLoadFullExample(t *testing.T) {
	c, err := Load(writeConfig(t, fullExample), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Node = Node{Name: "rampart@broker-1", DataDir: "/var/lib/rampart", Durability: DurabilityNone}
	want.Log = Log{Level: LogDebug, Format: LogJSON}
	want.Listeners.TCP["default"] = Listener{
		Enable: true, Bind: "0.0.0.0:1883", MaxConnections: Infinity, AllowAnonymous: true, EnableAuthn: AuthnOn,
		ProxyProtocolTimeout: Duration(3 * time.Second),
		TCPOptions:           TCPOptions{SendTimeout: Duration(5 * time.Second), HighWatermark: 256 * KB},
		MaxConnectionsPerIP:  Infinity, MaxPreauthConnectionsPerIP: 64,
	}
	internal := defaultListener()
	internal.Bind, internal.MaxConnections = "[::1]:11883", 10
	want.Listeners.TCP["internal"] = internal
	wsDefault := want.Listeners.WS["default"]
	wsDefault.Enable = false
	want.Listeners.WS["default"] = wsDefault
	public := defaultWSListener()
	public.Bind, public.AllowAnonymous, public.Path = ":8083", true, "/ws"
	public.AllowedOrigins = []string{"https://app.example.com", "http://localhost:3000"}
	want.Listeners.WS["public"] = public
	want.MQTT = MQTT{
		IdleTimeout: Duration(30 * time.Second), MaxPacketSize: 256 * MB, MaxClientIDLen: 23,
		MaxTopicLevels: 16, MaxTopicLength: 1024, MaxQoSAllowed: 1, MaxInflight: 10,
		MaxMqueueLen: 10000000, MaxMqueueBytes: GB, MqueueStoreQoS0: false, MaxAwaitingRel: 50,
		AwaitRelTimeout:       Duration(time.Minute),
		SessionExpiryInterval: Duration(7 * 24 * time.Hour), KeepaliveMultiplier: 2,
		ServerKeepalive: Duration(time.Minute), MaxKeepalive: 600, RetainAvailable: false,
		WildcardSubscription: false, SharedSubscription: false,
		SharedSubscriptionStrategy: SharedRandom, MaxTopicAlias: 0, UpgradeQoS: true,
		ResourceLimits: ResourceLimits{
			MaxConnectPacketSize: 16 * KB, MaxSubscriptions: Infinity, MaxPublishRate: 50,
			MaxPublishBytesRate: 64 * KB, MaxControlRate: 0, RateLimitOnExceed: RateLimitReject,
			MaxRetainedMessages: 5000, MaxRetainedPayloadSize: 64 * KB, MaxRetainedBytes: 256 * MB,
			RetainedExpiry: Duration(30 * 24 * time.Hour), MaxMemoryQueuedBytes: 2 * GB,
			MaxConnectionsPerUsername: Infinity, MaxSessions: 1_000_000,
		},
	}
	want.SysTopics.SysMsgInterval = 0
	want.Authorization.NoMatch, want.Authorization.DenyAction = "allow", "disconnect"
	want.Authorization.Cache.Enable, want.Authorization.Cache.Excludes = false, []string{"telemetry/#"}
	file, http := defaultAuthzSource(), defaultAuthzSource()
	file.Type, file.Path = SourceFile, "/etc/rampart/acl.yaml"
	http.Type, http.URL, http.Body = SourceHTTP, "https://authz.example.com/check", map[string]string{"topic": "${topic}"}
	want.Authorization.Sources = []AuthzSource{file, http}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("loaded\n%+v\nwant\n%+v", c, want)
	}
}

// TestMarshalRoundTrip writes configurations with the YAML encoder and loads them back:
// what the types print, the loader reads.
func TestMarshalRoundTrip(t *testing.T) {
	full, err := Load(writeConfig(t, fullExample), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Config{"default": Default(), "full": full} {
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Load(writeConfig(t, string(out)), nil)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s: round trip differs\n%s", name, out)
		}
	}
}

func TestListenerMerge(t *testing.T) {
	c, err := Load(writeConfig(t, `
listeners:
  tcp:
    default:
      max_connections: 5
    extra:
      bind: "127.0.0.1:1884"
  ws:
    second:
      bind: "127.0.0.1:8084"
      allowed_origins: ["https://a.example"]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	def := c.Listeners.TCP["default"]
	if def.Bind != "127.0.0.1:1883" || def.MaxConnections != 5 || !def.Enable {
		t.Errorf("default listener not merged key by key: %+v", def)
	}
	extra := defaultListener()
	extra.Bind = "127.0.0.1:1884"
	if got := c.Listeners.TCP["extra"]; !reflect.DeepEqual(got, extra) {
		t.Errorf("extra = %+v; want the per-listener defaults with its bind %+v", got, extra)
	}
	if _, ok := c.Listeners.WS["default"]; !ok {
		t.Error("ws.default dropped when the file adds ws.second")
	}
	second := c.Listeners.WS["second"]
	if second.Path != "/mqtt" || !second.CheckOrigin || second.TCPOptions.HighWatermark != MB {
		t.Errorf("ws.second does not start from ws defaults: %+v", second)
	}

	// A listener that is not among the defaults must say where it binds.
	_, err = Load(writeConfig(t, "listeners:\n  tcp:\n    extra:\n      max_connections: 3\n"), nil)
	wantErrors(t, err, "rampart.yaml:3: listeners.tcp.extra.bind: must be set")
	_, err = Load(writeConfig(t, "listeners:\n  tcp:\n    extra:\n"), nil)
	wantErrors(t, err, "rampart.yaml:3: listeners.tcp.extra.bind: must be set")
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    string
	}{
		{"nod:\n  name: x\n", `rampart.yaml:1: unknown key "nod"`},
		{"node:\n  name: x\n  nam: y\n", `rampart.yaml:3: unknown key "node.nam"`},
		{"mqtt:\n  max_packt_size: 1MB\n", `rampart.yaml:2: unknown key "mqtt.max_packt_size"`},
		{"listeners:\n  quic:\n    default: {}\n", `rampart.yaml:2: unknown key "listeners.quic"`},
		{"# comment\nlisteners:\n  tcp:\n    default:\n      enable: true\n      bnd: \"0.0.0.0:1883\"\n",
			`rampart.yaml:6: unknown key "listeners.tcp.default.bnd"`},
		{"listeners:\n  ws:\n    extra:\n      bind: \":1\"\n      tcp_options:\n        send_timout: 1s\n",
			`rampart.yaml:6: unknown key "listeners.ws.extra.tcp_options.send_timout"`},
		{"listeners:\n  tcp:\n    default:\n      path: /mqtt\n", `rampart.yaml:4: unknown key "listeners.tcp.default.path"`},
		{"hasauthenticators: true\n", `rampart.yaml:1: unknown key "hasauthenticators"`},
		{"HasAuthenticators: true\n", `rampart.yaml:1: unknown key "HasAuthenticators"`},
		{"Node:\n  name: x\n", `rampart.yaml:1: unknown key "Node"`},
	} {
		_, err := Load(writeConfig(t, tc.content), nil)
		wantErrors(t, err, "config: ", tc.want)
	}
}

func TestAllProblemsReported(t *testing.T) {
	_, err := Load(writeConfig(t, "node:\n  nam: x\nmqtt:\n  max_inflight: many\n  bogus: 1\n"), nil)
	wantErrors(t, err,
		`rampart.yaml:2: unknown key "node.nam"`,
		`rampart.yaml:4: mqtt.max_inflight: want an integer, got string "many"`,
		`rampart.yaml:5: unknown key "mqtt.bogus"`)
	var ce *Error
	if !errors.As(err, &ce) || ce.Path != "node.nam" || ce.Source == "" {
		t.Errorf("errors.As(*Error) = %+v", ce)
	}
}

func TestWrongTypes(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    string
	}{
		{"mqtt:\n  max_inflight: lots\n", `rampart.yaml:2: mqtt.max_inflight: want an integer, got string "lots"`},
		{"mqtt:\n  max_inflight: \"32\"\n", `rampart.yaml:2: mqtt.max_inflight: want an integer`},
		{"mqtt:\n  max_inflight: 3.5\n", `rampart.yaml:2: mqtt.max_inflight: want an integer, got number 3.5`},
		{"mqtt:\n  max_inflight: 0x20\n", `rampart.yaml:2: mqtt.max_inflight: invalid integer "0x20"`},
		{"mqtt:\n  max_inflight: 010\n", `rampart.yaml:2: mqtt.max_inflight: invalid integer "010": leading zero`},
		{"mqtt:\n  max_inflight:\n", `rampart.yaml:2: mqtt.max_inflight: missing value`},
		{"mqtt:\n  max_inflight: [1]\n", `rampart.yaml:2: mqtt.max_inflight: want an integer, got a list`},
		{"mqtt:\n  retain_available: yes\n", `rampart.yaml:2: mqtt.retain_available: want true or false, got string "yes"`},
		{"mqtt:\n  retain_available: 1\n", `rampart.yaml:2: mqtt.retain_available: want true or false, got integer 1`},
		{"mqtt:\n  keepalive_multiplier: fast\n", `rampart.yaml:2: mqtt.keepalive_multiplier: want a number`},
		{"mqtt:\n  keepalive_multiplier: .nan\n", `rampart.yaml:2: mqtt.keepalive_multiplier: invalid number`},
		{"mqtt:\n  max_packet_size: 1.5MB\n", `rampart.yaml:2: mqtt.max_packet_size: invalid size "1.5MB": not a whole number`},
		{"mqtt:\n  max_packet_size: -1\n", `rampart.yaml:2: mqtt.max_packet_size: invalid size "-1": negative`},
		{"mqtt:\n  max_packet_size: true\n", `rampart.yaml:2: mqtt.max_packet_size: want a size`},
		{"mqtt:\n  idle_timeout: 10\n", `rampart.yaml:2: mqtt.idle_timeout: invalid duration "10": missing unit`},
		{"mqtt:\n  idle_timeout: -5s\n", `rampart.yaml:2: mqtt.idle_timeout: invalid duration "-5s": negative`},
		{"mqtt:\n  idle_timeout: {s: 5}\n", `rampart.yaml:2: mqtt.idle_timeout: want a duration`},
		{"mqtt:\n  shared_subscription_strategy: sticky\n", `rampart.yaml:2: mqtt.shared_subscription_strategy: invalid value "sticky"; want one of round_robin, random`},
		{"node:\n  name: 42\n", `rampart.yaml:2: node.name: want a string, got integer 42 (quote it`},
		{"node: 5\n", `rampart.yaml:1: node: want a mapping of keys, got integer 5`},
		{"node: [a]\n", `rampart.yaml:1: node: want a mapping of keys, got a list`},
		{"- a\n", `rampart.yaml:1: want a mapping of keys, got a list`},
		{"listeners:\n  tcp: [a]\n", `rampart.yaml:2: listeners.tcp: want a mapping of keys, got a list`},
		{"listeners:\n  tcp:\n    default:\n      max_connections: none\n", `rampart.yaml:4: listeners.tcp.default.max_connections: invalid limit "none"`},
		{"listeners:\n  ws:\n    default:\n      allowed_origins: https://a\n", `rampart.yaml:4: listeners.ws.default.allowed_origins: want a list of strings, got string`},
		{"listeners:\n  ws:\n    default:\n      allowed_origins:\n        - https://a\n        - 5\n", `rampart.yaml:6: listeners.ws.default.allowed_origins[1]: want a string, got integer 5`},
		{"listeners:\n  ws:\n    default:\n      allowed_origins: [[a]]\n", `rampart.yaml:4: listeners.ws.default.allowed_origins[0]: want a string, got a list`},
		{"log:\n  level: !custom info\n", `rampart.yaml:2: log.level: want `},
	} {
		_, err := Load(writeConfig(t, tc.content), nil)
		wantErrors(t, err, tc.want)
	}
}

func TestDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{"mqtt:\n  max_inflight: 5\n  max_inflight: 6\n", `rampart.yaml:3: mqtt.max_inflight: duplicate key (first at line 2)`},
		{"node:\n  name: a\nnode:\n  name: b\n", `rampart.yaml:3: node: duplicate key (first at line 1)`},
		{"listeners:\n  tcp:\n    x:\n      bind: \":1\"\n    x:\n      bind: \":2\"\n", `rampart.yaml:5: listeners.tcp.x: duplicate key (first at line 3)`},
	} {
		_, err := Load(writeConfig(t, tc.content), nil)
		wantErrors(t, err, tc.want)
	}
}

func TestYAMLFeatures(t *testing.T) {
	// Anchors and aliases are fine and are checked like the text they stand for.
	_, err := Load(writeConfig(t, `
opts: &opts
  send_timeout: 3s
`), nil)
	wantErrors(t, err, `unknown key "opts"`)
	c, err := Load(writeConfig(t, `
listeners:
  tcp:
    default:
      tcp_options: &opts
        send_timeout: 3s
    extra:
      bind: "127.0.0.1:1999"
      tcp_options: *opts
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners.TCP["extra"].TCPOptions.SendTimeout != Duration(3*time.Second) {
		t.Errorf("alias not followed: %+v", c.Listeners.TCP["extra"])
	}

	for _, tc := range []struct{ content, want string }{
		{"base: &b\n  x: 1\nnode:\n  <<: *b\n", `merge keys`},
		{"node:\n  name: a\n---\nnode:\n  name: b\n", `rampart.yaml:3: a second YAML document`},
		{"node:\n  name: [a\n", `config: ` /* syntax error */},
		{"node:\n\tname: a\n", `rampart.yaml:2: invalid YAML`},
	} {
		_, err := Load(writeConfig(t, tc.content), nil)
		wantErrors(t, err, tc.want)
	}
}

func TestLoadFileProblems(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	wantErrors(t, err, "config: ", "missing.yaml")
	big := strings.Repeat("# padding\n", MaxFileSize/10+1)
	_, err = Load(writeConfig(t, big), nil)
	wantErrors(t, err, "larger than")
}

func TestValidationErrorsCarryLines(t *testing.T) {
	_, err := Load(writeConfig(t, "mqtt:\n  max_inflight: 0\n  max_qos_allowed: 3\n"), nil)
	wantErrors(t, err,
		"rampart.yaml:2: mqtt.max_inflight: must be between 1 and 65535, got 0",
		"rampart.yaml:3: mqtt.max_qos_allowed: must be between 0 and 2, got 3")
	_, err = Load(writeConfig(t, "listeners:\n  tcp:\n    public:\n      bind: \"0.0.0.0:1883\"\n"), nil)
	wantErrors(t, err, "rampart.yaml:4: listeners.tcp.public.bind: binds 0.0.0.0:1883 (not loopback) with no authenticator")
	_, err = Load(writeConfig(t, "listeners:\n  ws:\n    default:\n      allowed_origins: [\"https://ok.example\", \"*\"]\n"), nil)
	wantErrors(t, err, "rampart.yaml:4: listeners.ws.default.allowed_origins[1]: want an origin")
}
