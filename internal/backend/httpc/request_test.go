package httpc

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

// vtmpl is a test template: every "$v" stands for the value.
type vtmpl string

func (t vtmpl) Expand(v string, escape func(string) string) string {
	if escape != nil {
		v = escape(v)
	}
	return strings.ReplaceAll(string(t), "$v", v)
}

func (t vtmpl) HasVars() bool { return strings.Contains(string(t), "$v") }

func parseV(text string, _ Part) (Template[string], error) {
	if strings.Contains(text, "$bad") {
		return nil, errors.New("unknown variable $bad")
	}
	return vtmpl(text), nil
}

func compileV(t *testing.T, c RequestConfig, p Profile) *Request[string] {
	t.Helper()
	r, err := Compile(c, p, parseV)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

func TestCompileDefaults(t *testing.T) {
	r := compileV(t, RequestConfig{URL: "http://127.0.0.1:9/x"}, Profile{})
	if r.Method != http.MethodPost || r.Origin != "http://127.0.0.1:9" || r.HTTPS || r.TLS != nil ||
		r.Timeout != DefaultRequestTimeout || r.MaxConcurrency != DefaultMaxConcurrency || r.IgnoreErrors {
		t.Fatalf("defaults: %+v", r)
	}
	r = compileV(t, RequestConfig{URL: "https://svc.example/x", Method: "GET", OnError: OnErrorIgnore}, Profile{})
	if r.Method != http.MethodGet || !r.HTTPS || r.TLS == nil || !r.IgnoreErrors {
		t.Fatalf("https get: %+v", r)
	}
}

func TestCompileTellsWhere(t *testing.T) {
	got := map[string]Part{}
	_, err := Compile(RequestConfig{URL: "http://localhost/p?q=1", Body: map[string]string{"b": "B"}, Headers: map[string]string{"X-H": "H"}},
		Profile{}, func(text string, in Part) (Template[string], error) {
			got[text] = in
			return vtmpl(text), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Part{"/p": PartURL, "q=1": PartURL, "B": PartBody, "H": PartHeader}
	for k, v := range want {
		if p, ok := got[k]; !ok || p != v {
			t.Errorf("%q parsed as %v (%v), want %v", k, p, ok, v)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	const u = "http://127.0.0.1:9/x"
	for _, tc := range []struct {
		name string
		cfg  RequestConfig
		want string
	}{
		{"no url", RequestConfig{}, "url: required"},
		{"method", RequestConfig{URL: u, Method: "put"}, "method"},
		{"no scheme", RequestConfig{URL: "127.0.0.1/x"}, "want http:// or https://"},
		{"plain http", RequestConfig{URL: "http://svc.example/x"}, "plain http to svc.example RISK; use https"},
		{"host placeholder", RequestConfig{URL: "http://${a}.example/x"}, "host or port"},
		{"template error", RequestConfig{URL: u + "/$bad"}, "url: unknown variable"},
		{"body template", RequestConfig{URL: u, Body: map[string]string{"f": "$bad"}}, "body.f: unknown"},
		{"managed header", RequestConfig{URL: u, Headers: map[string]string{"Host": "x"}}, "managed by the HTTP client"},
		{"control in header", RequestConfig{URL: u, Headers: map[string]string{"X-A": "a\nb"}}, "headers.X-A: control"},
		{"content-type var", RequestConfig{URL: u, Headers: map[string]string{"Content-Type": "$v"}}, "placeholders"},
		{"timeout", RequestConfig{URL: u, RequestTimeout: 2 * MaxRequestTimeout}, "request_timeout"},
		{"concurrency", RequestConfig{URL: u, MaxConcurrency: MaxMaxConcurrency + 1}, "max_concurrency"},
		{"on_error", RequestConfig{URL: u, OnError: "allow"}, "on_error"},
		{"dot segment", RequestConfig{URL: u + "/../y"}, "segment"},
		{"space", RequestConfig{URL: u + "/a b"}, "spaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.cfg, Profile{PlainHTTPRisk: "RISK"}, parseV)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	const v = "a&b=c/d"
	fields := map[string]string{"f": "$v", "g": "lit"}
	for _, tc := range []struct {
		name      string
		cfg       RequestConfig
		wantURL   string
		wantCType string
		wantBody  string
	}{
		{"post json", RequestConfig{URL: "http://127.0.0.1:9/p/$v?q=$v", Body: fields},
			"http://127.0.0.1:9/p/a&b=c%2Fd?q=a%26b%3Dc%2Fd", ContentJSON, `{"f":"a\u0026b=c/d","g":"lit"}`},
		{"post form", RequestConfig{URL: "http://127.0.0.1:9/p", Body: fields, Headers: map[string]string{"content-type": ContentForm}},
			"http://127.0.0.1:9/p", ContentForm, "f=a%26b%3Dc%2Fd&g=lit"},
		{"get", RequestConfig{Method: MethodGet, URL: "http://127.0.0.1:9/p?x=1", Body: fields},
			"http://127.0.0.1:9/p?x=1&f=a%26b%3Dc%2Fd&g=lit", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Headers = mergeHeaders(tc.cfg.Headers, map[string]string{"x-who": "<$v>"})
			r := compileV(t, tc.cfg, Profile{UserAgent: "ua-test"})
			req, err := r.Build(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.URL.String(); got != tc.wantURL {
				t.Errorf("URL %s, want %s", got, tc.wantURL)
			}
			if got := req.Header.Get("Content-Type"); got != tc.wantCType {
				t.Errorf("content-type %q, want %q", got, tc.wantCType)
			}
			if req.Header.Get("User-Agent") != "ua-test" || req.Header.Get("Accept") != ContentJSON || req.Header.Get("X-Who") != "<"+v+">" {
				t.Errorf("headers %v", req.Header)
			}
			var body []byte
			if req.Body != nil {
				body, _ = io.ReadAll(req.Body)
			}
			if string(body) != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	r := compileV(t, RequestConfig{URL: "http://127.0.0.1:9/p/$v"}, Profile{})
	if _, err := r.Build(context.Background(), ".."); err == nil || !strings.Contains(err.Error(), "dot segment") {
		t.Fatalf("dot segment value: %v", err)
	}
	if _, err := r.Build(context.Background(), "ok"); err != nil {
		t.Fatalf("plain value: %v", err)
	}
	r = compileV(t, RequestConfig{URL: "http://127.0.0.1:9/p", Headers: map[string]string{"X-V": "$v"}}, Profile{})
	if _, err := r.Build(context.Background(), "a\r\nX-Evil: 1"); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Fatalf("CRLF in a header value: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if got := Describe(ctx, errors.New("x"), time.Second); !strings.Contains(got, "request_timeout 1s") {
		t.Errorf("expired: %q", got)
	}
	if got := Describe(context.Background(), errors.New("refused"), time.Second); got != "request failed: refused" {
		t.Errorf("plain: %q", got)
	}
}

func mergeHeaders(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}
