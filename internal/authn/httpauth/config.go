package httpauth

import (
	"slices"

	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// Config is the configuration of one HTTP authenticator; its fields and YAML keys are
// httpc.RequestConfig's. Templates may hold the client placeholders of package
// placeholder; ${password} is allowed in the body only, never in the URL or the headers.
// With method get the body becomes query parameters, so a ${password} there lands in
// the URL (New warns). Passwords cross the network in clear text over a plain http URL,
// which is why AllowPlainHTTP must be set for a host that is not loopback.
type Config httpc.RequestConfig

// Values and limits.
const (
	MethodPost = httpc.MethodPost
	MethodGet  = httpc.MethodGet

	OnErrorDeny   = httpc.OnErrorDeny
	OnErrorIgnore = httpc.OnErrorIgnore

	DefaultRequestTimeout = httpc.DefaultRequestTimeout
	MaxRequestTimeout     = httpc.MaxRequestTimeout
	DefaultMaxConcurrency = httpc.DefaultMaxConcurrency
	MaxMaxConcurrency     = httpc.MaxMaxConcurrency
	// MaxResponseSize bounds the service's answer; a larger body is an error.
	MaxResponseSize = 64 << 10
)

// settings is a validated configuration with its templates parsed.
type settings struct {
	req        *httpc.Request[placeholder.Values]
	bodyHasPwd bool
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c Config) settings() (*settings, error) {
	s := &settings{}
	parse := func(text string, in httpc.Part) (httpc.Template[placeholder.Values], error) {
		t, err := placeholder.Parse(text, placeholder.Options{NoPassword: in != httpc.PartBody})
		if err != nil {
			return nil, err
		}
		if in == httpc.PartBody && slices.Contains(t.Vars(), placeholder.Password) {
			s.bodyHasPwd = true
		}
		return t, nil
	}
	profile := httpc.Profile{UserAgent: "rampart-authn", PlainHTTPRisk: "would send passwords in clear text"}
	req, err := httpc.Compile(httpc.RequestConfig(c), profile, parse)
	if err != nil {
		return nil, err
	}
	s.req = req
	return s, nil
}
