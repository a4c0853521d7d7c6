package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// TestBackoff stops the server: the first question fails, the next ones are refused
// without a connection attempt while the back-off runs, and the pool recovers once the
// server is back.
func TestBackoff(t *testing.T) {
	srv := testsvc.NewPostgres(t, testsvc.PostgresOptions{})
	ctx := context.Background()
	p, err := New(ctx, Config{DSN: srv.DSN})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A back-off long enough that the next questions surely fall inside it.
	p.health = health.New("postgresql "+p.Target(), 2*time.Second, 4*time.Second)
	q, err := CompileQuery("SELECT 1", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("health before stop: %+v", h)
	}
	srv.Stop()

	_, err = p.Query(ctx, q, placeholder.Values{}, 1)
	if err == nil || errors.Is(err, health.ErrBackoff) || errors.Is(err, health.ErrBusy) {
		t.Fatalf("first query with the server down: %v, want a connection error", err)
	}
	dials := p.pool.Stat().NewConnsCount()
	for i := range 3 {
		if _, err := p.Query(ctx, q, placeholder.Values{}, 1); !errors.Is(err, health.ErrBackoff) {
			t.Fatalf("query %d during the back-off: %v, want health.ErrBackoff", i+2, err)
		}
	}
	if err := p.Ping(ctx); !errors.Is(err, health.ErrBackoff) {
		t.Fatalf("ping during the back-off: %v, want health.ErrBackoff", err)
	}
	if n := p.pool.Stat().NewConnsCount(); n != dials {
		t.Fatalf("%d connections made during the back-off, want none", n-dials)
	}
	if h := p.Health(); h.Up || h.Failures != 1 || h.LastErr == "" {
		t.Fatalf("health while down: %+v", h)
	}

	srv.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := p.Query(ctx, q, placeholder.Values{}, 1)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("health after recovery: %+v", h)
	}
}

// TestBusy holds the only connection with a long query: the next question is refused as
// busy, which is not a failure to reach the server, and a caller giving up is not one
// either.
func TestBusy(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	p, err := New(ctx, Config{DSN: dsn, PoolSize: 1, AcquireTimeout: 2 * time.Second, QueryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sleep, err := CompileQuery("SELECT pg_sleep(20)", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := CompileQuery("SELECT 1", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Query(sctx, sleep, placeholder.Values{}, 1)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.pool.Stat().AcquiredConns() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the long query did not take the connection")
		}
		time.Sleep(10 * time.Millisecond)
	}

	_, err = p.Query(ctx, q, placeholder.Values{}, 1)
	if !errors.Is(err, health.ErrBusy) || !strings.Contains(err.Error(), "no connection within") {
		t.Fatalf("query with the pool taken: %v, want health.ErrBusy", err)
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("a busy pool counted as a failure: %+v", h)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("long query after cancel: %v, want context.Canceled", err)
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("an abandoned query counted as a failure: %+v", h)
	}
	// The cancelled query's connection is closed, not reused; its place comes free when
	// the close is done.
	deadline = time.Now().Add(20 * time.Second)
	for p.pool.Stat().TotalConns() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled query's connection was not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		_, err := p.Query(ctx, q, placeholder.Values{}, 1)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query after the pool came free: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSQLErrorIsAnAnswer: an error the server answers with says the server is up.
func TestSQLErrorIsAnAnswer(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	p, err := New(ctx, Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	q, err := CompileQuery("SELECT * FROM no_such_table WHERE u = ${username}", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Query(ctx, q, placeholder.Values{}, 1); err == nil || errors.Is(err, health.ErrBackoff) {
			t.Fatalf("query of a missing table: %v, want the server's error", err)
		}
	}
	if h := p.Health(); !h.Up || h.Failures != 0 {
		t.Fatalf("SQL errors counted as failures: %+v", h)
	}
}
