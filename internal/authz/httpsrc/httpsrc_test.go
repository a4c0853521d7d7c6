package httpsrc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/httpc/httpctest"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func info() *clientinfo.Info {
	return &clientinfo.Info{ClientID: "dev-1", Username: "alice", Peer: netip.MustParseAddrPort("127.0.0.1:40000")}
}

var (
	publish   = authz.Action{Kind: authz.ActPublish, QoS: 1, Retain: true}
	subscribe = authz.Action{Kind: authz.ActSubscribe, QoS: 2}
)

func ask(s *Source, a authz.Action, topic string) authz.Decision {
	return s.ForClient(info()).Authorize(context.Background(), a, topic)
}

func postConfig(srv *httptest.Server) Config {
	return Config{
		URL: srv.URL + "/authz",
		Body: map[string]string{
			"clientid": "${clientid}", "username": "${username}", "peerhost": "${peerhost}",
			"action": "${action}", "topic": "${topic}", "qos": "${qos}", "retain": "${retain}",
		},
	}
}

func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   authz.Decision
	}{
		{"allow", 200, `{"result":"allow"}`, authz.Allow},
		{"deny", 200, `{"result":"deny"}`, authz.Deny},
		{"ignore", 200, `{"result":"ignore"}`, authz.NoMatch},
		{"upper case", 200, `{"result":"ALLOW"}`, authz.Allow},
		{"extra fields", 200, `{"result":"allow","why":"ok"}`, authz.Allow},
		{"204", 204, ``, authz.NoMatch},
		{"201 allow", 201, `{"result":"allow"}`, authz.Allow},
		// Every failure denies.
		{"500", 500, `{"result":"allow"}`, authz.Deny},
		{"403", 403, `{"result":"allow"}`, authz.Deny},
		{"404", 404, ``, authz.Deny},
		{"not JSON", 200, `allow`, authz.Deny},
		{"empty body", 200, ``, authz.Deny},
		{"no result", 200, `{"allow":true}`, authz.Deny},
		{"unknown result", 200, `{"result":"maybe"}`, authz.Deny},
		{"result not a string", 200, `{"result":true}`, authz.Deny},
		{"trailing data", 200, `{"result":"allow"} {"result":"deny"}`, authz.Deny},
		{"array", 200, `[{"result":"allow"}]`, authz.Deny},
		{"too long", 200, `{"result":"allow","pad":"` + strings.Repeat("x", MaxAnswerSize) + `"}`, authz.Deny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, postConfig(httpctest.Serve(t, httpctest.Reply(tc.status, tc.body))))
			if got := ask(s, publish, "t/1"); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// captured is what the service received.
type captured struct {
	method, path, rawQuery, contentType string
	query                               url.Values
	header                              http.Header
	body                                []byte
}

func capture(t *testing.T, answer string) (*httptest.Server, chan captured) {
	t.Helper()
	got := make(chan captured, 16)
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- captured{method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery, query: r.URL.Query(),
			contentType: r.Header.Get("Content-Type"), header: r.Header.Clone(), body: body}
		httpctest.Reply(200, answer)(w, r)
	})
	return srv, got
}

func TestPostJSON(t *testing.T) {
	srv, got := capture(t, `{"result":"allow"}`)
	s := newSource(t, postConfig(srv))
	if d := ask(s, publish, "t/1"); d != authz.Allow {
		t.Fatalf("publish: %v", d)
	}
	c := <-got
	var body map[string]string
	if err := json.Unmarshal(c.body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"clientid": "dev-1", "username": "alice", "peerhost": "127.0.0.1",
		"action": "publish", "topic": "t/1", "qos": "1", "retain": "true"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%s] = %q, want %q", k, body[k], v)
		}
	}
	if c.method != http.MethodPost || c.path != "/authz" || c.contentType != mimeJSON {
		t.Errorf("request %s %s (%s)", c.method, c.path, c.contentType)
	}

	ask(s, subscribe, "s/#")
	c = <-got
	_ = json.Unmarshal(c.body, &body)
	if body["action"] != "subscribe" || body["topic"] != "s/#" || body["qos"] != "2" || body["retain"] != "false" {
		t.Errorf("subscribe body %v", body)
	}
}

// Values with URL, form and JSON syntax reach the service as data, never as structure:
// no extra parameter, path segment or JSON field appears.
func TestEscaping(t *testing.T) {
	const evilTopic = `a&admin=1#x?y=2/../%2F"},"x":"`
	evil := &clientinfo.Info{ClientID: "c&role=admin=1#?/..", Username: `u"},"result":"allow`}
	fields := map[string]string{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}", "action": "${action}"}
	for _, tc := range []struct {
		name string
		cfg  func(srv *httptest.Server) Config
	}{
		{"get query", func(srv *httptest.Server) Config {
			return Config{Method: "get", URL: srv.URL + "/authz/${clientid}?t=${topic}&fixed=1", Body: fields}
		}},
		{"post form", func(srv *httptest.Server) Config {
			return Config{URL: srv.URL + "/authz/${clientid}?t=${topic}&fixed=1", Body: fields,
				Headers: map[string]string{"content-type": mimeForm}}
		}},
		{"post json", func(srv *httptest.Server) Config {
			return Config{URL: srv.URL + "/authz/${clientid}?t=${topic}&fixed=1", Body: fields}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := capture(t, `{"result":"allow"}`)
			s := newSource(t, tc.cfg(srv))
			if d := s.ForClient(evil).Authorize(context.Background(), publish, evilTopic); d != authz.Allow {
				t.Fatalf("decision %v", d)
			}
			c := <-got
			// The path holds exactly one more segment, the escaped client id.
			wantPath := "/authz/" + url.PathEscape(evil.ClientID)
			if c.path != wantPath {
				t.Errorf("path %q, want %q", c.path, wantPath)
			}
			params := c.query
			if tc.name == "post form" {
				if params2, err := url.ParseQuery(string(c.body)); err == nil {
					for k, v := range params2 {
						params[k] = append(params[k], v...)
					}
				}
			}
			if tc.name == "post json" {
				var body map[string]string
				if err := json.Unmarshal(c.body, &body); err != nil {
					t.Fatal(err)
				}
				if len(body) != len(fields) || body["topic"] != evilTopic || body["clientid"] != evil.ClientID || body["username"] != evil.Username {
					t.Errorf("JSON body %v", body)
				}
			}
			for k := range params {
				switch k {
				case "t", "fixed", "clientid", "username", "topic", "action":
				default:
					t.Errorf("injected parameter %q (query %q)", k, c.rawQuery)
				}
			}
			if params.Get("t") != evilTopic || params.Get("fixed") != "1" || len(params["fixed"]) != 1 {
				t.Errorf("query parameters %v", params)
			}
			if tc.name != "post json" && (params.Get("topic") != evilTopic || params.Get("clientid") != evil.ClientID) {
				t.Errorf("body parameters %v", params)
			}
		})
	}
}

// A client id of "." or ".." in the URL path would move the request elsewhere once the
// path is normalised: the question fails instead.
func TestDotSegmentInPath(t *testing.T) {
	srv, got := capture(t, `{"result":"allow"}`)
	s := newSource(t, Config{URL: srv.URL + "/authz/${clientid}/check"})
	for _, id := range []string{"..", "."} {
		if d := s.ForClient(&clientinfo.Info{ClientID: id}).Authorize(context.Background(), publish, "t"); d != authz.Deny {
			t.Errorf("client id %q: %v, want deny", id, d)
		}
	}
	if d := s.ForClient(&clientinfo.Info{ClientID: "..."}).Authorize(context.Background(), publish, "t"); d != authz.Allow {
		t.Fatalf("client id \"...\": %v", d)
	}
	if c := <-got; c.path != "/authz/.../check" {
		t.Fatalf("path %q", c.path)
	}
	if len(got) != 0 {
		t.Fatal("a dot-segment request was sent")
	}
	if err := (Config{URL: "http://127.0.0.1/a/../b"}).Validate(); err == nil {
		t.Fatal("Validate accepted a dot segment in the configured path")
	}
}

// A header template whose value would hold CR or LF (a topic may) fails the question
// instead of splitting the header.
func TestHeaderInjection(t *testing.T) {
	var hits atomic.Int64
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := postConfig(srv)
	cfg.Headers = map[string]string{"X-Topic": "${topic}"}
	s := newSource(t, cfg)
	if d := ask(s, publish, "a\r\nX-Evil: 1"); d != authz.Deny {
		t.Fatalf("CRLF topic: %v, want deny", d)
	}
	if hits.Load() != 0 {
		t.Fatal("the request was sent")
	}
	if d := ask(s, publish, "fine"); d != authz.Allow {
		t.Fatalf("plain topic: %v", d)
	}
}

func TestFailClosed(t *testing.T) {
	// A listener that accepts and then closes every connection without answering.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	// A port with nothing listening.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/authz"
	_ = dead.Close()

	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	slow := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/authz", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect) })
	mux.HandleFunc("/ok", httpctest.Reply(200, `{"result":"allow"}`))
	redirect := httpctest.Serve(t, mux.ServeHTTP)
	bad := httpctest.Serve(t, httpctest.Reply(200, `{"result":`))

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"connection refused", Config{URL: deadURL}},
		{"connection closed", Config{URL: "http://" + ln.Addr().String() + "/authz"}},
		{"timeout", Config{URL: slow.URL + "/authz", RequestTimeout: 50 * time.Millisecond}},
		{"redirect not followed", Config{URL: redirect.URL + "/authz"}},
		{"truncated JSON", Config{URL: bad.URL + "/authz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := ask(newSource(t, tc.cfg), publish, "t"); d != authz.Deny {
				t.Fatalf("on_error deny: %v, want deny", d)
			}
			cfg := tc.cfg
			cfg.OnError = OnErrorIgnore
			if d := ask(newSource(t, cfg), publish, "t"); d != authz.NoMatch {
				t.Fatalf("on_error ignore: %v, want no match", d)
			}
		})
	}

	// A caller's context already done, and a question that is not publish or subscribe.
	s := newSource(t, Config{URL: redirect.URL + "/ok"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := s.ForClient(info()).Authorize(ctx, publish, "t"); d != authz.Deny {
		t.Fatalf("cancelled context: %v", d)
	}
	if d := ask(s, authz.Action{Kind: authz.ActAll}, "t"); d != authz.Deny {
		t.Fatalf("kind all: %v", d)
	}
	if d := ask(s, authz.Action{Kind: authz.ActPublish, QoS: 3}, "t"); d != authz.Deny {
		t.Fatalf("qos 3: %v", d)
	}
	if d := ask(s, publish, "t"); d != authz.Allow {
		t.Fatalf("the same source on a good question: %v", d)
	}
}

func TestConcurrencyBound(t *testing.T) {
	const limit, questions = 3, 20
	var inflight, peak atomic.Int64
	release := make(chan struct{})
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := postConfig(srv)
	cfg.MaxConcurrency = limit
	cfg.RequestTimeout = time.Minute
	s := newSource(t, cfg)

	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range questions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ask(s, publish, "t") == authz.Allow {
				allowed.Add(1)
			}
		}()
	}
	// Wait (without a deadline of our own: the test binary's timeout is the bound) until
	// the service holds limit requests, so the others queue on the bound.
	for inflight.Load() < limit {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("%d requests in flight at once; max_concurrency is %d", p, limit)
	}
	if allowed.Load() != questions {
		t.Fatalf("%d of %d questions allowed", allowed.Load(), questions)
	}
}

// With every slot taken, a question whose deadline passes while it waits fails closed
// and never reaches the service.
func TestConcurrencySlotsExhausted(t *testing.T) {
	var arrived atomic.Int64
	release := make(chan struct{})
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := postConfig(srv)
	cfg.MaxConcurrency = 1
	cfg.RequestTimeout = time.Minute
	s := newSource(t, cfg)

	first := make(chan authz.Decision, 1)
	go func() { first <- ask(s, publish, "t") }()
	for arrived.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan authz.Decision, 1)
	go func() { second <- s.ForClient(info()).Authorize(ctx, publish, "t") }()
	cancel()
	if d := <-second; d != authz.Deny {
		t.Fatalf("waiting question: %v, want deny", d)
	}
	close(release)
	if d := <-first; d != authz.Allow {
		t.Fatalf("first question: %v", d)
	}
	if n := arrived.Load(); n != 1 {
		t.Fatalf("%d requests reached the service, want 1", n)
	}
}

// writeCA makes a CA and a server certificate it signs for 127.0.0.1, and returns the
// CA's PEM file and the server's TLS certificate.
func writeCA(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test authz CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "authz service"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"authz.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

func TestTLSCustomCA(t *testing.T) {
	caFile, cert := writeCA(t)
	srv := httptest.NewUnstartedServer(httpctest.Reply(200, `{"result":"allow"}`))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", srv.URL)
	}

	cfg := postConfig(srv)
	cfg.SSL = tlsconf.ClientOptions{CACertFile: caFile}
	if d := ask(newSource(t, cfg), publish, "t"); d != authz.Allow {
		t.Fatalf("trusted CA: %v", d)
	}
	cfg.SSL = tlsconf.ClientOptions{CACertFile: caFile, ServerName: "authz.test"}
	if d := ask(newSource(t, cfg), publish, "t"); d != authz.Allow {
		t.Fatalf("trusted CA, server name in the certificate: %v", d)
	}
	for _, tc := range []struct {
		name string
		ssl  tlsconf.ClientOptions
	}{
		{"system roots", tlsconf.ClientOptions{}},
		{"wrong server name", tlsconf.ClientOptions{CACertFile: caFile, ServerName: "other.test"}},
	} {
		cfg.SSL = tc.ssl
		if d := ask(newSource(t, cfg), publish, "t"); d != authz.Deny {
			t.Errorf("%s: %v, want deny", tc.name, d)
		}
	}
	// Plain http to the TLS port fails too.
	cfg.URL, cfg.SSL = strings.Replace(srv.URL, "https://", "http://", 1)+"/authz", tlsconf.ClientOptions{}
	if d := ask(newSource(t, cfg), publish, "t"); d != authz.Deny {
		t.Errorf("http to a TLS port: %v, want deny", d)
	}
}

func TestValidate(t *testing.T) {
	const u = "http://127.0.0.1:9/authz"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"minimal", Config{URL: u}, ""},
		{"localhost", Config{URL: "http://localhost:9/authz"}, ""},
		{"ipv6 loopback", Config{URL: "http://[::1]:9/authz"}, ""},
		{"every variable", Config{URL: u + "/${clientid}?a=${action}&t=${topic}", Body: map[string]string{
			"q": "${qos}", "r": "${retain}", "cn": "${cert_common_name}", "attr": "${client_attrs.site}", "mixed": "x-${username}-${topic}-y"}}, ""},
		{"get", Config{Method: "GET", URL: u}, ""},
		{"https with ssl", Config{URL: "https://authz.example/x", SSL: tlsconf.ClientOptions{ServerName: "a"}}, ""},
		{"plain http elsewhere", Config{URL: "http://authz.example/x"}, "allow_plain_http"},
		{"plain http elsewhere, allowed", Config{URL: "http://authz.example/x", AllowPlainHTTP: true}, ""},
		{"no url", Config{}, "url: required"},
		{"bad scheme", Config{URL: "ftp://127.0.0.1/x"}, "scheme"},
		{"no scheme", Config{URL: "127.0.0.1/x"}, "url"},
		{"fragment", Config{URL: u + "#f"}, "fragment"},
		{"placeholder in host", Config{URL: "http://${clientid}.example/x"}, "host"},
		{"credentials", Config{URL: "http://user:pw@127.0.0.1/x"}, "credentials"},
		{"no host", Config{URL: "http:///x"}, "host"},
		{"space", Config{URL: u + "/a b"}, "spaces"},
		{"password in body", Config{URL: u, Body: map[string]string{"p": "${password}"}}, "password"},
		{"password in url", Config{URL: u + "?p=${password}"}, "password"},
		{"password in header", Config{URL: u, Headers: map[string]string{"X-P": "${password}"}}, "password"},
		{"unknown variable", Config{URL: u, Body: map[string]string{"x": "${mountpoint}"}}, "mountpoint"},
		{"unclosed", Config{URL: u, Body: map[string]string{"x": "${topic"}}, "closing"},
		{"empty field name", Config{URL: u, Body: map[string]string{"": "x"}}, "empty field"},
		{"method", Config{Method: "put", URL: u}, "method"},
		{"bad header name", Config{URL: u, Headers: map[string]string{"X Y": "1"}}, "header name"},
		{"managed header", Config{URL: u, Headers: map[string]string{"Host": "x"}}, "managed by the HTTP client"},
		{"CRLF in header", Config{URL: u, Headers: map[string]string{"X-A": "1\r\nX-B: 2"}}, "control"},
		{"content-type form", Config{URL: u, Headers: map[string]string{"Content-Type": mimeForm}}, ""},
		{"content-type other", Config{URL: u, Headers: map[string]string{"Content-Type": "text/plain"}}, "content-type"},
		{"content-type on get", Config{Method: "get", URL: u, Headers: map[string]string{"Content-Type": mimeJSON}}, "GET"},
		{"content-type template", Config{URL: u, Headers: map[string]string{"Content-Type": "${topic}"}}, "placeholders"},
		{"timeout negative", Config{URL: u, RequestTimeout: -1}, "request_timeout"},
		{"timeout too long", Config{URL: u, RequestTimeout: 2 * time.Minute}, "request_timeout"},
		{"concurrency", Config{URL: u, MaxConcurrency: MaxMaxConcurrency + 1}, "max_concurrency"},
		{"on_error", Config{URL: u, OnError: "allow"}, "on_error"},
		{"ssl on http", Config{URL: u, SSL: tlsconf.ClientOptions{CACertFile: "/x"}}, "not https"},
		{"verify_none without allow", Config{URL: "https://127.0.0.1/x", SSL: tlsconf.ClientOptions{Verify: "verify_none"}}, "allow_verify_none"},
		{"missing CA file", Config{URL: "https://127.0.0.1/x", SSL: tlsconf.ClientOptions{CACertFile: "/nonexistent/ca.pem"}}, "ssl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	tm, err := parseTemplate("a/${clientid}/${topic}/${qos}${retain}-${action}/${username}")
	if err != nil {
		t.Fatal(err)
	}
	q := newQuestion(authz.Action{Kind: authz.ActPublish, QoS: 2, Retain: true}, "t/${clientid}")
	got := tm.expand(placeholder.Values{Info: &clientinfo.Info{ClientID: "c", Username: "${topic}"}}, &q, nil)
	// Values are never expanded again.
	if want := "a/c/t/${clientid}/2true-publish/${topic}"; got != want {
		t.Fatalf("expand = %q, want %q", got, want)
	}
	lit, _ := parseTemplate("plain")
	if lit.hasVars() {
		t.Fatal("a literal has variables")
	}
}

// Failures are logged, but not one line per question.
func TestFailureLogBounded(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	_ = dead.Close()
	s, err := New(Config{URL: "http://" + addr + "/authz"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.fails.every = time.Hour // no second line within the test, however slow the machine
	buf.Reset()
	for range 50 {
		if d := ask(s, publish, "t"); d != authz.Deny {
			t.Fatalf("%v", d)
		}
	}
	if n := strings.Count(buf.String(), "the service failed"); n != 1 {
		t.Fatalf("%d failure lines for 50 failures:\n%s", n, buf.String())
	}
}
