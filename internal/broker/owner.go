package broker

import (
	"net/netip"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// owner is who a session belongs to: the principal authentication vouched for, and the
// identity authentication left the client with, so that the session's subscriptions can
// be authorized while it has no connection (after a restart, when rules change). It is
// stored with the session.
type owner struct {
	// Principal decides who may resume the session: only a client authenticated as the
	// same principal. Empty never matches (a session stored before principals existed).
	Principal string            `json:"principal,omitempty"`
	Username  string            `json:"username,omitempty"`
	Peer      string            `json:"peer,omitempty"`
	Listener  string            `json:"listener,omitempty"`
	Protocol  byte              `json:"protocol,omitempty"`
	Cert      *clientinfo.Cert  `json:"cert,omitempty"`
	Attrs     map[string]string `json:"attrs,omitempty"`
	Superuser bool              `json:"superuser,omitempty"`
	// ACL are the rules authentication returned (a JWT claim, an HTTP answer).
	ACL []authz.Rule `json:"acl,omitempty"`
	// ExpiresAt (unix ms) is when the credentials stop being valid: from then on the
	// superuser flag and ACL no longer count for the offline session. 0 = never.
	ExpiresAt int64 `json:"expires_at,omitempty"`
}

// principalOf is the principal an authentication result vouched for. A client let in
// without authentication (a listener with enable_authn false, or no authenticator on a
// loopback-only broker) is anonymous: its user name is all there is, and its sessions
// are never resumed by an authenticated principal, nor the other way round.
func principalOf(res *authn.Result, username string) string {
	if res.Principal != "" {
		return res.Principal
	}
	return "anonymous:" + username
}

// ownedBy reports whether principal may resume the session.
func (s *session) ownedBy(principal string) bool {
	o := s.owner.Load()
	return o.Principal != "" && o.Principal == principal
}

// ownerOf records the owner of c's session from what authentication granted c.
func ownerOf(c *conn) *owner {
	o := &owner{
		Principal: c.auth.principal,
		Username:  c.info.Username,
		Peer:      c.info.PeerHost(),
		Listener:  c.info.Listener,
		Protocol:  c.info.ProtocolVersion,
		Cert:      c.info.Cert,
		Attrs:     c.info.Attrs,
		Superuser: c.info.Superuser,
		ACL:       c.auth.acl,
	}
	if !c.auth.expiresAt.IsZero() {
		o.ExpiresAt = c.auth.expiresAt.UnixMilli()
	}
	return o
}

// authorizer builds the authorizer of an offline session from its stored identity.
// Grants of authentication that have expired (superuser, returned rules) are left out.
func (o *owner) authorizer(a Authorizer, clientID string, now time.Time) ClientAuthorizer {
	info := &clientinfo.Info{
		ClientID:        clientID,
		Username:        o.Username,
		Listener:        o.Listener,
		ProtocolVersion: o.Protocol,
		Cert:            o.Cert,
		Attrs:           o.Attrs,
	}
	if addr, err := netip.ParseAddr(o.Peer); err == nil {
		info.Peer = netip.AddrPortFrom(addr, 0)
	}
	acl := o.ACL
	if o.ExpiresAt == 0 || now.Before(time.UnixMilli(o.ExpiresAt)) {
		info.Superuser = o.Superuser
	} else {
		acl = nil
	}
	return a.ForClient(info, acl)
}
