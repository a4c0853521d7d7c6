// Package cinfo is the authentication mechanism "cinfo": ordered checks over what the broker
// knows about a connecting client (client id, username, peer, listener, protocol version,
// verified certificate, client attributes). Each check holds one or more boolean expressions
// in the expr language (github.com/expr-lang/expr) and a result; the first check whose
// expressions are all true decides Allow, Deny or Ignore, and when none matches the mechanism
// answers Ignore.
//
// Expressions are compiled once, when the configuration is loaded, against a typed
// environment (see Env), so a misspelt field, a type error or an invalid regular expression
// stops the broker from starting instead of surfacing at CONNECT time. Client input only ever
// reaches an expression as a value of a field: a client id such as `" || true || "` is a
// string compared like any other, never expression text.
//
// Evaluation is bounded. The expr language has no loops, recursion or user-defined
// functions that could run forever; iteration exists only in the collection builtins
// (all, any, filter, map, ...) over finite lists. On top of that, New rejects:
//
//   - expressions longer than MaxExpressionLen bytes;
//   - the range operator (a..b), which builds a list of arbitrary size from two numbers;
//   - a collection builtin nested inside another one's predicate (quadratic work on a long
//     client id split into characters);
//   - the repeat builtin (string amplification);
//   - a regular expression that is not a string literal, for both the matches operator and
//     the regex_match function, so patterns are compiled and validated at load and client
//     input can never become a pattern. Go's regexp package runs in time linear in the input.
//
// The work of one evaluation is therefore linear in the size of the expression and of the
// client's input, which the CONNECT packet size already limits, and the expr virtual machine
// also enforces its memory budget.
//
// Helper functions in the environment, beyond expr's builtins (hasPrefix, hasSuffix, lower,
// split, len, ...) and its operators (startsWith, endsWith, contains, matches, in):
//
//	regex_match(s, "pattern")  true when s contains a match of the literal pattern (RE2
//	                           syntax; anchor it with ^ and $ to match the whole string)
//
// An expression that fails while evaluating (for instance cert_san_dns[0] when the
// certificate has no DNS name) makes the mechanism answer Deny: a check that cannot be
// decided fails closed. Guard such accesses, e.g. `len(cert_san_dns) > 0 && ...`.
package cinfo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Mechanism is the configuration name of this authenticator.
const Mechanism = "cinfo"

// MaxExpressionLen is the longest expression, in bytes, that New accepts.
const MaxExpressionLen = 4096

// The results a check can give.
const (
	ResultAllow  = "allow"
	ResultDeny   = "deny"
	ResultIgnore = "ignore"
)

// Config is the configuration of a cinfo authenticator.
type Config struct {
	// Checks are tried in order; the first whose expressions are all true decides.
	Checks []Check
}

// Check is one rule.
type Check struct {
	// IsMatch holds the expressions that must all be true for the check to match. A YAML
	// is_match given as a single string is a list of one.
	IsMatch []string
	// Result is what a match answers: "allow", "deny" or "ignore".
	Result string
}

// Validate reports the first problem that can be found without compiling the expressions:
// no checks, a check without expressions, an empty or too long expression, an unknown
// result. New also compiles every expression and reports errors there.
func (c *Config) Validate() error {
	if len(c.Checks) == 0 {
		return errors.New("cinfo: checks: at least one check is required")
	}
	for i, ch := range c.Checks {
		if _, err := parseResult(ch.Result); err != nil {
			return fmt.Errorf("cinfo: checks[%d].result: %w", i, err)
		}
		if len(ch.IsMatch) == 0 {
			return fmt.Errorf("cinfo: checks[%d].is_match: at least one expression is required", i)
		}
		for j, e := range ch.IsMatch {
			if strings.TrimSpace(e) == "" {
				return fmt.Errorf("cinfo: checks[%d].is_match[%d]: expression is empty", i, j)
			}
			if len(e) > MaxExpressionLen {
				return fmt.Errorf("cinfo: checks[%d].is_match[%d]: expression is %d bytes, longer than the limit of %d",
					i, j, len(e), MaxExpressionLen)
			}
		}
	}
	return nil
}

func parseResult(s string) (authn.Outcome, error) {
	switch s {
	case ResultAllow:
		return authn.Allow, nil
	case ResultDeny:
		return authn.Deny, nil
	case ResultIgnore:
		return authn.Ignore, nil
	}
	return authn.Ignore, fmt.Errorf("%q is not one of allow, deny, ignore", s)
}

// Env is what an expression sees. Field names are the expr tags. The password itself is
// never part of it, only whether CONNECT carried one.
//
// Without a verified certificate cert_present is false and every cert_* field is empty, so
// a rule comparing a client field with a certificate field should also require
// cert_present and a non-empty field: `cert_present && cert_cn != "" && clientid == cert_cn`;
// otherwise an empty client id equals an absent CN.
type Env struct {
	ClientID        string            `expr:"clientid"`
	Username        string            `expr:"username"`
	PasswordPresent bool              `expr:"password_present"`
	PeerHost        string            `expr:"peerhost"`
	PeerPort        int               `expr:"peerport"`
	Listener        string            `expr:"listener"`
	Protocol        string            `expr:"protocol"`
	ProtoVer        int               `expr:"proto_ver"`
	CertPresent     bool              `expr:"cert_present"`
	CertCN          string            `expr:"cert_cn"`
	CertDN          string            `expr:"cert_dn"`
	CertSANDNS      []string          `expr:"cert_san_dns"`
	CertSANURI      []string          `expr:"cert_san_uri"`
	CertSHA256      string            `expr:"cert_sha256"`
	CertIssuer      string            `expr:"cert_issuer"`
	ClientAttrs     map[string]string `expr:"client_attrs"`
}

// NewEnv builds the environment for one client. Lists and maps are never nil, so len() and
// lookups work whether or not the client has a certificate or attributes.
func NewEnv(info *clientinfo.Info, cred *authn.Credentials) Env {
	e := Env{
		ClientID:    info.ClientID,
		PeerHost:    info.PeerHost(),
		Listener:    info.Listener,
		Protocol:    "mqtt",
		ProtoVer:    int(info.ProtocolVersion),
		CertSANDNS:  []string{},
		CertSANURI:  []string{},
		ClientAttrs: map[string]string{},
	}
	if cred != nil {
		e.Username = cred.Username
		e.PasswordPresent = cred.HasPassword()
	} else {
		e.Username = info.Username
	}
	if info.Peer.IsValid() {
		e.PeerPort = int(info.Peer.Port())
	}
	if c := info.Cert; c != nil {
		e.CertPresent = true
		e.CertCN = c.CN
		e.CertDN = c.DN
		e.CertSHA256 = c.SHA256
		e.CertIssuer = c.Issuer
		if c.DNSNames != nil {
			e.CertSANDNS = c.DNSNames
		}
		if c.URIs != nil {
			e.CertSANURI = c.URIs
		}
	}
	if info.Attrs != nil {
		e.ClientAttrs = info.Attrs
	}
	return e
}

// Authenticator is a compiled cinfo configuration. It is safe for concurrent use.
type Authenticator struct {
	checks []compiledCheck
	log    *slog.Logger
}

type compiledCheck struct {
	exprs   []*vm.Program
	outcome authn.Outcome
}

// New validates cfg and compiles every expression. An error names the check, the expression
// and its text. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{log: logger, checks: make([]compiledCheck, 0, len(cfg.Checks))}
	for i, ch := range cfg.Checks {
		outcome, _ := parseResult(ch.Result) // validated above
		cc := compiledCheck{outcome: outcome}
		for j, text := range ch.IsMatch {
			prog, err := compile(text)
			if err != nil {
				return nil, fmt.Errorf("cinfo: checks[%d].is_match[%d] %s: %w", i, j, quoteExpr(clip(text, 200)), err)
			}
			cc.exprs = append(cc.exprs, prog)
		}
		a.checks = append(a.checks, cc)
	}
	return a, nil
}

// compile checks the expression against the policy above and compiles it with its own
// regex_match function, whose patterns are the literals found in the expression.
func compile(text string) (*vm.Program, error) {
	if len(text) > MaxExpressionLen {
		return nil, fmt.Errorf("expression longer than %d bytes", MaxExpressionLen)
	}
	tree, err := parser.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	pol := &policy{patterns: map[string]*regexp.Regexp{}}
	ast.Walk(&tree.Node, pol)
	if pol.err != nil {
		return nil, pol.err
	}
	patterns := pol.patterns // read-only from here on: safe for concurrent evaluations
	regexMatch := func(params ...any) (any, error) {
		s, _ := params[0].(string)
		p, _ := params[1].(string)
		re, ok := patterns[p]
		if !ok {
			return nil, errors.New("regex_match: pattern was not compiled at load")
		}
		return re.MatchString(s), nil
	}
	prog, err := expr.Compile(text,
		expr.Env(Env{}),
		expr.AsBool(),
		expr.DisableBuiltin("repeat"),
		expr.Function("regex_match", regexMatch, new(func(string, string) bool)),
	)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	return prog, nil
}

// policy walks a parsed expression, collects regex_match patterns and records the first
// construct the package does not allow.
type policy struct {
	patterns map[string]*regexp.Regexp
	err      error
}

func (p *policy) fail(n ast.Node, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("at position %d: %s", n.Location().From, fmt.Sprintf(format, args...))
	}
}

func (p *policy) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "..":
			p.fail(n, "the range operator .. is not allowed")
		case "matches":
			p.literalPattern(n.Right, "the right side of matches")
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "regex_match" {
			if len(n.Arguments) != 2 {
				p.fail(n, "regex_match takes 2 arguments, got %d", len(n.Arguments))
				return
			}
			p.literalPattern(n.Arguments[1], "the pattern of regex_match")
		}
	case *ast.PredicateNode:
		var inner nestedPredicate
		ast.Walk(&n.Node, &inner)
		if inner.found != nil {
			p.fail(inner.found, "a collection function inside another one's predicate is not allowed")
		}
	}
}

func (p *policy) literalPattern(pat ast.Node, what string) {
	s, ok := pat.(*ast.StringNode)
	if !ok {
		p.fail(pat, "%s must be a string literal", what)
		return
	}
	if _, done := p.patterns[s.Value]; done {
		return
	}
	re, err := regexp.Compile(s.Value)
	if err != nil {
		p.fail(pat, "invalid regular expression %q: %v", clip(s.Value, 100), err)
		return
	}
	p.patterns[s.Value] = re
}

type nestedPredicate struct{ found ast.Node }

func (v *nestedPredicate) Visit(node *ast.Node) {
	if _, ok := (*node).(*ast.PredicateNode); ok && v.found == nil {
		v.found = *node
	}
}

// Name implements authn.Authenticator.
func (a *Authenticator) Name() string { return Mechanism }

// Authenticate implements authn.Authenticator. A check that matches answers its result; no
// match answers Ignore; an expression that fails to evaluate, or a done ctx, answers Deny
// with NotAuthorized (0x87).
func (a *Authenticator) Authenticate(ctx context.Context, info *clientinfo.Info, cred *authn.Credentials) authn.Result {
	if err := ctx.Err(); err != nil {
		return authn.Denied(packet.NotAuthorized, "cinfo: "+err.Error())
	}
	env := NewEnv(info, cred)
	for i, ch := range a.checks {
		matched, err := ch.match(env)
		if err != nil {
			a.log.WarnContext(ctx, "cinfo check failed to evaluate; denying",
				slog.Int("check", i), slog.String("error", clip(err.Error(), 300)))
			return authn.Denied(packet.NotAuthorized,
				fmt.Sprintf("cinfo: checks[%d] failed to evaluate: %s", i, clip(err.Error(), 200)))
		}
		if !matched {
			continue
		}
		switch ch.outcome {
		case authn.Allow:
			r := authn.Allowed()
			r.Detail = fmt.Sprintf("cinfo: checks[%d] allowed", i)
			return r
		case authn.Deny:
			return authn.Denied(packet.NotAuthorized, fmt.Sprintf("cinfo: checks[%d] denied", i))
		default:
			return authn.Ignored(fmt.Sprintf("cinfo: checks[%d] ignored", i))
		}
	}
	return authn.Ignored("cinfo: no check matched")
}

func (c *compiledCheck) match(env Env) (bool, error) {
	for j, prog := range c.exprs {
		out, err := expr.Run(prog, env)
		if err != nil {
			return false, fmt.Errorf("is_match[%d]: %w", j, err)
		}
		if b, _ := out.(bool); !b {
			return false, nil
		}
	}
	return true, nil
}

// quoteExpr shows an expression as written, between backquotes, unless it holds a backquote
// or a control character, which are escaped instead.
func quoteExpr(s string) string {
	if strconv.CanBackquote(s) {
		return "`" + s + "`"
	}
	return strconv.Quote(s)
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

var _ authn.Authenticator = (*Authenticator)(nil)
