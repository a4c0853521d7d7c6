// Package clientinfo describes who a connected client is: its identifiers, where it connects
// from, through which listener, and what its transport proved about it. Info is the single
// source for placeholders in authentication and authorization rules.
package clientinfo

import (
	"net/http"
	"net/netip"
)

// Info is filled in as a connection progresses: transport facts at accept, MQTT identity at
// CONNECT, attributes after authentication. It is owned by the connection; readers elsewhere
// get a copy or read it only after CONNECT has been processed.
type Info struct {
	ClientID string
	Username string
	// Peer is the client's address: the socket's peer, or the address a trusted PROXY
	// header gave.
	Peer netip.AddrPort
	// Listener names the listener as "type:name", e.g. "tcp:default".
	Listener string
	// ProtocolVersion is 3, 4 or 5 once CONNECT has been read.
	ProtocolVersion byte
	// WebSocket holds the headers of the upgrade request on ws and wss listeners.
	WebSocket http.Header
	// Cert is what the client's certificate says, when the TLS handshake verified one
	// against the listener's CA, or when a trusted TLS-terminating proxy says in its PROXY
	// v2 header that it verified one (then only CN is known); nil otherwise (an unverified
	// certificate never counts).
	Cert *Cert
	// Attrs are client attributes set by authentication (client_attrs).
	Attrs map[string]string
	// Superuser is set by an authenticator; it bypasses authorization.
	Superuser bool
}

// PeerHost returns the peer's IP address as text, or "" when unknown.
func (i *Info) PeerHost() string {
	if !i.Peer.IsValid() {
		return ""
	}
	return i.Peer.Addr().Unmap().String()
}

// Cert is the identity a verified client certificate carries.
type Cert struct {
	CN       string   // subject common name
	DN       string   // subject distinguished name (RFC 4514)
	DNSNames []string // DNS subject alternative names
	URIs     []string // URI subject alternative names
	SHA256   string   // hex SHA-256 fingerprint of the certificate (DER)
	Issuer   string   // issuer distinguished name (RFC 4514)
	Serial   string   // serial number, decimal
	// ViaProxy is set when the certificate was verified by a trusted TLS-terminating load
	// balancer that passed only its CN in a PROXY v2 header; the other fields are empty.
	ViaProxy bool
}

// Field returns the certificate field named by a peer_cert_as_* setting: "cn", "dn",
// "san_dns" or "san_uri" (the first of each), or "crt_sha256". It returns "" when there
// is no verified certificate or it lacks the field.
func (c *Cert) Field(name string) string {
	if c == nil {
		return ""
	}
	switch name {
	case "cn":
		return c.CN
	case "dn":
		return c.DN
	case "san_dns":
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0]
		}
	case "san_uri":
		if len(c.URIs) > 0 {
			return c.URIs[0]
		}
	case "crt_sha256":
		return c.SHA256
	}
	return ""
}
