// Package authn decides who a connecting client is. Authenticators are tried in the order an
// operator configured them; each answers Allow, Deny or Ignore (the credentials are not mine:
// ask the next one). The chain, its metrics and the contracts every mechanism implements live
// here; each mechanism or backend lives in a subpackage.
package authn

import (
	"context"
	"errors"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Outcome is an authenticator's answer.
type Outcome int

// The three answers. The zero value is Ignore, so an authenticator that forgets to answer
// never lets a client in.
const (
	Ignore Outcome = iota // not my credentials: ask the next authenticator
	Allow                 // the client is who it says
	Deny                  // the client is refused
)

func (o Outcome) String() string {
	switch o {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "ignore"
}

// Credentials are what the client presented in CONNECT. Password is nil when the CONNECT
// carried no password (distinct from an empty one).
type Credentials struct {
	Username string
	Password []byte
}

// HasPassword reports whether CONNECT carried a password.
func (c *Credentials) HasPassword() bool { return c.Password != nil }

// Result is an authenticator's answer with what an Allow grants.
type Result struct {
	Outcome Outcome
	// Reason is the CONNACK reason code on Deny. Zero means BadUserNameOrPassword (0x86).
	Reason packet.ReasonCode
	// Superuser bypasses authorization.
	Superuser bool
	// ACL rules returned by the authenticator (JWT claim, HTTP body); they are checked
	// before every authorization source.
	ACL []authz.Rule
	// Attrs are client attributes (client_attrs) for placeholders and rules.
	Attrs map[string]string
	// ExpiresAt, when set, is when the authentication stops being valid (a token's exp):
	// the broker disconnects the client then.
	ExpiresAt time.Time
	// Principal is the identity the authenticator vouched for, the owner of the client's
	// persistent session: a token's issuer and subject, a certificate's issuer and subject,
	// or the user record the password was checked against. A session is resumed only by
	// the same principal, never by a client that merely presents the same client id and
	// user name. An authenticator that leaves it empty vouches for the user name it was
	// asked about; the chain then fills in "<authenticator name>:<user name>".
	Principal string
	// Detail says why, for the log. It never holds a secret.
	Detail string
}

// Allowed returns an Allow result.
func Allowed() Result { return Result{Outcome: Allow} }

// Denied returns a Deny result with the given reason code and log detail.
func Denied(reason packet.ReasonCode, detail string) Result {
	return Result{Outcome: Deny, Reason: reason, Detail: detail}
}

// Ignored returns an Ignore result with a log detail.
func Ignored(detail string) Result { return Result{Outcome: Ignore, Detail: detail} }

// DenyReason returns the CONNACK reason code of a Deny.
func (r *Result) DenyReason() packet.ReasonCode {
	if r.Reason == 0 {
		return packet.BadUserNameOrPassword
	}
	return r.Reason
}

// Authenticator checks a client's CONNECT credentials.
//
// Authenticate must honour ctx (it carries the chain's deadline) and must not keep cred
// after it returns. A backend error or timeout is Deny unless the authenticator was
// configured to answer Ignore on error.
type Authenticator interface {
	// Name identifies the authenticator in logs and metrics, e.g.
	// "password_based:built_in_database".
	Name() string
	Authenticate(ctx context.Context, info *clientinfo.Info, cred *Credentials) Result
}

// ErrUnknownMethod is returned by a Conversation's start when the method is not configured.
var ErrUnknownMethod = errors.New("authentication method not supported")

// Enhanced is an MQTT 5 enhanced authentication method (CONNECT with Authentication Method,
// then AUTH 0x18 packets until CONNACK; re-authentication with AUTH 0x19).
type Enhanced interface {
	// Method is the Authentication Method name, e.g. "SCRAM-SHA-256".
	Method() string
	// Begin starts a conversation for one client. The first Step gets the Authentication
	// Data of the CONNECT (or of the AUTH 0x19 that starts a re-authentication).
	Begin(ctx context.Context, info *clientinfo.Info) (Conversation, error)
}

// Conversation is one run of an enhanced authentication exchange.
type Conversation interface {
	// Step consumes the client's Authentication Data and returns the server's. While done
	// is false the broker sends out in an AUTH 0x18 and waits for the client's next AUTH.
	// When done is true, res decides: on Allow out goes into the CONNACK (or the AUTH 0x00
	// of a re-authentication); on Deny the client is refused with res's reason.
	Step(ctx context.Context, in []byte) (out []byte, done bool, res Result)
}
