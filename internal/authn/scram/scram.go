// Package scram is MQTT 5 enhanced authentication with SCRAM-SHA-256 and SCRAM-SHA-512
// (RFC 5802, RFC 7677), server side, on github.com/xdg-go/scram.
//
// The exchange: CONNECT carries Authentication Method "SCRAM-SHA-256" and the
// client-first message as Authentication Data; the broker answers AUTH 0x18 with the
// server-first message; the client's AUTH 0x18 carries the client-final message with its
// proof; CONNACK carries the server-final message (the server's signature) on success.
//
// Credentials come from a Lookup (the built-in database implements it); the server never
// sees or stores a password, only the salt, iteration count, StoredKey and ServerKey that
// Derive computes when a user is added.
//
// Security choices:
//   - The SCRAM user name must equal the CONNECT User Name (or Client Identifier, with
//     UserIDType "clientid"): a client cannot authenticate as one user and be authorized
//     by placeholders as another.
//   - An authorization identity (a=) other than the user name is refused.
//   - An unknown user gets a server-first message with a salt derived from a per-process
//     secret and the name, and the configured iteration count, exactly like a known user,
//     and is refused only after the proof: the exchange does not reveal which users exist.
//   - Channel binding is not offered (MQTT has no way to advertise SCRAM-PLUS): a client
//     that requires it ("p=") is refused; "y" (client could bind, thinks the server
//     cannot) and "n" are accepted, as RFC 5802 §6 prescribes for a server without PLUS.
//   - Messages larger than MaxMessageSize, empty or not UTF-8, out of order, or after
//     the conversation ended are refused and end the conversation.
package scram

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"unicode/utf8"

	xscram "github.com/xdg-go/scram"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// MaxMessageSize bounds one SCRAM message from the client. Real ones are well under
// 300 bytes (a user name, a nonce, a proof).
const MaxMessageSize = 4096

// Account is what a Lookup knows about a user for one hash function.
type Account struct {
	Credentials Credentials
	Superuser   bool
}

// Lookup finds a user's SCRAM credentials. found is false for an unknown user, or a user
// without credentials for h; err is for a failing backend only.
type Lookup interface {
	LookupSCRAM(ctx context.Context, h Hash, userID string) (acct Account, found bool, err error)
}

// The CONNECT field a SCRAM user name must equal.
const (
	UserIDUsername = "username"
	UserIDClientID = "clientid"
)

// Config configures one SCRAM mechanism.
type Config struct {
	// Hash is SHA256 or SHA512.
	Hash Hash
	// UserIDType is "username" (default) or "clientid": the CONNECT field the SCRAM user
	// name must equal. It should match the built-in database's user_id_type.
	UserIDType string
	// Iterations is the iteration count announced to unknown users so they look like
	// known ones; set it to what Derive uses for real users (default 4096).
	Iterations int
}

// Mechanism is one SCRAM enhanced authentication method. It implements authn.Enhanced and
// is safe for concurrent use.
type Mechanism struct {
	cfg    Config
	lookup Lookup
	log    *slog.Logger
	secret []byte // keys the fake salts of unknown users

	nonce xscram.NonceGeneratorFcn // tests only: a fixed server nonce; nil is crypto/rand
}

var _ authn.Enhanced = (*Mechanism)(nil)

// New returns a SCRAM mechanism. log may be nil.
func New(cfg Config, lookup Lookup, log *slog.Logger) (*Mechanism, error) {
	if !cfg.Hash.valid() {
		return nil, fmt.Errorf("scram: unknown hash %q", cfg.Hash)
	}
	if cfg.UserIDType == "" {
		cfg.UserIDType = UserIDUsername
	}
	if cfg.UserIDType != UserIDUsername && cfg.UserIDType != UserIDClientID {
		return nil, fmt.Errorf("scram: user id type %q is neither username nor clientid", cfg.UserIDType)
	}
	if cfg.Iterations <= 0 {
		cfg.Iterations = DefaultIterations
	}
	if cfg.Iterations > maxIterations {
		return nil, fmt.Errorf("scram: iterations %d > %d", cfg.Iterations, maxIterations)
	}
	if lookup == nil {
		return nil, errors.New("scram: no credential lookup")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("scram: secret: %w", err)
	}
	return &Mechanism{cfg: cfg, lookup: lookup, log: log, secret: secret}, nil
}

// Method returns "SCRAM-SHA-256" or "SCRAM-SHA-512".
func (m *Mechanism) Method() string { return m.cfg.Hash.Method() }

// Begin starts a conversation for one client; the first Step takes the client-first
// message.
func (m *Mechanism) Begin(_ context.Context, info *clientinfo.Info) (authn.Conversation, error) {
	if info == nil {
		return nil, errors.New("scram: no client info")
	}
	want := info.Username
	if m.cfg.UserIDType == UserIDClientID {
		want = info.ClientID
	}
	// An ended ctx is not an error here: the broker would report it as a bad method.
	// The first Step checks ctx and denies.
	return &conversation{m: m, want: want}, nil
}

// fake returns credentials for an unknown user that look like a real user's (a stable
// salt per name, the configured iterations) and that no proof can match: StoredKey is a
// MAC nobody can invert.
func (m *Mechanism) fake(name string) xscram.StoredCredentials {
	mac := func(label string, n int) []byte {
		var out []byte
		for block := byte(0); len(out) < n; block++ {
			h := hmac.New(sha256.New, m.secret)
			h.Write([]byte{block})
			h.Write([]byte(label))
			h.Write([]byte(m.cfg.Hash))
			h.Write([]byte{0})
			h.Write([]byte(name))
			out = h.Sum(out)
		}
		return out[:n]
	}
	return xscram.StoredCredentials{
		KeyFactors: xscram.KeyFactors{Salt: string(mac("salt", saltLength)), Iters: m.cfg.Iterations},
		StoredKey:  mac("stored", m.cfg.Hash.Size()),
		ServerKey:  mac("server", m.cfg.Hash.Size()),
	}
}

type state int

const (
	wantClientFirst state = iota
	wantClientFinal
	finished
)

// conversation is one SCRAM exchange. Its methods are serialised by mu, though the broker
// calls Step from one goroutine.
type conversation struct {
	m    *Mechanism
	want string // the CONNECT identity the SCRAM user name must equal

	mu        sync.Mutex
	state     state
	sc        *xscram.ServerConversation
	acct      Account
	known     bool  // the user exists and has credentials for this hash
	mismatch  bool  // the SCRAM user name is not the CONNECT identity
	lookupErr error // the backend failed
}

func deny(detail string) authn.Result {
	return authn.Denied(packet.NotAuthorized, "scram: "+detail)
}

// Step implements authn.Conversation.
func (c *conversation) Step(ctx context.Context, in []byte) ([]byte, bool, authn.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == finished {
		return nil, true, deny("message after the conversation ended")
	}
	current := c.state
	c.state = finished // until proven otherwise, any failure ends the conversation
	if err := ctx.Err(); err != nil {
		return nil, true, deny("context ended: " + err.Error())
	}
	switch {
	case len(in) == 0:
		return nil, true, deny("empty authentication data")
	case len(in) > MaxMessageSize:
		return nil, true, deny(fmt.Sprintf("authentication data of %d bytes exceeds %d", len(in), MaxMessageSize))
	case !utf8.Valid(in):
		return nil, true, deny("authentication data is not UTF-8")
	}
	if current == wantClientFirst {
		return c.first(ctx, in)
	}
	return c.final(in)
}

func (c *conversation) first(ctx context.Context, in []byte) ([]byte, bool, authn.Result) {
	srv, err := c.m.cfg.Hash.gen().NewServer(func(name string) (xscram.StoredCredentials, error) {
		return c.credentials(ctx, name)
	})
	if err != nil {
		return nil, true, deny("server: " + err.Error())
	}
	if c.m.nonce != nil {
		srv = srv.WithNonceGenerator(c.m.nonce)
	}
	c.sc = srv.NewConversation()
	out, err := c.sc.Step(string(in))
	switch {
	case c.mismatch:
		return nil, true, deny("SCRAM user name differs from the CONNECT " + c.m.cfg.UserIDType)
	case c.lookupErr != nil:
		c.m.log.Error("scram credential lookup failed", "method", c.m.Method(), "error", c.lookupErr)
		return nil, true, authn.Denied(packet.NotAuthorized, "scram: credential lookup failed")
	case err != nil:
		// Parse errors and channel binding refusals; the messages hold no secret.
		return nil, true, deny("client-first message refused: " + err.Error())
	}
	if a := c.sc.AuthzID(); a != "" && a != c.sc.Username() {
		return nil, true, deny("authorization identity differs from the user name")
	}
	c.state = wantClientFinal
	return []byte(out), false, authn.Result{}
}

// credentials is the library's lookup callback, run inside the client-first step.
func (c *conversation) credentials(ctx context.Context, name string) (xscram.StoredCredentials, error) {
	if name != c.want || name == "" {
		c.mismatch = true
		return xscram.StoredCredentials{}, errors.New("user name mismatch")
	}
	acct, found, err := c.m.lookup.LookupSCRAM(ctx, c.m.cfg.Hash, name)
	if err != nil {
		c.lookupErr = err
		return xscram.StoredCredentials{}, err
	}
	if !found || acct.Credentials.Validate(c.m.cfg.Hash) != nil {
		return c.m.fake(name), nil
	}
	c.known, c.acct = true, acct
	cr := acct.Credentials
	return xscram.StoredCredentials{
		KeyFactors: xscram.KeyFactors{Salt: string(cr.Salt), Iters: cr.Iterations},
		StoredKey:  cr.StoredKey,
		ServerKey:  cr.ServerKey,
	}, nil
}

func (c *conversation) final(in []byte) ([]byte, bool, authn.Result) {
	out, err := c.sc.Step(string(in))
	switch {
	case !c.known:
		return nil, true, deny("unknown user")
	case err != nil || !c.sc.Valid():
		// The error may say why (nonce, channel binding, proof) but holds no secret;
		// the client learns only "not authorized".
		detail := "invalid proof"
		if err != nil {
			detail = "client-final message refused: " + err.Error()
		}
		return nil, true, deny(detail)
	}
	// The proof was checked against this account's credentials: it owns the session.
	return []byte(out), true, authn.Result{Outcome: authn.Allow, Superuser: c.acct.Superuser,
		Principal: "scram:" + c.sc.Username()}
}
