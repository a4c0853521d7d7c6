package config

import (
	"reflect"
	"testing"
)

func TestEnvOverrides(t *testing.T) {
	c, err := Load("", []string{
		"HOME=/root",
		"RAMPART_CONFIG=/etc/rampart/rampart.yaml",
		"RAMPART_LISTENERS__TCP__DEFAULT__BIND=127.0.0.2:1883",
		"RAMPART_MQTT__MAX_PACKET_SIZE=256KB",
		"RAMPART_MQTT__RETAIN_AVAILABLE=false",
		"RAMPART_MQTT__KEEPALIVE_MULTIPLIER=2.5",
		"RAMPART_MQTT__MAX_INFLIGHT=64",
		"RAMPART_MQTT__SESSION_EXPIRY_INTERVAL=7d",
		"RAMPART_LOG__LEVEL=debug",
		"RAMPART_LISTENERS__WS__DEFAULT__ALLOWED_ORIGINS=https://a, https://b:8443",
		"RAMPART_LISTENERS__TCP__DEFAULT__MAX_CONNECTIONS=infinity",
		"RAMPART_NODE__NAME=with=equals",
	})
	if err != nil {
		t.Fatal(err)
	}
	tcp := c.Listeners.TCP["default"]
	ws := c.Listeners.WS["default"]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"bind", tcp.Bind, "127.0.0.2:1883"},
		{"max_packet_size", c.MQTT.MaxPacketSize, 256 * KB},
		{"retain_available", c.MQTT.RetainAvailable, false},
		{"keepalive_multiplier", c.MQTT.KeepaliveMultiplier, 2.5},
		{"max_inflight", c.MQTT.MaxInflight, 64},
		{"session_expiry_interval", c.MQTT.SessionExpiryInterval.String(), "168h"},
		{"log.level", c.Log.Level, LogDebug},
		{"allowed_origins", ws.AllowedOrigins, []string{"https://a", "https://b:8443"}},
		{"max_connections", tcp.MaxConnections, Infinity},
		{"node.name", c.Node.Name, "with=equals"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v; want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeConfig(t, "mqtt:\n  max_inflight: 10\nlisteners:\n  ws:\n    default:\n      allowed_origins: [\"https://x\"]\n")
	c, err := Load(path, []string{
		"RAMPART_MQTT__MAX_INFLIGHT=20",
		"RAMPART_LISTENERS__WS__DEFAULT__ALLOWED_ORIGINS=",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.MaxInflight != 20 {
		t.Errorf("max_inflight = %d; the environment must win over the file", c.MQTT.MaxInflight)
	}
	if len(c.Listeners.WS["default"].AllowedOrigins) != 0 {
		t.Errorf("an empty list variable must empty the list: %q", c.Listeners.WS["default"].AllowedOrigins)
	}
	// Validation problems point at the variable that set the value.
	_, err = Load(path, []string{"RAMPART_MQTT__MAX_INFLIGHT=0"})
	wantErrors(t, err, "config: environment RAMPART_MQTT__MAX_INFLIGHT: mqtt.max_inflight: must be between 1 and 65535, got 0")
}

func TestEnvNewListener(t *testing.T) {
	c, err := Load("", []string{
		"RAMPART_LISTENERS__TCP__EXTRA__BIND=127.0.0.1:1884",
		"RAMPART_LISTENERS__TCP__EXTRA__MAX_CONNECTIONS=7",
		"RAMPART_LISTENERS__WS__MY-WS__BIND=127.0.0.1:8084",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultListener()
	want.Bind, want.MaxConnections = "127.0.0.1:1884", 7
	if got := c.Listeners.TCP["extra"]; !reflect.DeepEqual(got, want) {
		t.Errorf("extra = %+v; want %+v", got, want)
	}
	if _, ok := c.Listeners.TCP["default"]; !ok {
		t.Error("default listener dropped")
	}
	if w := c.Listeners.WS["my-ws"]; w.Bind != "127.0.0.1:8084" || w.Path != "/mqtt" {
		t.Errorf("my-ws = %+v", w)
	}

	// A new listener without a bind fails validation, naming the variable.
	_, err = Load("", []string{"RAMPART_LISTENERS__TCP__EXTRA__MAX_CONNECTIONS=7"})
	wantErrors(t, err, "config: environment RAMPART_LISTENERS__TCP__EXTRA__MAX_CONNECTIONS: listeners.tcp.extra.bind: must be set")
	// A value that does not parse creates no listener and is reported.
	_, err = Load("", []string{"RAMPART_LISTENERS__TCP__EXTRA__MAX_CONNECTIONS=many"})
	wantErrors(t, err, `listeners.tcp.extra.max_connections: invalid limit "many"`)
}

func TestEnvErrors(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"RAMPART_MQTT__MAX_PACKT_SIZE=1MB", `config: environment RAMPART_MQTT__MAX_PACKT_SIZE: unknown key "mqtt.max_packt_size"`},
		{"RAMPART_MQTT_MAX_PACKET_SIZE=1MB", `config: environment RAMPART_MQTT_MAX_PACKET_SIZE: unknown key "mqtt_max_packet_size"`},
		{"RAMPART_BOGUS=1", `unknown key "bogus"`},
		{"RAMPART_=1", `unknown key ""`},
		{"RAMPART_MQTT__MAX_INFLIGHT__X=1", `unknown key "mqtt.max_inflight.x"`},
		{"RAMPART_LISTENERS__TCP__DEFAULT__BND=:1", `unknown key "listeners.tcp.default.bnd"`},
		{"RAMPART_LISTENERS__TCP____BIND=:1", `unknown key "listeners.tcp..bind"`},
		{"RAMPART_HASAUTHENTICATORS=true", `unknown key "hasauthenticators"`},
		{"RAMPART_MQTT=1", `environment RAMPART_MQTT: mqtt: names a section`},
		{"RAMPART_LISTENERS__TCP__DEFAULT=1", `listeners.tcp.default: names a section`},
		{"RAMPART_MQTT__MAX_PACKET_SIZE=12XB", `config: environment RAMPART_MQTT__MAX_PACKET_SIZE: mqtt.max_packet_size: invalid size "12XB"`},
		{"RAMPART_MQTT__MAX_INFLIGHT=lots", `mqtt.max_inflight: invalid integer "lots"`},
		{"RAMPART_MQTT__RETAIN_AVAILABLE=yes", `mqtt.retain_available: invalid boolean "yes"`},
		{"RAMPART_MQTT__KEEPALIVE_MULTIPLIER=NaN", `mqtt.keepalive_multiplier: invalid number "NaN"`},
		{"RAMPART_MQTT__IDLE_TIMEOUT=10", `mqtt.idle_timeout: invalid duration "10": missing unit`},
		{"RAMPART_LOG__LEVEL=verbose", `log.level: invalid value "verbose"`},
		{"RAMPART_LISTENERS__WS__DEFAULT__ALLOWED_ORIGINS=https://a,,https://b", `empty item`},
	} {
		_, err := Load("", []string{tc.env})
		wantErrors(t, err, tc.want)
	}
	// Every bad variable is reported, not only the first.
	_, err := Load("", []string{"RAMPART_A=1", "RAMPART_B=2"})
	wantErrors(t, err, `unknown key "a"`, `unknown key "b"`)
}

func TestEnvIgnoresOthers(t *testing.T) {
	for _, name := range NonConfigEnv() {
		if _, err := Load("", []string{name + "=anything"}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Load("", []string{"PATH=/bin", "rampart_mqtt__x=1", "XRAMPART_Y=1", "NOEQUALS"}); err != nil {
		t.Error(err)
	}
}
