// Package httpctest holds test helpers for the users of package httpc: a test service
// that stays quiet in the logs and a handler that gives one fixed answer.
package httpctest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Serve starts a test server running h, with its error log discarded, closed when the
// test ends.
func Serve(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Reply is a handler that reads the request body and answers status and body as JSON.
func Reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
