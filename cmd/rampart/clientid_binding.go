package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/rampart-mqtt/rampart/internal/authz/file"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// clientIDPlaceholder is ${clientid} as it is written in templates.
var clientIDPlaceholder = "${" + placeholder.ClientID + "}"

// clientIDWarning is what the broker says when authorization trusts a client id that
// nothing ties to the account: the rules keyed by ${clientid} then belong to whoever
// presents the id.
const clientIDWarning = "authorization rules are keyed by ${clientid}, but no authenticator binds the client id to the account: " +
	"any account can take a device's client id, kick it, read its commands and get it banned for flapping; " +
	"bind it with user_id_type: clientid, peer_cert_as_clientid, a JWT verify_claims on ${clientid}, " +
	"an authentication query or template using ${clientid}, a cinfo check on clientid, or x509 require_clientid_match"

// unboundClientID names the authorization settings that grant by ${clientid} when no
// authenticator or listener binds the client id to what authentication proved; it returns
// nil when none do or the client id is bound. files are the loaded file sources (their
// rules are only known once read). Both serve and --check-config call it.
func unboundClientID(cfg *config.Config, files []*file.Source) []string {
	var uses []string
	fileIdx := 0
	for i, s := range cfg.Authorization.Sources {
		if !s.Enable {
			continue
		}
		name := fmt.Sprintf("authorization.sources[%d] (%s)", i, s.Type)
		switch s.Type {
		case config.SourceFile:
			if fileIdx < len(files) && files[fileIdx].UsesPlaceholder(placeholder.ClientID) {
				uses = append(uses, name)
			}
			fileIdx++
		default:
			if anyHasClientID(s.Cmd, s.Query, s.Filter, s.URL) || mapHasClientID(s.Body) || mapHasClientID(s.Headers) {
				uses = append(uses, name)
			}
		}
	}
	if len(uses) == 0 || clientIDBound(cfg) {
		return nil
	}
	return uses
}

// clientIDBound reports whether some authenticator or listener ties the client id to
// what the client proved.
func clientIDBound(cfg *config.Config) bool {
	chains := [][]config.Authenticator{cfg.Authentication}
	for _, l := range cfg.Listeners.TCP {
		chains = append(chains, l.Authentication)
	}
	for _, l := range cfg.Listeners.WS {
		chains = append(chains, l.Authentication)
	}
	for _, l := range cfg.Listeners.SSL {
		if l.PeerCertAsClientID != "" {
			return true
		}
		chains = append(chains, l.Authentication)
	}
	for _, l := range cfg.Listeners.WSS {
		if l.PeerCertAsClientID != "" {
			return true
		}
		chains = append(chains, l.Authentication)
	}
	for _, chain := range chains {
		if slices.ContainsFunc(chain, bindsClientID) {
			return true
		}
	}
	return false
}

// bindsClientID reports whether one authenticator checks the client id: it looks the
// credentials up by it, requires a token or certificate to name it, or checks it in a
// cinfo rule.
func bindsClientID(a config.Authenticator) bool {
	if !a.Enable {
		return false
	}
	switch {
	case a.Mechanism == "password_based" && a.Backend == "built_in_database":
		return a.UserIDType == "clientid"
	case a.Mechanism == "scram":
		return false
	case a.Mechanism == "jwt":
		return mapHasClientID(a.VerifyClaims)
	case a.Mechanism == "x509":
		return a.RequireClientIDMatch != "" && a.RequireClientIDMatch != "none"
	case a.Mechanism == "cinfo":
		for _, c := range a.Checks {
			for _, e := range c.IsMatch {
				if strings.Contains(e, placeholder.ClientID) {
					return true
				}
			}
		}
		return false
	}
	return anyHasClientID(a.URL, a.Cmd, a.Query, a.Filter, a.BindDN) || mapHasClientID(a.Body) || mapHasClientID(a.Headers)
}

func anyHasClientID(ss ...string) bool {
	return slices.ContainsFunc(ss, func(s string) bool { return strings.Contains(s, clientIDPlaceholder) })
}

func mapHasClientID(m map[string]string) bool {
	for _, v := range m {
		if strings.Contains(v, clientIDPlaceholder) {
			return true
		}
	}
	return false
}

// warnUnboundClientID logs clientIDWarning when unboundClientID finds rules.
func warnUnboundClientID(log *slog.Logger, cfg *config.Config, files []*file.Source) {
	if uses := unboundClientID(cfg, files); len(uses) > 0 {
		log.Warn(clientIDWarning, "sources", uses)
	}
}
