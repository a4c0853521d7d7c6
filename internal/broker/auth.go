package broker

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// maxAuthSteps bounds the AUTH packets of one enhanced authentication exchange, so a client
// cannot keep a conversation (and its server state) alive forever.
const maxAuthSteps = 8

// authState is what authentication granted a connection, beyond clientinfo.
type authState struct {
	method string       // MQTT 5 Authentication Method of CONNECT; "" without enhanced auth
	acl    []authz.Rule // rules the authenticator returned, checked before any source
	expiry *time.Timer  // disconnects the client when its credentials expire
	// principal is who authentication vouched for (see principalOf): the owner of the
	// client's session. A re-authentication must vouch for the same one.
	principal string
	expiresAt time.Time // when the credentials expire; zero = never
	reauth    authn.Conversation
	steps     int
}

// authenticate runs the authentication of a CONNECT: the enhanced exchange when the client
// named an Authentication Method (MQTT 5), the credential chain otherwise. On Allow it
// fills the CONNACK's authentication properties and reports true; otherwise it has refused
// the client.
func (c *conn) authenticate(ctx context.Context, cp *packet.Connect, ack *packet.Connack) bool {
	g := c.srv.o.Guard
	if g != nil {
		if why, refuse := g.Check(ctx, &c.info); refuse {
			clear(cp.Password)
			return c.refuse(packet.Banned, why)
		}
		c.guarded = true // finish tells the guard how the connection ended
	}
	if !c.authenticateChain(ctx, cp, ack) {
		return false
	}
	if g != nil && g.Connected(ctx, &c.info) {
		c.guarded = false // the guard's own refusal is not an end to tell it of
		return c.refuse(packet.Banned, "banned for flapping")
	}
	return true
}

// authenticateChain runs the authentication chain or the enhanced exchange.
func (c *conn) authenticateChain(ctx context.Context, cp *packet.Connect, ack *packet.Connack) bool {
	var res authn.Result
	if c.version == packet.V5 && cp.Properties.Has(packet.PropAuthMethod) {
		method := cp.Properties.AuthMethod
		enh := c.srv.authn.Enhanced(c.meta.Listener, method)
		if enh == nil {
			return c.refuse(packet.BadAuthenticationMethod, "authentication method not configured on this listener") // [MQTT-4.12.0-1]
		}
		conv, err := enh.Begin(ctx, &c.info)
		if err != nil {
			return c.refuse(packet.BadAuthenticationMethod, "authentication method: "+err.Error())
		}
		var out []byte
		var ok bool
		out, res, ok = c.exchange(ctx, conv, method, cp.Properties.AuthData)
		if !ok {
			return false
		}
		if res.Outcome == authn.Allow {
			c.auth.method = method
			ack.Properties.AuthMethod = method
			ack.Properties.Set(packet.PropAuthMethod)
			if len(out) > 0 {
				ack.Properties.AuthData = out
				ack.Properties.Set(packet.PropAuthData)
			}
		}
	} else {
		cred := authn.Credentials{Username: cp.Username}
		if cp.HasPassword {
			cred.Password = cp.Password
			if cred.Password == nil {
				cred.Password = []byte{}
			}
		}
		res = c.srv.authn.Authenticate(ctx, &c.info, &cred)
		clear(cp.Password) // the password is not needed again; do not keep it in memory
	}
	switch res.Outcome {
	case authn.Allow:
	case authn.Deny:
		return c.refuse(res.DenyReason(), "authentication: "+res.Detail)
	default:
		return c.refuse(packet.NotAuthorized, "no authenticator accepted the client")
	}
	c.auth.principal = principalOf(&res, c.info.Username)
	c.grantAuth(res)
	return true
}

// exchange runs an enhanced authentication conversation during CONNECT: the server's
// challenges go out in AUTH 0x18 packets and the client's answers come back in AUTH 0x18,
// within the CONNECT deadline. It reports false when it has refused the client itself.
func (c *conn) exchange(ctx context.Context, conv authn.Conversation, method string, in []byte) ([]byte, authn.Result, bool) {
	deadline := time.Now().Add(c.srv.o.IdleTimeout)
	for step := 0; ; step++ {
		out, done, res := conv.Step(ctx, in)
		if done {
			return out, res, true
		}
		if step >= maxAuthSteps {
			return nil, res, c.refuse(packet.NotAuthorized, "too many authentication steps")
		}
		a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
		a.Properties.AuthMethod = method
		a.Properties.Set(packet.PropAuthMethod)
		if len(out) > 0 {
			a.Properties.AuthData = out
			a.Properties.Set(packet.PropAuthData)
		}
		c.send(a)
		c.setReadDeadline(deadline)
		p, err := c.rd.ReadPacket(c.version)
		if err != nil {
			var pe *packet.Error
			if errors.As(err, &pe) {
				return nil, res, c.refuse(pe.Code, pe.Error())
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.srv.limitHit(reasonConnectTimeout, c)
			} else {
				c.srv.log.Debug("connection lost during authentication", "peer", c.meta.Peer, "err", err)
			}
			c.closeSocket()
			return nil, res, false
		}
		ap, isAuth := p.(*packet.Auth)
		switch {
		case !isAuth:
			return nil, res, c.refuse(packet.ProtocolError, p.Type().String()+" during authentication")
		case ap.ReasonCode != packet.ContinueAuthentication:
			return nil, res, c.refuse(packet.ProtocolError, "AUTH reason must be 0x18 during CONNECT")
		case ap.Properties.AuthMethod != method:
			return nil, res, c.refuse(packet.ProtocolError, "authentication method changed") // [MQTT-4.12.0-5]
		}
		in = ap.Properties.AuthData
	}
}

// grantAuth records what an Allow gives the client: superuser, attributes, rules and, when the
// credentials expire, a timer that disconnects the client then (MQTT 5: 0x87).
func (c *conn) grantAuth(res authn.Result) {
	c.info.Superuser = res.Superuser
	c.info.Attrs = res.Attrs
	c.auth.acl = res.ACL
	c.auth.expiresAt = res.ExpiresAt
	if c.auth.expiry != nil {
		c.auth.expiry.Stop()
		c.auth.expiry = nil
	}
	if !res.ExpiresAt.IsZero() {
		c.auth.expiry = time.AfterFunc(time.Until(res.ExpiresAt), func() {
			c.srv.log.Info("credentials expired: disconnecting", "client", c.info.ClientID, "listener", c.meta.Listener)
			c.kick(packet.NotAuthorized)
		})
	}
}

// handleAuth processes an AUTH packet after CONNECT: the start (0x19) or a continuation
// (0x18) of a re-authentication [MQTT-4.12.1]. A code other than Success ends the
// connection with that reason.
func (c *conn) handleAuth(ctx context.Context, p *packet.Auth) (packet.ReasonCode, string) {
	if c.auth.method == "" {
		return packet.ProtocolError, "AUTH without enhanced authentication"
	}
	if p.Properties.AuthMethod != c.auth.method {
		return packet.ProtocolError, "re-authentication must use the CONNECT's method" // [MQTT-4.12.1-1]
	}
	switch p.ReasonCode {
	case packet.ReAuthenticate:
		if c.auth.reauth != nil {
			return packet.ProtocolError, "re-authentication already in progress"
		}
		enh := c.srv.authn.Enhanced(c.meta.Listener, c.auth.method)
		if enh == nil {
			return packet.NotAuthorized, "authentication method no longer configured"
		}
		conv, err := enh.Begin(ctx, &c.info)
		if err != nil {
			return packet.NotAuthorized, "re-authentication: " + err.Error()
		}
		c.auth.reauth, c.auth.steps = conv, 0
	case packet.ContinueAuthentication:
		if c.auth.reauth == nil {
			return packet.ProtocolError, "AUTH 0x18 without a re-authentication in progress"
		}
	default:
		return packet.ProtocolError, "AUTH with reason " + p.ReasonCode.String() + " from a client"
	}
	out, done, res := c.auth.reauth.Step(ctx, p.Properties.AuthData)
	c.auth.steps++
	a := &packet.Auth{}
	a.Properties.AuthMethod = c.auth.method
	a.Properties.Set(packet.PropAuthMethod)
	if len(out) > 0 {
		a.Properties.AuthData = out
		a.Properties.Set(packet.PropAuthData)
	}
	if !done {
		if c.auth.steps > maxAuthSteps {
			c.auth.reauth = nil
			return packet.NotAuthorized, "too many re-authentication steps"
		}
		a.ReasonCode = packet.ContinueAuthentication
		c.send(a)
		return packet.Success, ""
	}
	c.auth.reauth = nil
	if res.Outcome != authn.Allow {
		// The client keeps nothing of the failed attempt: it is disconnected [MQTT-4.12.1-2].
		reason := packet.NotAuthorized
		if res.Outcome == authn.Deny {
			reason = res.DenyReason()
		}
		if !reason.ValidFor(packet.DISCONNECT) {
			reason = packet.NotAuthorized
		}
		return reason, "re-authentication failed: " + res.Detail
	}
	if principalOf(&res, c.info.Username) != c.auth.principal {
		// Credentials of someone else: the session, and what it holds, is not theirs.
		return packet.NotAuthorized, "re-authentication as another principal"
	}
	c.grantAuth(res)
	if sess := c.sess; sess != nil {
		// What the session may do offline follows the new grants.
		sess.owner.Store(ownerOf(c))
		if err := c.srv.saveSession(sess, time.Time{}); err != nil {
			c.srv.log.Error("session not stored after re-authentication", "client", sess.id, "err", err)
		}
	}
	a.ReasonCode = packet.Success
	c.send(a)
	return packet.Success, ""
}

// stopAuth releases what authentication holds when the connection ends.
func (c *conn) stopAuth() {
	if c.auth.expiry != nil {
		c.auth.expiry.Stop()
	}
}
