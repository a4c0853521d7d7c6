package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Options describe one run. The zero value is not valid; start from Defaults.
type Options struct {
	// Addr is the broker: host:port for MQTT over TCP (TLS when TLS is set), or a
	// ws:// or wss:// URL of its WebSocket listener (wss uses TLS, or a default
	// configuration that verifies with the system's roots).
	Addr     string
	Version  packet.Version // packet.V311 or packet.V5
	Clients  int            // number of clients
	StartAt  int            // index of the first client (for %i)
	ConnRate float64        // new connections per second over all clients; 0 = as fast as possible
	Duration time.Duration  // how long the run lasts after the last client connected
	// ConnectTimeout bounds one TCP + TLS + MQTT handshake.
	ConnectTimeout time.Duration

	ClientID string // client id template; %i is replaced by the client index
	Username string // user name template (%i); empty = none
	Password string // password template (%i); empty = none
	// JWTSecret, when set, makes each client's password an HS256 JWT with sub = its user
	// name (or client id) and exp = now + JWTTTL.
	JWTSecret string
	JWTTTL    time.Duration

	KeepAlive     uint16 // seconds
	CleanStart    bool
	SessionExpiry uint32 // MQTT 5 session expiry interval, seconds

	Topic    string  // topic (pub) or filter (sub) template; %i is replaced by the client index
	QoS      byte    // 0, 1 or 2
	Size     int     // payload bytes, at least 24 (send time, sequence number, publisher)
	Rate     float64 // messages per second per publisher; 0 = as fast as the window allows
	Count    int64   // messages per publisher; 0 = until Duration ends
	Inflight int     // unacknowledged QoS 1/2 messages per publisher
	Retain   bool

	// SourceAddrs spreads clients over these local addresses (round robin), to use more
	// than one address's range of ephemeral ports. Empty = the system's choice.
	SourceAddrs []netip.Addr
	TLS         *tls.Config // nil = plain TCP

	Progress time.Duration // interval of the live progress line; 0 = none
	// Ready, when set, is called once every client has connected (and subscribed), before
	// the timed part of the run starts.
	Ready func(connected int)
}

// Defaults returns options for one MQTT 5 client on 127.0.0.1:1883 for 10 s.
func Defaults() Options {
	return Options{
		Addr:           "127.0.0.1:1883",
		Version:        packet.V5,
		Clients:        1,
		Duration:       10 * time.Second,
		ConnectTimeout: 10 * time.Second,
		ClientID:       "bench-%i",
		JWTTTL:         time.Hour,
		KeepAlive:      60,
		CleanStart:     true,
		Topic:          "bench/%i",
		Size:           64,
		Inflight:       64,
		Progress:       time.Second,
	}
}

// Validate reports the first problem with o.
func (o *Options) Validate() error {
	switch {
	case o.Addr == "":
		return errors.New("broker address is empty")
	case o.Version != packet.V311 && o.Version != packet.V5:
		return fmt.Errorf("protocol version %d: use 4 (3.1.1) or 5", o.Version)
	case o.Clients < 1 || o.Clients > 1_000_000:
		return fmt.Errorf("clients %d: must be between 1 and 1000000", o.Clients)
	case o.StartAt < 0:
		return fmt.Errorf("start index %d is negative", o.StartAt)
	case o.ConnRate < 0 || o.Rate < 0:
		return errors.New("rates must not be negative")
	case o.Duration <= 0 || o.Duration > 24*time.Hour:
		return fmt.Errorf("duration %v: must be between 0 and 24h", o.Duration)
	case o.ConnectTimeout <= 0:
		return errors.New("connect timeout must be positive")
	case o.QoS > 2:
		return fmt.Errorf("QoS %d: must be 0, 1 or 2", o.QoS)
	case o.Size < minPayload || o.Size > 256<<20:
		return fmt.Errorf("payload size %d: must be between %d and 256MB", o.Size, minPayload)
	case o.Count < 0:
		return errors.New("count must not be negative")
	case o.Inflight < 1 || o.Inflight > 65535:
		return fmt.Errorf("inflight %d: must be between 1 and 65535", o.Inflight)
	case o.Topic == "":
		return errors.New("topic is empty")
	case o.ClientID == "":
		return errors.New("client id template is empty")
	}
	if isWSAddr(o.Addr) {
		if _, err := wsURL(o.Addr); err != nil {
			return err
		}
		if strings.HasPrefix(o.Addr, "ws://") && o.TLS != nil {
			return fmt.Errorf("broker address %q is plain WebSocket but TLS is set: use wss://", o.Addr)
		}
	}
	return nil
}

// isWSAddr reports whether addr is a WebSocket URL rather than host:port.
func isWSAddr(addr string) bool {
	return strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://")
}

// wsURL parses a ws:// or wss:// broker address.
func wsURL(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("broker address %q: want ws://host:port/path or wss://host:port/path", addr)
	}
	if u.Path == "" {
		u.Path = "/mqtt"
	}
	return u, nil
}

// AddrHost returns the host of a broker address (host:port or a WebSocket URL), the
// default TLS server name.
func AddrHost(addr string) string {
	if isWSAddr(addr) {
		if u, err := url.Parse(addr); err == nil {
			return u.Hostname()
		}
		return ""
	}
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// expand replaces %i in a template by the client index.
func expand(tmpl string, i int) string {
	if !strings.Contains(tmpl, "%i") {
		return tmpl
	}
	return strings.ReplaceAll(tmpl, "%i", strconv.Itoa(i))
}

// ParseSourceAddrs parses "127.0.0.1-127.0.0.16" or a comma-separated list.
func ParseSourceAddrs(s string) ([]netip.Addr, error) {
	if s == "" {
		return nil, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok && !strings.Contains(s, ",") {
		a, err := netip.ParseAddr(from)
		if err != nil {
			return nil, fmt.Errorf("source address range %q: %w", s, err)
		}
		b, err := netip.ParseAddr(to)
		if err != nil {
			return nil, fmt.Errorf("source address range %q: %w", s, err)
		}
		if b.Less(a) || a.Is4() != b.Is4() {
			return nil, fmt.Errorf("source address range %q: end before start", s)
		}
		var out []netip.Addr
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if x == b || len(out) > 65536 {
				break
			}
		}
		return out, nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("source address %q: %w", f, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// TLSFiles builds a client TLS configuration: ca verifies the broker (empty = the system
// roots), cert and key are the client certificate for mutual TLS (both or neither).
func TLSFiles(ca, cert, key, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("a client certificate needs both --cert and --key")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
