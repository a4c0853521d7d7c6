package httpsrc

import (
	"github.com/rampart-mqtt/rampart/internal/backend/httpc"
)

// Config configures the http authorization source; its fields and YAML keys (those of an
// authorization source of type http) are httpc.RequestConfig's. Templates may hold
// client placeholders such as ${clientid}, ${username}, ${peerhost},
// ${cert_common_name}, ${client_attrs.NAME} (never ${password}) and the question's
// ${action}, ${topic}, ${qos} and ${retain}. Over a plain http URL anyone on the path
// reads the questions and can forge the answers, which is why AllowPlainHTTP must be set
// for a host that is not loopback.
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
	// MaxAnswerSize bounds the service's answer body; a longer one is an error.
	MaxAnswerSize = 16 << 10
)

const (
	mimeJSON = httpc.ContentJSON
	mimeForm = httpc.ContentForm
)

// compiled is a validated configuration with its templates parsed.
type compiled = httpc.Request[values]

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c Config) compile() (*compiled, error) {
	profile := httpc.Profile{
		UserAgent:     "rampart-authz",
		PlainHTTPRisk: "lets anyone on the path read the questions and forge the answers",
	}
	return httpc.Compile(httpc.RequestConfig(c), profile, func(text string, _ httpc.Part) (httpc.Template[values], error) {
		t, err := parseTemplate(text)
		if err != nil {
			return nil, err
		}
		return t, nil
	})
}
