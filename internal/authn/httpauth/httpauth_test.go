package httpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
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

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/backend/httpc/httpctest"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

const testPassword = "s3cret-pa55"

func newAuth(t *testing.T, cfg Config) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func testInfo() *clientinfo.Info {
	return &clientinfo.Info{ClientID: "dev-1", Username: "alice", Peer: netip.MustParseAddrPort("127.0.0.1:40000")}
}

func authWith(ctx context.Context, a *Authenticator, info *clientinfo.Info) authn.Result {
	return a.Authenticate(ctx, info, &authn.Credentials{Username: info.Username, Password: []byte(testPassword)})
}

func auth(a *Authenticator) authn.Result { return authWith(context.Background(), a, testInfo()) }

func basicConfig(srv *httptest.Server) Config {
	return Config{
		URL:  srv.URL + "/auth",
		Body: map[string]string{"username": "${username}", "password": "${password}", "clientid": "${clientid}"},
	}
}

// wantError checks the error path: Deny with NotAuthorized and a Detail naming the failure,
// without the password.
func wantError(t *testing.T, r authn.Result, detail string) {
	t.Helper()
	if r.Outcome != authn.Deny || r.DenyReason() != packet.NotAuthorized {
		t.Fatalf("got %v / %v (%s), want deny / not authorized", r.Outcome, r.DenyReason(), r.Detail)
	}
	if !strings.Contains(r.Detail, detail) {
		t.Fatalf("detail %q does not mention %q", r.Detail, detail)
	}
	if strings.Contains(r.Detail, testPassword) {
		t.Fatalf("detail %q holds the password", r.Detail)
	}
}

func TestAnswers(t *testing.T) {
	future := time.Now().Add(time.Hour).Unix()
	past := time.Now().Add(-time.Hour).Unix()
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		outcome authn.Outcome
		reason  packet.ReasonCode // on deny
		detail  string
		check   func(t *testing.T, r authn.Result)
	}{
		{name: "allow", status: 200, body: `{"result":"allow"}`, outcome: authn.Allow,
			check: func(t *testing.T, r authn.Result) {
				if r.Superuser || r.ACL != nil || r.Attrs != nil || !r.ExpiresAt.IsZero() {
					t.Fatalf("plain allow granted extras: %+v", r)
				}
			}},
		{name: "deny", status: 200, body: `{"result":"deny"}`, outcome: authn.Deny, reason: packet.BadUserNameOrPassword, detail: "answered deny"},
		{name: "deny ignores extras", status: 200, body: `{"result":"deny","is_superuser":true}`, outcome: authn.Deny, reason: packet.BadUserNameOrPassword},
		{name: "ignore", status: 200, body: `{"result":"ignore"}`, outcome: authn.Ignore},
		{name: "204 is ignore", status: 204, outcome: authn.Ignore, detail: "204"},
		{name: "201 with allow", status: 201, body: `{"result":"allow"}`, outcome: authn.Allow},
		{name: "superuser", status: 200, body: `{"result":"allow","is_superuser":true}`, outcome: authn.Allow,
			check: func(t *testing.T, r authn.Result) {
				if !r.Superuser {
					t.Fatal("not superuser")
				}
			}},
		{name: "superuser as string", status: 200, body: `{"result":"allow","is_superuser":"true"}`, outcome: authn.Allow,
			check: func(t *testing.T, r authn.Result) {
				if !r.Superuser {
					t.Fatal("not superuser")
				}
			}},
		{name: "acl attrs expiry", status: 200, outcome: authn.Allow,
			body: fmt.Sprintf(`{"result":"allow","is_superuser":false,
				"acl":[{"permission":"allow","action":"pub","topic":"up/${clientid}","qos":1},
				       {"permission":"deny","action":"all","topics":["#"]}],
				"client_attrs":{"tenant":"acme","zone":"eu-1"},"expire_at":%d}`, future),
			check: func(t *testing.T, r authn.Result) {
				if r.Superuser {
					t.Fatal("superuser from is_superuser false")
				}
				if len(r.ACL) != 2 || r.ACL[0].Permission != authz.PermAllow || r.ACL[0].Action != authz.ActPublish ||
					r.ACL[0].Topics[0] != "up/${clientid}" || string(r.ACL[0].QoS) != "\x01" ||
					r.ACL[1].Permission != authz.PermDeny || r.ACL[1].Action != authz.ActAll {
					t.Fatalf("ACL %+v", r.ACL)
				}
				if len(r.Attrs) != 2 || r.Attrs["tenant"] != "acme" || r.Attrs["zone"] != "eu-1" {
					t.Fatalf("Attrs %v", r.Attrs)
				}
				if r.ExpiresAt.Unix() != future {
					t.Fatalf("ExpiresAt %v, want %d", r.ExpiresAt, future)
				}
			}},
		{name: "expire_at past", status: 200, body: fmt.Sprintf(`{"result":"allow","expire_at":%d}`, past),
			outcome: authn.Deny, reason: packet.BadUserNameOrPassword, detail: "already past"},
		{name: "500", status: 500, body: `{"result":"allow"}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "HTTP 500"},
		{name: "401 with an allow body", status: 401, body: `{"result":"allow"}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "HTTP 401"},
		{name: "bad JSON", status: 200, body: `{"result":"allow"`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "not the expected JSON"},
		{name: "HTML", status: 200, body: `<html>ok</html>`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "not the expected JSON"},
		{name: "empty body", status: 200, body: ``, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "not the expected JSON"},
		{name: "unknown result", status: 200, body: `{"result":"maybe"}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "want allow, deny or ignore"},
		{name: "no result", status: 200, body: `{"is_superuser":true}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: `no "result"`},
		{name: "result not a string", status: 200, body: `{"result":true}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "JSON"},
		{name: "trailing data", status: 200, body: `{"result":"deny"}{"result":"allow"}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "after the JSON"},
		{name: "bad is_superuser", status: 200, body: `{"result":"allow","is_superuser":"yes"}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "is_superuser"},
		{name: "bad acl", status: 200, body: `{"result":"allow","acl":[{"permission":"allow","action":"all"}]}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "acl"},
		{name: "acl not a list", status: 200, body: `{"result":"allow","acl":"all"}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "acl"},
		{name: "attr not a string", status: 200, body: `{"result":"allow","client_attrs":{"n":1}}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "JSON"},
		{name: "attr bad name", status: 200, body: `{"result":"allow","client_attrs":{"a}b":"c"}}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "attribute name"},
		{name: "expire_at in ms", status: 200, body: `{"result":"allow","expire_at":1735689600000000}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "expire_at"},
		{name: "expire_at fraction", status: 200, body: `{"result":"allow","expire_at":17356896.5}`, outcome: authn.Deny, reason: packet.NotAuthorized, detail: "expire_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httpctest.Serve(t, httpctest.Reply(tc.status, tc.body))
			r := auth(newAuth(t, basicConfig(srv)))
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome %v (%s), want %v", r.Outcome, r.Detail, tc.outcome)
			}
			if tc.outcome == authn.Deny && r.DenyReason() != tc.reason {
				t.Fatalf("reason %v, want %v", r.DenyReason(), tc.reason)
			}
			if !strings.Contains(r.Detail, tc.detail) {
				t.Fatalf("detail %q does not mention %q", r.Detail, tc.detail)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestPostJSONBody(t *testing.T) {
	var got map[string]string
	var hdr http.Header
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := basicConfig(srv)
	cfg.Body["peer"] = "${peerhost}"
	cfg.Body["literal"] = "v1"
	cfg.Headers = map[string]string{"X-Client": "${clientid}", "authorization": "Bearer service-token"}
	a := newAuth(t, cfg)
	info := testInfo()
	info.Username = `al"ice\` // JSON encoding must keep it one string
	if r := authWith(context.Background(), a, info); r.Outcome != authn.Allow {
		t.Fatalf("%v (%s)", r.Outcome, r.Detail)
	}
	want := map[string]string{"username": `al"ice\`, "password": testPassword, "clientid": "dev-1", "peer": "127.0.0.1", "literal": "v1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("body %v, want %v", got, want)
	}
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Client") != "dev-1" ||
		hdr.Get("Authorization") != "Bearer service-token" || hdr.Get("Accept") != "application/json" {
		t.Fatalf("headers %v", hdr)
	}
}

func TestPostFormBody(t *testing.T) {
	var got url.Values
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form", http.StatusUnsupportedMediaType)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = r.PostForm
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := basicConfig(srv)
	cfg.Headers = map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
	a := newAuth(t, cfg)
	info := testInfo()
	info.Username = "a&password=stolen"
	if r := authWith(context.Background(), a, info); r.Outcome != authn.Allow {
		t.Fatalf("%v (%s)", r.Outcome, r.Detail)
	}
	if len(got) != 3 || got.Get("username") != info.Username || len(got["password"]) != 1 || got.Get("password") != testPassword {
		t.Fatalf("form %v", got)
	}
}

// Attack: a user name and client id built to add query parameters, end the query or
// change the path.
func TestGetEscaping(t *testing.T) {
	var query url.Values
	var rawPath, rawQuery string
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		query, rawPath, rawQuery = r.URL.Query(), r.URL.EscapedPath(), r.URL.RawQuery
		if r.Method != http.MethodGet {
			http.Error(w, "want GET", http.StatusMethodNotAllowed)
			return
		}
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	a := newAuth(t, Config{
		Method: "GET",
		URL:    srv.URL + "/auth/${clientid}?tenant=${username}&v=1",
		Body:   map[string]string{"username": "${username}", "password": "${password}"},
	})
	info := testInfo()
	info.Username = "bob&is_superuser=true&password=x=y#frag"
	info.ClientID = "../admin?x=1#y /z"
	if r := authWith(context.Background(), a, info); r.Outcome != authn.Allow {
		t.Fatalf("%v (%s)", r.Outcome, r.Detail)
	}
	if want := "/auth/" + url.PathEscape(info.ClientID); rawPath != want {
		t.Fatalf("path %q, want %q", rawPath, want)
	}
	if len(query) != 4 || query.Get("tenant") != info.Username || query.Get("username") != info.Username ||
		len(query["password"]) != 1 || query.Get("password") != testPassword || query.Get("v") != "1" {
		t.Fatalf("query %q parsed as %v", rawQuery, query)
	}
}

// Attack: CR LF in a value expanded into a header.
func TestHeaderInjectionRefused(t *testing.T) {
	var hits atomic.Int64
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := basicConfig(srv)
	cfg.Headers = map[string]string{"X-User": "${username}"}
	a := newAuth(t, cfg)
	info := testInfo()
	info.Username = "alice\r\nX-Superuser: true"
	wantError(t, authWith(context.Background(), a, info), "control character")
	if hits.Load() != 0 {
		t.Fatal("the request was sent")
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	cfg := basicConfig(srv)
	cfg.RequestTimeout = 200 * time.Millisecond
	wantError(t, auth(newAuth(t, cfg)), "no answer in time")
}

func TestServerDown(t *testing.T) {
	srv := httpctest.Serve(t, httpctest.Reply(200, `{"result":"allow"}`))
	cfg := basicConfig(srv)
	srv.Close()
	wantError(t, auth(newAuth(t, cfg)), "request failed")
}

func TestOnErrorIgnore(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want authn.Outcome
	}{
		{"500", httpctest.Reply(500, ``), authn.Ignore},
		{"bad JSON", httpctest.Reply(200, `nope`), authn.Ignore},
		{"deny still denies", httpctest.Reply(200, `{"result":"deny"}`), authn.Deny},
		{"allow still allows", httpctest.Reply(200, `{"result":"allow"}`), authn.Allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httpctest.Serve(t, tc.h)
			cfg := basicConfig(srv)
			cfg.OnError = OnErrorIgnore
			a, err := New(context.Background(), cfg, logger)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if r := auth(a); r.Outcome != tc.want {
				t.Fatalf("%v (%s), want %v", r.Outcome, r.Detail, tc.want)
			}
		})
	}
	srv := httpctest.Serve(t, httpctest.Reply(200, ``))
	cfg := basicConfig(srv)
	cfg.OnError = OnErrorIgnore
	srv.Close()
	a := newAuth(t, cfg)
	if r := auth(a); r.Outcome != authn.Ignore {
		t.Fatalf("server down with on_error ignore: %v", r.Outcome)
	}
	if strings.Contains(buf.String(), testPassword) {
		t.Fatal("the password reached the log")
	}
}

func TestOversizedAnswer(t *testing.T) {
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":"allow","pad":"`+strings.Repeat("x", MaxResponseSize)+`"}`)
	})
	wantError(t, auth(newAuth(t, basicConfig(srv))), "larger than")
}

// Attack: the service (or whoever answers for it) redirects; following would replay the
// credentials to the redirect target.
func TestRedirectNotFollowed(t *testing.T) {
	var targetHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	srv := httpctest.Serve(t, mux.ServeHTTP)
	wantError(t, auth(newAuth(t, basicConfig(srv))), "HTTP 307")
	if targetHits.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestConcurrencyBound(t *testing.T) {
	const limit, clients = 3, 20
	var inflight, peak atomic.Int64
	gate := make(chan struct{})
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := basicConfig(srv)
	cfg.MaxConcurrency = limit
	cfg.RequestTimeout = 30 * time.Second
	a := newAuth(t, cfg)

	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if auth(a).Outcome == authn.Allow {
				allowed.Add(1)
			}
		}()
	}
	// Hold the first requests at the server until the bound is reached, so every other
	// client is pushing against it.
	deadline := time.Now().Add(20 * time.Second)
	for inflight.Load() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests reached the server", inflight.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("%d requests in flight at once, max_concurrency is %d", p, limit)
	}
	if allowed.Load() != clients {
		t.Fatalf("%d of %d clients allowed", allowed.Load(), clients)
	}
}

func TestConcurrencyFullUntilDeadline(t *testing.T) {
	gate := make(chan struct{})
	var inflight atomic.Int64
	srv := httpctest.Serve(t, func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		<-gate
		httpctest.Reply(200, `{"result":"allow"}`)(w, r)
	})
	cfg := basicConfig(srv)
	cfg.MaxConcurrency = 1
	cfg.RequestTimeout = 30 * time.Second
	a := newAuth(t, cfg)

	first := make(chan authn.Result, 1)
	go func() { first <- auth(a) }()
	deadline := time.Now().Add(20 * time.Second)
	for inflight.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	wantError(t, authWith(ctx, a, testInfo()), "in flight")
	close(gate)
	if r := <-first; r.Outcome != authn.Allow {
		t.Fatalf("first request: %v (%s)", r.Outcome, r.Detail)
	}
	if n := inflight.Load(); n != 1 {
		t.Fatalf("%d requests reached the server, want 1", n)
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(httpctest.Reply(200, `{"result":"allow"}`))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := basicConfig(srv)
	cfg.SSL = tlsconf.ClientOptions{CACertFile: ca}
	if r := auth(newAuth(t, cfg)); r.Outcome != authn.Allow {
		t.Fatalf("trusted CA: %v (%s)", r.Outcome, r.Detail)
	}
	cfg.SSL = tlsconf.ClientOptions{} // system roots do not know the test CA
	wantError(t, auth(newAuth(t, cfg)), "certificate")
	cfg.SSL = tlsconf.ClientOptions{CACertFile: ca, ServerName: "other.example"}
	wantError(t, auth(newAuth(t, cfg)), "certificate")
}

func TestValidate(t *testing.T) {
	const u = "http://127.0.0.1:9/auth"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{}, "url: required"},
		{"bad method", Config{URL: u, Method: "put"}, "method"},
		{"no scheme", Config{URL: "127.0.0.1/auth"}, "want http:// or https://"},
		{"ftp", Config{URL: "ftp://127.0.0.1/auth"}, "scheme"},
		{"plain http off loopback", Config{URL: "http://auth.example.com/auth"}, "allow_plain_http"},
		{"placeholder in host", Config{URL: "https://${username}.example.com/auth"}, "host"},
		{"credentials in url", Config{URL: "https://user:pw@auth.example.com/auth"}, "credentials"},
		{"fragment", Config{URL: u + "#x"}, "fragment"},
		{"password in path", Config{URL: "http://127.0.0.1/auth/${password}"}, "only allowed in authentication"},
		{"password in query", Config{URL: u + "?p=${password}"}, "only allowed in authentication"},
		{"password in header", Config{URL: u, Headers: map[string]string{"X-P": "${password}"}}, "only allowed in authentication"},
		{"unknown placeholder", Config{URL: u, Body: map[string]string{"u": "${user}"}}, "unknown variable"},
		{"host header", Config{URL: u, Headers: map[string]string{"Host": "evil"}}, "managed by the HTTP client"},
		{"content-length header", Config{URL: u, Headers: map[string]string{"content-length": "1"}}, "managed by the HTTP client"},
		{"connection header", Config{URL: u, Headers: map[string]string{"connection": "keep-alive"}}, "managed by the HTTP client"},
		{"bad header name", Config{URL: u, Headers: map[string]string{"X Bad": "v"}}, "not a valid header name"},
		{"CR in header value", Config{URL: u, Headers: map[string]string{"X-A": "a\r\nX-B: b"}}, "control characters"},
		{"unsupported content type", Config{URL: u, Headers: map[string]string{"content-type": "text/plain"}}, "content-type"},
		{"content type on get", Config{URL: u, Method: "get", Headers: map[string]string{"content-type": "application/json"}}, "GET request has no body"},
		{"timeout too long", Config{URL: u, RequestTimeout: 2 * time.Minute}, "request_timeout"},
		{"negative timeout", Config{URL: u, RequestTimeout: -time.Second}, "request_timeout"},
		{"negative concurrency", Config{URL: u, MaxConcurrency: -1}, "max_concurrency"},
		{"bad on_error", Config{URL: u, OnError: "allow"}, "on_error"},
		{"ssl on http", Config{URL: u, SSL: tlsconf.ClientOptions{CACertFile: "/x"}}, "not https"},
		{"verify_none without allow", Config{URL: "https://127.0.0.1/auth", SSL: tlsconf.ClientOptions{Verify: "verify_none"}}, "allow_verify_none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if _, err := New(context.Background(), tc.cfg, nil); err == nil {
				t.Fatal("New accepted what Validate refused")
			}
		})
	}
	for _, ok := range []Config{
		{URL: "http://localhost:8080/auth"},
		{URL: "http://[::1]:8080/auth"},
		{URL: "http://auth.example.com/auth", AllowPlainHTTP: true},
		{URL: "https://auth.example.com", Method: "GET"},
		{URL: "https://auth.example.com/a/${client_attrs.tenant}?c=${clientid}", OnError: "ignore"},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

// TestDotSegmentClientID: a client id of ".." landing in the URL path would make the
// service see another path after normalisation; the request is refused instead.
func TestDotSegmentClientID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached the service: %s", r.URL.Path)
	}))
	defer srv.Close()
	a, err := New(context.Background(), Config{URL: srv.URL + "/devices/${clientid}/auth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, id := range []string{"..", "."} {
		res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: id, Username: "u"},
			&authn.Credentials{Password: []byte("p")})
		if res.Outcome == authn.Allow {
			t.Errorf("client id %q allowed", id)
		}
	}
}
