package poolcfg

import (
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	l, err := Limits{QueryTimeout: 300 * time.Millisecond}.WithDefaults("query_timeout")
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{PoolSize: DefaultPoolSize, ConnectTimeout: DefaultConnectTimeout, QueryTimeout: 300 * time.Millisecond, AcquireTimeout: 300 * time.Millisecond}
	if l != want {
		t.Errorf("got %+v, want %+v", l, want)
	}
	if l, _ = (Limits{AcquireTimeout: time.Minute}).WithDefaults("query_timeout"); l.AcquireTimeout != DefaultQueryTimeout {
		t.Errorf("acquire timeout %v not capped at the query timeout", l.AcquireTimeout)
	}
	for _, tt := range []struct {
		l   Limits
		key string
	}{
		{Limits{PoolSize: -1}, "pool_size:"},
		{Limits{PoolSize: MaxPoolSize + 1}, "pool_size:"},
		{Limits{ConnectTimeout: 2 * time.Minute}, "connect_timeout:"},
		{Limits{QueryTimeout: -time.Second}, "request_timeout:"},
		{Limits{AcquireTimeout: -time.Second}, "acquire_timeout:"},
	} {
		if _, err := tt.l.WithDefaults("request_timeout"); err == nil || !strings.HasPrefix(err.Error(), tt.key) {
			t.Errorf("%+v: got %v, want an error naming %s", tt.l, err, tt.key)
		}
	}
}

func TestCheckPlainText(t *testing.T) {
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := CheckPlainText(host, false, "x", "ssl"); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if err := CheckPlainText("db.example.com", true, "x", "ssl"); err != nil {
		t.Errorf("allowed: %v", err)
	}
	err := CheckPlainText("db.example.com", false, "the login", "ssl")
	if err == nil || err.Error() != "ssl: a connection to db.example.com without TLS sends the login in clear text; configure ssl or set allow_plaintext" {
		t.Errorf("got %v", err)
	}
}

func TestReadSecret(t *testing.T) {
	if s, err := ReadSecret(""); s != "" || err != nil {
		t.Errorf("empty reference: %q, %v", s, err)
	}
	t.Setenv("POOLCFG_TEST_SECRET", "s3cret")
	if s, err := ReadSecret("env:POOLCFG_TEST_SECRET"); s != "s3cret" || err != nil {
		t.Errorf("env reference: %q, %v", s, err)
	}
	if _, err := ReadSecret("env:POOLCFG_TEST_UNSET"); err == nil {
		t.Error("unset variable: no error")
	}
}
